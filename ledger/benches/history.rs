//! The history mover's cost per purchase (`cargo bench -p ssn-ledger --bench history`); CI
//! only compiles it. Figures go to the `## History mover` section of BENCHMARKS.md.
//!
//! A projection of the headline city (100,000 cards with pockets, 1,000 terminals of 500
//! E-Warong) takes [`MOVE`] purchases at 12,000 a second (one in twenty declined, baskets of
//! one to three lines), then moves them to `history.redb` as the ledger's mover does: rounds
//! of `window::MOVE_ROWS_MAX` log entries, each looked at (`State::movable`), stored
//! (`History::store`: the purchases, their log rows and each card's rows) and dropped
//! (`State::forget`), the last one synced. Only the move is timed. History is first filled
//! with [`PREFILL`] purchases so its indexes are not trivially small, and keeps growing as
//! the samples run.

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ssn_ledger::history::History;
use ssn_ledger::*;
use std::time::{Duration, Instant};

/// Cards the purchases spread over.
const CARDS: u64 = 100_000;
/// Terminals (two per E-Warong).
const TERMINALS: u64 = 1_000;
/// Purchases per second of acceptance time.
const RATE: u64 = 12_000;
/// Purchases moved per timed move: ten seconds at [`RATE`], one mover interval.
const MOVE: u64 = 120_000;
/// Purchases in history before the first timed move.
const PREFILL: u64 = 240_000;

fn program() -> ProgramCode {
    ProgramCode::new("SEMBAKO").unwrap()
}

/// 2025-10-15T00:00:00Z.
fn start() -> i64 {
    i64::from(Day::parse_iso("2025-10-15").unwrap().0) * 86_400
}

/// A projection with history in `dir`, every card funded far beyond what it will spend.
fn city(dir: &std::path::Path) -> State {
    let mut state = State {
        history: Some(std::sync::Arc::new(History::open(dir).unwrap())),
        ..State::default()
    };
    let each = Money::from_minor(1_000_000_000_000);
    let total = Money::from_minor(1_000_000_000_000 * CARDS as i64);
    let entries = [
        Record::Funding {
            reference: "BENCH".into(),
            program: program(),
            amount: total,
        },
        Record::Disbursement {
            program: program(),
            period: "2025-10".into(),
            credits: (0..CARDS).map(|card| (CardId(card), each)).collect(),
        },
    ];
    for record in entries {
        state
            .apply(&Entry {
                at_unix_seconds: start() - 86_400,
                record,
            })
            .unwrap();
    }
    state
}

/// Purchase number `n`.
fn purchase(n: u64) -> Entry {
    let at = start() + (n / RATE) as i64;
    let terminal = n % TERMINALS;
    let approved = n % 20 != 7;
    let amount = Money::from_minor(25_000 + (n % 7) as i64 * 5_000);
    let lines = 1 + n % 3;
    let basket = (0..lines)
        .map(|line| BasketLine {
            category: format!("{:02}", 1 + line),
            quantity: 1 + (n % 4) as u8,
            amount: Money::from_minor(if line == 0 {
                amount.minor() - (lines as i64 - 1) * 5_000
            } else {
                5_000
            }),
        })
        .collect();
    let record = PurchaseRecord {
        key: PurchaseKey {
            terminal: TerminalId::new(format!("T{terminal:07}")).unwrap(),
            stan: Stan::new(format!("{:06}", (n / TERMINALS) % 1_000_000)).unwrap(),
            transmitted: TransmissionTime::of_unix_seconds(at),
        },
        fingerprint: Fingerprint([n as u8; 32]),
        card: Some(CardId(n.wrapping_mul(7_919) % CARDS)),
        merchant: MerchantId::new(format!("EW{:013}", terminal / 2)).unwrap(),
        amount,
        day: Day::wita_of_unix_seconds(at),
        response: AuthResponse {
            code: if approved {
                ResponseCode::APPROVED
            } else {
                ResponseCode::INSUFFICIENT_FUNDS
            },
            rrn: Rrn::new(format!("A{n:011}")).unwrap(),
            authorization_id: approved
                .then(|| AuthorizationId::new(format!("{:06}", n % 1_000_000)).unwrap()),
            balance_after: Some(Money::from_minor(1_000_000)),
        },
        legs: if approved {
            vec![PocketAmount {
                program: program(),
                amount,
            }]
        } else {
            Vec::new()
        },
        basket: if approved { basket } else { Vec::new() },
    };
    Entry {
        at_unix_seconds: at,
        record: Record::Purchase(record),
    }
}

/// Applies purchases `from..to` (untimed) and moves them to history (timed).
fn move_purchases(state: &mut State, from: u64, to: u64) -> Duration {
    for n in from..to {
        state.apply_owned(purchase(n)).unwrap();
    }
    // Ten days on: everything applied is outside the working set.
    let now = start() + (to / RATE) as i64 + 10 * 86_400;
    let history = state.history.clone().unwrap();
    let began = Instant::now();
    state.move_all(&history, now).unwrap();
    let took = began.elapsed();
    assert!(state.purchases.is_empty(), "every purchase moved");
    took
}

fn mover(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("ssn-history-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut state = city(&dir);
    move_purchases(&mut state, 0, PREFILL);
    let mut next = PREFILL;
    let mut group = c.benchmark_group("history");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(100));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(MOVE));
    group.bench_function("move 120,000 purchases", |b| {
        b.iter_custom(|iterations| {
            let mut took = Duration::ZERO;
            for _ in 0..iterations {
                took += move_purchases(&mut state, next, next + MOVE);
                next += MOVE;
            }
            took
        })
    });
    group.finish();
    drop(state);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, mover);
criterion_main!(benches);
