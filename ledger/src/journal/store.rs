//! Where a journal lives: the [`JournalStore`] trait, the file store, and following other
//! nodes' chains ([`ChainFollower`]).

use super::*;

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

    /// Least time between a failed write and the next attempt to recover (each re-reads the
    /// whole store): [`JOURNAL_RECOVERY_INTERVAL`] unless a store knows better (a simulated
    /// disk recovers at once).
    fn recovery_interval(&self) -> Duration {
        JOURNAL_RECOVERY_INTERVAL
    }

    /// Other writers' chains in the same store (several switch nodes on one Scylla keyspace),
    /// each by name with its entries up to its first break (a chain still being written, or
    /// torn, is read as far as it is whole). Empty for a store with one writer.
    fn other_chains(&mut self) -> io::Result<Vec<(String, Vec<Entry>)>> {
        Ok(Vec::new())
    }

    /// The newest snapshot shared by every writer of the store (Scylla) that every chain it
    /// covers still continues; `Ok(None)` when there is none, or for a store with one writer.
    fn shared_snapshot(&mut self) -> io::Result<Option<SharedSnapshot>> {
        Ok(None)
    }

    /// Like [`JournalStore::other_chains`], each chain only after the position `after` gives
    /// for it (a shared snapshot's); a chain `after` does not name is read from its start.
    fn other_chains_after(
        &mut self,
        after: &[ChainPosition],
    ) -> io::Result<Vec<(String, Vec<Entry>)>> {
        let mut chains = self.other_chains()?;
        for (name, entries) in &mut chains {
            let covered = ChainPosition::covered_of(after, name);
            entries.drain(
                ..usize::try_from(covered)
                    .unwrap_or(usize::MAX)
                    .min(entries.len()),
            );
        }
        Ok(chains)
    }

    /// A taker of shared snapshots that works beside this store while it writes (see
    /// [`SharedSnapshotTaker`]); `None` for a store with one writer.
    fn snapshot_taker(&self) -> Option<Box<dyn SharedSnapshotTaker>> {
        None
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

/// Where a shared snapshot stands in one chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainPosition {
    /// The chain's name.
    pub chain: String,
    /// The chain's next entry after the snapshot.
    pub next_sequence: u64,
    /// The hash of the chain's last entry the snapshot covers (zeros when none).
    pub last_hash: Hash,
}

impl ChainPosition {
    /// Entries of `chain` that `positions` cover (0 when it does not name it).
    pub fn covered_of(positions: &[ChainPosition], chain: &str) -> u64 {
        positions
            .iter()
            .find(|p| p.chain == chain)
            .map_or(0, |p| p.next_sequence.saturating_sub(1))
    }

    /// The position of `chain` in `positions` as a snapshot position (no byte offsets: a
    /// shared store finds entries by sequence).
    pub fn position_of(
        positions: &[ChainPosition],
        chain: &str,
    ) -> Option<crate::snapshot::Position> {
        positions
            .iter()
            .find(|p| p.chain == chain)
            .map(|p| crate::snapshot::Position {
                next_sequence: p.next_sequence,
                last_hash: p.last_hash,
                last_offset: 0,
                next_offset: 0,
            })
    }
}

/// A snapshot shared by the writers of one store (several switch nodes on one keyspace): the
/// projection after each chain's entries up to its position, applied merged.
#[derive(Debug)]
pub struct SharedSnapshot {
    /// Its name in the store.
    pub id: String,
    /// Where it stands in every chain it covers.
    pub chains: Vec<ChainPosition>,
    /// The projection (its `followed` is the writer's; the loader sets its own).
    pub state: State,
}

impl SharedSnapshot {
    /// Entries it covers, over all chains.
    pub fn covered(&self) -> u64 {
        self.chains
            .iter()
            .map(|p| p.next_sequence.saturating_sub(1))
            .sum()
    }
}

/// Takes shared snapshots beside a running journal (Scylla): any node may take one covering
/// what the chains hold whole; readers take the newest complete one.
pub trait SharedSnapshotTaker: Send + fmt::Debug + 'static {
    /// Entries the newest complete snapshot covers (0 when there is none).
    fn covered(&mut self) -> io::Result<u64>;

    /// Makes the next snapshot from the newest usable one and every chain's entries after it,
    /// as far as each is whole, without touching the chains; returns the entries it covers,
    /// `None` when it wrote none (nothing new, or `stop` said so).
    fn take(&mut self, stop: &dyn Fn() -> bool) -> io::Result<Option<u64>>;
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
    pub(super) path: PathBuf,
    /// Opened for appending.
    pub(super) file: File,
    /// Reused between batches so a batch costs no allocation once warm.
    pub(super) buffer: Vec<u8>,
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
