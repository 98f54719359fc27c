//! Snapshots shared by the nodes of a keyspace: a node joining loads the newest complete one
//! and replays only each chain's tail after it, instead of every chain from its beginning.
//!
//! A snapshot is the projection's canonical bytes ([`crate::snapshot::encode_state`]) cut
//! into chunks of [`SCYLLA_SNAPSHOT_CHUNK_BYTES`], one partition each in `snapshot_chunks`
//! under the snapshot's own id, plus one row in the catalog `snapshots` written **last**: the
//! row names the chunks, their total length and SHA-256, and where the snapshot stands in
//! every chain (next sequence and last hash, [`ChainPosition`]). A crash (or a stop) while
//! chunks are written leaves no row, so the snapshots listed before stay in force; a snapshot
//! whose chunks do not add up to its digest is passed over for the next older one.
//!
//! A snapshot is a cache of the chains, never the record: it is used only while every chain
//! it covers still holds, at its position, the very entry it names (a node that set aside a
//! failed batch the snapshot covered no longer does), and `verify` compares each one with the
//! chains' replay up to its positions. The newest [`SCYLLA_SNAPSHOTS_KEPT`] are kept; a node
//! loading one that another node removes meanwhile falls back to an older one, or to a full
//! replay.

use super::ScyllaCluster;
use super::journal::ScyllaJournal;
use crate::journal::{
    ChainPosition, JournalStore, SharedSnapshot, SharedSnapshotTaker, apply_merged,
};
use crate::state::State;
use futures::{StreamExt, TryStreamExt};
use scylla::statement::prepared::PreparedStatement;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io;
use std::sync::Arc;

/// Bytes of one chunk row: far below the cluster's mutation size limit, and a 100,000-card
/// projection is a few dozen of them.
pub const SCYLLA_SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Complete snapshots kept in the catalog; older ones are removed after a new one is listed.
pub const SCYLLA_SNAPSHOTS_KEPT: usize = 3;
/// Chunk reads or writes of one snapshot in flight at once.
const SCYLLA_SNAPSHOT_CHUNKS_IN_FLIGHT: usize = 8;
/// The catalog's one partition: a keyspace holds one ledger.
const CATALOG_PARTITION: &str = "state";

/// One catalog row as read: covered, id, chains, chunks, bytes, digest.
type CatalogRow = (i64, String, Vec<u8>, i32, i64, Vec<u8>);

/// A complete snapshot as the catalog lists it.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    /// Its id (chunks are stored under it).
    pub(crate) id: String,
    /// Where it stands in every chain.
    pub(crate) chains: Vec<ChainPosition>,
    /// Chunks of its bytes.
    chunks: i32,
    /// Its length in bytes.
    bytes: i64,
    /// SHA-256 of its bytes.
    digest: Vec<u8>,
}

impl Listed {
    /// Entries it covers, over all chains.
    pub(crate) fn covered(&self) -> u64 {
        self.chains
            .iter()
            .map(|p| p.next_sequence.saturating_sub(1))
            .sum()
    }
}

/// The statements of the snapshot tables.
#[derive(Clone)]
pub(crate) struct ScyllaSnapshots {
    /// The shared session.
    cluster: Arc<ScyllaCluster>,
    /// Lists the catalog, newest first.
    list: PreparedStatement,
    /// Writes a catalog row.
    insert_listed: PreparedStatement,
    /// Removes a catalog row.
    delete_listed: PreparedStatement,
    /// Writes a chunk.
    insert_chunk: PreparedStatement,
    /// Reads a chunk.
    select_chunk: PreparedStatement,
    /// Removes a chunk.
    delete_chunk: PreparedStatement,
}

impl fmt::Debug for ScyllaSnapshots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScyllaSnapshots").finish_non_exhaustive()
    }
}

fn io_error(error: impl fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

impl ScyllaSnapshots {
    pub(crate) async fn open(
        cluster: Arc<ScyllaCluster>,
    ) -> Result<ScyllaSnapshots, super::ScyllaError> {
        Ok(ScyllaSnapshots {
            list: cluster
                .prepare(
                    "SELECT covered, id, chains, chunks, bytes, digest FROM snapshots \
                     WHERE ledger = ?",
                )
                .await?,
            insert_listed: cluster
                .prepare(
                    "INSERT INTO snapshots (ledger, covered, id, chains, chunks, bytes, digest, \
                     taken_at) VALUES (?, ?, ?, ?, ?, ?, ?, toTimestamp(now()))",
                )
                .await?,
            delete_listed: cluster
                .prepare("DELETE FROM snapshots WHERE ledger = ? AND covered = ? AND id = ?")
                .await?,
            insert_chunk: cluster
                .prepare("INSERT INTO snapshot_chunks (id, chunk, bytes) VALUES (?, ?, ?)")
                .await?,
            select_chunk: cluster
                .prepare("SELECT bytes FROM snapshot_chunks WHERE id = ? AND chunk = ?")
                .await?,
            delete_chunk: cluster
                .prepare("DELETE FROM snapshot_chunks WHERE id = ? AND chunk = ?")
                .await?,
            cluster,
        })
    }

    /// The complete snapshots, newest (most entries covered) first; rows that do not decode
    /// are passed over.
    pub(crate) fn list(&self) -> io::Result<Vec<Listed>> {
        let session = Arc::clone(self.cluster.session());
        let list = self.list.clone();
        let rows: Vec<CatalogRow> = self
            .cluster
            .block_on(async move {
                let pager = session
                    .execute_iter(list, (CATALOG_PARTITION,))
                    .await
                    .map_err(io_error)?;
                pager
                    .rows_stream::<CatalogRow>()
                    .map_err(io_error)?
                    .map_err(io_error)
                    .try_collect::<Vec<CatalogRow>>()
                    .await
            })
            .map_err(io_error)??;
        let mut listed: Vec<Listed> = rows
            .into_iter()
            .filter_map(|(_, id, chains, chunks, bytes, digest)| {
                Some(Listed {
                    id,
                    chains: postcard::from_bytes(&chains).ok()?,
                    chunks,
                    bytes,
                    digest,
                })
            })
            .collect();
        listed.sort_by_key(|l| std::cmp::Reverse(l.covered()));
        Ok(listed)
    }

    /// Reads a listed snapshot's projection, checking its length and digest.
    pub(crate) fn load(&self, listed: &Listed) -> io::Result<State> {
        let session = Arc::clone(self.cluster.session());
        let select = self.select_chunk.clone();
        let id = listed.id.clone();
        let count = listed.chunks.max(0);
        let chunks: Vec<Vec<u8>> = self
            .cluster
            .block_on(async move {
                futures::stream::iter(0..count)
                    .map(|chunk| {
                        let session = Arc::clone(&session);
                        let select = select.clone();
                        let id = id.clone();
                        async move {
                            session
                                .execute_unpaged(&select, (id, chunk))
                                .await
                                .map_err(io_error)?
                                .into_rows_result()
                                .map_err(io_error)?
                                .maybe_first_row::<(Vec<u8>,)>()
                                .map_err(io_error)?
                                .map(|(bytes,)| bytes)
                                .ok_or_else(|| io_error(format!("snapshot chunk {chunk} missing")))
                        }
                    })
                    .buffered(SCYLLA_SNAPSHOT_CHUNKS_IN_FLIGHT)
                    .try_collect()
                    .await
            })
            .map_err(io_error)??;
        let bytes = chunks.concat();
        if bytes.len() as i64 != listed.bytes || Sha256::digest(&bytes).as_slice() != listed.digest
        {
            return Err(io_error(format!(
                "snapshot {} does not match its digest",
                listed.id
            )));
        }
        crate::snapshot::decode_state(&bytes).map_err(io_error)
    }

    /// Writes `state`, which stands at `chains`, as a new snapshot: chunks first, the catalog
    /// row last; then removes all but the newest [`SCYLLA_SNAPSHOTS_KEPT`]. Returns its id,
    /// `None` when `stop` said so before the catalog row was written (nothing listed changed).
    pub(crate) fn write(
        &self,
        writer: &str,
        chains: &[ChainPosition],
        state: &State,
        stop: &dyn Fn() -> bool,
    ) -> io::Result<Option<String>> {
        let covered: u64 = chains
            .iter()
            .map(|p| p.next_sequence.saturating_sub(1))
            .sum();
        let at_nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!("{covered:020}-{writer}-{at_nanos}");
        let bytes = crate::snapshot::encode_state(state);
        let digest = Sha256::digest(&bytes).to_vec();
        let pieces: Vec<Vec<u8>> = bytes
            .chunks(SCYLLA_SNAPSHOT_CHUNK_BYTES)
            .map(<[u8]>::to_vec)
            .collect();
        let chunks = i32::try_from(pieces.len()).map_err(io_error)?;
        for (group, rows) in pieces.chunks(SCYLLA_SNAPSHOT_CHUNKS_IN_FLIGHT).enumerate() {
            if stop() {
                return Ok(None);
            }
            let first = group * SCYLLA_SNAPSHOT_CHUNKS_IN_FLIGHT;
            let writes: Vec<(String, i32, Vec<u8>)> = rows
                .iter()
                .enumerate()
                .map(|(i, piece)| (id.clone(), (first + i) as i32, piece.clone()))
                .collect();
            self.execute_all(&self.insert_chunk, writes)?;
        }
        if stop() {
            return Ok(None);
        }
        let row = (
            CATALOG_PARTITION,
            i64::try_from(covered).map_err(io_error)?,
            id.clone(),
            postcard::to_stdvec(chains).map_err(io_error)?,
            chunks,
            bytes.len() as i64,
            digest,
        );
        self.execute_all(&self.insert_listed, vec![row])?;
        self.prune()?;
        Ok(Some(id))
    }

    /// Removes every listed snapshot but the newest [`SCYLLA_SNAPSHOTS_KEPT`]: the catalog
    /// row first, so no reader picks one whose chunks are going.
    fn prune(&self) -> io::Result<()> {
        for old in self.list()?.into_iter().skip(SCYLLA_SNAPSHOTS_KEPT) {
            let covered = i64::try_from(old.covered()).map_err(io_error)?;
            self.execute_all(
                &self.delete_listed,
                vec![(CATALOG_PARTITION, covered, old.id.clone())],
            )?;
            let chunks: Vec<(String, i32)> = (0..old.chunks.max(0))
                .map(|chunk| (old.id.clone(), chunk))
                .collect();
            self.execute_all(&self.delete_chunk, chunks)?;
        }
        Ok(())
    }

    /// Runs `statement` once per row of values, a few in flight; fails if any fails.
    fn execute_all<V>(&self, statement: &PreparedStatement, values: Vec<V>) -> io::Result<()>
    where
        V: scylla::serialize::row::SerializeRow + Send + Sync + 'static,
    {
        let session = Arc::clone(self.cluster.session());
        let statement = statement.clone();
        self.cluster
            .block_on(async move {
                futures::stream::iter(values)
                    .map(|row| {
                        let session = Arc::clone(&session);
                        let statement = statement.clone();
                        async move { session.execute_unpaged(&statement, row).await.map(|_| ()) }
                    })
                    .buffer_unordered(SCYLLA_SNAPSHOT_CHUNKS_IN_FLIGHT)
                    .try_collect::<Vec<()>>()
                    .await
                    .map(|_| ())
                    .map_err(io_error)
            })
            .map_err(io_error)?
    }
}

/// Takes shared snapshots beside a running node (see [`crate::journal::SharedSnapshotTaker`]).
#[derive(Debug)]
pub(crate) struct ScyllaSnapshotTaker {
    /// A reader of the keyspace's chains (named after this node's chain; it never writes).
    journal: ScyllaJournal,
}

impl ScyllaSnapshotTaker {
    pub(crate) fn new(journal: ScyllaJournal) -> ScyllaSnapshotTaker {
        ScyllaSnapshotTaker { journal }
    }

    /// The newest usable snapshot and every chain's entries after it, applied merged: the
    /// projection and where it stands in each chain. `None` when `stop` said so.
    pub(crate) fn next_state(
        &mut self,
        stop: &dyn Fn() -> bool,
    ) -> io::Result<Option<(State, Vec<ChainPosition>, u64)>> {
        let base = self.journal.shared_snapshot()?;
        let before = base.as_ref().map_or(0, SharedSnapshot::covered);
        let (mut state, base_chains) = match base {
            Some(base) => (base.state, base.chains),
            None => (State::default(), Vec::new()),
        };
        let mut chains = Vec::new();
        let mut positions = Vec::new();
        for name in self.journal.all_chain_names()? {
            if stop() {
                return Ok(None);
            }
            let start = ChainPosition::position_of(&base_chains, &name);
            let (entries, position) = self.journal.read_chain_after(&name, start.as_ref())?;
            chains.push((name, entries));
            positions.push(position);
        }
        // Which other chains a node follows, and how far, is its own: not part of a snapshot.
        state.followed.clear();
        apply_merged(&mut state, chains)
            .map_err(|(chain, found)| io_error(format!("chain {chain} breaks at {found}")))?;
        Ok(Some((state, positions, before)))
    }
}

impl SharedSnapshotTaker for ScyllaSnapshotTaker {
    fn covered(&mut self) -> io::Result<u64> {
        Ok(self
            .journal
            .snapshots
            .list()?
            .first()
            .map_or(0, Listed::covered))
    }

    fn take(&mut self, stop: &dyn Fn() -> bool) -> io::Result<Option<u64>> {
        let Some((state, positions, before)) = self.next_state(stop)? else {
            return Ok(None);
        };
        let covered: u64 = positions
            .iter()
            .map(|p| p.next_sequence.saturating_sub(1))
            .sum();
        // Nothing new, or another node listed one at least as new meanwhile.
        if covered <= before || self.covered()? >= covered {
            return Ok(None);
        }
        let writer = self.journal.chain_name().to_string();
        let written = self
            .journal
            .snapshots
            .write(&writer, &positions, &state, stop)?;
        Ok(written.map(|_| covered))
    }
}

/// `verify`'s check of the shared snapshots: each listed one that the chains still continue
/// must hold the state of the chains' entries up to its positions, applied merged (beyond the
/// order-dependent log: [`crate::snapshot::encode_core`]). `chains` is every chain, whole.
/// Returns how many were checked; the first that differs is an error.
pub(crate) fn check_snapshots(
    journal: &mut ScyllaJournal,
    chains: &[(String, Vec<crate::record::Entry>)],
) -> Result<usize, crate::verify::VerifyError> {
    let mut checked = 0;
    for listed in journal.snapshots.list()? {
        if !journal.continues(&listed.chains)? {
            continue;
        }
        // One removed or damaged meanwhile is never loaded by a node either.
        let Ok(mut state) = journal.snapshots.load(&listed) else {
            continue;
        };
        let prefixes: Vec<(String, Vec<crate::record::Entry>)> = chains
            .iter()
            .map(|(name, entries)| {
                let covered = ChainPosition::covered_of(&listed.chains, name);
                let take = usize::try_from(covered)
                    .unwrap_or(usize::MAX)
                    .min(entries.len());
                (name.clone(), entries[..take].to_vec())
            })
            .collect();
        let mut replayed = State::default();
        let applies = apply_merged(&mut replayed, prefixes).is_ok();
        state.followed.clear();
        if !applies || !crate::snapshot::same_beyond_order(&state, &replayed) {
            return Err(crate::verify::VerifyError::Snapshot(
                std::path::PathBuf::from(format!(
                    "scylla:{}.snapshots/{}",
                    journal.keyspace(),
                    listed.id
                )),
            ));
        }
        checked += 1;
    }
    Ok(checked)
}
