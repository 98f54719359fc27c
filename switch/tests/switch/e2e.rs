//! End-to-end: a real `ssn-switch serve --demo` process on a fresh data directory, real TCP in
//! both profiles, one test per rule of the host interface (§3, §5-§8) and per row of §6.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ssn_codec::{FrameCodec, Inbound, Message, MessageView, Mti, Outbound, Profile, Tpdu};
use ssn_hsm::{EncryptedPinBlock, KeyChange, MasterKey, Pin, Pvki, SoftHsm, TdesKey, WrappedKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

/// Every wait ends by this deadline, so a broken switch fails a test rather than hangs it.
pub(super) const DEADLINE: Duration = Duration::from_secs(30);
const PROFILES: [Profile; 2] = [Profile::Bcd, Profile::Ascii];
/// How long a switch on Cassandra may take to start: creating its keyspace is slow on a busy
/// 2-core machine.
pub(super) const SCYLLA_START_DEADLINE: Duration = Duration::from_secs(150);

/// A running switch, stopped (SIGKILL) when dropped.
pub(super) struct Switch {
    pub(super) child: Child,
    pub(super) data_dir: std::path::PathBuf,
    bcd: String,
    ascii: String,
    admin: String,
    manifest: serde_json::Value,
    backend: Backend,
}

static RUNS: AtomicU32 = AtomicU32::new(0);

/// Where the switch keeps balances: every scenario runs on both.
#[derive(Clone, Copy, Debug)]
pub(super) enum Backend {
    Embedded,
    /// A real `redis-server` started by `scripts/test.sh` (`SSN_TEST_REDIS_URL`).
    Redis,
    /// Journal and registry in a real Cassandra started by `scripts/test.sh`
    /// (`SSN_TEST_CASSANDRA_NODES`), balances in Redis: the stateless configuration.
    Scylla,
}

/// Redis's URL from `scripts/test.sh`; a missing one fails the test, never skips it.
pub(super) fn redis_url() -> String {
    std::env::var("SSN_TEST_REDIS_URL")
        .expect("SSN_TEST_REDIS_URL is not set: run ./scripts/test.sh, which starts redis-server")
}

/// Cassandra's `host:port` from `scripts/test.sh`; a missing one fails the test.
pub(super) fn cassandra_nodes() -> String {
    std::env::var("SSN_TEST_CASSANDRA_NODES").expect(
        "SSN_TEST_CASSANDRA_NODES is not set: run ./scripts/test.sh, which starts Cassandra",
    )
}

/// A keyspace per data directory, the same across restarts of one test process and new in
/// every process (a developer's Cassandra outlives test runs).
pub(super) fn keyspace_for(data_dir: &std::path::Path) -> String {
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let salt = SALT.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
            % 1_000_000_000_000
    });
    let name = data_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace('-', "_");
    format!("{name}_{salt}")
}

/// The arguments that put a switch on `backend`, keyed by its data directory.
fn backend_args(backend: Backend, data_dir: &std::path::Path) -> Vec<String> {
    // Each switch its own key space: the data directory's name is unique.
    let prefix = data_dir.file_name().unwrap().to_string_lossy().into_owned();
    let redis = vec![
        "--redis-url".to_string(),
        redis_url(),
        "--redis-key-prefix".to_string(),
        prefix,
    ];
    match backend {
        Backend::Embedded => Vec::new(),
        Backend::Redis => redis,
        Backend::Scylla => {
            let mut args = redis;
            args.extend([
                "--scylla-nodes".to_string(),
                cassandra_nodes(),
                "--scylla-keyspace".to_string(),
                keyspace_for(data_dir),
            ]);
            args
        }
    }
}

impl Switch {
    pub(super) fn start(backend: Backend) -> Switch {
        Switch::start_with(backend, 12)
    }

    fn start_with(backend: Backend, demo_cards: u32) -> Switch {
        let run = RUNS.fetch_add(1, Ordering::SeqCst);
        let data_dir = std::env::temp_dir().join(format!("ssn-e2e-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        Switch::start_in(data_dir, backend, demo_cards)
    }

    fn start_in(data_dir: std::path::PathBuf, backend: Backend, demo_cards: u32) -> Switch {
        let args = backend_args(backend, &data_dir);
        Switch::launch(data_dir, backend, demo_cards, args)
    }

    /// Starts `ssn-switch serve --demo` on `data_dir` with `backend_args` choosing where it
    /// keeps its books, and waits until it announces its ports.
    pub(super) fn launch(
        data_dir: std::path::PathBuf,
        backend: Backend,
        demo_cards: u32,
        backend_args: Vec<String>,
    ) -> Switch {
        Switch::launch_with(data_dir, backend, demo_cards, backend_args, &[])
    }

    /// [`Switch::launch`] with `env` set for the process (e.g. the admin API's bootstrap token).
    pub(super) fn launch_with(
        data_dir: std::path::PathBuf,
        backend: Backend,
        demo_cards: u32,
        backend_args: Vec<String>,
        env: &[(&str, &str)],
    ) -> Switch {
        let mut command = serve_command(&data_dir);
        command.args(["--demo", "--demo-cards", &demo_cards.to_string()]);
        command.args(backend_args);
        command.envs(env.iter().copied());
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ssn-switch starts");
        // The switch prints one JSON line once it listens; wait for it with a deadline.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        // On Scylla the first start creates a keyspace (a dozen DDL statements, each waiting
        // for schema agreement) and provisions through the registry's lease.
        let start_deadline = match backend {
            Backend::Scylla => SCYLLA_START_DEADLINE,
            _ => DEADLINE,
        };
        let line = rx
            .recv_timeout(start_deadline)
            .expect("ssn-switch announces its ports in time");
        let ready: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let manifest = std::fs::read(data_dir.join("demo.json")).expect("demo manifest");
        Switch {
            child,
            bcd: ready["bcd"].as_str().unwrap().to_string(),
            ascii: ready["ascii"].as_str().unwrap().to_string(),
            admin: ready["admin"].as_str().unwrap().to_string(),
            manifest: serde_json::from_slice(&manifest).unwrap(),
            data_dir,
            backend,
        }
    }

    /// Stops the process (SIGKILL) and starts a new one on the same data directory.
    fn restart(mut self) -> Switch {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (data_dir, backend) = (self.data_dir.clone(), self.backend);
        std::mem::forget(self);
        // Already provisioned: the demo flag does nothing on a data directory with programs.
        Switch::start_in(data_dir, backend, 0)
    }

    /// The admin listener's address.
    pub(super) fn admin(&self) -> &str {
        &self.admin
    }

    /// A PIN this switch refuses for `card`, from its own keys ([`SoftHsm::refused_pin`]): a
    /// fixed "wrong" PIN shares the right one's PVV on about one start in 10,000.
    pub(super) fn wrong_pin(&self, card: &Card) -> String {
        let read = |name: &str| std::fs::read_to_string(self.data_dir.join(name)).expect(name);
        let hsm = SoftHsm::new(MasterKey::from_hex(read("master.key").trim()).unwrap());
        let pvk = WrappedKey::from_hex(read("pvk.key").trim()).unwrap();
        let pin = Pin::new(&card.pin).unwrap();
        let wrong = hsm.refused_pin(&pvk, &pin, &card.pan, Pvki::ONE).unwrap();
        wrong.reveal().to_string()
    }

    fn card(&self, kind: &str) -> Card {
        self.cards(kind).remove(0)
    }

    pub(super) fn cards(&self, kind: &str) -> Vec<Card> {
        self.manifest["cards"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == kind)
            .map(|c| Card {
                pan: c["pan"].as_str().unwrap().into(),
                expiry: c["expiry"].as_str().unwrap().into(),
                pin: c["pin"].as_str().unwrap().into(),
                programs: c["programs"].as_array().unwrap().len(),
            })
            .collect()
    }

    /// A regular card enrolled in both programs (odd serials) or only SEMBAKO.
    pub(super) fn regular(&self, both_programs: bool, index: usize) -> Card {
        self.cards("regular")
            .into_iter()
            .filter(|c| (c.programs == 2) == both_programs)
            .nth(index)
            .unwrap()
    }

    pub(super) async fn terminal(&self, profile: Profile, which: usize) -> Terminal {
        let t = &self.manifest["terminals"][which];
        let addr = match profile {
            Profile::Bcd => &self.bcd,
            Profile::Ascii => &self.ascii,
        };
        Terminal {
            stream: TcpStream::connect(addr).await.unwrap(),
            codec: FrameCodec::new(profile, 8192),
            buffer: BytesMut::new(),
            id: t["terminal_id"].as_str().unwrap().into(),
            merchant: t["merchant_id"].as_str().unwrap().into(),
            tmk: TdesKey::from_hex(t["tmk"].as_str().unwrap()).unwrap(),
            tpk: TdesKey::from_hex(t["tpk"].as_str().unwrap()).unwrap(),
            tak: t["tak"].as_str().map(|k| TdesKey::from_hex(k).unwrap()),
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

#[derive(Clone, Debug)]
pub(super) struct Card {
    pub(super) pan: String,
    expiry: String,
    pin: String,
    pub(super) programs: usize,
}

/// Terminals of the demo city, by index in the manifest.
pub(super) const ACTIVE: usize = 0;
const ACTIVE_2: usize = 1;
const SUSPENDED: usize = 2;
const OF_SUSPENDED_MERCHANT: usize = 3;
/// The one that MACs its messages (§10), at the active E-Warong.
pub(super) const WITH_TAK: usize = 4;

static STAN: AtomicU32 = AtomicU32::new(1);

fn next_stan() -> String {
    format!("{:06}", STAN.fetch_add(1, Ordering::SeqCst) % 1_000_000)
}

pub(super) struct Terminal {
    stream: TcpStream,
    codec: FrameCodec,
    buffer: BytesMut,
    pub(super) id: String,
    pub(super) merchant: String,
    pub(super) tmk: TdesKey,
    pub(super) tpk: TdesKey,
    /// The terminal authentication key of the demo terminal that MACs (§10).
    pub(super) tak: Option<TdesKey>,
}

/// What a purchase request is made of; tests change one thing at a time.
#[derive(Clone)]
pub(super) struct Purchase {
    pub(super) card: Card,
    processing_code: &'static str,
    pub(super) amount: u64,
    basket: Option<Vec<(&'static str, u64)>>,
    pub(super) pin: String,
    currency: &'static str,
    pub(super) stan: String,
    transmitted: String,
}

impl Purchase {
    pub(super) fn new(card: &Card, amount: u64) -> Purchase {
        Purchase {
            card: card.clone(),
            processing_code: "000000",
            amount,
            basket: None,
            pin: card.pin.clone(),
            currency: "360",
            stan: next_stan(),
            transmitted: "1129101500".into(),
        }
    }
    fn basket(mut self, items: &[(&'static str, u64)]) -> Purchase {
        self.basket = Some(items.to_vec());
        self
    }
}

impl Terminal {
    pub(super) async fn send(&mut self, message: &Message) {
        let mut wire = BytesMut::new();
        let tpdu = Some(Tpdu([0x60, 0x00, 0x01, 0x00, 0x00]));
        self.codec
            .encode(Outbound::Message { tpdu, message }, &mut wire)
            .unwrap();
        self.stream.write_all(&wire).await.unwrap();
    }

    pub(super) async fn receive(&mut self) -> MessageView {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(item) = self.codec.decode(&mut self.buffer).unwrap() {
                    match item {
                        Inbound::Message { message, .. } => return message,
                        Inbound::KeepAlive => continue,
                        Inbound::Malformed { failure, .. } => {
                            panic!("the switch sent a malformed message: {failure:?}")
                        }
                    }
                }
                let n = self.stream.read_buf(&mut self.buffer).await.unwrap();
                assert!(n > 0, "the switch closed the connection");
            }
        })
        .await
        .expect("an answer within the deadline")
    }

    /// The next answer, or `None` when the connection ends (or nothing comes within
    /// `wait`): for a node that dies under its terminals.
    pub(super) async fn try_receive(&mut self, wait: Duration) -> Option<MessageView> {
        tokio::time::timeout(wait, async {
            loop {
                match self.codec.decode(&mut self.buffer) {
                    Ok(Some(Inbound::Message { message, .. })) => return Some(message),
                    Ok(Some(Inbound::KeepAlive)) => continue,
                    Ok(Some(Inbound::Malformed { .. })) | Err(_) => return None,
                    Ok(None) => {}
                }
                match self.stream.read_buf(&mut self.buffer).await {
                    Ok(n) if n > 0 => {}
                    _ => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    pub(super) async fn exchange(&mut self, message: &Message) -> MessageView {
        self.send(message).await;
        let answer = self.receive().await;
        assert_eq!(
            answer.stan().map(|s| s.to_vec()),
            message.get(11).map(|s| s.to_vec()),
            "answer matched by DE11"
        );
        answer
    }

    pub(super) fn network_message(&self, code: &str) -> Message {
        let mut m = Message::new(Mti::NETWORK_REQUEST);
        m.set(7, b"1129101500").unwrap();
        m.set(11, next_stan().as_bytes()).unwrap();
        m.set(41, self.id.as_bytes()).unwrap();
        m.set(70, code.as_bytes()).unwrap();
        m
    }

    pub(super) fn purchase_message(&self, p: &Purchase) -> Message {
        let mut m = Message::new(Mti::FINANCIAL_REQUEST);
        let pin = Pin::new(&p.pin).unwrap();
        let block = EncryptedPinBlock::encrypt(&pin, &p.card.pan, &self.tpk).unwrap();
        m.set(2, p.card.pan.as_bytes()).unwrap();
        m.set(3, p.processing_code.as_bytes()).unwrap();
        m.set_number(4, p.amount).unwrap();
        m.set(7, p.transmitted.as_bytes()).unwrap();
        m.set(11, p.stan.as_bytes()).unwrap();
        m.set(12, b"101500").unwrap();
        m.set(13, b"1129").unwrap();
        m.set(14, p.card.expiry.as_bytes()).unwrap();
        m.set(22, b"021").unwrap();
        m.set(25, b"00").unwrap();
        m.set(
            35,
            format!("{}={}101", p.card.pan, p.card.expiry).as_bytes(),
        )
        .unwrap();
        m.set(41, self.id.as_bytes()).unwrap();
        m.set(42, self.merchant.as_bytes()).unwrap();
        if let Some(items) = &p.basket {
            let mut de48 = format!("B1{:02}", items.len());
            for (category, amount) in items {
                de48.push_str(&format!("{category}01{amount:012}"));
            }
            m.set(48, de48.as_bytes()).unwrap();
        }
        m.set(49, p.currency.as_bytes()).unwrap();
        m.set(52, block.as_bytes()).unwrap();
        m
    }

    pub(super) async fn purchase(&mut self, p: &Purchase) -> MessageView {
        let m = self.purchase_message(p);
        self.exchange(&m).await
    }

    fn reversal_message(&self, p: &Purchase, mti: &[u8; 4], amount: u64) -> Message {
        let mut m = Message::new(Mti::new(*mti).unwrap());
        m.set(2, p.card.pan.as_bytes()).unwrap();
        m.set(3, b"000000").unwrap();
        m.set_number(4, amount).unwrap();
        m.set(7, b"1129101600").unwrap();
        m.set(11, next_stan().as_bytes()).unwrap();
        m.set(41, self.id.as_bytes()).unwrap();
        m.set(42, self.merchant.as_bytes()).unwrap();
        m.set(49, b"360").unwrap();
        m.set(
            90,
            format!("0200{}{}{}", p.stan, p.transmitted, "0".repeat(22)).as_bytes(),
        )
        .unwrap();
        m
    }

    async fn reverse(&mut self, p: &Purchase, mti: &[u8; 4]) -> MessageView {
        let m = self.reversal_message(p, mti, p.amount);
        self.exchange(&m).await
    }

    pub(super) async fn balance(&mut self, card: &Card) -> u64 {
        let mut p = Purchase::new(card, 0);
        p.processing_code = "310000";
        let mut m = self.purchase_message(&p);
        m.remove(4);
        let answer = self.exchange(&m).await;
        assert_eq!(code(&answer), "00", "balance inquiry");
        balance_of(&answer)
    }

    pub(super) async fn close_batch(&mut self, totals: &str) -> MessageView {
        let m = self.close_batch_message(totals);
        self.exchange(&m).await
    }

    fn close_batch_message(&self, totals: &str) -> Message {
        let mut m = Message::new(Mti::RECONCILIATION_REQUEST);
        m.set(3, b"920000").unwrap();
        m.set(7, b"1129220000").unwrap();
        m.set(11, next_stan().as_bytes()).unwrap();
        m.set(41, self.id.as_bytes()).unwrap();
        m.set(42, self.merchant.as_bytes()).unwrap();
        m.set(60, b"000001").unwrap();
        m.set(63, totals.as_bytes()).unwrap();
        m
    }
}

pub(super) fn code(answer: &MessageView) -> String {
    String::from_utf8(answer.text(39).expect("DE39").to_vec()).unwrap()
}

fn balance_of(answer: &MessageView) -> u64 {
    let de54 = answer.text(54).expect("DE54");
    assert_eq!(&de54[..8], b"0002360C", "DE54 shape");
    std::str::from_utf8(&de54[8..]).unwrap().parse().unwrap()
}

pub(super) fn text(answer: &MessageView, n: u8) -> String {
    String::from_utf8(answer.text(n).unwrap_or_default().to_vec()).unwrap()
}

/// What a card of the demo city holds at the start: SEMBAKO, and LANSIA for cards in both.
pub(super) fn start_balance(card: &Card) -> u64 {
    if card.programs == 2 {
        SEMBAKO + LANSIA
    } else {
        SEMBAKO
    }
}

/// `ssn-switch verify --data-dir`: the journal's chain and the balances it implies, and every
/// snapshot in force, checked; panics with what it printed otherwise.
pub(super) fn verify(data_dir: &std::path::Path) {
    let verified = std::process::Command::new(env!("CARGO_BIN_EXE_ssn-switch"))
        .args(["verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "verify {}: {}{}",
        data_dir.display(),
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
}

pub(super) const SEMBAKO: u64 = 30_000_000;
pub(super) const LANSIA: u64 = 10_000_000;

// ------------------------------------------------------------------ §3.1 network management

async fn network_management_and_key_change(backend: Backend) {
    let switch = Switch::start(backend);
    for profile in PROFILES {
        let mut t = switch.terminal(profile, ACTIVE).await;
        for (network_code, expect) in [("001", "00"), ("301", "00"), ("002", "00"), ("999", "12")] {
            let m = t.network_message(network_code);
            let answer = t.exchange(&m).await;
            assert_eq!(
                (answer.mti().as_str(), code(&answer).as_str()),
                ("0810", expect),
                "{profile:?} {network_code}"
            );
            assert_eq!(
                answer.network_management_code().map(|c| c.to_vec()),
                Some(network_code.as_bytes().to_vec())
            );
        }
        let mut suspended = switch.terminal(profile, SUSPENDED).await;
        let m = suspended.network_message("001");
        assert_eq!(code(&suspended.exchange(&m).await), "58");

        // Key change: the new TPK comes under the TMK with its check value; PIN blocks under
        // the old key are wrong PINs from then on.
        let m = t.network_message("101");
        let answer = t.exchange(&m).await;
        assert_eq!(code(&answer), "00");
        let de48 = text(&answer, 48);
        assert_eq!(de48.len(), 38);
        let old_tpk = std::mem::replace(
            &mut t.tpk,
            KeyChange::open(&t.tmk, &de48)
                .expect("DE48 opens under the TMK")
                .0,
        );
        let card = switch.regular(false, profile as usize);
        assert_eq!(
            code(&t.purchase(&Purchase::new(&card, 100_000)).await),
            "00",
            "new TPK"
        );
        let mut stale = switch.terminal(profile, ACTIVE).await;
        stale.tpk = old_tpk;
        assert_eq!(
            code(&stale.purchase(&Purchase::new(&card, 100_000)).await),
            "55",
            "old TPK"
        );
    }
}

// ------------------------------------------------------------------ §3.2, §5 purchases

async fn purchase_approves_once_and_spans_pockets_earliest_expiry_first(backend: Backend) {
    let switch = Switch::start(backend);
    for (i, profile) in PROFILES.into_iter().enumerate() {
        let mut t = switch.terminal(profile, ACTIVE).await;
        let card = switch.regular(true, i);
        assert_eq!(t.balance(&card).await, SEMBAKO + LANSIA);
        // Rice is allowed by both programs: LANSIA (earlier expiry) pays first, SEMBAKO the rest.
        let p = Purchase::new(&card, 25_000_000).basket(&[("01", 20_000_000), ("02", 5_000_000)]);
        let answer = t.purchase(&p).await;
        assert_eq!(code(&answer), "00");
        assert_eq!(answer.mti().as_str(), "0210");
        assert_eq!(text(&answer, 38).len(), 6, "authorization id");
        assert_eq!(text(&answer, 37).len(), 12, "RRN");
        assert_eq!(balance_of(&answer), SEMBAKO + LANSIA - 25_000_000);
        for echoed in [2, 3, 4, 7, 11, 12, 13, 41, 42, 49] {
            assert!(answer.has(echoed), "DE{echoed} echoed");
        }
        assert_eq!(t.balance(&card).await, SEMBAKO + LANSIA - 25_000_000);
        // Only SEMBAKO allows cooking oil: what LANSIA had is gone, so 51 for more than is left.
        let oil = Purchase::new(&card, 16_000_000).basket(&[("07", 16_000_000)]);
        let short = t.purchase(&oil).await;
        assert_eq!(code(&short), "51");
        // DE54 says what this basket could spend (SEMBAKO's pocket alone), §5.
        assert_eq!(balance_of(&short), 15_000_000);
        let oil = Purchase::new(&card, 15_000_000).basket(&[("07", 15_000_000)]);
        assert_eq!(code(&t.purchase(&oil).await), "00");
        assert_eq!(t.balance(&card).await, 0);
    }
}

async fn duplicates_get_the_same_answer_even_after_a_restart(backend: Backend) {
    let switch = Switch::start(backend);
    let card = switch.regular(false, 0);
    let p = Purchase::new(&card, 5_000_000);
    let mut t = switch.terminal(Profile::Bcd, ACTIVE).await;
    let first = t.purchase(&p).await;
    assert_eq!(code(&first), "00");
    let again = t.purchase(&p).await;
    for n in [37, 38, 39, 54] {
        assert_eq!(text(&again, n), text(&first, n), "DE{n} of a duplicate");
    }
    // A declined purchase is repeated as declined too.
    let mut wrong = Purchase::new(&card, 100_000);
    wrong.pin = switch.wrong_pin(&card);
    let declined = t.purchase(&wrong).await;
    assert_eq!(code(&declined), "55");

    let switch = switch.restart();
    let mut t = switch.terminal(Profile::Ascii, ACTIVE).await;
    let after = t.purchase(&p).await;
    for n in [37, 38, 39, 54] {
        assert_eq!(text(&after, n), text(&first, n), "DE{n} after a restart");
    }
    assert_eq!(
        t.balance(&card).await,
        SEMBAKO - 5_000_000,
        "the money moved once"
    );
    assert_eq!(text(&t.purchase(&wrong).await, 37), text(&declined, 37));
    // §6 order 2: the same key with other content.
    let mut other = p.clone();
    other.amount = 6_000_000;
    assert_eq!(code(&t.purchase(&other).await), "94");
    // It comes before the processing code (orders 6-7): any 0200 under the key.
    for pc in ["310000", "010000", "200000"] {
        let mut reused = p.clone();
        reused.processing_code = pc;
        assert_eq!(
            code(&t.purchase(&reused).await),
            "94",
            "processing code {pc}"
        );
    }
}

async fn every_decline_of_section_6_in_its_order(backend: Backend) {
    let switch = Switch::start(backend);
    for (i, profile) in PROFILES.into_iter().enumerate() {
        let mut t = switch.terminal(profile, ACTIVE).await;
        let card = switch.regular(false, 2 + i);
        let ok = || Purchase::new(&card, 1_000_000);

        // 30: a mandatory field missing.
        let mut m = t.purchase_message(&ok());
        m.remove(52);
        assert_eq!(code(&t.exchange(&m).await), "30", "no PIN block");
        // 30: track 2 that disagrees with DE2.
        let mut m = t.purchase_message(&ok());
        m.set(35, b"6048720000000012=2912101").unwrap();
        assert_eq!(code(&t.exchange(&m).await), "30", "track 2 mismatch");
        // 58: a suspended terminal; 03: a terminal of a suspended E-Warong, or another DE42.
        let mut suspended = switch.terminal(profile, SUSPENDED).await;
        assert_eq!(code(&suspended.purchase(&ok()).await), "58");
        let mut orphan = switch.terminal(profile, OF_SUSPENDED_MERCHANT).await;
        assert_eq!(code(&orphan.purchase(&ok()).await), "03");
        let mut m = t.purchase_message(&ok());
        m.set(42, b"EWARONG00000002").unwrap();
        assert_eq!(
            code(&t.exchange(&m).await),
            "03",
            "DE42 of another E-Warong"
        );
        // 57: cash; 12: a processing code not in §3.
        for (pc, expect) in [
            ("010000", "57"),
            ("090000", "57"),
            ("400000", "57"),
            ("200000", "12"),
        ] {
            let mut p = ok();
            p.processing_code = pc;
            assert_eq!(code(&t.purchase(&p).await), expect, "processing code {pc}");
        }
        // 13: currency, zero amount, basket total.
        let mut p = ok();
        p.currency = "840";
        assert_eq!(code(&t.purchase(&p).await), "13");
        assert_eq!(code(&t.purchase(&Purchase::new(&card, 0)).await), "13");
        assert_eq!(
            code(&t.purchase(&ok().basket(&[("01", 999_999)])).await),
            "13"
        );
        // 14: unknown PAN, Luhn failure.
        let mut stranger = card.clone();
        stranger.pan = "6048729999999993".into();
        assert_eq!(
            code(&t.purchase(&Purchase::new(&stranger, 1_000_000)).await),
            "14"
        );
        let mut bad_luhn = card.clone();
        let last = bad_luhn.pan.pop().unwrap();
        bad_luhn.pan.push(if last == '9' {
            '0'
        } else {
            (last as u8 + 1) as char
        });
        assert_eq!(
            code(&t.purchase(&Purchase::new(&bad_luhn, 1_000_000)).await),
            "14"
        );
        // 54: expired card; DE14 other than the card's.
        assert_eq!(
            code(
                &t.purchase(&Purchase::new(&switch.card("expired"), 1_000_000))
                    .await
            ),
            "54"
        );
        let mut wrong_expiry = card.clone();
        wrong_expiry.expiry = "3001".into();
        assert_eq!(
            code(&t.purchase(&Purchase::new(&wrong_expiry, 1_000_000)).await),
            "54"
        );
        // 41, 43, 62.
        for (kind, expect) in [
            ("lost", "41"),
            ("stolen", "43"),
            ("blocked", "62"),
            ("not_delivered", "62"),
            ("revoked", "62"),
        ] {
            assert_eq!(
                code(
                    &t.purchase(&Purchase::new(&switch.card(kind), 1_000_000))
                        .await
                ),
                expect,
                "{kind}"
            );
        }
        // 75: a locked PIN, even with the right PIN.
        assert_eq!(
            code(
                &t.purchase(&Purchase::new(&switch.card("pin_locked"), 1_000_000))
                    .await
            ),
            "75"
        );
        // 57: a non-food category; 61: above the per-purchase limit.
        assert_eq!(
            code(
                &t.purchase(&Purchase::new(&card, 1_000_000).basket(&[("90", 1_000_000)]))
                    .await
            ),
            "57"
        );
        assert_eq!(
            code(&t.purchase(&Purchase::new(&card, SEMBAKO + 1)).await),
            "61"
        );
        // Still untouched.
        assert_eq!(t.balance(&card).await, SEMBAKO);
    }
}

async fn wrong_pins_count_and_the_third_locks(backend: Backend) {
    let switch = Switch::start(backend);
    let mut t = switch.terminal(Profile::Bcd, ACTIVE).await;
    let card = switch.regular(false, 0);
    let mut wrong = Purchase::new(&card, 1_000_000);
    wrong.pin = switch.wrong_pin(&card);
    let fresh = |p: &Purchase| Purchase {
        stan: next_stan(),
        ..p.clone()
    };
    assert_eq!(code(&t.purchase(&fresh(&wrong)).await), "55");
    // A right PIN resets the count.
    assert_eq!(
        code(&t.purchase(&Purchase::new(&card, 1_000_000)).await),
        "00"
    );
    assert_eq!(code(&t.purchase(&fresh(&wrong)).await), "55");
    assert_eq!(code(&t.purchase(&fresh(&wrong)).await), "55");
    assert_eq!(
        code(&t.purchase(&fresh(&wrong)).await),
        "75",
        "the third wrong PIN in a row locks"
    );
    assert_eq!(
        code(&t.purchase(&Purchase::new(&card, 1_000_000)).await),
        "75",
        "locked even for the right PIN"
    );
}

async fn daily_purchase_count_limit(backend: Backend) {
    let switch = Switch::start(backend);
    let mut t = switch.terminal(Profile::Ascii, ACTIVE).await;
    let card = switch.regular(false, 1);
    for _ in 0..3 {
        assert_eq!(
            code(&t.purchase(&Purchase::new(&card, 100_000)).await),
            "00"
        );
    }
    assert_eq!(
        code(&t.purchase(&Purchase::new(&card, 100_000)).await),
        "65",
        "SEMBAKO allows 3 a day"
    );
}

// ------------------------------------------------------------------ §3.4 reversals

async fn reversals_are_exactly_once_and_tombstones_decline_late_originals(backend: Backend) {
    let switch = Switch::start(backend);
    for (i, profile) in PROFILES.into_iter().enumerate() {
        let mut t = switch.terminal(profile, ACTIVE).await;
        let card = switch.regular(false, 3 + i);
        let p = Purchase::new(&card, 7_000_000);
        assert_eq!(code(&t.purchase(&p).await), "00");
        assert_eq!(t.balance(&card).await, SEMBAKO - 7_000_000);
        // A different amount is refused and moves nothing.
        let m = t.reversal_message(&p, b"0400", 1_000_000);
        assert_eq!(code(&t.exchange(&m).await), "12");
        for mti in [b"0400", b"0401", b"0420", b"0421"] {
            let answer = t.reverse(&p, mti).await;
            assert_eq!(code(&answer), "00", "{}", String::from_utf8_lossy(mti));
            assert!(answer.has(90));
        }
        assert_eq!(
            t.balance(&card).await,
            SEMBAKO,
            "reversed once, whatever the repeats"
        );

        // A reversal whose original has not arrived leaves a tombstone.
        let late = Purchase::new(&card, 2_000_000);
        assert_eq!(code(&t.reverse(&late, b"0420").await), "00");
        // 05 (order 3) comes before the processing code (order 6), for any 0200.
        let mut cash = late.clone();
        cash.processing_code = "010000";
        assert_eq!(code(&t.purchase(&cash).await), "05");
        assert_eq!(code(&t.purchase(&late).await), "05");
        // A reversal from a terminal that may not send one is 58 (order 4) whatever else
        // is wrong with it, an original MTI other than 0200 (12, order 7) included.
        let mut suspended = switch.terminal(profile, SUSPENDED).await;
        let mut m = suspended.reversal_message(&p, b"0400", p.amount);
        m.set(
            90,
            format!("0100{}{}{}", p.stan, p.transmitted, "0".repeat(22)).as_bytes(),
        )
        .unwrap();
        assert_eq!(code(&suspended.exchange(&m).await), "58");
        assert_eq!(t.balance(&card).await, SEMBAKO);
    }
}

// ------------------------------------------------------------------ §3.5 batch close

async fn batch_close_matches_or_answers_95_with_the_switch_totals(backend: Backend) {
    let switch = Switch::start(backend);
    let mut t = switch.terminal(Profile::Bcd, ACTIVE_2).await;
    let card = switch.regular(false, 5);
    let sold = Purchase::new(&card, 2_000_000);
    assert_eq!(code(&t.purchase(&sold).await), "00");
    let reversed = Purchase::new(&card, 3_000_000);
    assert_eq!(code(&t.purchase(&reversed).await), "00");
    assert_eq!(code(&t.reverse(&reversed, b"0400").await), "00");
    // One sale of 20,000.00 not reversed; one reversal of 30,000.00.
    let answer = t.close_batch("001000002000000001000003000000").await;
    assert_eq!(
        (answer.mti().as_str(), code(&answer).as_str()),
        ("0510", "00")
    );
    // After the close the reversed purchase is settled: a late reversal is refused.
    assert_eq!(code(&t.reverse(&sold, b"0400").await), "12");
    // A 0500 from a suspended terminal is 58 (order 4) even with a processing code that is
    // not 920000 (12, order 7).
    let mut suspended = switch.terminal(Profile::Bcd, SUSPENDED).await;
    let mut m = suspended.close_batch_message("000000000000000000000000000000");
    m.set(3, b"000000").unwrap();
    assert_eq!(code(&suspended.exchange(&m).await), "58");

    // A terminal that miscounts gets 95 and the switch's totals.
    let another = Purchase::new(&card, 1_000_000);
    assert_eq!(code(&t.purchase(&another).await), "00");
    let answer = t.close_batch("002000002000000000000000000000").await;
    assert_eq!(code(&answer), "95");
    assert_eq!(text(&answer, 63), "001000001000000000000000000000");
}

// ------------------------------------------------------------------ §3.6 anything else

async fn other_mtis_get_12_and_responses_are_dropped(backend: Backend) {
    let switch = Switch::start(backend);
    let mut t = switch.terminal(Profile::Ascii, ACTIVE).await;
    let mut m = Message::new(Mti::new(*b"0100").unwrap());
    m.set(11, next_stan().as_bytes()).unwrap();
    m.set(41, t.id.as_bytes()).unwrap();
    let answer = t.exchange(&m).await;
    assert_eq!(
        (answer.mti().as_str(), code(&answer).as_str()),
        ("0110", "12")
    );
    // §9: a request with a MAC (DE64) gets 12.
    let mut with_mac = t.network_message("301");
    with_mac.set(64, &[0x11; 8]).unwrap();
    assert_eq!(code(&t.exchange(&with_mac).await), "12");
    // A response-class MTI gets no answer: the next answer is the echo's.
    let mut response = Message::new(Mti::new(*b"0210").unwrap());
    response.set(11, b"999999").unwrap();
    t.send(&response).await;
    let echo = t.network_message("301");
    assert_eq!(code(&t.exchange(&echo).await), "00");
    let started = Instant::now();
    assert!(started.elapsed() < DEADLINE);
}

/// Each scenario as a test on the embedded store, on Redis, and on Redis + Cassandra.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Embedded).await } )*
        }
        mod redis {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Redis).await } )*
        }
        mod scylla {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Scylla).await } )*
        }
    };
}

on_both_backends!(
    network_management_and_key_change,
    purchase_approves_once_and_spans_pockets_earliest_expiry_first,
    duplicates_get_the_same_answer_even_after_a_restart,
    every_decline_of_section_6_in_its_order,
    wrong_pins_count_and_the_third_locks,
    daily_purchase_count_limit,
    reversals_are_exactly_once_and_tombstones_decline_late_originals,
    batch_close_matches_or_answers_95_with_the_switch_totals,
    other_mtis_get_12_and_responses_are_dropped,
);

// ------------------------------------------------------------------ metrics

/// The value of the sample of `/metrics` named `name` whose labels include every one of
/// `labels` (`key="value"`), or 0 when there is none.
pub(super) fn sample(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_count_every_answer_by_mti_and_code() {
    let switch = Switch::start(Backend::Embedded);
    let scrape = || async {
        reqwest::get(format!("http://{}/metrics", switch.admin))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .unwrap()
    };
    let mut t = switch.terminal(Profile::Bcd, ACTIVE).await;
    let before = scrape().await;
    let card = switch.regular(false, 0);
    for _ in 0..3 {
        assert_eq!(
            code(&t.purchase(&Purchase::new(&card, 1_000_000)).await),
            "00"
        );
    }
    let mut wrong = Purchase::new(&card, 1_000_000);
    wrong.pin = switch.wrong_pin(&card);
    assert_eq!(code(&t.purchase(&wrong).await), "55");
    t.balance(&card).await;
    let after = scrape().await;

    let count = |text: &str, mti: &str, code: &str| {
        sample(
            text,
            "ssn_request_duration_seconds_count",
            &[&format!("mti=\"{mti}\""), &format!("code=\"{code}\"")],
        )
    };
    // Three purchases and the balance inquiry (a 0200 too) approved, the wrong PIN declined.
    assert_eq!(
        count(&after, "0200", "00") - count(&before, "0200", "00"),
        4.0,
        "{after}"
    );
    assert_eq!(
        count(&after, "0200", "55") - count(&before, "0200", "55"),
        1.0,
        "{after}"
    );
    // Every request counted in flight was counted out again.
    assert_eq!(
        sample(&after, "ssn_requests_in_flight", &[]),
        0.0,
        "{after}"
    );
    // The projection gained the four purchase authorizations (three approved, the wrong PIN
    // declined; a balance inquiry journals nothing), each one journal entry at least.
    let grew = |name: &str| sample(&after, name, &[]) - sample(&before, name, &[]);
    assert_eq!(grew("ssn_projection_purchases"), 4.0, "{after}");
    assert!(grew("ssn_projection_entries") >= 4.0, "{after}");
    // Entries count everything applied, the city's funding as well as the purchases.
    assert!(
        sample(&after, "ssn_projection_entries", &[])
            > sample(&after, "ssn_projection_purchases", &[]),
        "{after}"
    );
}

// ------------------------------------------------------------------ hostile peers

/// Resident memory of a process in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn hostile_bytes_cost_only_their_own_connection() {
    let switch = Switch::start(Backend::Embedded);
    let mut good = switch.terminal(Profile::Bcd, ACTIVE).await;
    let hostile: Vec<(Profile, Vec<u8>)> = vec![
        (
            Profile::Bcd,
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ), // garbage
        (
            Profile::Ascii,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ), // not a length
        (Profile::Ascii, b"9999".to_vec()),     // over the limit
        (Profile::Bcd, vec![0xff, 0xff, 0x60]), // huge length
        (Profile::Bcd, vec![0x00, 0x40, 0x60, 0x00, 0x01]), // truncated, then gone
        (Profile::Ascii, b"0100".to_vec()),     // lying: promises 100
    ];
    for (profile, bytes) in &hostile {
        let addr = if *profile == Profile::Bcd {
            &switch.bcd
        } else {
            &switch.ascii
        };
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(bytes).await;
        drop(stream);
    }
    // A bitmap announcing fields that are not there, with MTI, DE11 and DE41 readable: `30`.
    let mut m = Message::new(Mti::FINANCIAL_REQUEST);
    m.set(11, b"424242").unwrap();
    m.set(41, good.id.as_bytes()).unwrap();
    let bcd_frame = |bytes: &[u8]| {
        let mut frame = ((bytes.len() + 5) as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(&[0x60, 0, 1, 0, 0]);
        frame.extend_from_slice(bytes);
        frame
    };
    // Announcing DE4 shifts every field: nothing readable is left, so it is dropped.
    let mut shifted = m.to_bytes(Profile::Bcd).to_vec();
    shifted[2] |= 0x10;
    good.stream.write_all(&bcd_frame(&shifted)).await.unwrap();
    // Announcing DE52 after DE41: MTI, DE11 and DE41 are read, so it is answered `30`.
    let mut bytes = m.to_bytes(Profile::Bcd).to_vec();
    bytes[2 + 6] |= 0x10;
    good.stream.write_all(&bcd_frame(&bytes)).await.unwrap();
    let answer = good.receive().await;
    assert_eq!(
        (code(&answer).as_str(), answer.stan()),
        ("30", Some(*b"424242"))
    );
    // The well-behaved terminal is still served.
    let echo = good.network_message("301");
    assert_eq!(code(&good.exchange(&echo).await), "00");
}

#[tokio::test]
async fn ten_thousand_idle_connections_leave_others_served_and_memory_bounded() {
    const IDLE_CONNECTIONS: usize = 10_000;
    const CONNECT_BATCH: usize = 250;
    /// Generous: an idle connection costs a task, a socket and a 2 KiB read buffer.
    const RSS_GROWTH_KIB_MAX: u64 = 256 * 1024;
    let switch = Switch::start(Backend::Embedded);
    let pid = switch.child.id();
    let before = rss_kib(pid);
    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    while idle.len() < IDLE_CONNECTIONS {
        let batch = (0..CONNECT_BATCH).map(|_| TcpStream::connect(switch.ascii.clone()));
        for stream in futures::future::join_all(batch).await {
            idle.push(stream.expect("connect"));
        }
    }
    let mut t = switch.terminal(Profile::Ascii, ACTIVE).await;
    let card = switch.regular(false, 0);
    assert_eq!(
        code(&t.purchase(&Purchase::new(&card, 1_000_000)).await),
        "00"
    );
    let mut b = switch.terminal(Profile::Bcd, ACTIVE_2).await;
    let echo = b.network_message("301");
    assert_eq!(code(&b.exchange(&echo).await), "00");
    let growth = rss_kib(pid).saturating_sub(before);
    assert!(
        growth < RSS_GROWTH_KIB_MAX,
        "RSS grew by {growth} KiB for {IDLE_CONNECTIONS} idle connections"
    );
    drop(idle);
}

// ------------------------------------------------------------------ crash safety

/// SIGKILL while purchases are in flight, then restart: every purchase the client saw
/// approved is in the journal exactly once (asking again returns the same RRN and
/// authorization id, and the balances add up), and the journal verifies.
async fn killed_mid_traffic_loses_no_approved_purchase(backend: Backend) {
    const CARDS: u32 = 40;
    const IN_FLIGHT: usize = 8;
    for seed in [3u64, 17, 41] {
        let switch = Switch::start_with(backend, CARDS);
        let cards = switch.cards("regular");
        let mut t = switch.terminal(Profile::Bcd, ACTIVE).await;
        let kill_after = 20 + (seed * 7919 % 60) as usize;
        let mut sent: Vec<Purchase> = Vec::new();
        let mut approved: Vec<(Purchase, String, String)> = Vec::new();
        let mut answered = 0;
        let mut next = 0usize;
        // Keep IN_FLIGHT requests outstanding; kill the switch after `kill_after` answers.
        let mut switch = Some(switch);
        while answered < kill_after {
            while sent.len() - answered < IN_FLIGHT {
                let card = &cards[next % cards.len()];
                next += 1;
                let p = Purchase::new(card, 100_000 + (next as u64 % 7) * 1_000);
                t.send(&t.purchase_message(&p)).await;
                sent.push(p);
            }
            let answer = t.receive().await;
            answered += 1;
            let stan = String::from_utf8(answer.stan().unwrap().to_vec()).unwrap();
            let p = sent.iter().find(|p| p.stan == stan).unwrap().clone();
            if code(&answer) == "00" {
                approved.push((p, text(&answer, 37), text(&answer, 38)));
            }
        }
        let mut dead = switch.take().unwrap();
        let _ = dead.child.kill(); // SIGKILL, with requests in flight
        let _ = dead.child.wait();
        let switch = dead.restart();
        let status = Command::new(env!("CARGO_BIN_EXE_ssn-switch"))
            .args(["verify", "--data-dir"])
            .arg(&switch.data_dir)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "verify after SIGKILL: {}",
            String::from_utf8_lossy(&status.stdout)
        );

        let mut t = switch.terminal(Profile::Ascii, ACTIVE).await;
        for (p, rrn, auth) in &approved {
            let again = t.purchase(p).await;
            assert_eq!(
                (code(&again), text(&again, 37), text(&again, 38)),
                ("00".into(), rrn.clone(), auth.clone()),
                "seed {seed}"
            );
        }
        // Balances: what each card had, minus what the client saw approved, minus what was
        // approved without the client seeing it (requests in flight at the kill): those are
        // in the journal too and answer as duplicates.
        for card in &cards {
            let seen: u64 = approved
                .iter()
                .filter(|(p, ..)| p.card.pan == card.pan)
                .map(|(p, ..)| p.amount)
                .sum();
            let mut unseen = 0;
            for p in sent.iter().filter(|p| p.card.pan == card.pan) {
                if approved.iter().any(|(a, ..)| a.stan == p.stan) {
                    continue;
                }
                let again = t.purchase(p).await;
                if code(&again) == "00" {
                    unseen += p.amount;
                }
            }
            let start = if card.programs == 2 {
                SEMBAKO + LANSIA
            } else {
                SEMBAKO
            };
            assert_eq!(
                t.balance(card).await,
                start - seen - unseen,
                "seed {seed}: card {}",
                &card.pan[12..]
            );
        }
    }
}

#[tokio::test]
async fn killed_mid_traffic_loses_no_approved_purchase_embedded() {
    killed_mid_traffic_loses_no_approved_purchase(Backend::Embedded).await;
}

#[tokio::test]
async fn killed_mid_traffic_loses_no_approved_purchase_redis() {
    killed_mid_traffic_loses_no_approved_purchase(Backend::Redis).await;
}

/// `ssn-switch serve` on `data_dir`, listening on free loopback ports, logging warnings.
fn serve_command(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ssn-switch"));
    command
        .args([
            "serve",
            "--bcd-listen",
            "127.0.0.1:0",
            "--ascii-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--admin-listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--data-dir",
        ])
        .arg(data_dir);
    command
}

/// Runs `ssn-switch serve` on `data_dir` (listening on free loopback ports) with `args` and
/// expects it to refuse to start: returns what it printed on stderr. Bounded by `deadline`: a
/// switch that serves instead is killed and the test fails.
pub(super) fn refuses_to_start(
    data_dir: &std::path::Path,
    args: &[String],
    deadline: Duration,
) -> String {
    std::fs::create_dir_all(data_dir).unwrap();
    let mut child = serve_command(data_dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the switch kept running instead of refusing to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "the switch exited 0: {stderr}");
    stderr
}

/// A switch restarted with another master key than the one its registry's keys are wrapped
/// under refuses to start and says which check values differ, instead of answering `96` to
/// every PIN; with its own key it starts and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_given_another_master_key_refuses_to_start() {
    let mut switch = Switch::start_with(Backend::Embedded, 2);
    let card = switch.regular(false, 0);
    let mut terminal = switch.terminal(Profile::Bcd, ACTIVE).await;
    let balance = terminal.balance(&card).await;
    drop(terminal);
    let _ = switch.child.kill();
    let _ = switch.child.wait();
    let data_dir = switch.data_dir.clone();
    // Its directory stays for the restart.
    std::mem::forget(switch);
    let key_file = data_dir.join("master.key");
    let own_key = std::fs::read_to_string(&key_file).unwrap();
    std::fs::write(&key_file, "0123456789abcdef".repeat(4)).unwrap();
    let stderr = refuses_to_start(&data_dir, &[], DEADLINE);
    assert!(
        stderr.contains("wrapped under the master key with check value"),
        "{stderr}"
    );
    std::fs::write(&key_file, own_key).unwrap();
    let switch = Switch::start_in(data_dir, Backend::Embedded, 0);
    let mut terminal = switch.terminal(Profile::Bcd, ACTIVE).await;
    assert_eq!(terminal.balance(&card).await, balance);
}

/// A listener other machines can reach is TLS or explicitly plaintext: without a certificate
/// and without `--allow-plaintext` the switch refuses to start before it listens, naming both
/// ways out; mutual TLS without TLS, and a certificate file that is not one, are refused too.
#[test]
fn plaintext_where_others_can_reach_it_is_refused_at_start() {
    let data_dir = std::env::temp_dir().join(format!("ssn-plaintext-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir).unwrap();
    let not_pem = data_dir.join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let refused = |args: &[&str], says: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ssn-switch"))
            .arg("serve")
            .args(args)
            .args(["--log", "warn", "--data-dir"])
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let until = std::time::Instant::now() + DEADLINE;
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?}: the switch kept running instead of refusing to start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "{args:?} started: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "{args:?} listened: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        for said in says {
            assert!(stderr.contains(said), "{args:?}: {stderr}");
        }
    };
    let loopback = [
        "--ascii-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ];
    let reachable = [&["--bcd-listen", "0.0.0.0:0"][..], &loopback[..]].concat();
    refused(
        &reachable,
        &["bcd listener", "--tls-cert", "--allow-plaintext"],
    );
    let client_certs = [
        &["--bcd-listen", "127.0.0.1:0", "--ascii-client-certs"][..],
        &[not_pem.to_str().unwrap()][..],
        &loopback[..],
    ]
    .concat();
    refused(&client_certs, &["--ascii-client-certs needs TLS"]);
    let bad_cert = [
        &["--bcd-listen", "127.0.0.1:0", "--tls-cert"][..],
        &[
            not_pem.to_str().unwrap(),
            "--tls-key",
            not_pem.to_str().unwrap(),
        ][..],
        &loopback[..],
    ]
    .concat();
    refused(&bad_cert, &["TLS on the bcd listener"]);
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// An amount exponent the switch cannot convert (it keeps hundredths) is refused at start
/// with a message naming the flag, never read as another.
#[test]
fn an_unsupported_amount_exponent_is_refused_at_start() {
    let data_dir = std::env::temp_dir().join(format!("ssn-exponent-{}", std::process::id()));
    for flag in ["--bcd-amount-exponent", "--ascii-amount-exponent"] {
        let stderr = refuses_to_start(&data_dir, &[flag.into(), "3".into()], DEADLINE);
        assert!(
            stderr.contains(flag) && stderr.contains("0..=2"),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&data_dir);
}
