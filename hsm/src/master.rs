//! Keys at rest: terminal keys and the PVK wrapped under the switch's local master key with
//! AES-256-GCM (host interface §8, "keys at rest are encrypted under the switch's local master
//! key").
//!
//! A wrapped key is `version (1) | usage (1) | nonce (12) | encrypted key (16) | tag (16)`, 46
//! bytes. The version and usage bytes are authenticated as associated data, so a stored TPK
//! cannot be passed off as a PVK, and a later format can sit beside this one.

use std::fmt;

use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use aes_gcm::aes::Aes256;
use aes_gcm::aes::cipher::{Block, BlockCipherEncrypt};
use aes_gcm::{Aes256Gcm, KeyInit};
use zeroize::{Zeroize, Zeroizing};

use crate::{CheckValue, HsmError, TdesKey, hex};

/// The format version this crate writes and reads.
const FORMAT_VERSION: u8 = 1;
/// Bytes of the AES-GCM nonce: 96 bits, the size GCM is defined for. Random nonces of this
/// size stay safe for far more than the few thousand keys a city program wraps.
const NONCE_BYTES: usize = 12;
/// Bytes of the AES-GCM tag.
const TAG_BYTES: usize = 16;
/// Bytes of the authenticated header (version and usage).
const HEADER_BYTES: usize = 2;

/// What a stored key is for. Bound into the wrapped form, so it cannot be swapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyUsage {
    /// Terminal master key: encrypts new TPKs for a terminal (key change, DE70 = 101).
    Tmk,
    /// Terminal PIN key: encrypts the PIN blocks a terminal sends in DE52.
    Tpk,
    /// PIN verification key: makes and checks PVVs.
    Pvk,
    /// Terminal authentication key: MACs a terminal's requests and the switch's answers
    /// (host interface §10).
    Tak,
}

impl KeyUsage {
    /// The byte stored in the wrapped form.
    fn to_byte(self) -> u8 {
        match self {
            KeyUsage::Tmk => 1,
            KeyUsage::Tpk => 2,
            KeyUsage::Pvk => 3,
            KeyUsage::Tak => 4,
        }
    }

    /// The usage a stored byte names.
    fn from_byte(byte: u8) -> Option<KeyUsage> {
        match byte {
            1 => Some(KeyUsage::Tmk),
            2 => Some(KeyUsage::Tpk),
            3 => Some(KeyUsage::Pvk),
            4 => Some(KeyUsage::Tak),
            _ => None,
        }
    }
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyUsage::Tmk => "TMK",
            KeyUsage::Tpk => "TPK",
            KeyUsage::Pvk => "PVK",
            KeyUsage::Tak => "TAK",
        })
    }
}

/// A 3DES key encrypted under the master key, as it is stored. Safe to store and move around;
/// only the master key turns it back into a key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WrappedKey {
    /// The usage named by the header byte, read once when the key is made or parsed.
    usage: KeyUsage,
    /// The stored form: header, nonce, encrypted key, tag.
    bytes: [u8; WrappedKey::BYTES],
}

impl WrappedKey {
    /// Bytes of a wrapped key.
    pub const BYTES: usize = HEADER_BYTES + NONCE_BYTES + TdesKey::BYTES + TAG_BYTES;
    /// Hex digits of a wrapped key.
    pub const HEX_DIGITS: usize = 2 * WrappedKey::BYTES;

    /// A wrapped key as read from the store. Checks the length, version and usage only;
    /// whether it is authentic shows when it is unwrapped.
    pub fn from_slice(bytes: &[u8]) -> Result<WrappedKey, HsmError> {
        let bytes: [u8; WrappedKey::BYTES] =
            bytes.try_into().map_err(|_| HsmError::WrappedKeyFormat)?;
        let [version, usage, ..] = bytes;
        match KeyUsage::from_byte(usage) {
            Some(usage) if version == FORMAT_VERSION => Ok(WrappedKey { usage, bytes }),
            _ => Err(HsmError::WrappedKeyFormat),
        }
    }

    /// A wrapped key from its hex form (92 digits, either case).
    pub fn from_hex(text: &str) -> Result<WrappedKey, HsmError> {
        let mut bytes = [0u8; WrappedKey::BYTES];
        if !hex::decode_into(text, &mut bytes) {
            return Err(HsmError::WrappedKeyFormat);
        }
        WrappedKey::from_slice(&bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes to store, as uppercase hex, for stores that keep text.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.bytes)
    }

    /// What the key is for, as its header says; the header is authenticated when the key is
    /// unwrapped.
    pub fn usage(&self) -> KeyUsage {
        self.usage
    }

    /// The header, nonce, encrypted key and tag.
    fn parts(&self) -> (&[u8], &[u8], &[u8], &[u8]) {
        let (header, rest) = self.bytes.split_at(HEADER_BYTES);
        let (nonce, rest) = rest.split_at(NONCE_BYTES);
        let (body, tag) = rest.split_at(TdesKey::BYTES);
        (header, nonce, body, tag)
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedKey({}, [encrypted])", self.usage())
    }
}

/// The switch's local master key: 32 bytes for AES-256-GCM. The binary reads it from the
/// environment or a file (or makes one with [`MasterKey::generate`] on first start); this crate
/// only takes the bytes. Zeroized when dropped; `Debug` shows only its check value.
pub struct MasterKey {
    /// The AES-256 key.
    bytes: [u8; MasterKey::BYTES],
}

impl MasterKey {
    /// Bytes of the master key.
    pub const BYTES: usize = 32;
    /// Hex digits of the master key.
    pub const HEX_DIGITS: usize = 64;

    /// A master key from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<MasterKey, HsmError> {
        let mut key = MasterKey {
            bytes: [0; MasterKey::BYTES],
        };
        if bytes.len() != MasterKey::BYTES {
            return Err(HsmError::MasterKeyLength);
        }
        key.bytes.copy_from_slice(bytes);
        Ok(key)
    }

    /// A master key from 64 hex digits, either case.
    pub fn from_hex(text: &str) -> Result<MasterKey, HsmError> {
        let mut key = MasterKey {
            bytes: [0; MasterKey::BYTES],
        };
        if hex::decode_into(text, &mut key.bytes) {
            Ok(key)
        } else {
            Err(HsmError::MasterKeyLength)
        }
    }

    /// A new random master key.
    pub fn generate() -> Result<MasterKey, HsmError> {
        let mut key = MasterKey {
            bytes: [0; MasterKey::BYTES],
        };
        getrandom::fill(&mut key.bytes)?;
        Ok(key)
    }

    /// The key bytes, for the binary to save a key it generated. Nothing else needs them.
    pub fn reveal_bytes(&self) -> &[u8; MasterKey::BYTES] {
        &self.bytes
    }

    /// The key as 64 uppercase hex digits, zeroized when dropped, for the same purpose.
    pub fn reveal_hex(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::with_capacity(MasterKey::HEX_DIGITS));
        hex::encode_into(&self.bytes, &mut text);
        text
    }

    /// A check value for the master key: the first 3 bytes of a zero block encrypted with
    /// AES-256. Lets operators confirm that every switch node holds the same master key
    /// without showing it.
    pub fn check_value(&self) -> CheckValue {
        let mut key = aes_gcm::Key::<Aes256>::from(self.bytes);
        let cipher = Aes256::new(&key);
        key.zeroize();
        let mut block = Block::<Aes256>::default();
        cipher.encrypt_block(&mut block);
        CheckValue::from_bytes([block[0], block[1], block[2]])
    }

    /// `key` encrypted for storage as a key for `usage`, under a fresh random nonce.
    pub fn wrap(&self, usage: KeyUsage, key: &TdesKey) -> Result<WrappedKey, HsmError> {
        let mut out = [0u8; WrappedKey::BYTES];
        let (header, rest) = out.split_at_mut(HEADER_BYTES);
        let (nonce, rest) = rest.split_at_mut(NONCE_BYTES);
        let (body, tag_out) = rest.split_at_mut(TdesKey::BYTES);
        header.copy_from_slice(&[FORMAT_VERSION, usage.to_byte()]);
        getrandom::fill(nonce)?;
        body.copy_from_slice(key.as_bytes());
        let nonce =
            Nonce::<Aes256Gcm>::try_from(&*nonce).map_err(|_| HsmError::WrappedKeyFormat)?;
        match self
            .cipher()
            .encrypt_inout_detached(&nonce, header, body.into())
        {
            Ok(tag) => tag_out.copy_from_slice(&tag),
            Err(_) => {
                // Only reachable for messages far longer than 16 bytes; never leave the clear
                // key in the buffer on the way out.
                body.zeroize();
                return Err(HsmError::WrappedKeyFormat);
            }
        }
        Ok(WrappedKey { usage, bytes: out })
    }

    /// The key in `wrapped`, which must have been wrapped for `usage` under this master key.
    /// Fails on any alteration of the stored bytes and on a key from another master key.
    pub fn unwrap(&self, usage: KeyUsage, wrapped: &WrappedKey) -> Result<TdesKey, HsmError> {
        if wrapped.usage() != usage {
            return Err(HsmError::KeyUsage {
                expected: usage,
                found: wrapped.usage(),
            });
        }
        let (header, nonce, body, tag) = wrapped.parts();
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| HsmError::WrappedKeyFormat)?;
        let tag = Tag::<Aes256Gcm>::try_from(tag).map_err(|_| HsmError::WrappedKeyFormat)?;
        let mut clear = Zeroizing::new([0u8; TdesKey::BYTES]);
        clear.copy_from_slice(body);
        self.cipher()
            .decrypt_inout_detached(&nonce, header, clear.as_mut_slice().into(), &tag)
            .map_err(|_| HsmError::Unwrap)?;
        Ok(TdesKey::from_bytes(*clear))
    }

    /// The AES-256-GCM cipher for this key.
    fn cipher(&self) -> Aes256Gcm {
        let mut key = aes_gcm::Key::<Aes256Gcm>::from(self.bytes);
        let cipher = Aes256Gcm::new(&key);
        key.zeroize();
        cipher
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey([redacted], kcv={})", self.check_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::from_hex(&"0F".repeat(32)).unwrap()
    }

    fn test_key() -> TdesKey {
        TdesKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap()
    }

    #[test]
    fn wrap_then_unwrap_gives_the_key_back() {
        let master = master();
        let wrapped = master.wrap(KeyUsage::Tpk, &test_key()).unwrap();
        assert_eq!(wrapped.usage(), KeyUsage::Tpk);
        let key = master.unwrap(KeyUsage::Tpk, &wrapped).unwrap();
        assert_eq!(key.check_value().to_string(), "08D7B4");
    }

    #[test]
    fn stored_forms_round_trip() {
        let wrapped = master().wrap(KeyUsage::Pvk, &test_key()).unwrap();
        assert_eq!(wrapped.as_bytes().len(), 46);
        assert_eq!(wrapped.to_hex().len(), WrappedKey::HEX_DIGITS);
        assert_eq!(
            WrappedKey::from_slice(wrapped.as_bytes()),
            Ok(wrapped.clone())
        );
        assert_eq!(
            WrappedKey::from_hex(&wrapped.to_hex().to_lowercase()),
            Ok(wrapped.clone())
        );
        assert_eq!(format!("{wrapped:?}"), "WrappedKey(PVK, [encrypted])");
    }

    #[test]
    fn wrapping_twice_uses_fresh_nonces() {
        let master = master();
        let first = master.wrap(KeyUsage::Tmk, &test_key()).unwrap();
        let second = master.wrap(KeyUsage::Tmk, &test_key()).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn every_altered_byte_fails_to_unwrap() {
        let master = master();
        let wrapped = master.wrap(KeyUsage::Tpk, &test_key()).unwrap();
        for index in 0..WrappedKey::BYTES {
            let mut bytes = wrapped.as_bytes().to_vec();
            bytes[index] ^= 0x01;
            let outcome = WrappedKey::from_slice(&bytes)
                .and_then(|altered| master.unwrap(KeyUsage::Tpk, &altered));
            assert!(outcome.is_err(), "byte {index}");
        }
    }

    #[test]
    fn a_key_wrapped_as_one_usage_is_refused_as_another() {
        let master = master();
        let wrapped = master.wrap(KeyUsage::Tpk, &test_key()).unwrap();
        assert_eq!(
            master.unwrap(KeyUsage::Pvk, &wrapped).unwrap_err(),
            HsmError::KeyUsage {
                expected: KeyUsage::Pvk,
                found: KeyUsage::Tpk
            }
        );
        // Rewriting the usage byte does not help: it is authenticated.
        let mut bytes = wrapped.as_bytes().to_vec();
        bytes[1] = KeyUsage::Pvk.to_byte();
        let relabelled = WrappedKey::from_slice(&bytes).unwrap();
        assert_eq!(
            master.unwrap(KeyUsage::Pvk, &relabelled).unwrap_err(),
            HsmError::Unwrap
        );
    }

    #[test]
    fn another_master_key_cannot_unwrap() {
        let wrapped = master().wrap(KeyUsage::Tmk, &test_key()).unwrap();
        let other = MasterKey::generate().unwrap();
        assert_eq!(
            other.unwrap(KeyUsage::Tmk, &wrapped).unwrap_err(),
            HsmError::Unwrap
        );
    }

    #[test]
    fn malformed_stored_forms_are_refused() {
        let wrapped = master().wrap(KeyUsage::Tmk, &test_key()).unwrap();
        let bytes = wrapped.as_bytes();
        assert_eq!(
            WrappedKey::from_slice(&bytes[..45]),
            Err(HsmError::WrappedKeyFormat)
        );
        assert_eq!(
            WrappedKey::from_slice(&[bytes, &[0]].concat()),
            Err(HsmError::WrappedKeyFormat)
        );
        let mut other_version = bytes.to_vec();
        other_version[0] = 2;
        assert_eq!(
            WrappedKey::from_slice(&other_version),
            Err(HsmError::WrappedKeyFormat)
        );
        let mut unknown_usage = bytes.to_vec();
        unknown_usage[1] = 0;
        assert_eq!(
            WrappedKey::from_slice(&unknown_usage),
            Err(HsmError::WrappedKeyFormat)
        );
        assert_eq!(WrappedKey::from_hex("00"), Err(HsmError::WrappedKeyFormat));
        assert_eq!(WrappedKey::from_slice(&[]), Err(HsmError::WrappedKeyFormat));
    }

    #[test]
    fn master_key_forms() {
        let bytes = [0x5Au8; 32];
        let from_bytes = MasterKey::from_slice(&bytes).unwrap();
        let from_hex = MasterKey::from_hex(&"5a".repeat(32)).unwrap();
        assert_eq!(from_bytes.reveal_bytes(), from_hex.reveal_bytes());
        assert_eq!(from_hex.reveal_hex().as_str(), "5A".repeat(32));
        assert_eq!(
            MasterKey::from_slice(&bytes[..31]).unwrap_err(),
            HsmError::MasterKeyLength
        );
        assert_eq!(
            MasterKey::from_hex(&"5A".repeat(31)).unwrap_err(),
            HsmError::MasterKeyLength
        );
        assert_eq!(
            MasterKey::from_hex(&"5G".repeat(32)).unwrap_err(),
            HsmError::MasterKeyLength
        );
        let shown = format!("{from_bytes:?}");
        assert!(shown.starts_with("MasterKey([redacted], kcv=") && !shown.contains("5A5A"));
    }

    /// AES-256 of a zero block under the all-zero key is DC95C078A2408989AD48A21492842087
    /// (the all-zero known answer, confirmed with `openssl enc -aes-256-ecb`), so the check value
    /// of the all-zero master key is DC95C0.
    #[test]
    fn master_check_value() {
        let zero = MasterKey::from_slice(&[0; 32]).unwrap();
        assert_eq!(zero.check_value().to_string(), "DC95C0");
    }
}
