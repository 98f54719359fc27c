//! Primary account numbers whose every printed form is masked.

use std::fmt;

/// A PAN. Its `Debug` and `Display` show it masked (`604872******1234`), so a PAN that
/// reaches a log line, a metric label or an error message is masked without anyone
/// remembering to; [`Pan::reveal`] is the one door to the full number, named so that it is
/// easy to find in review.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pan {
    /// ASCII digits; only the first `len` are meaningful, the rest are zero bytes.
    digits: [u8; Pan::DIGITS_MAX],
    /// How many digits the PAN has, `DIGITS_MIN..=DIGITS_MAX`.
    len: u8,
}

/// Why a string is not a PAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PanError {
    /// Outside 8..=19 digits (ISO/IEC 7812).
    #[error("a PAN has 8 to 19 digits, not {0}")]
    Length(usize),
    /// Something other than a decimal digit.
    #[error("a PAN has only digits")]
    NotDigits,
}

impl Pan {
    /// Fewest digits of a PAN (ISO/IEC 7812).
    pub const DIGITS_MIN: usize = 8;
    /// Most digits of a PAN.
    pub const DIGITS_MAX: usize = 19;

    /// A PAN from its ASCII digits.
    pub fn from_digits(digits: &[u8]) -> Result<Pan, PanError> {
        if !(Self::DIGITS_MIN..=Self::DIGITS_MAX).contains(&digits.len()) {
            return Err(PanError::Length(digits.len()));
        }
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(PanError::NotDigits);
        }
        let mut pan = Pan {
            digits: [0; Self::DIGITS_MAX],
            len: digits.len() as u8,
        };
        if let Some(slot) = pan.digits.get_mut(..digits.len()) {
            slot.copy_from_slice(digits)
        }
        Ok(pan)
    }

    /// The PAN that completes `body` (the PAN without its last digit) with a Luhn check digit.
    pub fn with_check_digit(body: &[u8]) -> Result<Pan, PanError> {
        if !body.iter().all(u8::is_ascii_digit) {
            return Err(PanError::NotDigits);
        }
        let mut digits = [0u8; Self::DIGITS_MAX];
        let slot = digits
            .get_mut(..body.len())
            .ok_or(PanError::Length(body.len() + 1))?;
        slot.copy_from_slice(body);
        let sum = luhn_sum(body, true);
        let check = b'0' + ((10 - sum % 10) % 10) as u8;
        let last = digits
            .get_mut(body.len())
            .ok_or(PanError::Length(body.len() + 1))?;
        *last = check;
        Pan::from_digits(digits.get(..body.len() + 1).unwrap_or_default())
    }

    /// The digits as ASCII bytes.
    fn as_bytes(&self) -> &[u8] {
        self.digits.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The full PAN. Only for the wire, the store and the one API answer that issues a card.
    pub fn reveal(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// Whether the last digit is the Luhn check digit of the others.
    pub fn luhn_valid(&self) -> bool {
        luhn_sum(self.as_bytes(), false).is_multiple_of(10)
    }

    /// The last four digits, which may be shown.
    pub fn last4(&self) -> &str {
        let s = self.reveal();
        s.get(s.len().saturating_sub(4)..).unwrap_or_default()
    }

    /// How many digits.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Never true: a PAN has at least 8 digits. Present for API completeness.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The Luhn sum of `digits`; `doubling_last` when the rightmost given digit is doubled
/// (computing a check digit) rather than not (validating a full number).
fn luhn_sum(digits: &[u8], doubling_last: bool) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if (i % 2 == 0) == doubling_last {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum()
}

/// Writes a PAN masked: the first six and last four digits (the BIN and what a receipt
/// shows), every other digit `*`. Shorter PANs keep only the last four.
pub(crate) fn write_masked(f: &mut dyn fmt::Write, digits: &[u8]) -> fmt::Result {
    let len = digits.len();
    let head = if len >= 13 { 6 } else { 0 };
    let tail_start = len.saturating_sub(4);
    for (i, &d) in digits.iter().enumerate() {
        let shown = i < head || i >= tail_start;
        f.write_char(if shown { char::from(d) } else { '*' })?;
    }
    Ok(())
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_masked(f, self.as_bytes())
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pan(")?;
        write_masked(f, self.as_bytes())?;
        f.write_str(")")
    }
}

impl std::str::FromStr for Pan {
    type Err = PanError;
    fn from_str(s: &str) -> Result<Pan, PanError> {
        Pan::from_digits(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_printed_form() {
        let pan: Pan = "6048721234561234".parse().unwrap();
        assert_eq!(pan.to_string(), "604872******1234");
        assert_eq!(format!("{pan:?}"), "Pan(604872******1234)");
        assert_eq!(format!("{:?}", Some(pan)), "Some(Pan(604872******1234))");
        assert_eq!(pan.reveal(), "6048721234561234");
        assert_eq!(pan.last4(), "1234");
    }

    #[test]
    fn luhn() {
        assert!("4111111111111111".parse::<Pan>().unwrap().luhn_valid());
        assert!("79927398713".parse::<Pan>().unwrap().luhn_valid());
        assert!(!"4111111111111112".parse::<Pan>().unwrap().luhn_valid());
        let issued = Pan::with_check_digit(b"604872000000001").unwrap();
        assert!(issued.luhn_valid());
        assert_eq!(
            Pan::with_check_digit(b"7992739871").unwrap().reveal(),
            "79927398713"
        );
    }

    #[test]
    fn rejects_non_pans() {
        assert_eq!(Pan::from_digits(b"1234567"), Err(PanError::Length(7)));
        assert_eq!(Pan::from_digits(&[b'1'; 20]), Err(PanError::Length(20)));
        assert_eq!(Pan::from_digits(b"12345678a"), Err(PanError::NotDigits));
        assert!(Pan::with_check_digit(&[b'1'; 19]).is_err());
    }
}
