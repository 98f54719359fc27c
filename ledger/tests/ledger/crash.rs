//! Crash test: a child process journals debits as fast as it can, printing each acknowledged
//! one; the parent kills it with SIGKILL at a seeded random moment, reopens the ledger, and
//! checks that every acknowledged debit is there exactly once, the balances equal the journal,
//! and `verify` passes.
//!
//! The child is this test binary itself, re-run with `SSN_LEDGER_CRASH_DIR` set and filtered to
//! `crash::crash_child`. Run without that variable, `crash_child` runs the same workload
//! in-process for a fixed count and checks it after a clean reopen.

use crate::support::*;
use crate::verify::Rng;
use ssn_ledger::*;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const CRASH_DIR_VAR: &str = "SSN_LEDGER_CRASH_DIR";
const CRASH_BACKEND_VAR: &str = "SSN_LEDGER_CRASH_BACKEND";
/// Cards the workload spreads its debits over.
const CARDS: u64 = 16;
/// Concurrent debit loops in the child: enough to make the journal batch.
const TASKS: u32 = 64;
/// Purchases the workload's working set keeps (moving the rest to history as it goes).
const WORKING_SET_CAP: usize = 64;
/// How long the child may keep going if nobody kills it.
const CHILD_RUN_MS_MAX: u64 = 30_000;
/// How long the parent waits for the child's first acknowledgement.
const FIRST_ACK_WAIT_MS_MAX: u64 = 60_000;
/// The kill lands this many milliseconds after the first acknowledgement, at most.
const KILL_AFTER_MS_MAX: u64 = 600;
/// Seeds and the balance backend each runs on: Redis too, because after a crash Redis may hold
/// debits the journal never got, and reopening must fence and rebuild them away.
const SEEDS: [(u64, Backend); 5] = [
    (11, Backend::Embedded),
    (23, Backend::Embedded),
    (37, Backend::Embedded),
    (59, Backend::Redis),
    (71, Backend::Redis),
];

/// A program, 16 funded cards, no limits that matter.
async fn prepare(dir: &Path, backend: Backend) {
    let ledger = Ledger::open(backend.config(dir)).await.unwrap();
    let program = ProgramCode::new("CRASH").unwrap();
    ledger
        .define_program(Program {
            code: program.clone(),
            name: "Crash test".into(),
            budget_year: 2025,
            benefit_amount: rp(1_000_000_000),
            allowed_categories: vec!["01".into()],
            basket_required: false,
            purchase_amount_max: rp(1_000),
            purchases_per_day_max: u32::MAX,
            pocket_expires_at: day("2025-12-31"),
            beneficiary_unit: ssn_ledger::BeneficiaryUnit::Person,
            desil_max: None,
        })
        .await
        .unwrap();
    let ops = (1..=CARDS)
        .flat_map(|n| enrolment(n, std::slice::from_ref(&program)))
        .collect();
    ledger.registry().apply(ops).await.unwrap();
    ledger
        .fund_program(
            &program,
            rp(1_000_000_000 * CARDS as i64),
            "CRASH-FUND",
            t0(),
        )
        .await
        .unwrap();
    ledger.disburse(&program, "2025-10", t0()).await.unwrap();
}

/// Debits as fast as it can from TASKS loops; calls `acknowledged` after each approval.
async fn workload(
    dir: &Path,
    backend: Backend,
    limit_per_task: u32,
    acknowledged: Arc<dyn Fn(u32, u32) + Send + Sync>,
) {
    let ledger = Arc::new(Ledger::open(backend.config(dir)).await.unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_millis(CHILD_RUN_MS_MAX);
    // Meanwhile the working set is kept to a few purchases, so the kill also lands while
    // purchases move to history.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mover = {
        let (ledger, done) = (Arc::clone(&ledger), Arc::clone(&done));
        tokio::task::spawn_blocking(move || {
            // Once more after the purchases end, so a run that is not killed has moved.
            loop {
                let last = done.load(std::sync::atomic::Ordering::Relaxed);
                ledger
                    .move_to_history(t0() + i64::from(u32::MAX), WORKING_SET_CAP)
                    .unwrap();
                if last {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let ledger = Arc::clone(&ledger);
            let acknowledged = Arc::clone(&acknowledged);
            tokio::spawn(async move {
                for stan in 1..=limit_per_task {
                    if tokio::time::Instant::now() > deadline {
                        break;
                    }
                    let card = CardId(1 + u64::from(task) % CARDS);
                    // Later and later, so the working set's cutoff moves past them.
                    let at = t0() + i64::from(stan);
                    let request = purchase_at(key(task, stan), card, rp(1), None, at);
                    let answer = ledger.authorize_purchase(request).await.unwrap();
                    assert_eq!(answer.response.code, ResponseCode::APPROVED);
                    acknowledged(task, stan);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    mover.await.unwrap();
}

/// Checks the reopened ledger against what was acknowledged.
async fn check_after_reopen(
    dir: &Path,
    backend: Backend,
    acknowledged: &[(u32, u32)],
    moved_fully: bool,
) {
    let ledger = Ledger::open(backend.config(dir)).await.unwrap();
    {
        for (task, stan) in acknowledged {
            let found = ledger.find_authorization(&key(*task, *stan)).unwrap();
            let found = found.unwrap_or_else(|| {
                panic!("acknowledged debit T{task}/{stan} is missing after the crash")
            });
            assert_eq!(found.code, ResponseCode::APPROVED);
        }
        // Every purchase in the log, from history or memory.
        let mut approved = 0usize;
        let mut from = 0;
        loop {
            let rows = ledger.log_rows(from, 4_096).unwrap();
            if rows.is_empty() {
                break;
            }
            from += rows.len() as u64;
            for row in rows {
                if let Some(p) = ledger.purchase_by_id(&row.id).unwrap() {
                    approved += usize::from(p.record.response.code == ResponseCode::APPROVED);
                }
            }
        }
        assert!(approved >= acknowledged.len());
        // The history file opens after the kill (how much it holds depends on when the kill
        // landed: its last sync); a run that ended by itself has moved.
        let held = ledger.history().unwrap().purchases_held().unwrap();
        assert!(!moved_fully || held > 0, "nothing moved to history");
        let state = ledger.state();
        // Each approved debit took exactly Rp 1 once: the pockets hold the rest.
        let pockets = Money::checked_sum(
            state
                .cards
                .values()
                .flat_map(|c| c.pockets.values().copied()),
        )
        .unwrap();
        let spent = Money::from_minor(100 * approved as i64);
        assert_eq!(
            pockets.checked_add(spent).unwrap(),
            rp(1_000_000_000 * CARDS as i64)
        );
        check_balances(&state).unwrap();
    }
    assert_eq!(
        ledger.cache_differences().await.unwrap(),
        Vec::<CardId>::new()
    );
    drop(ledger);
    verify(dir).expect("the journal verifies after the crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    if let Ok(dir) = std::env::var(CRASH_DIR_VAR) {
        // The child: print every acknowledged debit straight to the real stdout (not the test
        // harness's captured print!), one line each, flushed before the next debit.
        let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        let acknowledged = move |task: u32, stan: u32| {
            let mut out = stdout.lock().unwrap();
            writeln!(out, "ACK {task} {stan}").unwrap();
            out.flush().unwrap();
        };
        let backend = match std::env::var(CRASH_BACKEND_VAR).as_deref() {
            Ok("redis") => Backend::Redis,
            _ => Backend::Embedded,
        };
        workload(Path::new(&dir), backend, u32::MAX, Arc::new(acknowledged)).await;
        return;
    }
    // In-process: the same workload, bounded, then a clean reopen.
    let dir = TempDir::new("crash-inprocess");
    prepare(&dir.0, Backend::Embedded).await;
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&acked);
    workload(
        &dir.0,
        Backend::Embedded,
        20,
        Arc::new(move |task, stan| sink.lock().unwrap().push((task, stan))),
    )
    .await;
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), TASKS as usize * 20);
    check_after_reopen(&dir.0, Backend::Embedded, &acked, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_debits_survive_sigkill() {
    for (seed, backend) in SEEDS {
        let dir = TempDir::new(&format!("crash-{seed}"));
        prepare(&dir.0, backend).await;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash::crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CRASH_DIR_VAR, &dir.0)
            .env(
                CRASH_BACKEND_VAR,
                if backend == Backend::Redis {
                    "redis"
                } else {
                    "embedded"
                },
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child");
        let stdout = child.stdout.take().unwrap();
        let (first_ack, first_ack_seen) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Some(rest) = line.strip_prefix("ACK ") else {
                    continue;
                };
                let (task, stan) = rest.split_once(' ').unwrap();
                acked.push((task.parse::<u32>().unwrap(), stan.parse::<u32>().unwrap()));
                if acked.len() == 1 {
                    let _ = first_ack.send(());
                }
            }
            acked
        });
        first_ack_seen
            .recv_timeout(Duration::from_millis(FIRST_ACK_WAIT_MS_MAX))
            .unwrap_or_else(|_| panic!("seed {seed}: the child acknowledged nothing"));
        // The random moment: a seeded delay after the child is busy.
        let kill_after = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).below(KILL_AFTER_MS_MAX);
        std::thread::sleep(Duration::from_millis(kill_after));
        child.kill().expect("SIGKILL the child");
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        assert!(!acked.is_empty());
        check_after_reopen(&dir.0, backend, &acked, false).await;
        eprintln!(
            "seed {seed} ({backend:?}): killed after {kill_after} ms, {} acknowledged debits survived",
            acked.len()
        );
    }
}
