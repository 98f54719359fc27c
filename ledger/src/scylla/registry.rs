//! The registry on Scylla, with the same all-or-nothing [`Registry::apply`] as redb.
//!
//! CQL has no multi-partition transaction, so a change is made all-or-nothing with a lease
//! and a redo intent: the writer takes the registry's lease (one lightweight transaction,
//! expiring after [`SCYLLA_REGISTRY_LEASE_TTL_SECONDS`]), finishes any intent a crashed writer
//! left, checks every op against what is stored (so `Insert`, `Replace` and the unique indexes
//! behave as on redb), writes the list of row writes as one intent row, applies them (each an
//! idempotent write), deletes the intent and releases the lease. A crash after the intent is
//! written is completed by the next writer; before it, nothing was written. Reads take no lease.
//!
//! Records are stored as the same postcard bytes as in redb, under `(kind, bucket)` partitions
//! ([`SCYLLA_REGISTRY_BUCKETS`] per kind, by a hash of the key) so no partition grows with the
//! number of cards; unique indexes (NIK, PAN, token hash) are one partition per key.

use super::alerts::{
    AlertStatements, FIRST_PERIOD_SEQUENCE, LAST_PERIOD_SEQUENCE, period_plus_one,
};
use super::{ScyllaCluster, ScyllaError};
use crate::ids::{CardId, MerchantId, ProgramCode, TerminalId};
use crate::registry::Stored;
use crate::registry::{
    AlertCursor, AlertFilter, AlertIndexRow, AlertRecord, ApiToken, AuditEntry, Beneficiary, Card,
    Determination, HOST_KEYS_KEY, HostKeys, Merchant, Nik, Pan, Program,
    REGISTRY_OPS_PER_APPLY_MAX, Registry, RegistryError, RegistryOp, RegistryRecord, Terminal,
};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::statement::SerialConsistency;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Partitions per record kind. A listing reads all of them; a lookup reads one row.
pub const SCYLLA_REGISTRY_BUCKETS: i32 = 64;
/// Audit entries per partition.
pub const SCYLLA_AUDIT_PARTITION_ENTRIES: u64 = 4_096;
/// Largest intent (the encoded writes of one `apply`): well under the cluster's mutation size
/// limit. A larger change is refused as a conflict, before anything is written.
pub const SCYLLA_REGISTRY_INTENT_BYTES_MAX: usize = 8 << 20;
/// Seconds the registry's lease lives if its holder dies without releasing it.
pub const SCYLLA_REGISTRY_LEASE_TTL_SECONDS: i32 = 30;
/// Longest wait for the registry's lease before the write is refused as unavailable.
pub const SCYLLA_REGISTRY_LEASE_WAIT_MAX: Duration = Duration::from_secs(5);
/// Concurrent partition reads of one listing.
const LISTING_READS_IN_FLIGHT_MAX: usize = 16;
/// The sequence that numbers audit entries.
const AUDIT_SEQUENCE: &str = "__audit";

/// One row write of an intent.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Write {
    Record {
        kind: String,
        key: String,
        value: Vec<u8>,
    },
    DeleteRecord {
        kind: String,
        key: String,
    },
    Index {
        index: String,
        key: String,
        owner: String,
    },
    Unindex {
        index: String,
        key: String,
    },
    Sequence {
        name: String,
        value: u64,
    },
    Audit {
        sequence: u64,
        entry: Vec<u8>,
    },
    /// An alert's row of the index by time (last, so intents written before it decode).
    AlertIndex {
        period: i64,
        fired_at: i64,
        id: String,
        row: Vec<u8>,
    },
}

/// The prepared statements.
#[derive(Clone)]
struct Statements {
    get: PreparedStatement,
    list: PreparedStatement,
    put: PreparedStatement,
    delete: PreparedStatement,
    get_index: PreparedStatement,
    put_index: PreparedStatement,
    delete_index: PreparedStatement,
    get_sequence: PreparedStatement,
    put_sequence: PreparedStatement,
    get_audit: PreparedStatement,
    put_audit: PreparedStatement,
    take_lease: PreparedStatement,
    release_lease: PreparedStatement,
    get_intent: PreparedStatement,
    put_intent: PreparedStatement,
    delete_intent: PreparedStatement,
    alerts: AlertStatements,
}

/// The registry on Scylla.
#[derive(Clone)]
pub struct ScyllaRegistry {
    /// The shared session.
    cluster: Arc<ScyllaCluster>,
    /// Prepared once at open.
    statements: Arc<Statements>,
}

impl fmt::Debug for ScyllaRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScyllaRegistry")
            .field("keyspace", &self.cluster.config().keyspace)
            .finish_non_exhaustive()
    }
}

fn storage(error: impl fmt::Display) -> RegistryError {
    RegistryError::Storage(error.to_string())
}

impl From<ScyllaError> for RegistryError {
    fn from(error: ScyllaError) -> RegistryError {
        match error {
            ScyllaError::Corrupt(what) => RegistryError::Corrupt(what),
            other => RegistryError::Storage(other.to_string()),
        }
    }
}

fn encode(record: &impl Serialize) -> Vec<u8> {
    // Registry records are plain data; postcard cannot fail on them.
    postcard::to_stdvec(record).expect("registry records encode")
}

fn decode<T: Stored>(bytes: &[u8], what: &'static str) -> Result<T, RegistryError> {
    T::from_stored(bytes).ok_or(RegistryError::Corrupt(what))
}

fn bucket_of(key: &str) -> i32 {
    let digest = Sha256::digest(key.as_bytes());
    (u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
        % SCYLLA_REGISTRY_BUCKETS as u32) as i32
}

fn audit_bucket(sequence: u64) -> i64 {
    (sequence / SCYLLA_AUDIT_PARTITION_ENTRIES) as i64
}

/// Where a record lives: its kind, key, unique index entry if any, and its stored bytes.
struct Placement {
    kind: &'static str,
    key: String,
    index: Option<(&'static str, String)>,
    bytes: Vec<u8>,
}

fn placement(record: &RegistryRecord) -> Placement {
    let (kind, key, index, bytes) = match record {
        RegistryRecord::HostKeys(k) => ("host_keys", HOST_KEYS_KEY.to_string(), None, encode(k)),
        RegistryRecord::Program(p) => ("program", p.code.to_string(), None, encode(p)),
        RegistryRecord::Beneficiary(b) => (
            "beneficiary",
            b.ssn.clone(),
            Some(("nik", b.nik.expose().to_string())),
            encode(b),
        ),
        RegistryRecord::Determination(d) => ("determination", d.id.to_string(), None, encode(d)),
        RegistryRecord::Card(c) => (
            "card",
            c.card_id.0.to_string(),
            Some(("pan", c.pan.expose().to_string())),
            encode(c),
        ),
        RegistryRecord::Merchant(m) => ("merchant", m.merchant_id.to_string(), None, encode(m)),
        RegistryRecord::Terminal(t) => ("terminal", t.terminal_id.to_string(), None, encode(t)),
        RegistryRecord::Token(t) => (
            "token",
            t.name.clone(),
            Some(("token", crate::ids::hex(&t.token_hash))),
            encode(t),
        ),
        RegistryRecord::Alert(a) => ("alert", a.alert.id.clone(), None, encode(a)),
    };
    Placement {
        kind,
        key,
        index,
        bytes,
    }
}

/// A change being built: what it has written so far, so later ops of the same list see
/// earlier ones, as in one redb transaction.
#[derive(Default)]
struct Change {
    records: HashMap<(String, String), Option<Vec<u8>>>,
    index: HashMap<(String, String), Option<String>>,
    sequences: HashMap<String, u64>,
    writes: Vec<Write>,
}

impl ScyllaRegistry {
    pub(crate) async fn open(cluster: Arc<ScyllaCluster>) -> Result<ScyllaRegistry, ScyllaError> {
        let c = &cluster;
        let mut take_lease = c
            .prepare(
                "INSERT INTO registry_lease (name, holder) VALUES ('writer', ?) IF NOT EXISTS \
                 USING TTL ?",
            )
            .await?;
        take_lease.set_serial_consistency(Some(SerialConsistency::LocalSerial));
        let mut release_lease = c
            .prepare("DELETE FROM registry_lease WHERE name = 'writer' IF holder = ?")
            .await?;
        release_lease.set_serial_consistency(Some(SerialConsistency::LocalSerial));
        let statements = Statements {
            get: c
                .prepare(
                    "SELECT value FROM registry_records WHERE kind = ? AND bucket = ? AND key = ?",
                )
                .await?,
            list: c
                .prepare("SELECT key, value FROM registry_records WHERE kind = ? AND bucket = ?")
                .await?,
            put: c
                .prepare(
                    "INSERT INTO registry_records (kind, bucket, key, value) VALUES (?, ?, ?, ?)",
                )
                .await?,
            delete: c
                .prepare("DELETE FROM registry_records WHERE kind = ? AND bucket = ? AND key = ?")
                .await?,
            get_index: c
                .prepare("SELECT owner FROM registry_index WHERE index_name = ? AND index_key = ?")
                .await?,
            put_index: c
                .prepare(
                    "INSERT INTO registry_index (index_name, index_key, owner) VALUES (?, ?, ?)",
                )
                .await?,
            delete_index: c
                .prepare("DELETE FROM registry_index WHERE index_name = ? AND index_key = ?")
                .await?,
            get_sequence: c
                .prepare("SELECT value FROM registry_sequences WHERE name = ?")
                .await?,
            put_sequence: c
                .prepare("INSERT INTO registry_sequences (name, value) VALUES (?, ?)")
                .await?,
            get_audit: c
                .prepare(
                    "SELECT sequence, entry FROM registry_audit WHERE bucket = ? AND sequence >= ? \
                     LIMIT ?",
                )
                .await?,
            put_audit: c
                .prepare("INSERT INTO registry_audit (bucket, sequence, entry) VALUES (?, ?, ?)")
                .await?,
            take_lease,
            release_lease,
            get_intent: c
                .prepare("SELECT writes FROM registry_intent WHERE name = 'pending'")
                .await?,
            put_intent: c
                .prepare("INSERT INTO registry_intent (name, writes) VALUES ('pending', ?)")
                .await?,
            delete_intent: c
                .prepare("DELETE FROM registry_intent WHERE name = 'pending'")
                .await?,
            alerts: AlertStatements::prepare(c).await?,
        };
        Ok(ScyllaRegistry {
            cluster,
            statements: Arc::new(statements),
        })
    }

    /// Runs `work` with the session and statements on the driver's runtime.
    async fn with<T, F>(
        &self,
        work: impl FnOnce(Arc<Session>, Arc<Statements>) -> F,
    ) -> Result<T, RegistryError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, RegistryError>> + Send + 'static,
    {
        let future = work(
            Arc::clone(self.cluster.session()),
            Arc::clone(&self.statements),
        );
        self.cluster.run(future).await?
    }

    async fn get_bytes(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let (kind, key) = (kind.to_string(), key.to_string());
        self.with(|session, s| async move { read_record(&session, &s, &kind, &key).await })
            .await
    }

    async fn get<T: Stored>(
        &self,
        kind: &'static str,
        key: &str,
    ) -> Result<Option<T>, RegistryError> {
        match self.get_bytes(kind, key).await? {
            Some(bytes) => decode(&bytes, kind).map(Some),
            None => Ok(None),
        }
    }

    async fn get_by_index<T: Stored>(
        &self,
        index: &'static str,
        kind: &'static str,
        index_key: &str,
    ) -> Result<Option<T>, RegistryError> {
        let (index_name, index_key) = (index.to_string(), index_key.to_string());
        let owner = self
            .with(
                |session, s| async move { read_index(&session, &s, &index_name, &index_key).await },
            )
            .await?;
        let Some(owner) = owner else {
            return Ok(None);
        };
        match self.get_bytes(kind, &owner).await? {
            Some(bytes) => decode(&bytes, kind).map(Some),
            // The index is written before the record in an intent; a reader between the two
            // sees nothing yet.
            None => Ok(None),
        }
    }

    async fn all<T: Stored>(&self, kind: &'static str) -> Result<Vec<T>, RegistryError> {
        let mut rows: Vec<(String, Vec<u8>)> = self
            .with(|session, s| async move {
                let buckets = futures::stream::iter(0..SCYLLA_REGISTRY_BUCKETS)
                    .map(|bucket| {
                        let (session, s) = (Arc::clone(&session), Arc::clone(&s));
                        async move {
                            session
                                .execute_iter(s.list.clone(), (kind, bucket))
                                .await
                                .map_err(storage)?
                                .rows_stream::<(String, Vec<u8>)>()
                                .map_err(storage)?
                                .map_err(storage)
                                .try_collect::<Vec<_>>()
                                .await
                        }
                    })
                    .buffer_unordered(LISTING_READS_IN_FLIGHT_MAX)
                    .try_collect::<Vec<Vec<_>>>()
                    .await?;
                Ok(buckets.into_iter().flatten().collect())
            })
            .await?;
        // The embedded registry lists in key order; so does this one.
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.iter().map(|(_, value)| decode(value, kind)).collect()
    }

    /// Sets a named sequence's last number handed out (importing an embedded registry).
    pub(super) async fn set_sequence(&self, name: &str, last: u64) -> Result<(), RegistryError> {
        let write = Write::Sequence {
            name: name.to_string(),
            value: last,
        };
        self.exclusively(|session, s| async move { apply_writes(&session, &s, vec![write]).await })
            .await
    }

    /// Runs `work` while holding the registry's lease, after finishing any pending intent.
    async fn exclusively<T, F>(
        &self,
        work: impl FnOnce(Arc<Session>, Arc<Statements>) -> F,
    ) -> Result<T, RegistryError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, RegistryError>> + Send + 'static,
    {
        let work = work(
            Arc::clone(self.cluster.session()),
            Arc::clone(&self.statements),
        );
        self.with(|session, s| async move {
            let holder = lease_holder();
            take_lease(&session, &s, &holder).await?;
            let outcome = async {
                finish_intent(&session, &s).await?;
                work.await
            }
            .await;
            let released = release_lease(&session, &s, &holder).await;
            let value = outcome?;
            released?;
            Ok(value)
        })
        .await
    }
}

/// A name no other writer uses.
fn lease_holder() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut hasher = Sha256::new();
    hasher.update(format!("{:?}", std::time::SystemTime::now()));
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    crate::ids::hex(&hasher.finalize()[..16])
}

async fn take_lease(session: &Session, s: &Statements, holder: &str) -> Result<(), RegistryError> {
    let deadline = tokio::time::Instant::now() + SCYLLA_REGISTRY_LEASE_WAIT_MAX;
    let mut pause = Duration::from_millis(5);
    loop {
        let result = session
            .execute_unpaged(&s.take_lease, (holder, SCYLLA_REGISTRY_LEASE_TTL_SECONDS))
            .await
            .map_err(storage)?;
        let rows = result.into_rows_result().map_err(storage)?;
        let row: Row = rows.first_row().map_err(storage)?;
        let applied = matches!(row.columns.first(), Some(Some(CqlValue::Boolean(true))));
        // A retried insert that had in fact applied finds our own name there.
        let ours = row
            .columns
            .iter()
            .any(|c| matches!(c, Some(CqlValue::Text(h)) if h == holder));
        if applied || ours {
            return Ok(());
        }
        if tokio::time::Instant::now() + pause > deadline {
            return Err(RegistryError::Storage(format!(
                "the registry stayed locked by another writer for {}s",
                SCYLLA_REGISTRY_LEASE_WAIT_MAX.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

async fn release_lease(
    session: &Session,
    s: &Statements,
    holder: &str,
) -> Result<(), RegistryError> {
    session
        .execute_unpaged(&s.release_lease, (holder,))
        .await
        .map_err(storage)?;
    Ok(())
}

async fn read_record(
    session: &Session,
    s: &Statements,
    kind: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, RegistryError> {
    session
        .execute_unpaged(&s.get, (kind, bucket_of(key), key))
        .await
        .map_err(storage)?
        .into_rows_result()
        .map_err(storage)?
        .maybe_first_row::<(Vec<u8>,)>()
        .map(|row| row.map(|(value,)| value))
        .map_err(storage)
}

async fn read_index(
    session: &Session,
    s: &Statements,
    index: &str,
    key: &str,
) -> Result<Option<String>, RegistryError> {
    session
        .execute_unpaged(&s.get_index, (index, key))
        .await
        .map_err(storage)?
        .into_rows_result()
        .map_err(storage)?
        .maybe_first_row::<(String,)>()
        .map(|row| row.map(|(owner,)| owner))
        .map_err(storage)
}

async fn read_sequence(
    session: &Session,
    s: &Statements,
    name: &str,
) -> Result<u64, RegistryError> {
    let value = session
        .execute_unpaged(&s.get_sequence, (name,))
        .await
        .map_err(storage)?
        .into_rows_result()
        .map_err(storage)?
        .maybe_first_row::<(i64,)>()
        .map_err(storage)?
        .map_or(0, |(value,)| value);
    u64::try_from(value).map_err(|_| RegistryError::Corrupt("sequence"))
}

/// Applies the writes of a pending intent (left by a writer that stopped half-way), then
/// removes it. Every write is idempotent, so applying it twice is harmless.
async fn finish_intent(session: &Session, s: &Statements) -> Result<(), RegistryError> {
    let pending = session
        .execute_unpaged(&s.get_intent, ())
        .await
        .map_err(storage)?
        .into_rows_result()
        .map_err(storage)?
        .maybe_first_row::<(Vec<u8>,)>()
        .map_err(storage)?;
    if let Some((bytes,)) = pending {
        let writes: Vec<Write> =
            postcard::from_bytes(&bytes).map_err(|_| RegistryError::Corrupt("intent"))?;
        apply_writes(session, s, writes).await?;
        session
            .execute_unpaged(&s.delete_intent, ())
            .await
            .map_err(storage)?;
    }
    Ok(())
}

async fn apply_writes(
    session: &Session,
    s: &Statements,
    writes: Vec<Write>,
) -> Result<(), RegistryError> {
    futures::stream::iter(writes)
        .map(|write| async move {
            let done = match write {
                Write::Record { kind, key, value } => {
                    session
                        .execute_unpaged(&s.put, (kind, bucket_of(&key), key, value))
                        .await
                }
                Write::DeleteRecord { kind, key } => {
                    session
                        .execute_unpaged(&s.delete, (kind, bucket_of(&key), key))
                        .await
                }
                Write::Index { index, key, owner } => {
                    session
                        .execute_unpaged(&s.put_index, (index, key, owner))
                        .await
                }
                Write::Unindex { index, key } => {
                    session.execute_unpaged(&s.delete_index, (index, key)).await
                }
                Write::Sequence { name, value } => {
                    let value = i64::try_from(value)
                        .map_err(|_| RegistryError::Conflict("sequence beyond 2^63".into()))?;
                    session
                        .execute_unpaged(&s.put_sequence, (name, value))
                        .await
                }
                Write::Audit { sequence, entry } => {
                    session
                        .execute_unpaged(
                            &s.put_audit,
                            (audit_bucket(sequence), sequence as i64, entry),
                        )
                        .await
                }
                Write::AlertIndex {
                    period,
                    fired_at,
                    id,
                    row,
                } => {
                    session
                        .execute_unpaged(&s.alerts.put, (period, fired_at, id, row))
                        .await
                }
            };
            done.map(|_| ()).map_err(storage)
        })
        .buffer_unordered(super::SCYLLA_WRITES_IN_FLIGHT_MAX)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

impl Change {
    async fn record(
        &self,
        session: &Session,
        s: &Statements,
        kind: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        match self.records.get(&(kind.to_string(), key.to_string())) {
            Some(value) => Ok(value.clone()),
            None => read_record(session, s, kind, key).await,
        }
    }

    async fn owner(
        &self,
        session: &Session,
        s: &Statements,
        index: &str,
        key: &str,
    ) -> Result<Option<String>, RegistryError> {
        match self.index.get(&(index.to_string(), key.to_string())) {
            Some(owner) => Ok(owner.clone()),
            None => read_index(session, s, index, key).await,
        }
    }

    fn set_record(&mut self, kind: &str, key: &str, value: Option<Vec<u8>>) {
        self.records
            .insert((kind.to_string(), key.to_string()), value.clone());
        self.writes.push(match value {
            Some(value) => Write::Record {
                kind: kind.to_string(),
                key: key.to_string(),
                value,
            },
            None => Write::DeleteRecord {
                kind: kind.to_string(),
                key: key.to_string(),
            },
        });
    }

    fn set_index(&mut self, index: &str, key: &str, owner: Option<String>) {
        self.index
            .insert((index.to_string(), key.to_string()), owner.clone());
        self.writes.push(match owner {
            Some(owner) => Write::Index {
                index: index.to_string(),
                key: key.to_string(),
                owner,
            },
            None => Write::Unindex {
                index: index.to_string(),
                key: key.to_string(),
            },
        });
    }

    async fn next(
        &mut self,
        session: &Session,
        s: &Statements,
        name: &str,
    ) -> Result<u64, RegistryError> {
        let current = self.sequence(session, s, name).await?;
        let next = current
            .checked_add(1)
            .ok_or_else(|| RegistryError::Conflict(format!("sequence {name} is exhausted")))?;
        self.set_sequence(name, next);
        Ok(next)
    }

    /// Stores `record`; `expected` is `Some` for a `Replace`, `insert` for an `Insert`.
    async fn put(
        &mut self,
        session: &Session,
        s: &Statements,
        record: &RegistryRecord,
        expected: Option<&RegistryRecord>,
        insert: bool,
    ) -> Result<(), RegistryError> {
        let place = placement(record);
        let current = self.record(session, s, place.kind, &place.key).await?;
        match (insert, expected, &current) {
            (true, _, Some(_)) => {
                return Err(RegistryError::Conflict(format!(
                    "{} {} exists",
                    place.kind, place.key
                )));
            }
            (_, Some(_), None) => {
                return Err(RegistryError::NotFound(format!(
                    "{} {}",
                    place.kind, place.key
                )));
            }
            (_, Some(expected), Some(bytes)) if !expected.is_stored_as(bytes) => {
                return Err(RegistryError::Conflict(format!(
                    "{} {} changed meanwhile",
                    place.kind, place.key
                )));
            }
            _ => {}
        }
        if let Some((index, index_key)) = &place.index {
            let owner = self.owner(session, s, index, index_key).await?;
            if owner.as_deref().is_some_and(|owner| owner != place.key) {
                // Not naming the index key: it is a NIK, a PAN or a token hash.
                return Err(RegistryError::Conflict(format!(
                    "another {} has the same unique number",
                    place.kind
                )));
            }
            let old = expected.and_then(|e| placement(e).index.map(|(_, key)| key));
            if let Some(old) = old.filter(|old| old != index_key) {
                self.set_index(index, &old, None);
            }
            self.set_index(index, index_key, Some(place.key.clone()));
        }
        self.set_record(place.kind, &place.key, Some(place.bytes));
        if let RegistryRecord::Alert(alert) = record {
            self.index_alert(session, s, alert).await?;
        }
        Ok(())
    }

    /// Writes `alert`'s row of the index by time and widens the periods known to hold alerts.
    async fn index_alert(
        &mut self,
        session: &Session,
        s: &Statements,
        alert: &AlertRecord,
    ) -> Result<(), RegistryError> {
        let fired_at = alert.alert.fired_at_unix_seconds;
        let period = period_plus_one(fired_at);
        let first = self.sequence(session, s, FIRST_PERIOD_SEQUENCE).await?;
        if first == 0 || period < first {
            self.set_sequence(FIRST_PERIOD_SEQUENCE, period);
        }
        if period > self.sequence(session, s, LAST_PERIOD_SEQUENCE).await? {
            self.set_sequence(LAST_PERIOD_SEQUENCE, period);
        }
        self.writes.push(Write::AlertIndex {
            period: i64::try_from(period - 1).unwrap_or(i64::MAX),
            fired_at,
            id: alert.alert.id.clone(),
            row: AlertIndexRow::of(alert).encode(),
        });
        Ok(())
    }

    /// A sequence's value as this change sees it.
    async fn sequence(
        &self,
        session: &Session,
        s: &Statements,
        name: &str,
    ) -> Result<u64, RegistryError> {
        match self.sequences.get(name) {
            Some(value) => Ok(*value),
            None => read_sequence(session, s, name).await,
        }
    }

    fn set_sequence(&mut self, name: &str, value: u64) {
        self.sequences.insert(name.to_string(), value);
        self.writes.push(Write::Sequence {
            name: name.to_string(),
            value,
        });
    }

    async fn apply_op(
        &mut self,
        session: &Session,
        s: &Statements,
        op: &RegistryOp,
    ) -> Result<(), RegistryError> {
        match op {
            RegistryOp::Insert(record) => self.put(session, s, record, None, true).await,
            RegistryOp::Upsert(record) => self.put(session, s, record, None, false).await,
            RegistryOp::Replace { expected, new } => {
                self.put(session, s, new, Some(expected), false).await
            }
            RegistryOp::DeleteToken(name) => {
                let stored = self
                    .record(session, s, "token", name)
                    .await?
                    .ok_or_else(|| RegistryError::NotFound(format!("token {name}")))?;
                let token: ApiToken = decode(&stored, "token")?;
                self.set_index("token", &crate::ids::hex(&token.token_hash), None);
                self.set_record("token", name, None);
                Ok(())
            }
            RegistryOp::Audit(entry) => {
                let sequence = self.next(session, s, AUDIT_SEQUENCE).await?;
                self.writes.push(Write::Audit {
                    sequence,
                    entry: encode(entry),
                });
                Ok(())
            }
        }
    }
}

#[async_trait]
impl Registry for ScyllaRegistry {
    async fn apply(&self, ops: Vec<RegistryOp>) -> Result<(), RegistryError> {
        if ops.len() > REGISTRY_OPS_PER_APPLY_MAX {
            return Err(RegistryError::Conflict(format!(
                "more than {REGISTRY_OPS_PER_APPLY_MAX} changes at once"
            )));
        }
        self.exclusively(|session, s| async move {
            let mut change = Change::default();
            for op in &ops {
                // Nothing is written until every op has been checked.
                change.apply_op(&session, &s, op).await?;
            }
            if change.writes.is_empty() {
                return Ok(());
            }
            let intent = encode(&change.writes);
            if intent.len() > SCYLLA_REGISTRY_INTENT_BYTES_MAX {
                return Err(RegistryError::Conflict(format!(
                    "the change is {} bytes, above the {SCYLLA_REGISTRY_INTENT_BYTES_MAX} a \
                     Scylla registry takes at once",
                    intent.len()
                )));
            }
            session
                .execute_unpaged(&s.put_intent, (intent,))
                .await
                .map_err(storage)?;
            apply_writes(&session, &s, change.writes).await?;
            session
                .execute_unpaged(&s.delete_intent, ())
                .await
                .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn next_number(&self, sequence: &str) -> Result<u64, RegistryError> {
        let name = sequence.to_string();
        self.exclusively(|session, s| async move {
            let mut change = Change::default();
            let next = change.next(&session, &s, &name).await?;
            apply_writes(&session, &s, change.writes).await?;
            Ok(next)
        })
        .await
    }

    async fn next_numbers(&self, sequence: &str, count: u64) -> Result<u64, RegistryError> {
        let name = sequence.to_string();
        self.exclusively(|session, s| async move {
            let last = read_sequence(&session, &s, &name).await?;
            let exhausted = || RegistryError::Storage(format!("sequence {name} exhausted"));
            let first = last.checked_add(1).ok_or_else(exhausted)?;
            let new_last = last.checked_add(count).ok_or_else(exhausted)?;
            i64::try_from(new_last).map_err(|_| exhausted())?;
            let write = Write::Sequence {
                name: name.clone(),
                value: new_last,
            };
            apply_writes(&session, &s, vec![write]).await?;
            Ok(first)
        })
        .await
    }

    async fn host_keys(&self) -> Result<Option<HostKeys>, RegistryError> {
        self.get("host_keys", HOST_KEYS_KEY).await
    }

    async fn program(&self, code: &ProgramCode) -> Result<Option<Program>, RegistryError> {
        self.get("program", code.as_str()).await
    }

    async fn programs(&self) -> Result<Vec<Program>, RegistryError> {
        self.all("program").await
    }

    async fn beneficiary(&self, ssn: &str) -> Result<Option<Beneficiary>, RegistryError> {
        self.get("beneficiary", ssn).await
    }

    async fn beneficiary_by_nik(&self, nik: &Nik) -> Result<Option<Beneficiary>, RegistryError> {
        self.get_by_index("nik", "beneficiary", nik.expose()).await
    }

    async fn beneficiaries(&self) -> Result<Vec<Beneficiary>, RegistryError> {
        self.all("beneficiary").await
    }

    async fn determination(&self, id: u64) -> Result<Option<Determination>, RegistryError> {
        self.get("determination", &id.to_string()).await
    }

    async fn card(&self, card: CardId) -> Result<Option<Card>, RegistryError> {
        self.get("card", &card.0.to_string()).await
    }

    async fn card_by_pan(&self, pan: &Pan) -> Result<Option<Card>, RegistryError> {
        self.get_by_index("pan", "card", pan.expose()).await
    }

    async fn cards(&self) -> Result<Vec<Card>, RegistryError> {
        self.all("card").await
    }

    async fn merchant(&self, id: &MerchantId) -> Result<Option<Merchant>, RegistryError> {
        self.get("merchant", id.as_str()).await
    }

    async fn merchants(&self) -> Result<Vec<Merchant>, RegistryError> {
        self.all("merchant").await
    }

    async fn terminal(&self, id: &TerminalId) -> Result<Option<Terminal>, RegistryError> {
        self.get("terminal", id.as_str()).await
    }

    async fn terminals(&self) -> Result<Vec<Terminal>, RegistryError> {
        self.all("terminal").await
    }

    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiToken>, RegistryError> {
        self.get_by_index("token", "token", &crate::ids::hex(hash))
            .await
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, RegistryError> {
        self.all("token").await
    }

    async fn audit_last(&self) -> Result<u64, RegistryError> {
        self.with(|session, s| async move { read_sequence(&session, &s, AUDIT_SEQUENCE).await })
            .await
    }

    async fn alert(&self, id: &str) -> Result<Option<AlertRecord>, RegistryError> {
        self.get("alert", id).await
    }

    async fn alerts(
        &self,
        filter: &AlertFilter,
        after: Option<&AlertCursor>,
        skip: u64,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, RegistryError> {
        let (filter, after) = (filter.clone(), after.cloned());
        let (_, keys) = self
            .with(|session, s| async move {
                let periods = (
                    read_sequence(&session, &s, FIRST_PERIOD_SEQUENCE).await?,
                    read_sequence(&session, &s, LAST_PERIOD_SEQUENCE).await?,
                );
                super::alerts::alert_keys(
                    &session,
                    &s.alerts,
                    periods,
                    &filter,
                    after.as_ref(),
                    skip,
                    limit,
                )
                .await
            })
            .await?;
        let mut out = Vec::with_capacity(keys.len());
        for (_, id) in keys {
            out.push(
                self.get("alert", &id)
                    .await?
                    .ok_or(RegistryError::Corrupt("alert index"))?,
            );
        }
        Ok(out)
    }

    async fn alerts_count(&self, filter: &AlertFilter) -> Result<u64, RegistryError> {
        let filter = filter.clone();
        self.with(|session, s| async move {
            let periods = (
                read_sequence(&session, &s, FIRST_PERIOD_SEQUENCE).await?,
                read_sequence(&session, &s, LAST_PERIOD_SEQUENCE).await?,
            );
            let (count, _) =
                super::alerts::alert_keys(&session, &s.alerts, periods, &filter, None, 0, 0)
                    .await?;
            Ok(count)
        })
        .await
    }

    async fn monitor_checkpoint(&self, node: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let node = node.to_string();
        self.with(|session, s| async move {
            super::alerts::checkpoint(&session, &s.alerts, &node).await
        })
        .await
    }

    async fn set_monitor_checkpoint(
        &self,
        node: &str,
        bytes: Vec<u8>,
    ) -> Result<(), RegistryError> {
        let (node, generation) = (node.to_string(), lease_holder());
        self.with(|session, s| async move {
            super::alerts::set_checkpoint(&session, &s.alerts, &node, &generation, &bytes).await
        })
        .await
    }

    async fn audit(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, AuditEntry)>, RegistryError> {
        let rows: Vec<(i64, Vec<u8>)> = self
            .with(|session, s| async move {
                let last = read_sequence(&session, &s, AUDIT_SEQUENCE).await?;
                let mut rows = Vec::new();
                let mut bucket = audit_bucket(from);
                while rows.len() < limit && bucket <= audit_bucket(last) {
                    let wanted = i32::try_from(limit - rows.len()).unwrap_or(i32::MAX);
                    let found = session
                        .execute_unpaged(&s.get_audit, (bucket, from as i64, wanted))
                        .await
                        .map_err(storage)?
                        .into_rows_result()
                        .map_err(storage)?
                        .rows::<(i64, Vec<u8>)>()
                        .map_err(storage)?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(storage)?;
                    rows.extend(found);
                    bucket += 1;
                }
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|(sequence, entry)| Ok((sequence as u64, decode(&entry, "audit entry")?)))
            .collect()
    }
}
