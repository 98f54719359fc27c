//! Ledger throughput, run by hand (`cargo bench -p ssn-ledger --bench ledger`); CI only
//! compiles it. Figures go to the `## Ledger` section of BENCHMARKS.md.
//!
//! 1. Durable debits per second, embedded: many concurrent `authorize_purchase` calls, each
//!    acknowledged only after its journal batch is fsynced.
//! 2. With `SSN_TEST_REDIS_URL` set: atomic debits per second through the Redis debit script
//!    alone, then the whole ledger path on Redis (script + journal), then `redis-benchmark`'s
//!    own EVALSHA ceiling for the same script on the same server, when it is on PATH.
//!
//! `SSN_BENCH_SECONDS` (default 5) sets each measurement's length, `SSN_BENCH_TASKS` the
//! embedded concurrency, and `SSN_BENCH_ONLY=embedded|redis` runs one half.

use ssn_ledger::*;

/// glibc's malloc serializes on arena locks and heap growth when one thread frees what
/// another allocated, which is exactly the journal's pattern (callers build records, the
/// writer frees them): a production binary should use a thread-caching allocator, and so
/// does this benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Cards the debits spread over.
const CARDS: u64 = 10_000;
/// Concurrent debit loops: enough in flight that every fsync carries a large batch.
const TASKS_EMBEDDED: u32 = 4_096;
/// Concurrent script calls in flight on the one multiplexed Redis connection.
const TASKS_REDIS: u32 = 256;
/// Concurrent ledger calls on Redis: enough for large journal batches, few enough that no
/// script waits in the connection's queue past its response timeout.
const TASKS_REDIS_LEDGER: u32 = 1_024;
/// Each card's starting balance in minor units; every debit takes 1.
const CARD_BALANCE_MINOR: i64 = 1_000_000_000;

fn at() -> i64 {
    i64::from(Day::parse_iso("2025-10-15").unwrap().0) * 86_400
}

fn scratch_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssn-ledger-bench-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn prepare(config: LedgerConfig) -> Ledger {
    let ledger = Ledger::open(config).await.unwrap();
    let program = ProgramCode::new("BENCH").unwrap();
    ledger
        .define_program(Program {
            code: program.clone(),
            name: "Bench".into(),
            budget_year: 2025,
            benefit_amount: Money::from_minor(CARD_BALANCE_MINOR),
            allowed_categories: vec!["01".into()],
            basket_required: false,
            purchase_amount_max: Money::from_minor(1_000_000),
            purchases_per_day_max: u32::MAX,
            pocket_expires_at: Day::parse_iso("2025-12-31").unwrap(),
            beneficiary_unit: ssn_ledger::BeneficiaryUnit::Person,
            desil_max: None,
        })
        .await
        .unwrap();
    let mut ops = Vec::new();
    for n in 1..=CARDS {
        let ssn = format!("SSN{n:08}");
        ops.push(RegistryOp::Insert(RegistryRecord::Beneficiary(
            Beneficiary {
                ssn: ssn.clone(),
                nik: Nik(format!("6472010101{n:06}")),
                kk: Kk(format!("6472010101{n:06}")),
                name: format!("Penerima {n}"),
                birth_date: Day::parse_iso("1990-01-01").unwrap(),
                sex: Sex::Female,
                address: "-".into(),
                kecamatan: "Palaran".into(),
                kelurahan: "-".into(),
                desil: 1,
                status: BeneficiaryStatus::Determined,
                enrolments: vec![program.clone()],
                possible_duplicate: false,
                import_batch: 1,
                absent_from_dtsen: false,
                enrolment_history: Vec::new(),
                past_kecamatan: Vec::new(),
            },
        )));
        ops.push(RegistryOp::Insert(RegistryRecord::Card(Card {
            card_id: CardId(n),
            ssn,
            pan: Pan(format!("6048720000{n:06}")),
            expiry: "2812".into(),
            status: CardStatus::Active,
            pvv: Pvv("1234".into()),
            wrong_pin_count: 0,
            replaced_by: None,
            issued_on: None,
            delivered_on: None,
            changes: Vec::new(),
        })));
    }
    ledger.registry().apply(ops).await.unwrap();
    let total = Money::from_minor(CARD_BALANCE_MINOR * CARDS as i64);
    ledger
        .fund_program(&program, total, "BENCH", at())
        .await
        .unwrap();
    ledger.disburse(&program, "2025-10", at()).await.unwrap();
    ledger
}

fn request(task: u32, sequence: u32) -> PurchaseRequest {
    let card = CardId(1 + (u64::from(task) * 7_919 + u64::from(sequence)) % CARDS);
    PurchaseRequest {
        key: PurchaseKey {
            terminal: TerminalId::new(format!("B{task:07}")).unwrap(),
            stan: Stan::new(format!("{:06}", sequence % 1_000_000)).unwrap(),
            transmitted: TransmissionTime::new(format!("10{:08}", sequence / 1_000_000)).unwrap(),
        },
        fingerprint: Fingerprint([0; 32]),
        card,
        merchant: MerchantId::new("EWARONG00000001").unwrap(),
        amount: Money::from_minor(1),
        basket: None,
        rrn: Rrn::new("000000000001").unwrap(),
        authorization_id: AuthorizationId::new("000001").unwrap(),
        at_unix_seconds: at(),
        enrolments: None,
    }
}

/// Runs `tasks` loops of `step` for `seconds` after a one-second warm-up; returns calls/s.
async fn measure<F, Fut>(label: &str, tasks: u32, seconds: u64, step: F) -> f64
where
    F: Fn(u32, u32) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let step = Arc::new(step);
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let (step, counting, stop, done) = (
                Arc::clone(&step),
                Arc::clone(&counting),
                Arc::clone(&stop),
                Arc::clone(&done),
            );
            tokio::spawn(async move {
                let mut sequence = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    sequence += 1;
                    step(task, sequence).await;
                    if counting.load(Ordering::Relaxed) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let count = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.unwrap();
    }
    let rate = count as f64 / elapsed;
    println!("{label}: {count} in {elapsed:.2} s = {rate:.0}/s ({tasks} concurrent)");
    rate
}

/// Measures approved `authorize_purchase` calls per second.
async fn purchases(label: &str, ledger: &Arc<Ledger>, tasks: u32, seconds: u64) {
    let ledger = Arc::clone(ledger);
    measure(label, tasks, seconds, move |task, sequence| {
        let ledger = Arc::clone(&ledger);
        async move {
            let answer = ledger
                .authorize_purchase(request(task, sequence))
                .await
                .unwrap();
            assert_eq!(answer.response.code, ResponseCode::APPROVED);
        }
    })
    .await;
}

async fn embedded(seconds: u64) {
    let dir = scratch_dir("embedded");
    let ledger = Arc::new(prepare(LedgerConfig::embedded(&dir)).await);
    let tasks = std::env::var("SSN_BENCH_TASKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(TASKS_EMBEDDED);
    purchases(
        "embedded: durable journaled debits",
        &ledger,
        tasks,
        seconds,
    )
    .await;
    let entries = ledger.state().entries;
    report_journal(&ledger);
    drop(ledger);
    let bytes = std::fs::metadata(dir.join("journal.log"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "embedded: journal {entries} entries, {} bytes/entry",
        bytes / entries.max(1)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn report_journal(ledger: &Ledger) {
    let stats = ledger.journal_stats();
    let batches = stats.batches.load(Ordering::Relaxed).max(1);
    println!(
        "  journal: {} batches, {:.0} entries/batch, {:.2} ms per write+fdatasync, {:.2} ms applying",
        batches,
        stats.entries.load(Ordering::Relaxed) as f64 / batches as f64,
        stats.sync_nanos.load(Ordering::Relaxed) as f64 / batches as f64 / 1e6,
        stats.apply_nanos.load(Ordering::Relaxed) as f64 / batches as f64 / 1e6
    );
}

async fn redis(url: String, seconds: u64) {
    // 1. The debit script alone, through the store the ledger uses.
    let prefix = format!("ssn-bench-{}:", std::process::id());
    let store = Arc::new(
        RedisBalances::connect(&RedisConfig::new(url.clone(), prefix))
            .await
            .unwrap(),
    );
    store.begin_generation().await.unwrap();
    let program = ProgramCode::new("BENCH").unwrap();
    let snapshots: Vec<CardSnapshot> = (1..=CARDS)
        .map(|n| CardSnapshot {
            card: CardId(n),
            pockets: vec![PocketBalance {
                program: program.clone(),
                expires: Day(30_000),
                balance: Money::from_minor(CARD_BALANCE_MINOR),
            }],
            ..CardSnapshot::default()
        })
        .collect();
    store.rebuild(&snapshots).await.unwrap();
    let next_id = Arc::new(AtomicU64::new(1));
    let s = Arc::clone(&store);
    measure(
        "redis: atomic debit script (RedisBalances::debit)",
        TASKS_REDIS,
        seconds,
        move |task, sequence| {
            let (store, next_id, program) = (Arc::clone(&s), Arc::clone(&next_id), program.clone());
            async move {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&next_id.fetch_add(1, Ordering::Relaxed).to_le_bytes());
                let rrn = Rrn::new("000000000001").unwrap();
                let authorization_id = AuthorizationId::new("000001").unwrap();
                let allowed = [program];
                let card = CardId(1 + (u64::from(task) * 7_919 + u64::from(sequence)) % CARDS);
                let debit = DebitRequest {
                    id: TransferId(id),
                    card,
                    amount: Money::from_minor(1),
                    today: Day(20_376),
                    allowed: &allowed,
                    daily_max: u32::MAX,
                    rrn: &rrn,
                    authorization_id: &authorization_id,
                    attempt: 1,
                };
                let outcome = store.debit(&debit).await.unwrap();
                assert_eq!(outcome.debit.response.code, ResponseCode::APPROVED);
            }
        },
    )
    .await;

    // 2. The whole ledger path on Redis: script, then journal fsync.
    let dir = scratch_dir("redis");
    let config = LedgerConfig {
        data_dir: dir.clone(),
        balances: BalanceBackend::Redis(RedisConfig::new(url.clone(), "ssn-bench-ledger:")),
    };
    let ledger = Arc::new(prepare(config).await);
    purchases(
        "redis: durable ledger debits (script + journal)",
        &ledger,
        TASKS_REDIS_LEDGER,
        seconds,
    )
    .await;
    report_journal(&ledger);
    drop(ledger);
    let _ = std::fs::remove_dir_all(&dir);

    redis_benchmark_ceiling(&url, seconds);
}

/// Loads the same debit script into Redis, sets up one card, and lets `redis-benchmark` call
/// it with EVALSHA and a random transfer id per call: the server's own ceiling for it.
fn redis_benchmark_ceiling(url: &str, seconds: u64) {
    let Some(port) = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .map(str::to_string)
    else {
        return;
    };
    let cli = |args: &[&str]| -> Option<String> {
        let output = std::process::Command::new("redis-cli")
            .args(["-p", &port])
            .args(args)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    let Some(sha) = cli(&["SCRIPT", "LOAD", ssn_ledger::redis_debit_script()]) else {
        println!("redis-benchmark ceiling: redis-cli not found");
        return;
    };
    let card = "ssn-bench-rb:{card:1}";
    cli(&["DEL", card, "ssn-bench-rb:{card:1}:x"]);
    cli(&[
        "HSET",
        card,
        "e",
        "1",
        "o",
        "BENCH:30000",
        "d",
        "0",
        "n",
        "0",
        "b:BENCH",
        "90000000000000",
    ]);
    let requests = (seconds * 60_000).to_string();
    // Without pipelining (-P 1) and with it (-P 16): the client under test multiplexes many
    // calls on one connection, which is pipelining, so the second is the fair ceiling.
    for pipeline in ["1", "16"] {
        let output = std::process::Command::new("redis-benchmark")
            .args([
                "-p",
                &port,
                "-c",
                "50",
                "-n",
                &requests,
                "-P",
                pipeline,
                "-r",
                "1000000000",
                "--csv",
            ])
            .args(["EVALSHA", &sha, "2", card, "ssn-bench-rb:{card:1}:x"])
            .args([
                "1",
                "__rand_int__",
                "1",
                "20376",
                "4294967295",
                "000000000001",
                "000001",
                ",BENCH,",
            ])
            .output();
        match output {
            Ok(output) => {
                let csv = String::from_utf8_lossy(&output.stdout);
                let rps = csv
                    .lines()
                    .last()
                    .and_then(|line| line.split("\",\"").nth(1))
                    .unwrap_or("?");
                println!("redis-benchmark EVALSHA ceiling (-c 50 -P {pipeline}): {rps}/s");
            }
            Err(e) => println!("redis-benchmark ceiling: not run ({e})"),
        }
    }
    cli(&["DEL", card, "ssn-bench-rb:{card:1}:x"]);
}

fn main() {
    // `cargo test --benches` / CI compile and may start this with `--bench`-less test args: only
    // measure when cargo bench asks.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let seconds: u64 = std::env::var("SSN_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "machine: {} cores",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        // SSN_BENCH_ONLY=embedded|redis runs one half.
        let only = std::env::var("SSN_BENCH_ONLY").unwrap_or_default();
        if only != "redis" {
            embedded(seconds).await;
        }
        if only == "embedded" {
            return;
        }
        match std::env::var("SSN_TEST_REDIS_URL") {
            Ok(url) => redis(url, seconds).await,
            Err(_) => println!("redis: SSN_TEST_REDIS_URL not set, Redis benchmarks not run"),
        }
    });
    let _ = Path::new(".");
}
