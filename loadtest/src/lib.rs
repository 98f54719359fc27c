//! # ssn-loadtest: a city of EDC terminals against `ssn-switch`
//!
//! The harness of issue 6. `seed` builds a synthetic city through the ledger's own calls (the
//! same ones `ssn-switch serve --demo` and, later, the admin API use); `run` drives the city's
//! terminals over real TCP in either wire profile, open-loop at a target rate (constant or
//! Poisson arrivals, latency measured from the *intended* send time so a slow switch cannot
//! hide latency) or closed-loop as fast as answers come back; it reports HdrHistogram
//! percentiles, counts per response code, and checks the books against the journal. Each
//! answer's latency also yields its send lag (from due to handed to the connection): the
//! part the harness itself added, reported beside the latency and counted against the
//! switch, since harness and switch share the cores.
//!
//! ## Code map
//!
//! - [`city`]: the city file (PANs, PINs, clear terminal keys) and [`city::seed`].
//! - [`mix`]: what a terminal sends, by weight.
//! - [`terminal`]: one simulated terminal: one TCP connection, sign-on, arrivals, matching
//!   answers on DE11, timeouts and reversal advices for purchases left unanswered.
//! - [`load`]: starts the terminals, waits for them, merges what they saw ([`load::Outcome`]).
//! - [`report`]: the text and JSON report and the latency-over-time SVG.
//! - [`books`]: approvals minus reversals seen by the terminals against the journal.
//! - [`misuse`]: misuse patterns injected beside the load, labelled, and the monitor's alerts
//!   (`GET /alerts`) scored against the labels per rule (`run --misuse`).
//! - [`baseline`]: a server that frames and echoes, with no business logic: this machine's
//!   bare TCP path, to compare the switch with.
//! - [`clock`], [`rng`]: ISO 8583 date fields from Unix time; a small seeded generator so a
//!   run's choices repeat for the same `--seed`.
//!
//! ## Architecture invariants
//!
//! - The harness talks to the switch only through the host interface's TCP ports; the books
//!   check reads the journal only after the switch has stopped (or through a ledger opened on
//!   its data directory), never while the switch writes it.
//! - Timing never decides whether a run passes: only correctness does (every request
//!   answered, the books equal). Speed goes to BENCHMARKS.md.
//! - Every wait and queue is bounded by a named limit; a run stops by itself.
//!
//! ## Limits
//!
//! | name | value | why |
//! |---|---|---|
//! | [`terminal::TERMINAL_IN_FLIGHT_MAX`] | 64 | requests in flight per connection: the switch's own limit |
//! | [`terminal::TERMINAL_BACKLOG_MAX`] | 4,096 | arrivals waiting for a slot; past it they are dropped and counted |
//! | [`terminal::RECENT_APPROVALS_MAX`] | 256 | a terminal's own approvals it may reverse |
//! | [`terminal::REVERSAL_ATTEMPTS_MAX`] | 3 | a reversal and its repeats |
//! | [`terminal::TIMEOUT_SCAN_INTERVAL`] | 50 ms | how often unanswered requests are looked for |
//! | [`load::SIGN_ON_DEADLINE`] | 60 s | every terminal connected and signed on |
//! | [`load::DRAIN_DEADLINE_FACTOR`] | 3 | after the last arrival, wait this many timeouts for answers |
//! | `SWEEP_RATES_MAX` (binary) | 64 | rates one `run --rates` sweep may run |
//! | [`misuse::MISUSE_GAP`] | 500 ms | between two requests of one injected pattern |
//! | [`misuse::ALERT_WAIT`] | 20 s | after the injection, how long alerts are waited for |
//! | [`misuse::ALERT_POLL_INTERVAL`] | 250 ms | how often `GET /alerts` is read meanwhile |

pub mod baseline;
pub mod books;
pub mod city;
pub mod clock;
pub mod history;
pub mod load;
pub mod misuse;
pub mod mix;
pub mod report;
pub mod rng;
pub mod terminal;

/// Why the harness could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ledger refused while seeding or checking the books.
    #[error("ledger: {0}")]
    Ledger(#[from] ssn_ledger::LedgerError),
    /// The registry refused while seeding.
    #[error("registry: {0}")]
    Registry(#[from] ssn_ledger::RegistryError),
    /// Key or PIN material could not be made or read.
    #[error("hsm: {0}")]
    Hsm(#[from] ssn_hsm::HsmError),
    /// An identifier the harness built was refused (a bug in the harness).
    #[error("identifier: {0}")]
    Id(#[from] ssn_ledger::InvalidId),
    /// A network operation failed.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    /// The city file or the options do not make sense.
    #[error("{0}")]
    Invalid(String),
}
