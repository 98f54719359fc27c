//! Redis reachable and silent: a TCP proxy between the ledger and the real `redis-server` stops
//! forwarding without closing anything, as a stalled network path or a failover does. Debits
//! sent meanwhile are answered `91` within the response timeout; when the proxy forwards
//! again, Redis runs the queued debit scripts, and the ledger must void each of them (the
//! ghost debit of issue 21), so every card's pockets equal its journal to the rupiah.

use crate::support::*;
use ssn_ledger::testing::SilentProxy;
use ssn_ledger::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Each Redis command's response timeout in these tests: short, so the test is quick.
const RESPONSE_TIMEOUT_MS: u64 = 300;
/// A `91` must come within the response timeout; this bounds it generously for a busy machine
/// (a liveness check, not a measurement).
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);
/// How long resolving the debits in doubt may take once Redis answers again.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(30);
/// Purchases sent while the proxy is silent.
const SILENT_PURCHASES: u32 = 4;

/// A ledger in `dir` whose Redis is reached through `proxy`.
async fn open_behind(proxy: &SilentProxy, dir: &TempDir) -> Ledger {
    let mut redis = RedisConfig::new(proxy.url(), "ssn-test-silent:");
    redis.response_timeout_ms = RESPONSE_TIMEOUT_MS;
    Ledger::open(LedgerConfig {
        data_dir: dir.0.clone(),
        balances: BalanceBackend::Redis(redis),
    })
    .await
    .unwrap()
}

/// A ledger whose Redis is reached through `proxy`, with one card holding Rp 300,000.
async fn ledger_behind(proxy: &SilentProxy, dir: &TempDir) -> (Ledger, CardId) {
    let ledger = open_behind(proxy, dir).await;
    let card = fund_one_card(&ledger).await;
    (ledger, card)
}

/// The card's balance as Redis holds it, read on a connection of its own (not through the
/// proxy): how the test sees a late script land.
async fn balance_in_redis(ledger_dir: &TempDir, card: CardId) -> i64 {
    let ledger_id = std::fs::read_to_string(ledger_dir.0.join("ledger-id")).unwrap();
    let key = format!("ssn-test-silent:{}:{{card:{}}}", ledger_id.trim(), card.0);
    let client = redis::Client::open(redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("HGET")
        .arg(&key)
        .arg("b:SSN2025")
        .query_async::<Option<i64>>(&mut connection)
        .await
        .unwrap()
        .unwrap_or(0)
}

/// Calls `resolve_debits_in_doubt` until none is left, for at most `RESOLVE_DEADLINE`.
async fn resolve_all(ledger: &Ledger) {
    let deadline = Instant::now() + RESOLVE_DEADLINE;
    loop {
        match ledger.resolve_debits_in_doubt().await {
            Ok(0) => return,
            Ok(_) | Err(LedgerError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("debits in doubt not resolved: {other:?}"),
        }
    }
}

/// A purchase of Rp 1,000 with its own STAN and an RRN of this attempt.
fn purchase(stan: u32, card: CardId, attempt: u32) -> PurchaseRequest {
    let mut request = purchase_at(key(1, stan), card, rp(1_000), None, t0());
    request.rrn = Rrn::new(format!("S{:05}{:06}", stan, attempt)).unwrap();
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debits_answered_91_while_redis_was_silent_never_land_unrecorded() {
    let dir = TempDir::new("silent-redis");
    let proxy = SilentProxy::start(SilentProxy::address_of(&redis_url())).await;
    let (ledger, card) = ledger_behind(&proxy, &dir).await;
    assert_eq!(balance_in_redis(&dir, card).await, rp(300_000).minor());

    proxy.silence();
    for stan in 1..=SILENT_PURCHASES {
        let sent = Instant::now();
        let answer = ledger.authorize_purchase(purchase(stan, card, 1)).await;
        assert!(
            matches!(answer, Err(LedgerError::Unavailable(_))),
            "{answer:?}"
        );
        assert!(sent.elapsed() < ANSWER_DEADLINE, "{:?}", sent.elapsed());
    }
    assert_eq!(ledger.debits_in_doubt(), SILENT_PURCHASES as usize);
    // Still silent: nothing can be voided yet, and nothing is forgotten.
    assert!(matches!(
        ledger.resolve_debits_in_doubt().await,
        Err(LedgerError::Unavailable(_))
    ));
    assert_eq!(ledger.debits_in_doubt(), SILENT_PURCHASES as usize);

    // Forwarding again: Redis runs the held scripts. The four debits land (the ghosts), and
    // so does the one void the silent round sent (before or after its debit: either way that
    // debit is gone) ...
    proxy.resume();
    let deadline = Instant::now() + RESOLVE_DEADLINE;
    loop {
        let balance = balance_in_redis(&dir, card).await;
        if balance == rp(300_000 - 3_000).minor() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the held scripts never ran: {balance}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... and the ledger voids the rest: the pockets equal the journal, to the rupiah.
    resolve_all(&ledger).await;
    assert_eq!(balance_in_redis(&dir, card).await, rp(300_000).minor());
    assert!(ledger.cache_differences().await.unwrap().is_empty());
    assert_eq!(ledger.balance(card, t0()).await.unwrap(), rp(300_000));

    // A terminal's retry of one of them (a new attempt, a new RRN) is decided afresh, once.
    let retried = ledger
        .authorize_purchase(purchase(1, card, 2))
        .await
        .unwrap();
    assert_eq!(retried.response.code, ResponseCode::APPROVED);
    assert_eq!(ledger.balance(card, t0()).await.unwrap(), rp(299_000));
    assert!(ledger.cache_differences().await.unwrap().is_empty());

    // Across a restart the books are the same.
    drop(ledger);
    drop(proxy);
    let proxy = SilentProxy::start(SilentProxy::address_of(&redis_url())).await;
    let ledger = open_behind(&proxy, &dir).await;
    assert_eq!(ledger.balance(card, t0()).await.unwrap(), rp(299_000));
    verify(&dir.0).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_voids_the_attempt_in_doubt_before_it_debits() {
    let dir = TempDir::new("silent-redis-retry");
    let proxy = SilentProxy::start(SilentProxy::address_of(&redis_url())).await;
    let (ledger, card) = ledger_behind(&proxy, &dir).await;

    proxy.silence();
    let answer = ledger.authorize_purchase(purchase(7, card, 1)).await;
    assert!(
        matches!(answer, Err(LedgerError::Unavailable(_))),
        "{answer:?}"
    );
    proxy.resume();
    // The terminal retries at once, before any resolution round: the first attempt is voided
    // first (whether its script ran or not), so the card is debited exactly once.
    let deadline = Instant::now() + RESOLVE_DEADLINE;
    let approved = loop {
        match ledger.authorize_purchase(purchase(7, card, 2)).await {
            Ok(approved) => break approved,
            Err(LedgerError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(approved.response.code, ResponseCode::APPROVED);
    assert!(!approved.duplicate);
    assert_eq!(ledger.debits_in_doubt(), 0);
    assert_eq!(balance_in_redis(&dir, card).await, rp(299_000).minor());
    assert!(ledger.cache_differences().await.unwrap().is_empty());
}

/// The store's half, deterministic: a void that reaches the store before its attempt makes the
/// attempt do nothing; a void after it undoes it; a void never touches another attempt's
/// decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_void_undoes_its_own_attempt_or_refuses_it_later_and_nothing_else() {
    let prefix = format!(
        "ssn-void-{}-{:?}:",
        std::process::id(),
        std::time::SystemTime::now()
    );
    let redis = Arc::new(
        RedisBalances::connect(&RedisConfig::new(redis_url(), prefix))
            .await
            .unwrap(),
    );
    let stores: [Arc<dyn BalanceStore>; 2] = [Arc::new(MemoryBalances::new()), redis.clone()];
    let program = ProgramCode::new("P").unwrap();
    for store in stores {
        store.begin_generation().await.unwrap();
        let card = CardId(9);
        store
            .rebuild(&[CardSnapshot {
                card,
                pockets: vec![PocketBalance {
                    program: program.clone(),
                    expires: Day(30_000),
                    balance: Money::from_minor(1_000),
                }],
                ..CardSnapshot::default()
            }])
            .await
            .unwrap();
        let rrn = Rrn::new("000000000001").unwrap();
        let authorization_id = AuthorizationId::new("000001").unwrap();
        let allowed = [program.clone()];
        let request = DebitRequest {
            id: TransferId([3; 16]),
            card,
            amount: Money::from_minor(100),
            today: Day(20_000),
            allowed: &allowed,
            daily_max: 10,
            rrn: &rrn,
            authorization_id: &authorization_id,
            attempt: 11,
        };
        let balance = |store: Arc<dyn BalanceStore>| async move {
            store.pockets(card).await.unwrap()[0].balance.minor()
        };

        // Debited, then voided: undone.
        store.debit(&request).await.unwrap();
        assert_eq!(balance(store.clone()).await, 900);
        store.void_debit(card, request.id, 11).await.unwrap();
        assert_eq!(balance(store.clone()).await, 1_000);

        // Another attempt decides afresh; a void of the first attempt leaves it alone.
        let second = store
            .debit(&DebitRequest {
                attempt: 12,
                ..request.clone()
            })
            .await
            .unwrap();
        assert!(!second.replayed);
        store.void_debit(card, request.id, 11).await.unwrap();
        assert_eq!(balance(store.clone()).await, 900);
    }

    // Redis only (the memory store answers every debit at once, so none is ever late): a void
    // that arrives first makes its attempt, arriving later, do nothing.
    let late = DebitRequest {
        id: TransferId([4; 16]),
        card: CardId(9),
        amount: Money::from_minor(100),
        today: Day(20_000),
        allowed: std::slice::from_ref(&program),
        daily_max: 10,
        rrn: &Rrn::new("000000000002").unwrap(),
        authorization_id: &AuthorizationId::new("000002").unwrap(),
        attempt: 21,
    };
    redis.void_debit(late.card, late.id, 21).await.unwrap();
    assert!(matches!(
        redis.debit(&late).await,
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(
        redis.pockets(late.card).await.unwrap()[0].balance.minor(),
        900
    );
}
