//! The ScyllaDB stores: the journal ([`ScyllaJournal`]) and the registry ([`ScyllaRegistry`])
//! on one keyspace, through the `scylla` driver. Tested on Apache Cassandra 5.0, which speaks
//! the same CQL protocol (v4).
//!
//! - **One keyspace per ledger.** [`ScyllaCluster::connect`] creates it and its tables and
//!   applies every migration it has not applied yet ([`SCHEMA_VERSION`]), so the binary needs
//!   no separate schema step. The keyspace name also namespaces the ledger's keys in Redis.
//! - **Prepared statements only**, each with the configured consistency (`LOCAL_QUORUM` by
//!   default; [`ScyllaConfig::consistency`]) and a client-side timeout
//!   ([`ScyllaConfig::request_timeout`]). Every write is idempotent (it writes the same bytes
//!   under the same key when retried) and marked so, so the driver may retry it.
//! - **Partitions are bounded**: journal entries live in partitions of
//!   [`SCYLLA_JOURNAL_PARTITION_ENTRIES`] entries of one chain, entry bodies are cut into parts
//!   of at most [`SCYLLA_ENTRY_PART_BYTES`], registry records are spread over
//!   [`SCYLLA_REGISTRY_BUCKETS`] partitions per kind, and audit entries over partitions of
//!   [`SCYLLA_AUDIT_PARTITION_ENTRIES`].
//! - **No lightweight transaction on the purchase path**: the journal appends with plain
//!   inserts (its sequencer is the only writer of its chain). The registry's writes (admin API,
//!   wrong-PIN counts) take a lease with one LWT; purchases and their reads never do.
//!
//! The driver runs on a runtime of its own ([`SCYLLA_DRIVER_THREADS`] threads), because the
//! journal's store is called from the journal's plain threads and, at open, from inside the
//! caller's runtime; both block on a channel while the driver works, never on a runtime.

mod alerts;
mod import;
mod journal;
mod registry;
mod snapshots;

pub use alerts::SCYLLA_ALERT_PERIOD_SECONDS;
pub use import::{ImportReport, import_embedded};

pub use journal::{
    SCYLLA_ENTRY_PART_BYTES, SCYLLA_JOURNAL_BATCH_BYTES_MAX, SCYLLA_JOURNAL_BATCH_ROWS_MAX,
    SCYLLA_JOURNAL_PARTITION_ENTRIES, ScyllaJournal, verify_scylla,
};
pub use registry::{
    SCYLLA_AUDIT_PARTITION_ENTRIES, SCYLLA_REGISTRY_BUCKETS, SCYLLA_REGISTRY_INTENT_BYTES_MAX,
    SCYLLA_REGISTRY_LEASE_TTL_SECONDS, SCYLLA_REGISTRY_LEASE_WAIT_MAX, ScyllaRegistry,
};
pub use scylla::statement::Consistency;
pub use snapshots::{SCYLLA_SNAPSHOT_CHUNK_BYTES, SCYLLA_SNAPSHOTS_KEPT};

use crate::balances::{BalanceStore, RedisBalances, RedisConfig};
use crate::ledger::{LedgerError, LedgerStores};
use crate::verify::{VerifyError, VerifyReport};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Threads of the driver's own runtime: it only moves bytes, and the machine is small.
pub const SCYLLA_DRIVER_THREADS: usize = 2;
/// Default client-side timeout of one request. A purchase waits for its journal write, so
/// this bounds how long a terminal waits before `91` when the cluster is unreachable.
pub const SCYLLA_REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// How long connecting (and creating the schema: a dozen DDL statements, each waiting for
/// schema agreement) may take at open.
pub const SCYLLA_CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// Writes one journal batch or registry change keeps in flight at once.
pub const SCYLLA_WRITES_IN_FLIGHT_MAX: usize = 128;
/// Longest keyspace name Cassandra and ScyllaDB accept.
pub const SCYLLA_KEYSPACE_BYTES_MAX: usize = 48;
/// The schema version this code creates and expects (see `MIGRATIONS`).
pub const SCHEMA_VERSION: i32 = 3;

/// How to reach the cluster and where the ledger lives in it.
#[derive(Clone, Debug)]
pub struct ScyllaConfig {
    /// Contact points, `host:port` each.
    pub nodes: Vec<String>,
    /// The ledger's keyspace: letters, digits and `_`, starting with a letter, at most
    /// [`SCYLLA_KEYSPACE_BYTES_MAX`].
    pub keyspace: String,
    /// The replication map used when the keyspace is created, as CQL (e.g.
    /// `{'class': 'NetworkTopologyStrategy', 'dc1': 3}`).
    pub replication: String,
    /// Consistency of every read and write (`LOCAL_QUORUM` by default).
    pub consistency: Consistency,
    /// Client-side timeout of each request.
    pub request_timeout: Duration,
    /// This node's journal chain: each switch node appends to its own chain.
    pub chain: String,
}

impl ScyllaConfig {
    /// A config with the defaults: single-datacenter replication factor 1 (tests), chain `1`.
    pub fn new(nodes: Vec<String>, keyspace: impl Into<String>) -> ScyllaConfig {
        ScyllaConfig {
            nodes,
            keyspace: keyspace.into(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
            consistency: Consistency::LocalQuorum,
            request_timeout: SCYLLA_REQUEST_TIMEOUT_DEFAULT,
            chain: "1".into(),
        }
    }
}

impl ScyllaConfig {
    /// Reads a consistency level by its CQL name, in any case (`local_quorum`, `QUORUM`, ...).
    pub fn parse_consistency(name: &str) -> Result<Consistency, ScyllaError> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "any" => Consistency::Any,
            "one" => Consistency::One,
            "two" => Consistency::Two,
            "three" => Consistency::Three,
            "quorum" => Consistency::Quorum,
            "all" => Consistency::All,
            "local_quorum" => Consistency::LocalQuorum,
            "each_quorum" => Consistency::EachQuorum,
            "local_one" => Consistency::LocalOne,
            _ => {
                return Err(ScyllaError::Config(format!("unknown consistency {name:?}")));
            }
        })
    }
}

/// The file in a data directory that says where the ledger's Scylla journal is, so that
/// [`crate::verify`] (and `ssn-switch verify --data-dir`) can check it like a journal file.
pub const SCYLLA_POINTER_FILE: &str = "scylla-ledger";

impl ScyllaConfig {
    /// Records where this ledger lives in `data_dir` ([`SCYLLA_POINTER_FILE`]): one
    /// `name=value` line each for `nodes`, `keyspace` and `chain`.
    pub fn save_pointer(&self, data_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(data_dir)?;
        let text = format!(
            "nodes={}\nkeyspace={}\nchain={}\n",
            self.nodes.join(","),
            self.keyspace,
            self.chain
        );
        let path = data_dir.join(SCYLLA_POINTER_FILE);
        std::fs::write(&path, text)?;
        std::fs::File::open(&path)?.sync_all()
    }

    /// Reads what [`ScyllaConfig::save_pointer`] wrote; `Ok(None)` when there is no pointer.
    pub fn load_pointer(data_dir: &Path) -> std::io::Result<Option<ScyllaConfig>> {
        let text = match std::fs::read_to_string(data_dir.join(SCYLLA_POINTER_FILE)) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let value = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{SCYLLA_POINTER_FILE} has no {name}"),
                    )
                })
        };
        let mut config = ScyllaConfig::new(
            value("nodes")?.split(',').map(str::to_string).collect(),
            value("keyspace")?,
        );
        config.chain = value("chain")?;
        Ok(Some(config))
    }
}

/// Verifies the ledger whose journal is in `data_dir`: the journal file, or the Scylla chain
/// that `data_dir`'s [`SCYLLA_POINTER_FILE`] names. Blocks; call it from any thread.
pub fn verify(data_dir: &Path) -> Result<VerifyReport, VerifyError> {
    let Some(config) = ScyllaConfig::load_pointer(data_dir)? else {
        return crate::verify::verify(data_dir);
    };
    let io = |e: ScyllaError| VerifyError::Io(std::io::Error::other(e.to_string()));
    let cluster = ScyllaCluster::connect_blocking(config).map_err(io)?;
    let opener = Arc::clone(&cluster);
    let mut journal = cluster
        .block_on(async move { ScyllaJournal::open(opener).await })
        .map_err(io)?
        .map_err(io)?;
    verify_scylla(&mut journal)
}

/// Takes a shared snapshot of the keyspace that `data_dir`'s [`SCYLLA_POINTER_FILE`] names,
/// as a node's snapshot thread does (an operator's `ssn-switch snapshot`, e.g. before adding
/// a node): returns the entries it covers, `None` when the newest already covers every chain.
/// Blocks; call it from any thread.
pub fn take_shared_snapshot(data_dir: &Path) -> Result<Option<u64>, ScyllaError> {
    let Some(config) = ScyllaConfig::load_pointer(data_dir).map_err(cluster)? else {
        return Err(ScyllaError::Config(format!(
            "{} has no {SCYLLA_POINTER_FILE}: not a Scylla node's data directory",
            data_dir.display()
        )));
    };
    let connected = ScyllaCluster::connect_blocking(config)?;
    let opener = Arc::clone(&connected);
    let journal = connected.block_on(async move { ScyllaJournal::open(opener).await })??;
    journal.take_snapshot(&|| false).map_err(cluster)
}

/// Errors of the Scylla stores.
#[derive(Debug, thiserror::Error)]
pub enum ScyllaError {
    /// The configuration cannot work (bad keyspace name, no nodes).
    #[error("invalid Scylla configuration: {0}")]
    Config(String),
    /// The cluster could not be reached or refused a request.
    #[error("Scylla: {0}")]
    Cluster(String),
    /// A stored value does not decode.
    #[error("Scylla holds an undecodable {0}")]
    Corrupt(&'static str),
    /// The stored schema is newer than this program knows.
    #[error("the keyspace's schema is version {found}, this program knows up to {SCHEMA_VERSION}")]
    SchemaTooNew {
        /// The version found.
        found: i32,
    },
}

impl From<ScyllaError> for LedgerError {
    fn from(error: ScyllaError) -> LedgerError {
        match error {
            ScyllaError::Cluster(_) => LedgerError::Unavailable(error.to_string()),
            other => LedgerError::Internal(other.to_string()),
        }
    }
}

fn cluster(error: impl fmt::Display) -> ScyllaError {
    ScyllaError::Cluster(error.to_string())
}

/// A connected session on its own runtime, shared by the stores of one ledger.
pub struct ScyllaCluster {
    /// The driver's runtime; shut down in the background on drop, so dropping is safe
    /// anywhere (inside another runtime too).
    runtime: Option<tokio::runtime::Runtime>,
    /// The session, connected and using the ledger's keyspace.
    session: Arc<Session>,
    /// What it was opened with.
    config: ScyllaConfig,
}

impl fmt::Debug for ScyllaCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScyllaCluster")
            .field("keyspace", &self.config.keyspace)
            .field("chain", &self.config.chain)
            .finish_non_exhaustive()
    }
}

impl Drop for ScyllaCluster {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Checks a keyspace or chain name: it is spliced into CQL text, so only plain identifiers.
fn check_identifier(name: &str, what: &str) -> Result<(), ScyllaError> {
    let plain = name.len() <= SCYLLA_KEYSPACE_BYTES_MAX
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        Ok(())
    } else {
        Err(ScyllaError::Config(format!(
            "{what} must be letters, digits and _, start with a letter, at most {SCYLLA_KEYSPACE_BYTES_MAX} bytes"
        )))
    }
}

/// The schema, one migration per version, each a list of idempotent statements.
const MIGRATIONS: &[(i32, &str, &[&str])] = &[
    (
        1,
        "journal, chains, torn tails, registry records, indexes, sequences, audit, lease, intent",
        &[
            "CREATE TABLE IF NOT EXISTS journal (chain text, bucket bigint, sequence bigint, \
         part int, parts int, previous_hash blob, hash blob, body blob, \
         PRIMARY KEY ((chain, bucket), sequence, part))",
            "CREATE TABLE IF NOT EXISTS journal_chains (chain text PRIMARY KEY, created_at timestamp)",
            "CREATE TABLE IF NOT EXISTS journal_torn (chain text, sequence bigint, part int, \
         parts int, previous_hash blob, hash blob, body blob, \
         PRIMARY KEY ((chain), sequence, part))",
            "CREATE TABLE IF NOT EXISTS registry_records (kind text, bucket int, key text, \
         value blob, PRIMARY KEY ((kind, bucket), key))",
            "CREATE TABLE IF NOT EXISTS registry_index (index_name text, index_key text, \
         owner text, PRIMARY KEY ((index_name, index_key)))",
            "CREATE TABLE IF NOT EXISTS registry_sequences (name text PRIMARY KEY, value bigint)",
            "CREATE TABLE IF NOT EXISTS registry_audit (bucket bigint, sequence bigint, entry blob, \
         PRIMARY KEY ((bucket), sequence))",
            "CREATE TABLE IF NOT EXISTS registry_lease (name text PRIMARY KEY, holder text)",
            "CREATE TABLE IF NOT EXISTS registry_intent (name text PRIMARY KEY, writes blob)",
        ],
    ),
    (
        2,
        "shared snapshots: their catalog and chunks",
        &[
            "CREATE TABLE IF NOT EXISTS snapshots (ledger text, covered bigint, id text, \
         chains blob, chunks int, bytes bigint, digest blob, taken_at timestamp, \
         PRIMARY KEY ((ledger), covered, id))",
            "CREATE TABLE IF NOT EXISTS snapshot_chunks (id text, chunk int, bytes blob, \
         PRIMARY KEY ((id, chunk)))",
        ],
    ),
    (
        3,
        "alerts indexed by time; the misuse monitor's checkpoints and their chunks",
        &[
            "CREATE TABLE IF NOT EXISTS registry_alerts_by_time (period bigint, fired_at bigint, \
         id text, row blob, PRIMARY KEY ((period), fired_at, id)) \
         WITH CLUSTERING ORDER BY (fired_at DESC, id DESC)",
            "CREATE TABLE IF NOT EXISTS monitor_checkpoints (node text PRIMARY KEY, \
         generation text, chunks int, digest blob)",
            "CREATE TABLE IF NOT EXISTS monitor_checkpoint_chunks (generation text, chunk int, \
         bytes blob, PRIMARY KEY ((generation, chunk)))",
        ],
    ),
];

impl ScyllaCluster {
    /// Connects, creates the keyspace if needed and brings its schema to [`SCHEMA_VERSION`].
    pub async fn connect(config: ScyllaConfig) -> Result<Arc<ScyllaCluster>, ScyllaError> {
        check_identifier(&config.keyspace, "the keyspace")?;
        let chain_is_plain = !config.chain.is_empty()
            && config.chain.len() <= SCYLLA_KEYSPACE_BYTES_MAX
            && config
                .chain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !chain_is_plain {
            return Err(ScyllaError::Config(format!(
                "the chain must be 1 to {SCYLLA_KEYSPACE_BYTES_MAX} letters, digits, _ or -"
            )));
        }
        if config.nodes.is_empty() {
            return Err(ScyllaError::Config("no Scylla node given".into()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(SCYLLA_DRIVER_THREADS)
            .thread_name("ssn-scylla")
            .enable_all()
            .build()
            .map_err(|e| ScyllaError::Config(format!("driver runtime: {e}")))?;
        let setup = {
            let config = config.clone();
            runtime.spawn(async move {
                tokio::time::timeout(SCYLLA_CONNECT_TIMEOUT, connect_and_migrate(config))
                    .await
                    .map_err(|_| {
                        ScyllaError::Cluster(format!(
                            "not connected within {}s",
                            SCYLLA_CONNECT_TIMEOUT.as_secs()
                        ))
                    })?
            })
        };
        let outcome = setup
            .await
            .map_err(|e| ScyllaError::Cluster(format!("driver task: {e}")));
        let session = match outcome {
            Ok(Ok(session)) => session,
            Ok(Err(e)) | Err(e) => {
                runtime.shutdown_background();
                return Err(e);
            }
        };
        Ok(Arc::new(ScyllaCluster {
            runtime: Some(runtime),
            session: Arc::new(session),
            config,
        }))
    }

    /// [`ScyllaCluster::connect`] for callers outside any runtime (or inside one, blocking it).
    pub fn connect_blocking(config: ScyllaConfig) -> Result<Arc<ScyllaCluster>, ScyllaError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("ssn-scylla-connect".into())
            .spawn(move || {
                let outcome = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| ScyllaError::Config(format!("runtime: {e}")))
                    .and_then(|runtime| runtime.block_on(ScyllaCluster::connect(config)));
                let _ = sender.send(outcome);
            })
            .map_err(|e| ScyllaError::Config(format!("thread: {e}")))?;
        receiver
            .recv()
            .map_err(|_| ScyllaError::Cluster("connecting stopped".into()))?
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &ScyllaConfig {
        &self.config
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .handle()
    }

    /// Runs `work` on the driver's runtime and waits for it from any thread, async or not.
    pub(crate) fn block_on<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, ScyllaError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.handle().spawn(async move {
            let _ = sender.send(work.await);
        });
        receiver
            .recv()
            .map_err(|_| ScyllaError::Cluster("the driver stopped".into()))
    }

    /// Runs `work` on the driver's runtime and awaits it from another runtime.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, ScyllaError> {
        self.handle()
            .spawn(work)
            .await
            .map_err(|e| ScyllaError::Cluster(format!("driver task: {e}")))
    }

    /// The session (for tests and tools that read tables directly).
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Prepares `cql` with the configured consistency and timeout, marked idempotent.
    pub(crate) async fn prepare(&self, cql: &str) -> Result<PreparedStatement, ScyllaError> {
        let session = Arc::clone(&self.session);
        let qualified = qualify(cql, &self.config.keyspace);
        let consistency = self.config.consistency;
        let timeout = self.config.request_timeout;
        self.run(async move {
            let mut prepared = session.prepare(qualified).await.map_err(cluster)?;
            prepared.set_consistency(consistency);
            prepared.set_request_timeout(Some(timeout));
            prepared.set_is_idempotent(true);
            Ok(prepared)
        })
        .await?
    }

    /// The journal store of this node's chain.
    pub async fn journal(self: &Arc<Self>) -> Result<ScyllaJournal, ScyllaError> {
        ScyllaJournal::open(Arc::clone(self)).await
    }

    /// The registry.
    pub async fn registry(self: &Arc<Self>) -> Result<ScyllaRegistry, ScyllaError> {
        ScyllaRegistry::open(Arc::clone(self)).await
    }
}

/// Names every table with its keyspace (`FROM t` → `FROM ks.t`): the session never
/// `USE`s a keyspace, which servers warn about for prepared statements.
fn qualify(cql: &str, keyspace: &str) -> String {
    let mut out = cql.to_string();
    for word in ["FROM ", "INTO ", "UPDATE ", "TABLE IF NOT EXISTS "] {
        out = out.replace(word, &format!("{word}{keyspace}."));
    }
    out
}

async fn connect_and_migrate(config: ScyllaConfig) -> Result<Session, ScyllaError> {
    let session = SessionBuilder::new()
        .known_nodes(&config.nodes)
        .connection_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()
        .await
        .map_err(cluster)?;
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {}",
                config.keyspace, config.replication
            ),
            (),
        )
        .await
        .map_err(cluster)?;
    migrate(&session, &config.keyspace).await?;
    Ok(session)
}

/// Applies every migration the keyspace has not recorded, in order.
async fn migrate(session: &Session, keyspace: &str) -> Result<(), ScyllaError> {
    session
        .query_unpaged(
            qualify(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, \
                 description text, applied_at timestamp)",
                keyspace,
            ),
            (),
        )
        .await
        .map_err(cluster)?;
    let applied: Vec<i32> = session
        .query_unpaged(
            qualify("SELECT version FROM schema_migrations", keyspace),
            (),
        )
        .await
        .map_err(cluster)?
        .into_rows_result()
        .map_err(cluster)?
        .rows::<(i32,)>()
        .map_err(cluster)?
        .map(|row| row.map(|(version,)| version))
        .collect::<Result<_, _>>()
        .map_err(cluster)?;
    if let Some(found) = applied.iter().copied().find(|v| *v > SCHEMA_VERSION) {
        return Err(ScyllaError::SchemaTooNew { found });
    }
    for (version, description, statements) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        for statement in *statements {
            session
                .query_unpaged(qualify(statement, keyspace), ())
                .await
                .map_err(cluster)?;
        }
        session
            .query_unpaged(
                qualify(
                    "INSERT INTO schema_migrations (version, description, applied_at) \
                     VALUES (?, ?, toTimestamp(now()))",
                    keyspace,
                ),
                (*version, *description),
            )
            .await
            .map_err(cluster)?;
    }
    session.await_schema_agreement().await.map_err(cluster)?;
    Ok(())
}

/// The stores of a ledger on Scylla plus Redis: the journal and registry in the keyspace, the
/// balances in Redis under `redis.key_prefix` + keyspace. Open the ledger with
/// [`crate::Ledger::open_with`].
pub async fn scylla_stores(
    config: ScyllaConfig,
    redis: &RedisConfig,
) -> Result<LedgerStores, LedgerError> {
    let cluster = ScyllaCluster::connect(config).await?;
    let journal = cluster.journal().await?;
    let registry = cluster.registry().await?;
    let mut redis = redis.clone();
    redis.key_prefix = format!("{}{}:", redis.key_prefix, cluster.config().keyspace);
    // Every node on the keyspace shares this prefix and its generation.
    redis.shared_generation = true;
    let balances: Arc<dyn BalanceStore> = Arc::new(RedisBalances::connect(&redis).await?);
    Ok(LedgerStores {
        journal: Box::new(journal),
        registry: Arc::new(registry),
        balances,
        history: None,
    })
}
