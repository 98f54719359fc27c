//! The Visa PIN verification value (PVV) method.
//!
//! TSP = rightmost 11 PAN digits excluding the check digit + PVKI + leftmost 4 PIN digits,
//! read as 16 hex nibbles; encrypted under the double-length PVK; decimalized by taking the
//! decimal nibbles left to right, then, if fewer than 4, the nibbles A-F minus 10 left to right.
//! Only the first 4 PIN digits take part: a longer PIN is verified on its first 4 digits, a
//! property of the method, not of this implementation.

use std::fmt;

use zeroize::Zeroizing;

use crate::{EncryptedPinBlock, HsmError, Pin, TdesKey, account};

/// Digits of a PVV.
const PVV_DIGITS: usize = 4;

/// The PIN verification key indicator: which of the issuer's PVKs made a PVV, one digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pvki(u8);

impl Pvki {
    /// PVKI 1, the one the host interface prescribes (§8).
    pub const ONE: Pvki = Pvki(1);

    /// A PVKI from its digit, 0 to 9.
    pub fn new(digit: u8) -> Result<Pvki, HsmError> {
        if digit <= 9 {
            Ok(Pvki(digit))
        } else {
            Err(HsmError::Pvki)
        }
    }

    /// The digit.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// A PIN verification value: 4 decimal digits stored with the card instead of the PIN.
///
/// Together with the PVK it lets anyone test PINs offline, so it is kept out of print like the
/// PIN: `Debug` hides it and [`Pvv::as_str`] is for the card store only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pvv([u8; PVV_DIGITS]);

impl Pvv {
    /// A PVV from its 4 digits, as stored.
    pub fn new(digits: &str) -> Result<Pvv, HsmError> {
        let digits: [u8; PVV_DIGITS] = digits.as_bytes().try_into().map_err(|_| HsmError::Pvv)?;
        if digits.iter().all(u8::is_ascii_digit) {
            Ok(Pvv(digits))
        } else {
            Err(HsmError::Pvv)
        }
    }

    /// The PVV of `pin` for the card `pan`, under `pvk` selected by `pvki`: at card issue and
    /// at PIN reset.
    pub fn generate(pvk: &TdesKey, pin: &Pin, pan: &str, pvki: Pvki) -> Result<Pvv, HsmError> {
        let pan_digits = account::rightmost_excluding_check::<11>(pan)?;
        // The TSP holds PIN digits: zeroized when dropped.
        let mut tsp = Zeroizing::new([0u8; 8]);
        let pin_digits = pin.as_bytes().iter().take(4).map(|digit| digit - b'0');
        let nibbles = pan_digits.into_iter().chain([pvki.0]).chain(pin_digits);
        for (index, nibble) in nibbles.enumerate() {
            if let Some(byte) = tsp.get_mut(index / 2) {
                *byte |= if index % 2 == 0 { nibble << 4 } else { nibble };
            }
        }
        Ok(Pvv(decimalize(&pvk.encrypt_block(*tsp))))
    }

    /// The 4 digits, for the card store.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Whether two PVVs are equal, in time that does not depend on where they differ.
    pub fn matches(&self, other: &Pvv) -> bool {
        self.0
            .iter()
            .zip(other.0)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

impl fmt::Debug for Pvv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pvv([redacted])")
    }
}

/// The Visa decimalization of an encrypted TSP: decimal nibbles first, then A-F as 0-5.
fn decimalize(encrypted: &[u8; 8]) -> [u8; PVV_DIGITS] {
    let nibbles = || encrypted.iter().flat_map(|byte| [byte >> 4, byte & 0x0F]);
    let decimal = nibbles().filter(|nibble| *nibble <= 9);
    let letters = nibbles()
        .filter(|nibble| *nibble > 9)
        .map(|nibble| nibble - 10);
    let mut pvv = [b'0'; PVV_DIGITS];
    // The decimal nibbles and the letter nibbles together are all 16 nibbles, so the chain
    // always yields at least 4 digits.
    for (slot, digit) in pvv.iter_mut().zip(decimal.chain(letters)) {
        *slot = b'0' + digit;
    }
    pvv
}

/// Verifies the PIN in `block` (format 0 under `tpk`, for the card `pan`) against the card's
/// `pvv` under `pvk`/`pvki`: `Ok(true)` for the right PIN, `Ok(false)` for a wrong one, and
/// `Err(HsmError::PinBlock(_))` for a block that does not decode, which the switch also counts
/// as a wrong PIN (§8). The clear PIN lives only inside this call.
pub fn verify_pin(
    tpk: &TdesKey,
    block: &EncryptedPinBlock,
    pan: &str,
    pvk: &TdesKey,
    pvki: Pvki,
    pvv: &Pvv,
) -> Result<bool, HsmError> {
    let pin = block.pin(tpk, pan)?;
    Ok(Pvv::generate(pvk, &pin, pan, pvki)?.matches(pvv))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PVK: &str = "0123456789ABCDEFFEDCBA9876543210";

    /// Published Visa PVV vectors under PVK 0123456789ABCDEFFEDCBA9876543210, as (PVKI, PIN,
    /// PAN, PVV), from the psec library's tests (github.com/knovichikhin/psec,
    /// tests/test_pin.py, `test_generate_visa_pvv`).
    const VECTORS: &[(u8, &str, &str, &str)] = &[
        (1, "4524", "1122334455667788", "8523"),
        (2, "1912", "1122334455667788", "3244"),
        (1, "0570", "1122334455667718", "3144"),
        (1, "8299", "1122334455667708", "4422"),
    ];

    #[test]
    fn generates_the_published_pvvs() {
        let pvk = TdesKey::from_hex(PVK).unwrap();
        for (pvki, pin, pan, pvv) in VECTORS {
            let pin = Pin::new(pin).unwrap();
            let generated = Pvv::generate(&pvk, &pin, pan, Pvki::new(*pvki).unwrap()).unwrap();
            assert_eq!(generated.as_str(), *pvv, "PAN {pan}");
        }
    }

    #[test]
    fn only_the_first_four_pin_digits_count() {
        let pvk = TdesKey::from_hex(PVK).unwrap();
        let short = Pvv::generate(
            &pvk,
            &Pin::new("4524").unwrap(),
            "1122334455667788",
            Pvki::ONE,
        );
        let long = Pvv::generate(
            &pvk,
            &Pin::new("452499").unwrap(),
            "1122334455667788",
            Pvki::ONE,
        );
        assert_eq!(short.unwrap().as_str(), "8523");
        assert_eq!(long.unwrap().as_str(), "8523");
    }

    #[test]
    fn decimalization_passes() {
        // All decimal: the first four digits.
        assert_eq!(&decimalize(&[0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0]), b"1234");
        // Letters are skipped in the first pass.
        assert_eq!(
            &decimalize(&[0xA1, 0xB2, 0xC3, 0xD4, 0xFF, 0xFF, 0xFF, 0xFF]),
            b"1234"
        );
        // Two decimal digits, then the first two letters minus 10.
        assert_eq!(
            &decimalize(&[0xAB, 0x1C, 0xDE, 0xF2, 0xFF, 0xFF, 0xFF, 0xFF]),
            b"1201"
        );
        // No decimal digit at all.
        assert_eq!(
            &decimalize(&[0xFE, 0xDC, 0xBA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA]),
            b"5432"
        );
    }

    #[test]
    fn verifies_a_pin_block_against_a_pvv() {
        let tpk = TdesKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let pvk = TdesKey::from_hex(PVK).unwrap();
        let pan = "1122334455667788";
        let pvv = Pvv::new("8523").unwrap();
        let right = EncryptedPinBlock::encrypt(&Pin::new("4524").unwrap(), pan, &tpk).unwrap();
        let wrong = EncryptedPinBlock::encrypt(&Pin::new("4525").unwrap(), pan, &tpk).unwrap();
        assert_eq!(
            verify_pin(&tpk, &right, pan, &pvk, Pvki::ONE, &pvv),
            Ok(true)
        );
        assert_eq!(
            verify_pin(&tpk, &wrong, pan, &pvk, Pvki::ONE, &pvv),
            Ok(false)
        );
        // The right PIN under another PVKI is another PVV.
        assert_eq!(
            verify_pin(&tpk, &right, pan, &pvk, Pvki::new(2).unwrap(), &pvv),
            Ok(false)
        );
    }

    #[test]
    fn a_block_under_an_old_tpk_is_an_error_that_counts_as_a_wrong_pin() {
        let old_tpk = TdesKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let new_tpk = TdesKey::from_hex("FEDCBA98765432100123456789ABCDEF").unwrap();
        let pvk = TdesKey::from_hex(PVK).unwrap();
        let pan = "1122334455667788";
        let block = EncryptedPinBlock::encrypt(&Pin::new("4524").unwrap(), pan, &old_tpk).unwrap();
        let outcome = verify_pin(
            &new_tpk,
            &block,
            pan,
            &pvk,
            Pvki::ONE,
            &Pvv::new("8523").unwrap(),
        );
        let error = outcome.unwrap_err();
        assert!(matches!(error, HsmError::PinBlock(_)));
        assert!(error.counts_as_wrong_pin());
        assert!(!HsmError::Unwrap.counts_as_wrong_pin());
    }

    #[test]
    fn pvv_and_pvki_parsing() {
        assert_eq!(Pvv::new("0123").unwrap().as_str(), "0123");
        for text in ["", "123", "12345", "12a4"] {
            assert_eq!(Pvv::new(text).unwrap_err(), HsmError::Pvv, "{text}");
        }
        assert_eq!(Pvki::new(9).unwrap().get(), 9);
        assert_eq!(Pvki::new(10).unwrap_err(), HsmError::Pvki);
        assert_eq!(
            format!("{:?}", Pvv::new("8523").unwrap()),
            "Pvv([redacted])"
        );
        assert!(
            Pvv::new("8523")
                .unwrap()
                .matches(&Pvv::new("8523").unwrap())
        );
        assert!(
            !Pvv::new("8523")
                .unwrap()
                .matches(&Pvv::new("8524").unwrap())
        );
    }
}
