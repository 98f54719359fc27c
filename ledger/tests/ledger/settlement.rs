//! Settlement with the Bank Penyalur: a business day nets every closed batch per E-Warong and
//! moves the money giro → payable exactly once; the bank's confirmation pays lines out or
//! leaves them payable for the next day's settlement to carry.

use crate::support::*;
use ssn_ledger::*;

async fn approve(world: &World, card: CardId, amount: Money, at: i64, stan: u32) -> PurchaseKey {
    let request = purchase_at(key(1, stan), card, amount, None, at);
    let key = request.key.clone();
    let answer = world.ledger.authorize_purchase(request).await.unwrap();
    assert_eq!(answer.response.code, APPROVED);
    key
}

fn payable(world: &World) -> Money {
    world.ledger.state().balance(&Account::Payable(merchant()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_settles_once_and_rejected_lines_carry_into_the_next() {
    let (world, program, card) = World::with_card(Backend::Embedded, Rules::default()).await;
    let day1 = Day::wita_of_unix_seconds(t0());
    let giro_before = world
        .ledger
        .state()
        .balance(&Account::Giro(program.clone()));

    // Three purchases, one reversed, then the terminal closes its batch (totals as printed).
    let k1 = approve(&world, card, rp(10_000), t0(), 1).await;
    let k2 = approve(&world, card, rp(20_000), t0(), 2).await;
    let _k3 = approve(&world, card, rp(5_000), t0(), 3).await;
    let reversal = ReversalRequest {
        original: k2,
        card: Some(card),
        amount: rp(20_000),
        at_unix_seconds: t0(),
    };
    assert!(matches!(
        world.ledger.reverse_purchase(reversal).await.unwrap(),
        ReversalOutcome::Reversed(_)
    ));
    world
        .ledger
        .close_batch(BatchCloseRequest {
            terminal: terminal(1),
            batch_number: "000001".into(),
            terminal_totals: BatchTotals {
                sales_count: 2,
                sales_amount: rp(15_000),
                reversal_count: 1,
                reversal_amount: rp(20_000),
            },
            at_unix_seconds: t0(),
        })
        .await
        .unwrap();
    // One more purchase opens a batch the terminal never closes.
    let k4 = approve(&world, card, rp(1_000), t0() + 60, 4).await;

    let entries_before = world.ledger.state().entries;
    let settled = world.ledger.settle(day1, t0() + 3600).await.unwrap();
    assert_eq!(
        settled.batches.len(),
        2,
        "the closed batch and the forced one"
    );
    assert_eq!(settled.lines.len(), 1);
    let line = &settled.lines[0];
    assert_eq!(line.merchant, merchant());
    assert_eq!((line.purchase_count, line.purchase_amount), (4, rp(36_000)));
    assert_eq!((line.reversal_count, line.reversal_amount), (1, rp(20_000)));
    assert_eq!(
        line.net,
        vec![PocketAmount {
            program: program.clone(),
            amount: rp(16_000)
        }]
    );
    assert_eq!((line.carried, line.amount), (Money::ZERO, rp(16_000)));
    assert_eq!(payable(&world), rp(16_000));
    assert_eq!(
        world
            .ledger
            .state()
            .balance(&Account::Giro(program.clone())),
        giro_before
            .checked_add(rp(16_000))
            .unwrap()
            .checked_sub(rp(16_000))
            .unwrap()
    );
    // The forced close is marked, with no terminal totals.
    let forced = world.ledger.state().terminals[&terminal(1)]
        .closed
        .last()
        .cloned()
        .unwrap();
    assert_eq!(forced.batch_number, SETTLEMENT_BATCH_NUMBER);
    assert_eq!(forced.switch_totals.sales_amount, rp(1_000));
    // Forced close + settlement: two entries; a second call adds none and answers the same.
    assert_eq!(world.ledger.state().entries, entries_before + 2);
    assert_eq!(
        world.ledger.settle(day1, t0() + 7200).await.unwrap(),
        settled
    );
    assert_eq!(world.ledger.state().entries, entries_before + 2);
    // A settled purchase can no longer be reversed.
    let late = ReversalRequest {
        original: k4,
        card: Some(card),
        amount: rp(1_000),
        at_unix_seconds: t0() + 7200,
    };
    assert_eq!(
        world.ledger.reverse_purchase(late).await.unwrap(),
        ReversalOutcome::Settled
    );
    let _ = k1;

    // The bank: a wrong amount is refused; the line is rejected and stays payable.
    let merchant = merchant();
    assert!(matches!(
        world
            .ledger
            .record_payout(day1, &merchant, rp(15_999), true, "BANK-1", t0() + 9000)
            .await,
        Err(LedgerError::Refused(_))
    ));
    world
        .ledger
        .record_payout(day1, &merchant, rp(16_000), false, "BANK-1", t0() + 9000)
        .await
        .unwrap();
    assert_eq!(payable(&world), rp(16_000));
    // Repeating the same answer is fine; another answer for the same line is a conflict.
    world
        .ledger
        .record_payout(day1, &merchant, rp(16_000), false, "BANK-1", t0() + 9100)
        .await
        .unwrap();
    assert!(matches!(
        world
            .ledger
            .record_payout(day1, &merchant, rp(16_000), true, "BANK-1", t0() + 9100)
            .await,
        Err(LedgerError::Conflict(_))
    ));

    // Next day: one purchase; its settlement carries the rejected line, and paying it empties
    // the payable account.
    let day2_t = t0() + 86_400;
    let day2 = Day::wita_of_unix_seconds(day2_t);
    approve(&world, card, rp(2_000), day2_t, 5).await;
    let second = world.ledger.settle(day2, day2_t + 3600).await.unwrap();
    assert_eq!(second.lines.len(), 1);
    assert_eq!(second.lines[0].carried, rp(16_000));
    assert_eq!(second.lines[0].amount, rp(18_000));
    assert_eq!(payable(&world), rp(18_000));
    world
        .ledger
        .record_payout(day2, &merchant, rp(18_000), true, "BANK-2", day2_t + 7200)
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

    // The journal holds all of it: reopening and verifying give the same books.
    let world = world.reopen().await;
    assert_eq!(world.ledger.settlement(day1).unwrap(), settled);
    assert_eq!(payable(&world), Money::ZERO);
    let report = verify(&world.dir.0).expect("the journal verifies");
    assert!(report.entries > 0);
}

/// Two identical worlds: purchases on two terminals, one batch closed by its terminal, one
/// left open. Returns the world and the card.
async fn day_of_traffic() -> (World, CardId) {
    let (world, _program, card) = World::with_card(Backend::Embedded, Rules::default()).await;
    let first = purchase_at(key(1, 1), card, rp(10_000), None, t0());
    assert_eq!(
        world
            .ledger
            .authorize_purchase(first)
            .await
            .unwrap()
            .response
            .code,
        APPROVED
    );
    world
        .ledger
        .close_batch(BatchCloseRequest {
            terminal: terminal(1),
            batch_number: "000001".into(),
            terminal_totals: BatchTotals::default(),
            at_unix_seconds: t0(),
        })
        .await
        .unwrap();
    let second = purchase_at(key(2, 2), card, rp(7_000), None, t0());
    assert_eq!(
        world
            .ledger
            .authorize_purchase(second)
            .await
            .unwrap()
            .response
            .code,
        APPROVED
    );
    (world, card)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_that_died_between_its_steps_finishes_the_same_and_moves_money_once() {
    let day1 = Day::wita_of_unix_seconds(t0());
    let settle_at = t0() + 3600;

    // The reference: a run that was never interrupted.
    let (reference, _) = day_of_traffic().await;
    let expected = reference.ledger.settle(day1, settle_at).await.unwrap();

    // The crash: the process dies after the first step (the open batch closed by the
    // settlement, durable in the journal) and before the settlement record.
    let (world, _) = day_of_traffic().await;
    world
        .ledger
        .close_batch(BatchCloseRequest {
            terminal: terminal(2),
            batch_number: SETTLEMENT_BATCH_NUMBER.into(),
            terminal_totals: BatchTotals::default(),
            at_unix_seconds: settle_at,
        })
        .await
        .unwrap();
    let world = world.reopen().await;
    assert!(world.ledger.settlement(day1).is_none());
    let rerun = world.ledger.settle(day1, settle_at).await.unwrap();
    assert_eq!(rerun.batches, expected.batches);
    assert_eq!(rerun.lines, expected.lines);
    assert_eq!(rerun.at_unix_seconds, expected.at_unix_seconds);
    assert_eq!(payable(&world), rp(17_000));

    // A crash after the settlement record: the rerun answers it and moves nothing.
    let entries = world.ledger.state().entries;
    let world = world.reopen().await;
    assert_eq!(
        world.ledger.settle(day1, settle_at + 60).await.unwrap(),
        rerun
    );
    assert_eq!(world.ledger.state().entries, entries);
    assert_eq!(payable(&world), rp(17_000));
    world.assert_consistent().await;
    verify(&world.dir.0).expect("the journal verifies");
}
