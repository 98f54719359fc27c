//! A human-readable, masked rendering of a message for logs and tools.

use std::fmt::{self, Write as _};

use crate::bitmap::Bitmap;
use crate::message::Message;
use crate::mti::Mti;
use crate::spec::{self, Kind};
use crate::view::MessageView;

/// What `describe` needs of a message: its type, its fields, their logical values.
pub trait Fields {
    /// The message type.
    fn mti(&self) -> Mti;
    /// The fields present.
    fn present(&self) -> Bitmap;
    /// Feeds the logical value of field `number` to `sink`.
    fn value_into(&self, number: u8, sink: &mut dyn FnMut(u8));
}

impl Fields for MessageView {
    fn mti(&self) -> Mti {
        MessageView::mti(self)
    }
    fn present(&self) -> Bitmap {
        MessageView::present(self)
    }
    fn value_into(&self, number: u8, sink: &mut dyn FnMut(u8)) {
        self.logical_into(number, sink);
    }
}

impl Fields for Message {
    fn mti(&self) -> Mti {
        Message::mti(self)
    }
    fn present(&self) -> Bitmap {
        Message::present(self)
    }
    fn value_into(&self, number: u8, sink: &mut dyn FnMut(u8)) {
        self.get(number)
            .unwrap_or_default()
            .iter()
            .for_each(|&b| sink(b));
    }
}

/// A message rendered one field a line. PAN and track 2 are masked, track 1 and 3, the PIN
/// block, ICC data and the message security code are replaced by their size, and DE48 of a
/// network management message (which carries keys) is never shown.
pub fn describe<M: Fields>(message: &M) -> Describe<'_, M> {
    Describe(message)
}

/// The [`Display`](fmt::Display) of [`describe`].
#[derive(Debug)]
pub struct Describe<'a, M>(&'a M);

/// Longest value shown in full; longer ones are cut, so a log line stays a line.
const VALUE_CHARS_SHOWN_MAX: usize = 120;

impl<M: Fields> fmt::Display for Describe<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.0;
        let mti = message.mti();
        write!(f, "MTI {mti}")?;
        for number in message.present().fields() {
            let Some(spec) = spec::field(number) else {
                continue;
            };
            let mut value = [0u8; 999];
            let mut len = 0usize;
            message.value_into(number, &mut |b| {
                if let Some(slot) = value.get_mut(len) {
                    *slot = b;
                }
                len += 1;
            });
            let value = value.get(..len.min(999)).unwrap_or_default();
            write!(f, "\n  DE{number:03} {}: ", spec.name)?;
            write_value(f, mti, spec, value)?;
        }
        Ok(())
    }
}

fn write_value(
    f: &mut fmt::Formatter<'_>,
    mti: Mti,
    spec: &spec::FieldSpec,
    value: &[u8],
) -> fmt::Result {
    match spec.number {
        2 => crate::pan::write_masked(f, value),
        35 => {
            let separator = value.iter().position(|&b| b == b'=').unwrap_or(value.len());
            crate::pan::write_masked(f, value.get(..separator).unwrap_or_default())?;
            if separator < value.len() {
                f.write_str("=****")?;
            }
            Ok(())
        }
        36 | 45 => write!(f, "[track data, {} characters]", value.len()),
        52 => f.write_str("[PIN block]"),
        55 => write!(f, "[ICC data, {} bytes]", value.len()),
        96 => f.write_str("[message security code]"),
        48 if mti.digits()[1] == b'8' => {
            write!(f, "[network management data, {} characters]", value.len())
        }
        _ if spec.kind == Kind::Binary => value.iter().try_for_each(|b| write!(f, "{b:02X}")),
        _ => write_text(f, value),
    }
}

fn write_text(f: &mut fmt::Formatter<'_>, value: &[u8]) -> fmt::Result {
    f.write_char('"')?;
    for &b in value.iter().take(VALUE_CHARS_SHOWN_MAX) {
        if b.is_ascii_graphic() || b == b' ' {
            f.write_char(char::from(b))?;
        } else {
            write!(f, "\\x{b:02X}")?;
        }
    }
    f.write_char('"')?;
    if value.len() > VALUE_CHARS_SHOWN_MAX {
        write!(f, "… ({} characters)", value.len())?;
    }
    Ok(())
}
