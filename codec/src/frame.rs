//! Framing for tokio-util: length headers, the `bcd` TPDU, keep-alives and the frame limit.
//!
//! An incomplete frame is `Ok(None)`; broken framing (a header that is not a length, a frame
//! over the limit) is `Err` and costs the connection; a whole frame whose message does not
//! decode is an item, [`Inbound::Malformed`], and costs one `30` answer.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::DecodeError;
use crate::message::Message;
use crate::view::{DecodeFailure, MessageView};
use crate::wire::Profile;

/// The default `FRAME_BYTES_MAX` of the host interface (§1): the longest frame, not counting
/// the length header, that a connection may send.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 4096;

/// Bytes in a `bcd` TPDU.
pub const TPDU_BYTES: usize = 5;

/// The `bcd` profile's Transport Protocol Data Unit: `60`, destination NII, source NII.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tpdu(pub [u8; TPDU_BYTES]);

impl Tpdu {
    /// The TPDU for the reply: destination and source swapped.
    pub fn reply(&self) -> Tpdu {
        let [id, d1, d2, s1, s2] = self.0;
        Tpdu([id, s1, s2, d1, d2])
    }
}

/// One thing read off a connection.
// `Message` is most of what arrives; boxing it would cost an allocation per request to make
// the rare keep-alive smaller.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Inbound {
    /// A zero length header. `bcd` echoes it; `ascii` ignores it.
    KeepAlive,
    /// A message that decoded.
    Message {
        /// The TPDU (`bcd` only).
        tpdu: Option<Tpdu>,
        /// The message.
        message: MessageView,
    },
    /// A whole frame whose message does not decode.
    Malformed {
        /// The TPDU (`bcd` only), when the frame was long enough to have one.
        tpdu: Option<Tpdu>,
        /// What could be read, and why the rest could not.
        failure: DecodeFailure,
    },
}

/// One thing to write to a connection.
#[derive(Debug)]
pub enum Outbound<'a> {
    /// A zero length header.
    KeepAlive,
    /// A message, with the TPDU to put before it (`bcd`; pass the request's TPDU already
    /// swapped with [`Tpdu::reply`]).
    Message {
        /// The TPDU (`bcd` only; ignored for `ascii`).
        tpdu: Option<Tpdu>,
        /// The message.
        message: &'a Message,
    },
}

/// Why a connection's byte stream cannot be framed any more.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// An `ascii` length header that is not four decimal digits.
    #[error("length header is not a number")]
    BadLengthHeader,
    /// A frame longer than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// The announced length.
        len: usize,
        /// `frame_bytes_max`.
        max: usize,
    },
}

/// The tokio-util codec of one profile.
#[derive(Clone, Copy, Debug)]
pub struct FrameCodec {
    /// Which profile: decides the length header, the TPDU and the field encodings.
    profile: Profile,
    /// The longest frame accepted or sent, not counting the length header.
    frame_bytes_max: usize,
}

impl FrameCodec {
    /// A codec for `profile` accepting frames of at most `frame_bytes_max` bytes (clamped to
    /// what the profile's header can express: 9,999 for `ascii`, 65,535 for `bcd`).
    pub fn new(profile: Profile, frame_bytes_max: usize) -> FrameCodec {
        let ceiling = match profile {
            Profile::Ascii => 9999,
            Profile::Bcd => u16::MAX as usize,
        };
        FrameCodec {
            profile,
            frame_bytes_max: frame_bytes_max.min(ceiling),
        }
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    fn header_bytes(&self) -> usize {
        match self.profile {
            Profile::Ascii => 4,
            Profile::Bcd => 2,
        }
    }

    fn read_header(&self, src: &[u8]) -> Result<usize, FrameError> {
        match self.profile {
            Profile::Ascii => src.iter().take(4).try_fold(0usize, |acc, &c| {
                if c.is_ascii_digit() {
                    Ok(acc * 10 + usize::from(c - b'0'))
                } else {
                    Err(FrameError::BadLengthHeader)
                }
            }),
            Profile::Bcd => Ok(src
                .get(..2)
                .map(|h| usize::from(u16::from_be_bytes([h[0], h[1]])))
                .unwrap_or(0)),
        }
    }

    /// Decodes one whole frame body (after the length header).
    fn decode_frame(&self, frame: bytes::Bytes) -> Inbound {
        let (tpdu, body) = match self.profile {
            Profile::Ascii => (None, frame),
            Profile::Bcd => {
                let Some(tpdu) = frame.get(..TPDU_BYTES).and_then(|t| t.try_into().ok()) else {
                    return Inbound::Malformed {
                        tpdu: None,
                        failure: DecodeFailure {
                            error: DecodeError::MissingMti,
                            mti: None,
                            stan: None,
                            terminal_id: None,
                        },
                    };
                };
                (Some(Tpdu(tpdu)), frame.slice(TPDU_BYTES..))
            }
        };
        match MessageView::decode(self.profile, body) {
            Ok(message) => Inbound::Message { tpdu, message },
            Err(failure) => Inbound::Malformed { tpdu, failure },
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Inbound;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, FrameError> {
        let header = self.header_bytes();
        if src.len() < header {
            return Ok(None);
        }
        let len = self.read_header(src)?;
        if len == 0 {
            src.advance(header);
            return Ok(Some(Inbound::KeepAlive));
        }
        if len > self.frame_bytes_max {
            return Err(FrameError::TooLong {
                len,
                max: self.frame_bytes_max,
            });
        }
        if src.len() < header + len {
            // Ask for the rest at once; bounded by frame_bytes_max above.
            src.reserve(header + len - src.len());
            return Ok(None);
        }
        src.advance(header);
        let frame = src.split_to(len).freeze();
        Ok(Some(self.decode_frame(frame)))
    }
}

impl Encoder<Outbound<'_>> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Outbound<'_>, dst: &mut BytesMut) -> Result<(), FrameError> {
        let header = self.header_bytes();
        let start = dst.len();
        dst.put_bytes(0, header);
        if let Outbound::Message { tpdu, message } = item {
            if self.profile == Profile::Bcd {
                dst.put_slice(&tpdu.unwrap_or(Tpdu([0x60, 0, 0, 0, 0])).0);
            }
            message.encode(self.profile, dst);
        }
        let len = dst.len() - start - header;
        if len > self.frame_bytes_max {
            dst.truncate(start);
            return Err(FrameError::TooLong {
                len,
                max: self.frame_bytes_max,
            });
        }
        let header_slot = dst.get_mut(start..start + header).unwrap_or_default();
        match self.profile {
            Profile::Ascii => {
                let digits = [len / 1000, len / 100 % 10, len / 10 % 10, len % 10];
                for (slot, d) in header_slot.iter_mut().zip(digits) {
                    *slot = b'0' + d as u8;
                }
            }
            Profile::Bcd => header_slot.copy_from_slice(&(len as u16).to_be_bytes()),
        }
        Ok(())
    }
}
