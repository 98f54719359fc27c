//! The journal on Scylla: each switch node appends its own hash chain (partition key
//! `(chain, bucket)`), with plain idempotent inserts; the chain, the hashes and
//! replay are exactly the embedded journal's ([`crate::journal`]), only the bytes live in CQL
//! rows instead of a file.
//!
//! A group commit's rows go as single-partition unlogged CQL batches (at most
//! [`SCYLLA_JOURNAL_BATCH_ROWS_MAX`] rows and [`SCYLLA_JOURNAL_BATCH_BYTES_MAX`] body bytes
//! each: one request instead of one per entry), up to [`super::SCYLLA_WRITES_IN_FLIGHT_MAX`]
//! in flight; the group commit is durable (at the configured consistency) when every one has
//! succeeded. A failed batch can
//! leave any subset of its entries behind: that is this store's torn write. Replay stops at the
//! first missing entry and reports it as [`BreakKind::Truncated`]; opening then sets aside what
//! follows it (into `journal_torn`) if it is no more than one batch, exactly as the file
//! journal sets aside a torn last write. Nothing after a gap was ever acknowledged, because the
//! sync thread answers a batch only when all of it is written and writes one batch at a time.

use super::snapshots::ScyllaSnapshots;
use super::{ScyllaCluster, ScyllaError, cluster};
use crate::journal::{
    Break, BreakKind, ChainFollower, ChainPosition, EncodedEntry, Hash, JOURNAL_BATCH_RECORDS_MAX,
    JOURNAL_ENTRY_BYTES_MAX, JOURNAL_FOLLOW_BATCH_ENTRIES, JournalStore, SharedSnapshot,
    SharedSnapshotTaker, apply_merged, replay_after, replay_until,
};
use crate::money::Money;
use crate::record::Account;
use crate::record::Entry;
use crate::state::State;
use crate::verify::{VerifyError, VerifyReport, check_balances};
use futures::{StreamExt, TryStreamExt};
use scylla::statement::prepared::PreparedStatement;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Entries of one chain per partition: about 13 MB of typical entries, and at least one whole
/// batch, so a torn batch spans at most two partitions.
pub const SCYLLA_JOURNAL_PARTITION_ENTRIES: u64 = 65_536;
/// Largest part of an entry's body in one row; a larger body (a disbursement to many cards)
/// is cut into parts, so no row comes near the cluster's mutation size limit.
pub const SCYLLA_ENTRY_PART_BYTES: usize = 1 << 20;
/// Most body bytes of the rows in one CQL batch: a group commit's purchases (a few hundred
/// bytes each) go as one single-partition unlogged batch per this many bytes, one request
/// instead of one per entry; well under ScyllaDB's batch size warning (128 KiB), and
/// Cassandra does not size-check a single-partition batch.
pub const SCYLLA_JOURNAL_BATCH_BYTES_MAX: usize = 64 << 10;
/// Most rows in one CQL batch.
pub const SCYLLA_JOURNAL_BATCH_ROWS_MAX: usize = 256;
/// Rows per page when replaying a partition.
const REPLAY_PAGE_ROWS: i32 = 512;

const _: () = assert!(SCYLLA_JOURNAL_PARTITION_ENTRIES >= JOURNAL_BATCH_RECORDS_MAX as u64);

/// Rows of the largest entry: a follower asks for at least this many, so it always gets one
/// whole entry.
const ENTRY_PARTS_MAX: usize = JOURNAL_ENTRY_BYTES_MAX.div_ceil(SCYLLA_ENTRY_PART_BYTES);
const _: () = assert!(JOURNAL_FOLLOW_BATCH_ENTRIES >= ENTRY_PARTS_MAX);

/// One stored row as read: sequence, part, parts, previous hash, hash, body part.
type Row = (i64, i32, i32, Vec<u8>, Vec<u8>, Vec<u8>);
/// One row as written: chain and bucket, then as [`Row`].
type NewRow = (String, i64, i64, i32, i32, Vec<u8>, Vec<u8>, Vec<u8>);
/// An entry being reassembled: sequence, next part expected, parts, hashes, body so far.
type Partial = (u64, i32, i32, Hash, Hash, Vec<u8>);

/// The journal store of one chain.
pub struct ScyllaJournal {
    /// The shared session.
    cluster: Arc<ScyllaCluster>,
    /// This node's chain.
    chain: String,
    /// Writes one row.
    insert: PreparedStatement,
    /// Reads one partition in order.
    select: PreparedStatement,
    /// Keeps a torn row for auditors.
    insert_torn: PreparedStatement,
    /// Removes a torn tail from a partition.
    delete_from: PreparedStatement,
    /// Lists every chain of the keyspace.
    list_chains: PreparedStatement,
    /// Reads a partition from a sequence on, a bounded number of rows (following).
    select_from: PreparedStatement,
    /// The keyspace's shared snapshots.
    pub(super) snapshots: ScyllaSnapshots,
}

impl fmt::Debug for ScyllaJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScyllaJournal")
            .field("keyspace", &self.cluster.config().keyspace)
            .field("chain", &self.chain)
            .finish_non_exhaustive()
    }
}

fn bucket_of(sequence: u64) -> i64 {
    // Sequences start at 1.
    (sequence.saturating_sub(1) / SCYLLA_JOURNAL_PARTITION_ENTRIES) as i64
}

fn io_error(error: impl fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

impl ScyllaJournal {
    pub(crate) async fn open(cluster: Arc<ScyllaCluster>) -> Result<ScyllaJournal, ScyllaError> {
        let chain = cluster.config().chain.clone();
        let insert = cluster
            .prepare(
                "INSERT INTO journal (chain, bucket, sequence, part, parts, previous_hash, hash, \
                 body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .await?;
        let mut select = cluster
            .prepare(
                "SELECT sequence, part, parts, previous_hash, hash, body FROM journal \
                 WHERE chain = ? AND bucket = ?",
            )
            .await?;
        select.set_page_size(REPLAY_PAGE_ROWS);
        let insert_torn = cluster
            .prepare(
                "INSERT INTO journal_torn (chain, sequence, part, parts, previous_hash, hash, \
                 body) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .await?;
        let delete_from = cluster
            .prepare("DELETE FROM journal WHERE chain = ? AND bucket = ? AND sequence >= ?")
            .await?;
        let list_chains = cluster.prepare("SELECT chain FROM journal_chains").await?;
        let mut select_from = cluster
            .prepare(
                "SELECT sequence, part, parts, previous_hash, hash, body FROM journal \
                 WHERE chain = ? AND bucket = ? AND sequence >= ? LIMIT ?",
            )
            .await?;
        select_from.set_page_size(REPLAY_PAGE_ROWS);
        let register = cluster
            .prepare(
                "INSERT INTO journal_chains (chain, created_at) VALUES (?, toTimestamp(now()))",
            )
            .await?;
        let session = Arc::clone(cluster.session());
        let name = chain.clone();
        cluster
            .run(async move { session.execute_unpaged(&register, (name,)).await })
            .await?
            .map_err(cluster_error)?;
        let snapshots = ScyllaSnapshots::open(Arc::clone(&cluster)).await?;
        Ok(ScyllaJournal {
            cluster,
            chain,
            insert,
            select,
            insert_torn,
            delete_from,
            list_chains,
            select_from,
            snapshots,
        })
    }

    /// A reader of another chain of the same keyspace (it never writes).
    pub(super) fn for_chain(&self, chain: String) -> ScyllaJournal {
        ScyllaJournal {
            cluster: Arc::clone(&self.cluster),
            chain,
            insert: self.insert.clone(),
            select: self.select.clone(),
            insert_torn: self.insert_torn.clone(),
            delete_from: self.delete_from.clone(),
            list_chains: self.list_chains.clone(),
            select_from: self.select_from.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    /// Up to `rows_max` rows of one partition of `chain` from sequence `from` on, in order.
    fn rows_of_partition_from(
        &self,
        chain: &str,
        bucket: i64,
        from: u64,
        rows_max: usize,
    ) -> io::Result<Vec<Row>> {
        let arguments = (
            chain.to_string(),
            bucket,
            from as i64,
            i32::try_from(rows_max).unwrap_or(i32::MAX),
        );
        self.rows_of(self.select_from.clone(), arguments)
    }

    /// Every row a partition query answers, in order (paged by the statement's page size).
    fn rows_of(
        &self,
        statement: PreparedStatement,
        arguments: impl scylla::serialize::row::SerializeRow + Send + 'static,
    ) -> io::Result<Vec<Row>> {
        let session = Arc::clone(self.cluster.session());
        self.cluster
            .block_on(async move {
                let pager = session
                    .execute_iter(statement, arguments)
                    .await
                    .map_err(io_error)?;
                pager
                    .rows_stream::<Row>()
                    .map_err(io_error)?
                    .map_err(io_error)
                    .try_collect::<Vec<Row>>()
                    .await
            })
            .map_err(io_error)?
    }

    /// The names of every chain of the keyspace, sorted.
    pub(super) fn all_chain_names(&self) -> io::Result<Vec<String>> {
        let session = Arc::clone(self.cluster.session());
        let list = self.list_chains.clone();
        let mut names: Vec<String> = self
            .cluster
            .block_on(async move {
                let pager = session.execute_iter(list, ()).await.map_err(io_error)?;
                pager
                    .rows_stream::<(String,)>()
                    .map_err(io_error)?
                    .map_ok(|(name,)| name)
                    .map_err(io_error)
                    .try_collect::<Vec<String>>()
                    .await
            })
            .map_err(io_error)??;
        names.sort();
        Ok(names)
    }

    /// The names of every chain but this one, sorted.
    fn other_chain_names(&self) -> io::Result<Vec<String>> {
        let mut names = self.all_chain_names()?;
        names.retain(|name| *name != self.chain);
        Ok(names)
    }

    /// Whether every chain still holds, at each position, the very entry it names (one read
    /// per chain): only then do the chains continue a snapshot taken there.
    pub(super) fn continues(&mut self, positions: &[ChainPosition]) -> io::Result<bool> {
        for position in positions {
            if position.next_sequence <= 1 {
                continue;
            }
            let last = position.next_sequence - 1;
            let found = self.read_from(&position.chain, last, 1)?;
            let holds = found.first().is_some_and(|entry| {
                entry.sequence == last && entry.hash == position.last_hash && entry.hash_is_intact()
            });
            if !holds {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads `chain` after `position` (from its start when `None`) as far as it is whole,
    /// each link and hash checked; returns the entries and where the chain then stands.
    pub(super) fn read_chain_after(
        &self,
        chain: &str,
        position: Option<&crate::snapshot::Position>,
    ) -> io::Result<(Vec<Entry>, ChainPosition)> {
        let mut reader = self.for_chain(chain.to_string());
        let mut entries = Vec::new();
        // A chain still being written, or torn, is read as far as it is whole.
        let (head, _end) = replay_after(&mut reader, position, None, &mut |entry| {
            entries.push(entry);
            Ok(())
        })?;
        let position = ChainPosition {
            chain: chain.to_string(),
            next_sequence: head.next_sequence,
            last_hash: head.last_hash,
        };
        Ok((entries, position))
    }

    /// Takes a shared snapshot of the keyspace now, as a node's snapshot thread does when
    /// the chains have grown (see [`crate::journal::SharedSnapshotTaker`]): returns the
    /// entries it covers, `None` when it wrote none (nothing new since the newest). Blocks.
    pub fn take_snapshot(&self, stop: &dyn Fn() -> bool) -> io::Result<Option<u64>> {
        let mut taker =
            super::snapshots::ScyllaSnapshotTaker::new(self.for_chain(self.chain.clone()));
        taker.take(stop)
    }

    /// The keyspace's name.
    pub(super) fn keyspace(&self) -> &str {
        &self.cluster.config().keyspace
    }

    /// True when the chain has no entry yet.
    pub(super) fn is_empty(&self) -> Result<bool, ScyllaError> {
        Ok(self.partition(0).map_err(cluster)?.is_empty())
    }

    /// Every row of one partition, in order.
    fn partition(&self, bucket: i64) -> io::Result<Vec<Row>> {
        self.rows_of(self.select.clone(), (self.chain.clone(), bucket))
    }

    /// The rows of one partition from sequence `from` on, in order (paged).
    fn partition_from(&self, bucket: i64, from: u64) -> io::Result<Vec<Row>> {
        let arguments = (self.chain.clone(), bucket, from as i64, i32::MAX);
        self.rows_of(self.select_from.clone(), arguments)
    }

    /// Rows with sequence `from` or later, in the two partitions a torn batch can touch.
    fn rows_from(&self, from: u64) -> io::Result<Vec<Row>> {
        let mut rows = Vec::new();
        for bucket in [bucket_of(from), bucket_of(from) + 1] {
            rows.extend(
                self.partition(bucket)?
                    .into_iter()
                    .filter(|row| row.0 as u64 >= from),
            );
        }
        Ok(rows)
    }
}

fn cluster_error(error: impl fmt::Display) -> ScyllaError {
    cluster(error)
}

/// Splits entries into rows.
fn rows_of(chain: &str, entries: &[EncodedEntry]) -> Vec<NewRow> {
    let mut rows = Vec::with_capacity(entries.len());
    for entry in entries {
        let parts: Vec<&[u8]> = if entry.body.is_empty() {
            vec![&entry.body[..]]
        } else {
            entry.body.chunks(SCYLLA_ENTRY_PART_BYTES).collect()
        };
        // Bodies are capped at JOURNAL_ENTRY_BYTES_MAX, so the part count fits an i32.
        let count = parts.len() as i32;
        for (part, bytes) in parts.into_iter().enumerate() {
            rows.push((
                chain.to_string(),
                bucket_of(entry.sequence),
                entry.sequence as i64,
                part as i32,
                count,
                entry.previous_hash.to_vec(),
                entry.hash.to_vec(),
                bytes.to_vec(),
            ));
        }
    }
    rows
}

/// Cuts a batch's rows into the groups written with one request each: consecutive rows of
/// one partition, at most [`SCYLLA_JOURNAL_BATCH_ROWS_MAX`] rows and
/// [`SCYLLA_JOURNAL_BATCH_BYTES_MAX`] body bytes (a larger row goes alone).
fn batch_groups(rows: Vec<NewRow>) -> Vec<Vec<NewRow>> {
    let mut groups: Vec<Vec<NewRow>> = Vec::new();
    let mut bytes = 0usize;
    for row in rows {
        let row_bytes = row.7.len();
        let fits = groups.last().is_some_and(|group| {
            group.len() < SCYLLA_JOURNAL_BATCH_ROWS_MAX
                && bytes + row_bytes <= SCYLLA_JOURNAL_BATCH_BYTES_MAX
                && group[0].1 == row.1
        });
        if fits {
            bytes += row_bytes;
            groups.last_mut().expect("checked").push(row);
        } else {
            bytes = row_bytes;
            groups.push(vec![row]);
        }
    }
    groups
}

/// An unlogged batch of `rows` inserts, with the configured consistency and timeout. All its
/// rows are in one partition, so it is applied atomically, and the driver routes it to that
/// partition's replicas like a single insert.
fn batch_of(
    insert: &PreparedStatement,
    rows: usize,
    config: &super::ScyllaConfig,
) -> scylla::statement::batch::Batch {
    use scylla::statement::batch::{Batch, BatchStatement, BatchType};
    let statements = vec![BatchStatement::PreparedStatement(insert.clone()); rows];
    let mut batch = Batch::new_with_statements(BatchType::Unlogged, statements);
    batch.set_consistency(config.consistency);
    batch.set_request_timeout(Some(config.request_timeout));
    // The same rows under the same keys when retried.
    batch.set_is_idempotent(true);
    batch
}

/// Reassembles the entries of a partition's rows, stopping at the first entry missing a part.
/// Returns the entries and whether the rows ended inside an entry.
fn assemble(rows: Vec<Row>) -> (Vec<EncodedEntry>, bool) {
    let mut entries: Vec<EncodedEntry> = Vec::new();
    let mut current: Option<Partial> = None;
    let finish = |current: &mut Option<Partial>, entries: &mut Vec<EncodedEntry>| -> bool {
        match current.take() {
            None => true,
            Some((sequence, next_part, parts, previous_hash, hash, body)) => {
                if next_part != parts {
                    return false;
                }
                entries.push(EncodedEntry {
                    sequence,
                    previous_hash,
                    body,
                    hash,
                });
                true
            }
        }
    };
    for (sequence, part, parts, previous_hash, hash, body) in rows {
        let sequence = sequence as u64;
        let (Ok(previous_hash), Ok(hash)) = (
            <Hash>::try_from(previous_hash.as_slice()),
            <Hash>::try_from(hash.as_slice()),
        ) else {
            // A row whose hashes are not 32 bytes: hand over something that fails the hash.
            finish(&mut current, &mut entries);
            entries.push(EncodedEntry {
                sequence,
                previous_hash: [0; 32],
                body,
                hash: [0; 32],
            });
            continue;
        };
        match &mut current {
            Some((s, next_part, _, _, _, so_far)) if *s == sequence => {
                if *next_part != part {
                    return (entries, true);
                }
                so_far.extend_from_slice(&body);
                *next_part += 1;
            }
            _ => {
                if !finish(&mut current, &mut entries) {
                    return (entries, true);
                }
                if part != 0 {
                    return (entries, true);
                }
                current = Some((sequence, 1, parts, previous_hash, hash, body));
            }
        }
    }
    let whole = finish(&mut current, &mut entries);
    (entries, !whole)
}

impl ChainFollower for ScyllaJournal {
    fn chains(&mut self) -> io::Result<Vec<String>> {
        self.other_chain_names()
    }

    fn read_from(
        &mut self,
        chain: &str,
        from: u64,
        entries_max: usize,
    ) -> io::Result<Vec<EncodedEntry>> {
        let mut entries = Vec::new();
        let mut next = from.max(1);
        while entries.len() < entries_max {
            let bucket = bucket_of(next);
            let rows_max = (entries_max - entries.len()).max(ENTRY_PARTS_MAX);
            // A last entry cut by the row limit, or still being written, is left for the next
            // read: assemble stops before it.
            let (found, _ended_inside) =
                assemble(self.rows_of_partition_from(chain, bucket, next, rows_max)?);
            let before = entries.len();
            for entry in found {
                if entry.sequence != next || entries.len() >= entries_max {
                    return Ok(entries);
                }
                next += 1;
                entries.push(entry);
            }
            // Go on to the next partition only when this one was read to its end.
            if entries.len() == before || bucket_of(next) == bucket {
                break;
            }
        }
        Ok(entries)
    }
}

impl JournalStore for ScyllaJournal {
    fn follower(&self) -> Option<Box<dyn ChainFollower>> {
        Some(Box::new(self.for_chain(self.chain.clone())))
    }

    fn append_durable(&mut self, entries: &[EncodedEntry]) -> io::Result<()> {
        let groups = batch_groups(rows_of(&self.chain, entries));
        let session = Arc::clone(self.cluster.session());
        let insert = self.insert.clone();
        let config = self.cluster.config().clone();
        let requests = groups.len() as u64;
        self.cluster
            .block_on(async move {
                futures::stream::iter(groups)
                    .map(|group| {
                        let session = Arc::clone(&session);
                        let insert = insert.clone();
                        let config = config.clone();
                        async move {
                            if group.len() == 1 {
                                let row = group.into_iter().next().expect("one row");
                                return session.execute_unpaged(&insert, row).await.map(|_| ());
                            }
                            let batch = batch_of(&insert, group.len(), &config);
                            session.batch(&batch, group).await.map(|_| ())
                        }
                    })
                    .buffer_unordered(super::SCYLLA_WRITES_IN_FLIGHT_MAX)
                    .try_collect::<Vec<()>>()
                    .await
                    .map(|_| ())
                    .map_err(io_error)
            })
            .map_err(io_error)??;
        metrics::counter!("ssn_scylla_journal_requests_total").increment(requests);
        Ok(())
    }

    fn replay(
        &mut self,
        visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
    ) -> io::Result<Option<Break>> {
        self.replay_from(0, 1, visit)
    }

    /// From entry `sequence` on (rows are found by sequence: `offset` is not used).
    fn replay_from(
        &mut self,
        _offset: u64,
        sequence: u64,
        visit: &mut dyn FnMut(EncodedEntry, u64) -> Result<(), Break>,
    ) -> io::Result<Option<Break>> {
        let mut expected = sequence.max(1);
        let torn = |sequence| {
            Ok(Some(Break {
                sequence,
                offset: sequence,
                kind: BreakKind::Truncated,
            }))
        };
        loop {
            let bucket = bucket_of(expected);
            let (entries, ended_inside) = assemble(self.partition_from(bucket, expected)?);
            for entry in entries {
                if entry.sequence != expected {
                    // A missing entry: what follows was never acknowledged.
                    return torn(expected);
                }
                let sequence = entry.sequence;
                if let Err(found) = visit(entry, sequence) {
                    return Ok(Some(found));
                }
                expected += 1;
            }
            if ended_inside {
                return torn(expected);
            }
            if bucket_of(expected) == bucket {
                // The partition is not full: the chain ends here, unless rows of a torn batch
                // lie beyond the gap.
                return if self.rows_from(expected)?.is_empty() {
                    Ok(None)
                } else {
                    torn(expected)
                };
            }
        }
    }

    fn other_chains(&mut self) -> io::Result<Vec<(String, Vec<Entry>)>> {
        let mut chains = Vec::new();
        for name in self.other_chain_names()? {
            let mut reader = self.for_chain(name.clone());
            let mut entries = Vec::new();
            // Read as far as the chain is whole: another node may be writing its next batch,
            // or have left a torn one it will set aside when it recovers or reopens.
            replay_until(&mut reader, None, &mut |entry| {
                entries.push(entry);
                Ok(())
            })?;
            chains.push((name, entries));
        }
        Ok(chains)
    }

    fn other_chains_after(
        &mut self,
        after: &[ChainPosition],
    ) -> io::Result<Vec<(String, Vec<Entry>)>> {
        let mut chains = Vec::new();
        for name in self.other_chain_names()? {
            let position = ChainPosition::position_of(after, &name);
            let (entries, _) = self.read_chain_after(&name, position.as_ref())?;
            chains.push((name, entries));
        }
        Ok(chains)
    }

    fn shared_snapshot(&mut self) -> io::Result<Option<SharedSnapshot>> {
        for listed in self.snapshots.list()? {
            if !self.continues(&listed.chains)? {
                continue;
            }
            match self.snapshots.load(&listed) {
                Ok(state) => {
                    return Ok(Some(SharedSnapshot {
                        id: listed.id,
                        chains: listed.chains,
                        state,
                    }));
                }
                Err(error) => {
                    // Removed meanwhile by another node, or damaged: the next older one.
                    tracing::warn!(id = %listed.id, %error, "passing over a shared snapshot");
                }
            }
        }
        Ok(None)
    }

    fn snapshot_taker(&self) -> Option<Box<dyn SharedSnapshotTaker>> {
        Some(Box::new(super::snapshots::ScyllaSnapshotTaker::new(
            self.for_chain(self.chain.clone()),
        )))
    }

    fn chain_name(&self) -> &str {
        &self.chain
    }

    fn cut_tail(&mut self, found: &Break, bytes_max: u64) -> io::Result<Option<PathBuf>> {
        if found.kind != BreakKind::Truncated {
            return Ok(None);
        }
        let from = found.sequence;
        let rows = self.rows_from(from)?;
        let mut sequences: Vec<i64> = rows.iter().map(|row| row.0).collect();
        sequences.dedup();
        let bytes: u64 = rows.iter().map(|row| row.5.len() as u64).sum();
        if sequences.len() > JOURNAL_BATCH_RECORDS_MAX || bytes > bytes_max {
            return Ok(None);
        }
        let session = Arc::clone(self.cluster.session());
        let insert_torn = self.insert_torn.clone();
        let delete_from = self.delete_from.clone();
        let chain = self.chain.clone();
        self.cluster
            .block_on(async move {
                for (sequence, part, parts, previous_hash, hash, body) in rows {
                    session
                        .execute_unpaged(
                            &insert_torn,
                            (
                                chain.clone(),
                                sequence,
                                part,
                                parts,
                                previous_hash,
                                hash,
                                body,
                            ),
                        )
                        .await
                        .map_err(io_error)?;
                }
                for bucket in [bucket_of(from), bucket_of(from) + 1] {
                    session
                        .execute_unpaged(&delete_from, (chain.clone(), bucket, from as i64))
                        .await
                        .map_err(io_error)?;
                }
                Ok::<(), io::Error>(())
            })
            .map_err(io_error)??;
        Ok(Some(PathBuf::from(format!(
            "scylla:{}.journal_torn/{}",
            self.cluster.config().keyspace,
            self.chain
        ))))
    }
}

/// Verifies the keyspace's journal as `ssn-ledger verify` verifies a journal file: recomputes
/// this chain's hashes and links, reads every other node's chain as far as it is whole, applies
/// them all merged (as opening does: acceptance time, chain name,
/// sequence) and checks every balance; reports the first break. Changes nothing.
pub fn verify_scylla(journal: &mut ScyllaJournal) -> Result<VerifyReport, VerifyError> {
    let mut own = Vec::new();
    let (head, end) = replay_until(journal, None, &mut |entry| {
        own.push(entry);
        Ok(())
    })?;
    if let Some(found) = end {
        return Err(VerifyError::Broken(found));
    }
    let mut chains = journal.other_chains()?;
    chains.push((journal.chain.clone(), own));
    let snapshots = super::snapshots::check_snapshots(journal, &chains)?;
    let mut state = State::default();
    apply_merged(&mut state, chains).map_err(|(_, found)| VerifyError::Broken(found))?;
    check_balances(&state)?;
    let funded = state
        .balance(&Account::FundingSource)
        .checked_neg()
        .unwrap_or(Money::ZERO);
    let pockets: usize = state.cards.values().map(|c| c.pockets.len()).sum();
    Ok(VerifyReport {
        entries: state.entries,
        last_hash: head.last_hash,
        accounts: state.accounts.len() + pockets,
        funded,
        snapshots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase_sized(sequence: u64) -> EncodedEntry {
        EncodedEntry {
            sequence,
            previous_hash: [1; 32],
            body: vec![7; 200],
            hash: [2; 32],
        }
    }

    /// A full group commit of purchases costs one CQL request per 256 entries, not one per
    /// entry; a partition boundary and a body larger than a batch start a new request.
    #[test]
    fn a_group_commit_is_written_with_one_request_per_batch_of_rows() {
        let entries: Vec<EncodedEntry> = (1..=JOURNAL_BATCH_RECORDS_MAX as u64)
            .map(purchase_sized)
            .collect();
        let groups = batch_groups(rows_of("1", &entries));
        assert_eq!(
            groups.len(),
            JOURNAL_BATCH_RECORDS_MAX / SCYLLA_JOURNAL_BATCH_ROWS_MAX
        );
        assert!(groups.iter().all(|g| g.iter().all(|row| row.1 == g[0].1)));

        let across = SCYLLA_JOURNAL_PARTITION_ENTRIES - 1;
        let mut entries: Vec<EncodedEntry> = (across..across + 4).map(purchase_sized).collect();
        entries[3].body = vec![9; SCYLLA_JOURNAL_BATCH_BYTES_MAX + 1];
        let groups = batch_groups(rows_of("1", &entries));
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        assert_eq!(
            sizes,
            [2, 1, 1],
            "split at the partition, the large body alone"
        );
    }
}
