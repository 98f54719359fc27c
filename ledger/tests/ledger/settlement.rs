//! Settlement with the Bank Penyalur by business date: a date moves exactly its own approved
//! purchases net of their reversals, whenever it is settled and in any order, exactly once; a
//! reversal after its date was settled is an adjustment of the next date not settled; terminal
//! batches are the terminals' own and no settlement closes one; the bank's confirmation pays
//! lines out or leaves them payable for the next settlement to carry.

use crate::support::*;
use ssn_ledger::*;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// The cut-over of these tests: a business day ends at 22:00 WITA.
const CUTOVER: u32 = 22 * 3600;

async fn approve(world: &World, card: CardId, amount: Money, at: i64, stan: u32) -> PurchaseKey {
    let request = purchase_at(key(1, stan), card, amount, None, at);
    let key = request.key.clone();
    let answer = world.ledger.authorize_purchase(request).await.unwrap();
    assert_eq!(answer.response.code, APPROVED);
    key
}

async fn reverse(world: &World, card: CardId, original: PurchaseKey, amount: Money, at: i64) {
    let reversal = ReversalRequest {
        original,
        card: Some(card),
        amount,
        at_unix_seconds: at,
    };
    assert!(matches!(
        world.ledger.reverse_purchase(reversal).await.unwrap(),
        ReversalOutcome::Reversed(_)
    ));
}

fn payable(world: &World) -> Money {
    world.ledger.state().balance(&Account::Payable(merchant()))
}

/// The one line of a settlement (one E-Warong in these tests).
fn line(settlement: &SettlementOutcome) -> DayLine {
    assert_eq!(settlement.lines.len(), 1, "{settlement:?}");
    settlement.lines[0].clone()
}

/// A world with the 22:00 cut-over in force from two days before [`t0`] (D = 2025-10-15,
/// `t0` is its 10:00 WITA).
async fn world_with_cutover() -> (World, ProgramCode, CardId) {
    let (world, program, card) = World::with_card(Backend::Embedded, Rules::default()).await;
    world
        .ledger
        .keep_settlement_cutover(CUTOVER, t0() - 2 * DAY)
        .await
        .unwrap();
    // The same cut-over again journals nothing.
    let entries = world.ledger.state().entries;
    world
        .ledger
        .keep_settlement_cutover(CUTOVER, t0() - DAY)
        .await
        .unwrap();
    assert_eq!(world.ledger.state().entries, entries);
    (world, program, card)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_date_moves_exactly_its_purchases_late_out_of_order_and_once() {
    let (world, program, card) = world_with_cutover().await;
    let d = day("2025-10-15");
    let d1 = day("2025-10-16");
    let d2 = day("2025-10-17");
    assert_eq!(world.ledger.business_date_of(t0() + 12 * HOUR), d1);

    // D: two purchases before its 22:00 cut-over; one after it and one the next morning are D+1's.
    let k1 = approve(&world, card, rp(10_000), t0(), 1).await;
    approve(&world, card, rp(20_000), t0() + 11 * HOUR, 2).await;
    approve(&world, card, rp(5_000), t0() + 12 * HOUR + 30 * 60, 3).await;
    approve(&world, card, rp(7_000), t0() + DAY - HOUR, 4).await;

    // D+1 cannot be settled the next morning: its cut-over (22:00) has not passed.
    assert!(matches!(
        world.ledger.settle(d1, t0() + DAY).await,
        Err(LedgerError::Refused(_))
    ));
    // D+1 settled first (after its cut-over), then D, late, two days after: each its own.
    let second = world
        .ledger
        .settle(d1, t0() + 2 * DAY - HOUR)
        .await
        .unwrap();
    let late = t0() + 2 * DAY;
    let first = world.ledger.settle(d, late).await.unwrap();
    let l1 = line(&first);
    assert_eq!((l1.purchase_count, l1.purchase_amount), (2, rp(30_000)));
    assert_eq!((l1.reversal_count, l1.adjustment_count), (0, 0));
    assert_eq!(l1.amount, rp(30_000));
    assert_eq!(
        l1.net,
        vec![PocketAmount {
            program: program.clone(),
            amount: rp(30_000)
        }]
    );
    let l2 = line(&second);
    assert_eq!((l2.purchase_count, l2.purchase_amount), (2, rp(12_000)));
    assert_eq!(payable(&world), rp(42_000));
    assert!(first.batches.is_empty() && second.batches.is_empty());

    // Idempotent: a second call answers the first settlement and journals nothing.
    let entries = world.ledger.state().entries;
    assert_eq!(world.ledger.settle(d, late + HOUR).await.unwrap(), first);
    assert_eq!(world.ledger.state().entries, entries);

    // No batch was closed by settlement: the terminal's 0500 that evening is answered
    // against its whole batch, which still holds all four purchases.
    let closed = world
        .ledger
        .close_batch(BatchCloseRequest {
            terminal: terminal(1),
            batch_number: "000001".into(),
            terminal_totals: BatchTotals {
                sales_count: 4,
                sales_amount: rp(42_000),
                reversal_count: 0,
                reversal_amount: Money::ZERO,
            },
            at_unix_seconds: late + 8 * HOUR,
        })
        .await
        .unwrap();
    assert!(closed.matched, "{closed:?}");
    assert_eq!(closed.batch.switch_totals.sales_count, 4);
    let _ = k1;

    world.assert_consistent().await;
    let state_before = snapshot::encode_core(&world.ledger.state());
    let world = world.reopen().await;
    assert_eq!(world.ledger.settlement(d).unwrap(), first);
    assert_eq!(world.ledger.settlement(d1).unwrap(), second);
    assert_eq!(snapshot::encode_core(&world.ledger.state()), state_before);
    assert!(world.ledger.settlement(d2).is_none());
    verify(&world.dir.0).expect("the journal verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversal_after_its_date_was_settled_is_an_adjustment_of_the_next_date() {
    let (world, program, card) = world_with_cutover().await;
    let d = day("2025-10-15");
    let k1 = approve(&world, card, rp(10_000), t0(), 1).await;
    let k2 = approve(&world, card, rp(4_000), t0() + HOUR, 2).await;
    // Reversed before D is settled: a reversal on D.
    reverse(&world, card, k2, rp(4_000), t0() + 2 * HOUR).await;
    let first = world.ledger.settle(d, t0() + DAY).await.unwrap();
    let l = line(&first);
    assert_eq!((l.purchase_count, l.purchase_amount), (2, rp(14_000)));
    assert_eq!((l.reversal_count, l.reversal_amount), (1, rp(4_000)));
    assert_eq!(l.amount, rp(10_000));

    // The next morning the terminal reverses D's first purchase (its batch is still open).
    // Every funded rupiah was disbursed: the giro account is short by the adjustment until
    // it is settled, and the journal still verifies.
    reverse(&world, card, k1, rp(10_000), t0() + DAY + HOUR).await;
    let giro = Account::Giro(program.clone());
    assert_eq!(world.ledger.state().balance(&giro), rp(-10_000));
    verify(&world.dir.0).expect("a giro account short by an adjustment verifies");
    // D+1's only sale is smaller than the adjustment: D+1's line cannot take it back (the
    // bank never pays a negative amount), so it waits for D+2.
    approve(&world, card, rp(3_000), t0() + DAY + 2 * HOUR, 3).await;
    let d1 = world
        .ledger
        .settle(day("2025-10-16"), t0() + 2 * DAY)
        .await
        .unwrap();
    let l = line(&d1);
    assert_eq!((l.purchase_count, l.adjustment_count), (1, 0));
    assert_eq!(l.amount, rp(3_000));
    // D+2: a sale of 25,000 nets the adjustment of 10,000.
    approve(&world, card, rp(25_000), t0() + 2 * DAY + HOUR, 4).await;
    let d2 = world
        .ledger
        .settle(day("2025-10-17"), t0() + 3 * DAY)
        .await
        .unwrap();
    let l = line(&d2);
    assert_eq!((l.purchase_count, l.purchase_amount), (1, rp(25_000)));
    assert_eq!((l.reversal_count, l.reversal_amount), (0, Money::ZERO));
    assert_eq!((l.adjustment_count, l.adjustment_amount), (1, rp(10_000)));
    assert_eq!(
        l.net,
        vec![PocketAmount {
            program: program.clone(),
            amount: rp(15_000)
        }]
    );
    assert_eq!(l.amount, rp(15_000));
    // Every rupiah owed once: 10,000 + 3,000 + 15,000 = the 28,000 spent and not reversed.
    assert_eq!(payable(&world), rp(28_000));
    world.assert_consistent().await;

    let world = world.reopen().await;
    assert_eq!(world.ledger.settlement(day("2025-10-17")).unwrap(), d2);
    verify(&world.dir.0).expect("the journal verifies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_line_stays_payable_and_joins_the_next_settlement() {
    let (world, _program, card) = world_with_cutover().await;
    let d = day("2025-10-15");
    approve(&world, card, rp(16_000), t0(), 1).await;
    world.ledger.settle(d, t0() + DAY).await.unwrap();
    let merchant = merchant();
    // A wrong amount is refused; the line is rejected and stays payable.
    assert!(matches!(
        world
            .ledger
            .record_payout(d, &merchant, rp(15_999), true, "BANK-1", t0() + DAY)
            .await,
        Err(LedgerError::Refused(_))
    ));
    world
        .ledger
        .record_payout(d, &merchant, rp(16_000), false, "BANK-1", t0() + DAY)
        .await
        .unwrap();
    assert_eq!(payable(&world), rp(16_000));
    // The same answer again is fine; another answer for the same line is a conflict.
    world
        .ledger
        .record_payout(d, &merchant, rp(16_000), false, "BANK-1", t0() + DAY + 60)
        .await
        .unwrap();
    assert!(matches!(
        world
            .ledger
            .record_payout(d, &merchant, rp(16_000), true, "BANK-1", t0() + DAY + 60)
            .await,
        Err(LedgerError::Conflict(_))
    ));
    // The next date: one purchase; its line carries the rejected amount, paid once.
    let d1 = day("2025-10-16");
    approve(&world, card, rp(2_000), t0() + DAY + HOUR, 2).await;
    let second = world.ledger.settle(d1, t0() + 2 * DAY).await.unwrap();
    let l = line(&second);
    assert_eq!((l.carried, l.amount), (rp(16_000), rp(18_000)));
    assert_eq!(payable(&world), rp(18_000));
    world
        .ledger
        .record_payout(d1, &merchant, rp(18_000), true, "BANK-2", t0() + 2 * DAY)
        .await
        .unwrap();
    assert_eq!(payable(&world), Money::ZERO);
    assert_eq!(
        world
            .ledger
            .state()
            .balance(&Account::PaidOut(merchant.clone())),
        rp(18_000)
    );
    assert!(world.ledger.state().carried.is_empty());
    world.assert_consistent().await;
    verify(&world.dir.0).expect("the journal verifies");
}

/// Journals written before settlement by date hold batch settlements (`Record::Settlement`,
/// with forced batch closes): they replay with their old meaning, and what they settled is
/// never settled again by date. Once a date is settled by date, a batch settlement is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_settlements_of_old_journals_replay_and_count_once() {
    let (world, _program, card) = World::with_card(Backend::Embedded, Rules::default()).await;
    let d = day("2025-10-15");
    // No cut-over journaled: midnight. D's purchases at 10:00 and 23:00 on terminal 1.
    approve(&world, card, rp(10_000), t0(), 1).await;
    approve(&world, card, rp(2_000), t0() + 13 * HOUR, 2).await;
    let late = purchase_at(key(2, 3), card, rp(5_000), None, t0() + DAY);
    assert_eq!(
        world
            .ledger
            .authorize_purchase(late)
            .await
            .unwrap()
            .response
            .code,
        APPROVED
    );
    let World { ledger, dir, .. } = world;
    drop(ledger);
    let mut entries = Vec::new();
    let mut journal = FileJournal::open(&dir.0.join("journal.log")).unwrap();
    journal
        .replay(&mut |entry, _| {
            entries.push(entry.decode().unwrap());
            Ok(())
        })
        .unwrap();
    let (before, after) = entries.split_at(entries.len() - 1);

    // As the switch settled D before: every open batch closed, then the closed ones settled.
    let mut state = State::default();
    for entry in before {
        state.apply(entry).unwrap();
    }
    let at = t0() + DAY - HOUR;
    state
        .apply(&Entry {
            at_unix_seconds: at,
            record: Record::BatchClose {
                terminal: terminal(1),
                batch_number: SETTLEMENT_BATCH_NUMBER.into(),
                terminal_totals: BatchTotals::default(),
            },
        })
        .unwrap();
    let batches = state.unsettled_batches();
    let lines = state.settlement_lines(&batches);
    assert_eq!(lines[0].amount, rp(12_000));
    state
        .apply(&Entry {
            at_unix_seconds: at,
            record: Record::Settlement {
                business_date: d,
                batches,
                lines,
            },
        })
        .unwrap();
    assert_eq!(state.balance(&Account::Payable(merchant())), rp(12_000));
    // D is settled, nothing of it is left to settle by date.
    assert!(state.is_settled(d));
    assert!(!state.days.unsettled.contains_key(&d), "{:?}", state.days);
    for entry in after {
        state.apply(entry).unwrap();
    }
    // D+1 holds only its own purchase; settled by date it moves 5,000.
    let d1 = day("2025-10-16");
    let (lines, _) = state.day_lines(d1);
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].purchase_count, lines[0].amount), (1, rp(5_000)));
    state
        .apply(&Entry {
            at_unix_seconds: t0() + 2 * DAY,
            record: Record::DaySettlement {
                business_date: d1,
                lines,
            },
        })
        .unwrap();
    assert_eq!(state.balance(&Account::Payable(merchant())), rp(17_000));
    // A snapshot of it reads back the same business-date book.
    let bytes = snapshot::encode_state(&state);
    let read = snapshot::decode_state(&bytes).unwrap();
    assert_eq!(read.days, state.days);
    assert_eq!(snapshot::encode_state(&read), bytes);
    // No batch settlement after one by date.
    let refused = state.apply(&Entry {
        at_unix_seconds: t0() + 2 * DAY,
        record: Record::Settlement {
            business_date: day("2025-10-17"),
            batches: Vec::new(),
            lines: Vec::new(),
        },
    });
    assert!(
        matches!(refused, Err(InvariantError::SettlementMismatch(_))),
        "{refused:?}"
    );
}
