//! Hex for keys, check values and blocks. Decoding writes into storage the caller owns, so key
//! material never passes through a growable buffer that would be freed without being zeroized.

/// The value of one hex digit, either case.
fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Decodes `text` into `out`, which it must fill exactly (two digits a byte). On `false`, `out`
/// holds a partial decode: callers drop storage that zeroizes itself.
#[must_use]
pub(crate) fn decode_into(text: &str, out: &mut [u8]) -> bool {
    let text = text.as_bytes();
    if text.len() != out.len().saturating_mul(2) {
        return false;
    }
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let [high, low] = pair else { return false };
        match (nibble(*high), nibble(*low)) {
            (Some(high), Some(low)) => *byte = high << 4 | low,
            _ => return false,
        }
    }
    true
}

/// Appends `bytes` to `out` as uppercase hex, the form HSM consoles and terminal vendors use.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for byte in bytes {
        for value in [byte >> 4, byte & 0x0F] {
            out.push(char::from(DIGITS[usize::from(value)]));
        }
    }
}

/// `bytes` as uppercase hex in a new string.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    encode_into(bytes, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_either_case_and_encodes_upper() {
        let mut out = [0u8; 3];
        assert!(decode_into("08d7B4", &mut out));
        assert_eq!(out, [0x08, 0xD7, 0xB4]);
        assert_eq!(encode(&out), "08D7B4");
    }

    #[test]
    fn rejects_wrong_length_and_non_hex() {
        let mut out = [0u8; 2];
        assert!(!decode_into("ABC", &mut out));
        assert!(!decode_into("ABCDEF", &mut out));
        assert!(!decode_into("ABCG", &mut out));
        assert!(!decode_into("AB\u{e9}", &mut out));
    }
}
