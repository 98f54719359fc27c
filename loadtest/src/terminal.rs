//! One simulated EDC terminal: its own TCP connection in one profile, a sign-on, then
//! requests at the pace of the run, answers matched on DE11, and what it saw kept for the
//! report and the books.
//!
//! A terminal never waits for an answer before its next arrival (open loop): arrivals that
//! find [`TERMINAL_IN_FLIGHT_MAX`] requests in flight wait in a backlog, and their latency
//! still runs from the moment they were due. A purchase left unanswered past the timeout is
//! followed by a reversal advice (0420), as a real terminal does, so that the books stay
//! decidable; a reversal left unanswered is repeated (0401/0421).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use ssn_codec::{FrameCodec, Inbound, Message, Mti, Outbound, Profile, Tpdu};
use ssn_hsm::{EncryptedPinBlock, Pin, TdesKey};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder};

use crate::Error;
use crate::clock;
use crate::mix::{Kind, Mix};
use crate::report::{Recorder, Sample};
use crate::rng::Rng;

/// Requests in flight on one connection: the switch's `in_flight_per_connection_max`.
pub const TERMINAL_IN_FLIGHT_MAX: usize = 64;
/// Arrivals waiting for an in-flight slot; past it an arrival is dropped and counted, and the
/// run's target rate was not held.
pub const TERMINAL_BACKLOG_MAX: usize = 4_096;
/// The terminal's own recent approvals it may pick a purchase to reverse from.
pub const RECENT_APPROVALS_MAX: usize = 256;
/// A reversal (or reversal advice) and its repeats, before the purchase is left in doubt.
pub const REVERSAL_ATTEMPTS_MAX: u32 = 3;
/// How often a terminal looks for requests past their timeout.
pub const TIMEOUT_SCAN_INTERVAL: Duration = Duration::from_millis(50);
/// Latency samples a terminal buffers before it hands them to the shared recorder.
pub const SAMPLES_BUFFERED_MAX: usize = 512;
/// The longest frame the harness reads or writes (the host interface's default).
pub const FRAME_BYTES_MAX: usize = ssn_codec::FRAME_BYTES_MAX_DEFAULT;
/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// The TPDU of `bcd` requests: `60`, destination NII 0001, source NII 0000.
const TPDU: Tpdu = Tpdu([0x60, 0x00, 0x01, 0x00, 0x00]);

/// How arrivals are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Open loop: arrivals at `rate_per_second` for this terminal, evenly spaced or Poisson.
    Open {
        /// Arrivals per second of this terminal.
        rate_per_second: f64,
        /// Exponential inter-arrival times instead of a fixed interval.
        poisson: bool,
    },
    /// Closed loop: keep `in_flight` requests outstanding, the next sent when one is answered.
    Closed {
        /// Requests outstanding at once.
        in_flight: usize,
    },
}

/// Shared by every terminal of a run.
#[derive(Debug)]
pub struct RunPlan {
    /// Wire profile.
    pub profile: Profile,
    /// Where the terminals connect.
    pub addr: SocketAddr,
    /// Pace of one terminal.
    pub pace: Pace,
    /// What to send.
    pub mix: Mix,
    /// An unanswered request counts as a timeout after this long.
    pub timeout: Duration,
    /// Requests due before `start + warmup` are not in the latency figures.
    pub warmup: Duration,
    /// The cards, ready to use.
    pub cards: Vec<CardSecret>,
    /// The seed of every terminal's generator.
    pub seed: u64,
}

/// A card as a terminal uses it.
#[derive(Clone)]
pub struct CardSecret {
    /// The ledger's card id (for the books).
    pub card_id: u64,
    /// PAN digits.
    pub pan: String,
    /// YYMM.
    pub expiry: [u8; 4],
    /// The right PIN.
    pub pin: Pin,
    /// A wrong PIN for it.
    pub wrong_pin: Pin,
}

impl std::fmt::Debug for CardSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardSecret({})", self.card_id)
    }
}

/// A terminal of the run.
#[derive(Debug)]
pub struct TerminalSpec {
    /// Index in the run, for the generator's stream.
    pub index: usize,
    /// DE41.
    pub terminal_id: [u8; 8],
    /// DE42.
    pub merchant_id: [u8; 15],
    /// The clear TPK that PIN blocks are encrypted under.
    pub tpk: TdesKey,
}

/// When the run's phases end, fixed by the coordinator once every terminal signed on.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// First arrival.
    pub start: Instant,
    /// No arrival at or after this.
    pub send_until: Instant,
    /// Nothing is waited for after this.
    pub drain_until: Instant,
}

/// Live counters for the progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests written.
    pub sent: AtomicU64,
    /// Answers matched.
    pub answered: AtomicU64,
    /// Approved purchases.
    pub approved: AtomicU64,
    /// Requests past their timeout.
    pub timeouts: AtomicU64,
    /// Terminals signed on.
    pub signed_on: AtomicU64,
}

/// What one terminal saw.
#[derive(Debug, Default)]
pub struct Counts {
    /// Requests sent, per kind (indexed like [`Kind::ALL`]); repeats and advices are counted
    /// under `reversal`.
    pub sent: [u64; 7],
    /// Answers, per kind and response code.
    pub codes: HashMap<(Kind, [u8; 2]), u64>,
    /// Requests not answered within the timeout, per kind.
    pub timeouts: [u64; 7],
    /// Answers that came after their request had timed out.
    pub late: u64,
    /// Answers that matched no request, or the wrong MTI or terminal.
    pub unexpected: u64,
    /// Arrivals dropped because the backlog was full.
    pub dropped: u64,
    /// Reversal advices sent for purchases that timed out.
    pub advices: u64,
    /// Approved purchases (answer `00`) due in the measured window.
    pub approved_measured: u64,
    /// Answers to requests due in the measured window.
    pub answered_measured: u64,
}

impl Counts {
    /// Adds another terminal's counts.
    pub fn merge(&mut self, other: &Counts) {
        for i in 0..7 {
            self.sent[i] += other.sent[i];
            self.timeouts[i] += other.timeouts[i];
        }
        for (key, n) in &other.codes {
            *self.codes.entry(*key).or_default() += n;
        }
        self.late += other.late;
        self.unexpected += other.unexpected;
        self.dropped += other.dropped;
        self.advices += other.advices;
        self.approved_measured += other.approved_measured;
        self.answered_measured += other.answered_measured;
    }

    /// Answers of every kind.
    pub fn answered(&self) -> u64 {
        self.codes.values().sum()
    }
}

/// Money a terminal saw move, for the books.
#[derive(Debug, Default)]
pub struct Seen {
    /// Approved minus reversed, in minor units, per card id.
    pub per_card: HashMap<u64, i64>,
    /// Cards with a purchase or reversal whose outcome the terminal could not learn.
    pub in_doubt: HashMap<u64, u32>,
}

/// What a terminal returns at the end of the run.
#[derive(Debug, Default)]
pub struct TerminalOutcome {
    /// Counts.
    pub counts: Counts,
    /// Money seen.
    pub seen: Seen,
    /// DE42, for the per-E-Warong books.
    pub merchant_id: String,
    /// The terminal's index in the run.
    pub index: u32,
    /// (STAN, DE7) of every 0200 sent: the run's keys in the journal.
    pub sent_keys: Vec<(u32, u64)>,
    /// Why the terminal stopped early, if it did.
    pub error: Option<String>,
}

/// A purchase as the terminal needs to reverse it.
#[derive(Clone, Copy, Debug)]
struct Original {
    card: u32,
    amount: u64,
    stan: [u8; 6],
    de7: [u8; 10],
}

/// What a request in flight was.
#[derive(Clone, Copy, Debug)]
enum What {
    /// A 0200 of a known card that moves money if approved (the right PIN and a food basket
    /// are meant to be; a wrong PIN or a non-food basket are meant to be declined).
    Purchase(Original),
    /// A 0400/0401 of an approval this terminal saw, or a 0420/0421 advice for a purchase
    /// that timed out (`advice`).
    Reversal {
        original: Original,
        attempt: u32,
        advice: bool,
    },
    /// Anything that moves no money.
    Other,
}

#[derive(Debug)]
struct Pending {
    kind: Kind,
    /// When the request was due (open loop) or sent (closed loop): latency runs from here.
    due: Instant,
    /// When it was handed to the connection (framed into the output buffer, written in the
    /// same turn of the loop): the timeout and the send lag run from here.
    written: Instant,
    measured: bool,
    expected_mti: [u8; 4],
    what: What,
}

fn io_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(format!("{what}: {e}")))
}

/// One terminal's state.
struct Terminal<'a> {
    spec: &'a TerminalSpec,
    plan: &'a RunPlan,
    progress: &'a Progress,
    recorder: &'a std::sync::Mutex<Recorder>,
    stream: TcpStream,
    codec: FrameCodec,
    input: BytesMut,
    out: BytesMut,
    message: Message,
    rng: Rng,
    stan: u32,
    pending: HashMap<u32, Pending>,
    timed_out: HashMap<u32, Kind>,
    recent: VecDeque<Original>,
    retries: VecDeque<What>,
    samples: Vec<Sample>,
    /// The run's start, once known: samples are filed by second since then.
    start: Instant,
    outcome: TerminalOutcome,
}

/// Connects, signs on, waits for the schedule, runs, and returns what it saw. Never panics on
/// what the switch sends; a failed connection ends this terminal with `error` set.
pub async fn run_terminal(
    spec: Arc<TerminalSpec>,
    plan: Arc<RunPlan>,
    progress: Arc<Progress>,
    recorder: Arc<std::sync::Mutex<Recorder>>,
    mut schedule: tokio::sync::watch::Receiver<Option<Schedule>>,
    sign_on_deadline: Instant,
) -> TerminalOutcome {
    let merchant_id = String::from_utf8_lossy(&spec.merchant_id).into_owned();
    let stream =
        match tokio::time::timeout_at(sign_on_deadline, TcpStream::connect(plan.addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return failed(merchant_id, format!("connect: {e}")),
            Err(_) => return failed(merchant_id, "connect: deadline".into()),
        };
    let _ = stream.set_nodelay(true);
    let mut terminal = Terminal {
        spec: &spec,
        plan: &plan,
        progress: &progress,
        recorder: &recorder,
        stream,
        codec: FrameCodec::new(plan.profile, FRAME_BYTES_MAX),
        input: BytesMut::with_capacity(READ_CHUNK_BYTES),
        out: BytesMut::new(),
        message: Message::new(Mti::NETWORK_REQUEST),
        rng: Rng::new(plan.seed, spec.index as u64),
        // Start each run's STANs somewhere else, so a second run on the same city in the
        // same second does not repeat a (DE41, DE11, DE7).
        stan: (clock::unix_seconds_now() as u32).wrapping_mul(7919) % 1_000_000,
        pending: HashMap::new(),
        timed_out: HashMap::new(),
        recent: VecDeque::new(),
        retries: VecDeque::new(),
        samples: Vec::with_capacity(SAMPLES_BUFFERED_MAX),
        start: Instant::now(),
        outcome: TerminalOutcome {
            merchant_id,
            index: spec.index as u32,
            ..TerminalOutcome::default()
        },
    };
    if let Err(e) = terminal.sign_on(sign_on_deadline).await {
        terminal.outcome.error = Some(format!("sign-on: {e}"));
        return terminal.outcome;
    }
    progress.signed_on.fetch_add(1, Ordering::Relaxed);
    let schedule =
        match tokio::time::timeout_at(sign_on_deadline, schedule.wait_for(Option::is_some)).await {
            Ok(Ok(s)) => match *s {
                Some(s) => s,
                None => return terminal.outcome,
            },
            _ => {
                terminal.outcome.error = Some("the run did not start".into());
                return terminal.outcome;
            }
        };
    if let Err(e) = terminal.run(schedule).await {
        terminal.outcome.error = Some(e.to_string());
    }
    terminal.flush_samples();
    terminal.outcome
}

fn failed(merchant_id: String, error: String) -> TerminalOutcome {
    TerminalOutcome {
        merchant_id,
        error: Some(error),
        ..TerminalOutcome::default()
    }
}

impl Terminal<'_> {
    fn next_stan(&mut self) -> ([u8; 6], u32) {
        self.stan = (self.stan + 1) % 1_000_000;
        if self.stan == 0 {
            self.stan = 1;
        }
        let mut digits = [b'0'; 6];
        let mut v = self.stan;
        for slot in digits.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        (digits, self.stan)
    }

    /// Encodes `self.message` into the output buffer.
    fn frame(&mut self) -> Result<(), Error> {
        let tpdu = (self.plan.profile == Profile::Bcd).then_some(TPDU);
        self.codec
            .encode(
                Outbound::Message {
                    tpdu,
                    message: &self.message,
                },
                &mut self.out,
            )
            .map_err(|e| io_error("encode", e))
    }

    async fn sign_on(&mut self, deadline: Instant) -> Result<(), Error> {
        let (stan, key) = self.next_stan();
        let de7 = clock::de7(clock::unix_seconds_now());
        self.network_message(&stan, &de7, b"001")?;
        self.frame()?;
        let out = self.out.split();
        tokio::time::timeout_at(deadline, async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            self.stream.write_all(&out).await?;
            loop {
                if let Some(item) = self
                    .codec
                    .decode(&mut self.input)
                    .map_err(|e| io_error("framing", e))?
                {
                    match item {
                        Inbound::Message { message, .. }
                            if message.stan().map(|s| s == stan).unwrap_or(false) =>
                        {
                            return match message.text(39) {
                                Some(b"00") => Ok(()),
                                other => Err(Error::Invalid(format!(
                                    "sign-on of {} answered {:?}",
                                    String::from_utf8_lossy(&self.spec.terminal_id),
                                    other.map(String::from_utf8_lossy)
                                ))),
                            };
                        }
                        _ => continue,
                    }
                }
                if self.stream.read_buf(&mut self.input).await? == 0 {
                    return Err(io_error("sign-on", "the switch closed the connection"));
                }
            }
        })
        .await
        .map_err(|_| io_error("sign-on", "deadline"))??;
        let _ = key;
        Ok(())
    }

    fn network_message(
        &mut self,
        stan: &[u8; 6],
        de7: &[u8; 10],
        code: &[u8; 3],
    ) -> Result<(), Error> {
        let m = &mut self.message;
        m.clear(Mti::NETWORK_REQUEST);
        let set = |m: &mut Message, n: u8, v: &[u8]| {
            m.set(n, v).map(|_| ()).map_err(|e| io_error("field", e))
        };
        set(m, 7, de7)?;
        set(m, 11, stan)?;
        set(m, 41, &self.spec.terminal_id)?;
        set(m, 70, code)
    }

    /// The main loop: arrivals, answers, timeouts, until the schedule ends and nothing is in
    /// flight, or the drain deadline passes.
    async fn run(&mut self, schedule: Schedule) -> Result<(), Error> {
        self.start = schedule.start;
        tokio::time::sleep_until(schedule.start).await;
        let mut next_arrival = match self.plan.pace {
            Pace::Open {
                rate_per_second, ..
            } => {
                // A random phase, so terminals do not all fire on the same tick.
                let interval = 1.0 / rate_per_second.max(1e-9);
                schedule.start + Duration::from_secs_f64(self.rng.unit() * interval)
            }
            Pace::Closed { .. } => schedule.start,
        };
        let mut backlog: VecDeque<Instant> = VecDeque::new();
        let mut next_scan = schedule.start + TIMEOUT_SCAN_INTERVAL;
        let mut last_second = 0u32;
        loop {
            let now = Instant::now();
            // Arrivals due by now.
            match self.plan.pace {
                Pace::Open {
                    rate_per_second,
                    poisson,
                } => {
                    while next_arrival <= now && next_arrival < schedule.send_until {
                        if backlog.len() < TERMINAL_BACKLOG_MAX {
                            backlog.push_back(next_arrival);
                        } else {
                            self.outcome.counts.dropped += 1;
                        }
                        let mean = 1.0 / rate_per_second.max(1e-9);
                        let gap = if poisson {
                            self.rng.exponential(mean)
                        } else {
                            mean
                        };
                        next_arrival += Duration::from_secs_f64(gap);
                    }
                }
                Pace::Closed { in_flight } => {
                    if now < schedule.send_until {
                        while self.pending.len() + backlog.len()
                            < in_flight.min(TERMINAL_IN_FLIGHT_MAX)
                        {
                            backlog.push_back(now);
                        }
                    }
                }
            }
            // Repeats and advices first: the books wait for them.
            while self.pending.len() < TERMINAL_IN_FLIGHT_MAX {
                let Some(what) = self.retries.pop_front() else {
                    break;
                };
                self.send_reversal(what, now, schedule)?;
            }
            while self.pending.len() < TERMINAL_IN_FLIGHT_MAX {
                let Some(due) = backlog.pop_front() else {
                    break;
                };
                self.send_arrival(due, schedule)?;
            }
            if now >= next_scan {
                self.scan_timeouts(now);
                next_scan = now + TIMEOUT_SCAN_INTERVAL;
            }
            let second = now.saturating_duration_since(schedule.start).as_secs() as u32;
            if second != last_second || self.samples.len() >= SAMPLES_BUFFERED_MAX {
                self.flush_samples();
                last_second = second;
            }
            self.try_write()?;

            let sending = now < schedule.send_until;
            if !sending
                && backlog.is_empty()
                && self.pending.is_empty()
                && self.retries.is_empty()
                && self.out.is_empty()
            {
                return Ok(());
            }
            if now >= schedule.drain_until {
                // Whatever is still in flight now is a timeout.
                self.scan_timeouts(now + self.plan.timeout * 4);
                self.retries.clear();
                return Ok(());
            }
            let mut wake = next_scan.min(schedule.drain_until);
            if sending {
                wake = wake.min(schedule.send_until);
                if matches!(self.plan.pace, Pace::Open { .. }) {
                    wake = wake.min(next_arrival);
                }
            }
            let want_write = !self.out.is_empty();
            tokio::select! {
                ready = self.stream.readable() => {
                    ready?;
                    self.read_available()?;
                }
                ready = self.stream.writable(), if want_write => {
                    ready?;
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn try_write(&mut self) -> Result<(), Error> {
        while !self.out.is_empty() {
            match self.stream.try_write(&self.out) {
                Ok(0) => return Err(io_error("write", "connection closed")),
                Ok(n) => {
                    let _ = self.out.split_to(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn read_available(&mut self) -> Result<(), Error> {
        loop {
            self.input.reserve(READ_CHUNK_BYTES);
            match self.stream.try_read_buf(&mut self.input) {
                Ok(0) => return Err(io_error("read", "the switch closed the connection")),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        let now = Instant::now();
        while let Some(item) = self
            .codec
            .decode(&mut self.input)
            .map_err(|e| io_error("framing", e))?
        {
            match item {
                Inbound::KeepAlive => {}
                Inbound::Message { message, .. } => self.answer(&message, now),
                Inbound::Malformed { .. } => self.outcome.counts.unexpected += 1,
            }
        }
        Ok(())
    }

    fn answer(&mut self, message: &ssn_codec::MessageView, now: Instant) {
        let Some(stan) = message.stan() else {
            self.outcome.counts.unexpected += 1;
            return;
        };
        let key = stan
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d.wrapping_sub(b'0')));
        let Some(pending) = self.pending.remove(&key) else {
            if self.timed_out.remove(&key).is_some() {
                self.outcome.counts.late += 1;
            } else {
                self.outcome.counts.unexpected += 1;
            }
            return;
        };
        let right_terminal = message.terminal_id() == Some(self.spec.terminal_id);
        if message.mti().digits() != pending.expected_mti || !right_terminal {
            self.outcome.counts.unexpected += 1;
            return;
        }
        let code: [u8; 2] = message
            .text(39)
            .and_then(|c| c.try_into().ok())
            .unwrap_or(*b"--");
        *self
            .outcome
            .counts
            .codes
            .entry((pending.kind, code))
            .or_default() += 1;
        self.progress.answered.fetch_add(1, Ordering::Relaxed);
        let approved = code == *b"00";
        let mut approved_purchase = false;
        match pending.what {
            What::Purchase(original) if approved => {
                approved_purchase = true;
                self.progress.approved.fetch_add(1, Ordering::Relaxed);
                let card = self.plan.cards[original.card as usize].card_id;
                let net = self.outcome.seen.per_card.entry(card).or_default();
                *net = net.checked_add(original.amount as i64).unwrap_or(i64::MAX);
                if self.recent.len() == RECENT_APPROVALS_MAX {
                    self.recent.pop_front();
                }
                self.recent.push_back(original);
            }
            What::Purchase(_) | What::Other => {}
            What::Reversal {
                original,
                attempt,
                advice,
            } => {
                let card = self.plan.cards[original.card as usize].card_id;
                if approved {
                    if advice {
                        // The purchase nets to nothing whatever happened to it.
                        self.resolve_doubt(card);
                    } else {
                        let net = self.outcome.seen.per_card.entry(card).or_default();
                        *net = net.checked_sub(original.amount as i64).unwrap_or(i64::MIN);
                    }
                } else if code == *b"91" || code == *b"96" {
                    if attempt < REVERSAL_ATTEMPTS_MAX {
                        // Nothing moved: try again, as a repeat.
                        self.retries.push_back(What::Reversal {
                            original,
                            attempt: attempt + 1,
                            advice,
                        });
                    } else if !advice {
                        // An advice's purchase is in doubt already, and stays so.
                        *self.outcome.seen.in_doubt.entry(card).or_default() += 1;
                    }
                }
                // Any other answer is final and moved nothing: the approval stands.
            }
        }
        if pending.measured {
            self.outcome.counts.answered_measured += 1;
            if approved_purchase {
                self.outcome.counts.approved_measured += 1;
            }
        }
        let micros = now.saturating_duration_since(pending.due).as_micros() as u64;
        self.samples.push(Sample {
            second: now.saturating_duration_since(self.start).as_secs() as u32,
            micros,
            send_lag_micros: pending
                .written
                .saturating_duration_since(pending.due)
                .as_micros() as u64,
            measured: pending.measured,
            approved_purchase,
        });
    }

    fn resolve_doubt(&mut self, card: u64) {
        if let Some(n) = self.outcome.seen.in_doubt.get_mut(&card) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.outcome.seen.in_doubt.remove(&card);
            }
        }
    }

    fn scan_timeouts(&mut self, now: Instant) {
        let timeout = self.plan.timeout;
        let expired: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.written) >= timeout)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            let Some(p) = self.pending.remove(&key) else {
                continue;
            };
            self.outcome.counts.timeouts[kind_index(p.kind)] += 1;
            self.progress.timeouts.fetch_add(1, Ordering::Relaxed);
            self.timed_out.insert(key, p.kind);
            match p.what {
                What::Purchase(original) => {
                    let card = self.plan.cards[original.card as usize].card_id;
                    *self.outcome.seen.in_doubt.entry(card).or_default() += 1;
                    self.outcome.counts.advices += 1;
                    self.retries.push_back(What::Reversal {
                        original,
                        attempt: 1,
                        advice: true,
                    });
                }
                What::Reversal {
                    original,
                    attempt,
                    advice,
                } if attempt < REVERSAL_ATTEMPTS_MAX => {
                    self.retries.push_back(What::Reversal {
                        original,
                        attempt: attempt + 1,
                        advice,
                    });
                }
                What::Reversal {
                    original,
                    advice: false,
                    ..
                } => {
                    let card = self.plan.cards[original.card as usize].card_id;
                    *self.outcome.seen.in_doubt.entry(card).or_default() += 1;
                }
                What::Reversal { .. } | What::Other => {}
            }
        }
    }

    fn flush_samples(&mut self) {
        if self.samples.is_empty() {
            return;
        }
        let mut recorder = self.recorder.lock().unwrap_or_else(|p| p.into_inner());
        recorder.record_all(&self.samples);
        self.samples.clear();
    }

    fn send_arrival(&mut self, due: Instant, schedule: Schedule) -> Result<(), Error> {
        let mut kind = self.plan.mix.pick(&mut self.rng);
        if kind == Kind::Reversal {
            if let Some(original) = self.pick_recent() {
                return self.send_reversal(
                    What::Reversal {
                        original,
                        attempt: 1,
                        advice: false,
                    },
                    due,
                    schedule,
                );
            }
            kind = Kind::Purchase;
        }
        let now_unix = clock::unix_seconds_now();
        let de7 = clock::de7(now_unix);
        let (stan, key) = self.next_stan();
        let what = match kind {
            Kind::Echo => {
                self.network_message(&stan, &de7, b"301")?;
                What::Other
            }
            _ => {
                let what = self.financial(kind, &stan, &de7, now_unix)?;
                let de7_value = crate::books::digits_value(&de7).unwrap_or(0);
                self.outcome.sent_keys.push((key, de7_value));
                what
            }
        };
        self.frame()?;
        let expected = if kind == Kind::Echo {
            *b"0810"
        } else {
            *b"0210"
        };
        self.track(key, kind, due, expected, what, schedule);
        Ok(())
    }

    fn pick_recent(&mut self) -> Option<Original> {
        if self.recent.is_empty() {
            return None;
        }
        let i = self.rng.below(self.recent.len() as u64) as usize;
        self.recent.remove(i)
    }

    fn track(
        &mut self,
        key: u32,
        kind: Kind,
        due: Instant,
        expected: [u8; 4],
        what: What,
        schedule: Schedule,
    ) {
        let measured = due >= schedule.start + self.plan.warmup && due < schedule.send_until;
        self.outcome.counts.sent[kind_index(kind)] += 1;
        self.progress.sent.fetch_add(1, Ordering::Relaxed);
        self.timed_out.remove(&key);
        self.pending.insert(
            key,
            Pending {
                kind,
                due,
                written: Instant::now(),
                measured,
                expected_mti: expected,
                what,
            },
        );
    }

    /// A 0200 of `kind` into `self.message`.
    fn financial(
        &mut self,
        kind: Kind,
        stan: &[u8; 6],
        de7: &[u8; 10],
        now_unix: i64,
    ) -> Result<What, Error> {
        let card_index = self.rng.below(self.plan.cards.len() as u64) as u32;
        let card = &self.plan.cards[card_index as usize];
        let unknown_pan;
        let pan: &str = if kind == Kind::UnknownCard {
            unknown_pan =
                crate::city::pan_of(crate::city::UNKNOWN_BIN, self.rng.below(1_000_000_000))?;
            unknown_pan.reveal()
        } else {
            &card.pan
        };
        let pin = if kind == Kind::WrongPin {
            &card.wrong_pin
        } else {
            &card.pin
        };
        let block = EncryptedPinBlock::encrypt(pin, pan, &self.spec.tpk)?;
        let (basket, amount) = match kind {
            Kind::Inquiry => (None, 0),
            Kind::NonFood => {
                // One food item and a pack of cigarettes (category 91): `57`.
                let (mut b, a) = basket(&mut self.rng, 1);
                let cigarettes = 2_500_000u64;
                b.push_str(&format!("9101{cigarettes:012}"));
                b.replace_range(2..4, "02");
                (Some(b), a + cigarettes)
            }
            _ => {
                let items = 1 + self.rng.below(3) as usize;
                let (b, a) = basket(&mut self.rng, items);
                (Some(b), a)
            }
        };
        let (de12, de13) = clock::de12_de13(now_unix);
        let mut track2 = String::with_capacity(24);
        track2.push_str(pan);
        track2.push('=');
        track2.push_str(std::str::from_utf8(&card.expiry).unwrap_or("0000"));
        let m = &mut self.message;
        m.clear(Mti::FINANCIAL_REQUEST);
        let mut set = |n: u8, v: &[u8]| m.set(n, v).map(|_| ()).map_err(|e| io_error("field", e));
        set(2, pan.as_bytes())?;
        set(
            3,
            if kind == Kind::Inquiry {
                b"310000"
            } else {
                b"000000"
            },
        )?;
        if kind != Kind::Inquiry {
            set(4, format!("{amount:012}").as_bytes())?;
        }
        set(7, de7)?;
        set(11, stan)?;
        set(12, &de12)?;
        set(13, &de13)?;
        set(14, &card.expiry)?;
        set(22, b"051")?;
        set(25, b"00")?;
        set(35, track2.as_bytes())?;
        set(41, &self.spec.terminal_id)?;
        set(42, &self.spec.merchant_id)?;
        if let Some(basket) = &basket {
            set(48, basket.as_bytes())?;
        }
        set(49, b"360")?;
        set(52, block.as_bytes())?;
        // A wrong PIN or a non-food basket is meant to be declined, but what the books count
        // is what the terminal was answered: an approval of either moved money too.
        Ok(match kind {
            Kind::Purchase | Kind::WrongPin | Kind::NonFood => What::Purchase(Original {
                card: card_index,
                amount,
                stan: *stan,
                de7: *de7,
            }),
            _ => What::Other,
        })
    }

    /// A 0400 (or repeat, or 0420 advice) for `what` into the output buffer, tracked.
    fn send_reversal(&mut self, what: What, due: Instant, schedule: Schedule) -> Result<(), Error> {
        let What::Reversal {
            original,
            attempt,
            advice,
        } = what
        else {
            return Ok(());
        };
        let mti = match (advice, attempt > 1) {
            (false, false) => Mti::REVERSAL_REQUEST,
            (false, true) => Mti::REVERSAL_REPEAT,
            (true, false) => Mti::REVERSAL_ADVICE,
            (true, true) => Mti::REVERSAL_ADVICE_REPEAT,
        };
        let expected = if advice { *b"0430" } else { *b"0410" };
        let (stan, key) = self.next_stan();
        let de7 = clock::de7(clock::unix_seconds_now());
        let card = &self.plan.cards[original.card as usize];
        let mut de90 = [b'0'; 42];
        de90[..4].copy_from_slice(b"0200");
        de90[4..10].copy_from_slice(&original.stan);
        de90[10..20].copy_from_slice(&original.de7);
        let m = &mut self.message;
        m.clear(mti);
        let mut set = |n: u8, v: &[u8]| m.set(n, v).map(|_| ()).map_err(|e| io_error("field", e));
        set(2, card.pan.as_bytes())?;
        set(3, b"000000")?;
        set(4, format!("{:012}", original.amount).as_bytes())?;
        set(7, &de7)?;
        set(11, &stan)?;
        set(41, &self.spec.terminal_id)?;
        set(42, &self.spec.merchant_id)?;
        set(49, b"360")?;
        set(90, &de90)?;
        self.frame()?;
        self.track(key, Kind::Reversal, due, expected, what, schedule);
        Ok(())
    }
}

fn kind_index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// A food basket of `items` items (`B1`, count, then category, quantity, amount each) and its
/// total in minor units. Prices are whole hundreds of rupiah, as at a market stall.
fn basket(rng: &mut Rng, items: usize) -> (String, u64) {
    let mut text = format!("B1{items:02}");
    let mut total = 0u64;
    for _ in 0..items {
        let category = 1 + rng.below(9);
        let quantity = 1 + rng.below(5);
        // Rp 2,000 to Rp 15,000 a unit, in steps of Rp 500; minor units are sen.
        let unit = (2_000 + 500 * rng.below(27)) * 100;
        let amount = unit * quantity;
        total += amount;
        text.push_str(&format!("{category:02}{quantity:02}{amount:012}"));
    }
    (text, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baskets_add_up_to_their_total() {
        let mut rng = Rng::new(5, 0);
        for items in 1..=3 {
            let (text, total) = basket(&mut rng, items);
            assert_eq!(text.len(), 4 + 16 * items);
            let sum: u64 = (0..items)
                .map(|i| {
                    text[4 + 16 * i + 4..4 + 16 * (i + 1)]
                        .parse::<u64>()
                        .unwrap()
                })
                .sum();
            assert_eq!(sum, total);
            assert!(total <= crate::city::PURCHASE_AMOUNT_MAX_MINOR as u64);
        }
    }
}
