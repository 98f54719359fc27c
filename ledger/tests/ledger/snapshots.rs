//! Snapshots: opening from a snapshot and the journal after it gives the state a full replay
//! gives, over random sequences of operations; a damaged or unfinished snapshot is never
//! loaded, and the one before it (or a full replay) is used instead; `verify` checks the
//! snapshots in force; a snapshot the journal no longer continues is left alone.

use crate::support::*;
use ssn_ledger::snapshot::{self, SNAPSHOT_DIR, encode_state};
use ssn_ledger::*;

/// Seeds of the property test: each is one random sequence of operations.
const SEEDS: u64 = 6;
/// Operations per seed.
const OPERATIONS: u32 = 80;
/// Cards in the world.
const CARDS: u64 = 4;

/// A world with one program and `CARDS` funded cards.
async fn world() -> (World, ProgramCode) {
    let mut world = World::new(Backend::Embedded).await;
    let program = world.program("SSN2025", Rules::default()).await;
    for _ in 0..CARDS {
        world.card(&[&program]).await;
    }
    world.fund(&program, rp(300_000 * CARDS as i64)).await;
    world.disburse(&program, "2025-10").await;
    (world, program)
}

/// One random operation: a purchase (sometimes with a basket, sometimes a duplicate of an
/// earlier one), a reversal of an earlier purchase or of one not sent yet, or a terminal's
/// batch close; time moves by hours, so days change.
async fn operate(ledger: &Ledger, random: &mut Random, sent: &mut Vec<PurchaseRequest>, step: u32) {
    let at = t0() + i64::from(step) * 3_600;
    match random.below(11) {
        0..=5 => {
            let card = CardId(1 + random.below(CARDS));
            let amount = rp(1_000 * (1 + random.below(60) as i64));
            let basket: Option<&[&str]> = match random.below(3) {
                0 => None,
                1 => Some(&["01"]),
                _ => Some(&["01", "07"]),
            };
            let terminal = 1 + random.below(3) as u32;
            let request = purchase_at(key(terminal, step + 1), card, amount, basket, at);
            let _ = ledger.authorize_purchase(request.clone()).await;
            sent.push(request);
        }
        6 if !sent.is_empty() => {
            let again = sent[random.below(sent.len() as u64) as usize].clone();
            let _ = ledger.authorize_purchase(again).await;
        }
        7 | 8 if !sent.is_empty() => {
            let original = &sent[random.below(sent.len() as u64) as usize];
            let _ = ledger
                .reverse_purchase(ReversalRequest {
                    original: original.key.clone(),
                    card: Some(original.card),
                    amount: original.amount,
                    at_unix_seconds: at,
                })
                .await;
        }
        9 => {
            // A reversal before its original (which the next step may send): a tombstone.
            let _ = ledger
                .reverse_purchase(ReversalRequest {
                    original: key(1 + random.below(3) as u32, step + 2),
                    card: None,
                    amount: rp(1_000),
                    at_unix_seconds: at,
                })
                .await;
        }
        _ => {
            let _ = ledger
                .close_batch(BatchCloseRequest {
                    terminal: terminal(1 + random.below(3) as u32),
                    batch_number: format!("{step:06}"),
                    terminal_totals: BatchTotals::default(),
                    at_unix_seconds: at,
                })
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_and_the_journal_after_it_give_what_a_full_replay_gives() {
    let mut covered = (0, 0, 0, 0);
    for seed in 1..=SEEDS {
        let mut random = Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (world, _) = world().await;
        let snapshot_at = random.below(u64::from(OPERATIONS)) as u32;
        let mut sent = Vec::new();
        let mut taken = None;
        for step in 0..OPERATIONS {
            if step == snapshot_at {
                taken = Some(snapshot::take(&world.dir.0, None, &|| false).unwrap());
            }
            operate(&world.ledger, &mut random, &mut sent, step).await;
        }
        let taken = taken.expect("taken");
        assert!(taken.path.is_some(), "seed {seed}: {taken:?}");
        let live = encode_state(&world.ledger.state());
        let world = world.reopen().await;
        assert_eq!(
            world.ledger.open_report().from_snapshot,
            Some(taken.entries),
            "seed {seed}: opened from the snapshot"
        );
        assert!(
            encode_state(&world.ledger.state()) == live,
            "seed {seed}: snapshot + tail differs from the live state"
        );
        let report = verify(&world.dir.0).unwrap();
        assert_eq!(report.snapshots, 1, "seed {seed}");
        // The same without the snapshot: a full replay.
        std::fs::remove_dir_all(world.dir.0.join(SNAPSHOT_DIR)).unwrap();
        let world = world.reopen().await;
        assert_eq!(world.ledger.open_report().from_snapshot, None);
        assert!(
            encode_state(&world.ledger.state()) == live,
            "seed {seed}: full replay differs from the live state"
        );
        world.assert_consistent().await;
        let state = world.ledger.state();
        covered.0 += state
            .purchases
            .values()
            .filter(|p| p.record.response.code == APPROVED)
            .count();
        covered.1 += state.purchases.values().filter(|p| p.reversed).count();
        covered.2 += state
            .terminals
            .values()
            .map(|t| t.closed.len())
            .sum::<usize>();
        covered.3 += state.tombstones.len();
    }
    // The sequences did what they are for: approvals, reversals, closes and tombstones.
    assert!(
        covered.0 > 0 && covered.1 > 0 && covered.2 > 0 && covered.3 > 0,
        "{covered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_unfinished_snapshot_is_never_loaded() {
    let (world, _) = world().await;
    let mut random = Random(42);
    let mut sent = Vec::new();
    for step in 0..20 {
        operate(&world.ledger, &mut random, &mut sent, step).await;
    }
    let first = snapshot::take(&world.dir.0, None, &|| false).unwrap();
    for step in 20..40 {
        operate(&world.ledger, &mut random, &mut sent, step).await;
    }
    let second = snapshot::take(&world.dir.0, None, &|| false).unwrap();
    assert!(second.entries > first.entries);
    let newest = second.path.clone().unwrap();
    let live = encode_state(&world.ledger.state());

    // A crash while the next one was written leaves a partial file: ignored.
    std::fs::write(
        world
            .dir
            .0
            .join(SNAPSHOT_DIR)
            .join("snapshot-00000000000000099999.snap.1-x.partial"),
        b"SSNSNAP1 half written",
    )
    .unwrap();
    // The newest one torn at every kind of place: the previous one is used instead.
    let whole = std::fs::read(&newest).unwrap();
    let mut world = world;
    for cut in [whole.len() - 1, whole.len() / 2, 10] {
        std::fs::write(&newest, &whole[..cut]).unwrap();
        world = world.reopen().await;
        assert_eq!(
            world.ledger.open_report().from_snapshot,
            Some(first.entries),
            "torn at {cut}"
        );
        assert!(encode_state(&world.ledger.state()) == live, "torn at {cut}");
    }
    // One flipped byte in the middle: the same.
    let mut flipped = whole.clone();
    flipped[whole.len() / 3] ^= 0x40;
    std::fs::write(&newest, &flipped).unwrap();
    let world = world.reopen().await;
    assert_eq!(
        world.ledger.open_report().from_snapshot,
        Some(first.entries)
    );
    assert!(encode_state(&world.ledger.state()) == live);
    // Put back whole: used again, and verify checks both.
    std::fs::write(&newest, &whole).unwrap();
    let world = world.reopen().await;
    assert_eq!(
        world.ledger.open_report().from_snapshot,
        Some(second.entries)
    );
    assert_eq!(verify(&world.dir.0).unwrap().snapshots, 2);
}

/// A snapshot whose checksum holds but whose state is not what the journal says (written by a
/// bug, or by hand) is found by `verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_snapshot_that_differs_from_the_journal() {
    let (world, _) = world().await;
    let mut random = Random(7);
    let mut sent = Vec::new();
    for step in 0..10 {
        operate(&world.ledger, &mut random, &mut sent, step).await;
    }
    let taken = snapshot::take(&world.dir.0, None, &|| false).unwrap();
    let path = taken.path.unwrap();
    let mut read = snapshot::read(&path).unwrap();
    read.state.carried.insert(merchant(), rp(1));
    std::fs::remove_file(&path).unwrap();
    snapshot::write(&world.dir.0.join(SNAPSHOT_DIR), &read.position, &read.state).unwrap();
    assert!(matches!(
        verify(&world.dir.0),
        Err(VerifyError::Snapshot(found)) if found == path
    ));
}

/// `ssn-ledger snapshot` killed (SIGKILL) at many points while it writes: every snapshot file
/// left reads whole or is not loaded, and the next open is the state a full replay gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_killed_while_it_is_written_leaves_a_correct_start() {
    const KILLS: u64 = 12;
    let (world, _) = world().await;
    let mut random = Random(99);
    let mut sent = Vec::new();
    for step in 0..400 {
        operate(&world.ledger, &mut random, &mut sent, step).await;
    }
    let live = encode_state(&world.ledger.state());
    let mut world = world;
    let mut finished = 0;
    for kill in 0..KILLS {
        let _ = std::fs::remove_dir_all(world.dir.0.join(SNAPSHOT_DIR));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ssn-ledger"))
            .args(["snapshot", "--data-dir"])
            .arg(&world.dir.0)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // From at once to after it is done, by steps.
        std::thread::sleep(std::time::Duration::from_micros(kill * kill * 250));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        finished += u64::from(status.success());
        let dir = world.dir.0.join(SNAPSHOT_DIR);
        for file in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "snap") {
                snapshot::read(&path).expect("a snapshot in place is whole");
            }
        }
        world = world.reopen().await;
        assert!(
            encode_state(&world.ledger.state()) == live,
            "killed after {} µs",
            kill * kill * 250
        );
    }
    // Some runs were killed before they finished (else this tested nothing).
    assert!(finished < KILLS, "every run finished before it was killed");
}
