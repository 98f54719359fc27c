//! Redis killed under a running switch and started again, empty (issue 21): a Redis of this
//! test alone (no persistence, like a cache node that lost its memory) dies while purchases
//! are in flight on a terminal; they are answered `91`, and once Redis is back the switch
//! approves again by itself, without a restart, with every card's balance rebuilt from the
//! journal: every approval repeated gets its answer, every card touched holds what its
//! approvals left, and the journal verifies.

use super::e2e::{ACTIVE, Backend, DEADLINE, Switch};
use super::faults::{Outcomes, purchases, stop_and_verify};
use ssn_codec::Profile;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Purchases outstanding on the terminal's connection while Redis dies.
const IN_FLIGHT: usize = 4;
/// Purchases answered `91` before Redis is started again.
const OUTAGE_DECLINES: usize = 3;
/// Most purchases sent while Redis is down.
const OUTAGE_PURCHASES_MAX: usize = 40;
/// How long the switch may take to approve again once Redis answers: its reconnection and the
/// rebuild of the cards, with room for a busy machine.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(60);
const RETRY_PAUSE: Duration = Duration::from_millis(200);
const DEMO_CARDS: u32 = 40;

/// A `redis-server` of this test alone on a fixed port, killed (SIGKILL) by its PID.
struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("ssn-redis-restart-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = PrivateRedis {
            port,
            dir,
            child: None,
        };
        redis.run();
        redis
    }

    /// Starts the server, empty, and waits until it answers `PING`.
    fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts (scripts/test.sh installs it)");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let pong = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "ping"])
                .output()
                .is_ok_and(|out| out.stdout.starts_with(b"PONG"));
            if pong {
                return;
            }
            assert!(started.elapsed() < DEADLINE, "redis-server did not answer");
            std::thread::sleep(RETRY_PAUSE);
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_started_empty_answers_91_then_balances_come_back_from_the_journal() {
    let mut redis = PrivateRedis::start();
    let data_dir = std::env::temp_dir().join(format!("ssn-redis-killed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let switch = Switch::launch(
        data_dir,
        Backend::Redis,
        DEMO_CARDS,
        vec![
            "--redis-url".into(),
            redis.url(),
            "--redis-key-prefix".into(),
            "killed:".into(),
        ],
    );
    let cards = switch.cards("regular");
    let mut t = switch.terminal(Profile::Bcd, ACTIVE).await;
    let mut told = Outcomes::default();
    let mut purchase = purchases(&cards);
    for _ in 0..4 {
        told.approve(&mut t, purchase(100_000), "before the outage")
            .await;
    }
    let (sent, declined) = told
        .through_fault(
            &mut t,
            &mut || purchase(50_000),
            (IN_FLIGHT, OUTAGE_DECLINES, OUTAGE_PURCHASES_MAX),
            || redis.kill(),
            "while Redis is down",
        )
        .await;
    assert!(declined >= OUTAGE_DECLINES, "Redis is down: answers are 91");

    // Back on the same port, empty; the switch is not restarted.
    redis.run();
    let p = purchase(20_000);
    told.retry_until_approved(&mut t, p, RECOVERY_DEADLINE, "after Redis came back")
        .await;
    eprintln!(
        "Redis killed: {sent} purchases in flight, {} approved in all, {declined} answered 91",
        told.approved.len()
    );
    told.assert_books(&mut t, &cards, "after Redis came back empty")
        .await;
    drop(t);
    stop_and_verify(switch);
}
