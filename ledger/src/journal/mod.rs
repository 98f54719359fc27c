//! The append-only, hash-chained journal and its group-commit writer.
//!
//! On disk (the [`FileJournal`]): an 8-byte magic, then one frame per entry:
//! `payload length (u32 LE) | payload | SHA-256(payload)`, where
//! `payload = sequence (u64 LE) | previous entry's hash (32 bytes) | body (postcard Entry)`.
//! Each entry carries the hash of the one before *and* its own, so changing any byte of any
//! entry, the last one included, breaks the chain where it happened.
//!
//! Two threads own the store. Callers hand records to the *sequencer* through a bounded queue;
//! it takes everything waiting (up to [`JOURNAL_BATCH_RECORDS_MAX`]), checks each record against
//! the ledger's invariants, applies it to the projection, and encodes and chains it. The *sync*
//! thread writes each prepared batch with one `write` and one `fdatasync`, and only then
//! answers the callers. While batch N is in `fdatasync`, batch N+1 is being prepared
//! ([`JOURNAL_BATCHES_IN_FLIGHT_MAX`]); batches that queued up behind a sync go out together in
//! the next write (at most [`JOURNAL_BATCH_RECORDS_MAX`] records), so a slow sync makes the next
//! write bigger rather than adding syncs. One fsync per batch instead of per record is what makes
//! 100,000 durable records per second possible on a disk that does a few hundred fsyncs per
//! second. A sync also starts no sooner than [`JOURNAL_SYNC_INTERVAL_MIN_DEFAULT`] after the
//! last one started: each costs the machine about the same CPU whatever it carries.
//!
//! The projection is applied before the batch is durable, so a reader can see a record a few
//! milliseconds before its caller is answered. Nothing acts on that early: a purchase holds its
//! id's lock until it is answered, so a duplicate or a reversal of it waits; and if the write
//! fails, the journal refuses everything ([`JournalError::Poisoned`]) until it has *recovered*:
//! on the first submission at least [`JOURNAL_RECOVERY_INTERVAL`] after the failure, the
//! sequencer asks the sync thread to re-read the store, set aside whatever the failed batch
//! left behind (exactly as opening sets aside a torn write: nobody was answered for it), and
//! hand back a projection rebuilt from what is durable. A recovery that fails (the store is
//! still gone) is tried again after the same interval, so a journal on a cluster that comes
//! back resumes by itself without a restart.
//!
//! By concern: `format` (frames, entries, the chain's links, reading frames back), `store`
//! (the [`JournalStore`] trait and the file store), `replay` (a store read back into a
//! projection, from a snapshot or several chains merged), `writer` (the sequencer and sync
//! threads), `follow` (other nodes' chains in Scylla mode); this file holds the [`Journal`]
//! that ties them together and its limits.

use crate::record::Entry;
use crate::state::{Applied, InvariantError, State};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

mod follow;
mod format;
mod replay;
mod store;
mod writer;

use follow::*;
pub use follow::{
    JOURNAL_FOLLOW_BATCH_ENTRIES, JOURNAL_FOLLOW_INTERVAL, JOURNAL_FOLLOW_ROUNDS_MAX,
    JOURNAL_FOLLOW_WAITERS_MAX,
};
pub use format::{Break, BreakKind, ChainHead, EncodedEntry};
pub(crate) use format::{read_frames, read_frames_from};
use replay::*;
pub(crate) use replay::{apply_merged, replay_after, replay_until};
mod shared;
pub use shared::{
    SHARED_SNAPSHOT_CHECK_INTERVAL, SHARED_SNAPSHOT_EVERY_ENTRIES, SHARED_SNAPSHOT_SPACING,
};
pub use store::{
    ChainFollower, ChainPosition, FileJournal, FollowedChain, JournalStore, SharedSnapshot,
    SharedSnapshotTaker,
};
use writer::*;

/// The first bytes of every journal file (format version 2: purchases keep their DE48 basket,
/// programs close). A version-1 file is refused at open as not a journal.
pub const JOURNAL_MAGIC: [u8; 8] = *b"SSNJRN02";
/// Most records written with one fsync. Large enough that a burst of concurrent debits shares
/// one fsync; small enough that one batch's write stays a few MiB.
pub const JOURNAL_BATCH_RECORDS_MAX: usize = 8_192;
/// Most records waiting for the writer. When full, callers get [`JournalError::Busy`] (the
/// switch answers `91`) instead of queueing without bound.
pub const JOURNAL_QUEUE_RECORDS_MAX: usize = 65_536;
/// Largest encoded entry: a disbursement to ~1 million cards still fits.
pub const JOURNAL_ENTRY_BYTES_MAX: usize = 16 << 20;
/// Most bytes at the end of a journal file that opening may set aside as a torn write. A crash
/// can only tear the last, unacknowledged batch; anything longer is damage an operator must
/// look at, so opening refuses it.
pub const JOURNAL_TORN_TAIL_BYTES_MAX: u64 = 64 << 20;

const HASH_BYTES: usize = 32;
const PAYLOAD_HEADER_BYTES: usize = 8 + HASH_BYTES;

/// A SHA-256 digest.
pub type Hash = [u8; HASH_BYTES];

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading or creating the journal failed.
    #[error("journal I/O: {0}")]
    Io(#[from] io::Error),
    /// A write or fsync failed: the journal stops accepting records until it has recovered
    /// from the store, because what reached the disk is unknown.
    #[error("journal write failed: {0}")]
    WriteFailed(Arc<io::Error>),
    /// An earlier write failed and the journal has not recovered yet (see
    /// [`JOURNAL_RECOVERY_INTERVAL`]).
    #[error("journal is stopped after a failed write")]
    Poisoned,
    /// The writer's queue is full.
    #[error("journal queue is full")]
    Busy,
    /// The writer has stopped.
    #[error("journal is closed")]
    Closed,
    /// The record breaks an invariant and was not written.
    #[error("record refused: {0}")]
    Invariant(#[from] InvariantError),
    /// The record's encoding exceeds [`JOURNAL_ENTRY_BYTES_MAX`] or failed.
    #[error("record cannot be encoded: {0}")]
    Encoding(String),
    /// The stored journal is broken somewhere a crash cannot explain.
    #[error("journal is broken at {0}")]
    Corrupt(Break),
    /// Reading the other nodes' chains failed (see [`Journal::follow`]).
    #[error("following the other chains failed: {0}")]
    Follow(String),
}

/// What opening found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Entries in the projection (from the snapshot and replayed).
    pub entries: u64,
    /// Entries the snapshot it started from covered, over every chain for a shared one
    /// (`None`: the whole journal was replayed).
    pub from_snapshot: Option<u64>,
    /// A torn last write that was set aside, and where its bytes were kept.
    pub torn_tail: Option<(Break, PathBuf)>,
}

/// What a waiting caller gets back from the writer.
type Reply = oneshot::Sender<Result<Applied, JournalError>>;

/// A request to the writer thread.
enum Submission {
    /// Journal this entry.
    Record { entry: Box<Entry>, reply: Reply },
    /// Answer once everything submitted before is durable.
    Barrier { reply: Reply },
}

/// A handle on the journal: submit records, read the projection. Dropping it stops the writer
/// after it has written everything already submitted.
pub struct Journal {
    /// The writer's bounded queue; `None` once closing.
    sender: Option<SyncSender<Submission>>,
    /// The journal's projection, written only by the writer thread.
    state: Arc<RwLock<State>>,
    /// Set when a write failed; every later submission is refused.
    poisoned: Arc<AtomicBool>,
    /// Counters.
    stats: Arc<JournalStats>,
    /// What of the projection is not durable yet.
    in_flight: Arc<InFlight>,
    /// To the follower thread (a store shared with other nodes only); `None` once closing.
    follow_requests: Option<SyncSender<FollowReply>>,
    /// The least time between the starts of two syncs, in nanoseconds (see
    /// [`JOURNAL_SYNC_INTERVAL_MIN_DEFAULT`]).
    sync_interval_min: Arc<AtomicU64>,
    /// To the shared snapshot thread (a store shared with other nodes only): dropping it
    /// stops the thread, abandoning a snapshot it is writing.
    snapshot_stop: Option<SyncSender<()>>,
    /// The sequencer and sync threads, joined on drop (sequencer first: it closes the sync
    /// thread's queue when it ends), and the follower thread if any.
    threads: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the projection: it is large and holds card data.
        f.debug_struct("Journal")
            .field("poisoned", &self.is_poisoned())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Submission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Submission::Record { .. } => f.write_str("Submission::Record"),
            Submission::Barrier { .. } => f.write_str("Submission::Barrier"),
        }
    }
}

impl Journal {
    /// Replays `store` into a fresh projection (from the newest usable snapshot, given that
    /// history holds `history_log_len` log entries), sets aside a torn tail, and starts the
    /// writer.
    pub fn open(
        mut store: Box<dyn JournalStore>,
        history: Option<Arc<crate::history::History>>,
    ) -> Result<(Journal, OpenReport), JournalError> {
        let follower = store.follower();
        let taker = store.snapshot_taker();
        let history_log_len = match &history {
            Some(history) => history
                .log_len()
                .map_err(|e| JournalError::Io(io::Error::other(e)))?,
            None => 0,
        };
        let mut snapshots: Box<dyn Iterator<Item = crate::snapshot::Snapshot>> =
            match store.snapshot_file().map(Path::to_path_buf) {
                Some(file) => Box::new(usable_snapshots(file, history_log_len)),
                None => Box::new(std::iter::empty()),
            };
        // A snapshot is a cache of the journal, never the record: when the journal after one
        // does not apply to it, the next older one is tried, and at last the whole journal.
        // Only a journal that breaks on its own is corrupt.
        let (from_snapshot, loaded) = loop {
            let snapshot = snapshots.next();
            let from = snapshot.as_ref().map(|s| s.position.next_sequence - 1);
            let path = snapshot.as_ref().map(|s| s.path.clone());
            match load_after(store.as_mut(), snapshot, history.clone(), None) {
                Err(JournalError::Corrupt(found)) if found.kind.is_snapshot_mismatch() => {
                    let Some(path) = path else {
                        return Err(JournalError::Corrupt(found));
                    };
                    let aside = crate::snapshot::set_aside(&path)?;
                    tracing::warn!(snapshot = %aside.display(), %found,
                        "the journal after this snapshot does not apply to it: set aside, starting from an older one");
                    metrics::counter!("ssn_snapshots_passed_over_total").increment(1);
                }
                other => break (from, other?),
            }
        };
        let Loaded {
            state,
            head,
            torn_tail,
            from_shared,
        } = loaded;
        let from_snapshot = from_snapshot.or(from_shared);
        let report = OpenReport {
            entries: state.entries,
            from_snapshot,
            torn_tail,
        };
        let state = Arc::new(RwLock::new(state));
        let poisoned = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = mpsc::sync_channel(JOURNAL_QUEUE_RECORDS_MAX);
        let stats = Arc::new(JournalStats::default());
        let in_flight = Arc::new(InFlight::default());
        let recovery_interval = store.recovery_interval();
        let (prepared_sender, prepared_receiver) =
            mpsc::sync_channel(JOURNAL_BATCHES_IN_FLIGHT_MAX);
        let sync_interval_min = Arc::new(AtomicU64::new(
            JOURNAL_SYNC_INTERVAL_MIN_DEFAULT.as_nanos() as u64,
        ));
        let syncer = Syncer {
            prepared: prepared_receiver,
            store,
            sync_interval_min: Arc::clone(&sync_interval_min),
            poisoned: Arc::clone(&poisoned),
            failed_from: None,
            stats: Arc::clone(&stats),
            in_flight: Arc::clone(&in_flight),
        };
        let sequencer = Sequencer {
            receiver,
            prepared: prepared_sender,
            state: Arc::clone(&state),
            poisoned: Arc::clone(&poisoned),
            head,
            recovery_due: None,
            recovery_interval,
            stats: Arc::clone(&stats),
            in_flight: Arc::clone(&in_flight),
        };
        let syncer = std::thread::Builder::new()
            .name("ssn-journal-sync".into())
            .spawn(move || syncer.run())?;
        let sequencer = std::thread::Builder::new()
            .name("ssn-journal".into())
            .spawn(move || sequencer.run())?;
        let mut threads = vec![sequencer, syncer];
        let mut follow_requests = None;
        if let Some(source) = follower {
            let (requests, receiver) = mpsc::sync_channel(JOURNAL_FOLLOW_WAITERS_MAX);
            let follower = Follower {
                source,
                requests: receiver,
                state: Arc::clone(&state),
                poisoned: Arc::clone(&poisoned),
            };
            threads.push(
                std::thread::Builder::new()
                    .name("ssn-journal-follow".into())
                    .spawn(move || follower.run())?,
            );
            follow_requests = Some(requests);
        }
        let mut snapshot_stop = None;
        if let Some(taker) = taker {
            let (stop, stopped) = mpsc::sync_channel(1);
            let thread = shared::SharedSnapshotThread {
                taker,
                stopped,
                state: Arc::clone(&state),
                replayed_at_open: report
                    .entries
                    .saturating_sub(report.from_snapshot.unwrap_or(0)),
            };
            threads.push(
                std::thread::Builder::new()
                    .name("ssn-shared-snapshot".into())
                    .spawn(move || thread.run())?,
            );
            snapshot_stop = Some(stop);
        }
        let journal = Journal {
            sender: Some(sender),
            state,
            poisoned,
            stats,
            in_flight,
            follow_requests,
            sync_interval_min,
            snapshot_stop,
            threads,
        };
        Ok((journal, report))
    }

    /// Sets the least time between the starts of two syncs (see
    /// [`JOURNAL_SYNC_INTERVAL_MIN_DEFAULT`]); zero syncs as soon as the last sync is done.
    pub fn set_sync_interval_min(&self, interval: Duration) {
        let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        self.sync_interval_min.store(nanos, Ordering::Relaxed);
    }

    /// Counters of the journal's work so far.
    pub fn stats(&self) -> &JournalStats {
        &self.stats
    }

    /// Hands `entry` to the writer without waiting. The receiver resolves once it is durable.
    pub fn submit(
        &self,
        entry: Entry,
    ) -> Result<oneshot::Receiver<Result<Applied, JournalError>>, JournalError> {
        let (reply, receiver) = oneshot::channel();
        self.send(Submission::Record {
            entry: Box::new(entry),
            reply,
        })?;
        Ok(receiver)
    }

    /// Journals `entry` and waits until it is durable.
    pub async fn append(&self, entry: Entry) -> Result<Applied, JournalError> {
        let receiver = self.submit(entry)?;
        receiver.await.map_err(|_| JournalError::Closed)?
    }

    /// Waits until everything submitted before this call is durable.
    pub async fn barrier(&self) -> Result<(), JournalError> {
        let (reply, receiver) = oneshot::channel();
        self.send(Submission::Barrier { reply })?;
        receiver
            .await
            .map_err(|_| JournalError::Closed)?
            .map(|_| ())
    }

    fn send(&self, submission: Submission) -> Result<(), JournalError> {
        // Even after a failed write: the sequencer answers `Poisoned` until a recovery is due,
        // and a submission is what starts one.
        let sender = self.sender.as_ref().ok_or(JournalError::Closed)?;
        sender.try_send(submission).map_err(|e| match e {
            TrySendError::Full(_) => JournalError::Busy,
            TrySendError::Disconnected(_) => JournalError::Closed,
        })
    }

    /// Applies to the projection what the other nodes' chains hold beyond what it has, and
    /// answers once that is done (the entries found, 0 for a store with one writer). Besides
    /// the follower's own poll every [`JOURNAL_FOLLOW_INTERVAL`], callers that must count
    /// other nodes' records (a batch close, a reversal whose original is not found here)
    /// call this first; concurrent callers share one read of the chains.
    pub async fn follow(&self) -> Result<u64, JournalError> {
        let Some(requests) = &self.follow_requests else {
            return Ok(0);
        };
        let (reply, answer) = oneshot::channel();
        requests.try_send(reply).map_err(|e| match e {
            TrySendError::Full(_) => JournalError::Busy,
            TrySendError::Disconnected(_) => JournalError::Closed,
        })?;
        answer.await.map_err(|_| JournalError::Closed)?
    }

    /// True from a failed write until the journal has recovered: the projection may then
    /// hold records that were never written, so nothing should be answered from it.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// The projection itself, for the one change made outside the writer: dropping what has
    /// moved to history ([`State::forget`]), which changes no balance, batch or answer.
    pub(crate) fn shared_state(&self) -> Arc<RwLock<State>> {
        Arc::clone(&self.state)
    }

    /// What of the projection is not durable yet, for the mover.
    pub(crate) fn in_flight(&self) -> Arc<InFlight> {
        Arc::clone(&self.in_flight)
    }

    /// Reads the projection. Hold the guard briefly: the writer waits for it.
    pub fn state(&self) -> RwLockReadGuard<'_, State> {
        // A panic while applying would be a bug in `State::apply`, which changes nothing
        // before all its checks pass; the state is still consistent, so read through poison.
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.sender = None;
        self.follow_requests = None;
        self.snapshot_stop = None;
        for thread in self.threads.drain(..) {
            // A panicked thread has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

/// Room reserved for an entry's encoding before it is written, so a purchase (about 160
/// bytes) is encoded without growing its vector; bigger entries grow as needed.
const JOURNAL_BODY_BYTES_TYPICAL: usize = 256;

/// Prepared batches waiting for the sync thread. Two let the sequencer check and encode batch
/// N+1 while batch N is in `fdatasync`, which is where a batch spends most of its time; more
/// would only add latency.
pub const JOURNAL_BATCHES_IN_FLIGHT_MAX: usize = 2;

/// Records applied under one hold of the projection's write lock. Purchases read the
/// projection before deciding; a whole batch under one hold would stall them for milliseconds.
pub const JOURNAL_APPLY_CHUNK_RECORDS: usize = 256;

/// Which of the projection's log entries are durable. The sequencer applies a batch before
/// the sync thread writes it, so the projection's newest entries may be on their way to the
/// disk, or (after a failed write) never get there. This keeps the log index of the first
/// entry of each batch applied and not yet written, oldest first: everything before the
/// first is durable. The mover takes only durable entries to history
/// ([`crate::state::State::movable`]), so history never holds what the journal lacks.
#[derive(Debug, Default)]
pub struct InFlight(std::sync::Mutex<std::collections::VecDeque<u64>>);

impl InFlight {
    fn queue(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<u64>> {
        // Each change is one push, pop or clear: a panic cannot leave it half done.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The log index before which every entry is durable. Read it under the projection's
    /// lock: the sequencer records a batch under its write lock, before anyone can see it.
    pub fn durable_end(&self) -> u64 {
        self.queue().front().copied().unwrap_or(u64::MAX)
    }

    /// A batch whose first entry has log index `first` was applied.
    fn applied(&self, first: u64) {
        self.queue().push_back(first);
    }

    /// The oldest `batches` batches were written and synced.
    fn written(&self, batches: usize) {
        let mut queue = self.queue();
        let n = batches.min(queue.len());
        queue.drain(..n);
    }

    /// A recovery replaced the projection with what is durable.
    fn recovered(&self) {
        self.queue().clear();
    }
}

/// The least time between the starts of two syncs, unless changed with
/// [`Journal::set_sync_interval_min`]. Each `fdatasync` costs the machine about the same
/// whatever it carries (on a virtio disk ~100 µs of CPU: the filesystem's writeback, the
/// block layer, the device's doorbell and its interrupt), so records that arrive within this
/// time of the last sync wait for one sync together rather than each starting their own.
/// A record arriving after a quiet spell is synced at once; under load every record waits
/// at most this long more than it would have.
pub const JOURNAL_SYNC_INTERVAL_MIN_DEFAULT: Duration = Duration::from_micros(1_000);

/// Least time between a failed write (or a failed recovery) and the next attempt to recover:
/// each attempt re-reads the whole store, so a cluster that is down is not asked more often.
/// Until then every submission is answered [`JournalError::Poisoned`] (`91`) at once.
pub const JOURNAL_RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// Counters of the journal's work, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct JournalStats {
    /// Batches written (one fsync each).
    pub batches: AtomicU64,
    /// Entries written.
    pub entries: AtomicU64,
    /// Time spent in write + fdatasync, in nanoseconds.
    pub sync_nanos: AtomicU64,
    /// Time the sequencer held the projection's write lock, in nanoseconds.
    pub apply_nanos: AtomicU64,
    /// Recoveries after a failed write.
    pub recoveries: AtomicU64,
    /// Recoveries that set aside entries a failed batch had left in the store.
    pub recovered_torn: AtomicU64,
}

/// The journal file inside a data directory.
pub fn journal_path(data_dir: &Path) -> PathBuf {
    data_dir.join("journal.log")
}

/// Creates the data directory if it does not exist.
pub fn ensure_dir(data_dir: &Path) -> io::Result<()> {
    fs::create_dir_all(data_dir)
}
