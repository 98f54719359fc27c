//! The registry keeps the misuse monitor's alerts on every backend: stored once whatever
//! replays them, reviewed by compare-and-set, and still there after a restart.

use crate::support::*;
use ssn_ledger::monitor::{MonitorConfig, MonitorFollower, Rule};
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

on_every_backend!(alerts_are_stored_once_reviewed_by_compare_and_set_and_kept);

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
    assert_eq!(registry.alerts().await.unwrap(), vec![stored.clone()]);
    assert_eq!(registry.alert("0123").await.unwrap(), None);

    // Another node, or this one after a restart, replays the log: same id, stored once.
    let mut replay = MonitorFollower::new(MonitorConfig::default());
    assert!(replay.round(&world.ledger).await.unwrap().stored.is_empty());
    assert_eq!(registry.alerts().await.unwrap().len(), 1);

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
