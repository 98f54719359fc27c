//! Cassandra dies under a running switch and comes back: the switch answers `91` meanwhile,
//! approves nothing it could not journal, and approves again by itself once Cassandra is back,
//! without a restart. The Cassandra here is a private one, started from the cache that
//! `scripts/test.sh` filled (`scripts/cassandra.sh`), because killing the shared one would
//! break the tests running beside this one.

use super::e2e::{
    ACTIVE, Backend, DEADLINE, Purchase, Switch, code, keyspace_for, redis_url, start_balance, text,
};
use ssn_codec::Profile;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long `start_cassandra` itself may wait for CQL (it gives up after its own
/// `CASSANDRA_START_SECONDS_MAX`); this only bounds the shell around it.
const CASSANDRA_START_DEADLINE: Duration = Duration::from_secs(240);
/// How long the switch may take to approve again once Cassandra answers: the driver's
/// reconnection backoff plus the journal's recovery interval, with room for a busy machine.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(120);
/// Purchases answered `91` while Cassandra is down before it is started again.
const OUTAGE_DECLINES: usize = 3;
/// Purchases outstanding on the terminal's connection while Cassandra dies.
const OUTAGE_IN_FLIGHT: usize = 4;
/// Most purchases sent while Cassandra is down (some may still be answered from writes that
/// reached it before it died).
const OUTAGE_PURCHASES_MAX: usize = 20;
/// Between purchases while waiting for the switch to approve again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Cards of the demo city: enough that no card reaches SEMBAKO's three purchases a day.
const DEMO_CARDS: u32 = 40;

/// A Cassandra node of this test alone, on fixed ports in its own directory, killed by PID.
struct PrivateCassandra {
    /// Its data, commit log and configuration; kept across a restart.
    dir: PathBuf,
    /// CQL port.
    port: u16,
    /// Inter-node port (only so a restart reuses it).
    storage_port: u16,
    /// The JVM's process id while it runs.
    pid: Option<u32>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PrivateCassandra {
    /// Starts a node in a fresh directory, from the install `scripts/test.sh` cached (the
    /// shared node's `SSN_TEST_CASSANDRA_NODES` proves the script ran and the cache is full).
    fn start() -> PrivateCassandra {
        std::env::var("SSN_TEST_CASSANDRA_NODES").expect(
            "SSN_TEST_CASSANDRA_NODES is not set: run ./scripts/test.sh, which fetches and starts Cassandra",
        );
        let dir = std::env::temp_dir().join(format!("ssn-outage-cassandra-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut node = PrivateCassandra {
            dir,
            port: free_port(),
            storage_port: free_port(),
            pid: None,
        };
        node.run();
        node
    }

    /// Runs `start_cassandra DIR PORT STORAGE_PORT`, which waits for CQL readiness itself.
    /// With a durable commit log (`SSN_CASSANDRA_COMMITLOG=batch`): a node killed with
    /// SIGKILL must come back with everything it acknowledged, its schema included.
    fn run(&mut self) {
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(
                "set -e; source \"$1/lib.sh\"; source \"$1/cassandra.sh\"; \
                 start_cassandra \"$2\" \"$3\" \"$4\"; echo \"$SSN_TEST_CASSANDRA_PID\"",
            )
            .arg("start-private-cassandra")
            .arg(&scripts)
            .arg(&self.dir)
            .arg(self.port.to_string())
            .arg(self.storage_port.to_string())
            .env("SSN_CASSANDRA_COMMITLOG", "batch")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("bash runs");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < CASSANDRA_START_DEADLINE,
                "the private Cassandra did not start in time"
            );
            std::thread::sleep(RETRY_PAUSE);
        };
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
        assert!(status.success(), "start_cassandra failed: {out}");
        self.pid = Some(
            out.lines()
                .last()
                .and_then(|line| line.trim().parse().ok())
                .unwrap_or_else(|| panic!("no PID from start_cassandra: {out:?}")),
        );
    }

    /// The end of the node's log, for a failure message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("cassandra.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn nodes(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no flush, no goodbye, like a machine that lost power.
    fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            // Gone once `kill -0` fails; bounded like every other wait.
            let started = Instant::now();
            while Command::new("kill")
                .args(["-0", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                assert!(
                    started.elapsed() < DEADLINE,
                    "Cassandra {pid} outlived SIGKILL"
                );
                std::thread::sleep(RETRY_PAUSE);
            }
        }
    }
}

impl Drop for PrivateCassandra {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The arguments that put a switch on the private Cassandra, balances in the shared Redis
/// under `redis_prefix`.
fn args_on(cassandra: &PrivateCassandra, keyspace: &str, redis_prefix: &str) -> Vec<String> {
    [
        "--redis-url",
        &redis_url(),
        "--redis-key-prefix",
        redis_prefix,
        "--scylla-nodes",
        &cassandra.nodes(),
        "--scylla-keyspace",
        keyspace,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cassandra_outage_answers_91_and_the_switch_recovers_by_itself() {
    let mut cassandra = PrivateCassandra::start();
    let data_dir = std::env::temp_dir().join(format!("ssn-outage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let keyspace = keyspace_for(&data_dir);
    let prefix = data_dir.file_name().unwrap().to_string_lossy().into_owned();
    let switch = Switch::launch(
        data_dir.clone(),
        Backend::Scylla,
        DEMO_CARDS,
        args_on(&cassandra, &keyspace, &prefix),
    );
    let cards = switch.cards("regular");
    let mut t = switch.terminal(Profile::Bcd, ACTIVE).await;
    let mut approved: Vec<(Purchase, String, String)> = Vec::new();
    let mut refused: Vec<Purchase> = Vec::new();
    let mut next = 0usize;
    let mut purchase = |amount: u64| {
        next += 1;
        Purchase::new(
            &cards[next % cards.len()],
            amount + (next as u64 % 5) * 1_000,
        )
    };

    for _ in 0..4 {
        let p = purchase(100_000);
        let answer = t.purchase(&p).await;
        assert_eq!(code(&answer), "00", "before the outage");
        approved.push((p, text(&answer, 37), text(&answer, 38)));
    }

    // Under load: OUTAGE_IN_FLIGHT purchases outstanding when Cassandra dies, and kept so
    // until OUTAGE_DECLINES of them are answered 91 (or OUTAGE_PURCHASES_MAX are sent).
    let mut in_flight: Vec<Purchase> = Vec::new();
    let mut sent = 0;
    let mut declined = 0;
    while in_flight.len() < OUTAGE_IN_FLIGHT {
        let p = purchase(50_000);
        t.send(&t.purchase_message(&p)).await;
        in_flight.push(p);
        sent += 1;
    }
    cassandra.kill();
    while !in_flight.is_empty() {
        let answer = t.receive().await;
        let stan = String::from_utf8(answer.stan().unwrap().to_vec()).unwrap();
        let position = in_flight.iter().position(|p| p.stan == stan).unwrap();
        let p = in_flight.swap_remove(position);
        match code(&answer).as_str() {
            "00" => approved.push((p, text(&answer, 37), text(&answer, 38))),
            "91" => {
                declined += 1;
                refused.push(p);
            }
            other => panic!("while Cassandra is down: {other}"),
        }
        if declined < OUTAGE_DECLINES && sent < OUTAGE_PURCHASES_MAX {
            let p = purchase(50_000);
            t.send(&t.purchase_message(&p)).await;
            in_flight.push(p);
            sent += 1;
        }
    }
    assert!(
        declined >= OUTAGE_DECLINES,
        "Cassandra is down: answers are 91"
    );

    // Back on the same data and ports; the switch is not restarted. A terminal retries one
    // purchase until it is approved.
    cassandra.run();
    let started = Instant::now();
    let p = purchase(20_000);
    loop {
        let answer = t.purchase(&p).await;
        match code(&answer).as_str() {
            "00" => {
                approved.push((p, text(&answer, 37), text(&answer, 38)));
                break;
            }
            "91" => {}
            other => panic!("while Cassandra comes back: {other}"),
        }
        assert!(
            started.elapsed() < RECOVERY_DEADLINE,
            "the switch did not approve again within {RECOVERY_DEADLINE:?} of Cassandra's \
             return; Cassandra's log ends:\n{}",
            cassandra.log_tail()
        );
        tokio::time::sleep(RETRY_PAUSE).await;
    }

    // Every approval is journaled: asked again, each answers the same RRN and authorization.
    for (p, rrn, authorization) in &approved {
        let again = t.purchase(p).await;
        assert_eq!(
            (code(&again), text(&again, 37), text(&again, 38)),
            ("00".to_string(), rrn.clone(), authorization.clone()),
            "an approval the client saw is in the journal"
        );
    }
    // Every `91` moved nothing: sent again now, each is a new approval, made once.
    for p in &refused {
        let again = t.purchase(p).await;
        assert_eq!(code(&again), "00", "a purchase refused during the outage");
        approved.push((p.clone(), text(&again, 37), text(&again, 38)));
    }
    let mut balances = Vec::new();
    for card in &cards {
        let spent: u64 = approved
            .iter()
            .filter(|(p, ..)| p.card.pan == card.pan)
            .map(|(p, ..)| p.amount)
            .sum();
        let balance = t.balance(card).await;
        assert_eq!(
            balance,
            start_balance(card) - spent,
            "card {}",
            &card.pan[12..]
        );
        balances.push(balance);
    }
    drop(t);

    // The books verify, and balances rebuilt from Cassandra into an empty Redis key space
    // equal the live ones.
    let mut switch = switch;
    let _ = switch.child.kill();
    let _ = switch.child.wait();
    let verified = Command::new(env!("CARGO_BIN_EXE_ssn-switch"))
        .args(["verify", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "verify after the outage: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    std::mem::forget(switch);
    let rebuilt = Switch::launch(
        data_dir,
        Backend::Scylla,
        0,
        args_on(&cassandra, &keyspace, &format!("{prefix}-rebuilt")),
    );
    let mut t = rebuilt.terminal(Profile::Ascii, ACTIVE).await;
    for (card, live) in cards.iter().zip(&balances) {
        assert_eq!(
            t.balance(card).await,
            *live,
            "rebuilt card {}",
            &card.pan[12..]
        );
    }
    drop(t);
    drop(rebuilt);
    drop(cassandra);
}
