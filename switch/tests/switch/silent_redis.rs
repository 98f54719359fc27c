//! Redis reachable and silent under the running switch (issue 21): a TCP proxy between the
//! switch and the real `redis-server` stops forwarding without closing anything. Purchases
//! are answered `91` within Redis's response timeout; when the proxy forwards again, Redis
//! runs the held debit scripts, and the switch voids them by itself (its resolver every 250
//! ms), so the card's balance is what its journal says, to the rupiah, without a restart.

use super::e2e::{ACTIVE, Backend, DEADLINE, Purchase, Switch, code, redis_url, sample};
use ssn_codec::Profile;
use ssn_ledger::testing::SilentProxy;
use std::time::{Duration, Instant};

/// Purchases sent while Redis is silent.
const SILENT_PURCHASES: u64 = 4;
/// Cards of the demo city.
const DEMO_CARDS: u32 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_answered_91_while_redis_is_silent_never_take_money_later() {
    let proxy = SilentProxy::start(SilentProxy::address_of(&redis_url())).await;
    let data_dir = std::env::temp_dir().join(format!("ssn-silent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let prefix = data_dir.file_name().unwrap().to_string_lossy().into_owned();
    let switch = Switch::launch(
        data_dir,
        Backend::Redis,
        DEMO_CARDS,
        vec![
            "--redis-url".into(),
            proxy.url(),
            "--redis-key-prefix".into(),
            prefix,
        ],
    );
    let scrape = || async {
        let metrics = reqwest::get(format!("http://{}/metrics", switch.admin()))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .unwrap();
        sample(&metrics, "ssn_debits_in_doubt", &[])
    };
    let card = switch.cards("regular").remove(0);
    let mut t = switch.terminal(Profile::Bcd, ACTIVE).await;
    let before = t.balance(&card).await;

    proxy.silence();
    for n in 0..SILENT_PURCHASES {
        let sent = Instant::now();
        let answer = t.purchase(&Purchase::new(&card, 100_000 + n * 1_000)).await;
        assert_eq!(code(&answer), "91", "Redis is silent");
        assert!(sent.elapsed() < DEADLINE, "{:?}", sent.elapsed());
    }
    assert_eq!(scrape().await, SILENT_PURCHASES as f64, "held in doubt");

    // Forwarding again: the held scripts run in Redis, and the switch voids every one.
    proxy.resume();
    let started = Instant::now();
    loop {
        let (in_doubt, balance) = (scrape().await, t.balance(&card).await);
        if in_doubt == 0.0 && balance == before {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "after Redis answers again: {in_doubt} debits in doubt, balance {balance} (journal: \
             {before})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the card is served as before: one purchase moves exactly its amount.
    let answer = t.purchase(&Purchase::new(&card, 250_000)).await;
    assert_eq!(code(&answer), "00");
    assert_eq!(t.balance(&card).await, before - 250_000);
}
