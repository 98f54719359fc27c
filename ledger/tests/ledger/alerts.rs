//! The registry keeps the misuse monitor's alerts on every backend: stored once whatever
//! replays them, reviewed by compare-and-set, and still there after a restart.

use crate::support::*;
use ssn_ledger::monitor::{
    Alert, Evidence, MonitorConfig, MonitorFollower, Rule, SplitPurchaseConfig,
};
use ssn_ledger::*;

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name(crate::support::Backend::Embedded).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name(crate::support::Backend::Redis).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn scylla() {
                super::$name(crate::support::Backend::Scylla).await;
            }
        })*
    };
}

on_every_backend!(
    alerts_are_stored_once_reviewed_by_compare_and_set_and_kept,
    the_monitor_resumes_from_its_checkpoint_after_a_restart,
    alerts_are_listed_a_page_at_a_time_from_the_store,
    the_log_is_read_in_bounded_copies_that_add_up_to_all_of_it,
);

/// Two purchases on one card at one terminal that together pass the program's per-purchase
/// maximum raise a split-purchase alert, which the follower stores; a second follower
/// replaying the same log stores nothing more; a review replaces the open alert once; a
/// restart keeps it.
async fn alerts_are_stored_once_reviewed_by_compare_and_set_and_kept(backend: Backend) {
    let rules = Rules {
        purchase_max: rp(100_000),
        ..Rules::default()
    };
    let (world, _, card) = World::with_card(backend, rules).await;
    for _ in 0..2 {
        let paid = world
            .ledger
            .authorize_purchase(world.purchase(card, rp(60_000), Some(&["01"])))
            .await
            .unwrap();
        assert_eq!(paid.response.code, ResponseCode::APPROVED);
    }

    let mut follower = MonitorFollower::new(MonitorConfig::default());
    let round = follower.round(&world.ledger).await.unwrap();
    assert!(round.caught_up);
    assert!(round.storage_error.is_none());
    assert_eq!(round.stored.len(), 1, "{:?}", round.stored);
    let raised = round.stored[0].clone();
    assert_eq!(raised.rule, Rule::SplitPurchase);
    assert_eq!(raised.cards, vec![card]);
    assert_eq!(raised.evidence.len(), 2);
    // Nothing new: nothing more.
    let again = follower.round(&world.ledger).await.unwrap();
    assert!(again.stored.is_empty());

    let registry = world.ledger.registry();
    let stored = registry.alert(&raised.id).await.unwrap().unwrap();
    assert_eq!(stored, AlertRecord::open(raised.clone()));
    assert_eq!(all_alerts(registry).await, vec![stored.clone()]);
    assert_eq!(registry.alert("0123").await.unwrap(), None);

    // Another node, or this one after a restart, replays the log: same id, stored once.
    let mut replay = MonitorFollower::new(MonitorConfig::default());
    assert!(replay.round(&world.ledger).await.unwrap().stored.is_empty());
    assert_eq!(all_alerts(registry).await.len(), 1);

    let confirmed = AlertRecord {
        status: AlertStatus::Confirmed,
        note: Some("visited the shop".into()),
        decided_by: Some("dinsos".into()),
        decided_at_unix_seconds: Some(t0()),
        ..stored.clone()
    };
    let review = |expected: &AlertRecord, new: &AlertRecord| RegistryOp::Replace {
        expected: RegistryRecord::Alert(expected.clone()),
        new: RegistryRecord::Alert(new.clone()),
    };
    registry
        .apply(vec![review(&stored, &confirmed)])
        .await
        .unwrap();
    // A second reviewer who read the open alert loses the race.
    let dismissed = AlertRecord {
        status: AlertStatus::Dismissed,
        ..confirmed.clone()
    };
    assert!(matches!(
        registry.apply(vec![review(&stored, &dismissed)]).await,
        Err(RegistryError::Conflict(_))
    ));

    let world = world.reopen().await;
    assert_eq!(
        world.ledger.registry().alert(&raised.id).await.unwrap(),
        Some(confirmed)
    );
}

/// Every alert, newest first.
async fn all_alerts(registry: &dyn Registry) -> Vec<AlertRecord> {
    registry
        .alerts(&AlertFilter::default(), None, 0, usize::MAX)
        .await
        .unwrap()
}

/// A restart resumes from the checkpoint: the monitor reads no entry before it, raises no
/// alert twice, and a pattern that began before the restart and completes after it still
/// fires (its first half is in the checkpointed windows).
async fn the_monitor_resumes_from_its_checkpoint_after_a_restart(backend: Backend) {
    let rules = Rules {
        purchase_max: rp(100_000),
        ..Rules::default()
    };
    let (world, _, card) = World::with_card(backend, rules).await;
    let buy = |world: &World, amount: i64| world.purchase(card, rp(amount), Some(&["01"]));
    // Honest purchases, then the first half of a split purchase.
    for _ in 0..3 {
        world
            .ledger
            .authorize_purchase(buy(&world, 1_000))
            .await
            .unwrap();
    }
    let half = world
        .ledger
        .authorize_purchase(buy(&world, 60_000))
        .await
        .unwrap();
    assert_eq!(half.response.code, ResponseCode::APPROVED);
    let config = MonitorConfig {
        split_purchase: SplitPurchaseConfig {
            // Wider than the test's clock, so the honest purchases stay in the window too.
            window_seconds: 86_400,
            ..SplitPurchaseConfig::default()
        },
        ..MonitorConfig::default()
    };
    let mut follower = MonitorFollower::resume(config.clone(), "1", &world.ledger)
        .await
        .unwrap();
    assert_eq!(follower.monitor().next_position(), 0, "no checkpoint yet");
    let round = follower.round(&world.ledger).await.unwrap();
    let checkpointed = world.ledger.log_len();
    assert_eq!(round.read, checkpointed);
    assert!(round.stored.is_empty(), "{:?}", round.stored);
    assert!(follower.checkpoint(&world.ledger).await.unwrap());
    drop(follower);

    let world = world.reopen().await;
    let mut follower = MonitorFollower::resume(config.clone(), "1", &world.ledger)
        .await
        .unwrap();
    assert_eq!(follower.monitor().next_position(), checkpointed);
    let idle = follower.round(&world.ledger).await.unwrap();
    assert_eq!((idle.read_from, idle.read), (checkpointed, 0));
    // The second half, after the restart.
    let rest = world
        .ledger
        .authorize_purchase(buy(&world, 60_000))
        .await
        .unwrap();
    assert_eq!(rest.response.code, ResponseCode::APPROVED);
    let round = follower.round(&world.ledger).await.unwrap();
    assert_eq!((round.read_from, round.read), (checkpointed, 1));
    assert_eq!(round.stored.len(), 1, "{:?}", round.stored);
    let fired = &round.stored[0];
    assert_eq!(fired.rule, Rule::SplitPurchase);
    assert_eq!(fired.evidence.len(), 5, "the window spans the restart");
    assert_eq!(all_alerts(world.ledger.registry()).await.len(), 1);

    // A crash before the next checkpoint: the entry after it is read again, its alert is
    // raised again with the same id and not stored twice.
    drop(follower);
    let world = world.reopen().await;
    let mut follower = MonitorFollower::resume(config.clone(), "1", &world.ledger)
        .await
        .unwrap();
    let round = follower.round(&world.ledger).await.unwrap();
    assert_eq!((round.read_from, round.read), (checkpointed, 1));
    assert!(round.stored.is_empty(), "{:?}", round.stored);
    assert_eq!(all_alerts(world.ledger.registry()).await.len(), 1);
    assert!(follower.checkpoint(&world.ledger).await.unwrap());
    let mut follower = MonitorFollower::resume(config, "1", &world.ledger)
        .await
        .unwrap();
    assert_eq!(follower.monitor().next_position(), checkpointed + 1);
    assert_eq!(follower.round(&world.ledger).await.unwrap().read, 0);
}

/// An alert as the monitor would raise it, fired at `at`.
fn raised(n: u64, rule: Rule, at: i64, merchant: &MerchantId) -> AlertRecord {
    AlertRecord::open(Alert {
        id: format!("{n:032x}"),
        rule,
        merchant: Some(merchant.clone()),
        terminal: None,
        program: None,
        cards: vec![CardId(n)],
        evidence: vec![Evidence {
            position: n,
            rrn: Rrn::new(format!("{n:012}")).unwrap(),
        }],
        score_percent: 100,
        fired_at_unix_seconds: at,
        summary: "seen".into(),
    })
}

/// More alerts than a page, over two periods of the Scylla index: every page read from the
/// store, by page number and by cursor, holds what the whole list sorted and filtered would;
/// the counts agree; a review moves an alert between status filters.
async fn alerts_are_listed_a_page_at_a_time_from_the_store(backend: Backend) {
    let world = World::new(backend).await;
    let registry = world.ledger.registry();
    let other = MerchantId::new("EWARONG00000002").unwrap();
    let mut all: Vec<AlertRecord> = (0..130u64)
        .map(|n| {
            let rule = [Rule::Sweep, Rule::Price, Rule::GhostShop][n as usize % 3];
            let shop = if n % 4 == 0 { &other } else { &merchant() };
            // Two alerts at each instant (ordered by id), over 37 days: two periods of the
            // Scylla index.
            let at = t0() + (n as i64 / 2) * 50_000;
            raised(n, rule, at, shop)
        })
        .collect();
    let inserts = all
        .iter()
        .map(|a| RegistryOp::Insert(RegistryRecord::Alert(a.clone())))
        .collect();
    registry.apply(inserts).await.unwrap();
    let newest_first = |records: &mut Vec<AlertRecord>| {
        records.sort_by(|a, b| AlertCursor::after(b).cmp(&AlertCursor::after(a)));
    };
    newest_first(&mut all);

    let filters = [
        AlertFilter::default(),
        AlertFilter {
            rule: Some(Rule::Price),
            ..AlertFilter::default()
        },
        AlertFilter {
            merchant: Some(other.clone()),
            fired_from: t0() + 10 * 50_000,
            fired_to: t0() + 40 * 50_000,
            ..AlertFilter::default()
        },
    ];
    for filter in &filters {
        let wanted: Vec<AlertRecord> = all
            .iter()
            .filter(|r| {
                filter.rule.is_none_or(|rule| r.alert.rule == rule)
                    && filter
                        .merchant
                        .as_ref()
                        .is_none_or(|m| r.alert.merchant.as_ref() == Some(m))
                    && (filter.fired_from..=filter.fired_to)
                        .contains(&r.alert.fired_at_unix_seconds)
            })
            .cloned()
            .collect();
        assert_eq!(
            registry.alerts_count(filter).await.unwrap(),
            wanted.len() as u64
        );
        let (mut by_number, mut by_cursor) = (Vec::new(), Vec::new());
        for page in 0..4u64 {
            by_number.extend(registry.alerts(filter, None, page * 40, 40).await.unwrap());
            let after = by_cursor.last().map(AlertCursor::after);
            by_cursor.extend(
                registry
                    .alerts(filter, after.as_ref(), 0, 40)
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(by_number, wanted, "{filter:?}");
        assert_eq!(by_cursor, wanted, "{filter:?}");
    }

    let open = AlertFilter {
        status: Some(AlertStatus::Open),
        ..AlertFilter::default()
    };
    let confirmed = AlertFilter {
        status: Some(AlertStatus::Confirmed),
        ..AlertFilter::default()
    };
    let reviewed = AlertRecord {
        status: AlertStatus::Confirmed,
        note: Some("checked".into()),
        ..all[7].clone()
    };
    registry
        .apply(vec![RegistryOp::Replace {
            expected: RegistryRecord::Alert(all[7].clone()),
            new: RegistryRecord::Alert(reviewed.clone()),
        }])
        .await
        .unwrap();
    assert_eq!(registry.alerts_count(&open).await.unwrap(), 129);
    assert_eq!(
        registry.alerts(&confirmed, None, 0, 50).await.unwrap(),
        vec![reviewed]
    );
}

/// `Ledger::log_entries` copies at most `LOG_ENTRIES_PER_HOLD_MAX` entries per hold of the
/// projection's lock; a read of more spans several holds and still returns every entry once,
/// numbered in order, exactly what reads of one entry at a time return.
async fn the_log_is_read_in_bounded_copies_that_add_up_to_all_of_it(backend: Backend) {
    let (world, _, card) = World::with_card(backend, Rules::default()).await;
    for _ in 0..(LOG_ENTRIES_PER_HOLD_MAX + 50) {
        let paid = world
            .ledger
            .authorize_purchase(world.purchase(card, rp(1), Some(&["01"])))
            .await
            .unwrap();
        assert_eq!(paid.response.code, ResponseCode::APPROVED);
    }
    let len = world.ledger.log_len();
    assert!(len >= LOG_ENTRIES_PER_HOLD_MAX as u64 + 50);
    let all = world.ledger.log_entries(0, usize::MAX).unwrap();
    let numbers: Vec<u64> = all.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, (0..len).collect::<Vec<u64>>());
    for (number, entry) in all.iter().step_by(37) {
        let one = world.ledger.log_entries(*number, 1).unwrap();
        assert_eq!(one, vec![(*number, entry.clone())]);
    }
    let tail = world.ledger.log_entries(5, 300).unwrap();
    assert_eq!(tail.len(), 300);
    assert_eq!(tail[..], all[5..305]);
}
