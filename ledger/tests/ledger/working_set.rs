//! The working set and history (`ssn_ledger::window`, `ssn_ledger::history`): purchases,
//! declines, reversals and tombstones old enough to leave memory are answered exactly as
//! before — from history — on every file-based backend, in the running ledger and after a
//! restart from a snapshot that no longer holds them.

use crate::support::*;
use ssn_ledger::history::History;
use ssn_ledger::window::{WORKING_SET_PURCHASES_MAX, WORKING_SET_SECONDS};
use ssn_ledger::*;
use std::sync::Arc;

/// Four days after `t0`: everything of `t0`'s business day may leave memory.
fn later() -> i64 {
    t0() + WORKING_SET_SECONDS + 86_400
}

/// Stops the world's ledger (books checked first), takes a snapshot with its history at
/// `later()` that `verify` accepts, and opens the ledger again from it.
async fn restarted_from_a_snapshot(world: World) -> (TempDir, Ledger) {
    world.assert_consistent().await;
    let World { dir, ledger, .. } = world;
    drop(ledger);
    snapshot_with_history(&dir);
    assert_eq!(ssn_ledger::verify(&dir.0).unwrap().snapshots, 1);
    let ledger = Backend::Embedded.open(&dir.0).await;
    assert!(ledger.open_report().from_snapshot.is_some());
    (dir, ledger)
}

/// Takes a snapshot of the stopped ledger in `dir` with its history at `later()`, as the
/// ledger's snapshot thread does.
fn snapshot_with_history(dir: &TempDir) {
    let history = Arc::new(History::open(&dir.0).unwrap());
    let taken = snapshot::take(&dir.0, Some((&history, later())), &|| false).unwrap();
    assert!(taken.path.is_some());
}

/// What a world on `backend` answered on `t0`, asked again at `later()`.
struct Old {
    approved: PurchaseRequest,
    approved_answer: Authorization,
    declined: PurchaseRequest,
    declined_answer: Authorization,
    tombstoned: PurchaseKey,
    card: CardId,
}

/// A card with one approved purchase, one declined (`61`) and one tombstone, all of `t0`,
/// settled.
async fn old_day(backend: Backend) -> (World, Old) {
    let (world, _, card) = World::with_card(backend, Rules::default()).await;
    let approved = world.purchase(card, rp(25_000), None);
    let approved_answer = world
        .ledger
        .authorize_purchase(approved.clone())
        .await
        .unwrap();
    assert_eq!(approved_answer.response.code, APPROVED);
    let declined = world.purchase(card, rp(2_000_000), None);
    let declined_answer = world
        .ledger
        .authorize_purchase(declined.clone())
        .await
        .unwrap();
    assert_eq!(declined_answer.response.code, ResponseCode(*b"61"));
    let tombstoned = key(1, 999);
    let outcome = world
        .ledger
        .reverse_purchase(ReversalRequest {
            original: tombstoned.clone(),
            card: Some(card),
            amount: rp(10_000),
            at_unix_seconds: t0(),
        })
        .await
        .unwrap();
    assert_eq!(outcome, ReversalOutcome::Tombstoned);
    // The terminal closes its batch (a late reversal of its purchase is then `12`) and the
    // day is settled.
    world
        .ledger
        .close_batch(BatchCloseRequest {
            terminal: terminal(1),
            batch_number: "000001".into(),
            terminal_totals: BatchTotals::default(),
            at_unix_seconds: t0() + 60,
        })
        .await
        .unwrap();
    world
        .ledger
        .settle(day("2025-10-15"), t0() + 50_400)
        .await
        .unwrap();
    let old = Old {
        approved,
        approved_answer,
        declined,
        declined_answer,
        tombstoned,
        card,
    };
    (world, old)
}

/// Every old key answers as it did on `t0`, asked at `later()`.
async fn assert_answers_as_before(ledger: &Ledger, old: &Old) {
    let again = |request: &PurchaseRequest| PurchaseRequest {
        at_unix_seconds: later(),
        ..request.clone()
    };
    let duplicate = ledger
        .authorize_purchase(again(&old.approved))
        .await
        .unwrap();
    assert_eq!(duplicate.response, old.approved_answer.response);
    assert!(duplicate.duplicate);
    let duplicate = ledger
        .authorize_purchase(again(&old.declined))
        .await
        .unwrap();
    assert_eq!(duplicate.response, old.declined_answer.response);
    assert!(duplicate.duplicate);
    // Same key, other content: `94`.
    let mut conflicting = again(&old.approved);
    conflicting.amount = rp(26_000);
    conflicting.fingerprint = Fingerprint::of(&"other content");
    assert!(matches!(
        ledger.authorize_purchase(conflicting).await,
        Err(LedgerError::Conflict(_))
    ));
    // A late reversal of a purchase in a closed, settled batch: `12`, nothing moves.
    let reversal = ReversalRequest {
        original: old.approved.key.clone(),
        card: Some(old.card),
        amount: old.approved.amount,
        at_unix_seconds: later(),
    };
    let outcome = ledger.reverse_purchase(reversal).await.unwrap();
    assert_eq!(outcome, ReversalOutcome::Settled);
    assert_eq!(outcome.response_code(), ResponseCode(*b"12"));
    // The key whose reversal came first: `05`, and the decline is journaled.
    let tombstoned = purchase_at(old.tombstoned.clone(), old.card, rp(10_000), None, later());
    let answer = ledger.authorize_purchase(tombstoned).await.unwrap();
    assert_eq!(answer.response.code, ResponseCode::DO_NOT_HONOUR);
    assert_eq!(
        ledger.find_authorization(&old.approved.key).unwrap(),
        Some(old.approved_answer.response.clone())
    );
}

/// The working set holds none of `old`'s records.
fn assert_left_memory(ledger: &Ledger, old: &Old) {
    let state = ledger.state();
    for key in [&old.approved.key, &old.declined.key] {
        assert!(state.purchase(key).is_none(), "{key:?} is still in memory");
    }
    assert!(state.tombstones.is_empty());
    assert!(state.log_base > 0);
}

async fn old_purchases_are_answered_from_history(backend: Backend) {
    let (world, old) = old_day(backend).await;
    let moved = world
        .ledger
        .move_to_history(later(), WORKING_SET_PURCHASES_MAX)
        .unwrap();
    assert!(moved > 0);
    assert_left_memory(&world.ledger, &old);
    assert_answers_as_before(&world.ledger, &old).await;
    // The card's statement and the transaction log still hold every entry, in order.
    let rows = world.ledger.card_transfers(old.card).unwrap();
    let approved = TransferId::purchase(&old.approved.key);
    assert!(rows.iter().any(|row| row.id == approved));
    assert!(rows.windows(2).all(|w| w[0].index < w[1].index));
    let log = world.ledger.log_rows(0, 1_000).unwrap();
    assert!(log.iter().any(|row| row.id == approved));
    assert_eq!(
        world
            .ledger
            .purchase_by_id(&approved)
            .unwrap()
            .unwrap()
            .record
            .response,
        old.approved_answer.response
    );
    world.assert_consistent().await;
}

#[tokio::test]
async fn old_purchases_are_answered_from_history_embedded() {
    old_purchases_are_answered_from_history(Backend::Embedded).await;
}

#[tokio::test]
async fn old_purchases_are_answered_from_history_redis() {
    old_purchases_are_answered_from_history(Backend::Redis).await;
}

/// On Redis + Cassandra a node replays the keyspace at every start and keeps a history of
/// its own: old keys answer the same before a restart (from history) and after it (from the
/// replay, then from history again once moved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_purchases_are_answered_from_history_scylla() {
    let (mut world, old) = old_day(Backend::Scylla).await;
    for restarted in [false, true] {
        if restarted {
            world = world.reopen().await;
            assert_answers_as_before(&world.ledger, &old).await;
        }
        world
            .ledger
            .move_to_history(later(), WORKING_SET_PURCHASES_MAX)
            .unwrap();
        assert_left_memory(&world.ledger, &old);
        assert_answers_as_before(&world.ledger, &old).await;
    }
    world.assert_consistent().await;
}

/// The ledger stopped, a snapshot taken with history (what the ledger's snapshot thread
/// does), and the ledger started again: the snapshot holds the working set only, and the old
/// keys are answered from history.
async fn old_purchases_are_answered_after_a_restart(backend: Backend) {
    let (world, old) = old_day(backend).await;
    let World { dir, ledger, .. } = world;
    drop(ledger);
    snapshot_with_history(&dir);
    // The snapshot holds a working set of the journal's replay at its position.
    assert_eq!(ssn_ledger::verify(&dir.0).unwrap().snapshots, 1);
    let ledger = backend.open(&dir.0).await;
    assert!(ledger.open_report().from_snapshot.is_some());
    assert_left_memory(&ledger, &old);
    assert_answers_as_before(&ledger, &old).await;
    assert_eq!(
        ledger.cache_differences().await.unwrap(),
        Vec::<CardId>::new()
    );
}

#[tokio::test]
async fn old_purchases_are_answered_after_a_restart_embedded() {
    old_purchases_are_answered_after_a_restart(Backend::Embedded).await;
}

#[tokio::test]
async fn old_purchases_are_answered_after_a_restart_redis() {
    old_purchases_are_answered_after_a_restart(Backend::Redis).await;
}

/// A purchase still in an open batch may leave memory (the batch's settlement sums stay);
/// its late reversal brings it back from history, in the running ledger and again when a
/// restart replays that reversal after a snapshot that did not hold the purchase.
/// A card with one approved purchase of Rp 25,000 on `t0`, its batch open.
async fn one_purchase() -> (World, ProgramCode, CardId, PurchaseRequest) {
    let (world, program, card) = World::with_card(Backend::Embedded, Rules::default()).await;
    let request = world.purchase(card, rp(25_000), None);
    world
        .ledger
        .authorize_purchase(request.clone())
        .await
        .unwrap();
    (world, program, card, request)
}

#[tokio::test]
async fn a_late_reversal_brings_a_purchase_back_from_history() {
    let (world, program, card, request) = one_purchase().await;
    world
        .ledger
        .move_to_history(later(), WORKING_SET_PURCHASES_MAX)
        .unwrap();
    assert!(world.ledger.state().purchase(&request.key).is_none());
    // Stopped, a snapshot without the purchase, started again.
    let World { dir, ledger, .. } = world;
    drop(ledger);
    snapshot_with_history(&dir);
    let ledger = Backend::Embedded.open(&dir.0).await;
    assert!(ledger.open_report().from_snapshot.is_some());
    assert!(ledger.state().purchase(&request.key).is_none());
    let reversal = ReversalRequest {
        original: request.key.clone(),
        card: Some(card),
        amount: request.amount,
        at_unix_seconds: later(),
    };
    let outcome = ledger.reverse_purchase(reversal.clone()).await.unwrap();
    assert_eq!(
        outcome,
        ReversalOutcome::Reversed(vec![PocketAmount {
            program: program.clone(),
            amount: rp(25_000),
        }])
    );
    assert_eq!(
        ledger.reverse_purchase(reversal.clone()).await.unwrap(),
        ReversalOutcome::AlreadyReversed
    );
    assert_eq!(ledger.balance(card, later()).await.unwrap(), rp(300_000));
    // Once it left again, history still knows it is reversed.
    ledger
        .move_to_history(
            later() + WORKING_SET_SECONDS + 86_400,
            WORKING_SET_PURCHASES_MAX,
        )
        .unwrap();
    assert!(ledger.state().purchase(&request.key).is_none());
    assert_eq!(
        ledger.reverse_purchase(reversal.clone()).await.unwrap(),
        ReversalOutcome::AlreadyReversed
    );
    // The restart replays the reversal after the snapshot: it finds its purchase in history.
    drop(ledger);
    let ledger = Backend::Embedded.open(&dir.0).await;
    assert!(ledger.open_report().from_snapshot.is_some());
    assert_eq!(ledger.balance(card, later()).await.unwrap(), rp(300_000));
    assert_eq!(
        ledger.reverse_purchase(reversal).await.unwrap(),
        ReversalOutcome::AlreadyReversed
    );
    // The batch settles on its sums: one purchase, reversed, nothing to pay.
    let settled = ledger.settle(day("2025-10-15"), later()).await.unwrap();
    assert_eq!(settled.lines.len(), 1);
    assert_eq!(
        (
            settled.lines[0].purchase_count,
            settled.lines[0].reversal_count
        ),
        (1, 1)
    );
    assert_eq!(settled.lines[0].amount, Money::ZERO);
    assert_eq!(
        ledger.cache_differences().await.unwrap(),
        Vec::<CardId>::new()
    );
    drop(ledger);
    assert_eq!(ssn_ledger::verify(&dir.0).unwrap().snapshots, 1);
}

/// Past its cap of purchases the working set's cutoff moves closer to now: the oldest leave
/// (even of today), and a duplicate of one of them is answered from history.
#[tokio::test]
async fn the_working_set_keeps_to_its_cap() {
    const PURCHASES: u32 = 40;
    const CAP: usize = 8;
    let (world, _, card) = World::with_card(Backend::Embedded, Rules::default()).await;
    let mut sent = Vec::new();
    for i in 0..PURCHASES {
        let request = purchase_at(key(2, i + 1), card, rp(1_000), None, t0() + i64::from(i));
        let answer = world
            .ledger
            .authorize_purchase(request.clone())
            .await
            .unwrap();
        assert_eq!(answer.response.code, APPROVED);
        sent.push((request, answer));
    }
    let now = t0() + i64::from(PURCHASES);
    world.ledger.move_to_history(now, CAP).unwrap();
    {
        let state = world.ledger.state();
        assert!(state.purchases.len() <= CAP, "{}", state.purchases.len());
        assert!(state.horizon > t0());
    }
    for (request, answer) in [&sent[0], &sent[PURCHASES as usize - 1]] {
        let again = PurchaseRequest {
            at_unix_seconds: now,
            ..request.clone()
        };
        let duplicate = world.ledger.authorize_purchase(again).await.unwrap();
        assert!(duplicate.duplicate);
        assert_eq!(duplicate.response, answer.response);
    }
    let spent = rp(1_000 * i64::from(PURCHASES));
    assert_eq!(
        world.ledger.balance(card, now).await.unwrap(),
        rp(300_000).checked_sub(spent).unwrap()
    );
    world.assert_consistent().await;
}

/// A snapshot whose moved log history does not hold (the history file lost) is not used: the
/// ledger replays the journal from its start, and every old key is in memory again.
#[tokio::test]
async fn a_snapshot_without_its_history_is_not_used() {
    let (world, old) = old_day(Backend::Embedded).await;
    let World { dir, ledger, .. } = world;
    drop(ledger);
    snapshot_with_history(&dir);
    std::fs::remove_file(dir.0.join(ssn_ledger::history::HISTORY_FILE)).unwrap();
    let ledger = Backend::Embedded.open(&dir.0).await;
    assert_eq!(ledger.open_report().from_snapshot, None);
    assert!(ledger.state().purchase(&old.approved.key).is_some());
    assert_answers_as_before(&ledger, &old).await;
}

/// Seeds of the differential test: each is one random sequence of operations.
const SEEDS: u64 = 8;
/// Operations per seed.
const OPERATIONS: u32 = 120;
/// Cards in each world.
const CARDS: u64 = 4;

/// A ledger in `dir` that keeps everything in memory (no history): the reference.
async fn reference(dir: &TempDir) -> Ledger {
    let journal = FileJournal::open(&dir.0.join("journal.log")).unwrap();
    Ledger::open_with(LedgerStores {
        journal: Box::new(journal),
        registry: Arc::new(RedbRegistry::open(&dir.0.join("registry.redb")).unwrap()),
        balances: Arc::new(MemoryBalances::new()),
        history: None,
    })
    .await
    .unwrap()
}

/// One random operation on `ledger`, as of `at`, and what it answered.
async fn operate(
    ledger: &Ledger,
    random: &mut Random,
    sent: &mut Vec<PurchaseRequest>,
    step: u32,
    at: i64,
) -> String {
    let terminal_number = 1 + random.below(3) as u32;
    match random.below(13) {
        0..=4 => {
            let card = CardId(1 + random.below(CARDS));
            let amount = rp(1_000 * (1 + random.below(60) as i64));
            // DE7 is the time of the purchase, or (a terminal's clock) hours off it.
            let skew = [0, 0, 0, -7_200, 5_400][random.below(5) as usize];
            let de7 = de7_of(at + skew);
            let mut key = key(terminal_number, step + 1);
            key.transmitted = de7;
            let request = purchase_at(key, card, amount, None, at);
            let answer = ledger.authorize_purchase(request.clone()).await;
            sent.push(request);
            format!("{answer:?}")
        }
        5 | 6 if !sent.is_empty() => {
            let again = PurchaseRequest {
                at_unix_seconds: at,
                ..sent[random.below(sent.len() as u64) as usize].clone()
            };
            format!("{:?}", ledger.authorize_purchase(again).await)
        }
        7 | 8 if !sent.is_empty() => {
            let original = &sent[random.below(sent.len() as u64) as usize];
            let outcome = ledger
                .reverse_purchase(ReversalRequest {
                    original: original.key.clone(),
                    card: Some(original.card),
                    amount: original.amount,
                    at_unix_seconds: at,
                })
                .await;
            format!("{outcome:?}")
        }
        9 => {
            // A reversal before its original (which a later step may send): a tombstone.
            let mut original = key(terminal_number, step + 2);
            original.transmitted = de7_of(at);
            let outcome = ledger
                .reverse_purchase(ReversalRequest {
                    original,
                    card: None,
                    amount: rp(1_000),
                    at_unix_seconds: at,
                })
                .await;
            format!("{outcome:?}")
        }
        10 => {
            let closed = ledger
                .close_batch(BatchCloseRequest {
                    terminal: terminal(terminal_number),
                    batch_number: format!("{step:06}"),
                    terminal_totals: BatchTotals::default(),
                    at_unix_seconds: at,
                })
                .await;
            format!("{closed:?}")
        }
        11 => {
            let date = Day::wita_of_unix_seconds(at - 86_400);
            let settled = ledger.settle(date, at).await.map(|s| s.lines);
            format!("{settled:?}")
        }
        _ => {
            let card = CardId(1 + random.below(CARDS));
            format!("{:?}", ledger.balance(card, at).await)
        }
    }
}

/// The same random operations on a ledger that moves its working set to history (at random
/// times, with random caps, restarting from snapshots taken with history) and on one that
/// keeps everything in memory give the same answer, every one: moving changes nothing a
/// terminal or the bank can see. Time advances by hours, so keys age out of the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_to_history_changes_no_answer() {
    let mut moved_and_restarted = (0u64, 0u32);
    for seed in 1..=SEEDS {
        let mut random = Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (moving_dir, reference_dir) = (TempDir::new("moving"), TempDir::new("reference"));
        let mut moving = Backend::Embedded.open(&moving_dir.0).await;
        let kept = reference(&reference_dir).await;
        fund_cards(&moving, CARDS).await;
        fund_cards(&kept, CARDS).await;
        let (mut sent_moving, mut sent_kept) = (Vec::new(), Vec::new());
        for step in 0..OPERATIONS {
            let at = t0() + i64::from(step) * 5 * 3_600;
            let state = random.0;
            let answer = operate(&moving, &mut random, &mut sent_moving, step, at).await;
            random.0 = state;
            let expected = operate(&kept, &mut random, &mut sent_kept, step, at).await;
            assert_eq!(answer, expected, "seed {seed}, step {step}");
            match random.below(10) {
                0..=2 => {
                    let cap = [2, 16, WORKING_SET_PURCHASES_MAX][random.below(3) as usize];
                    moved_and_restarted.0 += moving.move_to_history(at, cap).unwrap();
                }
                3 => {
                    drop(moving);
                    let history = Arc::new(History::open(&moving_dir.0).unwrap());
                    snapshot::take(&moving_dir.0, Some((&history, at)), &|| false).unwrap();
                    drop(history);
                    moving = Backend::Embedded.open(&moving_dir.0).await;
                    moved_and_restarted.1 += 1;
                }
                _ => {}
            }
        }
        assert_eq!(
            moving.cache_differences().await.unwrap(),
            Vec::<CardId>::new(),
            "seed {seed}"
        );
        drop(moving);
        ssn_ledger::verify(&moving_dir.0).unwrap();
    }
    assert!(
        moved_and_restarted.0 > 0 && moved_and_restarted.1 > 0,
        "{moved_and_restarted:?}"
    );
}

/// The history file's own contract: rows read back as written, a purchase as it was first
/// written, the log contiguous from 0 (a move that would leave a gap is refused, one that
/// overlaps is accepted), each card's transfers below a log number, and all of it durable
/// across a reopen.
#[tokio::test]
async fn history_keeps_rows_as_first_written_and_its_log_contiguous() {
    let (world, old) = old_day(Backend::Embedded).await;
    let approved = TransferId::purchase(&old.approved.key);
    let (moved, log_len) = {
        let state = world.ledger.state();
        (
            state.movable(later(), WORKING_SET_PURCHASES_MAX, 1_000, u64::MAX),
            state.log.len() as u64,
        )
    };
    assert!(!moved.purchases.is_empty() && !moved.card_log.is_empty());
    let World { dir, ledger, .. } = world;
    drop(ledger);
    // A fresh file beside the world's.
    std::fs::remove_file(dir.0.join(ssn_ledger::history::HISTORY_FILE)).unwrap();
    let history = History::open(&dir.0).unwrap();
    assert_eq!(history.log_len().unwrap(), 0);
    let mut gap = moved.clone();
    gap.log_from = 1;
    assert!(matches!(
        history.store(&gap),
        Err(ssn_ledger::history::HistoryError::Gap { held: 0, from: 1 })
    ));
    history.store(&moved).unwrap();
    assert_eq!(history.log_len().unwrap(), log_len);
    // Stored twice, and once more with the purchase changed: the first row stands.
    history.store(&moved).unwrap();
    let mut changed = moved.clone();
    for (_, purchase, _) in &mut changed.purchases {
        purchase.reversed = !purchase.reversed;
    }
    history.store(&changed).unwrap();
    drop(history);
    let history = History::open(&dir.0).unwrap();
    assert_eq!(history.log_len().unwrap(), log_len);
    for (id, purchase, _) in &moved.purchases {
        assert_eq!(history.purchase(id).unwrap().as_ref(), Some(purchase));
    }
    assert_eq!(
        history.purchases_held().unwrap(),
        moved.purchases.len() as u64
    );
    assert_eq!(history.log(0, log_len).unwrap(), moved.log);
    assert_eq!(history.log(log_len, log_len + 10).unwrap(), Vec::new());
    let rows = history.card_log(old.card, log_len).unwrap();
    let expected: Vec<CardRow> = moved
        .card_log
        .iter()
        .filter(|(card, _)| *card == old.card)
        .map(|(_, row)| *row)
        .collect();
    assert_eq!(rows, expected);
    assert!(rows.iter().any(|row| row.id == approved));
    assert!(history.card_log(old.card, 0).unwrap().is_empty());
    assert!(
        history
            .tombstoned(&TransferId::purchase(&old.tombstoned))
            .unwrap()
    );
    assert!(!history.tombstoned(&approved).unwrap());
    let (id, at, record) = &moved.transfers[0];
    assert_eq!(history.transfer(id).unwrap(), Some((*at, record.clone())));
}

/// A replay behind the live projection (the snapshot thread's, a start from an older
/// snapshot) that moves a purchase to history before it reaches the purchase's reversal,
/// after the live mover took the purchase there reversed (a reversal days later, the batch
/// still open; the reversal itself, recent, stayed in memory): the purchase comes back as it
/// was then, unreversed, and the reversal applies. History never hands a replay a reversal
/// from its future.
#[tokio::test]
async fn a_replay_behind_the_live_mover_applies_the_reversal() {
    let (world, program, card, request) = one_purchase().await;
    let reversal = ReversalRequest {
        original: request.key.clone(),
        card: Some(card),
        amount: request.amount,
        at_unix_seconds: t0() + WORKING_SET_SECONDS + 3_600,
    };
    let outcome = world.ledger.reverse_purchase(reversal.clone()).await;
    assert!(matches!(outcome, Ok(ReversalOutcome::Reversed(_))));
    world
        .ledger
        .move_to_history(reversal.at_unix_seconds + 60, WORKING_SET_PURCHASES_MAX)
        .unwrap();
    assert!(world.ledger.state().purchase(&request.key).is_none());
    let World { dir, ledger, .. } = world;
    drop(ledger);
    let history = Arc::new(History::open(&dir.0).unwrap());
    let mut entries = Vec::new();
    let end = FileJournal::open(&dir.0.join("journal.log"))
        .unwrap()
        .replay(&mut |entry, _| {
            entries.push(entry.decode().unwrap());
            Ok(())
        })
        .unwrap();
    assert!(end.is_none());
    let mut replay = State {
        history: Some(Arc::clone(&history)),
        ..State::default()
    };
    for entry in entries {
        if matches!(entry.record, Record::Reversal(_)) {
            replay.move_all(&history, entry.at_unix_seconds).unwrap();
            assert!(replay.purchase(&request.key).is_none());
        }
        replay.apply_owned(entry).unwrap();
    }
    assert!(replay.purchase(&request.key).unwrap().reversed);
    assert_eq!(replay.cards[&card].pockets[&program], rp(300_000));
}

/// A snapshot the journal after it does not apply to is a cache gone wrong, not a broken
/// journal: the snapshot thread and the ledger's start set it aside (`….snap.unusable`), and
/// the ledger starts from the journal.
#[tokio::test]
async fn a_snapshot_the_journal_does_not_continue_is_set_aside() {
    let (world, _, card, request) = one_purchase().await;
    let World { dir, ledger, .. } = world;
    drop(ledger);
    let taken = {
        let history = Arc::new(History::open(&dir.0).unwrap());
        snapshot::take(&dir.0, Some((&history, t0())), &|| false).unwrap()
    };
    let path = taken.path.unwrap();
    let ledger = Backend::Embedded.open(&dir.0).await;
    assert!(ledger.open_report().from_snapshot.is_some());
    let reversal = ReversalRequest {
        original: request.key.clone(),
        card: Some(card),
        amount: request.amount,
        at_unix_seconds: t0() + 60,
    };
    let outcome = ledger.reverse_purchase(reversal).await;
    assert!(matches!(outcome, Ok(ReversalOutcome::Reversed(_))));
    drop(ledger);
    // The snapshot now says the purchase is reversed; the journal after it reverses it.
    let mut wrong = snapshot::read(&path).unwrap();
    let id = TransferId::purchase(&request.key);
    let mut purchase = wrong.state.purchases.get(&id).unwrap().clone();
    purchase.reversed = true;
    wrong.state.purchases.insert(id, purchase);
    snapshot::write(path.parent().unwrap(), &wrong.position, &wrong.state).unwrap();
    let aside = path.with_extension("snap.unusable");
    // The snapshot thread writes no snapshot past it (nor up to the entry it half-applied).
    {
        let history = Arc::new(History::open(&dir.0).unwrap());
        assert!(snapshot::take(&dir.0, Some((&history, t0())), &|| false).is_err());
    }
    assert!(!path.exists() && aside.exists());
    assert_eq!(snapshot::positions(path.parent().unwrap()).unwrap(), vec![]);
    std::fs::rename(&aside, &path).unwrap();
    let ledger = Backend::Embedded.open(&dir.0).await;
    assert_eq!(ledger.open_report().from_snapshot, None);
    assert!(!path.exists() && aside.exists());
    assert_eq!(ledger.balance(card, t0() + 60).await.unwrap(), rp(300_000));
    drop(ledger);
    assert!(ssn_ledger::verify(&dir.0).is_ok());
}

/// Closed terminal batches leave memory once they are not their terminal's last (from the
/// first settlement by date on, none waits for a settlement): memory keeps each terminal's
/// last (a repeated 0500 is answered from it), history keeps the rest, found by terminal and sequence across a
/// restart from a snapshot, and the exception batches a semester report lists come with the
/// half-year's totals.
#[tokio::test]
async fn settled_batches_leave_memory_and_are_found_in_history() {
    let (world, _, card) = World::with_card(Backend::Embedded, Rules::default()).await;
    let close = |number: &str, sales_count: u32, sales_amount: Money, at: i64| BatchCloseRequest {
        terminal: terminal(1),
        batch_number: number.into(),
        terminal_totals: BatchTotals {
            sales_count,
            sales_amount,
            ..BatchTotals::default()
        },
        at_unix_seconds: at,
    };
    let approve = |stan: u32, at: i64| {
        let request = purchase_at(key(1, stan), card, rp(1_000), None, at);
        let ledger = &world.ledger;
        async move {
            let answer = ledger.authorize_purchase(request).await.unwrap();
            assert_eq!(answer.response.code, APPROVED);
        }
    };
    // Day one: a batch closed on totals that differ from the journal's, then one that agree.
    approve(1, t0()).await;
    let out_of_balance = world
        .ledger
        .close_batch(close("000001", 2, rp(2_000), t0() + 60))
        .await
        .unwrap();
    assert!(!out_of_balance.matched);
    approve(2, t0() + 120).await;
    let matched = world
        .ledger
        .close_batch(close("000002", 1, rp(1_000), t0() + 180))
        .await
        .unwrap();
    assert!(matched.matched);
    world
        .ledger
        .settle(day("2025-10-15"), t0() + 50_400)
        .await
        .unwrap();
    let sequences = |ledger: &Ledger| -> Vec<u64> {
        ledger.state().terminals[&terminal(1)]
            .closed
            .iter()
            .map(|c| c.sequence)
            .collect()
    };
    // The first left; the last stays, so its repeat is still answered the same.
    assert_eq!(sequences(&world.ledger), vec![matched.batch.sequence]);
    let repeat = world
        .ledger
        .close_batch(close("000002", 1, rp(1_000), t0() + 240))
        .await
        .unwrap();
    assert_eq!(repeat, matched);
    world
        .ledger
        .move_to_history(later(), WORKING_SET_PURCHASES_MAX)
        .unwrap();
    assert!(world.ledger.state().departed_batches.is_empty());
    // Day two: a new close; the settled last one leaves too.
    approve(3, t0() + 86_400).await;
    let next = world
        .ledger
        .close_batch(close("000003", 1, rp(1_000), t0() + 86_460))
        .await
        .unwrap();
    assert_eq!(sequences(&world.ledger), vec![next.batch.sequence]);
    for found in [&out_of_balance.batch, &matched.batch, &next.batch] {
        assert_eq!(
            world
                .ledger
                .closed_batch(&terminal(1), found.sequence)
                .unwrap()
                .as_ref(),
            Some(found)
        );
    }
    assert_eq!(world.ledger.closed_batch(&terminal(1), 99).unwrap(), None);
    // The half-year's totals count and keep the one exception.
    let exceptions = world.ledger.state().totals.periods[&totals::Period::of_unix_seconds(t0())]
        .exceptions
        .clone();
    assert_eq!(exceptions.count, 1);
    assert_eq!(
        exceptions.latest,
        vec![(terminal(1), out_of_balance.batch.clone())]
    );
    // Across a restart from a snapshot taken with history.
    let (_dir, ledger) = restarted_from_a_snapshot(world).await;
    assert_eq!(sequences(&ledger), vec![next.batch.sequence]);
    for found in [&out_of_balance.batch, &matched.batch] {
        assert_eq!(
            ledger
                .closed_batch(&terminal(1), found.sequence)
                .unwrap()
                .as_ref(),
            Some(found)
        );
    }
}

/// A disbursement (a per-card record naming every card credited) older than the working set
/// leaves memory like purchases do: found in history, and a repeated call answers the first
/// and credits nothing twice, in the running ledger and after a restart from a snapshot.
#[tokio::test]
async fn an_old_disbursement_leaves_memory_and_repeats_as_before() {
    let (world, program, card) = World::with_card(Backend::Embedded, Rules::default()).await;
    let id = TransferId::disbursement(&program, "2025-10");
    let credited = world.pocket(card, &program).await;
    assert!(credited.is_positive());
    world
        .ledger
        .move_to_history(later(), WORKING_SET_PURCHASES_MAX)
        .unwrap();
    let in_memory = |ledger: &Ledger| ledger.state().transfers.contains_key(&id);
    assert!(
        !in_memory(&world.ledger),
        "the disbursement stayed in memory"
    );
    assert!(world.ledger.transfer_by_id(&id).unwrap().is_some());
    let again = world
        .ledger
        .disburse(&program, "2025-10", later())
        .await
        .unwrap();
    assert_eq!((again.cards, again.total), (1, credited));
    assert_eq!(world.pocket(card, &program).await, credited);
    let (_dir, ledger) = restarted_from_a_snapshot(world).await;
    assert!(!in_memory(&ledger));
    let again = ledger.disburse(&program, "2025-10", later()).await.unwrap();
    assert_eq!((again.cards, again.total), (1, credited));
    assert_eq!(ledger.balance(card, t0()).await.unwrap(), credited);
}

/// A disbursement inside the working set whose log row (and its cards' rows) moved to history
/// before it did: after a restart, a repeated call credits nothing the store already counts.
#[tokio::test]
async fn a_repeated_disbursement_after_a_restart_credits_nothing_twice() {
    let (world, program, card) = World::with_card(Backend::Embedded, Rules::default()).await;
    let id = TransferId::disbursement(&program, "2025-10");
    let credited = world.pocket(card, &program).await;
    // A day later: the disbursement is inside the working set, its log row is not.
    world
        .ledger
        .move_to_history(t0() + 86_400, WORKING_SET_PURCHASES_MAX)
        .unwrap();
    assert!(world.ledger.state().transfers.contains_key(&id));
    let World { dir, ledger, .. } = world;
    drop(ledger);
    {
        // The snapshot holds the working set as of that day: the record, not its rows.
        let history = Arc::new(History::open(&dir.0).unwrap());
        snapshot::take(&dir.0, Some((&history, t0() + 86_400)), &|| false).unwrap();
    }
    let ledger = Backend::Embedded.open(&dir.0).await;
    assert!(ledger.open_report().from_snapshot.is_some());
    assert!(ledger.state().transfers.contains_key(&id));
    let again = ledger
        .disburse(&program, "2025-10", t0() + 86_400)
        .await
        .unwrap();
    assert_eq!((again.cards, again.total), (1, credited));
    assert_eq!(ledger.balance(card, t0()).await.unwrap(), credited);
    assert_eq!(
        ledger.cache_differences().await.unwrap(),
        Vec::<CardId>::new()
    );
}

/// A replacement repeated after a restart from a snapshot whose card rows of it had moved
/// (the record itself stays in memory) moves nothing twice: the rebuilt store already counts
/// the new card's credit.
#[tokio::test]
async fn a_repeated_replacement_after_a_restart_credits_nothing_twice() {
    let (mut world, _, old) = World::with_card(Backend::Embedded, Rules::default()).await;
    let new = world.card(&[]).await;
    let moves = world.ledger.replace_card(old, new, t0()).await.unwrap();
    let moved = Money::checked_sum(moves.iter().map(|m| m.amount)).unwrap();
    assert!(moved.is_positive());
    let World { dir, ledger, .. } = world;
    drop(ledger);
    {
        let history = Arc::new(History::open(&dir.0).unwrap());
        snapshot::take(&dir.0, Some((&history, later())), &|| false).unwrap();
    }
    let ledger = Backend::Embedded.open(&dir.0).await;
    assert!(ledger.open_report().from_snapshot.is_some());
    assert_eq!(ledger.replace_card(old, new, later()).await.unwrap(), moves);
    assert_eq!(ledger.balance(new, t0()).await.unwrap(), moved);
    assert_eq!(
        ledger.cache_differences().await.unwrap(),
        Vec::<CardId>::new()
    );
}
