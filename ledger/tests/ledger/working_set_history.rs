//! How history is written (`ssn_ledger::history`): a record naming every card leaves memory in
//! bounded slices, a purchase moved twice is kept once, and a file written before the sorted
//! runs still answers everything it holds.

use crate::support::*;
use ssn_ledger::history::{History, LogRow, Moved};
use ssn_ledger::window::{MOVE_ROWS_MAX, WORKING_SET_PURCHASES_MAX};
use ssn_ledger::*;
use std::sync::Arc;

fn program() -> ProgramCode {
    ProgramCode::new("SEMBAKO").unwrap()
}

/// A projection with `history`, holding a funding and a disbursement to `cards` cards, both of
/// `t0`.
fn disbursed(history: &Arc<History>, cards: u64) -> (State, Record) {
    let mut state = State {
        history: Some(Arc::clone(history)),
        ..State::default()
    };
    let disbursement = Record::Disbursement {
        program: program(),
        period: "2025-10".into(),
        credits: (0..cards).map(|card| (CardId(card), rp(200_000))).collect(),
    };
    let funding = Record::Funding {
        reference: "APBD-2025".into(),
        program: program(),
        amount: rp(200_000 * cards as i64),
    };
    for record in [funding, disbursement.clone()] {
        state
            .apply(&Entry {
                at_unix_seconds: t0(),
                record,
            })
            .unwrap();
    }
    (state, disbursement)
}

/// A disbursement names every card: its card rows leave memory in slices of at most
/// `MOVE_ROWS_MAX`, one per round (each round holds the projection's lock), not all in one,
/// and once the last slice has left with the record every card's row is in history and none
/// in memory.
#[test]
fn a_disbursement_leaves_memory_in_bounded_slices() {
    let dir = TempDir::new("slices");
    let cards = 2 * MOVE_ROWS_MAX as u64 + 100;
    let history = Arc::new(History::open(&dir.0).unwrap());
    let (mut state, disbursement) = disbursed(&history, cards);
    let now = t0() + 10 * 86_400;
    let mut rounds = 0;
    loop {
        let moved = state.movable(now, WORKING_SET_PURCHASES_MAX, MOVE_ROWS_MAX, u64::MAX);
        assert!(
            moved.card_log.len() <= MOVE_ROWS_MAX,
            "a round took {} card rows",
            moved.card_log.len()
        );
        if moved.is_empty() {
            break;
        }
        history.store(&moved).unwrap();
        state.forget(&moved);
        rounds += 1;
        assert!(rounds < 10, "the rows never all left");
    }
    // The funding's log row, three slices, the record with nothing left of its rows.
    assert_eq!(rounds, 4);
    history.sync().unwrap();
    assert_eq!((state.log_base, state.log.len()), (2, 0));
    assert!(state.cards.values().all(|card| card.history.is_empty()));
    let id = TransferId::disbursement(&program(), "2025-10");
    for card in [0, MOVE_ROWS_MAX as u64 - 1, MOVE_ROWS_MAX as u64, cards - 1] {
        let rows = history.card_log(CardId(card), u64::MAX).unwrap();
        let expected = CardRow {
            index: 1,
            id,
            how: CardTransfer::Credit,
        };
        assert_eq!(rows, vec![expected], "card {card}");
    }
    assert_eq!(
        history.transfer(&id).unwrap(),
        Some((t0(), disbursement.clone()))
    );
}

/// A projection that starts over in the middle of a disbursement's slices (a restart: the
/// slices moved are not in snapshots) moves them again, and history keeps each card's row
/// once; `move_all` goes on until the last slice has left.
#[test]
fn slices_moved_again_are_kept_once() {
    let dir = TempDir::new("slices-again");
    let cards = MOVE_ROWS_MAX as u64 + 10;
    let history = Arc::new(History::open(&dir.0).unwrap());
    let (mut state, _) = disbursed(&history, cards);
    let now = t0() + 10 * 86_400;
    // The funding's row, then one slice, stored.
    for _ in 0..2 {
        let moved = state.movable(now, WORKING_SET_PURCHASES_MAX, MOVE_ROWS_MAX, u64::MAX);
        history.store(&moved).unwrap();
        state.forget(&moved);
    }
    assert!(state.card_rows_moved > 0);
    // Started over: every card's row is in memory again, and moves again.
    let (mut again, _) = disbursed(&history, cards);
    again.move_all(&history, now).unwrap();
    assert_eq!((again.log_base, again.log.len()), (2, 0));
    for card in [0, cards - 1] {
        assert_eq!(
            history.card_log(CardId(card), u64::MAX).unwrap().len(),
            1,
            "card {card}"
        );
    }
}

/// The tables a history file had before the sorted runs, written as that version wrote them:
/// purchases by row number with an index by id, and each card's transfers by card and log
/// number, one B-tree insert each.
fn write_as_before(dir: &TempDir, moved: &Moved) {
    use ::redb::{Database, TableDefinition};
    let rows: TableDefinition<u64, &[u8]> = TableDefinition::new("purchase_rows");
    let by_id: TableDefinition<[u8; 16], u64> = TableDefinition::new("purchases_by_id");
    let log: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
    let card_log: TableDefinition<(u64, u64), (u8, [u8; 16])> = TableDefinition::new("card_log");
    let meta: TableDefinition<&str, u64> = TableDefinition::new("meta");
    let db = Database::create(dir.0.join(ssn_ledger::history::HISTORY_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let (mut rows, mut by_id) = (
            txn.open_table(rows).unwrap(),
            txn.open_table(by_id).unwrap(),
        );
        for (n, (id, purchase, _)) in moved.purchases.iter().enumerate() {
            let bytes = postcard::to_stdvec(purchase).unwrap();
            rows.insert(n as u64, bytes.as_slice()).unwrap();
            by_id.insert(id.0, n as u64).unwrap();
        }
        let mut log = txn.open_table(log).unwrap();
        for (n, row) in moved.log.iter().enumerate() {
            let bytes = postcard::to_stdvec(row).unwrap();
            log.insert(n as u64, bytes.as_slice()).unwrap();
        }
        let mut card_log = txn.open_table(card_log).unwrap();
        for (card, row) in &moved.card_log {
            let how = match row.how {
                CardTransfer::Purchase => 0,
                CardTransfer::Credit => 1,
                CardTransfer::Drain => 2,
            };
            card_log
                .insert((card.0, row.index), (how, row.id.0))
                .unwrap();
        }
        let mut meta = txn.open_table(meta).unwrap();
        meta.insert("log_len", moved.log.len() as u64).unwrap();
        meta.insert("purchase_rows_next", moved.purchases.len() as u64)
            .unwrap();
    }
    txn.commit().unwrap();
}

/// A purchase on card `card` at terminal 1, STAN `stan`, accepted at `t0`.
fn purchase(card: u64, stan: u32) -> Entry {
    let key = key(1, stan);
    Entry {
        at_unix_seconds: t0(),
        record: Record::Purchase(PurchaseRecord {
            key: PurchaseKey {
                transmitted: de7_of(t0()),
                ..key
            },
            fingerprint: Fingerprint([0; 32]),
            card: Some(CardId(card)),
            merchant: merchant(),
            amount: rp(10_000),
            day: Day::wita_of_unix_seconds(t0()),
            response: AuthResponse {
                code: ResponseCode::APPROVED,
                rrn: Rrn::new(format!("R{stan:011}")).unwrap(),
                authorization_id: None,
                balance_after: None,
            },
            legs: vec![PocketAmount {
                program: program(),
                amount: rp(10_000),
            }],
            basket: Vec::new(),
        }),
    }
}

/// A history file written before the sorted runs opens and answers what it holds (purchases
/// by id, log rows, each card's transfers); what moves after is added beside it, and a
/// purchase it holds that moves again (pinned, so found by id) is not stored twice.
#[test]
fn a_history_file_from_before_the_runs_still_answers() {
    let dir = TempDir::new("legacy-history");
    let (mut state, _) = disbursed(&Arc::new(History::open(&dir.0).unwrap()), 10);
    state.history = None;
    for stan in 1..=5 {
        state
            .apply_owned(purchase(u64::from(stan) % 3, stan))
            .unwrap();
    }
    let now = t0() + 10 * 86_400;
    let old = state.movable(now, WORKING_SET_PURCHASES_MAX, MOVE_ROWS_MAX, u64::MAX);
    assert_eq!((old.purchases.len(), old.log.len()), (5, 7));
    std::fs::remove_file(dir.0.join(ssn_ledger::history::HISTORY_FILE)).unwrap();
    write_as_before(&dir, &old);
    state.forget(&old);
    let history = History::open(&dir.0).unwrap();
    assert_eq!(history.log_len().unwrap(), 7);
    assert_eq!(history.purchases_held().unwrap(), 5);
    for (id, purchase, _) in &old.purchases {
        assert_eq!(history.purchase(id).unwrap().as_ref(), Some(purchase));
    }
    let log: Vec<LogRow> = history.log(0, 7).unwrap();
    assert_eq!(log, old.log);
    // New purchases move beside the old ones; one old purchase moves again, pinned.
    for stan in 6..=8 {
        state.apply_owned(purchase(1, stan)).unwrap();
    }
    let mut new = state.movable(now, WORKING_SET_PURCHASES_MAX, MOVE_ROWS_MAX, u64::MAX);
    assert_eq!(new.purchases.len(), 3);
    let (id, purchase, _) = old.purchases[0].clone();
    new.purchases.push((id, purchase, None));
    history.store(&new).unwrap();
    assert_eq!(history.purchases_held().unwrap(), 8);
    let card: Vec<(u64, CardTransfer)> = history
        .card_log(CardId(1), u64::MAX)
        .unwrap()
        .iter()
        .map(|row| (row.index, row.how))
        .collect();
    // Its disbursement, its purchase among the old ones (STAN 1 and 4), the three new ones.
    assert_eq!(
        card,
        vec![
            (1, CardTransfer::Credit),
            (2, CardTransfer::Purchase),
            (5, CardTransfer::Purchase),
            (7, CardTransfer::Purchase),
            (8, CardTransfer::Purchase),
            (9, CardTransfer::Purchase),
        ]
    );
    for (id, purchase, _) in old.purchases.iter().chain(&new.purchases) {
        assert_eq!(history.purchase(id).unwrap().as_ref(), Some(purchase));
    }
}

/// A batch close (0500) of terminal `n` at `at`.
fn close(n: u32, at: i64) -> Entry {
    Entry {
        at_unix_seconds: at,
        record: Record::BatchClose {
            terminal: terminal(n),
            batch_number: "000001".into(),
            terminal_totals: BatchTotals::default(),
        },
    }
}

/// The batches closed on a business date leave memory once the date is settled (memory keeps
/// those of dates not settled yet), kept in history in the order they closed, once however
/// often they move; one closed on the date after it left (a terminal whose clock is behind)
/// follows them.
#[test]
fn the_batches_closed_on_a_settled_date_leave_memory() {
    let dir = TempDir::new("closed-on");
    let history = Arc::new(History::open(&dir.0).unwrap());
    let mut state = State {
        history: Some(Arc::clone(&history)),
        ..State::default()
    };
    let date = state.days.date_of(t0());
    for n in [3, 1, 2] {
        state.apply(&close(n, t0())).unwrap();
    }
    state.apply(&close(4, t0() + 86_400)).unwrap();
    let settle = |state: &mut State, date: Day| {
        let lines = state.day_lines(date).0;
        state
            .apply(&Entry {
                at_unix_seconds: t0() + 86_400,
                record: Record::DaySettlement {
                    business_date: date,
                    lines,
                },
            })
            .unwrap();
    };
    settle(&mut state, date);
    let order = state.days.closed_batches[&date].clone();
    let terminals: Vec<TerminalId> = order.iter().map(|(t, _)| t.clone()).collect();
    assert_eq!(terminals, vec![terminal(3), terminal(1), terminal(2)]);
    let now = t0() + 2 * 86_400;
    let moved = state.movable(now, WORKING_SET_PURCHASES_MAX, MOVE_ROWS_MAX, u64::MAX);
    history.store(&moved).unwrap();
    // The snapshot thread's copy moves them again.
    history.store(&moved).unwrap();
    state.forget(&moved);
    assert_eq!(history.closed_on(date).unwrap(), order);
    assert!(!state.days.closed_batches.contains_key(&date));
    let next = Day(date.0 + 1);
    let kept = &state.days.closed_batches[&next];
    assert_eq!((kept.len(), &kept[0].0), (1, &terminal(4)));
    assert!(history.closed_on(next).unwrap().is_empty());
    // A late close dated on the settled date.
    state.apply(&close(5, t0())).unwrap();
    state.move_all(&history, now).unwrap();
    let held = history.closed_on(date).unwrap();
    assert_eq!(held[..3], order[..]);
    assert_eq!((held.len(), &held[3].0), (4, &terminal(5)));
    assert!(!state.days.closed_batches.contains_key(&date));
}
