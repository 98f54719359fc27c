//! Decoding: a zero-copy view of one message.

use bytes::Bytes;

use crate::bitmap::Bitmap;
use crate::error::{DecodeError, FieldError};
use crate::mti::Mti;
use crate::pan::Pan;
use crate::spec::{self, Kind};
use crate::wire::{self, Profile, Span};

/// The longest message the codec decodes. Both framings carry less (`ascii`: 9,999 bytes;
/// `bcd`: 65,535 including the TPDU), and spans are `u16`.
pub const MESSAGE_BYTES_MAX: usize = u16::MAX as usize;

/// A decoded message: the bytes it came in, and where each present field lies in them.
///
/// Decoding validates every field against its definition and copies nothing; accessors
/// produce logical values on demand. Building one allocates nothing.
#[derive(Clone)]
pub struct MessageView {
    /// The message bytes (no length header, no TPDU), shared with the frame they came in.
    bytes: Bytes,
    /// The profile the bytes follow, which says how to read each span.
    profile: Profile,
    /// The message type.
    mti: Mti,
    /// The data elements present (bit 1 is never set here).
    present: Bitmap,
    /// Where each present field's body lies, indexed by field number.
    spans: [Span; 129],
}

/// A message that could not be decoded, with whatever of it could be read before the fault,
/// so the switch can still answer `30` when it knows whom to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeFailure {
    /// What is wrong.
    pub error: DecodeError,
    /// The MTI, if it was readable.
    pub mti: Option<Mti>,
    /// DE11, if it was present and decoded before the fault.
    pub stan: Option<[u8; 6]>,
    /// DE41, if it was present and decoded before the fault.
    pub terminal_id: Option<[u8; 8]>,
}

impl MessageView {
    /// Decodes `bytes` as one message of `profile`.
    pub fn decode(profile: Profile, bytes: Bytes) -> Result<MessageView, DecodeFailure> {
        let mut view = MessageView {
            bytes,
            profile,
            mti: Mti::FINANCIAL_REQUEST,
            present: Bitmap::EMPTY,
            spans: [Span::default(); 129],
        };
        match view.fill() {
            Ok(()) => Ok(view),
            Err((error, mti_read)) => Err(view.failure(error, mti_read)),
        }
    }

    /// Reads the MTI, bitmaps and fields in order; on a fault, says whether the MTI was read.
    fn fill(&mut self) -> Result<(), (DecodeError, bool)> {
        let buf: &[u8] = &self.bytes;
        if buf.len() > MESSAGE_BYTES_MAX {
            return Err((DecodeError::TooLong(buf.len()), false));
        }
        let (digits, mut pos) = match wire::read_mti(self.profile, buf) {
            None => return Err((DecodeError::MissingMti, false)),
            Some(Err(())) => return Err((DecodeError::BadMti, false)),
            Some(Ok(read)) => read,
        };
        self.mti = Mti::new(digits).ok_or((DecodeError::BadMti, false))?;
        let word_len = wire::bitmap_bytes(self.profile);
        let primary = read_word(self.profile, buf, pos).map_err(|e| (e, true))?;
        pos += word_len;
        let secondary = if primary >> 63 == 1 {
            let word = read_word(self.profile, buf, pos).map_err(|e| (e, true))?;
            pos += word_len;
            word
        } else {
            0
        };
        let present = Bitmap::from_words(primary, secondary);
        for number in present.fields() {
            let read = match spec::field(number) {
                Some(spec) => wire::read_field(self.profile, spec, buf, pos),
                None => Err(FieldError::NoSuchField),
            };
            match read {
                Ok((span, next)) => {
                    if let Some(slot) = self.spans.get_mut(usize::from(number)) {
                        *slot = span;
                    }
                    pos = next;
                }
                Err(error) => {
                    // What was read before the fault stays readable for `failure`.
                    self.present = present.below(number);
                    let error = DecodeError::Field {
                        field: number,
                        error,
                    };
                    return Err((error, true));
                }
            }
        }
        self.present = present;
        if pos != buf.len() {
            return Err((DecodeError::TrailingBytes(buf.len() - pos), true));
        }
        Ok(())
    }

    fn failure(&self, error: DecodeError, mti_read: bool) -> DecodeFailure {
        DecodeFailure {
            error,
            mti: mti_read.then_some(self.mti),
            stan: self.digits::<6>(11),
            terminal_id: self.text(41).and_then(|t| t.try_into().ok()),
        }
    }

    /// The message type.
    pub fn mti(&self) -> Mti {
        self.mti
    }

    /// The profile the message was decoded with.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The data elements present.
    pub fn present(&self) -> Bitmap {
        self.present
    }

    /// Whether data element `number` is present.
    pub fn has(&self, number: u8) -> bool {
        self.present.contains(number)
    }

    /// The message's bytes as received.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The message's bytes before field `number`: from the MTI up to where the field's
    /// encoding (its length prefix, when it has one) begins; `None` when it is absent. For the
    /// MAC field (DE64 or DE128, always the last present) this is what the MAC is computed
    /// over (host interface §10).
    pub fn bytes_before(&self, number: u8) -> Option<&[u8]> {
        if !self.present.contains(number) {
            return None;
        }
        let spec = spec::field(number)?;
        let span = self.spans.get(usize::from(number))?;
        let start =
            usize::from(span.start).checked_sub(wire::prefix_bytes(self.profile, spec.kind))?;
        self.bytes.get(..start)
    }

    /// The wire body of a present field, with its definition and logical length.
    fn body(&self, number: u8) -> Option<(&'static spec::FieldSpec, &[u8], usize)> {
        if !self.present.contains(number) {
            return None;
        }
        let spec = spec::field(number)?;
        let span = self.spans.get(usize::from(number))?;
        let start = usize::from(span.start);
        let body = self
            .bytes
            .get(start..start + span.len(self.profile, spec.kind))?;
        Some((spec, body, usize::from(span.units)))
    }

    /// Feeds the logical value of field `number` to `sink`; false when the field is absent.
    pub fn logical_into(&self, number: u8, sink: impl FnMut(u8)) -> bool {
        match self.body(number) {
            Some((spec, body, units)) => {
                wire::logical(self.profile, spec, body, units, sink);
                true
            }
            None => false,
        }
    }

    /// The logical value of field `number`, allocated. For tests, tools and `describe`; the
    /// switch uses the typed accessors.
    pub fn logical(&self, number: u8) -> Option<Vec<u8>> {
        let mut value = Vec::new();
        self.logical_into(number, |b| value.push(b))
            .then_some(value)
    }

    /// The logical length of field `number` (digits, characters or bytes).
    pub fn units(&self, number: u8) -> Option<usize> {
        self.body(number).map(|(_, _, units)| units)
    }

    /// The logical value of a body into a fixed array (callers check it fits); no allocation.
    fn logical_array<const N: usize>(
        &self,
        spec: &spec::FieldSpec,
        body: &[u8],
        units: usize,
    ) -> [u8; N] {
        let mut out = [0u8; N];
        let mut i = 0;
        wire::logical(self.profile, spec, body, units, |b| {
            if let Some(slot) = out.get_mut(i) {
                *slot = b;
            }
            i += 1;
        });
        out
    }

    /// A numeric field of exactly `N` digits as ASCII digits.
    pub fn digits<const N: usize>(&self, number: u8) -> Option<[u8; N]> {
        let (spec, body, units) = self.body(number)?;
        if units != N || !matches!(spec.kind, Kind::Numeric | Kind::LlNum) {
            return None;
        }
        Some(self.logical_array(spec, body, units))
    }

    /// A numeric field of up to 19 digits as a number.
    pub fn number(&self, number: u8) -> Option<u64> {
        let (spec, body, units) = self.body(number)?;
        if units > 19 || !matches!(spec.kind, Kind::Numeric | Kind::LlNum) {
            return None;
        }
        let mut value = 0u64;
        let mut ok = true;
        wire::logical(self.profile, spec, body, units, |b| {
            ok &= b.is_ascii_digit();
            value = value
                .wrapping_mul(10)
                .wrapping_add(u64::from(b.wrapping_sub(b'0')));
        });
        // 19 digits always fit in a u64, so wrapping never happens for digit input.
        ok.then_some(value)
    }

    /// A character field's bytes as received (fixed fields keep their padding).
    pub fn text(&self, number: u8) -> Option<&[u8]> {
        match self.body(number)? {
            (spec, body, _) if matches!(spec.kind, Kind::Char | Kind::LlChar | Kind::LllChar) => {
                Some(body)
            }
            _ => None,
        }
    }

    /// A binary field of exactly `N` bytes.
    pub fn binary<const N: usize>(&self, number: u8) -> Option<[u8; N]> {
        let (spec, body, units) = self.body(number)?;
        if spec.kind != Kind::Binary || units != N {
            return None;
        }
        Some(self.logical_array(spec, body, units))
    }

    /// DE2, the primary account number.
    pub fn pan(&self) -> Option<Pan> {
        let digits = self.digits_var::<19>(2)?;
        Pan::from_digits(digits.0.get(..digits.1)?).ok()
    }

    /// A variable numeric field of at most `N` digits into a fixed buffer and its length.
    fn digits_var<const N: usize>(&self, number: u8) -> Option<([u8; N], usize)> {
        let (spec, body, units) = self.body(number)?;
        if units > N {
            return None;
        }
        Some((self.logical_array(spec, body, units), units))
    }

    /// DE35, track 2, split at its separator into PAN and the four expiry digits (YYMM)
    /// that follow it. `None` when absent or not of that shape.
    pub fn track2(&self) -> Option<(Pan, [u8; 4])> {
        let (digits, len) = self.digits_var::<37>(35)?;
        let track = digits.get(..len)?;
        let separator = track.iter().position(|&b| b == b'=')?;
        let pan = Pan::from_digits(track.get(..separator)?).ok()?;
        let expiry = track.get(separator + 1..separator + 5)?.try_into().ok()?;
        Some((pan, expiry))
    }

    /// DE3, processing code.
    pub fn processing_code(&self) -> Option<[u8; 6]> {
        self.digits::<6>(3)
    }

    /// DE4, transaction amount in minor units.
    pub fn amount(&self) -> Option<u64> {
        self.number(4)
    }

    /// DE7, transmission date and time MMDDhhmmss.
    pub fn transmission_date_time(&self) -> Option<[u8; 10]> {
        self.digits::<10>(7)
    }

    /// DE11, system trace audit number.
    pub fn stan(&self) -> Option<[u8; 6]> {
        self.digits::<6>(11)
    }

    /// DE14, card expiry YYMM.
    pub fn expiry(&self) -> Option<[u8; 4]> {
        self.digits::<4>(14)
    }

    /// DE41, card acceptor terminal id, as received (8 characters).
    pub fn terminal_id(&self) -> Option<[u8; 8]> {
        self.text(41)?.try_into().ok()
    }

    /// DE42, card acceptor (E-Warong) id, as received (15 characters).
    pub fn merchant_id(&self) -> Option<[u8; 15]> {
        self.text(42)?.try_into().ok()
    }

    /// DE49, currency code.
    pub fn currency(&self) -> Option<[u8; 3]> {
        self.text(49)?.try_into().ok()
    }

    /// DE52, the encrypted PIN block.
    pub fn pin_block(&self) -> Option<[u8; 8]> {
        self.binary::<8>(52)
    }

    /// DE70, network management information code.
    pub fn network_management_code(&self) -> Option<[u8; 3]> {
        self.digits::<3>(70)
    }

    /// DE90, original data elements (42 digits).
    pub fn original_data_elements(&self) -> Option<[u8; 42]> {
        self.digits::<42>(90)
    }

    /// An owned, encodable copy of this message (allocates).
    pub fn to_message(&self) -> crate::Message {
        let mut message = crate::Message::new(self.mti);
        for number in self.present.fields() {
            message.copy_field_from(self, number);
        }
        message
    }
}

fn read_word(profile: Profile, buf: &[u8], pos: usize) -> Result<u64, DecodeError> {
    let raw = buf
        .get(pos..pos + wire::bitmap_bytes(profile))
        .ok_or(DecodeError::TruncatedBitmap)?;
    wire::read_bitmap_word(profile, raw).ok_or(DecodeError::BadBitmap)
}

impl std::fmt::Debug for MessageView {
    /// Masked like [`crate::describe`]: a view can hold a PAN, track 2 and a PIN block.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MessageView({:?}, {})",
            self.profile,
            crate::describe(self)
        )
    }
}

impl From<(u8, FieldError)> for DecodeError {
    fn from((field, error): (u8, FieldError)) -> DecodeError {
        DecodeError::Field { field, error }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::Message;

    /// The bytes before a field end where its encoding starts: its length prefix included for a
    /// variable field, and exactly the message but its last 8 bytes (bcd) or 16 hex digits
    /// (ascii) for a MAC in DE64 or DE128.
    #[test]
    fn bytes_before_a_field_end_where_its_encoding_starts() {
        for (profile, mac_wire_bytes, de48_prefix_bytes) in
            [(Profile::Bcd, 8, 2), (Profile::Ascii, 16, 3)]
        {
            for mac_field in [64u8, 128] {
                let mut message = Message::new(Mti::FINANCIAL_REQUEST);
                message.set(11, b"000001").unwrap();
                message.set(41, b"T0000001").unwrap();
                message.set(48, b"B101").unwrap();
                message.set(mac_field, &[0xAB; 8]).unwrap();
                let mut wire = BytesMut::new();
                message.encode(profile, &mut wire);
                let view = MessageView::decode(profile, wire.clone().freeze()).unwrap();
                assert_eq!(
                    view.bytes_before(mac_field),
                    Some(&wire[..wire.len() - mac_wire_bytes]),
                    "{profile:?} DE{mac_field}"
                );
                let before_41 = view.bytes_before(41).unwrap().len();
                let before_48 = view.bytes_before(48).unwrap();
                assert_eq!(before_48.len(), before_41 + 8, "DE41 is 8 characters");
                assert_eq!(
                    view.bytes_before(mac_field).unwrap().len(),
                    before_48.len() + de48_prefix_bytes + 4,
                    "{profile:?}: DE48's prefix belongs to DE48"
                );
                assert_eq!(view.bytes_before(2), None);
            }
        }
    }
}
