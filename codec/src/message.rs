//! Encoding: an owned message built field by field, written into a reused buffer.

use bytes::BytesMut;

use crate::bitmap::Bitmap;
use crate::error::FieldError;
use crate::mti::Mti;
use crate::spec;
use crate::view::MessageView;
use crate::wire::{self, Profile};

/// An owned message: an MTI and the logical values of its fields, ready to encode in either
/// profile. Values live in one arena that [`Message::clear`] keeps, so a connection can reuse
/// one `Message` for every response without allocating.
#[derive(Clone)]
pub struct Message {
    /// The message type.
    mti: Mti,
    /// Which fields are set.
    present: Bitmap,
    /// Where each set field's logical value lies in `arena`: (start, len).
    spans: [(u32, u32); 129],
    /// The logical values, back to back. A replaced value's old bytes stay until `clear`.
    arena: Vec<u8>,
}

impl Message {
    /// An empty message of type `mti`.
    pub fn new(mti: Mti) -> Message {
        Message {
            mti,
            present: Bitmap::EMPTY,
            spans: [(0, 0); 129],
            arena: Vec::new(),
        }
    }

    /// The response to `request`: the response MTI, and the fields in `echo` that the request
    /// has, copied. `None` when the request's MTI is already a response.
    pub fn reply_to(request: &MessageView, echo: &[u8]) -> Option<Message> {
        let mut message = Message::new(request.mti().response()?);
        message.arena.reserve(request.bytes().len());
        for &number in echo {
            message.copy_field_from(request, number);
        }
        Some(message)
    }

    /// Empties the message for reuse as type `mti`, keeping its arena's capacity.
    pub fn clear(&mut self, mti: Mti) {
        self.mti = mti;
        self.present = Bitmap::EMPTY;
        self.arena.clear();
    }

    /// The message type.
    pub fn mti(&self) -> Mti {
        self.mti
    }

    /// Changes the message type.
    pub fn set_mti(&mut self, mti: Mti) {
        self.mti = mti;
    }

    /// The fields set.
    pub fn present(&self) -> Bitmap {
        self.present
    }

    /// Whether field `number` is set.
    pub fn has(&self, number: u8) -> bool {
        self.present.contains(number)
    }

    /// Sets field `number` to a logical value (digits for numeric fields, characters for
    /// character fields, bytes for binary fields), checked against the field's definition.
    pub fn set(&mut self, number: u8, value: &[u8]) -> Result<&mut Message, FieldError> {
        let spec = spec::field(number).ok_or(FieldError::NoSuchField)?;
        wire::validate_logical(spec, value)?;
        let start = self.arena.len();
        self.arena.extend_from_slice(value);
        self.record(number, start);
        Ok(self)
    }

    /// Sets a numeric field to `value`, zero-padded to the field's fixed width.
    pub fn set_number(&mut self, number: u8, value: u64) -> Result<&mut Message, FieldError> {
        let spec = spec::field(number).ok_or(FieldError::NoSuchField)?;
        let width = usize::from(spec.len);
        let mut digits = [b'0'; 20];
        let mut rest = value;
        for slot in digits.iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        if rest != 0 || width > 20 {
            return Err(FieldError::WrongLength {
                len: 20,
                expected: spec.len,
            });
        }
        let significant = 20 - digits.iter().take_while(|&&d| d == b'0').count();
        if significant > width {
            return Err(FieldError::WrongLength {
                len: significant,
                expected: spec.len,
            });
        }
        self.set(number, digits.get(20 - width..).unwrap_or_default())
    }

    /// Sets a fixed character field, right-padded with spaces to its width (as jPOS's
    /// `IF_CHAR` does).
    pub fn set_text_padded(
        &mut self,
        number: u8,
        value: &[u8],
    ) -> Result<&mut Message, FieldError> {
        let spec = spec::field(number).ok_or(FieldError::NoSuchField)?;
        let width = usize::from(spec.len);
        if spec.is_variable() || value.len() > width {
            return self.set(number, value);
        }
        let start = self.arena.len();
        self.arena.extend_from_slice(value);
        self.arena.resize(start + width, b' ');
        wire::validate_logical(spec, self.arena.get(start..).unwrap_or_default())?;
        self.record(number, start);
        Ok(self)
    }

    /// Removes field `number`.
    pub fn remove(&mut self, number: u8) {
        self.present.remove(number);
    }

    /// Copies field `number` of `view`, if present; the view's values were validated when
    /// it was decoded.
    pub(crate) fn copy_field_from(&mut self, view: &MessageView, number: u8) {
        let start = self.arena.len();
        let arena = &mut self.arena;
        if view.logical_into(number, |b| arena.push(b)) {
            self.record(number, start);
        }
    }

    fn record(&mut self, number: u8, start: usize) {
        let len = self.arena.len() - start;
        if let Some(slot) = self.spans.get_mut(usize::from(number)) {
            // The arena of one message never approaches 4 GiB: a field is at most 999 bytes.
            *slot = (start as u32, len as u32);
            self.present.insert(number);
        }
    }

    /// The logical value of field `number`.
    pub fn get(&self, number: u8) -> Option<&[u8]> {
        if !self.present.contains(number) {
            return None;
        }
        let &(start, len) = self.spans.get(usize::from(number))?;
        self.arena.get(start as usize..(start + len) as usize)
    }

    /// Appends the message in `profile` to `out`: MTI, bitmaps, fields. Never fails: every
    /// value was checked when it was set.
    pub fn encode(&self, profile: Profile, out: &mut BytesMut) {
        out.reserve(self.arena.len() * 2 + 48);
        wire::write_mti(profile, &self.mti.digits(), out);
        wire::write_bitmap_word(profile, self.present.primary_word(), out);
        if self.present.needs_secondary() {
            wire::write_bitmap_word(profile, self.present.secondary_word(), out);
        }
        for number in self.present.fields() {
            let (Some(spec), Some(&(start, len))) =
                (spec::field(number), self.spans.get(usize::from(number)))
            else {
                continue;
            };
            if let Some(value) = self.arena.get(start as usize..(start + len) as usize) {
                wire::write_field(profile, spec, value, out);
            }
        }
    }

    /// The message encoded in `profile`, allocated.
    pub fn to_bytes(&self, profile: Profile) -> BytesMut {
        let mut out = BytesMut::new();
        self.encode(profile, &mut out);
        out
    }
}

impl PartialEq for Message {
    /// Equal when the MTI and every field's logical value are equal, whatever the arenas hold.
    fn eq(&self, other: &Message) -> bool {
        self.mti == other.mti
            && self.present == other.present
            && self.present.fields().all(|n| self.get(n) == other.get(n))
    }
}

impl Eq for Message {}

impl std::fmt::Debug for Message {
    /// Masked like [`crate::describe`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Message({})", crate::describe(self))
    }
}
