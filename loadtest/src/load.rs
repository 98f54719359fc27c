//! A run: the city's first N terminals connect and sign on, then all start at one instant,
//! send for the run's duration, wait for their last answers, and hand back what they saw.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ssn_codec::Profile;
use ssn_hsm::{Pin, TdesKey};
use tokio::time::Instant;

use crate::Error;
use crate::books::{Books, RunKeys, seen_books};
use crate::city::City;
use crate::mix::Mix;
use crate::report::Recorder;
use crate::terminal::{
    CardSecret, Counts, Pace, Progress, RunPlan, Schedule, TerminalSpec, run_terminal,
};

/// Every terminal connected and signed on within this, or the run starts without it.
pub const SIGN_ON_DEADLINE: Duration = Duration::from_secs(60);
/// After the last arrival, answers are waited for this many timeouts at most.
pub const DRAIN_DEADLINE_FACTOR: u32 = 3;
/// The first arrival comes this long after the last terminal signed on.
pub const START_DELAY: Duration = Duration::from_millis(200);
/// Most terminals one run drives (one TCP connection each).
pub const TERMINALS_MAX: usize = 20_000;

/// How the whole run is paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RunPace {
    /// Open loop at `rate_per_second` over all terminals.
    Open {
        /// Requests per second, all terminals together.
        rate_per_second: f64,
        /// Poisson arrivals instead of evenly spaced ones.
        poisson: bool,
    },
    /// Closed loop with `in_flight_per_terminal` outstanding per terminal.
    Closed {
        /// Requests outstanding per terminal.
        in_flight_per_terminal: usize,
    },
}

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Wire profile.
    pub profile: Profile,
    /// Where to connect.
    pub addr: SocketAddr,
    /// How many of the city's terminals.
    pub terminals: usize,
    /// Pacing.
    pub pace: RunPace,
    /// Seconds of arrivals.
    pub duration: Duration,
    /// Left out of the latency figures.
    pub warmup: Duration,
    /// Per request.
    pub timeout: Duration,
    /// What to send.
    pub mix: Mix,
    /// Seed of every generator.
    pub seed: u64,
}

/// What the run saw, every terminal together.
#[derive(Debug)]
pub struct Outcome {
    /// Counts.
    pub counts: Counts,
    /// Latencies.
    pub recorder: Recorder,
    /// Money seen move, per card and E-Warong.
    pub seen: Books,
    /// Cards with an outcome the terminals could not learn.
    pub in_doubt: HashSet<u64>,
    /// Errors of terminals that stopped early.
    pub errors: Vec<String>,
    /// The key of every 0200 the run sent.
    pub keys: RunKeys,
}

fn field<const N: usize>(text: &str, what: &str) -> Result<[u8; N], Error> {
    text.as_bytes()
        .try_into()
        .map_err(|_| Error::Invalid(format!("{what} {text:?} is not {N} characters")))
}

/// The cards as terminals use them (PINs parsed once).
pub fn card_secrets(city: &City) -> Result<Vec<CardSecret>, Error> {
    city.cards
        .iter()
        .map(|c| {
            Ok(CardSecret {
                card_id: c.card_id,
                pan: c.pan.clone(),
                expiry: field(&c.expiry, "expiry")?,
                pin: Pin::new(&c.pin)?,
                wrong_pin: Pin::new(&c.wrong_pin)?,
            })
        })
        .collect()
}

/// Runs the load and returns what the terminals saw. `progress` is updated live.
pub async fn run(
    city: &City,
    cards: Vec<CardSecret>,
    config: &LoadConfig,
    progress: Arc<Progress>,
) -> Result<Outcome, Error> {
    if config.terminals == 0 || config.terminals > city.terminals.len().min(TERMINALS_MAX) {
        return Err(Error::Invalid(format!(
            "--terminals {}: the city has {} (at most {TERMINALS_MAX} per run)",
            config.terminals,
            city.terminals.len()
        )));
    }
    if config.warmup >= config.duration {
        return Err(Error::Invalid(
            "--warmup must be shorter than --duration".into(),
        ));
    }
    let per_terminal = match config.pace {
        RunPace::Open {
            rate_per_second,
            poisson,
        } => {
            if !(rate_per_second > 0.0 && rate_per_second.is_finite()) {
                return Err(Error::Invalid("--rate must be positive".into()));
            }
            Pace::Open {
                rate_per_second: rate_per_second / config.terminals as f64,
                poisson,
            }
        }
        RunPace::Closed {
            in_flight_per_terminal,
        } => Pace::Closed {
            in_flight: in_flight_per_terminal.clamp(1, crate::terminal::TERMINAL_IN_FLIGHT_MAX),
        },
    };
    let plan = Arc::new(RunPlan {
        profile: config.profile,
        addr: config.addr,
        pace: per_terminal,
        mix: config.mix.clone(),
        timeout: config.timeout,
        warmup: config.warmup,
        cards,
        seed: config.seed,
    });
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let (schedule_tx, schedule_rx) = tokio::sync::watch::channel(None);
    let sign_on_deadline = Instant::now() + SIGN_ON_DEADLINE;
    let mut tasks = tokio::task::JoinSet::new();
    let mut keys = RunKeys::default();
    for (index, t) in city.terminals.iter().take(config.terminals).enumerate() {
        let spec = Arc::new(TerminalSpec {
            index,
            terminal_id: field(&t.terminal_id, "terminal id")?,
            merchant_id: field(&t.merchant_id, "merchant id")?,
            tpk: TdesKey::from_hex(&t.tpk)?,
        });
        keys.terminal(&t.terminal_id, index as u32);
        tasks.spawn(run_terminal(
            spec,
            plan.clone(),
            progress.clone(),
            recorder.clone(),
            schedule_rx.clone(),
            sign_on_deadline,
        ));
    }
    // Wait until every terminal has signed on or given up, with the deadline.
    let mut finished = Vec::new();
    loop {
        let signed_on = progress
            .signed_on
            .load(std::sync::atomic::Ordering::Relaxed) as usize;
        if signed_on + finished.len() >= config.terminals || Instant::now() >= sign_on_deadline {
            break;
        }
        tokio::select! {
            Some(done) = tasks.join_next() => {
                finished.push(done.map_err(|e| Error::Invalid(format!("terminal task: {e}")))?);
            }
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    let start = Instant::now() + START_DELAY;
    let send_until = start + config.duration;
    let schedule = Schedule {
        start,
        send_until,
        drain_until: send_until + config.timeout * DRAIN_DEADLINE_FACTOR,
    };
    let _ = schedule_tx.send(Some(schedule));
    while let Some(done) = tasks.join_next().await {
        finished.push(done.map_err(|e| Error::Invalid(format!("terminal task: {e}")))?);
    }

    let mut counts = Counts::default();
    let mut errors = Vec::new();
    let mut in_doubt = HashSet::new();
    for outcome in &finished {
        counts.merge(&outcome.counts);
        if let Some(e) = &outcome.error {
            errors.push(e.clone());
        }
        in_doubt.extend(outcome.seen.in_doubt.keys().copied());
        for (stan, de7) in &outcome.sent_keys {
            keys.insert(outcome.index, *stan, *de7);
        }
    }
    let seen = seen_books(
        finished
            .iter()
            .map(|o| (o.merchant_id.as_str(), &o.seen.per_card)),
    );
    let recorder = std::mem::take(&mut *recorder.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Outcome {
        counts,
        recorder,
        seen,
        in_doubt,
        errors,
        keys,
    })
}
