//! The one error type of the crate.
//!
//! No variant carries key material, PIN digits, PIN blocks or PAN digits, so an error can be
//! logged or turned into an API answer as it is.

use crate::master::KeyUsage;

/// Why a security-module operation did not produce its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HsmError {
    /// A double-length key was not 32 hex digits.
    #[error("a double-length 3DES key is 32 hex digits")]
    KeyHex,
    /// A key check value was not 6 hex digits.
    #[error("a key check value is 6 hex digits")]
    CheckValueHex,
    /// The check value given with a key is not the check value of that key: the key was mistyped
    /// or is not the one the other side holds.
    #[error("the key check value does not match the key")]
    CheckValueMismatch,
    /// A master key was not 32 bytes (or 64 hex digits).
    #[error("a master key is 32 bytes (64 hex digits)")]
    MasterKeyLength,
    /// A PAN was not 8 to 19 decimal digits.
    #[error("a PAN is 8 to 19 decimal digits")]
    Pan,
    /// A PIN was not 4 to 12 decimal digits (ISO 9564-1).
    #[error("a PIN is 4 to 12 decimal digits")]
    Pin,
    /// A PIN to generate was asked for with a digit count outside the issuing range.
    #[error("a generated PIN has 4 to 6 digits")]
    PinGenerateLength,
    /// A PIN verification key indicator was not a single decimal digit.
    #[error("a PVKI is one decimal digit")]
    Pvki,
    /// A PIN verification value was not 4 decimal digits.
    #[error("a PVV is 4 decimal digits")]
    Pvv,
    /// An encrypted PIN block was not 8 bytes (16 hex digits).
    #[error("an encrypted PIN block is 8 bytes (16 hex digits)")]
    PinBlockLength,
    /// A decrypted PIN block is not a well-formed ISO 9564-1 format 0 block. For the switch
    /// this is a wrong PIN (host interface §8), typically a terminal still using an old TPK.
    #[error("the PIN block is not a well-formed ISO 9564-1 format 0 block: {0}")]
    PinBlock(PinBlockFault),
    /// A key-change answer (DE48) was not 32 hex digits of key and 6 of check value.
    #[error("a key-change answer is 38 hex digits: the encrypted key and its check value")]
    KeyChangeFormat,
    /// A wrapped key was not the length or format version this crate writes.
    #[error("a wrapped key has an unknown length, format or key usage")]
    WrappedKeyFormat,
    /// A wrapped key did not authenticate: it was altered, or wrapped under another master key.
    #[error("the wrapped key does not authenticate under this master key")]
    Unwrap,
    /// A wrapped key was offered for a use other than the one it was stored for.
    #[error("a {found} was given where a {expected} is needed")]
    KeyUsage {
        /// The usage the operation needs.
        expected: KeyUsage,
        /// The usage the wrapped key was stored with.
        found: KeyUsage,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(getrandom::Error),
    /// Random draws kept being rejected (weak keys, trivial PINs) past the retry limit; with a
    /// working generator this does not happen.
    #[error("no acceptable random value after the retry limit")]
    RandomExhausted,
}

impl HsmError {
    /// Whether the switch should answer this like a wrong PIN (DE39 `55`) rather than as a
    /// system fault (`96`): only a PIN block that does not decode is the cardholder's doing.
    pub fn counts_as_wrong_pin(&self) -> bool {
        matches!(self, HsmError::PinBlock(_))
    }
}

impl From<getrandom::Error> for HsmError {
    fn from(error: getrandom::Error) -> Self {
        HsmError::Random(error)
    }
}

/// Which rule of ISO 9564-1 format 0 a decrypted PIN block breaks. None of these names a PIN
/// digit or says where the block went wrong, so that the answer is no oracle on the PIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PinBlockFault {
    /// The control field (first nibble) is not 0.
    #[error("control field is not 0")]
    ControlField,
    /// The length nibble is outside 4..=12.
    #[error("PIN length is outside 4 to 12")]
    PinLength,
    /// A PIN nibble is not a decimal digit.
    #[error("a PIN digit is not decimal")]
    PinDigit,
    /// A fill nibble after the PIN is not F.
    #[error("the fill is not all F")]
    Fill,
}
