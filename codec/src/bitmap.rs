//! The set of data elements present in a message.

/// Data elements 1..=128 as bits of one `u128`, field 1 in the most significant bit, so the
/// primary bitmap is the high half exactly as it goes on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bitmap(u128);

impl Bitmap {
    /// No field.
    pub const EMPTY: Bitmap = Bitmap(0);

    const fn bit(field: u8) -> u128 {
        // Callers keep `field` in 1..=128; anything else maps to no bit.
        if field == 0 || field > 128 {
            0
        } else {
            1u128 << (128 - field as u32)
        }
    }

    /// Whether `field` is present.
    pub const fn contains(&self, field: u8) -> bool {
        let bit = Self::bit(field);
        bit != 0 && self.0 & bit != 0
    }

    /// Marks `field` present.
    pub fn insert(&mut self, field: u8) {
        self.0 |= Self::bit(field);
    }

    /// Marks `field` absent.
    pub fn remove(&mut self, field: u8) {
        self.0 &= !Self::bit(field);
    }

    /// Whether any of fields 65..=128 is present, which calls for a secondary bitmap.
    pub const fn needs_secondary(&self) -> bool {
        self.0 as u64 != 0
    }

    /// The 64 bits of the primary bitmap, bit 1 (secondary present) set when needed.
    pub const fn primary_word(&self) -> u64 {
        let word = (self.0 >> 64) as u64;
        if self.needs_secondary() {
            word | (1 << 63)
        } else {
            word & !(1 << 63)
        }
    }

    /// The 64 bits of the secondary bitmap.
    pub const fn secondary_word(&self) -> u64 {
        self.0 as u64
    }

    /// A bitmap from the primary and secondary words as read off the wire. Bit 1 only says
    /// whether the secondary bitmap follows; it is not kept as a field.
    pub const fn from_words(primary: u64, secondary: u64) -> Bitmap {
        Bitmap((((primary & !(1 << 63)) as u128) << 64) | secondary as u128)
    }

    /// The present data elements in ascending order (never 1).
    pub fn fields(&self) -> Fields {
        let bits = self.0 & !Self::bit(1);
        Fields {
            words: [(bits >> 64) as u64, bits as u64],
        }
    }

    /// The fields of this bitmap numbered below `field`: what a decode that failed at `field`
    /// had read.
    pub const fn below(&self, field: u8) -> Bitmap {
        if field == 0 {
            return Bitmap::EMPTY;
        }
        if field > 128 {
            return *self;
        }
        // Bits of fields 1..field are the top (field - 1) bits.
        let keep = if field == 1 {
            0
        } else {
            !0u128 << (129 - field as u32)
        };
        Bitmap(self.0 & keep)
    }

    /// How many data elements are present.
    pub const fn len(&self) -> u32 {
        (self.0 & !Self::bit(1)).count_ones()
    }

    /// Whether no data element is present.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Iterator over the present fields of a [`Bitmap`], ascending. Works a 64-bit word at a
/// time: 128-bit shifts cost several instructions each on x86-64, and this runs once per
/// field of every message.
#[derive(Clone, Debug)]
pub struct Fields {
    /// The primary and secondary words; bits are cleared as they are yielded.
    words: [u64; 2],
}

impl Iterator for Fields {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        for (index, word) in self.words.iter_mut().enumerate() {
            if *word != 0 {
                let zeros = word.leading_zeros();
                *word &= !(1u64 << (63 - zeros));
                // zeros is at most 63 and index at most 1, so this is 1..=128.
                return u8::try_from(index as u32 * 64 + zeros + 1).ok();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_iteration() {
        let mut b = Bitmap::EMPTY;
        for f in [2, 3, 4, 11, 41, 64, 65, 70, 128] {
            b.insert(f);
        }
        assert!(b.contains(70) && !b.contains(69) && !b.contains(0) && !b.contains(200));
        assert_eq!(
            b.fields().collect::<Vec<_>>(),
            vec![2, 3, 4, 11, 41, 64, 65, 70, 128]
        );
        assert_eq!(
            b.primary_word() >> 63,
            1,
            "bit 1 announces the secondary bitmap"
        );
        let again = Bitmap::from_words(b.primary_word(), b.secondary_word());
        assert_eq!(again, b);
        b.remove(65);
        b.remove(70);
        b.remove(128);
        assert_eq!(b.primary_word() >> 63, 0);
        assert_eq!(b.len(), 6);
        assert_eq!(b.below(11).fields().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(b.below(12).fields().collect::<Vec<_>>(), vec![2, 3, 4, 11]);
        assert_eq!(b.below(1), Bitmap::EMPTY);
        assert_eq!(b.below(200), b);
    }
}
