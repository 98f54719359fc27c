//! Snapshots shared by the nodes of a keyspace: a node joining loads the newest complete one
//! and replays only each chain's tail, ending where a full replay ends; a snapshot whose
//! write was cut short, or whose chunks are damaged, leaves the previous one in force; a node
//! started from a snapshot answers the retry of a purchase made before it exactly as first.
//! On the Cassandra that `./scripts/test.sh` starts (`SSN_TEST_CASSANDRA_NODES`).

use crate::scylla::open_node;
use crate::support::*;
use ssn_ledger::*;
use std::sync::Arc;

async fn cluster_of(world_dir: &TempDir) -> Arc<ScyllaCluster> {
    let config = ScyllaConfig::new(cassandra_nodes(), keyspace_for(&world_dir.0));
    ScyllaCluster::connect(config).await.unwrap()
}

/// Takes a shared snapshot of the world's keyspace as a node's snapshot thread does; `stop`
/// is asked before each step. Returns the entries it covers, `None` if it wrote none.
async fn take_snapshot(
    world_dir: &TempDir,
    stop: impl Fn() -> bool + Send + 'static,
) -> Option<u64> {
    let cluster = cluster_of(world_dir).await;
    let journal = cluster.journal().await.unwrap();
    tokio::task::spawn_blocking(move || journal.take_snapshot(&stop).unwrap())
        .await
        .unwrap()
}

async fn execute(cluster: &ScyllaCluster, cql: String) {
    cluster.session().query_unpaged(cql, ()).await.unwrap();
}

/// A copy of a ledger's projection.
fn copy_of(ledger: &Ledger) -> State {
    snapshot::decode_state(&snapshot::encode_state(&ledger.state())).unwrap()
}

/// Approves a purchase of `amount` on `ledger` with `key`, and returns the request.
async fn approve(ledger: &Ledger, key: PurchaseKey, card: CardId, amount: Money) -> Authorization {
    let request = purchase_at(key, card, amount, None, t0());
    let answer = ledger.authorize_purchase(request).await.unwrap();
    assert_eq!(answer.response.code, APPROVED);
    answer
}

/// Two nodes, a snapshot, then more purchases and a reversal on both chains: a third node
/// opening from the snapshot and the tails holds what it holds after a full replay, and
/// `verify` finds the snapshot equal to the chains' replay up to its positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_and_the_tails_give_the_state_of_a_full_replay() {
    let (world, _program, card) = World::with_card(Backend::Scylla, Rules::default()).await;
    let World { dir, ledger, .. } = world;
    drop(ledger);
    let first = open_node(&dir, "1", &dir).await;
    let second_dir = TempDir::new("second-node");
    let second = open_node(&dir, "2", &second_dir).await;
    for stan in 1..=3 {
        approve(&first, key(1, stan), card, rp(1_000)).await;
        approve(&second, key(2, stan), card, rp(2_000)).await;
    }
    let covered = take_snapshot(&dir, || false).await.expect("a snapshot");
    assert_eq!(take_snapshot(&dir, || false).await, None, "nothing new");
    for stan in 4..=6 {
        approve(&first, key(1, stan), card, rp(1_000)).await;
        approve(&second, key(2, stan), card, rp(2_000)).await;
    }
    let reversal = second
        .reverse_purchase(ReversalRequest {
            original: key(2, 5),
            card: Some(card),
            amount: rp(2_000),
            at_unix_seconds: t0(),
        })
        .await
        .unwrap();
    assert!(
        matches!(reversal, ReversalOutcome::Reversed(_)),
        "{reversal:?}"
    );
    drop(first);
    drop(second);

    let third_dir = TempDir::new("third-node");
    let third = open_node(&dir, "3", &third_dir).await;
    assert_eq!(third.open_report().from_snapshot, Some(covered));
    let from_snapshot = copy_of(&third);
    drop(third);
    assert_eq!(verify(&dir.0).unwrap().snapshots, 1);

    let cluster = cluster_of(&dir).await;
    execute(
        &cluster,
        format!("TRUNCATE {}.snapshots", cluster.config().keyspace),
    )
    .await;
    let third = open_node(&dir, "3", &third_dir).await;
    assert_eq!(third.open_report().from_snapshot, None, "a full replay");
    let replayed = copy_of(&third);
    drop(third);
    assert!(
        snapshot::same_beyond_order(&from_snapshot, &replayed),
        "the snapshot and the tails end where the full replay ends"
    );
}

/// A snapshot whose write stops after its chunks, before its catalog row (what a node killed
/// then leaves), is never loaded: the previous one stays in force. A listed snapshot that lost
/// a chunk is passed over for the previous one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_cut_short_leaves_the_previous_in_force() {
    let (world, _program, card) = World::with_card(Backend::Scylla, Rules::default()).await;
    approve(&world.ledger, key(1, 1), card, rp(1_000)).await;
    let covered = take_snapshot(&world.dir, || false)
        .await
        .expect("a snapshot");
    approve(&world.ledger, key(1, 2), card, rp(1_000)).await;
    let World { dir, ledger, .. } = world;
    drop(ledger);

    // Stops at its third step: after reading the chain and writing the chunks.
    let steps = std::sync::atomic::AtomicU32::new(0);
    let stop = move || steps.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 2;
    assert_eq!(take_snapshot(&dir, stop).await, None);
    let cluster = cluster_of(&dir).await;
    let keyspace = cluster.config().keyspace.clone();
    let chunk_ids = |rows: Vec<(String,)>| {
        let mut ids: Vec<String> = rows.into_iter().map(|(id,)| id).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let chunks = cluster
        .session()
        .query_unpaged(format!("SELECT id FROM {keyspace}.snapshot_chunks"), ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(String,)>()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(
        chunk_ids(chunks).len(),
        2,
        "the cut-short write left its chunks"
    );

    let node_dir = TempDir::new("node");
    let node = open_node(&dir, "2", &node_dir).await;
    assert_eq!(node.open_report().from_snapshot, Some(covered));
    assert_eq!(node.balance(card, t0()).await.unwrap(), rp(298_000));
    drop(node);

    let newer = take_snapshot(&dir, || false)
        .await
        .expect("a newer snapshot");
    assert!(newer > covered);
    let listed = cluster
        .session()
        .query_unpaged(
            format!(
                "SELECT id FROM {keyspace}.snapshots WHERE ledger = 'state' AND covered = {newer}"
            ),
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .first_row::<(String,)>()
        .unwrap()
        .0;
    execute(
        &cluster,
        format!("DELETE FROM {keyspace}.snapshot_chunks WHERE id = '{listed}' AND chunk = 0"),
    )
    .await;
    let node = open_node(&dir, "2", &node_dir).await;
    assert_eq!(
        node.open_report().from_snapshot,
        Some(covered),
        "passed over"
    );
    assert_eq!(node.balance(card, t0()).await.unwrap(), rp(298_000));
    drop(node);
    assert_eq!(verify(&dir.0).unwrap().snapshots, 1, "only the whole one");
}

/// A node started on a keyspace with a snapshot answers the retry of a purchase approved
/// before the snapshot on another node exactly as it was first answered, and moves no money.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_from_a_snapshot_answers_an_old_duplicate_the_same() {
    let (world, _program, card) = World::with_card(Backend::Scylla, Rules::default()).await;
    let old = purchase_at(key(1, 41), card, rp(7_000), None, t0());
    let answer = world.ledger.authorize_purchase(old.clone()).await.unwrap();
    assert_eq!(answer.response.code, APPROVED);
    take_snapshot(&world.dir, || false)
        .await
        .expect("a snapshot");
    approve(&world.ledger, key(1, 42), card, rp(1_000)).await;
    let World { dir, ledger, .. } = world;
    drop(ledger);

    let node_dir = TempDir::new("joining-node");
    let node = open_node(&dir, "2", &node_dir).await;
    assert!(node.open_report().from_snapshot.is_some());
    let retried = node.authorize_purchase(old).await.unwrap();
    assert!(retried.duplicate);
    assert_eq!(retried.response, answer.response);
    assert_eq!(node.balance(card, t0()).await.unwrap(), rp(292_000));
}
