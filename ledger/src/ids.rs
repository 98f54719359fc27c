//! Identifiers and business keys. Every transfer's id is derived from its business key, so a
//! retry of the same business event always lands on the same id, on any node, after any restart.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// An identifier that was refused because it does not have the documented shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidId {
    /// Which kind of identifier.
    pub kind: &'static str,
    /// What is wrong with it (never the value itself: it may be card data).
    pub reason: &'static str,
}

/// Longest program code. Codes go into Redis field names and script arguments, so they are
/// short and drawn from a separator-free alphabet.
pub const PROGRAM_CODE_BYTES_MAX: usize = 16;

fn check(
    kind: &'static str,
    value: &str,
    len_min: usize,
    len_max: usize,
    allowed: fn(u8) -> bool,
) -> Result<(), InvalidId> {
    if value.len() < len_min || value.len() > len_max {
        return Err(InvalidId {
            kind,
            reason: "wrong length",
        });
    }
    if !value.bytes().all(allowed) {
        return Err(InvalidId {
            kind,
            reason: "character outside the allowed set",
        });
    }
    Ok(())
}

fn code_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

fn ans_char(b: u8) -> bool {
    (b' '..=b'~').contains(&b)
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $min:expr, $max:expr, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks the shape and wraps the value.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                check($kind, &value, $min, $max, $allowed)?;
                Ok($name(value))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, InvalidId> {
                $name::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

string_id!(
    /// A program's code (e.g. `SSN2025`): uppercase letters, digits, `_`, `-`.
    ProgramCode, "program code", 1, PROGRAM_CODE_BYTES_MAX, code_char
);
string_id!(
    /// An E-Warong's merchant id as in DE42 (15 printable characters).
    MerchantId, "merchant id", 15, 15, ans_char
);
string_id!(
    /// A terminal id as in DE41 (8 printable characters).
    TerminalId, "terminal id", 8, 8, ans_char
);
string_id!(
    /// A retrieval reference number as in DE37 (12 alphanumerics), assigned by the switch.
    Rrn, "RRN", 12, 12, |b: u8| b.is_ascii_alphanumeric()
);
string_id!(
    /// An authorization id as in DE38 (6 alphanumerics), assigned by the switch.
    AuthorizationId, "authorization id", 6, 6, |b: u8| b.is_ascii_alphanumeric()
);
string_id!(
    /// A STAN as in DE11 (6 digits).
    Stan, "STAN", 6, 6, |b: u8| b.is_ascii_digit()
);
string_id!(
    /// A transmission date and time as in DE7 (`MMDDhhmmss`, 10 digits, UTC).
    TransmissionTime, "transmission time", 10, 10, |b: u8| b.is_ascii_digit()
);

impl TransmissionTime {
    /// DE7 (`MMDDhhmmss`, UTC) of an instant in UTC seconds: what a terminal sends at that
    /// instant (`window::transmitted_at` reads it back).
    pub fn of_unix_seconds(unix_seconds: i64) -> TransmissionTime {
        let day = crate::day::Day(i32::try_from(unix_seconds.div_euclid(86_400)).unwrap_or(0));
        let (_, month, dom) = day.ymd();
        let second = unix_seconds.rem_euclid(86_400);
        TransmissionTime(format!(
            "{month:02}{dom:02}{:02}{:02}{:02}",
            second / 3600,
            second / 60 % 60,
            second % 60
        ))
    }
}

/// A card's internal id (not its PAN): stable across PIN resets, new per replacement card.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct CardId(pub u64);

impl fmt::Display for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardId({})", self.0)
    }
}

/// The business key of a purchase (and of its reversal's original): DE41 + DE11 + DE7.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct PurchaseKey {
    /// DE41 of the 0200.
    pub terminal: TerminalId,
    /// DE11 of the 0200.
    pub stan: Stan,
    /// DE7 of the 0200.
    pub transmitted: TransmissionTime,
}

/// A transfer's id: the first 16 bytes of SHA-256 over its kind and business key. 128 bits make
/// an accidental collision among the ledger's lifetime of transfers vanishingly unlikely while
/// keeping index entries small.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TransferId(pub [u8; 16]);

impl TransferId {
    fn derive(kind: &str, parts: &[&str]) -> TransferId {
        let mut hasher = Sha256::new();
        hasher.update(kind.as_bytes());
        for part in parts {
            // A separator that cannot occur in any part keeps ("ab","c") apart from ("a","bc").
            hasher.update([0u8]);
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        TransferId(id)
    }

    /// The id of the purchase with this key.
    pub fn purchase(key: &PurchaseKey) -> TransferId {
        Self::derive(
            "purchase",
            &[
                key.terminal.as_str(),
                key.stan.as_str(),
                key.transmitted.as_str(),
            ],
        )
    }

    /// The id of the (single) reversal of the purchase with this key: repeats of a reversal
    /// (0401, 0421) all land on it, which is what makes reversal exactly-once.
    pub fn reversal(original: &PurchaseKey) -> TransferId {
        Self::derive(
            "reversal",
            &[
                original.terminal.as_str(),
                original.stan.as_str(),
                original.transmitted.as_str(),
            ],
        )
    }

    /// The id of a funding of a program, idempotent on the bank's reference.
    pub fn funding(reference: &str) -> TransferId {
        Self::derive("funding", &[reference])
    }

    /// The id of a program's disbursement for a period.
    pub fn disbursement(program: &ProgramCode, period: &str) -> TransferId {
        Self::derive("disbursement", &[program.as_str(), period])
    }

    /// The id of moving a card's pockets to its replacement: a card is replaced at most once.
    pub fn replacement(old_card: CardId) -> TransferId {
        Self::derive("replacement", &[&old_card.0.to_string()])
    }

    /// The id of closing a terminal's batch with the given switch-side batch sequence number.
    pub fn batch_close(terminal: &TerminalId, batch_sequence: u64) -> TransferId {
        Self::derive(
            "batch-close",
            &[terminal.as_str(), &batch_sequence.to_string()],
        )
    }

    /// The id of a business day's settlement: one per WITA date.
    pub fn settlement(business_date: crate::day::Day) -> TransferId {
        Self::derive("settlement", &[&business_date.to_string()])
    }

    /// The id of a settlement cut-over journaled in force from an instant.
    pub fn cutover(from_unix_seconds: i64, seconds: u32) -> TransferId {
        Self::derive(
            "cutover",
            &[&from_unix_seconds.to_string(), &seconds.to_string()],
        )
    }

    /// The id of the bank's answer (paid or rejected) to one settlement line.
    pub fn payout(business_date: crate::day::Day, merchant: &MerchantId) -> TransferId {
        Self::derive("payout", &[&business_date.to_string(), merchant.as_str()])
    }

    /// The id of a program's year-end close as of a WITA day: one per (program, day).
    pub fn program_close(program: &ProgramCode, as_of: crate::day::Day) -> TransferId {
        Self::derive("program-close", &[program.as_str(), &as_of.to_string()])
    }

    /// The id of a revocation: one per (program, reference), the reference naming the decree
    /// and the person or determination it revokes.
    pub fn revocation(program: &ProgramCode, reference: &str) -> TransferId {
        Self::derive("revocation", &[program.as_str(), reference])
    }

    /// Lowercase hex, the form used in Redis field names and reports.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransferId({})", self.to_hex())
    }
}

/// SHA-256 over a request's content (everything but the business key and the values the switch
/// assigns per attempt). Same key and same fingerprint is a retry; same key and another
/// fingerprint is a conflict.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprints a value through its canonical postcard encoding.
    pub fn of<T: Serialize>(value: &T) -> Fingerprint {
        // postcard cannot fail on the plain structs fingerprinted here (no maps with non-string
        // keys, no unsized sequences), so a failure is a programming error. Off the
        // authorization path (the switch writes a purchase's encoding itself, `of_encoded`).
        let encoded = postcard::to_stdvec(value).expect("fingerprinted values are plain data");
        Fingerprint::of_encoded(&encoded)
    }

    /// The fingerprint of a value whose postcard encoding is `encoded`: for callers that
    /// write that encoding themselves to avoid building the value (the switch's purchase
    /// content); `Fingerprint::of(v) == Fingerprint::of_encoded(&postcard::to_stdvec(v)?)`.
    pub fn of_encoded(encoded: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(encoded).into())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", hex(&self.0[..8]))
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_the_sha256_of_the_values_postcard_encoding() {
        // Fingerprints are journaled and compared with fresh ones after a restart, so how
        // they are computed may change but what they are may not. Pinned: the SHA-256 of the
        // postcard bytes of a purchase's content with a basket, and of a bare string.
        let basket = vec![(*b"01", 2u32, 20_000_000u64), (*b"07", 1, 15_500)];
        let content = (
            "6048720000000019",
            35_015_500u64,
            "000000000000042",
            Some(&basket),
        );
        for (computed, bytes) in [
            (
                Fingerprint::of(&content),
                postcard::to_stdvec(&content).unwrap(),
            ),
            (
                Fingerprint::of(&"wrong pin attempt"),
                postcard::to_stdvec(&"wrong pin attempt").unwrap(),
            ),
        ] {
            assert_eq!(computed.0, <[u8; 32]>::from(Sha256::digest(&bytes)));
            assert_eq!(computed, Fingerprint::of_encoded(&bytes));
        }
        assert_eq!(
            format!("{:?}", Fingerprint::of(&"wrong pin attempt")),
            format!(
                "{:?}",
                Fingerprint(Sha256::digest(b"\x11wrong pin attempt").into())
            )
        );
    }

    #[test]
    fn ids_are_derived_from_the_business_key_only() {
        let key = PurchaseKey {
            terminal: TerminalId::new("T0000001").unwrap(),
            stan: Stan::new("000001").unwrap(),
            transmitted: TransmissionTime::new("1129120000").unwrap(),
        };
        assert_eq!(
            TransferId::purchase(&key),
            TransferId::purchase(&key.clone())
        );
        assert_ne!(TransferId::purchase(&key), TransferId::reversal(&key));
        let mut other = key.clone();
        other.stan = Stan::new("000002").unwrap();
        assert_ne!(TransferId::purchase(&key), TransferId::purchase(&other));
    }

    #[test]
    fn shapes_are_checked() {
        assert!(ProgramCode::new("SSN2025").is_ok());
        assert!(ProgramCode::new("ssn").is_err());
        assert!(ProgramCode::new("A:B").is_err());
        assert!(TerminalId::new("T1").is_err());
        assert!(Stan::new("00000a").is_err());
    }
}
