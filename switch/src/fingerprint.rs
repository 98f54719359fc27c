//! §7's "same content" of a 0200: the fingerprint that tells a duplicate (same answer again)
//! from a different request under the same key (`94`).

use ssn_codec::MessageView;
use ssn_ledger::Fingerprint;

/// §7's "same content": everything the cardholder and the terminal decided, not the
/// transport (DE7 and DE11 are the key; DE52 changes with every PIN entry). In this order.
const CONTENT_FIELDS: [u8; 9] = [2, 3, 4, 12, 13, 14, 42, 48, 49];

/// Bytes reserved for a purchase's encoded content (a basket of a few items fits).
const CONTENT_BYTES_TYPICAL: usize = 256;

/// The fingerprint of a request's content: SHA-256 of the postcard encoding of the present
/// [`CONTENT_FIELDS`] as `Vec<(u8, Vec<u8>)>` (number, logical value). Fingerprints are
/// journaled and compared after restarts, so this definition is fixed; the encoding is
/// written here directly, one buffer instead of a vector per field.
pub(crate) fn content_fingerprint(request: &MessageView) -> Fingerprint {
    let mut out = Vec::with_capacity(CONTENT_BYTES_TYPICAL);
    // The sequence's length: at most nine fields, so one varint byte, filled in at the end.
    out.push(0);
    let mut count = 0u8;
    for &number in &CONTENT_FIELDS {
        let start = out.len();
        // The field's number, then its value's length as a one-byte varint to fix up.
        out.extend_from_slice(&[number, 0]);
        if !request.logical_into(number, |b| out.push(b)) {
            out.truncate(start);
            continue;
        }
        count += 1;
        let mut length = [0u8; VARINT_BYTES_MAX];
        let used = varint(out.len() - start - 2, &mut length);
        out.splice(start + 1..start + 2, length[..used].iter().copied());
    }
    out[0] = count;
    Fingerprint::of_encoded(&out)
}

/// Bytes of the longest postcard varint of a `usize` (64 bits, 7 a byte).
const VARINT_BYTES_MAX: usize = 10;

/// `value` as postcard writes a length (LEB128: 7 bits a byte, low first); the bytes used.
fn varint(mut value: usize, out: &mut [u8; VARINT_BYTES_MAX]) -> usize {
    let mut used = 0;
    while value >= 0x80 {
        out[used] = (value as u8) | 0x80;
        value >>= 7;
        used += 1;
    }
    out[used] = value as u8;
    used + 1
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use ssn_codec::{Message, Mti, Profile};

    use super::*;

    /// The fingerprint as first defined: the content built as a value, then `Fingerprint::of`.
    fn fingerprint_as_a_value(request: &MessageView) -> Fingerprint {
        let content: Vec<(u8, Vec<u8>)> = CONTENT_FIELDS
            .iter()
            .filter_map(|&n| request.logical(n).map(|v| (n, v)))
            .collect();
        Fingerprint::of(&content)
    }

    #[test]
    fn content_fingerprints_match_the_value_definition_in_both_profiles() {
        // A basket long enough for a two-byte length, one short, and none (an inquiry).
        let long = format!("03{}", "0101000000250000".repeat(9));
        for de48 in [Some(long.as_str()), Some("01010100000025000"), None] {
            for profile in [Profile::Bcd, Profile::Ascii] {
                let mut m = Message::new(Mti::FINANCIAL_REQUEST);
                for (n, v) in [
                    (2u8, "6037990000000001"),
                    (3, "000000"),
                    (4, "000000025000"),
                    (7, "1130120000"),
                    (11, "000001"),
                    (12, "200000"),
                    (13, "1130"),
                    (14, "2912"),
                    (41, "T0000001"),
                    (42, "EW0000000000001"),
                    (49, "360"),
                ] {
                    m.set(n, v.as_bytes()).expect("valid field");
                }
                if let Some(de48) = de48 {
                    m.set(48, de48.as_bytes()).expect("valid basket");
                }
                let mut wire = BytesMut::new();
                m.encode(profile, &mut wire);
                let view =
                    MessageView::decode(profile, Bytes::from(wire.to_vec())).expect("decodes");
                assert_eq!(
                    content_fingerprint(&view),
                    fingerprint_as_a_value(&view),
                    "{profile:?}, DE48 {de48:?}"
                );
            }
        }
    }

    #[test]
    fn varints_are_leb128() {
        let mut out = [0u8; VARINT_BYTES_MAX];
        assert_eq!((varint(5, &mut out), out[0]), (1, 5));
        assert_eq!((varint(300, &mut out), &out[..2]), (2, &[0xac, 0x02][..]));
        assert_eq!(varint(usize::MAX, &mut out), VARINT_BYTES_MAX);
    }
}
