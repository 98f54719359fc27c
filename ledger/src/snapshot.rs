//! Snapshots of the projection: start-up loads the newest one and replays only the journal
//! after it.
//!
//! A snapshot is the whole [`State`] after entry `next_sequence - 1`, in a canonical encoding
//! (every map as a list sorted by key, so the same state is always the same bytes), with
//! where it stands in the chain: the hash of the last entry it covers, the byte offset of that
//! entry's frame in the journal file and of the next frame. Opening uses it only when the
//! journal still holds that very entry at that offset with that hash; otherwise (the journal
//! was cut back after a failed write, or belongs to another ledger) it tries the previous
//! snapshot, and at last replays the whole journal. A snapshot never replaces the journal: it
//! is derived, and `verify` checks each one against a full replay.
//!
//! Files are `DATA_DIR/snapshots/snapshot-SEQUENCE.snap`: written to a `.partial` file,
//! synced, renamed and the directory synced, so a crash while one is written leaves the
//! previous ones in force; the newest [`SNAPSHOTS_KEPT`] are kept. Each ends with the SHA-256
//! of everything before it, so a damaged file is never loaded.
//!
//! Snapshots are taken beside the running ledger, never under the projection's lock:
//! [`take`] reads the newest snapshot and the journal file after it into a private state,
//! and writes the next one. The ledger runs it on its own thread ([`Snapshotter`]) once the
//! journal has grown by [`SNAPSHOT_EVERY_BYTES`] since the newest snapshot; operators may run
//! it with `ssn-ledger snapshot`. These files are the embedded file journal's; on ScyllaDB the
//! nodes of a keyspace share snapshots in it (`scylla::snapshots`), in the same encoding.

use crate::ids::{CardId, MerchantId, TerminalId, TransferId};
use crate::journal::{BreakKind, ChainHead, EncodedEntry, Hash, read_frames_from};
use crate::money::Money;
use crate::record::{Account, Record};
use crate::state::{BatchSums, CardState, PurchaseState, State, TerminalBatches};
use crate::totals::Totals;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// While the journal is replayed with history at hand ([`take`], and opening after a
/// snapshot), what has left the working set moves there every this many entries.
pub const REPLAY_MOVE_EVERY_ENTRIES: u64 = 65_536;
/// The first bytes of a snapshot file.
/// (A snapshot of another version is not read: the start replays the journal from the
/// snapshot before it, or from its beginning.)
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"SSNSNAP4";
/// Snapshots kept; older ones are removed after a new one is in place.
pub const SNAPSHOTS_KEPT: usize = 2;
/// Journal bytes after the newest snapshot that make the ledger take the next one (about
/// 250,000 purchases).
pub const SNAPSHOT_EVERY_BYTES: u64 = 64 << 20;
/// How often the ledger's snapshot thread looks at the journal's size.
pub const SNAPSHOT_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// Least time between two snapshots the thread takes: at high rates a snapshot's replay
/// and write (CPU and a second copy of the projection while it lasts) stay occasional.
pub const SNAPSHOT_SPACING: std::time::Duration = std::time::Duration::from_secs(300);
/// The snapshot directory inside a data directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// Where a snapshot stands in the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The chain after the snapshot: the next entry's sequence and the last entry's hash.
    pub next_sequence: u64,
    /// The last entry's hash (zeros when the snapshot covers no entry).
    pub last_hash: Hash,
    /// Byte offset of the last entry's frame in the journal file (0 when none).
    pub last_offset: u64,
    /// Byte offset of the next entry's frame.
    pub next_offset: u64,
}

impl Position {
    /// The chain head this position continues.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            next_sequence: self.next_sequence,
            last_hash: self.last_hash,
        }
    }
}

/// A snapshot as loaded.
#[derive(Debug)]
pub struct Snapshot {
    /// Where it stands.
    pub position: Position,
    /// The projection after `position.next_sequence - 1` entries.
    pub state: State,
    /// The file it came from.
    pub path: PathBuf,
}

/// The projection as a snapshot holds it: every map as a list sorted by key.
#[derive(Serialize, Deserialize)]
struct Image {
    accounts: Vec<(Account, Money)>,
    cards: Vec<(CardId, CardState)>,
    purchases: Vec<(TransferId, PurchaseState)>,
    tombstones: Vec<TransferId>,
    transfers: Vec<(TransferId, Record)>,
    terminals: Vec<(TerminalId, TerminalBatches)>,
    transfer_times: Vec<(TransferId, i64)>,
    batch_sums: Vec<((TerminalId, u64), BatchSums)>,
    settled_batches: Vec<(TerminalId, u64)>,
    departed_batches: Vec<(TerminalId, crate::state::ClosedBatch)>,
    carried: Vec<(MerchantId, Money)>,
    days: crate::days::BusinessDays,
    log: Vec<(i64, TransferId)>,
    log_base: u64,
    pinned: Vec<TransferId>,
    horizon: i64,
    entries: u64,
    newest_at: i64,
    followed: Vec<(String, crate::journal::FollowedChain)>,
    totals: Totals,
}

fn sorted<K: Ord + Clone, V: Clone>(map: impl IntoIterator<Item = (K, V)>) -> Vec<(K, V)> {
    let mut items: Vec<(K, V)> = map.into_iter().collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items
}

/// The canonical bytes of what a projection holds beyond history ([`crate::window`]): no
/// purchases, reversals, per-card records (disbursements, closes, revocations), tombstones, log,
/// card transfers, departed batches or the batches closed on settled dates. Equal for a
/// projection and any working set of it.
pub fn encode_core(state: &State) -> Vec<u8> {
    postcard::to_stdvec(&image(state, true)).expect("a projection encodes")
}

/// Whether `working` is `full` with part of its history moved out ([`crate::window`]): equal
/// beyond history ([`encode_core`]), and every purchase, reversal and tombstone it holds is
/// `full`'s, its log is `full`'s from its `log_base` on, and so is each card's transfers; the
/// settled batches it has still to move are the last of `full`'s.
/// (Whether what is missing is in the history file is not checked here.)
pub fn is_working_set_of(working: &State, full: &State) -> bool {
    let log_agrees = working.log_base >= full.log_base
        && usize::try_from(working.log_base - full.log_base)
            .ok()
            .is_some_and(|skip| {
                full.log.len() == skip + working.log.len()
                    && full.log.range(skip..).eq(working.log.iter())
            });
    let cards_agree = full.cards.iter().all(|(card, state)| {
        let from = state
            .history
            .partition_point(|row| row.index < working.log_base);
        working
            .cards
            .get(card)
            .is_some_and(|w| w.history == state.history[from..])
    });
    log_agrees
        && cards_agree
        && full.departed_batches.ends_with(&working.departed_batches)
        && working
            .purchases
            .iter()
            .all(|(id, p)| full.purchases.get(id) == Some(p))
        && working
            .tombstones
            .iter()
            .all(|id| full.tombstones.contains(id))
        && working
            .transfers
            .iter()
            .all(|(id, r)| full.transfers.get(id) == Some(r))
        && working
            .transfer_times
            .iter()
            .all(|(id, at)| full.transfer_times.get(id) == Some(at))
        && encode_core(working) == encode_core(full)
}

/// Whether two projections of the same entries, applied in different orders (several
/// chains merged at different moments, as a shared snapshot and its tails are), agree on
/// everything but the order-dependent log: [`encode_core`], every purchase with its answer,
/// and the tombstones.
pub fn same_beyond_order(a: &State, b: &State) -> bool {
    encode_core(a) == encode_core(b)
        && a.purchases.len() == b.purchases.len()
        && a.purchases
            .iter()
            .all(|(id, p)| b.purchases.get(id) == Some(p))
        && a.tombstones == b.tombstones
}

/// The canonical bytes of a projection: equal states, equal bytes.
pub fn encode_state(state: &State) -> Vec<u8> {
    // Plain data: postcard cannot fail on it.
    postcard::to_stdvec(&image(state, false)).expect("a projection encodes")
}

/// The projection as a snapshot holds it; with `core_only`, without what moves to history.
fn image(state: &State, core_only: bool) -> Image {
    let moves = |id: &TransferId| {
        core_only
            && state.transfers.get(id).is_some_and(|record| {
                matches!(record, Record::Reversal(_)) || crate::window::moves_by_time(record)
            })
    };
    let mut tombstones: Vec<TransferId> = if core_only {
        Vec::new()
    } else {
        state.tombstones.iter().copied().collect()
    };
    tombstones.sort();
    let mut settled_batches: Vec<(TerminalId, u64)> =
        state.settled_batches.iter().cloned().collect();
    settled_batches.sort();
    Image {
        accounts: sorted(state.accounts.iter().map(|(k, v)| (k.clone(), *v))),
        cards: sorted(state.cards.iter().map(|(k, v)| {
            let mut card = v.clone();
            if core_only {
                card.history.clear();
            }
            (*k, card)
        })),
        purchases: if core_only {
            Vec::new()
        } else {
            sorted(state.purchases.iter().map(|(k, v)| (*k, v.clone())))
        },
        tombstones,
        transfers: sorted(
            state
                .transfers
                .iter()
                .filter(|(k, _)| !moves(k))
                .map(|(k, v)| (*k, v.clone())),
        ),
        terminals: sorted(state.terminals.iter().map(|(k, v)| (k.clone(), v.clone()))),
        transfer_times: sorted(
            state
                .transfer_times
                .iter()
                .filter(|(k, _)| !moves(k))
                .map(|(k, v)| (*k, *v)),
        ),
        batch_sums: sorted(state.batch_sums.iter().map(|(k, v)| (k.clone(), v.clone()))),
        settled_batches,
        departed_batches: if core_only {
            Vec::new()
        } else {
            state.departed_batches.clone()
        },
        carried: sorted(state.carried.iter().map(|(k, v)| (k.clone(), *v))),
        days: {
            // The batches closed on a settled date move to history.
            let mut days = state.days.clone();
            if core_only {
                days.closed_batches
                    .retain(|date, _| !state.is_settled(*date));
            }
            days
        },
        log: if core_only {
            Vec::new()
        } else {
            state.log.iter().copied().collect()
        },
        log_base: if core_only { 0 } else { state.log_base },
        pinned: if core_only {
            Vec::new()
        } else {
            state.pinned.clone()
        },
        horizon: if core_only { 0 } else { state.horizon },
        entries: state.entries,
        newest_at: state.newest_at,
        followed: sorted(state.followed.iter().map(|(k, v)| (k.clone(), *v))),
        totals: state.totals.clone(),
    }
}

/// The projection from its canonical bytes.
pub fn decode_state(bytes: &[u8]) -> Result<State, postcard::Error> {
    let image: Image = postcard::from_bytes(bytes)?;
    let mut state = State {
        accounts: image.accounts.into_iter().collect(),
        cards: image.cards.into_iter().collect(),
        tombstones: image.tombstones.into_iter().collect(),
        transfers: image.transfers.into_iter().collect(),
        terminals: image.terminals.into_iter().collect(),
        transfer_times: image.transfer_times.into_iter().collect(),
        batch_sums: image.batch_sums.into_iter().collect(),
        settled_batches: image.settled_batches.into_iter().collect(),
        departed_batches: image.departed_batches,
        carried: image.carried.into_iter().collect(),
        days: image.days,
        log: image.log.into(),
        log_base: image.log_base,
        pinned: image.pinned,
        horizon: image.horizon,
        entries: image.entries,
        newest_at: image.newest_at,
        followed: image.followed.into_iter().collect(),
        totals: image.totals,
        ..State::default()
    };
    for (id, purchase) in image.purchases {
        state.purchases.insert(id, purchase);
    }
    Ok(state)
}

fn file_name(next_sequence: u64) -> String {
    format!("snapshot-{next_sequence:020}.snap")
}

/// Writes a snapshot into `dir` (created if missing) so that a crash at any point leaves the
/// snapshots already there in force; then removes all but the newest [`SNAPSHOTS_KEPT`].
pub fn write(dir: &Path, position: &Position, state: &State) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let header = postcard::to_stdvec(position).expect("a position encodes");
    let body = encode_state(state);
    let mut bytes = Vec::with_capacity(SNAPSHOT_MAGIC.len() + 8 + header.len() + body.len() + 32);
    bytes.extend_from_slice(&SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&u32::try_from(header.len()).expect("small").to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&body);
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    let name = file_name(position.next_sequence);
    // Its own name per writer: the ledger's thread and an operator's command may overlap.
    let partial = dir.join(format!(
        "{name}.{}-{:?}.partial",
        std::process::id(),
        std::thread::current().id()
    ));
    let path = dir.join(&name);
    {
        let mut file = File::create(&partial)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    fs::rename(&partial, &path)?;
    File::open(dir)?.sync_all()?;
    let mut all = listed(dir)?;
    all.reverse();
    for old in all.iter().skip(SNAPSHOTS_KEPT) {
        let _ = fs::remove_file(old);
    }
    Ok(path)
}

/// The snapshot files of `dir`, oldest first (none when it does not exist).
fn listed(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snapshot-") && n.ends_with(".snap"))
        })
        .collect();
    paths.sort();
    Ok(paths)
}

/// Sets a snapshot the journal after it does not apply to aside, as `….snap.unusable` beside
/// it: no start or snapshot uses it again, and an operator can look at it (`verify` says how
/// it differs). Returns the new name.
pub fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let aside = path.with_extension("snap.unusable");
    fs::rename(path, &aside)?;
    Ok(aside)
}

/// Reads one snapshot file whole, checking its magic and checksum.
pub fn read(path: &Path) -> io::Result<Snapshot> {
    let bytes = fs::read(path)?;
    let invalid = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    if bytes.len() < SNAPSHOT_MAGIC.len() + 4 + 8 + 32 || bytes[..8] != SNAPSHOT_MAGIC {
        return Err(invalid("not a snapshot"));
    }
    let (content, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(content).as_slice() != digest {
        return Err(invalid("checksum mismatch"));
    }
    let header_len = u32::from_le_bytes(content[8..12].try_into().expect("4 bytes")) as usize;
    let header = content
        .get(12..12 + header_len)
        .ok_or_else(|| invalid("header"))?;
    let position: Position = postcard::from_bytes(header).map_err(|_| invalid("header"))?;
    let body_start = 12 + header_len + 8;
    let body_len = content
        .get(12 + header_len..body_start)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or_else(|| invalid("length"))?;
    let body = content
        .get(body_start..)
        .filter(|b| b.len() as u64 == body_len)
        .ok_or_else(|| invalid("length"))?;
    let state = decode_state(body).map_err(|e| invalid(&format!("state: {e}")))?;
    Ok(Snapshot {
        position,
        state,
        path: path.to_path_buf(),
    })
}

/// The snapshots of `dir` that can be read, newest first, lazily: a damaged one is skipped.
pub fn newest_first(dir: &Path) -> io::Result<impl Iterator<Item = Snapshot> + use<>> {
    let mut paths = listed(dir)?;
    paths.reverse();
    Ok(paths.into_iter().filter_map(|path| read(&path).ok()))
}

/// The position of the newest snapshot in `dir`, from its header alone (not checked: for
/// deciding when to take the next one, never for loading).
fn newest_position(dir: &Path) -> Option<Position> {
    positions(dir).ok()?.pop().map(|(_, position)| position)
}

/// Every snapshot file of `dir` with the position its header names, oldest first; files whose
/// header cannot be read are left out. Headers only: a file is checked whole when it is read.
pub fn positions(dir: &Path) -> io::Result<Vec<(PathBuf, Position)>> {
    use std::io::Read;
    let header = |path: &Path| -> Option<Position> {
        let mut head = [0u8; 12 + 128];
        let read = File::open(path).ok()?.read(&mut head).ok()?;
        if head[..8] != SNAPSHOT_MAGIC {
            return None;
        }
        let header_len = u32::from_le_bytes(head.get(8..12)?.try_into().ok()?) as usize;
        postcard::from_bytes(head.get(12..(12 + header_len).min(read))?).ok()
    };
    Ok(listed(dir)?
        .into_iter()
        .filter_map(|path| header(&path).map(|position| (path, position)))
        .collect())
}

/// Whether the journal file at `journal` still holds the snapshot's last entry, whole, at its
/// offset and with its hash: only then does the rest of the journal continue the snapshot.
pub fn continues(journal: &Path, position: &Position) -> io::Result<bool> {
    if position.next_sequence == 1 {
        return Ok(true);
    }
    let mut found = None;
    let mut offsets = None;
    read_frames_from(
        journal,
        position.last_offset,
        position.next_sequence - 1,
        &mut |entry: EncodedEntry, offset| {
            found = Some(entry);
            offsets = Some(offset);
            Err(crate::journal::Break {
                sequence: 0,
                offset,
                kind: BreakKind::Truncated,
            })
        },
    )?;
    Ok(found.is_some_and(|entry| {
        entry.sequence == position.next_sequence - 1
            && entry.hash == position.last_hash
            && entry.hash_is_intact()
            && offsets == Some(position.last_offset)
            && position.last_offset + entry.frame_len() == position.next_offset
    }))
}

/// What [`take`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The new snapshot's file, `None` when the journal had nothing new.
    pub path: Option<PathBuf>,
    /// Entries it covers.
    pub entries: u64,
    /// Entries replayed from the journal to make it.
    pub replayed: u64,
}

/// Makes the next snapshot of the ledger in `data_dir` from its newest usable snapshot and the
/// journal file after it, without touching the running ledger: whole entries only, up to
/// the first that is not (yet) whole. With `history`, what has left the working set at `now`
/// moves there first (durably), so the snapshot holds the working set only. Stops early,
/// writing nothing, once `stop` says so.
pub fn take(
    data_dir: &Path,
    history: Option<(&std::sync::Arc<crate::history::History>, i64)>,
    stop: &dyn Fn() -> bool,
) -> io::Result<Taken> {
    let journal = crate::journal::journal_path(data_dir);
    let dir = data_dir.join(SNAPSHOT_DIR);
    let held = match history {
        Some((history, _)) => history.log_len().map_err(io::Error::other)?,
        None => 0,
    };
    let mut start = None;
    for snapshot in newest_first(&dir)? {
        if snapshot.state.log_base <= held && continues(&journal, &snapshot.position)? {
            start = Some(snapshot);
            break;
        }
    }
    let base = start.as_ref().map(|snapshot| snapshot.path.clone());
    let (mut state, mut position) = match start {
        Some(snapshot) => (snapshot.state, snapshot.position),
        None => (
            State::default(),
            Position {
                next_sequence: 1,
                last_hash: [0; 32],
                last_offset: 0,
                next_offset: 0,
            },
        ),
    };
    // A reversal after the snapshot may need a purchase the snapshot left in history.
    state.history = history.map(|(history, _)| std::sync::Arc::clone(history));
    let mut replayed = 0u64;
    let mut stopped = false;
    let mut failed = None;
    let end = read_frames_from(
        &journal,
        position.next_offset,
        position.next_sequence,
        &mut |entry: EncodedEntry, offset| {
            let broken = |kind| crate::journal::Break {
                sequence: entry.sequence,
                offset,
                kind,
            };
            if replayed.is_multiple_of(4_096) && stop() {
                stopped = true;
                return Err(broken(BreakKind::Truncated));
            }
            // Moving as the replay goes keeps this copy of the projection as small as the
            // working set, however much journal there is to replay.
            if replayed.is_multiple_of(REPLAY_MOVE_EVERY_ENTRIES)
                && replayed > 0
                && let Some((history, now)) = history
                && let Err(error) = state.move_all(history, now)
            {
                failed = Some(error);
                return Err(broken(BreakKind::Truncated));
            }
            if !entry.hash_is_intact()
                || entry.sequence != position.next_sequence
                || entry.previous_hash != position.last_hash
            {
                return Err(broken(BreakKind::ChainMismatch));
            }
            let decoded = entry
                .decode()
                .map_err(|e| broken(BreakKind::Undecodable(e.to_string())))?;
            state
                .apply_owned(decoded)
                .map_err(|e| broken(BreakKind::Invariant(e)))?;
            position = Position {
                next_sequence: entry.sequence + 1,
                last_hash: entry.hash,
                last_offset: offset,
                next_offset: offset + entry.frame_len(),
            };
            replayed += 1;
            Ok(())
        },
    )?;
    if let Some(error) = failed {
        return Err(io::Error::other(error));
    }
    // The writer may be inside the next frame (a torn end is where this snapshot stops); an
    // entry that does not apply is no end: a snapshot past it, or up to it with what it
    // half-applied, would be wrong, so none is written.
    if let Some(found) = end
        && !stopped
        && !found.kind.may_be_torn_write()
    {
        // The snapshot it started from, not the journal, is what is wrong when the journal
        // applies from its start (`verify` checks that): set aside, the next round starts
        // from an older one.
        if let Some(base) = &base
            && found.kind.is_snapshot_mismatch()
        {
            set_aside(base)?;
        }
        return Err(io::Error::other(format!("the journal breaks at {found}")));
    }
    if stopped || replayed == 0 {
        return Ok(Taken {
            path: None,
            entries: position.next_sequence - 1,
            replayed,
        });
    }
    if let Some((history, now)) = history {
        state.move_all(history, now).map_err(io::Error::other)?;
    }
    let path = write(&dir, &position, &state)?;
    Ok(Taken {
        path: Some(path),
        entries: position.next_sequence - 1,
        replayed,
    })
}

/// The ledger's snapshot thread: every [`SNAPSHOT_CHECK_INTERVAL`] it looks at the journal
/// file's size and, once it has grown by [`SNAPSHOT_EVERY_BYTES`] since the newest snapshot
/// and [`SNAPSHOT_SPACING`] has passed since the last it took, runs [`take`]. Dropping it stops the thread (an unfinished snapshot is abandoned, never
/// half-written).
#[derive(Debug)]
pub struct Snapshotter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    wake: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Snapshotter {
    /// Starts the thread for the ledger in `data_dir`, moving what has left the working set
    /// to `history` before each snapshot.
    pub fn start(
        data_dir: PathBuf,
        history: std::sync::Arc<crate::history::History>,
        live: std::sync::Arc<std::sync::RwLock<State>>,
    ) -> io::Result<Snapshotter> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (wake, woken) = std::sync::mpsc::channel::<()>();
        let stopping = std::sync::Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ssn-snapshot".into())
            .spawn(move || {
                crate::priority::lower_this_thread(crate::priority::BACKGROUND_NICE);
                let journal = crate::journal::journal_path(&data_dir);
                let dir = data_dir.join(SNAPSHOT_DIR);
                let mut covered = newest_position(&dir).map_or(0, |p| p.next_offset);
                let mut last_taken: Option<std::time::Instant> = None;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    woken.recv_timeout(SNAPSHOT_CHECK_INTERVAL)
                {
                    let size = fs::metadata(&journal).map_or(0, |m| m.len());
                    if size < covered.saturating_add(SNAPSHOT_EVERY_BYTES)
                        || last_taken.is_some_and(|at| at.elapsed() < SNAPSHOT_SPACING)
                    {
                        continue;
                    }
                    let started = std::time::Instant::now();
                    last_taken = Some(started);
                    let now = crate::window::move_time(&live);
                    match take(&data_dir, Some((&history, now)), &|| {
                        stopping.load(Ordering::Relaxed)
                    }) {
                        Ok(taken) => {
                            covered = size;
                            metrics::counter!("ssn_snapshots_taken_total").increment(1);
                            metrics::gauge!("ssn_snapshot_entries").set(taken.entries as f64);
                            metrics::gauge!("ssn_snapshot_seconds")
                                .set(started.elapsed().as_secs_f64());
                        }
                        Err(_) => {
                            metrics::counter!("ssn_snapshot_failures_total").increment(1);
                        }
                    }
                }
            })?;
        Ok(Snapshotter {
            stop,
            wake: Some(wake),
            thread: Some(thread),
        })
    }
}

impl Drop for Snapshotter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
