//! Two `ssn-switch serve` nodes at the same time on one Redis and one Cassandra (the shared
//! ones `scripts/test.sh` starts), each with its own data directory, port and chain: a
//! terminal retrying on the other node gets the same answer and moves money once, purchases
//! of one card on both at once never overspend it, a batch close on one node counts the
//! other's purchases, and afterwards the books verify and a cache rebuilt from Cassandra
//! equals the live one.

use super::e2e::{
    ACTIVE, Backend, DEADLINE, Purchase, SCYLLA_START_DEADLINE, SEMBAKO, Switch, Terminal,
    cassandra_nodes, code, keyspace_for, redis_url, refuses_to_start, start_balance, text, verify,
};
use ssn_codec::Profile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Regular cards of the demo city: few, the test is about nodes, not volume.
const DEMO_CARDS: u32 = 4;
/// Purchases of one card sent to each node at once.
const RACE_PURCHASES_PER_NODE: usize = 4;
/// Each racing purchase: two fit in a SEMBAKO-only card's balance, a third does not, and
/// SEMBAKO's three purchases a day are not reached by the two.
const RACE_AMOUNT: u64 = 12_000_000;
/// Between polls of a stopping process.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// What a second node needs from the first besides its master key: the demo city's
/// manifest (for the tests only). The PVK comes from the keyspace.
const SHARED_FILES: [&str; 1] = ["demo.json"];

fn data_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssn-multinode-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The arguments that put a node on the shared keyspace and Redis prefix.
fn node_args(keyspace: &str, redis_prefix: &str, node_id: char) -> Vec<String> {
    [
        "--redis-url",
        &redis_url(),
        "--redis-key-prefix",
        redis_prefix,
        "--scylla-nodes",
        &cassandra_nodes(),
        "--scylla-keyspace",
        keyspace,
        "--node-id",
        &node_id.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Starts another node on the first node's keyspace, given the first's master key as an
/// operator does (`--master-key-file`): its own data directory with a copy of the manifest
/// (so `--demo` finds programs and provisions nothing).
fn join(first: &Path, label: &str, keyspace: &str, redis_prefix: &str, node_id: char) -> Switch {
    let dir = data_dir(label);
    std::fs::create_dir_all(&dir).unwrap();
    for file in SHARED_FILES {
        std::fs::copy(first.join(file), dir.join(file)).unwrap();
    }
    let mut args = node_args(keyspace, redis_prefix, node_id);
    args.push("--master-key-file".into());
    args.push(first.join("master.key").display().to_string());
    Switch::launch(dir, Backend::Scylla, 0, args)
}

/// Starts a node on the keyspace with `extra` arguments and expects it to refuse to start:
/// returns what it printed on stderr.
fn refused(label: &str, keyspace: &str, redis_prefix: &str, extra: &[String]) -> String {
    let dir = data_dir(label);
    let mut args = node_args(keyspace, redis_prefix, '9');
    args.extend(extra.iter().cloned());
    let stderr = refuses_to_start(&dir, &args, SCYLLA_START_DEADLINE);
    let _ = std::fs::remove_dir_all(&dir);
    stderr
}

/// The first node of a new keyspace (named after its data directory `label`, as its Redis
/// prefix is), with a demo city of `demo_cards` regular cards: its directory, keyspace, prefix
/// and process.
fn first_node(label: &str, demo_cards: u32) -> (PathBuf, String, String, Switch) {
    let dir = data_dir(label);
    let keyspace = keyspace_for(&dir);
    let prefix = dir.file_name().unwrap().to_string_lossy().into_owned();
    let first = Switch::launch(
        dir.clone(),
        Backend::Scylla,
        demo_cards,
        node_args(&keyspace, &prefix, '1'),
    );
    (dir, keyspace, prefix, first)
}

/// SIGTERM, then waits (bounded) for the process to finish what is in flight and exit.
fn stop(switch: &mut Switch) {
    let pid = switch.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success(), "SIGTERM to {pid}");
    let started = Instant::now();
    loop {
        if let Some(status) = switch.child.try_wait().unwrap() {
            assert!(status.success(), "node {pid} stopped with {status}");
            return;
        }
        assert!(started.elapsed() < DEADLINE, "node {pid} outlived SIGTERM");
        std::thread::sleep(STOP_POLL);
    }
}

/// Code, RRN and authorization id of an answer.
fn answer_of(answer: &ssn_codec::MessageView) -> (String, String, String) {
    (code(answer), text(answer, 37), text(answer, 38))
}

/// Sends every purchase on the terminal's connection at once, then reads every answer.
async fn send_all(
    t: &mut Terminal,
    purchases: &[Purchase],
) -> Vec<(Purchase, (String, String, String))> {
    for p in purchases {
        t.send(&t.purchase_message(p)).await;
    }
    let mut answers = Vec::new();
    for _ in purchases {
        let answer = t.receive().await;
        let stan = String::from_utf8(answer.stan().unwrap().to_vec()).unwrap();
        let p = purchases.iter().find(|p| p.stan == stan).unwrap().clone();
        answers.push((p, answer_of(&answer)));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_serve_one_city_at_the_same_time() {
    let (first_dir, keyspace, prefix, mut first) = first_node("1", DEMO_CARDS);
    // Started like the first, a node must not make keys of its own for this keyspace: given
    // no master key it refuses, given another one it refuses and names both check values.
    let none = refused("keyless", &keyspace, &prefix, &[]);
    assert!(none.contains("never generates a master key"), "{none}");
    let other_key = data_dir("other.key");
    std::fs::write(&other_key, "0123456789abcdef".repeat(4)).unwrap();
    let other = refused(
        "other-key",
        &keyspace,
        &prefix,
        &["--master-key-file".into(), other_key.display().to_string()],
    );
    assert!(
        other.contains("wrapped under the master key with check value"),
        "{other}"
    );
    let _ = std::fs::remove_file(&other_key);
    let mut second = join(&first_dir, "2", &keyspace, &prefix, '2');
    let cards = first.cards("regular");
    let mut t1 = first.terminal(Profile::Bcd, ACTIVE).await;
    let mut t2 = second.terminal(Profile::Ascii, ACTIVE).await;

    // A terminal retries on the other node: the same answer from both, money moved once.
    let retried_card = &cards[0];
    let retried = Purchase::new(retried_card, 2_500_000);
    let on_first = answer_of(&t1.purchase(&retried).await);
    assert_eq!(on_first.0, "00");
    let on_second = answer_of(&t2.purchase(&retried).await);
    assert_eq!(on_second, on_first, "the retry on the other node");
    assert_eq!(
        t2.balance(retried_card).await,
        start_balance(retried_card) - retried.amount
    );

    // Many purchases of one card on both nodes at once: two fit, each approved once.
    let raced_card = cards
        .iter()
        .find(|c| c.programs == 1 && c.pan != retried_card.pan)
        .unwrap();
    let to_first: Vec<Purchase> = (0..RACE_PURCHASES_PER_NODE)
        .map(|_| Purchase::new(raced_card, RACE_AMOUNT))
        .collect();
    let to_second: Vec<Purchase> = (0..RACE_PURCHASES_PER_NODE)
        .map(|_| Purchase::new(raced_card, RACE_AMOUNT))
        .collect();
    let (answers_first, answers_second) =
        tokio::join!(send_all(&mut t1, &to_first), send_all(&mut t2, &to_second));
    let approved: Vec<&(Purchase, (String, String, String))> = answers_first
        .iter()
        .chain(&answers_second)
        .filter(|(_, answer)| answer.0 == "00")
        .collect();
    assert_eq!(approved.len(), 2, "two purchases fit the balance");
    for (_, answer) in answers_first.iter().chain(&answers_second) {
        assert!(
            ["00", "51"].contains(&answer.0.as_str()),
            "a racing purchase answers {}",
            answer.0
        );
    }
    // Asked again on the other node, every one answers the same.
    for (p, answer) in &answers_first {
        assert_eq!(&answer_of(&t2.purchase(p).await), answer);
    }
    for (p, answer) in &answers_second {
        assert_eq!(&answer_of(&t1.purchase(p).await), answer);
    }
    let left = SEMBAKO - 2 * RACE_AMOUNT;
    assert_eq!(t1.balance(raced_card).await, left);
    assert_eq!(t2.balance(raced_card).await, left);

    // The batch closes on the second node with every purchase of the terminal, the first
    // node's included.
    let sales = 1 + approved.len() as u64;
    let amount = retried.amount + 2 * RACE_AMOUNT;
    let totals = format!("{sales:03}{amount:012}000000000000000");
    let closed = t2.close_batch(&totals).await;
    assert_eq!(
        code(&closed),
        "00",
        "the switch counts both nodes' purchases; its totals: {}",
        text(&closed, 63)
    );

    let mut live = HashMap::new();
    for card in &cards {
        live.insert(card.pan.clone(), t1.balance(card).await);
    }
    drop(t1);
    drop(t2);
    stop(&mut first);
    stop(&mut second);
    verify(&first.data_dir);
    verify(&second.data_dir);

    // A third node on an empty Redis prefix rebuilds every card from Cassandra: the same.
    let rebuilt = join(
        &first_dir,
        "rebuilt",
        &keyspace,
        &format!("{prefix}-rebuilt"),
        '3',
    );
    let mut t3 = rebuilt.terminal(Profile::Bcd, ACTIVE).await;
    for card in &cards {
        assert_eq!(
            t3.balance(card).await,
            live[&card.pan],
            "rebuilt card {}",
            &card.pan[12..]
        );
    }
    drop(t3);
    drop(rebuilt);
    drop(second);
    drop(first);
}

/// Regular cards of the city a node is lost in: two purchases each are in flight when it dies.
const LOSS_DEMO_CARDS: u32 = 12;
/// Each purchase of that test: several fit a card's balance and its daily count.
const LOSS_AMOUNT: u64 = 1_000_000;

/// Two nodes under load, one killed (SIGKILL) with purchases in flight: its terminal
/// reconnects to the other node and sends again what it had not been answered, as a terminal
/// does. Every purchase is answered there, an answer the dead node gave is repeated byte for
/// byte (a decision it made in Redis but never journaled is journaled by the survivor), new
/// purchases are approved, nothing approved is lost and the books of both chains verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_node_loses_nothing_approved() {
    let (first_dir, keyspace, prefix, mut first) = first_node("lost", LOSS_DEMO_CARDS);
    let mut survivor = join(&first_dir, "survivor", &keyspace, &prefix, '2');
    let cards = first.cards("regular");
    let wave: Vec<Purchase> = cards
        .iter()
        .chain(&cards)
        .map(|card| Purchase::new(card, LOSS_AMOUNT))
        .collect();
    let (answered_half, in_flight) = wave.split_at(wave.len() / 2);
    let mut on_first = first.terminal(Profile::Bcd, ACTIVE).await;
    let mut answered = HashMap::new();
    for answer in send_all(&mut on_first, answered_half).await {
        answered.insert(answer.0.stan.clone(), answer.1);
    }
    // The second half goes out and the node dies under it.
    for p in in_flight {
        on_first.send(&on_first.purchase_message(p)).await;
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    while let Some(answer) = on_first.try_receive(DEADLINE).await {
        let stan = String::from_utf8(answer.stan().unwrap().to_vec()).unwrap();
        answered.insert(stan, answer_of(&answer));
    }
    // The terminal moves to the survivor and sends again everything of the wave.
    let mut on_survivor = survivor.terminal(Profile::Bcd, ACTIVE).await;
    let mut spent: HashMap<String, u64> = HashMap::new();
    for p in &wave {
        let again = answer_of(&on_survivor.purchase(p).await);
        assert_eq!(again.0, "00", "every purchase of the wave is approved once");
        if let Some(before) = answered.get(&p.stan) {
            assert_eq!(&again, before, "the dead node's answer, repeated");
        }
        *spent.entry(p.card.pan.clone()).or_default() += p.amount;
    }
    // And the survivor goes on approving new purchases.
    for card in &cards {
        let p = Purchase::new(card, LOSS_AMOUNT);
        assert_eq!(code(&on_survivor.purchase(&p).await), "00");
        *spent.entry(card.pan.clone()).or_default() += p.amount;
    }
    for card in &cards {
        assert_eq!(
            on_survivor.balance(card).await,
            start_balance(card) - spent[&card.pan],
            "card {}: nothing approved lost, nothing twice",
            &card.pan[12..]
        );
    }
    drop(on_survivor);
    stop(&mut survivor);
    verify(&survivor.data_dir);
    verify(&first_dir);
    drop(survivor);
    drop(first);
}
