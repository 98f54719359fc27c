//! The host interface's private field formats: the basket (DE48, §4), additional amounts
//! (DE54, §5), terminal totals (DE63, §3.5) and original data elements (DE90, §3.4).
//! Pure functions over bytes; every malformed input is an error value, never a panic.

/// Items a basket may hold: two digits of count.
pub const BASKET_ITEMS_MAX: usize = 99;
/// Characters of one basket item: category n2 + quantity n2 + amount n12.
const BASKET_ITEM_CHARS: usize = 16;

/// One line of a basket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasketItem {
    /// Commodity category, two digits (`01` rice ... `90`-`99` non-food).
    pub category: [u8; 2],
    /// Quantity.
    pub quantity: u8,
    /// Amount in minor units.
    pub amount_minor: u64,
}

/// Why a DE48 is not a basket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BasketError {
    /// Not `B1` + count + items of the announced number.
    #[error("DE48 is not a B1 basket")]
    Malformed,
    /// The item amounts overflow.
    #[error("basket amounts overflow")]
    Overflow,
}

fn digits_value(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')),
    )
}

/// Parses a DE48 basket: `B1` + item count n2 + that many 16-character items.
pub fn parse_basket(de48: &[u8]) -> Result<Vec<BasketItem>, BasketError> {
    let rest = de48.strip_prefix(b"B1").ok_or(BasketError::Malformed)?;
    let count = rest
        .get(..2)
        .and_then(digits_value)
        .ok_or(BasketError::Malformed)? as usize;
    let items = rest.get(2..).ok_or(BasketError::Malformed)?;
    if count == 0 || count > BASKET_ITEMS_MAX || items.len() != count * BASKET_ITEM_CHARS {
        return Err(BasketError::Malformed);
    }
    items
        .chunks_exact(BASKET_ITEM_CHARS)
        .map(|item| {
            let category: [u8; 2] = item
                .get(..2)
                .and_then(|c| c.try_into().ok())
                .ok_or(BasketError::Malformed)?;
            if !category.iter().all(u8::is_ascii_digit) {
                return Err(BasketError::Malformed);
            }
            let quantity = item
                .get(2..4)
                .and_then(digits_value)
                .ok_or(BasketError::Malformed)? as u8;
            let amount_minor = item
                .get(4..16)
                .and_then(digits_value)
                .ok_or(BasketError::Malformed)?;
            Ok(BasketItem {
                category,
                quantity,
                amount_minor,
            })
        })
        .collect()
}

/// The sum of a basket's amounts.
pub fn basket_total(items: &[BasketItem]) -> Result<u64, BasketError> {
    items
        .iter()
        .try_fold(0u64, |acc, item| acc.checked_add(item.amount_minor))
        .ok_or(BasketError::Overflow)
}

/// DE54 (§5): account type `00`, amount type `02` (available), currency `360`, `C`, and the
/// 12-digit amount.
pub fn available_balance(amount_minor: u64) -> [u8; 20] {
    let mut out = *b"0002360C000000000000";
    let mut rest = amount_minor.min(999_999_999_999);
    for slot in out[8..].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out
}

/// DE63 settlement totals (§3.5): sales count n3 + sales amount n12 + reversal count n3 +
/// reversal amount n12.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    /// Approved purchases not reversed.
    pub sales_count: u64,
    /// Their amount in minor units.
    pub sales_amount_minor: u64,
    /// Reversals.
    pub reversal_count: u64,
    /// Their amount in minor units.
    pub reversal_amount_minor: u64,
}

impl Totals {
    /// Parses the 30 characters of DE63.
    pub fn parse(de63: &[u8]) -> Option<Totals> {
        if de63.len() != 30 {
            return None;
        }
        Some(Totals {
            sales_count: digits_value(de63.get(0..3)?)?,
            sales_amount_minor: digits_value(de63.get(3..15)?)?,
            reversal_count: digits_value(de63.get(15..18)?)?,
            reversal_amount_minor: digits_value(de63.get(18..30)?)?,
        })
    }

    /// The 30 characters of DE63; counts and amounts beyond their width are capped (a batch
    /// of more than 999 sales is reported as 999, as the field allows no more).
    pub fn encode(&self) -> [u8; 30] {
        let mut out = [b'0'; 30];
        put_digits(&mut out[0..3], self.sales_count);
        put_digits(&mut out[3..15], self.sales_amount_minor);
        put_digits(&mut out[15..18], self.reversal_count);
        put_digits(&mut out[18..30], self.reversal_amount_minor);
        out
    }
}

fn put_digits(slot: &mut [u8], value: u64) {
    let max = 10u64
        .checked_pow(slot.len() as u32)
        .map_or(u64::MAX, |p| p - 1);
    let mut rest = value.min(max);
    for d in slot.iter_mut().rev() {
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
}

/// DE90 (§3.4): the original's MTI, STAN and DE7.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OriginalData {
    /// Original MTI (four digits).
    pub mti: [u8; 4],
    /// Original DE11.
    pub stan: [u8; 6],
    /// Original DE7.
    pub transmission: [u8; 10],
}

impl OriginalData {
    /// Reads the 42 digits of DE90: MTI (4) + STAN (6) + DE7 (10) + 22 zeros (not checked:
    /// acquirer and forwarding ids some terminals fill in are ignored).
    pub fn parse(de90: &[u8; 42]) -> OriginalData {
        let mut data = OriginalData {
            mti: [0; 4],
            stan: [0; 6],
            transmission: [0; 10],
        };
        data.mti.copy_from_slice(&de90[0..4]);
        data.stan.copy_from_slice(&de90[4..10]);
        data.transmission.copy_from_slice(&de90[10..20]);
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baskets() {
        let basket = concat!(
            "B1",
            "02",
            "01",
            "10",
            "000003500000",
            "07",
            "02",
            "000001500000"
        )
        .as_bytes();
        let items = parse_basket(basket).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0],
            BasketItem {
                category: *b"01",
                quantity: 10,
                amount_minor: 3_500_000
            }
        );
        assert_eq!(basket_total(&items), Ok(5_000_000));
        for bad in [
            &b"B100"[..],
            b"B2010110000003500000",
            b"B1010110000003500",
            b"B10101x0000003500000",
            b"B1",
            b"",
        ] {
            assert_eq!(
                parse_basket(bad),
                Err(BasketError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn balance_and_totals() {
        assert_eq!(&available_balance(25_000_000), b"0002360C000025000000");
        let totals = Totals {
            sales_count: 3,
            sales_amount_minor: 150_000,
            reversal_count: 1,
            reversal_amount_minor: 50_000,
        };
        assert_eq!(&totals.encode(), b"003000000150000001000000050000");
        assert_eq!(Totals::parse(&totals.encode()), Some(totals));
        assert_eq!(Totals::parse(b"00300000015000000100000005000"), None);
        assert_eq!(Totals::parse(b"0030000001500000010000000500x0"), None);
        let mut de90 = [b'0'; 42];
        de90[..20].copy_from_slice(b"02000001231129123045");
        let original = OriginalData::parse(&de90);
        assert_eq!(
            (&original.mti, &original.stan, &original.transmission),
            (b"0200", b"000123", b"1129123045")
        );
    }
}
