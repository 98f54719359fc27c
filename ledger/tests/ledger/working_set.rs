//! The working set and history (`ssn_ledger::window`, `ssn_ledger::history`): purchases,
//! declines, reversals and tombstones old enough to leave memory are answered exactly as
//! before — from history — on every file-based backend, in the running ledger and after a
//! restart from a snapshot that no longer holds them.

use crate::support::*;
use ssn_ledger::history::History;
use ssn_ledger::window::WORKING_SET_SECONDS;
use ssn_ledger::*;

/// Four days after `t0`: everything of `t0`'s business day may leave memory.
fn later() -> i64 {
    t0() + WORKING_SET_SECONDS + 86_400
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
    world
        .ledger
        .settle(day("2025-10-15"), t0() + 3_600)
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
    // A late reversal of a settled purchase: `12`, nothing moves.
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
    for key in [&old.approved.key, &old.declined.key, &old.tombstoned] {
        assert!(state.purchase(key).is_none(), "{key:?} is still in memory");
    }
    assert!(state.tombstones.is_empty());
    assert!(state.log_base > 0);
}

async fn old_purchases_are_answered_from_history(backend: Backend) {
    let (world, old) = old_day(backend).await;
    let moved = world.ledger.move_to_history(later()).unwrap();
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

/// The ledger stopped, a snapshot taken with history (what the ledger's snapshot thread
/// does), and the ledger started again: the snapshot holds the working set only, and the old
/// keys are answered from history.
async fn old_purchases_are_answered_after_a_restart(backend: Backend) {
    let (world, old) = old_day(backend).await;
    let World { dir, ledger, .. } = world;
    drop(ledger);
    {
        let history = History::open(&dir.0).unwrap();
        let taken = snapshot::take(&dir.0, Some((&history, later())), &|| false).unwrap();
        assert!(taken.path.is_some());
    }
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

/// A purchase whose batch is not settled stays in memory however old (a settlement sums it),
/// while its log entry moves; once settled, it leaves.
#[tokio::test]
async fn a_purchase_stays_until_its_batch_is_settled() {
    let (world, _, card) = World::with_card(Backend::Embedded, Rules::default()).await;
    let request = world.purchase(card, rp(25_000), None);
    world
        .ledger
        .authorize_purchase(request.clone())
        .await
        .unwrap();
    world
        .ledger
        .close_batch(BatchCloseRequest {
            terminal: request.key.terminal.clone(),
            batch_number: "000001".into(),
            terminal_totals: world.ledger.open_batch_totals(&request.key.terminal),
            at_unix_seconds: t0() + 60,
        })
        .await
        .unwrap();
    world.ledger.move_to_history(later()).unwrap();
    {
        let state = world.ledger.state();
        assert!(state.purchase(&request.key).is_some());
        assert!(state.log.is_empty(), "the log moves whatever its records");
        assert_eq!(state.pinned, vec![TransferId::purchase(&request.key)]);
    }
    let settled = world
        .ledger
        .settle(day("2025-10-15"), later())
        .await
        .unwrap();
    assert_eq!(settled.lines[0].purchase_count, 1);
    world.ledger.move_to_history(later()).unwrap();
    let state = world.ledger.state();
    assert!(state.purchase(&request.key).is_none());
    assert!(state.pinned.is_empty());
}

/// A snapshot whose moved log history does not hold (the history file lost) is not used: the
/// ledger replays the journal from its start, and every old key is in memory again.
#[tokio::test]
async fn a_snapshot_without_its_history_is_not_used() {
    let (world, old) = old_day(Backend::Embedded).await;
    let World { dir, ledger, .. } = world;
    drop(ledger);
    {
        let history = History::open(&dir.0).unwrap();
        snapshot::take(&dir.0, Some((&history, later())), &|| false).unwrap();
    }
    std::fs::remove_file(dir.0.join(ssn_ledger::history::HISTORY_FILE)).unwrap();
    let ledger = Backend::Embedded.open(&dir.0).await;
    assert_eq!(ledger.open_report().from_snapshot, None);
    assert!(ledger.state().purchase(&old.approved.key).is_some());
    assert_answers_as_before(&ledger, &old).await;
}
