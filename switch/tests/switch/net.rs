//! The TCP layer over real loopback sockets, with a handler that only echoes, so that
//! framing, pipelining, limits, timeouts and shutdown are tested apart from business rules.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use ssn_codec::{FrameCodec, Inbound, Message, MessageView, Mti, Outbound, Profile, Tpdu};
use ssn_switch::net::{Cores, Handler, Limits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every wait in these tests ends by this deadline, so a broken server fails the test
/// instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(10);

/// Answers with the request's DE11 and DE41 and `00`, after a delay of DE70 milliseconds
/// when present, and only while it holds a permit of `gate`.
struct Echo {
    gate: Arc<Semaphore>,
    entered: AtomicUsize,
}

impl Handler for Echo {
    async fn handle(&self, request: MessageView) -> Option<Message> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let _permit = self.gate.acquire().await.ok()?;
        if let Some(delay) = request.number(70) {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let mut reply = Message::reply_to(&request, &[11, 41])?;
        reply.set(39, b"00").ok()?;
        Some(reply)
    }
}

struct Server {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    handler: Arc<Echo>,
    /// The connection threads, kept until the server is dropped (as `ssn-switch serve` keeps
    /// them until its connections have ended).
    _cores: Arc<Cores>,
}

async fn start(profile: Profile, limits: Limits, permits: usize) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let handler = Arc::new(Echo {
        gate: Arc::new(Semaphore::new(permits)),
        entered: AtomicUsize::new(0),
    });
    // Two connection threads, as on a two-core machine: connections land on both.
    let cores = Arc::new(Cores::start(2).unwrap());
    let accept = serve(
        listener,
        Arc::clone(&cores),
        None,
        profile,
        handler.clone(),
        limits,
        shutdown.clone(),
        tracker.clone(),
    );
    tracker.spawn(accept);
    Server {
        addr,
        shutdown,
        tracker,
        handler,
        _cores: cores,
    }
}

fn request(stan: u32, delay_ms: Option<u32>) -> Message {
    let mut m = Message::new(Mti::NETWORK_REQUEST);
    m.set(7, b"1129123045").unwrap();
    m.set(11, format!("{stan:06}").as_bytes()).unwrap();
    m.set(41, b"EWRG0001").unwrap();
    if let Some(delay) = delay_ms {
        m.set(70, format!("{delay:03}").as_bytes()).unwrap();
    }
    m
}

struct Client {
    stream: TcpStream,
    codec: FrameCodec,
    buffer: BytesMut,
}

const TPDU: Tpdu = Tpdu([0x60, 0x00, 0x01, 0x80, 0x02]);

impl Client {
    async fn connect(server: &Server, profile: Profile) -> Client {
        let stream = TcpStream::connect(server.addr).await.unwrap();
        Client {
            stream,
            codec: FrameCodec::new(profile, 65_535),
            buffer: BytesMut::new(),
        }
    }

    async fn send(&mut self, message: &Message) {
        let mut wire = BytesMut::new();
        self.codec
            .encode(
                Outbound::Message {
                    tpdu: Some(TPDU),
                    message,
                },
                &mut wire,
            )
            .unwrap();
        self.stream.write_all(&wire).await.unwrap();
    }

    /// The next item, or `None` when the server closed the connection.
    async fn next(&mut self) -> Option<Inbound> {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(item) = self.codec.decode(&mut self.buffer).unwrap() {
                    return Some(item);
                }
                if self.stream.read_buf(&mut self.buffer).await.unwrap_or(0) == 0 {
                    return None;
                }
            }
        })
        .await
        .expect("the server answers within the deadline")
    }

    async fn answer(&mut self) -> MessageView {
        match self.next().await {
            Some(Inbound::Message { message, tpdu }) => {
                if self.codec.profile() == Profile::Bcd {
                    assert_eq!(tpdu, Some(TPDU.reply()), "the reply swaps the TPDU");
                }
                message
            }
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    /// Whether the server closed the connection (EOF or reset) within the deadline.
    async fn closed(&mut self) -> bool {
        let mut scratch = [0u8; 256];
        tokio::time::timeout(DEADLINE, async {
            loop {
                match self.stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => continue,
                }
            }
        })
        .await
        .unwrap_or(false)
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_out_of_order_and_matched() {
    for profile in [Profile::Ascii, Profile::Bcd] {
        let server = start(profile, Limits::default(), 100).await;
        let mut client = Client::connect(&server, profile).await;
        // Earlier requests take longer, so answers come back in reverse.
        for stan in 1..=20u32 {
            client.send(&request(stan, Some((21 - stan) * 10))).await;
        }
        let mut stans = Vec::new();
        for _ in 1..=20 {
            let answer = client.answer().await;
            assert_eq!(answer.text(39), Some(&b"00"[..]));
            assert_eq!(answer.mti().as_str(), "0810");
            stans.push(String::from_utf8(answer.stan().unwrap().to_vec()).unwrap());
        }
        let mut sorted = stans.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            (1..=20).map(|s| format!("{s:06}")).collect::<Vec<_>>()
        );
        assert_ne!(stans, sorted, "answers were not pipelined");
        server.shutdown.cancel();
    }
}

#[tokio::test]
async fn keep_alives_are_echoed_in_bcd_and_ignored_in_ascii() {
    let server = start(Profile::Bcd, Limits::default(), 100).await;
    let mut client = Client::connect(&server, Profile::Bcd).await;
    client.stream.write_all(&[0, 0]).await.unwrap();
    assert!(matches!(client.next().await, Some(Inbound::KeepAlive)));

    let server = start(Profile::Ascii, Limits::default(), 100).await;
    let mut client = Client::connect(&server, Profile::Ascii).await;
    client.stream.write_all(b"0000").await.unwrap();
    client.send(&request(7, None)).await;
    let answer = client.answer().await;
    assert_eq!(
        answer.stan(),
        Some(*b"000007"),
        "the keep-alive got no answer of its own"
    );
}

#[tokio::test]
async fn an_undecodable_message_costs_one_30_not_the_connection() {
    for profile in [Profile::Ascii, Profile::Bcd] {
        let server = start(profile, Limits::default(), 100).await;
        let mut client = Client::connect(&server, profile).await;
        // A valid 0800 whose bytes end inside DE70: MTI, DE11 and DE41 are readable.
        let mut broken = request(42, Some(5)).to_bytes(profile);
        broken.truncate(broken.len() - 1);
        let mut wire = BytesMut::new();
        match profile {
            Profile::Ascii => wire.extend_from_slice(format!("{:04}", broken.len()).as_bytes()),
            Profile::Bcd => {
                wire.extend_from_slice(&((broken.len() + 5) as u16).to_be_bytes());
                wire.extend_from_slice(&TPDU.0);
            }
        }
        wire.extend_from_slice(&broken);
        client.stream.write_all(&wire).await.unwrap();
        let answer = client.answer().await;
        assert_eq!(answer.text(39), Some(&b"30"[..]));
        assert_eq!(answer.stan(), Some(*b"000042"));
        assert_eq!(answer.terminal_id(), Some(*b"EWRG0001"));
        // Garbage with nothing readable is dropped; the connection goes on.
        let garbage: &[u8] = match profile {
            Profile::Ascii => b"0003xyz",
            Profile::Bcd => &[0, 7, 0x60, 0, 1, 0, 2, 0xff, 0xff],
        };
        client.stream.write_all(garbage).await.unwrap();
        client.send(&request(43, None)).await;
        assert_eq!(client.answer().await.stan(), Some(*b"000043"));
    }
}

#[tokio::test]
async fn broken_framing_closes_only_that_connection() {
    let limits = Limits {
        frame_bytes_max: 512,
        ..Limits::default()
    };
    let server = start(Profile::Ascii, limits, 100).await;
    let mut good = Client::connect(&server, Profile::Ascii).await;
    let mut liar = Client::connect(&server, Profile::Ascii).await;
    liar.stream.write_all(b"9999").await.unwrap();
    assert!(
        liar.closed().await,
        "a frame over the limit closes the connection"
    );
    let mut nonsense = Client::connect(&server, Profile::Ascii).await;
    nonsense
        .stream
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    assert!(
        nonsense.closed().await,
        "a length header that is not a number closes it"
    );
    good.send(&request(1, None)).await;
    assert_eq!(good.answer().await.stan(), Some(*b"000001"));
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(400),
        read_timeout: Duration::from_millis(150),
        ..Limits::default()
    };
    let server = start(Profile::Bcd, limits, 100).await;
    let mut idle = Client::connect(&server, Profile::Bcd).await;
    assert!(idle.closed().await);
    let mut slow = Client::connect(&server, Profile::Bcd).await;
    slow.send(&request(1, None)).await;
    assert_eq!(slow.answer().await.stan(), Some(*b"000001"));
    // A frame that trickles in a byte at a time, each gap shorter than the idle timeout
    // but the whole longer than the read timeout.
    let started = tokio::time::Instant::now();
    for byte in [0u8, 50, 0x60, 0, 1] {
        if slow.stream.write_all(&[byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(slow.closed().await);
    assert!(started.elapsed() < Duration::from_millis(400) + DEADLINE / 2);
}

#[tokio::test]
async fn in_flight_requests_per_connection_are_bounded() {
    let limits = Limits {
        in_flight_per_connection_max: 4,
        ..Limits::default()
    };
    let server = start(Profile::Bcd, limits, 0).await; // the handler is held shut
    let mut client = Client::connect(&server, Profile::Bcd).await;
    for stan in 1..=10 {
        client.send(&request(stan, None)).await;
    }
    let entered = || server.handler.entered.load(Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while entered() < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Give the server every chance to take more than it may.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(entered(), 4, "more requests were taken in than the limit");
    server.handler.gate.add_permits(100);
    for _ in 1..=10 {
        assert_eq!(client.answer().await.text(39), Some(&b"00"[..]));
    }
}

#[tokio::test]
async fn shutdown_answers_what_is_in_flight_then_stops() {
    let server = start(Profile::Ascii, Limits::default(), 100).await;
    let mut client = Client::connect(&server, Profile::Ascii).await;
    client.send(&request(9, Some(300))).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while server.handler.entered.load(Ordering::SeqCst) == 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.shutdown.cancel();
    server.tracker.close();
    assert_eq!(
        client.answer().await.stan(),
        Some(*b"000009"),
        "the in-flight request is answered"
    );
    assert!(client.closed().await);
    tokio::time::timeout(DEADLINE, server.tracker.wait())
        .await
        .expect("every task ends");
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "the listener is gone"
    );
}

#[tokio::test]
async fn connections_over_the_limit_wait_for_a_free_slot() {
    let limits = Limits {
        connections_max: 2,
        ..Limits::default()
    };
    let server = start(Profile::Ascii, limits, 100).await;
    let mut first = Client::connect(&server, Profile::Ascii).await;
    let mut second = Client::connect(&server, Profile::Ascii).await;
    first.send(&request(1, None)).await;
    second.send(&request(2, None)).await;
    assert_eq!(first.answer().await.stan(), Some(*b"000001"));
    assert_eq!(second.answer().await.stan(), Some(*b"000002"));
    let mut third = Client::connect(&server, Profile::Ascii).await; // in the backlog
    third.send(&request(3, None)).await;
    let early = tokio::time::timeout(Duration::from_millis(200), third.next()).await;
    assert!(
        early.is_err(),
        "a third connection was served over the limit"
    );
    drop(first);
    assert_eq!(third.answer().await.stan(), Some(*b"000003"));
}
