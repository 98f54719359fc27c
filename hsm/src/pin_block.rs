//! ISO 9564-1 format 0 PIN blocks: build, encrypt under a TPK, decrypt, parse.
//!
//! Format 0 is the PIN field `0 L P P P P P/F ... F` (control 0, length, digits, fill F)
//! exclusive-ored with the account field `0000` + the rightmost 12 PAN digits excluding the check
//! digit. Binding the block to the PAN is what stops a block captured for one card from being
//! replayed for another.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::{HsmError, Pin, PinBlockFault, TdesKey, account, hex};

/// Nibbles in a 64-bit block.
const NIBBLES: usize = 16;

/// A clear format 0 PIN block. It exists only in memory during verification: `Debug` hides it
/// and it is zeroized when dropped.
pub struct ClearPinBlock([u8; 8]);

impl ClearPinBlock {
    /// The format 0 block of `pin` for the card `pan`.
    pub fn format0(pin: &Pin, pan: &str) -> Result<ClearPinBlock, HsmError> {
        let account = account_field(pan)?;
        let mut pin_field = Zeroizing::new([0x0Fu8; NIBBLES]);
        pin_field[0] = 0;
        // A Pin has at most 12 digits, so the length fits the nibble and the digits fit after it.
        pin_field[1] = pin.digit_count() as u8;
        for (slot, digit) in pin_field.iter_mut().skip(2).zip(pin.as_bytes()) {
            *slot = digit - b'0';
        }
        let mut block = pack(&pin_field);
        xor_into(&mut block, &account);
        Ok(ClearPinBlock(block))
    }

    /// A clear block from its 8 bytes, for published test vectors and test tools.
    pub fn from_bytes(bytes: [u8; 8]) -> ClearPinBlock {
        ClearPinBlock(bytes)
    }

    /// The 8 bytes, for test vectors and test tools.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// The block encrypted under the terminal PIN key with 3DES ECB, as DE52 carries it.
    pub fn encrypt(&self, tpk: &TdesKey) -> EncryptedPinBlock {
        EncryptedPinBlock(tpk.encrypt_block(self.0))
    }

    /// The PIN in this block, read as format 0 for the card `pan`. The checks follow the
    /// layout: control field 0, length 4 to 12, decimal PIN digits, fill all F. A block that
    /// fails one is what a wrong or old TPK produces (host interface §8).
    pub fn pin(&self, pan: &str) -> Result<Pin, HsmError> {
        let account = account_field(pan)?;
        let mut block = Zeroizing::new(self.0);
        xor_into(&mut block, &account);
        let nibbles = unpack(&block);
        if nibbles[0] != 0 {
            return Err(HsmError::PinBlock(PinBlockFault::ControlField));
        }
        let len = usize::from(nibbles[1]);
        if !(Pin::DIGITS_MIN..=Pin::DIGITS_MAX).contains(&len) {
            return Err(HsmError::PinBlock(PinBlockFault::PinLength));
        }
        let (digits, fill) = nibbles
            .get(2..)
            .and_then(|rest| rest.split_at_checked(len))
            .ok_or(HsmError::PinBlock(PinBlockFault::PinLength))?;
        if digits.iter().any(|nibble| *nibble > 9) {
            return Err(HsmError::PinBlock(PinBlockFault::PinDigit));
        }
        if fill.iter().any(|nibble| *nibble != 0x0F) {
            return Err(HsmError::PinBlock(PinBlockFault::Fill));
        }
        let mut text = Zeroizing::new([0u8; Pin::DIGITS_MAX]);
        for (slot, digit) in text.iter_mut().zip(digits) {
            *slot = b'0' + digit;
        }
        let text = text.get(..len).unwrap_or_default();
        Pin::new(std::str::from_utf8(text).unwrap_or_default())
    }
}

impl Drop for ClearPinBlock {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for ClearPinBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClearPinBlock([redacted])")
    }
}

/// A PIN block encrypted under a TPK, as DE52 carries it (8 bytes in the `bcd` profile, 16 hex
/// digits in `ascii`). Encrypted, yet still never printed (STYLE habit 7): `Debug` hides it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EncryptedPinBlock([u8; 8]);

impl EncryptedPinBlock {
    /// Bytes of a PIN block.
    pub const BYTES: usize = 8;
    /// Hex digits of a PIN block.
    pub const HEX_DIGITS: usize = 16;

    /// The format 0 block of `pin` for `pan`, encrypted under `tpk`: what a terminal sends.
    pub fn encrypt(pin: &Pin, pan: &str, tpk: &TdesKey) -> Result<EncryptedPinBlock, HsmError> {
        Ok(ClearPinBlock::format0(pin, pan)?.encrypt(tpk))
    }

    /// A block from its 8 bytes.
    pub fn from_bytes(bytes: [u8; 8]) -> EncryptedPinBlock {
        EncryptedPinBlock(bytes)
    }

    /// A block from DE52 in the `bcd` profile: exactly 8 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<EncryptedPinBlock, HsmError> {
        let bytes: [u8; 8] = bytes.try_into().map_err(|_| HsmError::PinBlockLength)?;
        Ok(EncryptedPinBlock(bytes))
    }

    /// A block from DE52 in the `ascii` profile: exactly 16 hex digits, either case.
    pub fn from_hex(text: &str) -> Result<EncryptedPinBlock, HsmError> {
        let mut bytes = [0u8; 8];
        if hex::decode_into(text, &mut bytes) {
            Ok(EncryptedPinBlock(bytes))
        } else {
            Err(HsmError::PinBlockLength)
        }
    }

    /// The 8 bytes, for DE52 in the `bcd` profile.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// 16 uppercase hex digits, for DE52 in the `ascii` profile.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// The clear block under `tpk`. Always succeeds: whether the key was the right one shows
    /// only when the block is parsed.
    pub fn decrypt(&self, tpk: &TdesKey) -> ClearPinBlock {
        ClearPinBlock(tpk.decrypt_block(self.0))
    }

    /// The PIN in this block: decrypted under `tpk` and read as format 0 for `pan`.
    pub fn pin(&self, tpk: &TdesKey, pan: &str) -> Result<Pin, HsmError> {
        self.decrypt(tpk).pin(pan)
    }
}

impl fmt::Debug for EncryptedPinBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptedPinBlock([redacted])")
    }
}

/// The format 0 account field of `pan`: four zero nibbles, then 12 PAN digits.
fn account_field(pan: &str) -> Result<[u8; 8], HsmError> {
    let digits = account::rightmost_excluding_check::<12>(pan)?;
    let mut nibbles = [0u8; NIBBLES];
    for (slot, digit) in nibbles.iter_mut().skip(4).zip(digits) {
        *slot = digit;
    }
    Ok(pack(&nibbles))
}

/// Sixteen nibbles (each 0..=15) as 8 bytes, high nibble first.
fn pack(nibbles: &[u8; NIBBLES]) -> [u8; 8] {
    let mut bytes = [0u8; 8];
    for (byte, pair) in bytes.iter_mut().zip(nibbles.chunks_exact(2)) {
        if let [high, low] = pair {
            *byte = (high & 0x0F) << 4 | (low & 0x0F);
        }
    }
    bytes
}

/// 8 bytes as sixteen nibbles, high nibble first, zeroized when dropped.
fn unpack(bytes: &[u8; 8]) -> Zeroizing<[u8; NIBBLES]> {
    let mut nibbles = Zeroizing::new([0u8; NIBBLES]);
    for (pair, byte) in nibbles.chunks_exact_mut(2).zip(bytes) {
        if let [high, low] = pair {
            *high = byte >> 4;
            *low = byte & 0x0F;
        }
    }
    nibbles
}

/// `block ^= other`, byte by byte.
fn xor_into(block: &mut [u8; 8], other: &[u8; 8]) {
    for (byte, other) in block.iter_mut().zip(other) {
        *byte ^= other;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> [u8; 8] {
        let mut out = [0u8; 8];
        assert!(hex::decode_into(text, &mut out));
        out
    }

    /// Published clear format 0 blocks, as (PIN, PAN, block).
    /// - PIN 1234, PAN 43219876543210987: EFTlab "Complete list of PIN-blocks" and the ID TECH
    ///   knowledge base (BP-Tools output), https://eftlab.com.au/knowledge-base/complete-list-of-pin-blocks
    /// - PIN 1234, PAN 4987654321098765: 3am Systems, "PIN Block Format and Encryption",
    ///   http://www.3amsystems.com/monetics/pinblocks.htm
    /// - PIN 92389, PAN 4000001234562: Thales HSM host command manual, PIN block format 01
    ///   (ANSI X9.8 / ISO 9564-1 format 0) example.
    /// - PIN 1234 / 123456789 / 1234567890 / 123456789012, PAN 5555555551234567: the psec
    ///   library's published tests (github.com/knovichikhin/psec, tests/test_pinblock.py).
    const VECTORS: &[(&str, &str, &str)] = &[
        ("1234", "43219876543210987", "0412AC89ABCDEF67"),
        ("1234", "4987654321098765", "041242ABCDEF6789"),
        ("92389", "4000001234562", "0592789FFFEDCBA9"),
        ("1234", "5555555551234567", "041261AAAAEDCBA9"),
        ("123456789", "5555555551234567", "091261032D8DCBA9"),
        ("1234567890", "5555555551234567", "0A1261032D82CBA9"),
        ("123456789012", "5555555551234567", "0C1261032D8226A9"),
    ];

    #[test]
    fn builds_the_published_blocks() {
        for (pin, pan, block) in VECTORS {
            let built = ClearPinBlock::format0(&Pin::new(pin).unwrap(), pan).unwrap();
            assert_eq!(hex::encode(built.as_bytes()), *block, "PIN {pin} PAN {pan}");
        }
    }

    #[test]
    fn parses_the_published_blocks() {
        for (pin, pan, block) in VECTORS {
            let parsed = ClearPinBlock::from_bytes(bytes(block)).pin(pan).unwrap();
            assert_eq!(parsed.reveal(), *pin, "block {block}");
        }
    }

    /// Malformed blocks from psec's published tests (tests/test_pinblock.py), each breaking one
    /// rule, all for PAN 5555555551234567.
    #[test]
    fn rejects_malformed_blocks() {
        let pan = "5555555551234567";
        let cases = [
            ("241261AAAAEDCBA9", PinBlockFault::ControlField),
            ("0F1261AAAAEDCBA9", PinBlockFault::PinLength),
            ("021261AAAAEDCBA9", PinBlockFault::PinLength),
            ("051261AAAAEDCBA9", PinBlockFault::PinDigit),
            ("041261AAAAEDCBAA", PinBlockFault::Fill),
            // Length 13 and 3: one past each end of the range.
            ("0D1261AAAAEDCBA9", PinBlockFault::PinLength),
            ("031261AAAAEDCBA9", PinBlockFault::PinLength),
        ];
        for (block, fault) in cases {
            let parsed = ClearPinBlock::from_bytes(bytes(block)).pin(pan);
            assert_eq!(
                parsed.unwrap_err(),
                HsmError::PinBlock(fault),
                "block {block}"
            );
        }
    }

    /// The same block read for another card is no longer well formed: the PAN binding.
    #[test]
    fn a_block_read_for_another_pan_is_rejected() {
        let block = ClearPinBlock::from_bytes(bytes("0412AC89ABCDEF67"));
        assert!(block.pin("43219876543210987").is_ok());
        assert_eq!(
            block.pin("43219876543211987").unwrap_err(),
            HsmError::PinBlock(PinBlockFault::Fill)
        );
    }

    /// Encryption under the well-known test key. The expected value is not a published vector:
    /// it was computed independently with OpenSSL,
    /// `printf 041261AAAAEDCBA9 | xxd -r -p | openssl enc -des-ede-ecb -nopad
    ///  -K 0123456789ABCDEFFEDCBA9876543210 | xxd -p -u` → 230B4C43B8BA2C5C.
    #[test]
    fn encrypts_and_decrypts_under_a_tpk() {
        let tpk = TdesKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let pin = Pin::new("1234").unwrap();
        let encrypted = EncryptedPinBlock::encrypt(&pin, "5555555551234567", &tpk).unwrap();
        assert_eq!(encrypted.to_hex(), "230B4C43B8BA2C5C");
        assert_eq!(
            encrypted.decrypt(&tpk).as_bytes(),
            &bytes("041261AAAAEDCBA9")
        );
        assert_eq!(
            encrypted.pin(&tpk, "5555555551234567").unwrap().reveal(),
            "1234"
        );
    }

    #[test]
    fn de52_forms() {
        let block = EncryptedPinBlock::from_hex("230b4c43b8ba2c5c").unwrap();
        assert_eq!(EncryptedPinBlock::from_slice(block.as_bytes()), Ok(block));
        assert_eq!(block.to_hex(), "230B4C43B8BA2C5C");
        assert_eq!(
            EncryptedPinBlock::from_slice(&[0; 7]),
            Err(HsmError::PinBlockLength)
        );
        assert_eq!(
            EncryptedPinBlock::from_slice(&[0; 9]),
            Err(HsmError::PinBlockLength)
        );
        assert_eq!(
            EncryptedPinBlock::from_hex("230B4C43B8BA2C5"),
            Err(HsmError::PinBlockLength)
        );
        assert_eq!(format!("{block:?}"), "EncryptedPinBlock([redacted])");
        assert_eq!(
            format!("{:?}", block.decrypt(&TdesKey::from_bytes([1; 16]))),
            "ClearPinBlock([redacted])"
        );
    }

    #[test]
    fn refuses_a_bad_pan() {
        let pin = Pin::new("1234").unwrap();
        assert_eq!(
            ClearPinBlock::format0(&pin, "12345").unwrap_err(),
            HsmError::Pan
        );
        let block = ClearPinBlock::from_bytes(bytes("041261AAAAEDCBA9"));
        assert_eq!(block.pin("5555X55551234567").unwrap_err(), HsmError::Pan);
    }
}
