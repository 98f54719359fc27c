//! The Redis cache's fence: a stale generation can neither debit nor rebuild over newer state.

use crate::support::REDIS_URL_VAR;
use ssn_ledger::*;

fn config(prefix: &str) -> RedisConfig {
    let url = std::env::var(REDIS_URL_VAR)
        .unwrap_or_else(|_| panic!("{REDIS_URL_VAR} is not set: run ./scripts/test.sh, which starts redis-server for these tests"));
    RedisConfig::new(url, prefix)
}

fn snapshot(card: CardId, balance: Money) -> CardSnapshot {
    CardSnapshot {
        card,
        pockets: vec![PocketBalance {
            program: ProgramCode::new("P").unwrap(),
            expires: Day(30_000),
            balance,
        }],
        ..CardSnapshot::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_generation_cannot_debit_or_overwrite() {
    let prefix = format!(
        "ssn-fence-{}-{:?}:",
        std::process::id(),
        std::time::SystemTime::now()
    );
    let old = RedisBalances::connect(&config(&prefix)).await.unwrap();
    let new = RedisBalances::connect(&config(&prefix)).await.unwrap();
    let card = CardId(7);
    old.begin_generation().await.unwrap();
    old.rebuild(&[snapshot(card, Money::from_minor(1_000))])
        .await
        .unwrap();
    new.begin_generation().await.unwrap();
    new.rebuild(&[snapshot(card, Money::from_minor(500))])
        .await
        .unwrap();

    // The old generation's rebuild comes late: it must not overwrite the newer state.
    old.rebuild(&[snapshot(card, Money::from_minor(1_000))])
        .await
        .unwrap();
    assert_eq!(
        new.pockets(card).await.unwrap()[0].balance,
        Money::from_minor(500)
    );

    let rrn = Rrn::new("000000000001").unwrap();
    let authorization_id = AuthorizationId::new("000001").unwrap();
    let allowed = [ProgramCode::new("P").unwrap()];
    let request = DebitRequest {
        id: TransferId([1; 16]),
        card,
        amount: Money::from_minor(100),
        today: Day(20_000),
        allowed: &allowed,
        daily_max: 10,
        rrn: &rrn,
        authorization_id: &authorization_id,
        attempt: 1,
    };
    let stale = old.debit(&request).await;
    assert!(
        matches!(
            stale,
            Err(StoreError::Fenced {
                found: Some(2),
                ours: 1,
                ..
            })
        ),
        "{stale:?}"
    );
    assert_eq!(
        new.pockets(card).await.unwrap()[0].balance,
        Money::from_minor(500)
    );

    // The current generation debits, and a retried script returns the stored decision.
    let first = new.debit(&request).await.unwrap();
    assert!(!first.replayed);
    assert_eq!(
        first.debit.response.balance_after,
        Some(Money::from_minor(400))
    );
    let retried = new.debit(&request).await.unwrap();
    assert!(retried.replayed);
    assert_eq!(retried.debit, first.debit);
    assert_eq!(
        new.pockets(card).await.unwrap()[0].balance,
        Money::from_minor(400)
    );

    // The server forgets its scripts (restart, failover, SCRIPT FLUSH): the store loads the
    // script again and a retried debit still returns its stored decision.
    let client = redis::Client::open(std::env::var(REDIS_URL_VAR).unwrap()).unwrap();
    let mut direct = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut direct)
        .await
        .unwrap();
    let after_flush = new.debit(&request).await.unwrap();
    assert!(after_flush.replayed);
    assert_eq!(after_flush.debit, first.debit);
    let fresh = new
        .debit(&DebitRequest {
            id: TransferId([2; 16]),
            ..request.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        fresh.debit.response.balance_after,
        Some(Money::from_minor(300))
    );

    // A card never cached is fenced too, so the ledger rebuilds it from the journal first.
    let missing = new
        .debit(&DebitRequest {
            card: CardId(8),
            ..request.clone()
        })
        .await;
    assert!(
        matches!(missing, Err(StoreError::Fenced { found: None, .. })),
        "{missing:?}"
    );
}
