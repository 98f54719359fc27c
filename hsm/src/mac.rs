//! Message authentication (host interface §10): ISO/IEC 9797-1 MAC algorithm 3, the ANSI X9.19
//! "retail MAC", with padding method 1, under a double-length TAK.
//!
//! The data is padded with zero bytes to a multiple of 8 (nothing is added when it already is
//! one; empty data is one zero block), chained with single DES under K1 in CBC mode from a zero
//! IV, and the last chained block is then decrypted under K2 and encrypted under K1 again. That
//! last step is 3DES EDE (K1 K2 K1) of the last block fed into the chain, which is how it is
//! computed here. The MAC is the whole 8-byte result, as jPOS's `generateCBC_MAC` with the
//! BouncyCastle `ISO9797ALG3MAC` algorithm gives it.

use des::Des;
use des::cipher::{Block, BlockCipherEncrypt, KeyInit};
use zeroize::Zeroize;

use crate::TdesKey;

/// Bytes of a MAC (DE64 and DE128 are 8 binary bytes).
pub const MAC_BYTES: usize = 8;

/// The ISO 9797-1 algorithm 3 MAC (padding method 1) of `data` under `key`.
pub fn retail_mac(key: &TdesKey, data: &[u8]) -> [u8; MAC_BYTES] {
    let mut k1 = [0u8; 8];
    k1.copy_from_slice(&key.as_bytes()[..8]);
    let single = Des::new(&k1.into());
    k1.zeroize();

    let mut chained = [0u8; 8];
    let mut blocks = data.chunks(8).peekable();
    if blocks.peek().is_none() {
        // Padding method 1 turns empty data into one zero block.
        return key.encrypt_block(chained);
    }
    while let Some(chunk) = blocks.next() {
        // Padding method 1: a short last block is filled with zero bytes.
        for (slot, byte) in chained.iter_mut().zip(chunk) {
            *slot ^= byte;
        }
        if blocks.peek().is_none() {
            chained = key.encrypt_block(chained);
        } else {
            let mut block = Block::<Des>::from(chained);
            single.encrypt_block(&mut block);
            chained = block.into();
        }
    }
    chained
}

/// Whether `mac` is the MAC of `data` under `key`, compared in time that does not depend on
/// where the two differ (a wrong MAC tells a forger nothing about the right one).
pub fn verify_retail_mac(key: &TdesKey, data: &[u8], mac: &[u8; MAC_BYTES]) -> bool {
    let right = retail_mac(key, data);
    right
        .iter()
        .zip(mac)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    fn mac_hex(key: &str, data: &[u8]) -> String {
        hex::encode(&retail_mac(&TdesKey::from_hex(key).unwrap(), data))
    }

    /// BouncyCastle's published `ISO9797Alg3MacTest` vector (16 bytes: no padding).
    #[test]
    fn the_bouncycastle_vector() {
        assert_eq!(
            mac_hex("7CA110454A1A6E570131D9619DC1376E", b"Hello World !!!!"),
            "F09B856213BAB83B"
        );
    }

    /// The ANSI X9.19 example text under the well-known test key.
    #[test]
    fn the_x9_19_example() {
        assert_eq!(
            mac_hex(
                "0123456789ABCDEFFEDCBA9876543210",
                b"Now is the time for all "
            ),
            "A1C72E74EA3FA9B6"
        );
    }

    /// Lengths that need zero padding. Not published vectors: computed independently with
    /// pycryptodome (`DES.MODE_CBC` under K1 over the zero-padded data, then the last block
    /// decrypted under K2 and encrypted under K1).
    #[test]
    fn zero_padding_of_a_short_last_block() {
        let key = "0123456789ABCDEFFEDCBA9876543210";
        assert_eq!(mac_hex(key, b"0200 the SSN switch"), "FACC8B7B685800DB");
        assert_eq!(mac_hex(key, b"A"), "4FFFBDC688CACBB3");
        // Method 1 cannot tell trailing zero bytes from padding: the same MAC.
        assert_eq!(mac_hex(key, b"A\0\0"), "4FFFBDC688CACBB3");
    }

    #[test]
    fn verification_accepts_the_mac_and_refuses_any_change() {
        let key = TdesKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let data = b"Now is the time for all ";
        let mac = retail_mac(&key, data);
        assert!(verify_retail_mac(&key, data, &mac));
        let mut wrong = mac;
        wrong[7] ^= 1;
        assert!(!verify_retail_mac(&key, data, &wrong));
        assert!(!verify_retail_mac(&key, b"Now is the time for all!", &mac));
        let other = TdesKey::from_hex("FEDCBA98765432100123456789ABCDEF").unwrap();
        assert!(!verify_retail_mac(&other, data, &mac));
    }
}
