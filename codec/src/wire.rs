//! How each kind of field is written in each profile: the only place that knows bytes.
//!
//! A field has a *logical value* — the digits, characters or bytes a person would name — and a
//! wire form per profile. Decoding validates the wire form and records where it lies ([`Span`]);
//! the logical value is produced on demand, so a decode copies nothing.

use bytes::{BufMut, BytesMut};

use crate::error::FieldError;
use crate::spec::{FieldSpec, Kind, is_digit_of};

/// A wire profile: which jPOS packager's encodings the bytes follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// jPOS `ISO87APackager`: everything in ASCII, bitmaps and binary fields as hex.
    Ascii,
    /// jPOS `ISO87BPackager`: numbers in packed BCD, lengths in BCD, binary as bytes.
    Bcd,
}

impl Profile {
    /// The profile's name as used in configuration (`ascii`, `bcd`).
    pub const fn name(&self) -> &'static str {
        match self {
            Profile::Ascii => "ascii",
            Profile::Bcd => "bcd",
        }
    }
}

/// Where a decoded field's body starts in its message, and its logical length (digits,
/// characters or bytes); the body's byte length follows from the units and the profile.
/// `u16` is enough: decoding refuses messages over 65,535 bytes. Four bytes, so the span
/// table of a view stays small to build and move.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u16,
    pub units: u16,
}

impl Span {
    /// Bytes of the body on the wire.
    pub(crate) fn len(&self, profile: Profile, kind: Kind) -> usize {
        body_bytes(profile, kind, usize::from(self.units))
    }
}

/// Bytes on the wire of a BCD body holding `digits` digits.
const fn bcd_bytes(digits: usize) -> usize {
    digits.div_ceil(2)
}

/// Nibble `i` (0 = high nibble of byte 0) of `raw`.
fn nibble(raw: &[u8], i: usize) -> u8 {
    match raw.get(i / 2) {
        Some(b) if i.is_multiple_of(2) => b >> 4,
        Some(b) => b & 0x0f,
        None => 0,
    }
}

/// The logical character of a BCD nibble in field `number`, if it may hold one.
fn nibble_char(number: u8, n: u8) -> Option<u8> {
    match n {
        0..=9 => Some(b'0' + n),
        0x0d if number == crate::spec::TRACK2 => Some(b'='),
        _ => None,
    }
}

/// `HEX_VALUES[c]`: the value of hex digit `c` (either case), or `0xff` for anything else.
/// Bitmaps of every `ascii` message go through it, so it is a table rather than a match.
static HEX_VALUES: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = match c as u8 {
            b'0'..=b'9' => c as u8 - b'0',
            b'A'..=b'F' => c as u8 - b'A' + 10,
            b'a'..=b'f' => c as u8 - b'a' + 10,
            _ => 0xff,
        };
        c += 1;
    }
    table
};

fn hex_value(c: u8) -> Option<u8> {
    let value = HEX_VALUES[usize::from(c)];
    (value != 0xff).then_some(value)
}

/// `TRACK2_CHARS[c]`: `c` may appear in an `ascii` track 2 (a digit or `=`).
static TRACK2_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = (c as u8).is_ascii_digit() || c as u8 == b'=';
        c += 1;
    }
    table
};

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Decodes hex pairs from `hex` (even length assumed) into a sink; false on a non-hex char.
pub(crate) fn unhex(hex: &[u8], mut sink: impl FnMut(u8)) -> bool {
    for pair in hex.chunks_exact(2) {
        match (hex_value(pair[0]), hex_value(pair[1])) {
            (Some(h), Some(l)) => sink(h << 4 | l),
            _ => return false,
        }
    }
    true
}

fn put_hex(out: &mut BytesMut, bytes: &[u8]) {
    // Written through a stack buffer: one capacity check per field, not two per byte.
    let mut buffer = [0u8; 64];
    for chunk in bytes.chunks(32) {
        for (pair, b) in buffer.chunks_exact_mut(2).zip(chunk) {
            pair[0] = HEX_UPPER[usize::from(b >> 4)];
            pair[1] = HEX_UPPER[usize::from(b & 0x0f)];
        }
        out.put_slice(&buffer[..chunk.len() * 2]);
    }
}

/// Reads a `u64` from up to 16 hex characters.
pub(crate) fn hex_word(hex: &[u8]) -> Option<u64> {
    let mut word = 0u64;
    let mut ok = true;
    ok &= unhex(hex, |b| word = word << 8 | u64::from(b));
    ok.then_some(word)
}

pub(crate) fn put_hex_word(out: &mut BytesMut, word: u64) {
    put_hex(out, &word.to_be_bytes());
}

/// Reads `count` digits of packed BCD (a BCD length prefix or the MTI); `None` on a nibble > 9.
pub(crate) fn bcd_number(raw: &[u8], count: usize) -> Option<u16> {
    let skip = raw.len() * 2 - count;
    let mut value = 0u16;
    for i in skip..raw.len() * 2 {
        let n = nibble(raw, i);
        if n > 9 {
            return None;
        }
        value = value * 10 + u16::from(n);
    }
    Some(value)
}

fn ascii_number(raw: &[u8]) -> Option<u16> {
    raw.iter().try_fold(0u16, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u16::from(c - b'0'))
    })
}

/// Packs ASCII digits (and `=` as `D`) into BCD, a zero nibble first when `left_pad` and the
/// count is odd, or last otherwise. Packed into a stack buffer and written once: numeric
/// fields hold at most 42 digits (DE90).
fn put_bcd(out: &mut BytesMut, digits: &[u8], left_pad: bool) {
    let mut buffer = [0u8; 32];
    let mut n = 0;
    let rest = match digits.split_first() {
        Some((&first, tail)) if left_pad && digits.len() % 2 == 1 => {
            buffer[0] = NIBBLES[usize::from(first)];
            n = 1;
            tail
        }
        _ => digits,
    };
    let mut pairs = rest.chunks_exact(2);
    for pair in &mut pairs {
        if n >= buffer.len() {
            break;
        }
        buffer[n] = NIBBLES[usize::from(pair[0])] << 4 | NIBBLES[usize::from(pair[1])];
        n += 1;
    }
    if let ([last], true) = (pairs.remainder(), n < buffer.len()) {
        buffer[n] = NIBBLES[usize::from(*last)] << 4;
        n += 1;
    }
    out.put_slice(&buffer[..n]);
}

/// `NIBBLES[c]`: the BCD nibble of a validated logical character (`=` is `D`).
static NIBBLES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = if c as u8 == b'=' {
            0x0d
        } else {
            (c as u8).wrapping_sub(b'0') & 0x0f
        };
        c += 1;
    }
    table
};

/// Reads the field described by `spec` at `pos` of `buf`, validating every byte, and returns
/// its span and the position after it.
#[inline(always)]
pub(crate) fn read_field(
    profile: Profile,
    spec: &FieldSpec,
    buf: &[u8],
    pos: usize,
) -> Result<(Span, usize), FieldError> {
    let (units, body_start) = read_length(profile, spec, buf, pos)?;
    let body_len = body_bytes(profile, spec.kind, units);
    let body_end = body_start + body_len;
    let body = buf.get(body_start..body_end).ok_or(FieldError::Truncated)?;
    validate_body(profile, spec, body, units)?;
    // The caller refuses buffers over 65,535 bytes and units are at most 999, so neither
    // conversion can truncate.
    let span = Span {
        start: body_start as u16,
        units: units as u16,
    };
    Ok((span, body_end))
}

#[inline(always)]
fn read_length(
    profile: Profile,
    spec: &FieldSpec,
    buf: &[u8],
    pos: usize,
) -> Result<(usize, usize), FieldError> {
    let prefix_len = prefix_bytes(profile, spec.kind);
    if prefix_len == 0 {
        return Ok((usize::from(spec.len), pos));
    }
    let prefix = buf
        .get(pos..pos + prefix_len)
        .ok_or(FieldError::Truncated)?;
    let len = match profile {
        Profile::Ascii => ascii_number(prefix),
        Profile::Bcd => bcd_number(prefix, prefix_len * 2),
    }
    .ok_or(FieldError::BadLengthPrefix)?;
    if len > spec.len {
        return Err(FieldError::LengthAboveMax { len, max: spec.len });
    }
    Ok((usize::from(len), pos + prefix_len))
}

/// Wire bytes of a field's length prefix: 2 or 3 ASCII digits, 1 or 2 BCD bytes, or none for
/// a fixed-length kind.
#[inline(always)]
pub(crate) fn prefix_bytes(profile: Profile, kind: Kind) -> usize {
    let digits = match kind {
        Kind::LlNum | Kind::LlChar => 2,
        Kind::LllChar => 3,
        _ => return 0,
    };
    match profile {
        Profile::Ascii => digits,
        Profile::Bcd => bcd_bytes(digits),
    }
}

/// Wire bytes of a body of `units` logical units.
#[inline(always)]
fn body_bytes(profile: Profile, kind: Kind, units: usize) -> usize {
    match (profile, kind) {
        (Profile::Ascii, Kind::Binary) => units * 2,
        (Profile::Bcd, Kind::Numeric | Kind::LlNum) => bcd_bytes(units),
        (Profile::Bcd, Kind::Amount) => 1 + bcd_bytes(units.saturating_sub(1)),
        _ => units,
    }
}

#[inline(always)]
fn validate_body(
    profile: Profile,
    spec: &FieldSpec,
    body: &[u8],
    units: usize,
) -> Result<(), FieldError> {
    let ok = match (profile, spec.kind) {
        (_, Kind::Char | Kind::LlChar | Kind::LllChar) => true,
        (Profile::Bcd, Kind::Binary) => true,
        (Profile::Ascii, Kind::Binary) => body.iter().all(|&c| hex_value(c).is_some()),
        (Profile::Ascii, Kind::Numeric | Kind::LlNum) if spec.number != crate::spec::TRACK2 => {
            all_ascii_digits(body)
        }
        (Profile::Ascii, Kind::Numeric | Kind::LlNum) => {
            body.iter().all(|&c| TRACK2_CHARS[usize::from(c)])
        }
        (Profile::Bcd, Kind::Numeric) => bcd_valid(spec.number, body, units, true),
        (Profile::Bcd, Kind::LlNum) => bcd_valid(spec.number, body, units, false),
        (_, Kind::Amount) => {
            let (sign, digits) = body.split_first().ok_or(FieldError::Truncated)?;
            if !matches!(sign, b'C' | b'D') {
                return Err(FieldError::BadSign);
            }
            match profile {
                Profile::Ascii => digits.iter().all(u8::is_ascii_digit),
                Profile::Bcd => bcd_valid(spec.number, digits, units.saturating_sub(1), true),
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err(FieldError::BadCharacter)
    }
}

const LOW_NIBBLES: u64 = 0x0F0F_0F0F_0F0F_0F0F;
const SIXES: u64 = 0x0606_0606_0606_0606;
const CARRIES: u64 = 0x1010_1010_1010_1010;

/// Whether every nibble of `bytes` is a decimal digit, eight bytes at a time: a nibble is
/// at most 9 exactly when adding 6 does not carry into bit 4.
fn all_bcd_digits(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    let words_ok = chunks.all(|chunk| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        ((x & LOW_NIBBLES) + SIXES) & CARRIES == 0
            && (((x >> 4) & LOW_NIBBLES) + SIXES) & CARRIES == 0
    });
    words_ok
        && chunks
            .remainder()
            .iter()
            .all(|&b| BCD_PAIR_OK[usize::from(b)])
}

/// `BCD_PAIR_OK[b]`: both nibbles of `b` are decimal digits. One load a byte for the short
/// fields (DE3, DE11, DE12, ...) that never fill a 64-bit word.
static BCD_PAIR_OK: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b & 0x0f <= 9 && b >> 4 <= 9;
        b += 1;
    }
    table
};

/// Whether every byte of `bytes` is an ASCII digit, eight bytes at a time.
pub(crate) fn all_ascii_digits(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    let words_ok = chunks.all(|chunk| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        x & !LOW_NIBBLES == 0x3030_3030_3030_3030 && ((x & LOW_NIBBLES) + SIXES) & CARRIES == 0
    });
    words_ok
        && chunks
            .remainder()
            .iter()
            .all(|&c| c.wrapping_sub(b'0') < 10)
}

/// Whether a BCD body of `units` digits has only allowed nibbles. The pad nibble of an odd
/// count may be `0` or `F` (some terminals pad with `F`); it is not part of the value.
/// This is the hottest check of a `bcd` decode, so plain digits go eight bytes at a time.
#[inline(always)]
fn bcd_valid(number: u8, body: &[u8], units: usize, left_pad: bool) -> bool {
    let track2 = number == crate::spec::TRACK2;
    let digit = |n: u8| n <= 9 || (track2 && n == 0x0d);
    let pairs = |bytes: &[u8]| {
        if track2 {
            bytes.iter().all(|&b| digit(b >> 4) && digit(b & 0x0f))
        } else {
            all_bcd_digits(bytes)
        }
    };
    let pad = |n: u8| n == 0 || n == 0x0f;
    if units.is_multiple_of(2) {
        return pairs(body);
    }
    if left_pad {
        match body.split_first() {
            Some((&first, rest)) => pad(first >> 4) && digit(first & 0x0f) && pairs(rest),
            None => false,
        }
    } else {
        match body.split_last() {
            Some((&last, rest)) => digit(last >> 4) && pad(last & 0x0f) && pairs(rest),
            None => false,
        }
    }
}

/// Feeds the logical value of a validated field body to `sink`.
pub(crate) fn logical(
    profile: Profile,
    spec: &FieldSpec,
    body: &[u8],
    units: usize,
    mut sink: impl FnMut(u8),
) {
    match (profile, spec.kind) {
        (Profile::Ascii, Kind::Binary) => {
            unhex(body, sink);
        }
        (Profile::Bcd, Kind::Numeric | Kind::LlNum) => {
            let left_pad = spec.kind == Kind::Numeric;
            bcd_digits(spec.number, body, units, left_pad, sink);
        }
        (Profile::Bcd, Kind::Amount) => {
            if let Some((sign, digits)) = body.split_first() {
                sink(*sign);
                bcd_digits(spec.number, digits, units.saturating_sub(1), true, sink);
            }
        }
        _ => body.iter().for_each(|&b| sink(b)),
    }
}

fn bcd_digits(number: u8, body: &[u8], units: usize, left_pad: bool, mut sink: impl FnMut(u8)) {
    let char_of = |n: u8| nibble_char(number, n).unwrap_or(b'?');
    let skip_first = left_pad && units % 2 == 1;
    let mut remaining = units;
    for (i, &b) in body.iter().enumerate() {
        if !(i == 0 && skip_first) && remaining > 0 {
            sink(char_of(b >> 4));
            remaining -= 1;
        }
        if remaining > 0 {
            sink(char_of(b & 0x0f));
            remaining -= 1;
        }
    }
}

/// Checks a logical value against its field's definition before it is encoded.
pub(crate) fn validate_logical(spec: &FieldSpec, value: &[u8]) -> Result<(), FieldError> {
    let fixed = !spec.is_variable();
    if fixed && value.len() != usize::from(spec.len) {
        return Err(FieldError::WrongLength {
            len: value.len(),
            expected: spec.len,
        });
    }
    if value.len() > usize::from(spec.len) {
        return Err(FieldError::LengthAboveMax {
            len: u16::try_from(value.len()).unwrap_or(u16::MAX),
            max: spec.len,
        });
    }
    let ok = match spec.kind {
        Kind::Numeric | Kind::LlNum => value.iter().all(|&c| is_digit_of(spec.number, c)),
        Kind::Amount => match value.split_first() {
            Some((b'C' | b'D', digits)) => digits.iter().all(u8::is_ascii_digit),
            _ => return Err(FieldError::BadSign),
        },
        Kind::Char | Kind::LlChar | Kind::LllChar | Kind::Binary => true,
    };
    if ok {
        Ok(())
    } else {
        Err(FieldError::BadCharacter)
    }
}

/// Writes a field whose logical value passed [`validate_logical`].
pub(crate) fn write_field(profile: Profile, spec: &FieldSpec, value: &[u8], out: &mut BytesMut) {
    let units = value.len();
    let prefix_digits = match spec.kind {
        Kind::LlNum | Kind::LlChar => 2,
        Kind::LllChar => 3,
        _ => 0,
    };
    if prefix_digits > 0 {
        write_length(profile, prefix_digits, units, out);
    }
    match (profile, spec.kind) {
        (Profile::Ascii, Kind::Binary) => put_hex(out, value),
        (Profile::Bcd, Kind::Numeric) => put_bcd(out, value, true),
        (Profile::Bcd, Kind::LlNum) => put_bcd(out, value, false),
        (Profile::Bcd, Kind::Amount) => {
            if let Some((sign, digits)) = value.split_first() {
                out.put_u8(*sign);
                put_bcd(out, digits, true);
            }
        }
        _ => out.put_slice(value),
    }
}

fn write_length(profile: Profile, digits: usize, len: usize, out: &mut BytesMut) {
    // Lengths are at most 999 (validated), so these casts cannot truncate.
    let len = len.min(999) as u16;
    match (profile, digits) {
        (Profile::Ascii, 2) => out.put_slice(&[b'0' + (len / 10) as u8, b'0' + (len % 10) as u8]),
        (Profile::Ascii, _) => out.put_slice(&[
            b'0' + (len / 100) as u8,
            b'0' + (len / 10 % 10) as u8,
            b'0' + (len % 10) as u8,
        ]),
        (Profile::Bcd, 2) => out.put_u8(((len / 10) as u8) << 4 | (len % 10) as u8),
        (Profile::Bcd, _) => {
            out.put_u8((len / 100) as u8);
            out.put_u8(((len / 10 % 10) as u8) << 4 | (len % 10) as u8);
        }
    }
}

/// Writes the MTI.
pub(crate) fn write_mti(profile: Profile, digits: &[u8; 4], out: &mut BytesMut) {
    match profile {
        Profile::Ascii => out.put_slice(digits),
        Profile::Bcd => put_bcd(out, digits, true),
    }
}

/// Reads the MTI at the start of `buf`; returns its digits and its wire length.
pub(crate) fn read_mti(profile: Profile, buf: &[u8]) -> Option<Result<([u8; 4], usize), ()>> {
    let wire_len = match profile {
        Profile::Ascii => 4,
        Profile::Bcd => 2,
    };
    let raw = buf.get(..wire_len)?;
    let mut digits = [0u8; 4];
    let ok = match profile {
        Profile::Ascii => {
            digits.copy_from_slice(raw);
            digits.iter().all(u8::is_ascii_digit)
        }
        Profile::Bcd => (0..4).all(|i| {
            let n = nibble(raw, i);
            digits[i] = b'0' + n;
            n <= 9
        }),
    };
    Some(if ok { Ok((digits, wire_len)) } else { Err(()) })
}

/// Bytes on the wire of one bitmap word.
pub(crate) const fn bitmap_bytes(profile: Profile) -> usize {
    match profile {
        Profile::Ascii => 16,
        Profile::Bcd => 8,
    }
}

/// Reads one 64-bit bitmap word; `None` when truncated, `Some(None)` when not hexadecimal.
pub(crate) fn read_bitmap_word(profile: Profile, raw: &[u8]) -> Option<u64> {
    match profile {
        Profile::Ascii => hex_word(raw),
        Profile::Bcd => raw.try_into().ok().map(u64::from_be_bytes),
    }
}

pub(crate) fn write_bitmap_word(profile: Profile, word: u64, out: &mut BytesMut) {
    match profile {
        Profile::Ascii => put_hex_word(out, word),
        Profile::Bcd => out.put_u64(word),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::field;

    fn wire(profile: Profile, number: u8, value: &[u8]) -> Vec<u8> {
        let spec = field(number).unwrap();
        validate_logical(spec, value).unwrap();
        let mut out = BytesMut::new();
        write_field(profile, spec, value, &mut out);
        out.to_vec()
    }

    fn back(profile: Profile, number: u8, bytes: &[u8]) -> Vec<u8> {
        let spec = field(number).unwrap();
        let (span, end) = read_field(profile, spec, bytes, 0).unwrap();
        assert_eq!(end, bytes.len());
        let body =
            &bytes[usize::from(span.start)..usize::from(span.start) + span.len(profile, spec.kind)];
        let mut value = Vec::new();
        logical(profile, spec, body, usize::from(span.units), |b| {
            value.push(b)
        });
        value
    }

    #[test]
    fn bcd_forms_match_the_spec_table() {
        // DE2: LL counts digits, odd length right-padded with a zero nibble.
        assert_eq!(
            wire(Profile::Bcd, 2, b"6048721234567"),
            [0x13, 0x60, 0x48, 0x72, 0x12, 0x34, 0x56, 0x70]
        );
        // DE22: n3 left-padded to 2 bytes.
        assert_eq!(wire(Profile::Bcd, 22, b"051"), [0x00, 0x51]);
        // DE35: `=` as nibble D, right-padded.
        assert_eq!(wire(Profile::Bcd, 35, b"123=45"), [0x06, 0x12, 0x3d, 0x45]);
        assert_eq!(wire(Profile::Bcd, 35, b"1=2"), [0x03, 0x1d, 0x20]);
        // DE48: LLL as two BCD bytes, then ASCII.
        assert_eq!(wire(Profile::Bcd, 48, b"B1"), [0x00, 0x02, b'B', b'1']);
        // DE49: three ASCII characters.
        assert_eq!(wire(Profile::Bcd, 49, b"360"), *b"360");
        // DE28: sign, then 8 digits packed.
        assert_eq!(
            wire(Profile::Bcd, 28, b"D00000150"),
            [b'D', 0x00, 0x00, 0x01, 0x50]
        );
        // DE52: 8 raw bytes.
        assert_eq!(
            wire(Profile::Bcd, 52, &[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]),
            [0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]
        );
    }

    #[test]
    fn ascii_forms_match_the_spec_table() {
        assert_eq!(
            wire(Profile::Ascii, 2, b"6048721234567"),
            *b"136048721234567"
        );
        assert_eq!(wire(Profile::Ascii, 48, b"B1"), *b"002B1");
        assert_eq!(
            wire(Profile::Ascii, 52, &[0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]),
            *b"DEADBEEF00010203"
        );
        assert_eq!(wire(Profile::Ascii, 65, &[0x5a]), *b"5A");
    }

    #[test]
    fn round_trips_and_padding() {
        for profile in [Profile::Ascii, Profile::Bcd] {
            for (n, v) in [
                (2, &b"4111111111111111111"[..]),
                (2, b""),
                (35, b"4111=2512"),
                (90, &[b'1'; 42]),
                (97, b"C0000000000000001"),
            ] {
                assert_eq!(
                    back(profile, n, &wire(profile, n, v)),
                    v,
                    "{profile:?} DE{n}"
                );
            }
        }
        // An F pad nibble is accepted and is not part of the value.
        assert_eq!(back(Profile::Bcd, 2, &[0x03, 0x12, 0x3f]), b"123");
        assert_eq!(back(Profile::Bcd, 22, &[0xf0, 0x51]), b"051");
        // Lower-case hex is read.
        assert_eq!(back(Profile::Ascii, 65, b"5a"), [0x5a]);
    }

    #[test]
    fn rejects_what_the_kind_forbids() {
        let spec = field(2).unwrap();
        assert_eq!(
            read_field(Profile::Bcd, spec, &[0x20, 0x12], 0),
            Err(FieldError::LengthAboveMax { len: 20, max: 19 })
        );
        assert_eq!(
            read_field(Profile::Bcd, spec, &[0x1a], 0),
            Err(FieldError::BadLengthPrefix)
        );
        assert_eq!(
            read_field(Profile::Bcd, spec, &[0x03, 0x12, 0x35], 0),
            Err(FieldError::BadCharacter)
        );
        assert_eq!(
            read_field(Profile::Bcd, spec, &[0x04, 0x12, 0x3a], 0),
            Err(FieldError::BadCharacter)
        );
        assert_eq!(
            read_field(Profile::Bcd, spec, &[0x04, 0x12], 0),
            Err(FieldError::Truncated)
        );
        assert_eq!(
            read_field(Profile::Ascii, spec, b"0212", 0).map(|r| r.1),
            Ok(4)
        );
        assert_eq!(
            read_field(Profile::Ascii, spec, b"021=", 0),
            Err(FieldError::BadCharacter)
        );
        assert_eq!(
            read_field(Profile::Ascii, field(35).unwrap(), b"021=", 0).map(|r| r.1),
            Ok(4)
        );
        assert_eq!(
            read_field(Profile::Ascii, field(28).unwrap(), b"X00000000", 0),
            Err(FieldError::BadSign)
        );
        assert_eq!(
            read_field(Profile::Ascii, field(52).unwrap(), b"0123456789ABCDEG", 0),
            Err(FieldError::BadCharacter)
        );
        assert_eq!(
            validate_logical(field(3).unwrap(), b"12345"),
            Err(FieldError::WrongLength {
                len: 5,
                expected: 6
            })
        );
        assert_eq!(
            validate_logical(field(3).unwrap(), b"12345a"),
            Err(FieldError::BadCharacter)
        );
    }
}
