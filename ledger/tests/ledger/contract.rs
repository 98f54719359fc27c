//! The contract every balance backend must meet, run unchanged against each.

use crate::support::*;
use ssn_ledger::*;
use std::sync::Arc;

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Backend::Embedded).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Backend::Redis).await;
                }
            )*
        }
        mod scylla {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Backend::Scylla).await;
                }
            )*
        }
    };
}

contract!(
    a_retried_purchase_gets_the_original_answer_and_moves_money_once,
    same_key_with_other_content_is_a_conflict,
    declines_are_remembered_across_restarts,
    disbursement_is_all_or_nothing_and_idempotent,
    funding_is_idempotent_on_its_reference,
    one_purchase_spends_several_pockets_earliest_expiry_first,
    the_basket_decides_which_pockets_pay,
    expired_pockets_are_never_spent,
    per_purchase_and_daily_limits_hold,
    concurrent_debits_of_one_card_never_overdraw,
    a_reversal_returns_the_money_exactly_once,
    a_reversal_before_its_original_leaves_a_tombstone,
    replacement_moves_every_rupiah,
    batches_close_on_the_journal_totals,
    reopening_rebuilds_the_same_balances,
    a_program_close_returns_expired_pockets_once,
    the_host_keys_are_recorded_once,
    a_revocation_stops_spending_and_returns_the_pocket_once,
);

/// A revoked enrolment (the Mayor's decree for one person): from then on the program's pocket
/// pays nothing — the purchase carries the holder's enrolments — and the revocation returns
/// what it holds to the program's giro account once, across a restart.
async fn a_revocation_stops_spending_and_returns_the_pocket_once(backend: Backend) {
    let (world, program, card) = World::with_card(backend, Rules::default()).await;
    let holder = world
        .ledger
        .registry()
        .beneficiary(&format!("SSN{:08}", card.0))
        .await
        .unwrap()
        .unwrap();
    let enrolled = Enrolments(Arc::new(holder.clone()));
    let revoked = Enrolments(Arc::new(Beneficiary {
        enrolments: Vec::new(),
        ..holder
    }));
    let with = |enrolments: &Enrolments| PurchaseRequest {
        enrolments: Some(enrolments.clone()),
        ..world.purchase(card, rp(1_000), None)
    };
    let paid = world
        .ledger
        .authorize_purchase(with(&enrolled))
        .await
        .unwrap();
    assert_eq!(paid.response.code, APPROVED);
    let refused = world
        .ledger
        .authorize_purchase(with(&revoked))
        .await
        .unwrap();
    assert_eq!(refused.response.code, ResponseCode::NOT_PERMITTED);
    let left = world.pocket(card, &program).await;
    assert!(left.is_positive());
    let giro = || {
        world
            .ledger
            .state()
            .balance(&Account::Giro(program.clone()))
    };
    let giro_before = giro();
    let reference = format!("188.45/2026:SSN{:08}", card.0);
    let revocation = world
        .ledger
        .revoke_pockets(&program, &reference, &[card], t0() + 60)
        .await
        .unwrap();
    assert!(revocation.created);
    assert_eq!(revocation.returns, vec![(card, left)]);
    assert_eq!(world.pocket(card, &program).await, Money::ZERO);
    assert_eq!(giro(), giro_before.checked_add(left).unwrap());
    // Once: a repeat answers the first and moves nothing.
    let again = world
        .ledger
        .revoke_pockets(&program, &reference, &[card], t0() + 120)
        .await
        .unwrap();
    assert_eq!(
        again,
        RevocationOutcome {
            created: false,
            ..revocation.clone()
        }
    );
    assert_eq!(giro(), giro_before.checked_add(left).unwrap());
    world.assert_consistent().await;
    let world = world.reopen().await;
    assert_eq!(world.pocket(card, &program).await, Money::ZERO);
    assert_eq!(
        world
            .ledger
            .revocation(&program, &reference)
            .unwrap()
            .map(|r| r.returns),
        Some(revocation.returns)
    );
    world.assert_consistent().await;
}

/// The registry records the host's keys once: the first record stays, a second is a conflict
/// (two nodes starting at once: the one that lost reads the winner's), and it survives a
/// restart.
async fn the_host_keys_are_recorded_once(backend: Backend) {
    let world = World::new(backend).await;
    let keys = |check: &str| HostKeys {
        master_key_check: check.into(),
        pvk: EncryptedKey {
            ciphertext: vec![1, 2, 3],
            kcv: "ABCDEF".into(),
        },
    };
    assert_eq!(world.ledger.registry().host_keys().await.unwrap(), None);
    let record = |k: HostKeys| vec![RegistryOp::Insert(RegistryRecord::HostKeys(k))];
    world
        .ledger
        .registry()
        .apply(record(keys("111111")))
        .await
        .unwrap();
    let second = world.ledger.registry().apply(record(keys("222222"))).await;
    assert!(
        matches!(second, Err(RegistryError::Conflict(_))),
        "{second:?}"
    );
    let world = world.reopen().await;
    assert_eq!(
        world.ledger.registry().host_keys().await.unwrap(),
        Some(keys("111111"))
    );
}

async fn a_retried_purchase_gets_the_original_answer_and_moves_money_once(backend: Backend) {
    let mut world = World::new(backend).await;
    let program = world.program("SSN2025", Rules::default()).await;
    let card = world.card(&[&program]).await;
    world.fund(&program, rp(1_000_000)).await;
    world.disburse(&program, "2025-10").await;

    let request = world.purchase(card, rp(50_000), Some(&["01"]));
    let first = world
        .ledger
        .authorize_purchase(request.clone())
        .await
        .unwrap();
    assert_eq!(first.response.code, APPROVED);
    assert!(!first.duplicate);
    assert_eq!(first.response.balance_after, Some(rp(250_000)));

    // A retry carries the switch's fresh RRN and authorization id; it must get the first ones.
    let mut retry = request.clone();
    retry.rrn = Rrn::new("999999999999").unwrap();
    retry.authorization_id = AuthorizationId::new("ZZZZZZ").unwrap();
    let second = world
        .ledger
        .authorize_purchase(retry.clone())
        .await
        .unwrap();
    assert!(second.duplicate);
    assert_eq!(second.response, first.response);
    assert_eq!(world.pocket(card, &program).await, rp(250_000));
    assert_eq!(
        world
            .ledger
            .lookup_purchase(&request.key, &request.fingerprint)
            .await,
        PurchaseLookup::Duplicate(first.response.clone())
    );

    let world = world.reopen().await;
    let third = world.ledger.authorize_purchase(retry).await.unwrap();
    assert_eq!(
        third.response, first.response,
        "the same bytes after a restart"
    );
    assert_eq!(world.pocket(card, &program).await, rp(250_000));
    world.assert_consistent().await;
}

async fn same_key_with_other_content_is_a_conflict(backend: Backend) {
    let (world, program, card) = World::with_card(backend, Rules::default()).await;

    let request = world.purchase(card, rp(10_000), None);
    world
        .ledger
        .authorize_purchase(request.clone())
        .await
        .unwrap();
    let mut other = purchase_at(request.key.clone(), card, rp(20_000), None, t0());
    other.rrn = request.rrn.clone();
    let refused = world.ledger.authorize_purchase(other.clone()).await;
    assert!(
        matches!(refused, Err(LedgerError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(
        world
            .ledger
            .lookup_purchase(&other.key, &other.fingerprint)
            .await,
        PurchaseLookup::Conflict
    );
    assert_eq!(world.pocket(card, &program).await, rp(290_000));
    world.assert_consistent().await;
}

async fn declines_are_remembered_across_restarts(backend: Backend) {
    let (world, program, card) = World::with_card(backend, Rules::default()).await;

    let too_much = world.purchase(card, rp(400_000), None);
    let declined = world
        .ledger
        .authorize_purchase(too_much.clone())
        .await
        .unwrap();
    assert_eq!(declined.response.code, ResponseCode::INSUFFICIENT_FUNDS);
    assert_eq!(declined.response.authorization_id, None);

    let wrong_pin_key = key(1, 900);
    let wrong_pin = DeclineRequest {
        key: wrong_pin_key.clone(),
        fingerprint: Fingerprint::of(&"wrong pin attempt"),
        card: Some(card),
        merchant: merchant(),
        amount: rp(1_000),
        code: ResponseCode::new("55").unwrap(),
        rrn: Rrn::new("000000000055").unwrap(),
        at_unix_seconds: t0(),
    };
    world
        .ledger
        .record_decline(wrong_pin.clone())
        .await
        .unwrap();

    let world = world.reopen().await;
    let mut retry = too_much.clone();
    retry.rrn = Rrn::new("111111111111").unwrap();
    let again = world.ledger.authorize_purchase(retry).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.response, declined.response);
    let lookup = world
        .ledger
        .lookup_purchase(&wrong_pin_key, &wrong_pin.fingerprint)
        .await;
    assert!(
        matches!(lookup, PurchaseLookup::Duplicate(ref r) if r.code.as_str() == "55" && r.rrn.as_str() == "000000000055"),
        "{lookup:?}"
    );
    assert_eq!(world.pocket(card, &program).await, rp(300_000));
    // Declines do not count against the daily limit: only approvals do.
    assert_eq!(world.ledger.state().cards[&card].purchases_today, 0);
    world.assert_consistent().await;
}

async fn disbursement_is_all_or_nothing_and_idempotent(backend: Backend) {
    let mut world = World::new(backend).await;
    let program = world.program("SSN2025", Rules::default()).await;
    let cards = [
        world.card(&[&program]).await,
        world.card(&[&program]).await,
        world.card(&[&program]).await,
    ];
    // Enough for two cards, not three: nobody gets anything.
    world.fund(&program, rp(600_000)).await;
    let refused = world.ledger.disburse(&program, "2025-10", t0()).await;
    assert!(
        matches!(refused, Err(LedgerError::Refused(_))),
        "{refused:?}"
    );
    for card in cards {
        assert_eq!(world.pocket(card, &program).await, Money::ZERO);
    }
    assert_eq!(
        world
            .ledger
            .state()
            .balance(&Account::Giro(program.clone())),
        rp(600_000)
    );

    world.fund(&program, rp(300_000)).await;
    let done = world.disburse(&program, "2025-10").await;
    assert_eq!((done.cards, done.total), (3, rp(900_000)));
    let again = world.disburse(&program, "2025-10").await;
    assert_eq!(again, done);
    for card in cards {
        assert_eq!(world.pocket(card, &program).await, rp(300_000));
    }
    assert_eq!(
        world
            .ledger
            .state()
            .balance(&Account::Giro(program.clone())),
        Money::ZERO
    );
    world.assert_consistent().await;
}

async fn funding_is_idempotent_on_its_reference(backend: Backend) {
    let world = World::new(backend).await;
    let program = world.program("SSN2025", Rules::default()).await;
    let first = world
        .ledger
        .fund_program(&program, rp(1_000), "SP2D-001", t0())
        .await
        .unwrap();
    let again = world
        .ledger
        .fund_program(&program, rp(1_000), "SP2D-001", t0())
        .await
        .unwrap();
    assert_eq!(first, again);
    let other = world
        .ledger
        .fund_program(&program, rp(2_000), "SP2D-001", t0())
        .await;
    assert!(matches!(other, Err(LedgerError::Conflict(_))), "{other:?}");
    assert_eq!(
        world
            .ledger
            .state()
            .balance(&Account::Giro(program.clone())),
        rp(1_000)
    );
    assert_eq!(
        world.ledger.state().balance(&Account::FundingSource),
        rp(-1_000)
    );
}

async fn one_purchase_spends_several_pockets_earliest_expiry_first(backend: Backend) {
    let (world, [late, early], card) = World::with_pockets(
        backend,
        [
            (
                "LATE",
                Rules {
                    expires: day("2025-12-31"),
                    ..Rules::default()
                },
            ),
            (
                "EARLY",
                Rules {
                    benefit: rp(100_000),
                    expires: day("2025-11-30"),
                    ..Rules::default()
                },
            ),
        ],
    )
    .await;

    let paid = world
        .ledger
        .authorize_purchase(world.purchase(card, rp(150_000), Some(&["01"])))
        .await
        .unwrap();
    assert_eq!(paid.response.code, APPROVED);
    assert_eq!(
        paid.legs,
        vec![
            PocketAmount {
                program: early.clone(),
                amount: rp(100_000)
            },
            PocketAmount {
                program: late.clone(),
                amount: rp(50_000)
            }
        ]
    );
    assert_eq!(paid.response.balance_after, Some(rp(250_000)));
    assert_eq!(world.pocket(card, &early).await, Money::ZERO);
    assert_eq!(world.pocket(card, &late).await, rp(250_000));
    // More than both pockets hold: declined whole, nothing moves.
    let declined = world
        .ledger
        .authorize_purchase(world.purchase(card, rp(250_001), None))
        .await
        .unwrap();
    assert_eq!(declined.response.code, ResponseCode::INSUFFICIENT_FUNDS);
    // With what the card could spend on this basket, for the shop to try again with less.
    assert_eq!(declined.response.balance_after, Some(rp(250_000)));
    assert_eq!(world.pocket(card, &late).await, rp(250_000));
    world.assert_consistent().await;
}

async fn the_basket_decides_which_pockets_pay(backend: Backend) {
    let (world, [food, wide], card) = World::with_pockets(
        backend,
        [
            (
                "FOOD",
                Rules {
                    categories: &["01", "02"],
                    basket_required: true,
                    expires: day("2025-11-30"),
                    ..Rules::default()
                },
            ),
            (
                "WIDE",
                Rules {
                    categories: &["01", "02", "05"],
                    ..Rules::default()
                },
            ),
        ],
    )
    .await;

    // Vegetables: only WIDE allows them, although FOOD expires first.
    let vegetables = world
        .ledger
        .authorize_purchase(world.purchase(card, rp(20_000), Some(&["01", "05"])))
        .await
        .unwrap();
    assert_eq!(vegetables.response.code, APPROVED);
    // The journal keeps the basket, item by item, for the reports.
    let journaled: Vec<(String, Money)> = world
        .ledger
        .state()
        .purchases
        .values()
        .find(|p| p.record.amount == rp(20_000))
        .map(|p| {
            p.record
                .basket
                .iter()
                .map(|item| (item.category.clone(), item.amount))
                .collect()
        })
        .unwrap();
    assert_eq!(
        journaled,
        vec![
            ("01".to_string(), rp(10_000)),
            ("05".to_string(), rp(10_000))
        ]
    );
    assert_eq!(
        vegetables.legs,
        vec![PocketAmount {
            program: wide.clone(),
            amount: rp(20_000)
        }]
    );
    // No basket: FOOD requires one, so only WIDE pays.
    let no_basket = world
        .ledger
        .authorize_purchase(world.purchase(card, rp(10_000), None))
        .await
        .unwrap();
    assert_eq!(
        no_basket.legs,
        vec![PocketAmount {
            program: wide.clone(),
            amount: rp(10_000)
        }]
    );
    // Cigarettes: no program allows them.
    let cigarettes = world
        .ledger
        .authorize_purchase(world.purchase(card, rp(10_000), Some(&["91"])))
        .await
        .unwrap();
    assert_eq!(cigarettes.response.code, ResponseCode::NOT_PERMITTED);
    // Rice: FOOD first (earlier expiry).
    let rice = world
        .ledger
        .authorize_purchase(world.purchase(card, rp(5_000), Some(&["01"])))
        .await
        .unwrap();
    assert_eq!(
        rice.legs,
        vec![PocketAmount {
            program: food.clone(),
            amount: rp(5_000)
        }]
    );
    assert_eq!(world.pocket(card, &food).await, rp(295_000));
    assert_eq!(world.pocket(card, &wide).await, rp(270_000));
    world.assert_consistent().await;
}

async fn expired_pockets_are_never_spent(backend: Backend) {
    let (world, [old, current], card) = World::with_pockets(
        backend,
        [
            (
                "OLD",
                Rules {
                    expires: day("2025-10-14"),
                    ..Rules::default()
                },
            ),
            (
                "NOW",
                Rules {
                    benefit: rp(50_000),
                    expires: day("2025-12-31"),
                    ..Rules::default()
                },
            ),
        ],
    )
    .await;

    // The expired pocket is not spendable and does not count in the balance.
    assert_eq!(world.spendable(card).await, rp(50_000));
    let declined = world
        .ledger
        .authorize_purchase(world.purchase(card, rp(60_000), None))
        .await
        .unwrap();
    assert_eq!(declined.response.code, ResponseCode::INSUFFICIENT_FUNDS);
    let paid = world
        .ledger
        .authorize_purchase(world.purchase(card, rp(50_000), None))
        .await
        .unwrap();
    assert_eq!(
        paid.legs,
        vec![PocketAmount {
            program: current.clone(),
            amount: rp(50_000)
        }]
    );
    assert_eq!(paid.response.balance_after, Some(Money::ZERO));
    assert_eq!(world.pocket(card, &old).await, rp(300_000));
    // On its last day a pocket is still spendable.
    let last_day = i64::from(day("2025-10-14").0) * 86_400 - WITA_OFFSET_SECONDS + 23 * 3600;
    let on_last_day = world
        .ledger
        .authorize_purchase(purchase_at(key(2, 1), card, rp(1_000), None, last_day))
        .await
        .unwrap();
    assert_eq!(
        on_last_day.legs,
        vec![PocketAmount {
            program: old.clone(),
            amount: rp(1_000)
        }]
    );
    world.assert_consistent().await;
}

async fn per_purchase_and_daily_limits_hold(backend: Backend) {
    let mut world = World::new(backend).await;
    let program = world
        .program(
            "SSN2025",
            Rules {
                purchase_max: rp(100_000),
                per_day_max: 2,
                ..Rules::default()
            },
        )
        .await;
    let card = world.card(&[&program]).await;
    world.fund(&program, rp(300_000)).await;
    world.disburse(&program, "2025-10").await;

    let above = world
        .ledger
        .authorize_purchase(world.purchase(card, rp(100_001), None))
        .await
        .unwrap();
    assert_eq!(above.response.code, ResponseCode::EXCEEDS_AMOUNT_LIMIT);
    let first = world
        .ledger
        .authorize_purchase(world.purchase(card, rp(10_000), None))
        .await
        .unwrap();
    assert_eq!(first.response.code, APPROVED);
    // A reversed purchase still counts.
    let original = world
        .ledger
        .state()
        .purchases
        .values()
        .find(|p| p.record.response.code == APPROVED)
        .unwrap()
        .record
        .key
        .clone();
    let reversal = ReversalRequest {
        original,
        card: Some(card),
        amount: rp(10_000),
        at_unix_seconds: t0(),
    };
    assert!(matches!(
        world.ledger.reverse_purchase(reversal).await.unwrap(),
        ReversalOutcome::Reversed(_)
    ));
    let second = world
        .ledger
        .authorize_purchase(world.purchase(card, rp(10_000), None))
        .await
        .unwrap();
    assert_eq!(second.response.code, APPROVED);
    let third = world
        .ledger
        .authorize_purchase(world.purchase(card, rp(10_000), None))
        .await
        .unwrap();
    assert_eq!(third.response.code, ResponseCode::EXCEEDS_FREQUENCY_LIMIT);
    // The WITA day turns at 16:00 UTC: 23:59:59 WITA is still today, midnight is tomorrow.
    let midnight = i64::from(day("2025-10-16").0) * 86_400 - WITA_OFFSET_SECONDS;
    let late = world
        .ledger
        .authorize_purchase(purchase_at(
            key(1, 800),
            card,
            rp(1_000),
            None,
            midnight - 1,
        ))
        .await
        .unwrap();
    assert_eq!(late.response.code, ResponseCode::EXCEEDS_FREQUENCY_LIMIT);
    let tomorrow = world
        .ledger
        .authorize_purchase(purchase_at(key(1, 801), card, rp(1_000), None, midnight))
        .await
        .unwrap();
    assert_eq!(tomorrow.response.code, APPROVED);
    assert_eq!(world.pocket(card, &program).await, rp(289_000));
    world.assert_consistent().await;
}

async fn concurrent_debits_of_one_card_never_overdraw(backend: Backend) {
    let mut world = World::new(backend).await;
    let program = world
        .program(
            "SSN2025",
            Rules {
                per_day_max: 10_000,
                ..Rules::default()
            },
        )
        .await;
    let card = world.card(&[&program]).await;
    world.fund(&program, rp(300_000)).await;
    world.disburse(&program, "2025-10").await;

    // 300 tasks each try Rp 3.000 (some for two pockets' worth of the same card) against
    // Rp 300.000: exactly 100 can be approved.
    let world = Arc::new(world);
    let tasks: Vec<_> = (0..300u32)
        .map(|n| {
            let world = Arc::clone(&world);
            tokio::spawn(async move {
                let request = purchase_at(key(100 + n % 7, n + 1), card, rp(3_000), None, t0());
                world
                    .ledger
                    .authorize_purchase(request)
                    .await
                    .unwrap()
                    .response
                    .code
            })
        })
        .collect();
    let mut approved = 0;
    for task in tasks {
        let code = task.await.unwrap();
        if code == APPROVED {
            approved += 1;
        } else {
            assert_eq!(code, ResponseCode::INSUFFICIENT_FUNDS);
        }
    }
    assert_eq!(approved, 100);
    assert_eq!(world.pocket(card, &program).await, Money::ZERO);
    world.assert_consistent().await;
}

async fn a_reversal_returns_the_money_exactly_once(backend: Backend) {
    let (world, program, card) = World::with_card(backend, Rules::default()).await;
    let request = world.purchase(card, rp(40_000), None);
    world
        .ledger
        .authorize_purchase(request.clone())
        .await
        .unwrap();

    let mismatch = ReversalRequest {
        original: request.key.clone(),
        card: Some(card),
        amount: rp(39_999),
        at_unix_seconds: t0(),
    };
    assert_eq!(
        world.ledger.reverse_purchase(mismatch).await.unwrap(),
        ReversalOutcome::Mismatch
    );

    let world = Arc::new(world);
    let reversal = ReversalRequest {
        original: request.key.clone(),
        card: Some(card),
        amount: rp(40_000),
        at_unix_seconds: t0(),
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let world = Arc::clone(&world);
            let reversal = reversal.clone();
            tokio::spawn(async move { world.ledger.reverse_purchase(reversal).await.unwrap() })
        })
        .collect();
    let mut reversed = 0;
    for task in tasks {
        match task.await.unwrap() {
            ReversalOutcome::Reversed(legs) => {
                reversed += 1;
                assert_eq!(
                    legs,
                    vec![PocketAmount {
                        program: program.clone(),
                        amount: rp(40_000)
                    }]
                );
            }
            other => assert_eq!(other, ReversalOutcome::AlreadyReversed),
        }
    }
    assert_eq!(reversed, 1);
    assert_eq!(world.pocket(card, &program).await, rp(300_000));
    // The original is still answered as it was, and its retry moves nothing.
    let retried = world.ledger.authorize_purchase(request).await.unwrap();
    assert!(retried.duplicate);
    assert_eq!(world.pocket(card, &program).await, rp(300_000));

    // A declined original: nothing to reverse.
    let declined = world.purchase(card, rp(999_999), None);
    world
        .ledger
        .authorize_purchase(declined.clone())
        .await
        .unwrap();
    let reversal = ReversalRequest {
        original: declined.key,
        card: Some(card),
        amount: rp(999_999),
        at_unix_seconds: t0(),
    };
    assert_eq!(
        world.ledger.reverse_purchase(reversal).await.unwrap(),
        ReversalOutcome::OriginalDeclined
    );
    world.assert_consistent().await;
}

async fn a_reversal_before_its_original_leaves_a_tombstone(backend: Backend) {
    let (world, program, card) = World::with_card(backend, Rules::default()).await;

    let late = world.purchase(card, rp(25_000), None);
    let reversal = ReversalRequest {
        original: late.key.clone(),
        card: Some(card),
        amount: rp(25_000),
        at_unix_seconds: t0(),
    };
    assert_eq!(
        world
            .ledger
            .reverse_purchase(reversal.clone())
            .await
            .unwrap(),
        ReversalOutcome::Tombstoned
    );
    let entries = world.ledger.state().entries;
    assert_eq!(
        world
            .ledger
            .reverse_purchase(reversal.clone())
            .await
            .unwrap(),
        ReversalOutcome::Tombstoned
    );
    assert_eq!(
        world.ledger.state().entries,
        entries,
        "a repeated reversal journals nothing new"
    );
    assert_eq!(
        world
            .ledger
            .lookup_purchase(&late.key, &late.fingerprint)
            .await,
        PurchaseLookup::Tombstoned
    );

    let world = world.reopen().await;
    let answer = world.ledger.authorize_purchase(late.clone()).await.unwrap();
    assert_eq!(answer.response.code, ResponseCode::DO_NOT_HONOUR);
    assert_eq!(world.pocket(card, &program).await, rp(300_000));
    assert_eq!(
        world.ledger.reverse_purchase(reversal).await.unwrap(),
        ReversalOutcome::OriginalDeclined
    );

    // A tombstone also wins over a decline the switch decided itself (check 3 before 4-14).
    let other = world.purchase(card, rp(1_000), None);
    let reversal = ReversalRequest {
        original: other.key.clone(),
        card: Some(card),
        amount: rp(1_000),
        at_unix_seconds: t0(),
    };
    world.ledger.reverse_purchase(reversal).await.unwrap();
    let decline = DeclineRequest {
        key: other.key.clone(),
        fingerprint: other.fingerprint,
        card: Some(card),
        merchant: merchant(),
        amount: rp(1_000),
        code: ResponseCode::new("55").unwrap(),
        rrn: other.rrn.clone(),
        at_unix_seconds: t0(),
    };
    let recorded = world.ledger.record_decline(decline).await.unwrap();
    assert_eq!(recorded.response.code, ResponseCode::DO_NOT_HONOUR);
    world.assert_consistent().await;
}

async fn replacement_moves_every_rupiah(backend: Backend) {
    let mut world = World::new(backend).await;
    let first = world.program("FIRST", Rules::default()).await;
    let second = world
        .program(
            "SECOND",
            Rules {
                benefit: rp(123_456),
                expires: day("2025-11-30"),
                ..Rules::default()
            },
        )
        .await;
    let old = world.card(&[&first, &second]).await;
    world.fund(&first, rp(300_000)).await;
    world.fund(&second, rp(123_456)).await;
    world.disburse(&first, "2025-10").await;
    world.disburse(&second, "2025-10").await;
    let bought = world.purchase(old, Money::from_minor(1_234_567), None);
    world
        .ledger
        .authorize_purchase(bought.clone())
        .await
        .unwrap();
    let before = world.spendable(old).await;
    let new = world.card(&[]).await;

    let moves = world.ledger.replace_card(old, new, t0()).await.unwrap();
    let moved = Money::checked_sum(moves.iter().map(|m| m.amount)).unwrap();
    assert_eq!(moved, before);
    assert_eq!(world.spendable(new).await, before);
    assert_eq!(world.spendable(old).await, Money::ZERO);
    assert_eq!(world.pocket(old, &first).await, Money::ZERO);
    assert_eq!(world.pocket(old, &second).await, Money::ZERO);
    assert_eq!(
        world
            .ledger
            .registry()
            .card(old)
            .await
            .unwrap()
            .unwrap()
            .status,
        CardStatus::Replaced
    );
    // Exactly once: a repeat moves nothing more, another target is a conflict.
    assert_eq!(
        world.ledger.replace_card(old, new, t0()).await.unwrap(),
        moves
    );
    let third = world.card(&[]).await;
    assert!(matches!(
        world.ledger.replace_card(old, third, t0()).await,
        Err(LedgerError::Conflict(_))
    ));
    assert_eq!(world.spendable(new).await, before);
    // A reversal of the old card's purchase after the replacement credits the new card: the
    // pockets are there now.
    let reversed = world
        .ledger
        .reverse_purchase(ReversalRequest {
            original: bought.key.clone(),
            card: Some(old),
            amount: bought.amount,
            at_unix_seconds: t0(),
        })
        .await
        .unwrap();
    assert!(
        matches!(reversed, ReversalOutcome::Reversed(_)),
        "{reversed:?}"
    );
    assert_eq!(world.spendable(old).await, Money::ZERO);
    let before = before.checked_add(bought.amount).unwrap();
    assert_eq!(world.spendable(new).await, before);
    // The new card spends what moved.
    let spent = world
        .ledger
        .authorize_purchase(world.purchase(new, rp(100), Some(&["01"])))
        .await
        .unwrap();
    assert_eq!(spent.response.code, APPROVED);
    world.assert_consistent().await;
}

async fn batches_close_on_the_journal_totals(backend: Backend) {
    let (world, _, card) = World::with_card(backend, Rules::default()).await;
    let mut keys = Vec::new();
    for amount in [10_000, 20_000, 30_000] {
        let request = world.purchase(card, rp(amount), None);
        keys.push(request.key.clone());
        world.ledger.authorize_purchase(request).await.unwrap();
    }
    let reversal = ReversalRequest {
        original: keys[1].clone(),
        card: Some(card),
        amount: rp(20_000),
        at_unix_seconds: t0(),
    };
    world.ledger.reverse_purchase(reversal).await.unwrap();
    let expected = BatchTotals {
        sales_count: 2,
        sales_amount: rp(40_000),
        reversal_count: 1,
        reversal_amount: rp(20_000),
    };
    assert_eq!(world.ledger.open_batch_totals(&terminal(1)), expected);
    let (total, open) = world.ledger.open_batches(0, 10);
    assert_eq!(total, 1);
    assert_eq!(
        (&open[0].terminal, open[0].totals),
        (&terminal(1), expected)
    );
    assert_eq!(world.ledger.open_batches(1, 10), (1, Vec::new()), "paged");

    let close = BatchCloseRequest {
        terminal: terminal(1),
        batch_number: "000001".into(),
        terminal_totals: expected,
        at_unix_seconds: t0(),
    };
    let closed = world.ledger.close_batch(close.clone()).await.unwrap();
    assert!(closed.matched);
    assert_eq!(closed.batch.sequence, open[0].sequence);
    assert_eq!(world.ledger.open_batches(0, 10), (0, Vec::new()), "closed");
    assert_eq!(closed.batch.switch_totals, expected);
    assert_eq!(
        world.ledger.close_batch(close).await.unwrap(),
        closed,
        "a repeated 0500 gets the same answer"
    );

    // A purchase of the closed batch can no longer be reversed.
    let settled = ReversalRequest {
        original: keys[0].clone(),
        card: Some(card),
        amount: rp(10_000),
        at_unix_seconds: t0(),
    };
    assert_eq!(
        world.ledger.reverse_purchase(settled).await.unwrap(),
        ReversalOutcome::Settled
    );

    // The next purchase opens a new batch; a wrong terminal count closes on the journal's.
    world
        .ledger
        .authorize_purchase(world.purchase(card, rp(5_000), None))
        .await
        .unwrap();
    let wrong = BatchTotals {
        sales_count: 3,
        sales_amount: rp(5_000),
        ..BatchTotals::default()
    };
    let close = BatchCloseRequest {
        terminal: terminal(1),
        batch_number: "000002".into(),
        terminal_totals: wrong,
        at_unix_seconds: t0(),
    };
    let mismatched = world.ledger.close_batch(close).await.unwrap();
    assert!(!mismatched.matched);
    assert_eq!(
        mismatched.batch.switch_totals,
        BatchTotals {
            sales_count: 1,
            sales_amount: rp(5_000),
            ..BatchTotals::default()
        }
    );
    assert_eq!(mismatched.batch.sequence, closed.batch.sequence + 1);
    world.assert_consistent().await;
}

async fn reopening_rebuilds_the_same_balances(backend: Backend) {
    let mut world = World::new(backend).await;
    let program = world.program("SSN2025", Rules::default()).await;
    let cards = [world.card(&[&program]).await, world.card(&[&program]).await];
    world.fund(&program, rp(600_000)).await;
    world.disburse(&program, "2025-10").await;
    for (n, card) in cards.iter().enumerate() {
        world
            .ledger
            .authorize_purchase(world.purchase(*card, rp(1_000 * (n as i64 + 1)), None))
            .await
            .unwrap();
    }
    let world = world.reopen().await;
    assert_eq!(world.pocket(cards[0], &program).await, rp(299_000));
    assert_eq!(world.pocket(cards[1], &program).await, rp(298_000));
    world.assert_consistent().await;
    let report = verify(&world.dir.0).unwrap();
    assert_eq!(report.funded, rp(600_000));
}

async fn a_program_close_returns_expired_pockets_once(backend: Backend) {
    let mut world = World::new(backend).await;
    let old = world
        .program(
            "OLD",
            Rules {
                expires: day("2025-10-14"),
                ..Rules::default()
            },
        )
        .await;
    let current = world.program("NOW", Rules::default()).await;
    let cards = [
        world.card(&[&old, &current]).await,
        world.card(&[&old, &current]).await,
        world.card(&[&current]).await,
    ];
    world.fund(&old, rp(900_000)).await;
    world.fund(&current, rp(900_000)).await;
    world.disburse(&old, "2025-10").await;
    world.disburse(&current, "2025-10").await;
    // On its last day the old pocket pays part of a purchase on the first card.
    let last_day = i64::from(day("2025-10-14").0) * 86_400 - WITA_OFFSET_SECONDS + 12 * 3600;
    let spent = world
        .ledger
        .authorize_purchase(purchase_at(
            key(2, 1),
            cards[0],
            rp(100_000),
            None,
            last_day,
        ))
        .await
        .unwrap();
    assert_eq!(spent.response.code, APPROVED);
    let giro_before = world.ledger.state().balance(&Account::Giro(old.clone()));
    let later = t0() + 5 * 86_400;

    // Not before the pockets have expired, not as of a day still to come, not an unknown program.
    for (as_of, at) in [(day("2025-10-14"), later), (day("2025-10-21"), later)] {
        assert!(matches!(
            world.ledger.close_program(&old, as_of, at).await,
            Err(LedgerError::Refused(_))
        ));
    }
    assert!(matches!(
        world
            .ledger
            .close_program(&ProgramCode::new("NONE").unwrap(), day("2025-10-15"), later)
            .await,
        Err(LedgerError::NotFound(_))
    ));

    let closed = world
        .ledger
        .close_program(&old, day("2025-10-15"), later)
        .await
        .unwrap();
    assert!(closed.created);
    assert_eq!(
        closed.returns,
        vec![(cards[0], rp(200_000)), (cards[1], rp(300_000))]
    );
    assert_eq!(closed.returned, rp(500_000));
    assert_eq!(
        world.ledger.state().balance(&Account::Giro(old.clone())),
        giro_before.checked_add(rp(500_000)).unwrap()
    );
    for card in cards {
        assert_eq!(world.pocket(card, &old).await, Money::ZERO);
        assert_eq!(world.pocket(card, &current).await, rp(300_000));
    }
    // Once: a repeat answers the same close and moves nothing.
    let again = world
        .ledger
        .close_program(&old, day("2025-10-15"), later + 60)
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.returns, closed.returns);
    assert_eq!(
        world.ledger.state().balance(&Account::Giro(old.clone())),
        giro_before.checked_add(rp(500_000)).unwrap()
    );
    world.assert_consistent().await;

    // The close is in the journal: a reopened ledger has the same books, and verify agrees.
    let world = world.reopen().await;
    assert_eq!(
        world.ledger.program_close(&old, day("2025-10-15")).unwrap(),
        Some(ProgramCloseOutcome {
            created: false,
            ..closed
        })
    );
    for card in cards {
        assert_eq!(world.pocket(card, &old).await, Money::ZERO);
    }
    world.assert_consistent().await;
    if backend == Backend::Embedded {
        let report = verify(&world.dir.0).unwrap();
        assert_eq!(report.funded, rp(1_800_000));
    }
}
