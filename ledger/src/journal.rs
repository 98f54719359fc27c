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
//! second.
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

/// One entry as stored: position in the chain, the previous hash, the body and its own hash.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedEntry {
    /// 1 for the first entry, then +1 each.
    pub sequence: u64,
    /// The previous entry's hash (zeros for the first).
    pub previous_hash: Hash,
    /// The postcard-encoded [`Entry`].
    pub body: Vec<u8>,
    /// SHA-256 over sequence, previous hash and body.
    pub hash: Hash,
}

impl fmt::Debug for EncodedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedEntry")
            .field("sequence", &self.sequence)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl EncodedEntry {
    /// Builds the entry that follows `previous_hash` at `sequence`.
    pub fn new(sequence: u64, previous_hash: Hash, body: Vec<u8>) -> EncodedEntry {
        let hash = Self::compute_hash(sequence, &previous_hash, &body);
        EncodedEntry {
            sequence,
            previous_hash,
            body,
            hash,
        }
    }

    fn compute_hash(sequence: u64, previous_hash: &Hash, body: &[u8]) -> Hash {
        let mut hasher = Sha256::new();
        hasher.update(sequence.to_le_bytes());
        hasher.update(previous_hash);
        hasher.update(body);
        hasher.finalize().into()
    }

    /// True when the stored hash matches the content.
    pub fn hash_is_intact(&self) -> bool {
        Self::compute_hash(self.sequence, &self.previous_hash, &self.body) == self.hash
    }

    /// Bytes of this entry's frame in a journal file.
    pub fn frame_len(&self) -> u64 {
        (4 + PAYLOAD_HEADER_BYTES + self.body.len() + HASH_BYTES) as u64
    }

    /// Decodes the body.
    pub fn decode(&self) -> Result<Entry, postcard::Error> {
        postcard::from_bytes(&self.body)
    }
}

/// Where the chain broke, for `verify` and for refusing to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The sequence number the broken entry has or should have had.
    pub sequence: u64,
    /// Byte offset of the entry's frame in the journal file (0 for stores without offsets).
    pub offset: u64,
    /// What is wrong.
    pub kind: BreakKind,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry {} at byte {}: {}",
            self.sequence, self.offset, self.kind
        )
    }
}

/// The ways an entry can be broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakKind {
    /// The file does not start with [`JOURNAL_MAGIC`].
    #[error("not a journal file (bad magic)")]
    BadMagic,
    /// The file ends inside a frame.
    #[error("the file ends inside the entry")]
    Truncated,
    /// A frame length of zero or above [`JOURNAL_ENTRY_BYTES_MAX`].
    #[error("implausible entry length {0}")]
    ImplausibleLength(u64),
    /// The entry's content does not match its own hash.
    #[error("content does not match the entry's hash")]
    HashMismatch,
    /// The entry does not carry the previous entry's hash.
    #[error("previous-hash link does not match the entry before")]
    ChainMismatch,
    /// The sequence number is not the one after the previous entry's.
    #[error("sequence number {0} out of order")]
    SequenceMismatch(u64),
    /// The body is intact but does not decode.
    #[error("body does not decode: {0}")]
    Undecodable(String),
    /// The entry breaks a ledger invariant when replayed.
    #[error("{0}")]
    Invariant(InvariantError),
}

impl BreakKind {
    /// Breaks a crash can cause: the last write torn, short or half-persisted. A hash that
    /// matches but links wrongly, or an intact entry that breaks an invariant, is not one.
    pub(crate) fn may_be_torn_write(&self) -> bool {
        matches!(
            self,
            BreakKind::Truncated | BreakKind::ImplausibleLength(_) | BreakKind::HashMismatch
        )
    }

    /// An intact entry that does not apply: after a snapshot, the snapshot may be what is
    /// wrong (history that cannot be read is no sign of it).
    pub(crate) fn is_snapshot_mismatch(&self) -> bool {
        matches!(self, BreakKind::Invariant(error)
            if !matches!(error, InvariantError::HistoryUnreadable(..)))
    }
}

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

/// Storage for journal entries. The file store is the embedded one; a replicated store (Scylla)
/// implements the same two calls.
pub trait JournalStore: Send + fmt::Debug + 'static {
    /// Appends entries in order; they are durable when this returns `Ok`.
    fn append_durable(&mut self, entries: &[EncodedEntry]) -> io::Result<()>;

    /// Calls `visit` with every entry in order, with its byte offset. Stops at the first entry
    /// that cannot be read whole and returns where (`Ok(None)` at a clean end).
    fn replay(
        &mut self,
        visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
    ) -> io::Result<Option<Break>>;

    /// Like [`JournalStore::replay`], from the entry `sequence` whose frame starts at byte
    /// `offset` (a snapshot's position); a store without offsets answers `Unsupported`, and
    /// the journal is then replayed whole.
    fn replay_from(
        &mut self,
        offset: u64,
        sequence: u64,
        visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
    ) -> io::Result<Option<Break>> {
        let _ = (offset, sequence, visit);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this journal store has no offsets",
        ))
    }

    /// The file a snapshot of this store's chain is checked against ([`crate::snapshot`]);
    /// `None` for a store that is not one file.
    fn snapshot_file(&self) -> Option<&Path> {
        None
    }

    /// Other writers' chains in the same store (several switch nodes on one Scylla keyspace),
    /// each by name with its entries up to its first break (a chain still being written, or
    /// torn, is read as far as it is whole). Empty for a store with one writer.
    fn other_chains(&mut self) -> io::Result<Vec<(String, Vec<Entry>)>> {
        Ok(Vec::new())
    }

    /// This store's chain's name, which orders its entries among other chains' (see
    /// [`JournalStore::other_chains`]).
    fn chain_name(&self) -> &str {
        ""
    }

    /// A reader of the other writers' chains that works beside this store while it writes
    /// (see [`ChainFollower`]); `None` for a store with one writer.
    fn follower(&self) -> Option<Box<dyn ChainFollower>> {
        None
    }

    /// If the break `found` looks like a torn last write (see [`FileJournal`]'s rule) and
    /// what follows it is at most `bytes_max` long, sets it aside (kept for auditors, removed
    /// from the journal) and says where; `Ok(None)` and no change otherwise.
    fn cut_tail(&mut self, found: &Break, bytes_max: u64) -> io::Result<Option<PathBuf>>;
}

/// Reads the other writers' chains of a shared store while this node runs, so its
/// projection follows what the other switch nodes journal ([`Journal::follow`]).
pub trait ChainFollower: Send + fmt::Debug + 'static {
    /// The names of every chain of the store but this node's.
    fn chains(&mut self) -> io::Result<Vec<String>>;

    /// Up to `entries_max` consecutive entries of `chain` from sequence `from` on, as far as
    /// they are whole (a batch still being written ends the answer early, never an error).
    fn read_from(
        &mut self,
        chain: &str,
        from: u64,
        entries_max: usize,
    ) -> io::Result<Vec<EncodedEntry>>;
}

/// How far the projection has applied another node's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FollowedChain {
    /// The next entry to apply.
    pub next_sequence: u64,
    /// The hash of the last entry applied; `None` when read at open without it, and then
    /// learned by reading that entry again before the next.
    pub last_hash: Option<Hash>,
}

impl Default for FollowedChain {
    fn default() -> FollowedChain {
        FollowedChain {
            next_sequence: 1,
            last_hash: Some([0; HASH_BYTES]),
        }
    }
}

/// The embedded journal: one append-only file.
#[derive(Debug)]
pub struct FileJournal {
    /// The journal file's path.
    path: PathBuf,
    /// Opened for appending.
    file: File,
    /// Reused between batches so a batch costs no allocation once warm.
    buffer: Vec<u8>,
}

impl FileJournal {
    /// Opens or creates the journal file at `path`.
    pub fn open(path: &Path) -> io::Result<FileJournal> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        if !existed || file.metadata()?.len() == 0 {
            file.write_all(&JOURNAL_MAGIC)?;
            file.sync_all()?;
            // The new file's directory entry must be durable too, or a crash could lose the file.
            if let Some(parent) = path.parent() {
                File::open(parent)?.sync_all()?;
            }
        }
        Ok(FileJournal {
            path: path.to_path_buf(),
            file,
            buffer: Vec::new(),
        })
    }

    /// Frames one entry onto `out`.
    fn frame(entry: &EncodedEntry, out: &mut Vec<u8>) {
        let payload_len = PAYLOAD_HEADER_BYTES + entry.body.len();
        // Bodies are capped at JOURNAL_ENTRY_BYTES_MAX before they get here.
        out.extend_from_slice(
            &u32::try_from(payload_len)
                .expect("entry size capped")
                .to_le_bytes(),
        );
        out.extend_from_slice(&entry.sequence.to_le_bytes());
        out.extend_from_slice(&entry.previous_hash);
        out.extend_from_slice(&entry.body);
        out.extend_from_slice(&entry.hash);
    }
}

impl JournalStore for FileJournal {
    fn append_durable(&mut self, entries: &[EncodedEntry]) -> io::Result<()> {
        self.buffer.clear();
        for entry in entries {
            Self::frame(entry, &mut self.buffer);
        }
        self.file.write_all(&self.buffer)?;
        self.file.sync_data()
    }

    fn replay(
        &mut self,
        visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
    ) -> io::Result<Option<Break>> {
        read_frames(&self.path, visit)
    }

    fn replay_from(
        &mut self,
        offset: u64,
        sequence: u64,
        visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
    ) -> io::Result<Option<Break>> {
        read_frames_from(&self.path, offset, sequence, visit)
    }

    fn snapshot_file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    /// A crash (even a power loss) can only tear the last write, so a break is a torn write
    /// only when nothing intact can follow it: the file ends inside the frame; or the frame is
    /// the file's last and its hash does not match; or its length is garbage and every byte
    /// after it is zero (a file extended with zeros but never written). A mismatch with more
    /// frames after it is damage, and opening refuses it.
    fn cut_tail(&mut self, found: &Break, bytes_max: u64) -> io::Result<Option<PathBuf>> {
        let offset = found.offset;
        let mut whole = Vec::new();
        File::open(&self.path)?.read_to_end(&mut whole)?;
        let Some(tail) = usize::try_from(offset)
            .ok()
            .and_then(|offset| whole.get(offset..))
        else {
            return Ok(None);
        };
        let frame_len = tail.get(..4).map(|length| {
            4 + u64::from(u32::from_le_bytes(length.try_into().expect("4 bytes")))
                + HASH_BYTES as u64
        });
        let torn = match found.kind {
            BreakKind::Truncated => true,
            BreakKind::HashMismatch => frame_len == Some(tail.len() as u64),
            BreakKind::ImplausibleLength(_) => tail.iter().all(|b| *b == 0),
            _ => false,
        };
        if !torn || tail.len() as u64 > bytes_max {
            return Ok(None);
        }
        let side = self.path.with_extension(format!("torn-{offset}"));
        let mut side_file = File::create(&side)?;
        side_file.write_all(tail)?;
        side_file.sync_all()?;
        self.file.set_len(offset)?;
        self.file.sync_all()?;
        Ok(Some(side))
    }
}

/// Reads every frame of the journal file at `path`. Used by opening and by `verify`.
pub(crate) fn read_frames(
    path: &Path,
    visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
) -> io::Result<Option<Break>> {
    read_frames_from(path, 0, 1, visit)
}

/// [`read_frames`] from the frame of entry `sequence` at byte `offset` (0: the file's start,
/// magic included).
pub(crate) fn read_frames_from(
    path: &Path,
    offset: u64,
    sequence: u64,
    visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
) -> io::Result<Option<Break>> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let (mut offset, mut expected_sequence) = (offset, sequence);
    if offset > 0 {
        if offset > file_len {
            return Ok(Some(Break {
                sequence,
                offset,
                kind: BreakKind::Truncated,
            }));
        }
        file.seek(io::SeekFrom::Start(offset))?;
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    if offset == 0 {
        let mut magic = [0u8; 8];
        if reader.read_exact(&mut magic).is_err() || magic != JOURNAL_MAGIC {
            return Ok(Some(Break {
                sequence: 1,
                offset: 0,
                kind: BreakKind::BadMagic,
            }));
        }
        offset = JOURNAL_MAGIC.len() as u64;
    }
    loop {
        if offset == file_len {
            return Ok(None);
        }
        let broken = |kind| {
            Ok(Some(Break {
                sequence: expected_sequence,
                offset,
                kind,
            }))
        };
        let mut length = [0u8; 4];
        if reader.read_exact(&mut length).is_err() {
            return broken(BreakKind::Truncated);
        }
        let payload_len = u64::from(u32::from_le_bytes(length));
        if payload_len < PAYLOAD_HEADER_BYTES as u64
            || payload_len > (PAYLOAD_HEADER_BYTES + JOURNAL_ENTRY_BYTES_MAX) as u64
        {
            return broken(BreakKind::ImplausibleLength(payload_len));
        }
        let frame_len = 4 + payload_len + HASH_BYTES as u64;
        if offset + frame_len > file_len {
            return broken(BreakKind::Truncated);
        }
        // Bounded by JOURNAL_ENTRY_BYTES_MAX just above.
        let mut payload = vec![0u8; payload_len as usize];
        reader.read_exact(&mut payload)?;
        let mut hash = [0u8; HASH_BYTES];
        reader.read_exact(&mut hash)?;
        let body = payload.split_off(PAYLOAD_HEADER_BYTES);
        let sequence = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
        let previous_hash: Hash = payload[8..].try_into().expect("32 bytes");
        let entry = EncodedEntry {
            sequence,
            previous_hash,
            body,
            hash,
        };
        if let Err(found) = visit(entry, offset) {
            return Ok(Some(found));
        }
        offset += frame_len;
        expected_sequence += 1;
    }
}

/// The end of the chain: what the next entry must link to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// The next entry's sequence number.
    pub next_sequence: u64,
    /// The last entry's hash (zeros before the first).
    pub last_hash: Hash,
}

impl Default for ChainHead {
    fn default() -> ChainHead {
        ChainHead {
            next_sequence: 1,
            last_hash: [0; HASH_BYTES],
        }
    }
}

/// Reads a chain's entries, checking the chain and each hash, and hands each decoded entry
/// to `apply`, whose refusal is a [`BreakKind::Invariant`] break. An entry at sequence
/// `stop_at` or later ends the replay as if the store ended inside it
/// ([`BreakKind::Truncated`]): recovery uses it to treat a failed batch's entries as the torn
/// write they are, even when all of them reached the store.
pub(crate) fn replay_until(
    store: &mut dyn JournalStore,
    stop_at: Option<u64>,
    apply: &mut dyn FnMut(Entry) -> Result<(), InvariantError>,
) -> io::Result<(ChainHead, Option<Break>)> {
    replay_after(store, None, stop_at, apply)
}

/// [`replay_until`] after a snapshot's position (`None`: from the chain's start).
fn replay_after(
    store: &mut dyn JournalStore,
    start: Option<&crate::snapshot::Position>,
    stop_at: Option<u64>,
    apply: &mut dyn FnMut(Entry) -> Result<(), InvariantError>,
) -> io::Result<(ChainHead, Option<Break>)> {
    let mut head = start.map_or_else(ChainHead::default, |p| p.head());
    let mut visit = |entry: EncodedEntry, offset| {
        let broken = |kind| Break {
            sequence: head.next_sequence,
            offset,
            kind,
        };
        if stop_at.is_some_and(|stop| head.next_sequence >= stop) {
            return Err(broken(BreakKind::Truncated));
        }
        if !entry.hash_is_intact() {
            return Err(broken(BreakKind::HashMismatch));
        }
        if entry.sequence != head.next_sequence {
            return Err(broken(BreakKind::SequenceMismatch(entry.sequence)));
        }
        if entry.previous_hash != head.last_hash {
            return Err(broken(BreakKind::ChainMismatch));
        }
        let decoded = entry
            .decode()
            .map_err(|e| broken(BreakKind::Undecodable(e.to_string())))?;
        apply(decoded).map_err(|e| broken(BreakKind::Invariant(e)))?;
        head = ChainHead {
            next_sequence: entry.sequence + 1,
            last_hash: entry.hash,
        };
        Ok(())
    };
    let end = match start {
        Some(position) => {
            store.replay_from(position.next_offset, position.next_sequence, &mut visit)?
        }
        None => store.replay(&mut visit)?,
    };
    Ok((head, end))
}

/// The snapshots beside the journal file `file`, newest first, that the file still continues
/// ([`crate::snapshot::continues`]) and whose log history holds (`history_log_len` entries:
/// a snapshot that moved more of its log to history than history has cannot be used);
/// unreadable ones are passed over.
fn usable_snapshots(
    file: PathBuf,
    history_log_len: u64,
) -> impl Iterator<Item = crate::snapshot::Snapshot> {
    let dir = file.parent().map(|d| d.join(crate::snapshot::SNAPSHOT_DIR));
    dir.and_then(|dir| crate::snapshot::newest_first(&dir).ok())
        .into_iter()
        .flatten()
        .filter(move |snapshot| {
            snapshot.state.log_base <= history_log_len
                && crate::snapshot::continues(&file, &snapshot.position).unwrap_or(false)
        })
}

/// A store read back: the projection, the chain's end and the torn write set aside, if any.
struct Loaded {
    /// Everything durable, applied.
    state: State,
    /// Where the next entry goes.
    head: ChainHead,
    /// What was set aside, and where it was kept.
    torn_tail: Option<(Break, PathBuf)>,
}

/// Replays `store` into a fresh projection (entries from `stop_at` on count as torn) and
/// sets aside a torn tail; anything else broken is [`JournalError::Corrupt`].
fn load(store: &mut dyn JournalStore, stop_at: Option<u64>) -> Result<Loaded, JournalError> {
    load_after(store, None, None, stop_at)
}

/// [`load`] from a snapshot the caller checked continues in `store` (one chain only).
fn load_after(
    store: &mut dyn JournalStore,
    snapshot: Option<crate::snapshot::Snapshot>,
    history: Option<Arc<crate::history::History>>,
    stop_at: Option<u64>,
) -> Result<Loaded, JournalError> {
    let others = store.other_chains()?;
    let (mut state, start) = match snapshot {
        Some(snapshot) if others.is_empty() => (snapshot.state, Some(snapshot.position)),
        _ => (State::default(), None),
    };
    // A reversal after the snapshot may need a purchase the snapshot left in history.
    state.history = history;
    let mut own = Vec::new();
    let mut replayed = 0u64;
    let (head, end) = if others.is_empty() {
        replay_after(store, start.as_ref(), stop_at, &mut |entry| {
            state.apply_owned(entry)?;
            replayed += 1;
            // However long the journal after the snapshot, the projection stays about the
            // working set's size while it is replayed (as the snapshot thread's copy does).
            if replayed.is_multiple_of(crate::snapshot::REPLAY_MOVE_EVERY_ENTRIES)
                && let Some(history) = state.history.clone()
            {
                let now = state.newest_at.min(crate::window::clock_now());
                if let Err(error) = state.move_all(&history, now) {
                    tracing::warn!(%error, "moving to history while the journal is replayed");
                }
            }
            Ok(())
        })?
    } else {
        // Entries of this chain may depend on other chains' (a purchase here spending a
        // disbursement journaled by another node): read first, apply merged below.
        replay_until(store, stop_at, &mut |entry| {
            own.push(entry);
            Ok(())
        })?
    };
    let torn_tail = match end {
        None => None,
        Some(found) if found.kind.may_be_torn_write() => {
            match store.cut_tail(&found, JOURNAL_TORN_TAIL_BYTES_MAX)? {
                Some(side) => Some((found, side)),
                None => return Err(JournalError::Corrupt(found)),
            }
        }
        Some(found) => return Err(JournalError::Corrupt(found)),
    };
    if !others.is_empty() {
        let followed: Vec<(String, FollowedChain)> = others
            .iter()
            .map(|(name, entries)| {
                let cursor = if entries.is_empty() {
                    FollowedChain::default()
                } else {
                    FollowedChain {
                        next_sequence: entries.len() as u64 + 1,
                        last_hash: None,
                    }
                };
                (name.clone(), cursor)
            })
            .collect();
        let mut chains = others;
        chains.push((store.chain_name().to_string(), own));
        apply_merged(&mut state, chains).map_err(|(_, found)| JournalError::Corrupt(found))?;
        state.followed.extend(followed);
    }
    Ok(Loaded {
        state,
        head,
        torn_tail,
    })
}

/// Applies several chains' entries to `state` in the order every node and `verify` agree on:
/// the earliest acceptance time first, then the chain's name, then its sequence. Clocks of
/// different nodes differ, so an entry that breaks an invariant may only be early (a purchase
/// on one node spending a disbursement another node journaled on a clock behind): its chain
/// waits while the others go on, and only an entry no other chain's progress can help is a
/// break, reported with its chain's name.
pub(crate) fn apply_merged(
    state: &mut State,
    mut chains: Vec<(String, Vec<Entry>)>,
) -> Result<(), (String, Break)> {
    chains.sort_by(|a, b| a.0.cmp(&b.0));
    // Each chain's next entry, by position.
    let mut next = vec![0usize; chains.len()];
    let mut waiting = vec![false; chains.len()];
    loop {
        let candidate = chains
            .iter()
            .enumerate()
            .filter(|(i, _)| !waiting[*i])
            .filter_map(|(i, (_, entries))| {
                entries
                    .get(next[i])
                    .map(|entry| ((entry.at_unix_seconds, i, next[i]), i))
            })
            .min();
        let Some((_, i)) = candidate else {
            break;
        };
        let entry = chains[i].1[next[i]].clone();
        match state.apply_owned(entry) {
            Ok(_) => {
                next[i] += 1;
                waiting.iter_mut().for_each(|w| *w = false);
            }
            Err(_) => waiting[i] = true,
        }
    }
    for (i, (name, entries)) in chains.iter().enumerate() {
        if let Some(entry) = entries.get(next[i]) {
            let error = match state.apply(entry) {
                Err(error) => error,
                Ok(_) => continue,
            };
            return Err((
                name.clone(),
                Break {
                    sequence: next[i] as u64 + 1,
                    offset: 0,
                    kind: BreakKind::Invariant(error),
                },
            ));
        }
    }
    Ok(())
}

/// What opening found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Entries in the projection (from the snapshot and replayed).
    pub entries: u64,
    /// Entries the snapshot it started from covered (`None`: the whole journal was replayed).
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
    /// To the follower thread (a store shared with other nodes only); `None` once closing.
    follow_requests: Option<SyncSender<FollowReply>>,
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
        } = loaded;
        let report = OpenReport {
            entries: state.entries,
            from_snapshot,
            torn_tail,
        };
        let state = Arc::new(RwLock::new(state));
        let poisoned = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = mpsc::sync_channel(JOURNAL_QUEUE_RECORDS_MAX);
        let stats = Arc::new(JournalStats::default());
        let (prepared_sender, prepared_receiver) =
            mpsc::sync_channel(JOURNAL_BATCHES_IN_FLIGHT_MAX);
        let syncer = Syncer {
            prepared: prepared_receiver,
            store,
            poisoned: Arc::clone(&poisoned),
            failed_from: None,
            stats: Arc::clone(&stats),
        };
        let sequencer = Sequencer {
            receiver,
            prepared: prepared_sender,
            state: Arc::clone(&state),
            poisoned: Arc::clone(&poisoned),
            head,
            recovery_due: None,
            stats: Arc::clone(&stats),
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
        let journal = Journal {
            sender: Some(sender),
            state,
            poisoned,
            stats,
            follow_requests,
            threads,
        };
        Ok((journal, report))
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

/// Least time between a failed write (or a failed recovery) and the next attempt to recover:
/// each attempt re-reads the whole store, so a cluster that is down is not asked more often.
/// Until then every submission is answered [`JournalError::Poisoned`] (`91`) at once.
pub const JOURNAL_RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// Most entries of one other chain read and applied in one round of following: bounds the
/// rows one read asks the cluster for and how long the projection's lock is held for them.
pub const JOURNAL_FOLLOW_BATCH_ENTRIES: usize = 1_024;

/// Between two polls of the other chains when no caller asks sooner: how stale a node's view
/// of the other nodes' purchases (duplicates, batch totals, settlement) may be.
pub const JOURNAL_FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// Callers waiting for the next follow at once; one more is answered
/// [`JournalError::Busy`] (`91`).
pub const JOURNAL_FOLLOW_WAITERS_MAX: usize = 1_024;

/// Rounds of [`JOURNAL_FOLLOW_BATCH_ENTRIES`] one follow reads for its waiters before it
/// answers them, so a node far behind does not keep a batch close waiting forever.
pub const JOURNAL_FOLLOW_ROUNDS_MAX: usize = 16;

/// A caller of [`Journal::follow`] waiting for the follower's answer.
type FollowReply = oneshot::Sender<Result<u64, JournalError>>;

/// Another chain's entries read in one round: the chain, where the projection was when they
/// were read, the last hash learned on the way, and the entries with their sequences and
/// hashes.
type FollowedRead = (String, FollowedChain, Option<Hash>, Vec<(u64, Hash, Entry)>);

/// The follower thread: polls the other chains and applies what they gained to the
/// projection, merged in the order opening uses; answers [`Journal::follow`] callers.
struct Follower {
    /// Reads the other chains.
    source: Box<dyn ChainFollower>,
    /// Callers of [`Journal::follow`], bounded by [`JOURNAL_FOLLOW_WAITERS_MAX`].
    requests: Receiver<FollowReply>,
    /// The projection, shared with the sequencer.
    state: Arc<RwLock<State>>,
    /// Shared with the handle; set here when another chain changed under what was applied.
    poisoned: Arc<AtomicBool>,
}

impl Follower {
    fn run(mut self) {
        loop {
            let mut waiting = Vec::new();
            match self.requests.recv_timeout(JOURNAL_FOLLOW_INTERVAL) {
                Ok(reply) => waiting.push(reply),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            while let Ok(reply) = self.requests.try_recv() {
                waiting.push(reply);
            }
            let rounds = if waiting.is_empty() {
                1
            } else {
                JOURNAL_FOLLOW_ROUNDS_MAX
            };
            let mut outcome = Ok(0u64);
            for _ in 0..rounds {
                match self.follow_once() {
                    Ok((found, more)) => {
                        outcome = outcome.map(|total| total + found);
                        if !more {
                            break;
                        }
                    }
                    Err(error) => {
                        metrics::counter!("ssn_journal_follow_failures").increment(1);
                        outcome = Err(error.to_string());
                        break;
                    }
                }
            }
            for reply in waiting {
                let _ = reply.send(outcome.clone().map_err(JournalError::Follow));
            }
        }
    }

    /// One round: reads each other chain from where the projection is and applies what it
    /// can. Returns the entries applied and whether a chain had more than one round holds.
    fn follow_once(&mut self) -> Result<(u64, bool), JournalError> {
        if self.poisoned.load(Ordering::Acquire) {
            // The recovery that clears the flag reloads every chain anyway.
            return Ok((0, false));
        }
        let names = self.source.chains()?;
        let cursors: Vec<(String, FollowedChain)> = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            names
                .into_iter()
                .map(|name| {
                    let cursor = state.followed.get(&name).copied().unwrap_or_default();
                    (name, cursor)
                })
                .collect()
        };
        let mut reads: Vec<FollowedRead> = Vec::with_capacity(cursors.len());
        let mut more = false;
        for (name, cursor) in cursors {
            // Read at open without its hash: read the last applied entry again to learn it.
            let from = match cursor.last_hash {
                None => cursor.next_sequence.saturating_sub(1).max(1),
                Some(_) => cursor.next_sequence,
            };
            let read = self
                .source
                .read_from(&name, from, JOURNAL_FOLLOW_BATCH_ENTRIES)?;
            more |= read.len() >= JOURNAL_FOLLOW_BATCH_ENTRIES;
            let mut last_hash = cursor.last_hash;
            let mut learned = None;
            let mut entries = Vec::new();
            for (expected, encoded) in (from..).zip(read) {
                if encoded.sequence != expected || !encoded.hash_is_intact() {
                    break;
                }
                if last_hash.is_some_and(|hash| hash != encoded.previous_hash) {
                    // The other node set aside a failed batch this projection had already
                    // applied and wrote other entries in its place: what was applied is no
                    // longer durable. Reload everything, as after a failed write of our own.
                    self.poisoned.store(true, Ordering::Release);
                    metrics::counter!("ssn_journal_follow_reloads").increment(1);
                    return Ok((0, false));
                }
                if expected < cursor.next_sequence {
                    learned = Some(encoded.hash);
                    last_hash = learned;
                    continue;
                }
                let Ok(entry) = encoded.decode() else {
                    break;
                };
                last_hash = Some(encoded.hash);
                entries.push((encoded.sequence, encoded.hash, entry));
            }
            reads.push((name, cursor, learned, entries));
        }
        Ok((self.apply(reads), more))
    }

    /// Applies what one round read, merged like [`apply_merged`]: earliest acceptance time,
    /// then chain name, then sequence; an entry that breaks an invariant waits while another
    /// chain progresses, and stays for the next round otherwise. A chain whose place in the
    /// projection moved since it was read (a recovery reloaded it) is left for the next round.
    fn apply(&self, mut reads: Vec<FollowedRead>) -> u64 {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if self.poisoned.load(Ordering::Acquire) {
            return 0;
        }
        reads.retain(|(name, cursor, _, _)| {
            state.followed.get(name).copied().unwrap_or_default() == *cursor
        });
        for (name, cursor, learned, _) in &reads {
            if cursor.last_hash.is_none() && learned.is_some() {
                state.followed.insert(
                    name.clone(),
                    FollowedChain {
                        next_sequence: cursor.next_sequence,
                        last_hash: *learned,
                    },
                );
            }
        }
        reads.sort_by(|a, b| a.0.cmp(&b.0));
        let mut next = vec![0usize; reads.len()];
        let mut waiting = vec![false; reads.len()];
        let mut applied = 0u64;
        loop {
            let candidate = reads
                .iter()
                .enumerate()
                .filter(|(i, _)| !waiting[*i])
                .filter_map(|(i, read)| {
                    read.3
                        .get(next[i])
                        .map(|(_, _, entry)| ((entry.at_unix_seconds, i), i))
                })
                .min();
            let Some((_, i)) = candidate else {
                break;
            };
            let (sequence, hash, entry) = &reads[i].3[next[i]];
            match state.apply(entry) {
                Ok(_) => {
                    state.followed.insert(
                        reads[i].0.clone(),
                        FollowedChain {
                            next_sequence: sequence + 1,
                            last_hash: Some(*hash),
                        },
                    );
                    next[i] += 1;
                    applied += 1;
                    waiting.iter_mut().for_each(|w| *w = false);
                }
                Err(_) => waiting[i] = true,
            }
        }
        if waiting.iter().any(|w| *w) {
            metrics::counter!("ssn_journal_follow_waiting").increment(1);
        }
        applied
    }
}

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

/// Work for the sync thread, in the order the sequencer produced it.
enum SyncWork {
    /// Write this batch and answer its callers.
    Batch(PreparedBatch),
    /// Re-read the store after a failed write (everything sent before has been answered).
    Recover(SyncSender<Result<Loaded, JournalError>>),
}

/// A batch checked, applied and encoded, on its way to the disk.
struct PreparedBatch {
    /// The entries to write, chained.
    entries: Vec<EncodedEntry>,
    /// Who to answer, with what, once the entries are durable.
    replies: Vec<(Reply, Result<Applied, JournalError>)>,
}

/// The sequencer thread: checks each record against the invariants, applies it to the
/// projection, encodes and chains it. It never waits for the disk.
struct Sequencer {
    /// Submissions, bounded by JOURNAL_QUEUE_RECORDS_MAX.
    receiver: Receiver<Submission>,
    /// To the sync thread, bounded by JOURNAL_BATCHES_IN_FLIGHT_MAX.
    prepared: SyncSender<SyncWork>,
    /// The projection it keeps current.
    state: Arc<RwLock<State>>,
    /// Shared with the handle.
    poisoned: Arc<AtomicBool>,
    /// The chain's end.
    head: ChainHead,
    /// After a failed write: when the next recovery may be tried.
    recovery_due: Option<Instant>,
    /// Shared with the handle.
    stats: Arc<JournalStats>,
}

impl Sequencer {
    fn run(mut self) {
        let mut batch: Vec<Submission> = Vec::with_capacity(JOURNAL_BATCH_RECORDS_MAX);
        while let Ok(first) = self.receiver.recv() {
            batch.push(first);
            while batch.len() < JOURNAL_BATCH_RECORDS_MAX {
                match self.receiver.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let prepared = self.prepare(&mut batch);
            if let Err(mpsc::SendError(SyncWork::Batch(prepared))) =
                self.prepared.send(SyncWork::Batch(prepared))
            {
                // The sync thread is gone (it only stops when this thread does): answer anyway.
                for (reply, _) in prepared.replies {
                    let _ = reply.send(Err(JournalError::Closed));
                }
            }
        }
    }

    /// After a failed write, once [`JOURNAL_RECOVERY_INTERVAL`] has passed: has the sync
    /// thread re-read the store, and puts the projection and chain end it found in place of
    /// the ones that include the unwritten batches. True when the journal may write again.
    fn recover(&mut self) -> bool {
        let now = Instant::now();
        match self.recovery_due {
            None => {
                self.recovery_due = Some(now + JOURNAL_RECOVERY_INTERVAL);
                return false;
            }
            Some(due) if now < due => return false,
            Some(_) => {}
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let loaded = match self.prepared.send(SyncWork::Recover(reply)) {
            Ok(()) => answer.recv().ok(),
            Err(_) => None,
        };
        let Some(Ok(loaded)) = loaded else {
            self.recovery_due = Some(Instant::now() + JOURNAL_RECOVERY_INTERVAL);
            return false;
        };
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The full replay holds everything again; history stays where it is.
        let history = state.history.take();
        *state = loaded.state;
        state.history = history;
        self.head = loaded.head;
        // Cleared under the projection's lock: a reader that sees the flag clear sees the
        // rebuilt projection.
        self.poisoned.store(false, Ordering::Release);
        drop(state);
        self.recovery_due = None;
        self.stats.recoveries.fetch_add(1, Ordering::Relaxed);
        if loaded.torn_tail.is_some() {
            self.stats.recovered_torn.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    fn prepare(&mut self, batch: &mut Vec<Submission>) -> PreparedBatch {
        let mut replies = Vec::with_capacity(batch.len());
        let mut entries = Vec::with_capacity(batch.len());
        if self.poisoned.load(Ordering::Acquire) && !self.recover() {
            for submission in batch.drain(..) {
                replies.push((submission.into_reply(), Err(JournalError::Poisoned)));
            }
            return PreparedBatch { entries, replies };
        }
        let bodies: Vec<Result<Vec<u8>, JournalError>> = batch.iter().map(encode).collect();
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let locked = std::time::Instant::now();
        for (position, (submission, body)) in batch.drain(..).zip(bodies).enumerate() {
            if position > 0 && position % JOURNAL_APPLY_CHUNK_RECORDS == 0 {
                // Let waiting readers (every purchase's precheck) in between chunks.
                drop(state);
                state = self
                    .state
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            let (entry, reply) = match submission {
                Submission::Barrier { reply } => {
                    replies.push((reply, Ok(Applied::Done)));
                    continue;
                }
                Submission::Record { entry, reply } => (entry, reply),
            };
            let outcome = body.and_then(|body| {
                let applied = state.apply_owned(*entry)?;
                let encoded = EncodedEntry::new(self.head.next_sequence, self.head.last_hash, body);
                self.head = ChainHead {
                    next_sequence: self.head.next_sequence + 1,
                    last_hash: encoded.hash,
                };
                entries.push(encoded);
                Ok(applied)
            });
            replies.push((reply, outcome));
        }
        let (entries_held, purchases_held) = (state.entries, state.purchases.len());
        drop(state);
        self.stats
            .apply_nanos
            .fetch_add(locked.elapsed().as_nanos() as u64, Ordering::Relaxed);
        // For operators (the switch exports them), set outside the projection's lock: what
        // the projection holds in memory; it keeps every purchase, so both grow with the
        // journal (a restart replays it all).
        metrics::gauge!("ssn_projection_entries").set(entries_held as f64);
        metrics::gauge!("ssn_projection_purchases").set(purchases_held as f64);
        PreparedBatch { entries, replies }
    }
}

/// The sync thread: writes each prepared batch with one write and one fdatasync, then answers.
struct Syncer {
    /// From the sequencer.
    prepared: Receiver<SyncWork>,
    /// Where entries go.
    store: Box<dyn JournalStore>,
    /// Shared with the handle and the sequencer; set here, cleared by the sequencer.
    poisoned: Arc<AtomicBool>,
    /// The first sequence number of the first batch whose write failed, until recovered:
    /// from there on the store holds nothing anybody was told about.
    failed_from: Option<u64>,
    /// Shared with the handle.
    stats: Arc<JournalStats>,
}

impl Syncer {
    fn run(mut self) {
        // Work taken from the channel while gathering a batch that belongs to the next round.
        let mut carried: Option<SyncWork> = None;
        loop {
            let work = match carried.take() {
                Some(work) => work,
                None => match self.prepared.recv() {
                    Ok(work) => work,
                    Err(_) => break,
                },
            };
            let mut batch = match work {
                SyncWork::Batch(batch) => batch,
                SyncWork::Recover(reply) => {
                    let loaded = load(self.store.as_mut(), self.failed_from);
                    if loaded.is_ok() {
                        self.failed_from = None;
                    }
                    let _ = reply.send(loaded);
                    continue;
                }
            };
            // Batches the sequencer finished while the last write was syncing go out with this
            // one: one write and one fdatasync for all of them, in order. A recovery request
            // waits for the next round, behind everything sent before it.
            while carried.is_none() && batch.entries.len() < JOURNAL_BATCH_RECORDS_MAX {
                match self.prepared.try_recv() {
                    Ok(SyncWork::Batch(next))
                        if batch.entries.len() + next.entries.len()
                            <= JOURNAL_BATCH_RECORDS_MAX =>
                    {
                        batch.entries.extend(next.entries);
                        batch.replies.extend(next.replies);
                    }
                    Ok(other) => carried = Some(other),
                    Err(_) => break,
                }
            }
            let written = if self.failed_from.is_some() {
                // After a failed write the chain on disk ends somewhere unknown: writing later
                // batches would leave a gap. Refuse everything until reopened.
                Err(None)
            } else if batch.entries.is_empty() {
                Ok(())
            } else {
                let started = std::time::Instant::now();
                let written = self.store.append_durable(&batch.entries);
                let elapsed = started.elapsed();
                self.stats
                    .sync_nanos
                    .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
                // For operators (the switch exports them): how well group commit batches,
                // and what one durable write costs.
                metrics::histogram!("ssn_journal_batch_records").record(batch.entries.len() as f64);
                metrics::histogram!("ssn_journal_sync_seconds").record(elapsed.as_secs_f64());
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .entries
                    .fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
                written.map_err(|e| Some(Arc::new(e)))
            };
            if written.is_err() {
                if self.failed_from.is_none() {
                    self.failed_from = batch.entries.first().map(|entry| entry.sequence);
                }
                self.poisoned.store(true, Ordering::Release);
            }
            for (reply, outcome) in batch.replies {
                let outcome = match &written {
                    Ok(()) => outcome,
                    Err(Some(error)) => Err(JournalError::WriteFailed(Arc::clone(error))),
                    Err(None) => Err(JournalError::Poisoned),
                };
                // A caller that stopped waiting (timed out, cancelled) is no reason to stop.
                let _ = reply.send(outcome);
            }
        }
    }
}

impl Submission {
    fn into_reply(self) -> Reply {
        match self {
            Submission::Record { reply, .. } | Submission::Barrier { reply } => reply,
        }
    }
}

fn encode(submission: &Submission) -> Result<Vec<u8>, JournalError> {
    match submission {
        Submission::Barrier { .. } => Ok(Vec::new()),
        Submission::Record { entry, .. } => {
            let body = postcard::to_extend(entry, Vec::with_capacity(JOURNAL_BODY_BYTES_TYPICAL))
                .map_err(|e| JournalError::Encoding(e.to_string()))?;
            if body.len() > JOURNAL_ENTRY_BYTES_MAX {
                return Err(JournalError::Encoding(format!(
                    "{} bytes is above the limit",
                    body.len()
                )));
            }
            Ok(body)
        }
    }
}

/// The journal file inside a data directory.
pub fn journal_path(data_dir: &Path) -> PathBuf {
    data_dir.join("journal.log")
}

/// Creates the data directory if it does not exist.
pub fn ensure_dir(data_dir: &Path) -> io::Result<()> {
    fs::create_dir_all(data_dir)
}
