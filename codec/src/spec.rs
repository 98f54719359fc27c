//! The field definitions of ISO 8583:1987 as data.
//!
//! jPOS's `ISO87APackager` (our `ascii` profile) and `ISO87BPackager` (our `bcd` profile) define
//! the same 128 data elements with the same lengths; they differ only in how each kind of field
//! is written on the wire. So the table names each field's *kind* after the jPOS field-packager
//! family it uses (`IFA_NUMERIC`/`IFB_NUMERIC` are both [`Kind::Numeric`], and so on), and
//! [`crate::Profile`] turns a kind into bytes. Changing a row here changes both profiles, which
//! is what keeping them in step with jPOS requires.

/// The jPOS field-packager family of a data element: what its logical value may contain and
/// how each profile writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `IFA_NUMERIC` / `IFB_NUMERIC`: fixed number of digits. `bcd`: packed, left-padded with a
    /// zero nibble when the count is odd.
    Numeric,
    /// `IFA_LLNUM` / `IFB_LLNUM`: up to `max` digits with a 2-digit length. `bcd`: the length
    /// byte counts digits; packed, right-padded with a zero nibble. Track 2 (DE35) also allows
    /// `=` (nibble `D` in `bcd`).
    LlNum,
    /// `IF_CHAR`: fixed-width characters, the same bytes in both profiles.
    Char,
    /// `IFA_LLCHAR` / `IFB_LLCHAR`: up to `max` bytes with a 2-digit length (ASCII or 1 BCD byte).
    LlChar,
    /// `IFA_LLLCHAR` / `IFB_LLLCHAR`: up to `max` bytes with a 3-digit length (ASCII or 2 BCD
    /// bytes).
    LllChar,
    /// `IFA_AMOUNT` / `IFB_AMOUNT`: a sign `C` or `D` then `len - 1` digits. `bcd`: the sign as
    /// one ASCII byte, then the digits packed.
    Amount,
    /// `IFA_BINARY` / `IFB_BINARY`: `len` bytes. `ascii`: two hex characters a byte.
    Binary,
}

/// One data element's definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// The data element number, 2..=128 (0 and 1, MTI and bitmap, are not in the table).
    pub number: u8,
    /// What the field is, as ISO 8583:1987 names it; used by `describe`.
    pub name: &'static str,
    /// How the field is written.
    pub kind: Kind,
    /// Fixed kinds: the exact length; variable kinds: the maximum. Digits for numeric kinds,
    /// characters for character kinds, bytes for binary.
    pub len: u16,
}

impl FieldSpec {
    /// Whether the field's length is carried in a prefix.
    pub const fn is_variable(&self) -> bool {
        matches!(self.kind, Kind::LlNum | Kind::LlChar | Kind::LllChar)
    }
}

macro_rules! table {
    ($( $n:literal $kind:ident $len:literal $name:literal ;)*) => {
        /// Data elements 2..=128, indexed by number (entries 0 and 1 are placeholders).
        pub static FIELDS: [FieldSpec; 129] = [
            FieldSpec { number: 0, name: "Message type indicator", kind: Kind::Numeric, len: 4 },
            FieldSpec { number: 1, name: "Bitmap, secondary", kind: Kind::Binary, len: 8 },
            $( FieldSpec { number: $n, name: $name, kind: Kind::$kind, len: $len }, )*
        ];
    };
}

table! {
    2 LlNum 19 "Primary account number";
    3 Numeric 6 "Processing code";
    4 Numeric 12 "Amount, transaction";
    5 Numeric 12 "Amount, settlement";
    6 Numeric 12 "Amount, cardholder billing";
    7 Numeric 10 "Transmission date and time";
    8 Numeric 8 "Amount, cardholder billing fee";
    9 Numeric 8 "Conversion rate, settlement";
    10 Numeric 8 "Conversion rate, cardholder billing";
    11 Numeric 6 "System trace audit number";
    12 Numeric 6 "Time, local transaction";
    13 Numeric 4 "Date, local transaction";
    14 Numeric 4 "Date, expiration";
    15 Numeric 4 "Date, settlement";
    16 Numeric 4 "Date, conversion";
    17 Numeric 4 "Date, capture";
    18 Numeric 4 "Merchant type";
    19 Numeric 3 "Acquiring institution country code";
    20 Numeric 3 "PAN extended, country code";
    21 Numeric 3 "Forwarding institution country code";
    22 Numeric 3 "Point of service entry mode";
    23 Numeric 3 "Card sequence number";
    24 Numeric 3 "Network international identifier";
    25 Numeric 2 "Point of service condition code";
    26 Numeric 2 "Point of service PIN capture code";
    27 Numeric 1 "Authorization identification response length";
    28 Amount 9 "Amount, transaction fee";
    29 Amount 9 "Amount, settlement fee";
    30 Amount 9 "Amount, transaction processing fee";
    31 Amount 9 "Amount, settlement processing fee";
    32 LlNum 11 "Acquiring institution identification code";
    33 LlNum 11 "Forwarding institution identification code";
    34 LlChar 28 "PAN extended";
    35 LlNum 37 "Track 2 data";
    36 LllChar 104 "Track 3 data";
    37 Char 12 "Retrieval reference number";
    38 Char 6 "Authorization identification response";
    39 Char 2 "Response code";
    40 Char 3 "Service restriction code";
    41 Char 8 "Card acceptor terminal identification";
    42 Char 15 "Card acceptor identification code";
    43 Char 40 "Card acceptor name/location";
    44 LlChar 25 "Additional response data";
    45 LlChar 76 "Track 1 data";
    46 LllChar 999 "Additional data, ISO";
    47 LllChar 999 "Additional data, national";
    48 LllChar 999 "Additional data, private";
    49 Char 3 "Currency code, transaction";
    50 Char 3 "Currency code, settlement";
    51 Char 3 "Currency code, cardholder billing";
    52 Binary 8 "PIN data";
    53 Numeric 16 "Security related control information";
    54 LllChar 120 "Additional amounts";
    55 LllChar 999 "ICC data";
    56 LllChar 999 "Reserved ISO";
    57 LllChar 999 "Reserved national";
    58 LllChar 999 "Reserved national";
    59 LllChar 999 "Reserved national";
    60 LllChar 999 "Reserved private";
    61 LllChar 999 "Reserved private";
    62 LllChar 999 "Reserved private";
    63 LllChar 999 "Reserved private";
    64 Binary 8 "Message authentication code";
    65 Binary 1 "Bitmap, extended";
    66 Numeric 1 "Settlement code";
    67 Numeric 2 "Extended payment code";
    68 Numeric 3 "Receiving institution country code";
    69 Numeric 3 "Settlement institution country code";
    70 Numeric 3 "Network management information code";
    71 Numeric 4 "Message number";
    72 Numeric 4 "Message number, last";
    73 Numeric 6 "Date, action";
    74 Numeric 10 "Credits, number";
    75 Numeric 10 "Credits, reversal number";
    76 Numeric 10 "Debits, number";
    77 Numeric 10 "Debits, reversal number";
    78 Numeric 10 "Transfer, number";
    79 Numeric 10 "Transfer, reversal number";
    80 Numeric 10 "Inquiries, number";
    81 Numeric 10 "Authorizations, number";
    82 Numeric 12 "Credits, processing fee amount";
    83 Numeric 12 "Credits, transaction fee amount";
    84 Numeric 12 "Debits, processing fee amount";
    85 Numeric 12 "Debits, transaction fee amount";
    86 Numeric 16 "Credits, amount";
    87 Numeric 16 "Credits, reversal amount";
    88 Numeric 16 "Debits, amount";
    89 Numeric 16 "Debits, reversal amount";
    90 Numeric 42 "Original data elements";
    91 Char 1 "File update code";
    92 Char 2 "File security code";
    93 Char 6 "Response indicator";
    94 Char 7 "Service indicator";
    95 Char 42 "Replacement amounts";
    96 Binary 16 "Message security code";
    97 Amount 17 "Amount, net settlement";
    98 Char 25 "Payee";
    99 LlNum 11 "Settlement institution identification code";
    100 LlNum 11 "Receiving institution identification code";
    101 LlChar 17 "File name";
    102 LlChar 28 "Account identification 1";
    103 LlChar 28 "Account identification 2";
    104 LllChar 100 "Transaction description";
    105 LllChar 999 "Reserved ISO";
    106 LllChar 999 "Reserved ISO";
    107 LllChar 999 "Reserved ISO";
    108 LllChar 999 "Reserved ISO";
    109 LllChar 999 "Reserved ISO";
    110 LllChar 999 "Reserved ISO";
    111 LllChar 999 "Reserved ISO";
    112 LllChar 999 "Reserved national";
    113 LllChar 999 "Reserved national";
    114 LllChar 999 "Reserved national";
    115 LllChar 999 "Reserved national";
    116 LllChar 999 "Reserved national";
    117 LllChar 999 "Reserved national";
    118 LllChar 999 "Reserved national";
    119 LllChar 999 "Reserved national";
    120 LllChar 999 "Reserved private";
    121 LllChar 999 "Reserved private";
    122 LllChar 999 "Reserved private";
    123 LllChar 999 "Reserved private";
    124 LllChar 999 "Reserved private";
    125 LllChar 999 "Reserved private";
    126 LllChar 999 "Reserved private";
    127 LllChar 999 "Reserved private";
    128 Binary 8 "Message authentication code 2";
}

/// The definition of data element `number`, for 2..=128.
pub fn field(number: u8) -> Option<&'static FieldSpec> {
    if (2..=128).contains(&number) {
        FIELDS.get(usize::from(number))
    } else {
        None
    }
}

/// Track 2 is the one numeric field that may carry a non-digit (the `=` field separator).
pub const TRACK2: u8 = 35;

/// Whether `byte` may appear in the logical value of a digit field `number`.
pub(crate) fn is_digit_of(number: u8, byte: u8) -> bool {
    byte.is_ascii_digit() || (number == TRACK2 && byte == b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_number() {
        for (index, spec) in FIELDS.iter().enumerate().skip(2) {
            assert_eq!(
                usize::from(spec.number),
                index,
                "row {index} is out of place"
            );
            assert!(spec.len > 0);
        }
    }

    #[test]
    fn variable_fields_fit_their_prefix() {
        for spec in FIELDS.iter().skip(2) {
            match spec.kind {
                Kind::LlNum | Kind::LlChar => assert!(spec.len <= 99, "DE{}", spec.number),
                Kind::LllChar => assert!(spec.len <= 999, "DE{}", spec.number),
                _ => {}
            }
        }
    }

    #[test]
    fn the_fields_the_switch_uses_have_the_spec_formats() {
        // ../shared/spec/iso8583-host-interface.md §2
        let expect = [
            (2, Kind::LlNum, 19),
            (3, Kind::Numeric, 6),
            (4, Kind::Numeric, 12),
            (7, Kind::Numeric, 10),
            (11, Kind::Numeric, 6),
            (22, Kind::Numeric, 3),
            (35, Kind::LlNum, 37),
            (37, Kind::Char, 12),
            (41, Kind::Char, 8),
            (42, Kind::Char, 15),
            (48, Kind::LllChar, 999),
            (49, Kind::Char, 3),
            (52, Kind::Binary, 8),
            (54, Kind::LllChar, 120),
            (55, Kind::LllChar, 999),
            (60, Kind::LllChar, 999),
            (63, Kind::LllChar, 999),
            (70, Kind::Numeric, 3),
            (90, Kind::Numeric, 42),
        ];
        for (number, kind, len) in expect {
            let spec = field(number).unwrap();
            assert_eq!((spec.kind, spec.len), (kind, len), "DE{number}");
        }
        assert!(field(0).is_none() && field(1).is_none() && field(129).is_none());
    }
}
