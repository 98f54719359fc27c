//! Money as integer minor units (IDR sen). There is deliberately no `impl Add`: every sum goes
//! through `checked_add`/`checked_sub`, so an overflow is an error the caller must handle, never a
//! silent wrap or a panic in the middle of a write.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of rupiah in minor units (1/100 rupiah). Signed because account balances of the
/// funding source are negative by construction (double entry: its balance is minus everything
/// it has funded); transfer amounts and pocket balances are never negative.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Money(i64);

impl Money {
    /// No money.
    pub const ZERO: Money = Money(0);

    /// An amount from minor units (`5_000_000` is Rp 50.000,00).
    pub const fn from_minor(minor: i64) -> Money {
        Money(minor)
    }

    /// The amount in minor units.
    pub const fn minor(self) -> i64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// `self - other`, or `None` on overflow.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// `-self`, or `None` on overflow.
    pub fn checked_neg(self) -> Option<Money> {
        self.0.checked_neg().map(Money)
    }

    /// True for amounts below zero.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// True for amounts above zero.
    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// The smaller of two amounts.
    pub fn min(self, other: Money) -> Money {
        Money(self.0.min(other.0))
    }

    /// Sums amounts, `None` on overflow.
    pub fn checked_sum<I: IntoIterator<Item = Money>>(amounts: I) -> Option<Money> {
        amounts
            .into_iter()
            .try_fold(Money::ZERO, |total, amount| total.checked_add(amount))
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

/// Rupiah with two decimals and no grouping (`-1234.05`), the form the admin API uses.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_is_none_not_a_wrap() {
        assert_eq!(
            Money::from_minor(i64::MAX).checked_add(Money::from_minor(1)),
            None
        );
        assert_eq!(
            Money::from_minor(i64::MIN).checked_sub(Money::from_minor(1)),
            None
        );
        assert_eq!(
            Money::from_minor(5).checked_sub(Money::from_minor(7)),
            Some(Money::from_minor(-2))
        );
    }

    #[test]
    fn displays_rupiah_with_two_decimals() {
        assert_eq!(Money::from_minor(30_000_000).to_string(), "300000.00");
        assert_eq!(Money::from_minor(-105).to_string(), "-1.05");
        assert_eq!(
            Money::checked_sum([Money::from_minor(1), Money::from_minor(2)]),
            Some(Money::from_minor(3))
        );
    }
}
