//! Clear PINs: only ever in memory, never printed.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::HsmError;

/// How many candidate PINs generation draws before giving up. A draw is refused only when it is
/// trivial (all one digit, or a run like 1234) or the random bytes run short, together well
/// under 1 in 100 for 4 digits, so the limit is never reached with a working generator.
const GENERATE_ATTEMPTS_MAX: u32 = 32;

/// A PIN of 4 to 12 digits (ISO 9564-1).
///
/// Neither `Debug` nor `Display` shows the digits, nor how many there are; the digits are
/// zeroized when it is dropped. It has no `PartialEq` on purpose: PINs are compared through
/// their PVV, never directly. [`Pin::reveal`] is the one door to the digits.
#[derive(Clone)]
pub struct Pin {
    /// ASCII digits; only the first `len` are meaningful, the rest are zero.
    digits: [u8; Pin::DIGITS_MAX],
    /// How many digits the PIN has, `DIGITS_MIN..=DIGITS_MAX`.
    len: u8,
}

impl Pin {
    /// Fewest digits of a PIN (ISO 9564-1).
    pub const DIGITS_MIN: usize = 4;
    /// Most digits of a PIN (ISO 9564-1; the format 0 block has room for 12).
    pub const DIGITS_MAX: usize = 12;
    /// Fewest digits of a PIN the program issues (admin API, `POST /cards`).
    pub const ISSUE_DIGITS_MIN: usize = 4;
    /// Most digits of a PIN the program issues.
    pub const ISSUE_DIGITS_MAX: usize = 6;

    /// A PIN from its digits.
    pub fn new(digits: &str) -> Result<Pin, HsmError> {
        let digits = digits.as_bytes();
        if !(Pin::DIGITS_MIN..=Pin::DIGITS_MAX).contains(&digits.len())
            || !digits.iter().all(u8::is_ascii_digit)
        {
            return Err(HsmError::Pin);
        }
        let mut pin = Pin {
            digits: [0; Pin::DIGITS_MAX],
            len: 0,
        };
        for (slot, digit) in pin.digits.iter_mut().zip(digits) {
            *slot = *digit;
        }
        pin.len = digits.len() as u8;
        Ok(pin)
    }

    /// A random PIN of `digit_count` digits (4 to 6) for a new card or a PIN reset. Each digit
    /// is uniform; PINs of one repeated digit and ascending or descending runs (`1234`,
    /// `9876`) are drawn again, because they are the first ones anybody guesses.
    pub fn generate(digit_count: usize) -> Result<Pin, HsmError> {
        if !(Pin::ISSUE_DIGITS_MIN..=Pin::ISSUE_DIGITS_MAX).contains(&digit_count) {
            return Err(HsmError::PinGenerateLength);
        }
        for _ in 0..GENERATE_ATTEMPTS_MAX {
            if let Some(pin) = Pin::draw(digit_count)?
                && !pin.is_trivial()
            {
                return Ok(pin);
            }
        }
        Err(HsmError::RandomExhausted)
    }

    /// One candidate PIN, or `None` when the random bytes did not yield enough digits.
    fn draw(digit_count: usize) -> Result<Option<Pin>, HsmError> {
        let mut random = Zeroizing::new([0u8; 16]);
        getrandom::fill(random.as_mut_slice())?;
        // 250 is the largest multiple of 10 that fits in a byte: keeping only bytes below it
        // makes `byte % 10` uniform over the ten digits.
        let mut digits = random
            .iter()
            .filter(|byte| **byte < 250)
            .map(|byte| b'0' + byte % 10);
        let mut pin = Pin {
            digits: [0; Pin::DIGITS_MAX],
            len: digit_count as u8,
        };
        for slot in pin.digits.iter_mut().take(digit_count) {
            match digits.next() {
                Some(digit) => *slot = digit,
                None => return Ok(None),
            }
        }
        Ok(Some(pin))
    }

    /// Whether every digit is the same, or each digit is one more (or one less) than the last.
    fn is_trivial(&self) -> bool {
        let digits = self.as_bytes();
        let steps = || {
            digits
                .windows(2)
                .map(|pair| i16::from(pair[1]) - i16::from(pair[0]))
        };
        [0, 1, -1].iter().any(|step| steps().all(|s| s == *step))
    }

    /// The digits as ASCII bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.digits.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The PIN itself. Only for the PIN mailer / card personalization file and tests.
    pub fn reveal(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// How many digits the PIN has.
    pub fn digit_count(&self) -> usize {
        usize::from(self.len)
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.digits.zeroize();
        self.len.zeroize();
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin([redacted])")
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_4_to_12_digits_only() {
        assert_eq!(Pin::new("1234").unwrap().reveal(), "1234");
        assert_eq!(Pin::new("123456789012").unwrap().digit_count(), 12);
        for text in ["", "123", "1234567890123", "12a4", "12 4", "١٢٣٤"] {
            assert_eq!(Pin::new(text).unwrap_err(), HsmError::Pin, "{text}");
        }
    }

    #[test]
    fn printed_forms_never_show_digits_or_length() {
        let pin = Pin::new("987654").unwrap();
        assert_eq!(format!("{pin:?}"), "Pin([redacted])");
        assert_eq!(format!("{pin}"), "****");
        assert_eq!(format!("{:?}", Some(pin.clone())), "Some(Pin([redacted]))");
    }

    #[test]
    fn generates_the_asked_length_and_no_trivial_pins() {
        for digit_count in Pin::ISSUE_DIGITS_MIN..=Pin::ISSUE_DIGITS_MAX {
            for _ in 0..200 {
                let pin = Pin::generate(digit_count).unwrap();
                assert_eq!(pin.digit_count(), digit_count);
                assert!(pin.reveal().bytes().all(|digit| digit.is_ascii_digit()));
                assert!(!pin.is_trivial(), "generated a trivial PIN");
            }
        }
    }

    #[test]
    fn generation_uses_every_digit_in_every_position() {
        let mut seen = [[false; 10]; 4];
        for _ in 0..400 {
            let pin = Pin::generate(4).unwrap();
            for (position, digit) in pin.as_bytes().iter().enumerate() {
                seen[position][usize::from(digit - b'0')] = true;
            }
        }
        // The chance that one of 40 (position, digit) pairs is missing from 400 uniform PINs
        // is below 40 * 0.9^400, about 2e-17.
        assert!(seen.iter().flatten().all(|seen| *seen));
    }

    #[test]
    fn refuses_lengths_outside_the_issuing_range() {
        assert_eq!(Pin::generate(3).unwrap_err(), HsmError::PinGenerateLength);
        assert_eq!(Pin::generate(7).unwrap_err(), HsmError::PinGenerateLength);
    }

    #[test]
    fn trivial_pins() {
        for text in ["0000", "1234", "4321", "987654", "3456"] {
            assert!(Pin::new(text).unwrap().is_trivial(), "{text}");
        }
        for text in ["1235", "0912", "1212", "8901"] {
            assert!(!Pin::new(text).unwrap().is_trivial(), "{text}");
        }
    }
}
