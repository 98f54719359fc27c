//! Double-length 3DES keys (TMK, TPK, PVK) and their check values.

use std::fmt;

use des::TdesEde2;
use des::cipher::{Block, BlockCipherDecrypt, BlockCipherEncrypt, Key, KeyInit};
use zeroize::{Zeroize, Zeroizing};

use crate::{HsmError, hex};

/// How many times key generation draws again after a weak key before giving up. A random
/// 16-byte draw is weak with a probability near 2^-52, so the limit is never reached with a
/// working generator; it exists so that a broken one cannot spin forever.
const GENERATE_ATTEMPTS_MAX: u32 = 16;

/// A double-length 3DES key: 16 bytes used as K1 K2 K1 (encrypt-decrypt-encrypt).
///
/// Its `Debug` shows only the check value, so a key that reaches a log line shows what an
/// operator may see; the bytes are zeroized when it is dropped. [`TdesKey::reveal_hex`] is the
/// one door to the key itself.
#[derive(Clone)]
pub struct TdesKey {
    /// K1 then K2, parity bits as given (DES ignores them).
    bytes: [u8; TdesKey::BYTES],
    /// The key schedule, computed once per key rather than once per block (the RustCrypto
    /// cipher zeroizes it when dropped).
    cipher: TdesEde2,
}

impl TdesKey {
    /// Bytes of a double-length key.
    pub const BYTES: usize = 16;
    /// Hex digits of a double-length key.
    pub const HEX_DIGITS: usize = 32;

    /// A key from its 16 bytes.
    pub fn from_bytes(bytes: [u8; TdesKey::BYTES]) -> TdesKey {
        let mut key = Key::<TdesEde2>::from(bytes);
        let cipher = TdesEde2::new(&key);
        key.zeroize();
        TdesKey { bytes, cipher }
    }

    /// A key from 32 hex digits, either case.
    pub fn from_hex(text: &str) -> Result<TdesKey, HsmError> {
        let mut bytes = Zeroizing::new([0; TdesKey::BYTES]);
        if hex::decode_into(text, bytes.as_mut()) {
            Ok(TdesKey::from_bytes(*bytes))
        } else {
            Err(HsmError::KeyHex)
        }
    }

    /// A key from 32 hex digits that must have the given check value, as keys are entered
    /// when a terminal is registered: a mistyped key is refused rather than stored.
    pub fn from_hex_checked(text: &str, check_value: &str) -> Result<TdesKey, HsmError> {
        let expected = CheckValue::from_hex(check_value)?;
        let key = TdesKey::from_hex(text)?;
        if key.check_value() == expected {
            Ok(key)
        } else {
            Err(HsmError::CheckValueMismatch)
        }
    }

    /// A new random key with odd parity in every byte, as terminals and hardware HSMs expect,
    /// and neither half a weak DES key nor K1 = K2 (which would make it single DES).
    pub fn generate() -> Result<TdesKey, HsmError> {
        for _ in 0..GENERATE_ATTEMPTS_MAX {
            let mut bytes = Zeroizing::new([0; TdesKey::BYTES]);
            getrandom::fill(bytes.as_mut())?;
            for byte in bytes.iter_mut() {
                *byte = with_odd_parity(*byte);
            }
            if des::weak_key_test(bytes.as_slice()).is_ok() {
                return Ok(TdesKey::from_bytes(*bytes));
            }
        }
        Err(HsmError::RandomExhausted)
    }

    /// The key check value: the first 3 bytes of 8 zero bytes encrypted under the key.
    pub fn check_value(&self) -> CheckValue {
        let block = self.encrypt_block([0; 8]);
        CheckValue([block[0], block[1], block[2]])
    }

    /// The key as 32 uppercase hex digits, zeroized when dropped. For key ceremonies and
    /// tests only: the switch and the admin API never need a clear key.
    pub fn reveal_hex(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::with_capacity(TdesKey::HEX_DIGITS));
        hex::encode_into(&self.bytes, &mut text);
        text
    }

    /// The key bytes, for wrapping under the master key.
    pub(crate) fn as_bytes(&self) -> &[u8; TdesKey::BYTES] {
        &self.bytes
    }

    /// `block` encrypted under this key with 3DES (one ECB block).
    pub(crate) fn encrypt_block(&self, block: [u8; 8]) -> [u8; 8] {
        let mut block = Block::<TdesEde2>::from(block);
        self.cipher.encrypt_block(&mut block);
        block.into()
    }

    /// `block` decrypted under this key with 3DES (one ECB block).
    pub(crate) fn decrypt_block(&self, block: [u8; 8]) -> [u8; 8] {
        let mut block = Block::<TdesEde2>::from(block);
        self.cipher.decrypt_block(&mut block);
        block.into()
    }

    /// `key` encrypted under this key as a key-encrypting key: 3DES ECB of each half, the
    /// way a TMK carries a new TPK to a terminal.
    pub fn encrypt_key(&self, key: &TdesKey) -> [u8; TdesKey::BYTES] {
        let mut out = [0u8; TdesKey::BYTES];
        for (out, half) in out.chunks_exact_mut(8).zip(key.bytes.chunks_exact(8)) {
            let mut clear = [0u8; 8];
            clear.copy_from_slice(half);
            out.copy_from_slice(&self.encrypt_block(clear));
            clear.zeroize();
        }
        out
    }

    /// The key that [`TdesKey::encrypt_key`] encrypted under this key.
    pub fn decrypt_key(&self, encrypted: &[u8; TdesKey::BYTES]) -> TdesKey {
        let mut bytes = Zeroizing::new([0; TdesKey::BYTES]);
        for (out, half) in bytes.chunks_exact_mut(8).zip(encrypted.chunks_exact(8)) {
            let mut block = [0u8; 8];
            block.copy_from_slice(half);
            let mut clear = self.decrypt_block(block);
            out.copy_from_slice(&clear);
            clear.zeroize();
        }
        TdesKey::from_bytes(*bytes)
    }
}

impl Drop for TdesKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for TdesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TdesKey([redacted], kcv={})", self.check_value())
    }
}

/// `byte` with its lowest bit set so that it has an odd number of one bits, the DES parity
/// convention.
fn with_odd_parity(byte: u8) -> u8 {
    let high = byte & 0xFE;
    if high.count_ones().is_multiple_of(2) {
        high | 1
    } else {
        high
    }
}

/// A key check value: 3 bytes, written as 6 hex digits. It identifies a key without revealing
/// it, so it may be shown, logged and compared by people.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckValue([u8; 3]);

impl CheckValue {
    /// Hex digits of a check value.
    pub const HEX_DIGITS: usize = 6;

    /// A check value from 6 hex digits, either case.
    pub fn from_hex(text: &str) -> Result<CheckValue, HsmError> {
        let mut bytes = [0u8; 3];
        if hex::decode_into(text, &mut bytes) {
            Ok(CheckValue(bytes))
        } else {
            Err(HsmError::CheckValueHex)
        }
    }

    /// A check value from its first 3 bytes of an encrypted zero block.
    pub(crate) fn from_bytes(bytes: [u8; 3]) -> CheckValue {
        CheckValue(bytes)
    }

    /// The 3 bytes.
    pub fn as_bytes(&self) -> &[u8; 3] {
        &self.0
    }
}

impl fmt::Display for CheckValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for CheckValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckValue({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The well-known test key of payment-HSM documentation and its published check value
    /// (`../shared/notes/dependencies.md`; also what `openssl enc -des-ede-ecb` gives for a
    /// zero block: 08D7B4FB629D0885).
    const TEST_KEY: &str = "0123456789ABCDEFFEDCBA9876543210";

    #[test]
    fn check_value_of_the_well_known_test_key() {
        let key = TdesKey::from_hex(TEST_KEY).unwrap();
        assert_eq!(key.check_value().to_string(), "08D7B4");
        assert_eq!(
            key.encrypt_block([0; 8]),
            [0x08, 0xD7, 0xB4, 0xFB, 0x62, 0x9D, 0x08, 0x85]
        );
    }

    #[test]
    fn hex_round_trips_in_uppercase() {
        let key = TdesKey::from_hex(&TEST_KEY.to_lowercase()).unwrap();
        assert_eq!(key.reveal_hex().as_str(), TEST_KEY);
    }

    #[test]
    fn debug_shows_the_check_value_and_never_the_key() {
        let key = TdesKey::from_hex(TEST_KEY).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "TdesKey([redacted], kcv=08D7B4)");
        assert!(!shown.contains("0123"));
    }

    #[test]
    fn rejects_malformed_hex() {
        for text in [
            "",
            "0123",
            &TEST_KEY[..31],
            &format!("{TEST_KEY}0"),
            "0123456789ABCDEFFEDCBA987654321G",
        ] {
            assert_eq!(
                TdesKey::from_hex(text).unwrap_err(),
                HsmError::KeyHex,
                "{text}"
            );
        }
    }

    #[test]
    fn checked_import_accepts_the_right_check_value_only() {
        assert!(TdesKey::from_hex_checked(TEST_KEY, "08d7b4").is_ok());
        assert_eq!(
            TdesKey::from_hex_checked(TEST_KEY, "08D7B5").unwrap_err(),
            HsmError::CheckValueMismatch
        );
        assert_eq!(
            TdesKey::from_hex_checked(TEST_KEY, "08D7B").unwrap_err(),
            HsmError::CheckValueHex
        );
    }

    #[test]
    fn generated_keys_have_odd_parity_and_differ() {
        let first = TdesKey::generate().unwrap();
        let second = TdesKey::generate().unwrap();
        assert!(
            first
                .as_bytes()
                .iter()
                .all(|byte| byte.count_ones() % 2 == 1)
        );
        assert_ne!(first.as_bytes(), second.as_bytes());
        assert_ne!(first.as_bytes()[..8], first.as_bytes()[8..]);
    }

    #[test]
    fn a_key_encrypted_under_a_kek_decrypts_back() {
        let kek = TdesKey::from_hex(TEST_KEY).unwrap();
        let key = TdesKey::generate().unwrap();
        let encrypted = kek.encrypt_key(&key);
        assert_ne!(&encrypted, key.as_bytes());
        assert_eq!(kek.decrypt_key(&encrypted).as_bytes(), key.as_bytes());
    }

    #[test]
    fn parity_adjustment() {
        assert_eq!(with_odd_parity(0x00), 0x01);
        assert_eq!(with_odd_parity(0x01), 0x01);
        assert_eq!(with_odd_parity(0xFF), 0xFE);
        assert_eq!(with_odd_parity(0x23), 0x23);
    }
}
