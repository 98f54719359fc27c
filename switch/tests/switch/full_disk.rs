//! The journal's disk fills up under a running switch (issue 21). The data directory is a
//! tmpfs of its own, shrunk to a few pages more than the provisioned city needs; purchases
//! pipelined on a terminal are answered `91` once a write no longer fits, and when the
//! filesystem grows again (an operator freeing space) the switch approves again by itself,
//! without a restart. Afterwards every approval is still answered the same, every card holds
//! what its approvals left, and the journal verifies: nothing lost, nothing corrupted. Mounting
//! needs root (the test command runs as root, here and in CI).

use super::e2e::{ACTIVE, Backend, Switch};
use super::faults::{Outcomes, purchases, stop_and_verify};
use ssn_codec::Profile;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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
    let mut told = Outcomes::default();
    let mut purchase = purchases(&cards);
    told.approve(&mut t, purchase(100_000), "before the disk fills")
        .await;

    disk.resize(&format!("size={}", disk.used() + ROOM_BYTES));
    let (sent, declined) = told
        .through_fault(
            &mut t,
            &mut || purchase(20_000),
            (IN_FLIGHT, FULL_DECLINES, PURCHASES_MAX),
            || {},
            "while the disk fills",
        )
        .await;
    eprintln!(
        "full disk: {sent} purchases sent, {} approved, {declined} answered 91",
        told.approved.len() - 1
    );
    assert!(
        declined >= FULL_DECLINES,
        "{sent} purchases in {ROOM_BYTES} bytes and no 91: is the disk full?"
    );

    // Space returns; the switch is not restarted. A terminal retries until approved.
    disk.resize(ROOMY);
    let p = purchase(10_000);
    told.retry_until_approved(&mut t, p, RECOVERY_DEADLINE, "after space returned")
        .await;
    told.assert_books(&mut t, &cards, "after the disk was full")
        .await;
    drop(t);
    stop_and_verify(switch);
}
