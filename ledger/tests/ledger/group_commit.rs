//! Group commit: batches the sequencer finished while a write was syncing share the next
//! write and its fdatasync, instead of one fdatasync each.

use crate::support::*;
use ssn_ledger::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the test waits for anything it expects to happen.
const DEADLINE: Duration = Duration::from_secs(30);

/// A file journal that, once `armed`, holds its next write until `release` says so (a very
/// slow fdatasync), and notes the entries of every write and when it started.
#[derive(Debug)]
struct HeldJournal {
    inner: FileJournal,
    armed: Arc<AtomicBool>,
    entered: Sender<()>,
    release: Mutex<Receiver<()>>,
    writes: Arc<Mutex<Vec<usize>>>,
    starts: Arc<Mutex<Vec<Instant>>>,
}

impl HeldJournal {
    /// A journal in `dir` that holds no write unless armed.
    fn never_held(dir: &TempDir) -> HeldJournal {
        HeldJournal {
            inner: FileJournal::open(&dir.0.join("journal.log")).unwrap(),
            armed: Arc::new(AtomicBool::new(false)),
            entered: std::sync::mpsc::channel().0,
            release: Mutex::new(std::sync::mpsc::channel().1),
            writes: Arc::new(Mutex::new(Vec::new())),
            starts: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl JournalStore for HeldJournal {
    fn append_durable(&mut self, entries: &[EncodedEntry]) -> std::io::Result<()> {
        self.starts.lock().unwrap().push(Instant::now());
        if self.armed.swap(false, Ordering::SeqCst) {
            let _ = self.entered.send(());
            let held = self.release.lock().unwrap().recv_timeout(DEADLINE);
            assert!(held.is_ok(), "the test never released the held write");
        }
        self.writes.lock().unwrap().push(entries.len());
        self.inner.append_durable(entries)
    }

    fn replay(
        &mut self,
        visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
    ) -> std::io::Result<Option<Break>> {
        self.inner.replay(visit)
    }

    fn cut_tail(
        &mut self,
        found: &Break,
        bytes_max: u64,
    ) -> std::io::Result<Option<std::path::PathBuf>> {
        self.inner.cut_tail(found, bytes_max)
    }
}

/// Waits until the projection holds `entries` entries (a record is applied before its batch
/// is handed to the sync thread).
async fn applied(ledger: &Ledger, entries: u64) {
    let deadline = Instant::now() + DEADLINE;
    while ledger.state().entries < entries {
        assert!(
            Instant::now() < deadline,
            "entry {entries} was never applied"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_that_queue_behind_a_slow_sync_share_the_next_write() {
    let dir = TempDir::new("group-commit");
    let armed = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(Mutex::new(Vec::new()));
    let (entered, entered_rx) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let journal = Box::new(HeldJournal {
        inner: FileJournal::open(&dir.0.join("journal.log")).unwrap(),
        armed: Arc::clone(&armed),
        entered,
        release: Mutex::new(release_rx),
        writes: Arc::clone(&writes),
        starts: Arc::new(Mutex::new(Vec::new())),
    });
    let (ledger, _balances, card) = funded_ledger_on(&dir, journal).await;
    let ledger = Arc::new(ledger);
    let purchase = |stan: u32| {
        let ledger = Arc::clone(&ledger);
        tokio::spawn(async move {
            ledger
                .authorize_purchase(purchase_at(key(1, stan), card, rp(10_000), None, t0()))
                .await
        })
    };

    // The first purchase's write is held in the store, like a sync that takes a long time.
    armed.store(true, Ordering::SeqCst);
    writes.lock().unwrap().clear();
    let before = ledger.state().entries;
    let mut answers = vec![purchase(1)];
    let entered_rx = tokio::task::spawn_blocking(move || entered_rx.recv_timeout(DEADLINE));
    assert!(
        entered_rx.await.unwrap().is_ok(),
        "the first write never started"
    );

    // Meanwhile each next purchase is prepared as a batch of its own: enough to fill the
    // queue to the sync thread and one more, whose hand-over then waits for room, so every
    // queued batch is surely in the queue when the held write ends.
    let queued = JOURNAL_BATCHES_IN_FLIGHT_MAX + 1;
    for n in 1..=queued {
        answers.push(purchase(1 + n as u32));
        applied(&ledger, before + 1 + n as u64).await;
    }
    release.send(()).unwrap();
    for answer in answers {
        let approved = tokio::time::timeout(DEADLINE, answer)
            .await
            .expect("a purchase waited past the deadline")
            .unwrap();
        assert!(approved.is_ok(), "{approved:?}");
    }

    let writes = writes.lock().unwrap().clone();
    assert_eq!(writes.iter().sum::<usize>(), 1 + queued, "{writes:?}");
    assert_eq!(
        writes[0], 1,
        "the held write carried only the first: {writes:?}"
    );
    // The batches queued behind it went out together: one write and one fdatasync, not one
    // each (the last, handed over as the first left the queue, may or may not join them).
    assert!(
        writes[1] >= JOURNAL_BATCHES_IN_FLIGHT_MAX,
        "the queued batches were written one by one: {writes:?}"
    );
    assert!(writes.len() <= 3, "{writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_start_no_closer_together_than_the_interval() {
    let dir = TempDir::new("sync-interval");
    let journal = HeldJournal::never_held(&dir);
    let starts = Arc::clone(&journal.starts);
    let (ledger, _balances, card) = funded_ledger_on(&dir, Box::new(journal)).await;
    let interval = Duration::from_millis(40);
    ledger.set_journal_sync_interval_min(interval);
    let ledger = Arc::new(ledger);
    starts.lock().unwrap().clear();

    // Four callers, each journaling one purchase after another: without the interval each
    // answer would start the next sync at once, milliseconds after the last.
    let callers: Vec<_> = (0..4u32)
        .map(|caller| {
            let ledger = Arc::clone(&ledger);
            tokio::spawn(async move {
                for n in 0..5 {
                    let request =
                        purchase_at(key(1, caller * 100 + n), card, rp(1_000), None, t0());
                    let answer = ledger.authorize_purchase(request).await;
                    assert!(answer.is_ok(), "{answer:?}");
                }
            })
        })
        .collect();
    for caller in callers {
        tokio::time::timeout(DEADLINE, caller)
            .await
            .expect("the callers waited past the deadline")
            .unwrap();
    }

    let starts = starts.lock().unwrap().clone();
    assert!(starts.len() >= 5, "20 records in {} writes", starts.len());
    // A millisecond of slack for when the store notes the time.
    let least = interval - Duration::from_millis(1);
    for pair in starts.windows(2) {
        let apart = pair[1] - pair[0];
        assert!(apart >= least, "two syncs started {apart:?} apart");
    }
}
