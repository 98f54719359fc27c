//! What only the Scylla stores have: a batch torn by a failed write is set aside at open, a
//! changed row breaks `verify` and opening, an embedded ledger moves onto Scylla with its
//! chain intact, and a node opening on a keyspace replays every node's chain. On the
//! Cassandra that `./scripts/test.sh` starts (`SSN_TEST_CASSANDRA_NODES`).

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

/// Opens the keyspace of `world_dir` as switch node `chain`, its pointer in `pointer_dir`
/// (no history: the whole projection stays in memory).
pub(crate) async fn open_node(world_dir: &TempDir, chain: &str, pointer_dir: &TempDir) -> Ledger {
    let mut config = ScyllaConfig::new(cassandra_nodes(), keyspace_for(&world_dir.0));
    config.chain = chain.to_string();
    config.save_pointer(&pointer_dir.0).unwrap();
    let redis = RedisConfig::new(redis_url(), "ssn-test:");
    let stores = scylla_stores(config, &redis).await.unwrap();
    Ledger::open_with(stores).await.unwrap()
}

/// Two switch nodes on one keyspace, one after the other: opening replays every node's
/// chain, so the second node knows the first one's disbursement and purchases (a terminal's
/// retry there is a duplicate), the first, reopened, knows the second's, and `verify` from
/// either node merges both chains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_opening_replays_every_chain_of_the_keyspace() {
    let (world, _program, card) = World::with_card(Backend::Scylla, Rules::default()).await;
    let on_first = world.purchase(card, rp(10_000), None);
    let answer = world
        .ledger
        .authorize_purchase(on_first.clone())
        .await
        .unwrap();
    assert_eq!(answer.response.code, APPROVED);
    let after_first = world.spendable(card).await;
    let World { dir, ledger, .. } = world;
    drop(ledger);

    let second_dir = TempDir::new("second-node");
    let second = open_node(&dir, "2", &second_dir).await;
    assert_eq!(second.balance(card, t0()).await.unwrap(), after_first);
    let retried = second.authorize_purchase(on_first).await.unwrap();
    assert!(retried.duplicate);
    assert_eq!(retried.response, answer.response);
    let on_second = purchase_at(key(2, 900), card, rp(5_000), None, t0());
    let approved = second.authorize_purchase(on_second.clone()).await.unwrap();
    assert_eq!(approved.response.code, APPROVED);
    assert!(second.cache_differences().await.unwrap().is_empty());
    drop(second);

    let first = Backend::Scylla.open(&dir.0).await;
    assert_eq!(
        first.balance(card, t0()).await.unwrap(),
        after_first.checked_sub(rp(5_000)).unwrap()
    );
    assert_eq!(
        first.find_authorization(&on_second.key).unwrap(),
        Some(approved.response)
    );
    let entries = first.state().entries;
    drop(first);
    assert_eq!(verify(&dir.0).unwrap().entries, entries);
    assert_eq!(verify(&second_dir.0).unwrap().entries, entries);
}

/// Two switch nodes on one keyspace at the same time: a program defined through the first
/// after the second opened is funded through the second and disbursed through the first, and
/// the card is spendable on the second without a restart (it reads the program from the
/// registry and follows the first's chain), a batch close on
/// the first counts the second's purchase, neither node fences the other's debits, and both
/// caches match the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_running_at_once_follow_each_other() {
    let mut world = World::new(Backend::Scylla).await;
    let second_dir = TempDir::new("running-node");
    let second = open_node(&world.dir, "2", &second_dir).await;

    let program = world.program("LATE", Rules::default()).await;
    let card = world.card(&[&program]).await;
    // Funded through the second node (which learns the program from the registry), disbursed
    // through the first (which follows the funding first).
    second
        .fund_program(&program, rp(300_000), "LATE-FUND", t0())
        .await
        .unwrap();
    world.disburse(&program, "2025-10").await;

    let on_second = purchase_at(key(1, 700), card, rp(40_000), None, t0());
    let approved = second.authorize_purchase(on_second.clone()).await.unwrap();
    assert_eq!(
        approved.response.code, APPROVED,
        "a card funded on the other node"
    );
    let on_first = purchase_at(key(1, 701), card, rp(10_000), None, t0());
    let also = world.ledger.authorize_purchase(on_first).await.unwrap();
    assert_eq!(also.response.code, APPROVED, "the first node is not fenced");
    assert_eq!(
        second.balance(card, t0()).await.unwrap(),
        rp(250_000),
        "one Redis for both"
    );

    let close = BatchCloseRequest {
        terminal: terminal(1),
        batch_number: "000001".into(),
        terminal_totals: BatchTotals {
            sales_count: 2,
            sales_amount: rp(50_000),
            reversal_count: 0,
            reversal_amount: Money::ZERO,
        },
        at_unix_seconds: t0(),
    };
    let closed = world.ledger.close_batch(close.clone()).await.unwrap();
    assert!(closed.matched, "the close counts both nodes' purchases");
    // The terminal repeats its close on the second node: it follows the first's chain and
    // answers the same close.
    assert_eq!(second.close_batch(close).await.unwrap(), closed);

    assert!(world.ledger.cache_differences().await.unwrap().is_empty());
    assert!(second.cache_differences().await.unwrap().is_empty());
    let World { dir, ledger, .. } = world;
    let entries = ledger.state().entries;
    drop(second);
    drop(ledger);
    assert_eq!(verify(&dir.0).unwrap().entries, entries);
}
