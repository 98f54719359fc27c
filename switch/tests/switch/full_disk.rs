//! The journal's disk fills up under a running switch (issue 21). The data directory is a
//! tmpfs of its own, shrunk to a few pages more than the provisioned city needs; purchases
//! pipelined on a terminal are answered `91` once a write no longer fits, and when the
//! filesystem grows again (an operator freeing space) the switch approves again by itself,
//! without a restart. Afterwards every approval is still answered the same, every card holds
//! what its approvals left, and the journal verifies: nothing lost, nothing corrupted. Mounting
//! needs root (the test command runs as root, here and in CI).

use super::e2e::{ACTIVE, Backend, Purchase, Switch, code, start_balance, text, verify};
use ssn_codec::Profile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Room left on the filesystem after provisioning: a few pages of journal.
const ROOM_BYTES: u64 = 24 * 1024;
/// The filesystem's size before it is shrunk and after space returns.
const ROOMY: &str = "size=64m";
/// Purchases outstanding on the terminal's connection while the disk fills.
const IN_FLIGHT: usize = 4;
/// Purchases answered `91` before space returns.
const FULL_DECLINES: usize = 3;
/// Most purchases sent while filling the disk: far more than `ROOM_BYTES` can journal.
const PURCHASES_MAX: usize = 400;
/// How long the switch may take to approve again once there is room: the journal's recovery
/// interval, with room for a busy machine.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(60);
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Cards of the demo city: enough that no card reaches SEMBAKO's three purchases a day.
const DEMO_CARDS: u32 = 200;

/// A tmpfs mounted at a fresh directory, unmounted (lazily, whatever still holds it) on drop.
struct Tmpfs(PathBuf);

fn mount(args: &[&str], at: &Path) {
    let status = Command::new("mount")
        .args(args)
        .arg(at)
        .status()
        .expect("mount runs");
    assert!(status.success(), "mount {args:?} {}", at.display());
}

impl Tmpfs {
    fn new(at: PathBuf) -> Tmpfs {
        let _ = Command::new("umount").arg("-l").arg(&at).status();
        let _ = std::fs::remove_dir_all(&at);
        std::fs::create_dir_all(&at).unwrap();
        mount(&["-t", "tmpfs", "-o", ROOMY, "tmpfs"], &at);
        Tmpfs(at)
    }

    /// Bytes in use, as `df` counts them.
    fn used(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=used", "-B1"])
            .arg(&self.0)
            .output()
            .expect("df runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("df: {out:?}"))
    }

    fn resize(&self, option: &str) {
        mount(&["-o", &format!("remount,{option}"), "tmpfs"], &self.0);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_disk_answers_91_and_approves_again_when_space_returns() {
    let disk = Tmpfs::new(std::env::temp_dir().join(format!("ssn-full-{}", std::process::id())));
    let switch = Switch::launch(disk.0.clone(), Backend::Embedded, DEMO_CARDS, Vec::new());
    let cards = switch.cards("regular");
    let mut t = switch.terminal(Profile::Bcd, ACTIVE).await;
    let mut approved: Vec<(Purchase, String, String)> = Vec::new();
    let mut next = 0usize;
    let mut purchase = |amount: u64| {
        next += 1;
        Purchase::new(
            &cards[next % cards.len()],
            amount + (next as u64 % 5) * 1_000,
        )
    };
    let p = purchase(100_000);
    let answer = t.purchase(&p).await;
    assert_eq!(code(&answer), "00", "before the disk fills");
    approved.push((p, text(&answer, 37), text(&answer, 38)));

    disk.resize(&format!("size={}", disk.used() + ROOM_BYTES));
    let (mut in_flight, mut sent, mut declined) = (Vec::<Purchase>::new(), 0, 0);
    let mut refused: Vec<Purchase> = Vec::new();
    while in_flight.len() < IN_FLIGHT {
        let p = purchase(20_000);
        t.send(&t.purchase_message(&p)).await;
        in_flight.push(p);
        sent += 1;
    }
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
            other => panic!("while the disk fills: {other}"),
        }
        if declined < FULL_DECLINES && sent < PURCHASES_MAX {
            let p = purchase(20_000);
            t.send(&t.purchase_message(&p)).await;
            in_flight.push(p);
            sent += 1;
        }
    }
    eprintln!(
        "full disk: {sent} purchases sent, {} approved, {declined} answered 91",
        approved.len() - 1
    );
    assert!(
        declined >= FULL_DECLINES,
        "{sent} purchases in {ROOM_BYTES} bytes and no 91: is the disk full?"
    );

    // Space returns; the switch is not restarted. A terminal retries until approved.
    disk.resize(ROOMY);
    let started = Instant::now();
    let p = purchase(10_000);
    loop {
        let answer = t.purchase(&p).await;
        match code(&answer).as_str() {
            "00" => {
                approved.push((p, text(&answer, 37), text(&answer, 38)));
                break;
            }
            "91" if started.elapsed() < RECOVERY_DEADLINE => {
                refused.push(p.clone());
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            other => panic!("after space returned: {other}"),
        }
    }

    // Every approval is still the journal's: a repeat gets the same answer, and each card
    // holds what its approvals left, to the rupiah (no 91 took money).
    let mut spent: HashMap<String, u64> = refused.iter().map(|p| (p.card.pan.clone(), 0)).collect();
    for (p, rrn, authorization) in &approved {
        let again = t.purchase(p).await;
        assert_eq!(
            (code(&again), text(&again, 37), text(&again, 38)),
            ("00".to_string(), rrn.clone(), authorization.clone()),
            "an approval lost to the full disk"
        );
        *spent.entry(p.card.pan.clone()).or_default() += p.amount;
    }
    for card in cards.iter().filter(|c| spent.contains_key(&c.pan)) {
        assert_eq!(
            t.balance(card).await,
            start_balance(card) - spent[&card.pan],
            "a card's balance after the disk was full"
        );
    }
    drop(t);
    let mut switch = switch;
    let _ = switch.child.kill();
    let _ = switch.child.wait();
    verify(&switch.data_dir);
}
