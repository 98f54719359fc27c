//! Key change (host interface §3.1, DE70 = 101): a new TPK for a terminal, sent under its TMK.

use std::fmt;

use crate::{CheckValue, HsmError, TdesKey, hex};

/// Characters of the DE48 answer: 32 hex digits of encrypted key, 6 of check value.
pub const KEY_CHANGE_DE48_CHARS: usize = TdesKey::HEX_DIGITS + CheckValue::HEX_DIGITS;

/// A new TPK and the DE48 text that carries it to the terminal.
pub struct KeyChange {
    /// The new TPK in clear, for the switch to wrap under its master key and store; from then
    /// on the terminal's PIN blocks are read with it.
    pub tpk: TdesKey,
    /// DE48 of the 0810: the new TPK encrypted under the TMK (3DES ECB of each half) as 32
    /// uppercase hex digits, followed by the TPK's 6-hex-digit check value; 38 characters.
    pub de48: String,
}

impl KeyChange {
    /// Makes a new random TPK for the terminal whose master key is `tmk`.
    pub fn generate(tmk: &TdesKey) -> Result<KeyChange, HsmError> {
        let tpk = TdesKey::generate()?;
        let de48 = KeyChange::encode(tmk, &tpk);
        Ok(KeyChange { tpk, de48 })
    }

    /// The DE48 text carrying `tpk` under `tmk`.
    pub fn encode(tmk: &TdesKey, tpk: &TdesKey) -> String {
        let mut de48 = String::with_capacity(KEY_CHANGE_DE48_CHARS);
        hex::encode_into(&tmk.encrypt_key(tpk), &mut de48);
        de48.push_str(&tpk.check_value().to_string());
        de48
    }

    /// The terminal's side: the TPK in a key-change DE48 under `tmk`, refused when its check
    /// value does not match (a TMK mismatch or a garbled message). For the load generator and
    /// end-to-end tests, which play the terminal.
    pub fn open(tmk: &TdesKey, de48: &str) -> Result<TdesKey, HsmError> {
        let (encrypted, check_value) = de48
            .split_at_checked(TdesKey::HEX_DIGITS)
            .filter(|(_, check_value)| check_value.len() == CheckValue::HEX_DIGITS)
            .ok_or(HsmError::KeyChangeFormat)?;
        let mut bytes = [0u8; TdesKey::BYTES];
        if !hex::decode_into(encrypted, &mut bytes) {
            return Err(HsmError::KeyChangeFormat);
        }
        let expected = CheckValue::from_hex(check_value).map_err(|_| HsmError::KeyChangeFormat)?;
        let tpk = tmk.decrypt_key(&bytes);
        if tpk.check_value() == expected {
            Ok(tpk)
        } else {
            Err(HsmError::CheckValueMismatch)
        }
    }
}

impl fmt::Debug for KeyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyChange")
            .field("tpk", &self.tpk)
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
        let change = KeyChange::generate(&tmk).unwrap();
        assert_eq!(change.de48.len(), KEY_CHANGE_DE48_CHARS);
        assert_eq!(KEY_CHANGE_DE48_CHARS, 38);
        assert!(
            change
                .de48
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
        );
        assert!(change.de48.ends_with(&change.tpk.check_value().to_string()));
        let opened = KeyChange::open(&tmk, &change.de48).unwrap();
        assert_eq!(opened.reveal_hex(), change.tpk.reveal_hex());
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
        let de48 = KeyChange::encode(&tmk, &tpk);
        assert_eq!(de48, "9B3A7B883A100F73B4ABA2BB791C50E7D2B91C");
        assert_eq!(
            KeyChange::open(&tmk, &de48).unwrap().reveal_hex(),
            tpk.reveal_hex()
        );
    }

    #[test]
    fn a_wrong_tmk_or_a_garbled_answer_is_refused() {
        let tmk = TdesKey::from_hex(TMK).unwrap();
        let change = KeyChange::generate(&tmk).unwrap();
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
