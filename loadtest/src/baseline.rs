//! The baseline: a server that frames and echoes, with no business logic. It reads frames
//! with the same codec as the switch, decodes each message, answers with the response MTI,
//! every field of the request and DE39 `00`, and writes the answers in order. Running the
//! same load against it and against the switch shows what the switch costs on top of this
//! machine's bare TCP path and codec.

use bytes::BytesMut;
use ssn_codec::{FrameCodec, Inbound, Message, Outbound, Profile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Connections one listener serves at once; past it the listener waits for one to end.
pub const BASELINE_CONNECTIONS_MAX: usize = 20_000;
/// Bytes read at a time.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Answers buffered before they are written, so one write carries many.
const WRITE_BUFFER_BYTES_MAX: usize = 64 * 1024;

/// Serves one listener until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    profile: Profile,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(BASELINE_CONNECTIONS_MAX));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _ = echo(stream, profile, shutdown).await;
            drop(permit);
        });
    }
}

async fn echo(
    mut stream: TcpStream,
    profile: Profile,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut codec = FrameCodec::new(profile, ssn_codec::FRAME_BYTES_MAX_DEFAULT);
    let mut input = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut out = BytesMut::new();
    loop {
        input.reserve(READ_CHUNK_BYTES);
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            n = stream.read_buf(&mut input) => n?,
        };
        if n == 0 {
            return Ok(());
        }
        loop {
            let item = match codec.decode(&mut input) {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => return Ok(()),
            };
            match item {
                Inbound::KeepAlive if profile == Profile::Bcd => {
                    let _ = codec.encode(Outbound::KeepAlive, &mut out);
                }
                Inbound::KeepAlive | Inbound::Malformed { .. } => {}
                Inbound::Message { tpdu, message } => {
                    let fields: Vec<u8> = message.present().fields().collect();
                    let Some(mut reply) = Message::reply_to(&message, &fields) else {
                        continue;
                    };
                    let _ = reply.set(39, b"00");
                    let _ = codec.encode(
                        Outbound::Message {
                            tpdu: tpdu.map(|t| t.reply()),
                            message: &reply,
                        },
                        &mut out,
                    );
                }
            }
            if out.len() >= WRITE_BUFFER_BYTES_MAX {
                stream.write_all(&out).await?;
                out.clear();
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
    }
}
