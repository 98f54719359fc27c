//! ISO 8583:1987 for the SSN switch: the two wire profiles of the host interface
//! (`../shared/spec/iso8583-host-interface.md` §1-2), with no I/O.
//!
//! - [`spec`]: the 128 data elements as data, matching jPOS `ISO87APackager`/`ISO87BPackager`.
//! - [`MessageView`]: a zero-copy, fully validated decode of one message over [`bytes::Bytes`].
//! - [`Message`]: an owned message to encode into a reused [`bytes::BytesMut`];
//!   [`Message::reply_to`] builds a response from a request.
//! - [`FrameCodec`]: tokio-util framing for both profiles (length header, TPDU, keep-alive,
//!   frame limit, malformed frames as items).
//! - [`describe`]: a masked rendering for logs; [`Pan`]: a PAN whose printed forms are masked.
//!
//! Architecture invariant: nothing here does I/O, reads the environment or panics, whatever
//! the input; no allocation is sized by a length read from the input beyond the frame limit.

mod bitmap;
mod describe;
mod error;
mod frame;
mod message;
mod mti;
mod pan;
pub mod spec;
mod view;
mod wire;

#[doc(hidden)]
pub mod testing;

pub use bitmap::{Bitmap, Fields as BitmapFields};
pub use describe::{Describe, Fields, describe};
pub use error::{DecodeError, FieldError};
pub use frame::{
    FRAME_BYTES_MAX_DEFAULT, FrameCodec, FrameError, Inbound, Outbound, TPDU_BYTES, Tpdu,
};
pub use message::Message;
pub use mti::Mti;
pub use pan::{Pan, PanError};
pub use view::{DecodeFailure, MESSAGE_BYTES_MAX, MessageView};
pub use wire::Profile;
