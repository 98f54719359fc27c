//! The PAN digits that PIN blocks and PVVs take.
//!
//! This crate takes the PAN as text rather than the codec's `Pan` so that it depends on nothing
//! of the wire: a real HSM behind the same API takes the account number as digits too.

use crate::HsmError;

/// Fewest digits of a PAN (ISO/IEC 7812), as the codec accepts.
pub(crate) const PAN_DIGITS_MIN: usize = 8;
/// Most digits of a PAN.
pub(crate) const PAN_DIGITS_MAX: usize = 19;

/// The rightmost `N` digits of `pan` excluding its check digit (the last digit), as values
/// 0..=9, right-justified and padded on the left with zeros when the PAN is shorter, as
/// ISO 9564-1 prescribes for the format 0 account field.
pub(crate) fn rightmost_excluding_check<const N: usize>(pan: &str) -> Result<[u8; N], HsmError> {
    let digits = pan.as_bytes();
    if !(PAN_DIGITS_MIN..=PAN_DIGITS_MAX).contains(&digits.len())
        || !digits.iter().all(u8::is_ascii_digit)
    {
        return Err(HsmError::Pan);
    }
    let body = digits.get(..digits.len() - 1).ok_or(HsmError::Pan)?;
    let mut field = [0u8; N];
    for (slot, digit) in field.iter_mut().rev().zip(body.iter().rev()) {
        *slot = digit - b'0';
    }
    Ok(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_rightmost_digits_before_the_check_digit() {
        assert_eq!(
            rightmost_excluding_check::<12>("43219876543210987"),
            Ok([9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 8])
        );
        assert_eq!(
            rightmost_excluding_check::<11>("1122334455667788"),
            Ok([3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8])
        );
    }

    #[test]
    fn pads_short_pans_on_the_left() {
        assert_eq!(
            rightmost_excluding_check::<12>("123456789"),
            Ok([0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
        );
    }

    #[test]
    fn rejects_bad_pans() {
        for pan in [
            "",
            "1234567",
            "12345678901234567890",
            "1234567890123A",
            "１２３４５６７８９",
        ] {
            assert_eq!(
                rightmost_excluding_check::<12>(pan),
                Err(HsmError::Pan),
                "{pan}"
            );
        }
    }
}
