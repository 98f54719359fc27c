//! One terminal connection: frames in, requests in flight, answers out.

use std::pin::pin;
use std::time::Instant;

use bytes::BytesMut;
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use ssn_codec::{
    DecodeFailure, FrameCodec, Inbound, Message, MessageView, Outbound, Profile, Tpdu,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

use super::{Handler, Limits};

/// Why a connection ended; the server counts each kind.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum ConnectionEnd {
    /// The peer closed its side and every answer was written.
    Closed,
    /// Shutdown: reading stopped, requests in flight were answered.
    Shutdown,
    /// Broken framing (a length header that is not a number, a frame over the limit).
    BadFrame,
    /// Nothing arrived for `idle_timeout`, or a started frame did not finish in `read_timeout`.
    Timeout,
    /// Reading or writing failed, or the peer did not read its answers in `write_timeout`.
    Io,
    /// The TLS handshake failed or did not finish in `read_timeout`.
    Handshake,
}

/// Bytes read from the socket at a time; also the buffer an idle connection holds.
const READ_CHUNK_BYTES: usize = 2 * 1024;

/// Reads, handles and answers until the peer leaves, misbehaves, or shutdown is asked; the
/// connection's two halves (a TCP stream's, or a TLS session's over it).
pub(crate) async fn serve_connection<H: Handler>(
    (mut reader, mut writer): (impl AsyncRead + Unpin, impl AsyncWrite + Unpin),
    profile: Profile,
    handler: &H,
    limits: &Limits,
    shutdown: &CancellationToken,
) -> ConnectionEnd {
    let mut codec = FrameCodec::new(profile, limits.frame_bytes_max);
    let mut input = BytesMut::new();
    // Metric handles, looked up once per connection rather than once per request.
    let in_flight_gauge = metrics::gauge!("ssn_requests_in_flight");
    let mut durations = Durations::default();
    let mut in_flight = FuturesUnordered::new();
    let mut out = BytesMut::new();
    let mut reading = true;
    let mut end = ConnectionEnd::Closed;
    // The idle clock runs from the last whole frame; the read clock from the first byte of a
    // frame that has not finished yet, so a peer trickling bytes cannot hold a slot forever.
    let mut last_frame = Instant::now();
    let mut frame_started: Option<Instant> = None;
    let timer = tokio::time::sleep(limits.idle_timeout);
    let mut timer = pin!(timer);

    loop {
        let has_room = |in_flight: usize, out: &BytesMut| {
            in_flight < limits.in_flight_per_connection_max
                && out.len() < limits.write_buffer_bytes_max
        };
        // Take every whole frame already buffered that the limits allow.
        while reading && has_room(in_flight.len(), &out) {
            match codec.decode(&mut input) {
                Ok(Some(item)) => {
                    last_frame = Instant::now();
                    frame_started = None;
                    match item {
                        Inbound::KeepAlive if profile == Profile::Bcd => {
                            let _ = codec.encode(Outbound::KeepAlive, &mut out);
                        }
                        Inbound::KeepAlive => {}
                        Inbound::Message { tpdu, message } => {
                            in_flight.push(answer(handler, &in_flight_gauge, tpdu, message))
                        }
                        Inbound::Malformed { tpdu, failure } => {
                            malformed(&mut codec, tpdu, &failure, &mut out)
                        }
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::info!(%error, profile = profile.name(), "closing connection: bad framing");
                    metrics::counter!("ssn_frames_rejected_total", "reason" => "framing")
                        .increment(1);
                    return ConnectionEnd::BadFrame;
                }
            }
        }
        // Answers (and keep-alive echoes, and `30`s) go out before the next wait.
        if !out.is_empty() {
            let write = tokio::time::timeout(limits.write_timeout, writer.write_all(&out));
            match write.await {
                Ok(Ok(())) => out.clear(),
                _ => return ConnectionEnd::Io,
            }
        }
        if !reading && in_flight.is_empty() {
            let _ = writer.shutdown().await;
            return end;
        }
        if input.is_empty() {
            frame_started = None;
        } else if frame_started.is_none() {
            frame_started = Some(Instant::now());
        }
        let deadline = match frame_started {
            Some(started) => started + limits.read_timeout,
            None => last_frame + limits.idle_timeout,
        };
        timer.as_mut().reset(deadline.into());
        if input.capacity() - input.len() < READ_CHUNK_BYTES / 2 {
            input.reserve(READ_CHUNK_BYTES);
        }
        let may_read = reading && has_room(in_flight.len(), &out);

        tokio::select! {
            biased;
            () = shutdown.cancelled(), if reading => {
                reading = false;
                end = ConnectionEnd::Shutdown;
            }
            Some(answer) = in_flight.next(), if !in_flight.is_empty() => {
                write_answer(&mut codec, answer, &mut out, &mut durations);
                // Answers that finished meanwhile go out in the same write.
                while let Some(Some(answer)) = in_flight.next().now_or_never() {
                    write_answer(&mut codec, answer, &mut out, &mut durations);
                }
            }
            read = reader.read_buf(&mut input), if may_read => match read {
                Ok(0) => reading = false,
                Ok(_) => {}
                Err(_) => return ConnectionEnd::Io,
            },
            () = &mut timer, if reading => {
                tracing::info!(profile = profile.name(), "closing connection: timeout");
                return ConnectionEnd::Timeout;
            }
        }
    }
}

/// A handled request: its TPDU, the answer, and when it arrived.
struct Answer {
    tpdu: Option<Tpdu>,
    message: Option<Message>,
    mti: ssn_codec::Mti,
    started: Instant,
}

/// Counts a request in `ssn_requests_in_flight` for as long as it lives, however it ends
/// (answered, or dropped with its connection).
struct InFlight<'a>(&'a metrics::Gauge);

impl InFlight<'_> {
    fn new(gauge: &metrics::Gauge) -> InFlight<'_> {
        gauge.increment(1.0);
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A connection's `ssn_request_duration_seconds` handles by MTI and response code: a terminal
/// sees a handful of combinations, so a short list beats a registry lookup (label strings
/// allocated and hashed) per answer.
#[derive(Default)]
struct Durations(Vec<(ssn_codec::Mti, [u8; 2], metrics::Histogram)>);

/// Combinations one connection keeps handles for; beyond it, answers are looked up each time.
const DURATION_HANDLES_MAX: usize = 32;

impl Durations {
    fn record(&mut self, mti: ssn_codec::Mti, code: Option<&[u8]>, seconds: f64) {
        let code: [u8; 2] = match code {
            Some(&[a, b]) if a.is_ascii_graphic() && b.is_ascii_graphic() => [a, b],
            _ => *b"--",
        };
        if let Some((_, _, histogram)) = self.0.iter().find(|(m, c, _)| *m == mti && *c == code) {
            histogram.record(seconds);
            return;
        }
        let label = String::from_utf8_lossy(&code).into_owned();
        let histogram = metrics::histogram!("ssn_request_duration_seconds", "mti" => mti.as_str().to_string(), "code" => label);
        histogram.record(seconds);
        if self.0.len() < DURATION_HANDLES_MAX {
            self.0.push((mti, code, histogram));
        }
    }
}

async fn answer<H: Handler>(
    handler: &H,
    gauge: &metrics::Gauge,
    tpdu: Option<Tpdu>,
    request: MessageView,
) -> Answer {
    let _in_flight = InFlight::new(gauge);
    let started = Instant::now();
    let mti = request.mti();
    let message = handler.handle(request).await;
    Answer {
        tpdu,
        message,
        mti,
        started,
    }
}

fn write_answer(
    codec: &mut FrameCodec,
    answer: Answer,
    out: &mut BytesMut,
    durations: &mut Durations,
) {
    let Some(message) = answer.message else {
        metrics::counter!("ssn_requests_unanswered_total").increment(1);
        return;
    };
    let tpdu = answer.tpdu.map(|t| t.reply());
    if let Err(error) = codec.encode(
        Outbound::Message {
            tpdu,
            message: &message,
        },
        out,
    ) {
        // Only an answer over the frame limit can fail; it is a bug in a handler, not input.
        tracing::error!(%error, mti = %answer.mti, "answer could not be framed");
        return;
    }
    durations.record(
        answer.mti,
        message.get(39),
        answer.started.elapsed().as_secs_f64(),
    );
}

/// §1: a whole frame that does not decode is answered `30` when its MTI, DE11 and DE41 could
/// be read, and otherwise dropped and counted.
fn malformed(
    codec: &mut FrameCodec,
    tpdu: Option<Tpdu>,
    failure: &DecodeFailure,
    out: &mut BytesMut,
) {
    metrics::counter!("ssn_frames_rejected_total", "reason" => "format").increment(1);
    let (Some(mti), Some(stan), Some(terminal)) = (failure.mti, failure.stan, failure.terminal_id)
    else {
        tracing::info!(error = %failure.error, "dropped an undecodable message");
        return;
    };
    let Some(response_mti) = mti.response() else {
        return;
    };
    let mut reply = Message::new(response_mti);
    let built = reply
        .set(11, &stan)
        .and_then(|r| r.set(41, &terminal))
        .and_then(|r| r.set(39, b"30"))
        .is_ok();
    if built {
        tracing::info!(error = %failure.error, %mti, "answered 30 to an undecodable message");
        let _ = codec.encode(
            Outbound::Message {
                tpdu: tpdu.map(|t| t.reply()),
                message: &reply,
            },
            out,
        );
    }
}
