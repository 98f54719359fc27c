//! What only the Scylla stores have: a batch torn by a failed write is set aside at open, a
//! changed row breaks `verify` and opening, and an embedded ledger moves onto Scylla with its
//! chain intact. On the Cassandra that `./scripts/test.sh` starts (`SSN_TEST_CASSANDRA_NODES`).

use crate::support::*;
use ssn_ledger::*;

/// Two purchases on a Scylla world, closed; returns the world's directory and card.
async fn world_with_purchases() -> (TempDir, CardId) {
    let (world, _program, card) = World::with_card(Backend::Scylla, Rules::default()).await;
    for _ in 0..2 {
        let approved = world
            .ledger
            .authorize_purchase(world.purchase(card, rp(10_000), None))
            .await
            .unwrap();
        assert_eq!(approved.response.code, APPROVED);
    }
    let World { dir, ledger, .. } = world;
    drop(ledger);
    (dir, card)
}

async fn cluster_of(dir: &TempDir) -> std::sync::Arc<ScyllaCluster> {
    let config = ScyllaConfig::load_pointer(&dir.0)
        .unwrap()
        .expect("pointer");
    ScyllaCluster::connect(config).await.unwrap()
}

async fn execute(cluster: &ScyllaCluster, cql: String) {
    cluster.session().query_unpaged(cql, ()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_batch_is_set_aside_and_the_chain_still_verifies() {
    let (dir, card) = world_with_purchases().await;
    let before = verify(&dir.0).unwrap();
    let cluster = cluster_of(&dir).await;
    let keyspace = &cluster.config().keyspace;
    // What a batch that failed half-way leaves: an entry beyond a missing one.
    let beyond = before.entries as i64 + 2;
    execute(
        &cluster,
        format!(
            "INSERT INTO {keyspace}.journal (chain, bucket, sequence, part, parts, previous_hash, \
             hash, body) VALUES ('1', 0, {beyond}, 0, 1, 0x00, 0x00, 0x00)"
        ),
    )
    .await;
    assert!(
        matches!(verify(&dir.0), Err(VerifyError::Broken(_))),
        "verify reports the gap and changes nothing"
    );
    let ledger = Backend::Scylla.open(&dir.0).await;
    let torn = ledger.open_report().torn_tail.clone().expect("set aside");
    assert_eq!(torn.0.sequence, before.entries + 1);
    assert_eq!(ledger.open_report().entries, before.entries);
    assert_eq!(ledger.balance(card, t0()).await.unwrap(), rp(280_000));
    drop(ledger);
    assert_eq!(verify(&dir.0).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_row_breaks_verify_and_opening() {
    let (dir, _card) = world_with_purchases().await;
    let before = verify(&dir.0).unwrap();
    let cluster = cluster_of(&dir).await;
    let keyspace = &cluster.config().keyspace;
    // Entry 2 gets another body: its own hash no longer matches.
    execute(
        &cluster,
        format!(
            "UPDATE {keyspace}.journal SET body = 0x0102 WHERE chain = '1' AND bucket = 0 \
             AND sequence = 2 AND part = 0"
        ),
    )
    .await;
    match verify(&dir.0) {
        Err(VerifyError::Broken(found)) => {
            assert_eq!(found.sequence, 2);
            assert_eq!(found.kind, BreakKind::HashMismatch);
        }
        other => panic!("expected a break at entry 2, got {other:?} (before: {before:?})"),
    }
    let config = ScyllaConfig::load_pointer(&dir.0).unwrap().unwrap();
    let redis = RedisConfig::new(redis_url(), "ssn-test:");
    let stores = scylla_stores(config, &redis).await.unwrap();
    let refused = Ledger::open_with(stores).await;
    assert!(
        matches!(refused, Err(LedgerError::Unavailable(ref m)) if m.contains("broken")),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_ledger_moves_onto_scylla_with_its_chain() {
    let (world, program, card) = World::with_card(Backend::Embedded, Rules::default()).await;
    world
        .ledger
        .authorize_purchase(world.purchase(card, rp(25_000), None))
        .await
        .unwrap();
    let World { dir, ledger, .. } = world;
    drop(ledger);
    let embedded = verify(&dir.0).unwrap();

    let target = TempDir::new("imported");
    let config = ScyllaConfig::new(cassandra_nodes(), keyspace_for(&target.0));
    let report = import_embedded(&config, &dir.0).await.unwrap();
    assert!(report.imported);
    assert_eq!(report.entries, embedded.entries);
    let again = import_embedded(&config, &dir.0).await.unwrap();
    assert!(!again.imported, "a second import copies nothing");

    let ledger = Backend::Scylla.open(&target.0).await;
    assert_eq!(ledger.balance(card, t0()).await.unwrap(), rp(275_000));
    assert!(ledger.registry().card(card).await.unwrap().is_some());
    assert!(ledger.registry().program(&program).await.unwrap().is_some());
    assert_eq!(
        ledger.cache_differences().await.unwrap(),
        Vec::<CardId>::new()
    );
    drop(ledger);
    let imported = verify(&target.0).unwrap();
    assert_eq!(imported.last_hash, embedded.last_hash, "the same chain");
    assert_eq!(imported, embedded);
}
