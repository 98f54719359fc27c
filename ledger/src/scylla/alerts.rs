//! The registry's alert index by time and the misuse monitor's checkpoints, on Scylla
//! (schema version 3).
//!
//! - `registry_alerts_by_time`: one partition per period of [`SCYLLA_ALERT_PERIOD_SECONDS`]
//!   by when the alert fired, clustered newest first, each row the alert's filter fields
//!   (`AlertIndexRow`). It is written in the same intent as the alert itself, so a listing
//!   reads the periods its filter spans, newest first, and then only its page's alerts. The
//!   first and last periods holding alerts are two registry sequences.
//! - `monitor_checkpoints` names each node's current checkpoint, whose bytes are in
//!   `monitor_checkpoint_chunks` (chunks of [`SCYLLA_SNAPSHOT_CHUNK_BYTES`], a partition
//!   each, under a generation written before it is named): a crash while one is written
//!   leaves the previous one named.

use super::SCYLLA_SNAPSHOT_CHUNK_BYTES;
use crate::registry::{AlertCursor, AlertFilter, AlertIndexRow, RegistryError};
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use sha2::{Digest, Sha256};

/// Seconds of one partition of the alert index.
pub const SCYLLA_ALERT_PERIOD_SECONDS: i64 = 30 * 86_400;
/// The sequence holding the first period with alerts, plus one (0: none yet).
pub(super) const FIRST_PERIOD_SEQUENCE: &str = "__alert_period_first";
/// The sequence holding the last period with alerts, plus one.
pub(super) const LAST_PERIOD_SEQUENCE: &str = "__alert_period_last";

/// The prepared statements of this module.
#[derive(Clone)]
pub(super) struct AlertStatements {
    list: PreparedStatement,
    pub(super) put: PreparedStatement,
    get_checkpoint: PreparedStatement,
    put_checkpoint: PreparedStatement,
    get_chunk: PreparedStatement,
    put_chunk: PreparedStatement,
    delete_chunk: PreparedStatement,
}

fn storage(error: impl std::fmt::Display) -> RegistryError {
    RegistryError::Storage(error.to_string())
}

/// The period an alert fired at `fired_at` is indexed in, plus one (as the sequences hold it).
pub(super) fn period_plus_one(fired_at: i64) -> u64 {
    u64::try_from(fired_at.max(0) / SCYLLA_ALERT_PERIOD_SECONDS).unwrap_or(0) + 1
}

impl AlertStatements {
    pub(super) async fn prepare(
        cluster: &super::ScyllaCluster,
    ) -> Result<AlertStatements, super::ScyllaError> {
        let c = cluster;
        Ok(AlertStatements {
            list: c
                .prepare(
                    "SELECT fired_at, id, row FROM registry_alerts_by_time WHERE period = ? \
                     AND fired_at >= ? AND fired_at <= ?",
                )
                .await?,
            put: c
                .prepare(
                    "INSERT INTO registry_alerts_by_time (period, fired_at, id, row) \
                     VALUES (?, ?, ?, ?)",
                )
                .await?,
            get_checkpoint: c
                .prepare("SELECT generation, chunks, digest FROM monitor_checkpoints WHERE node = ?")
                .await?,
            put_checkpoint: c
                .prepare(
                    "INSERT INTO monitor_checkpoints (node, generation, chunks, digest) \
                     VALUES (?, ?, ?, ?)",
                )
                .await?,
            get_chunk: c
                .prepare(
                    "SELECT bytes FROM monitor_checkpoint_chunks WHERE generation = ? AND chunk = ?",
                )
                .await?,
            put_chunk: c
                .prepare(
                    "INSERT INTO monitor_checkpoint_chunks (generation, chunk, bytes) \
                     VALUES (?, ?, ?)",
                )
                .await?,
            delete_chunk: c
                .prepare("DELETE FROM monitor_checkpoint_chunks WHERE generation = ? AND chunk = ?")
                .await?,
        })
    }
}

/// The index's keys `filter` wants after `after`, newest first, in the periods
/// `first..=last` (the sequences' values, plus one): how many there are, and the keys of those
/// after the first `skip`, at most `limit`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn alert_keys(
    session: &Session,
    s: &AlertStatements,
    (first, last): (u64, u64),
    filter: &AlertFilter,
    after: Option<&AlertCursor>,
    skip: u64,
    limit: usize,
) -> Result<(u64, Vec<(i64, String)>), RegistryError> {
    if first == 0 {
        return Ok((0, Vec::new()));
    }
    let newest = last.min(period_plus_one(filter.fired_to));
    let oldest = first.max(period_plus_one(filter.fired_from));
    let (mut matched, mut keys) = (0u64, Vec::new());
    let mut period = newest;
    while period >= oldest && period > 0 {
        let stored = i64::try_from(period - 1).map_err(storage)?;
        let rows = session
            .execute_iter(
                s.list.clone(),
                (stored, filter.fired_from.max(0), filter.fired_to),
            )
            .await
            .map_err(storage)?
            .rows_stream::<(i64, String, Vec<u8>)>()
            .map_err(storage)?;
        let mut rows = std::pin::pin!(rows);
        while let Some((fired_at, id, row)) = rows.try_next().await.map_err(storage)? {
            let before_cursor = after
                .is_none_or(|c| (fired_at, id.as_str()) < (c.fired_at_unix_seconds, c.id.as_str()));
            let row = AlertIndexRow::decode(&row).ok_or(RegistryError::Corrupt("alert index"))?;
            if !before_cursor || !filter.admits(fired_at, &row) {
                continue;
            }
            matched += 1;
            if matched > skip && keys.len() < limit {
                keys.push((fired_at, id));
            }
        }
        period -= 1;
    }
    Ok((matched, keys))
}

/// The generation, chunk count and digest of `node`'s checkpoint.
async fn named(
    session: &Session,
    s: &AlertStatements,
    node: &str,
) -> Result<Option<(String, i32, Vec<u8>)>, RegistryError> {
    session
        .execute_unpaged(&s.get_checkpoint, (node,))
        .await
        .map_err(storage)?
        .into_rows_result()
        .map_err(storage)?
        .maybe_first_row::<(String, i32, Vec<u8>)>()
        .map_err(storage)
}

/// `node`'s checkpoint: its chunks read and checked against the digest that names them.
pub(super) async fn checkpoint(
    session: &Session,
    s: &AlertStatements,
    node: &str,
) -> Result<Option<Vec<u8>>, RegistryError> {
    let Some((generation, chunks, digest)) = named(session, s, node).await? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    for chunk in 0..chunks {
        let (part,) = session
            .execute_unpaged(&s.get_chunk, (generation.as_str(), chunk))
            .await
            .map_err(storage)?
            .into_rows_result()
            .map_err(storage)?
            .maybe_first_row::<(Vec<u8>,)>()
            .map_err(storage)?
            .ok_or(RegistryError::Corrupt("monitor checkpoint"))?;
        bytes.extend_from_slice(&part);
    }
    if Sha256::digest(&bytes).as_slice() != digest.as_slice() {
        return Err(RegistryError::Corrupt("monitor checkpoint"));
    }
    Ok(Some(bytes))
}

/// Writes `bytes` as `node`'s checkpoint under a new `generation`, names it, then removes the
/// previous generation's chunks.
pub(super) async fn set_checkpoint(
    session: &Session,
    s: &AlertStatements,
    node: &str,
    generation: &str,
    bytes: &[u8],
) -> Result<(), RegistryError> {
    let previous = named(session, s, node).await?;
    let mut chunks = 0i32;
    for part in bytes.chunks(SCYLLA_SNAPSHOT_CHUNK_BYTES) {
        session
            .execute_unpaged(&s.put_chunk, (generation, chunks, part))
            .await
            .map_err(storage)?;
        chunks += 1;
    }
    let digest = Sha256::digest(bytes).to_vec();
    session
        .execute_unpaged(&s.put_checkpoint, (node, generation, chunks, digest))
        .await
        .map_err(storage)?;
    if let Some((old, old_chunks, _)) = previous.filter(|(old, _, _)| old != generation) {
        for chunk in 0..old_chunks {
            session
                .execute_unpaged(&s.delete_chunk, (old.as_str(), chunk))
                .await
                .map_err(storage)?;
        }
    }
    Ok(())
}
