//! Key change (host interface §3.1 and §10, DE70 = 101): a new TPK for a terminal, and a new
//! TAK for a terminal that MACs its messages, each sent under its TMK.
//!
//! DE48 of the 0810 is the new TPK under the TMK (32 uppercase hex digits: 3DES ECB of each
//! half) and the TPK's check value (6), 38 characters; for a terminal with a TAK it goes on with
//! the new TAK under the TMK (32) and the TAK's check value (6), 76 characters in all.

use std::fmt;

use crate::{CheckValue, HsmError, TdesKey, hex};

/// Characters of one key in DE48: 32 hex digits of encrypted key, 6 of check value.
pub const KEY_CHANGE_DE48_CHARS: usize = TdesKey::HEX_DIGITS + CheckValue::HEX_DIGITS;

/// Characters of DE48 when the terminal has a TAK: the TPK's part, then the TAK's.
pub const KEY_CHANGE_WITH_TAK_DE48_CHARS: usize = 2 * KEY_CHANGE_DE48_CHARS;

/// New terminal keys and the DE48 text that carries them to the terminal.
pub struct KeyChange {
    /// The new TPK in clear, for the switch to wrap under its master key and store; from then
    /// on the terminal's PIN blocks are read with it.
    pub tpk: TdesKey,
    /// The new TAK in clear, when the terminal MACs its messages; from then on its MACs are
    /// checked with it.
    pub tak: Option<TdesKey>,
    /// DE48 of the 0810 (module docs): 38 characters, or 76 with a TAK.
    pub de48: String,
}

impl KeyChange {
    /// Makes a new random TPK, and a new random TAK when `with_tak`, for the terminal whose
    /// master key is `tmk`.
    pub fn generate(tmk: &TdesKey, with_tak: bool) -> Result<KeyChange, HsmError> {
        let tpk = TdesKey::generate()?;
        let tak = if with_tak {
            Some(TdesKey::generate()?)
        } else {
            None
        };
        let de48 = KeyChange::encode(tmk, &tpk, tak.as_ref());
        Ok(KeyChange { tpk, tak, de48 })
    }

    /// The DE48 text carrying `tpk`, and `tak` after it when given, under `tmk`.
    pub fn encode(tmk: &TdesKey, tpk: &TdesKey, tak: Option<&TdesKey>) -> String {
        let mut de48 = String::with_capacity(KEY_CHANGE_WITH_TAK_DE48_CHARS);
        for key in std::iter::once(tpk).chain(tak) {
            hex::encode_into(&tmk.encrypt_key(key), &mut de48);
            de48.push_str(&key.check_value().to_string());
        }
        de48
    }

    /// The terminal's side: the TPK in a key-change DE48 under `tmk`, and the TAK after it when
    /// DE48 carries one (76 characters), each refused when its check value does not match (a
    /// TMK mismatch or a garbled message). For the load generator and end-to-end tests, which
    /// play the terminal.
    pub fn open(tmk: &TdesKey, de48: &str) -> Result<(TdesKey, Option<TdesKey>), HsmError> {
        match de48.len() {
            KEY_CHANGE_DE48_CHARS => Ok((open_key(tmk, de48)?, None)),
            KEY_CHANGE_WITH_TAK_DE48_CHARS => {
                let (tpk, tak) = de48
                    .split_at_checked(KEY_CHANGE_DE48_CHARS)
                    .ok_or(HsmError::KeyChangeFormat)?;
                Ok((open_key(tmk, tpk)?, Some(open_key(tmk, tak)?)))
            }
            _ => Err(HsmError::KeyChangeFormat),
        }
    }
}

/// One key of DE48: 32 hex digits of the key under `tmk`, then its 6-hex-digit check value.
fn open_key(tmk: &TdesKey, part: &str) -> Result<TdesKey, HsmError> {
    let (encrypted, check_value) = part
        .split_at_checked(TdesKey::HEX_DIGITS)
        .filter(|(_, check_value)| check_value.len() == CheckValue::HEX_DIGITS)
        .ok_or(HsmError::KeyChangeFormat)?;
    let mut bytes = [0u8; TdesKey::BYTES];
    if !hex::decode_into(encrypted, &mut bytes) {
        return Err(HsmError::KeyChangeFormat);
    }
    let expected = CheckValue::from_hex(check_value).map_err(|_| HsmError::KeyChangeFormat)?;
    let key = tmk.decrypt_key(&bytes);
    if key.check_value() == expected {
        Ok(key)
    } else {
        Err(HsmError::CheckValueMismatch)
    }
}

impl fmt::Debug for KeyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyChange")
            .field("tpk", &self.tpk)
            .field("tak", &self.tak)
            .field("de48", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TMK: &str = "0123456789ABCDEFFEDCBA9876543210";

    #[test]
    fn de48_is_the_tpk_under_the_tmk_and_its_check_value() {
        let tmk = TdesKey::from_hex(TMK).unwrap();
        let change = KeyChange::generate(&tmk, false).unwrap();
        assert_eq!(change.de48.len(), KEY_CHANGE_DE48_CHARS);
        assert_eq!(KEY_CHANGE_DE48_CHARS, 38);
        assert!(
            change
                .de48
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
        );
        assert!(change.de48.ends_with(&change.tpk.check_value().to_string()));
        let (opened, tak) = KeyChange::open(&tmk, &change.de48).unwrap();
        assert_eq!(opened.reveal_hex(), change.tpk.reveal_hex());
        assert!(tak.is_none() && change.tak.is_none());
    }

    /// A fixed TPK under the test TMK. Not a published vector: computed independently with
    /// OpenSSL, each half as `printf 1111111111111111 | xxd -r -p | openssl enc -des-ede-ecb
    /// -nopad -K 0123456789ABCDEFFEDCBA9876543210 | xxd -p -u` (9B3A7B883A100F73, then
    /// B4ABA2BB791C50E7 for 2222222222222222), and the check value as a zero block under
    /// 11111111111111112222222222222222 (D2B91CC5A758BB08).
    #[test]
    fn encodes_a_known_key() {
        let tmk = TdesKey::from_hex(TMK).unwrap();
        let tpk = TdesKey::from_hex("11111111111111112222222222222222").unwrap();
        let de48 = KeyChange::encode(&tmk, &tpk, None);
        assert_eq!(de48, "9B3A7B883A100F73B4ABA2BB791C50E7D2B91C");
        assert_eq!(
            KeyChange::open(&tmk, &de48).unwrap().0.reveal_hex(),
            tpk.reveal_hex()
        );
    }

    /// The same TPK, then a fixed TAK: 3333333333333333 under the TMK is 5ADC39F46164960E and
    /// 4444444444444444 is 17B9F1B1A1B2D33C, and the TAK's check value is E18DE2 (computed
    /// independently with pycryptodome `DES3` in ECB mode).
    #[test]
    fn encodes_a_known_tpk_and_tak() {
        let tmk = TdesKey::from_hex(TMK).unwrap();
        let tpk = TdesKey::from_hex("11111111111111112222222222222222").unwrap();
        let tak = TdesKey::from_hex("33333333333333334444444444444444").unwrap();
        let de48 = KeyChange::encode(&tmk, &tpk, Some(&tak));
        assert_eq!(
            de48,
            "9B3A7B883A100F73B4ABA2BB791C50E7D2B91C5ADC39F46164960E17B9F1B1A1B2D33CE18DE2"
        );
        assert_eq!(de48.len(), KEY_CHANGE_WITH_TAK_DE48_CHARS);
        let (opened_tpk, opened_tak) = KeyChange::open(&tmk, &de48).unwrap();
        assert_eq!(opened_tpk.reveal_hex(), tpk.reveal_hex());
        assert_eq!(opened_tak.unwrap().reveal_hex(), tak.reveal_hex());
        let change = KeyChange::generate(&tmk, true).unwrap();
        assert_eq!(change.de48.len(), 76);
        let (_, tak) = KeyChange::open(&tmk, &change.de48).unwrap();
        assert_eq!(tak.unwrap().reveal_hex(), change.tak.unwrap().reveal_hex());
        // A garbled TAK half is refused like a garbled TPK.
        let garbled = format!(
            "{}{}",
            &de48[..75],
            if de48.ends_with('0') { "1" } else { "0" }
        );
        assert_eq!(
            KeyChange::open(&tmk, &garbled).unwrap_err(),
            HsmError::CheckValueMismatch
        );
    }

    #[test]
    fn a_wrong_tmk_or_a_garbled_answer_is_refused() {
        let tmk = TdesKey::from_hex(TMK).unwrap();
        let change = KeyChange::generate(&tmk, false).unwrap();
        let other_tmk = TdesKey::from_hex("FEDCBA98765432100123456789ABCDEF").unwrap();
        assert_eq!(
            KeyChange::open(&other_tmk, &change.de48).unwrap_err(),
            HsmError::CheckValueMismatch
        );
        for garbled in [
            "",
            &change.de48[..37],
            &format!("{}0", change.de48),
            &change.de48.replacen(|_| true, "G", 1),
        ] {
            assert_eq!(
                KeyChange::open(&tmk, garbled).unwrap_err(),
                HsmError::KeyChangeFormat,
                "{garbled}"
            );
        }
        let shown = format!("{change:?}");
        assert!(!shown.contains(&change.de48) && shown.contains("redacted"));
    }
}
