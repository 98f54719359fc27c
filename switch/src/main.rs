//! `ssn-switch`: the SSN payment switch.
//!
//! `ssn-switch serve` runs the ISO 8583 listeners on the embedded store (no other server);
//! `ssn-switch verify` checks the journal's hash chain and balances. Configuration comes from
//! flags, each also readable from an `SSN_*` environment variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod settle;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ssn_codec::Profile;
use ssn_hsm::{KeyUsage, MasterKey, SoftHsm, WrappedKey};
use ssn_ledger::{
    BalanceBackend, Ledger, LedgerConfig, RedisConfig, ScyllaConfig, import_embedded, scylla_stores,
};
use ssn_switch::host::{AmountExponent, Host, HostConfig};
use ssn_switch::keys;
use ssn_switch::net::tls::AdminListener;
use ssn_switch::net::{self, Handler, Limits};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A thread-caching allocator: authorizations allocate on the connection tasks and the
/// journal threads free, and glibc's malloc serializes that on arena locks (the ledger's
/// bench measured half the durable throughput with it; BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long shutdown waits for requests in flight before it gives up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often latency samples are folded into the metrics' histogram buckets.
/// `install_recorder` leaves this to its caller: without it every sample stays in memory until
/// `/metrics` is scraped, so a switch nobody scrapes grew by about 17 bytes a request
/// (measured: BENCHMARKS.md).
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Worker threads of the admin API's runtime (its blocking pool, for reports and history
/// reads, comes beside them).
const ADMIN_WORKER_THREADS: usize = 1;
/// Threads of the admin API's blocking pool at most.
const ADMIN_BLOCKING_THREADS_MAX: usize = 4;

#[derive(Parser)]
#[command(
    name = "ssn-switch",
    version,
    about = "The SSN card payment switch (ISO 8583)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start; the size of `Serve`'s arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve E-Warong terminals.
    Serve(ServeArgs),
    /// Settlement with the Bank Penyalur through the running switch's admin API (for the
    /// bank's batch jobs; token in SSN_ADMIN_TOKEN).
    Settle(settle::SettleArgs),
    /// Recompute the journal's hash chain and every balance; exit 1 at the first break.
    Verify {
        /// The data directory.
        #[arg(long, env = "SSN_DATA_DIR", default_value = "ssn-data")]
        data_dir: PathBuf,
    },
    /// Take a snapshot of a Scylla keyspace's ledger now (the node whose data directory is
    /// given): nodes that start later load it and replay only what follows.
    Snapshot {
        /// The data directory of a node of the keyspace.
        #[arg(long, env = "SSN_DATA_DIR", default_value = "ssn-data")]
        data_dir: PathBuf,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Journal, registry and keys live here; created on first start.
    #[arg(long, env = "SSN_DATA_DIR", default_value = "ssn-data")]
    data_dir: PathBuf,
    /// The `bcd` listener (EDC terminals: 2-byte length + TPDU, ISO87BPackager).
    #[arg(long, env = "SSN_BCD_LISTEN", default_value = "127.0.0.1:8583")]
    bcd_listen: SocketAddr,
    /// The `ascii` listener (host links, test tools: 4-digit length, ISO87APackager).
    #[arg(long, env = "SSN_ASCII_LISTEN", default_value = "127.0.0.1:8584")]
    ascii_listen: SocketAddr,
    /// HTTP: the admin API (`/api/v1/...`), `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "SSN_ADMIN_LISTEN", default_value = "127.0.0.1:8080")]
    admin_listen: SocketAddr,
    /// Issuer BIN: the first six digits of every card the admin API issues.
    #[arg(long, env = "SSN_CARD_BIN", default_value = "604872")]
    card_bin: String,
    /// Months a new card is valid.
    #[arg(long, env = "SSN_CARD_VALIDITY_MONTHS", default_value_t = 60)]
    card_validity_months: u32,
    /// When a business day ends, WITA `HH:MM` (`00:00`: at midnight): an approved purchase
    /// belongs to the business date on which it was authorized, and a date is settled only
    /// after its cut-over. Journaled when it changes; purchases keep the dates they had.
    #[arg(long, env = "SSN_SETTLEMENT_CUTOVER", default_value = "00:00")]
    settlement_cutover: String,
    /// The first admin token's secret, used only while the store has no token. Environment
    /// only (a flag would show it in the process list); without it the first start makes one
    /// and prints it once on stderr.
    #[arg(skip = std::env::var("SSN_BOOTSTRAP_TOKEN").ok())]
    bootstrap_token: Option<String>,
    /// Threads that serve terminal connections, each on its own single-threaded runtime
    /// (0: one per core the machine offers). A connection stays on the thread that accepted
    /// it, so a purchase is read, authorized and answered without changing threads.
    #[arg(long, env = "SSN_CONNECTION_THREADS", default_value_t = 0)]
    connection_threads: usize,
    /// The least time, in microseconds, between the starts of two syncs of the journal: what
    /// arrives meanwhile shares the next one. Each sync costs the machine about the same
    /// whatever it carries, so a longer interval spends less CPU per purchase and adds at most
    /// this much to an answer's time.
    #[arg(long, env = "SSN_JOURNAL_SYNC_INTERVAL_US", default_value_t = ssn_ledger::JOURNAL_SYNC_INTERVAL_MIN_DEFAULT.as_micros() as u64)]
    journal_sync_interval_us: u64,
    /// Keep balances in Redis (`redis://host:port/`) instead of this process's memory.
    #[arg(long, env = "SSN_REDIS_URL")]
    redis_url: Option<String>,
    /// Prefix of every Redis key, so several ledgers can share one Redis server.
    #[arg(long, env = "SSN_REDIS_KEY_PREFIX", default_value = "ssn")]
    redis_key_prefix: String,
    /// Journal and registry in ScyllaDB (or Cassandra): contact points `host:port`,
    /// comma-separated. Needs `--redis-url`; the node then keeps only its keys locally.
    #[arg(long, env = "SSN_SCYLLA_NODES")]
    scylla_nodes: Option<String>,
    /// The ledger's keyspace; created with its tables (and migrated) at start.
    #[arg(long, env = "SSN_SCYLLA_KEYSPACE", default_value = "ssn")]
    scylla_keyspace: String,
    /// Consistency of every Scylla read and write (`local_quorum`, `quorum`, `each_quorum`,
    /// `all`, `local_one`, `one`).
    #[arg(long, env = "SSN_SCYLLA_CONSISTENCY", default_value = "local_quorum")]
    scylla_consistency: String,
    /// Replication of the keyspace when it is created, as a CQL map.
    #[arg(
        long,
        env = "SSN_SCYLLA_REPLICATION",
        default_value = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )]
    scylla_replication: String,
    /// Copy the embedded ledger in this directory (journal.log, registry.redb) into the
    /// keyspace at start, if this node's chain is still empty: moving a data directory onto
    /// Scylla, or loading a city seeded by `ssn-loadtest seed`.
    #[arg(long, env = "SSN_SCYLLA_IMPORT_FROM")]
    scylla_import_from: Option<PathBuf>,
    /// File holding the master key (64 hex digits). Default: `DATA_DIR/master.key`,
    /// generated on first start.
    #[arg(long, env = "SSN_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// The master key itself (64 hex digits), for deployments that inject secrets through
    /// the environment; takes precedence over the file. Environment only: a flag would show
    /// it in the process list.
    #[arg(skip = std::env::var("SSN_MASTER_KEY").ok())]
    master_key_hex: Option<String>,
    /// DE4/DE54 currency exponent on the `bcd` listener (IDR: 2; some hosts send 0).
    #[arg(long, env = "SSN_BCD_AMOUNT_EXPONENT", default_value_t = 2,
        value_parser = clap::value_parser!(u8).range(0..=2))]
    bcd_amount_exponent: u8,
    /// DE4/DE54 currency exponent on the `ascii` listener.
    #[arg(long, env = "SSN_ASCII_AMOUNT_EXPONENT", default_value_t = 2,
        value_parser = clap::value_parser!(u8).range(0..=2))]
    ascii_amount_exponent: u8,
    /// One character 0-9 or A-Z that starts this node's RRNs; distinct per node.
    #[arg(long, env = "SSN_NODE_ID", default_value = "1")]
    node_id: char,
    /// Provision a demo city into an empty data directory (manifest in DATA_DIR/demo.json).
    #[arg(long, env = "SSN_DEMO")]
    demo: bool,
    /// Regular cards in the demo city.
    #[arg(long, env = "SSN_DEMO_CARDS", default_value_t = 20)]
    demo_cards: u32,
    /// Log filter (`info`, `ssn_switch=debug`, ...). Logs are JSON lines on stderr.
    #[arg(long, env = "SSN_LOG", default_value = "info")]
    log: String,
    /// The node's TLS certificate (PEM: the certificate, then any intermediates). With
    /// `--tls-key`, the listeners of `--tls-listeners` speak TLS 1.2/1.3.
    #[arg(long, env = "SSN_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, env = "SSN_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The listeners that speak TLS when a certificate is given, comma-separated.
    #[arg(
        long,
        env = "SSN_TLS_LISTENERS",
        value_enum,
        value_delimiter = ',',
        default_value = "bcd,ascii,admin"
    )]
    tls_listeners: Vec<ListenerName>,
    /// Mutual TLS on the `bcd` listener: only clients presenting one of the certificates in
    /// this PEM file get in.
    #[arg(long, env = "SSN_BCD_CLIENT_CERTS")]
    bcd_client_certs: Option<PathBuf>,
    /// Mutual TLS on the `ascii` listener (the bank's host link), as `--bcd-client-certs`.
    #[arg(long, env = "SSN_ASCII_CLIENT_CERTS")]
    ascii_client_certs: Option<PathBuf>,
    /// Mutual TLS on the admin listener, as `--bcd-client-certs`.
    #[arg(long, env = "SSN_ADMIN_CLIENT_CERTS")]
    admin_client_certs: Option<PathBuf>,
    /// Serve in the clear on a listener whose address is not loopback (warned at start).
    /// Without it such a listener must speak TLS.
    #[arg(long, env = "SSN_ALLOW_PLAINTEXT")]
    allow_plaintext: bool,
    /// Run without the misuse monitor (issue 22), e.g. to measure what it costs.
    #[arg(long, env = "SSN_NO_MONITOR")]
    no_monitor: bool,
    /// The misuse monitor's thresholds, a JSON file in the shape of `MonitorConfig`; a rule
    /// or field left out keeps its default (README, "Misuse monitoring").
    #[arg(long, env = "SSN_MONITOR_THRESHOLDS")]
    monitor_thresholds: Option<PathBuf>,
}

/// A listener, as `--tls-listeners` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ListenerName {
    Bcd,
    Ascii,
    Admin,
}

impl ListenerName {
    fn as_str(self) -> &'static str {
        match self {
            ListenerName::Bcd => "bcd",
            ListenerName::Ascii => "ascii",
            ListenerName::Admin => "admin",
        }
    }
}

impl ServeArgs {
    /// The TLS acceptor of one listener, `None` for plaintext; refuses plaintext on an address
    /// other machines can reach unless `--allow-plaintext` says so.
    fn tls(
        &self,
        name: ListenerName,
        address: SocketAddr,
    ) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
        let clients = match name {
            ListenerName::Bcd => &self.bcd_client_certs,
            ListenerName::Ascii => &self.ascii_client_certs,
            ListenerName::Admin => &self.admin_client_certs,
        };
        let name_text = name.as_str();
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) if self.tls_listeners.contains(&name) => {
                let acceptor = net::tls::acceptor(cert, key, clients.as_deref())
                    .with_context(|| format!("TLS on the {name_text} listener"))?;
                Ok(Some(acceptor))
            }
            _ => {
                if clients.is_some() {
                    bail!(
                        "--{name_text}-client-certs needs TLS on the {name_text} listener \
                         (--tls-cert, --tls-key, and {name_text} in --tls-listeners)"
                    );
                }
                if !address.ip().is_loopback() {
                    if !self.allow_plaintext {
                        bail!(
                            "the {name_text} listener {address} is reachable from other machines \
                             and has no TLS: give --tls-cert and --tls-key, or --allow-plaintext \
                             to serve it in the clear"
                        );
                    }
                    tracing::warn!(listener = name_text, %address,
                        "serving in the clear on an address other machines can reach (--allow-plaintext)");
                }
                Ok(None)
            }
        }
    }
}

/// A listener's handler: the shared host with the listener's amount exponent.
struct Listener {
    host: Arc<Host>,
    exponent: AmountExponent,
}

impl Handler for Listener {
    async fn handle(&self, request: ssn_codec::MessageView) -> Option<ssn_codec::Message> {
        self.host.handle(request, self.exponent).await
    }
}

fn main() -> anyhow::Result<ExitCode> {
    ssn_ledger::priority::without_huge_pages();
    match Cli::parse().command {
        Command::Verify { data_dir } => verify(&data_dir),
        Command::Snapshot { data_dir } => {
            match ssn_ledger::take_shared_snapshot(&data_dir).context("taking a snapshot")? {
                Some(entries) => println!("ok: a snapshot of {entries} entries"),
                None => println!("ok: the newest snapshot covers every chain"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Settle(args) => settle::settle(args),
        Command::Serve(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let admin = admin_runtime()?;
            runtime.block_on(serve(args, admin.handle().clone()))?;
            admin.shutdown_timeout(SHUTDOWN_GRACE);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The admin API's own runtime: its tasks never occupy the workers that answer terminals,
/// and its threads run at nice [`ssn_ledger::priority::BACKGROUND_NICE`], so what an admin
/// request computes waits for what a purchase computes, never the other way round.
fn admin_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(ADMIN_WORKER_THREADS)
        .max_blocking_threads(ADMIN_BLOCKING_THREADS_MAX)
        .thread_name("ssn-admin")
        .on_thread_start(|| {
            ssn_ledger::priority::lower_this_thread(ssn_ledger::priority::BACKGROUND_NICE);
        })
        .enable_all()
        .build()
}

fn verify(data_dir: &Path) -> anyhow::Result<ExitCode> {
    match ssn_ledger::verify(data_dir) {
        Ok(report) => {
            println!(
                "ok: {} entries, {} accounts, funded {}",
                report.entries, report.accounts, report.funded
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ssn_ledger::VerifyError::Io(e)) => Err(e).context("reading the journal"),
        Err(broken) => {
            println!("BROKEN: {broken}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The master key from `SSN_MASTER_KEY` or its file, or (when `may_generate`: the registry has
/// no keys yet) a new one written to `DATA_DIR/master.key` (mode 0600).
fn master_key(args: &ServeArgs, may_generate: bool) -> anyhow::Result<MasterKey> {
    if let Some(hex) = &args.master_key_hex {
        return MasterKey::from_hex(hex.trim()).map_err(|e| anyhow::anyhow!("SSN_MASTER_KEY: {e}"));
    }
    let path = args
        .master_key_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("master.key"));
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return MasterKey::from_hex(text.trim())
            .map_err(|e| anyhow::anyhow!("master key in {}: {e}", path.display()));
    }
    if args.master_key_file.is_some() {
        bail!("master key file {} does not exist", path.display());
    }
    if !may_generate {
        bail!(
            "this node has no master key ({} does not exist) and the registry already holds keys \
             wrapped under one: give it the master key of the other nodes (SSN_MASTER_KEY or \
             --master-key-file, from the first node's DATA_DIR/master.key); a node never \
             generates a master key for a registry that has one",
            path.display()
        );
    }
    let key =
        MasterKey::generate().map_err(|e| anyhow::anyhow!("generating the master key: {e}"))?;
    write_private(&path, key.reveal_hex().as_bytes())?;
    tracing::warn!(path = %path.display(), "generated a new master key; back it up: keys at rest are unreadable without it");
    Ok(key)
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

/// The issuer's PVK, wrapped under the master key in `DATA_DIR/pvk.key`; generated on first
/// start (a bank that brings its own PVK places it there, wrapped, before the first start).
fn pvk(hsm: &SoftHsm, data_dir: &Path) -> anyhow::Result<WrappedKey> {
    let path = data_dir.join("pvk.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)?;
        return WrappedKey::from_hex(text.trim())
            .map_err(|e| anyhow::anyhow!("PVK in {}: {e}", path.display()));
    }
    let key = hsm
        .generate_key(KeyUsage::Pvk)
        .map_err(|e| anyhow::anyhow!("generating the PVK: {e}"))?;
    write_private(&path, key.to_hex().as_bytes())?;
    Ok(key)
}

/// The ledger on the embedded store, on Redis, or on Scylla + Redis (nothing but keys in the
/// data directory; the journal chain is named by the node id, so several nodes with distinct
/// ids serve one keyspace at once: see ARCHITECTURE.md, "Running on ScyllaDB").
async fn open_ledger(args: &ServeArgs) -> anyhow::Result<Ledger> {
    let redis = args
        .redis_url
        .as_ref()
        .map(|url| RedisConfig::new(url.clone(), args.redis_key_prefix.clone()));
    let Some(nodes) = &args.scylla_nodes else {
        let balances = redis.map_or(BalanceBackend::Embedded, BalanceBackend::Redis);
        return Ok(Ledger::open(LedgerConfig {
            data_dir: args.data_dir.clone(),
            balances,
        })
        .await?);
    };
    let Some(redis) = redis else {
        bail!("--scylla-nodes needs --redis-url: balances must be shared by every node");
    };
    let mut config = ScyllaConfig::new(
        nodes.split(',').map(|n| n.trim().to_string()).collect(),
        args.scylla_keyspace.clone(),
    );
    config.consistency = ScyllaConfig::parse_consistency(&args.scylla_consistency)
        .with_context(|| format!("--scylla-consistency {}", args.scylla_consistency))?;
    config.replication = args.scylla_replication.clone();
    config.chain = args.node_id.to_string();
    // `ssn-switch verify --data-dir` follows this to the node's chain.
    config.save_pointer(&args.data_dir)?;
    if let Some(from) = &args.scylla_import_from {
        let report = import_embedded(&config, from)
            .await
            .with_context(|| format!("importing {}", from.display()))?;
        tracing::info!(
            imported = report.imported,
            entries = report.entries,
            records = report.records,
            "imported the embedded ledger"
        );
    }
    let mut stores = scylla_stores(config, &redis).await?;
    // Every start replays the keyspace's chains: this node's history starts afresh with it.
    stores.history = Some(std::sync::Arc::new(
        ssn_ledger::history::History::open_fresh(&args.data_dir).context("history")?,
    ));
    Ok(Ledger::open_with(stores).await?)
}

async fn serve(args: ServeArgs, admin_runtime: tokio::runtime::Handle) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?)
        .init();
    let node_id = u8::try_from(args.node_id)
        .ok()
        .filter(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
    let Some(node_id) = node_id else {
        bail!("--node-id must be one character 0-9 or A-Z")
    };
    let monitor_config = monitor_config(args.monitor_thresholds.as_deref())?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    if args.card_bin.len() != 6 || !args.card_bin.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--card-bin is six digits");
    }
    let settlement_cutover_seconds = parse_cutover(&args.settlement_cutover)
        .context("--settlement-cutover is HH:MM, 00:00 to 23:59")?;
    // Metrics first, so the ledger's opening and provisioning are counted too. The admin
    // listener serves them at /metrics.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0,
        ])
        .context("histogram buckets")?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("ssn_journal_batch_records".into()),
            &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 8192.0],
        )
        .context("batch size buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                metrics.run_upkeep();
            }
        });
    }
    let opening = std::time::Instant::now();
    let ledger = Arc::new(open_ledger(&args).await.context("opening the ledger")?);
    ledger.set_journal_sync_interval_min(Duration::from_micros(args.journal_sync_interval_us));
    let opened = ledger.open_report();
    tracing::info!(
        entries = opened.entries,
        from_snapshot = opened.from_snapshot,
        millis = u64::try_from(opening.elapsed().as_millis()).unwrap_or(u64::MAX),
        "ledger opened"
    );
    // The cut-over is journaled when it changes, so purchases keep the business dates they
    // were authorized on whatever a later start says.
    ledger
        .keep_settlement_cutover(settlement_cutover_seconds, now())
        .await
        .context("journaling the settlement cut-over")?;
    // The keys, checked against what the registry (shared by every node on a keyspace)
    // recorded: a node with another master key refuses to start (see `ssn_switch::keys`).
    let has_keys = keys::registry_has_keys(&ledger).await?;
    let hsm = Arc::new(SoftHsm::new(master_key(&args, !has_keys)?));
    let pvk = keys::host_pvk(&ledger, &hsm, || pvk(&hsm, &args.data_dir)).await?;
    tracing::info!(master_key_check = %hsm.master_check_value(), "keys checked");
    let warming = std::time::Instant::now();
    let warmed = ledger
        .warm_registry_cache()
        .await
        .context("reading the registry into its cache")?;
    tracing::info!(
        records = warmed,
        millis = u64::try_from(warming.elapsed().as_millis()).unwrap_or(u64::MAX),
        "registry cache warmed"
    );

    if args.demo
        && ledger
            .registry()
            .programs()
            .await
            .map(|p| p.is_empty())
            .unwrap_or(false)
    {
        let size = ssn_switch::demo::DemoSize {
            regular_cards: args.demo_cards,
        };
        let manifest = ssn_switch::demo::provision(&ledger, &hsm, &pvk, size, now())
            .await
            .context("provisioning the demo city")?;
        let path = args.data_dir.join("demo.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)?;
        tracing::info!(path = %path.display(), cards = manifest.cards.len(), "provisioned the demo city");
    }

    let mut admin_state = ssn_admin_api::AdminState {
        metrics: Some(metrics),
        ..ssn_admin_api::AdminState::new(
            ledger.clone(),
            hsm.clone(),
            pvk.clone(),
            ssn_admin_api::AdminConfig {
                bin: args.card_bin.clone(),
                card_validity_months: args.card_validity_months,
                ..Default::default()
            },
        )
    };
    match ssn_admin_api::bootstrap(&ledger, args.bootstrap_token.as_deref()).await {
        Ok(ssn_admin_api::Bootstrap::Generated(secret)) => {
            // Printed once, on purpose: the only way to the first admin token when none
            // was given. Not through the JSON logs, which are shipped elsewhere.
            eprintln!("bootstrap admin token (shown once, store it now): {secret}");
        }
        Ok(ssn_admin_api::Bootstrap::FromEnvironment) => {
            tracing::info!("SSN_BOOTSTRAP_TOKEN became the admin token 'bootstrap'");
        }
        Ok(ssn_admin_api::Bootstrap::AlreadyHasTokens) => {}
        Err(e) => bail!("creating the bootstrap token: {}", e.message),
    }

    let host = Arc::new(Host::new(ledger.clone(), hsm, HostConfig { node_id, pvk }));
    let bcd_tls = args.tls(ListenerName::Bcd, args.bcd_listen)?;
    let ascii_tls = args.tls(ListenerName::Ascii, args.ascii_listen)?;
    let admin_tls = args.tls(ListenerName::Admin, args.admin_listen)?;
    // The console's cookies are `Secure` exactly when the admin listener speaks TLS.
    admin_state.config.console_secure_cookie = admin_tls.is_some();
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let bcd = TcpListener::bind(args.bcd_listen)
        .await
        .with_context(|| format!("binding {}", args.bcd_listen))?;
    let ascii = TcpListener::bind(args.ascii_listen)
        .await
        .with_context(|| format!("binding {}", args.ascii_listen))?;
    // Bound here, served on the admin runtime (whose reactor must own it).
    let admin = std::net::TcpListener::bind(args.admin_listen)
        .with_context(|| format!("binding {}", args.admin_listen))?;
    admin.set_nonblocking(true)?;
    // One machine-readable line on stdout, so scripts and tests learn the ports (`:0` picks).
    println!(
        "{}",
        serde_json::json!({"event": "listening", "bcd": bcd.local_addr()?.to_string(), "ascii": ascii.local_addr()?.to_string(), "admin": admin.local_addr()?.to_string(),
            "tls": {"bcd": bcd_tls.is_some(), "ascii": ascii_tls.is_some(), "admin": admin_tls.is_some()}})
    );
    let cores = Arc::new(net::Cores::start(match args.connection_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    })?);
    for (listener, tls, profile, exponent) in [
        (bcd, bcd_tls, Profile::Bcd, args.bcd_amount_exponent),
        (ascii, ascii_tls, Profile::Ascii, args.ascii_amount_exponent),
    ] {
        let exponent = AmountExponent::new(exponent)
            .with_context(|| format!("amount exponent {exponent}: 0, 1 or 2"))?;
        let handler = Arc::new(Listener {
            host: host.clone(),
            exponent,
        });
        tracker.spawn(net::serve(
            listener,
            cores.clone(),
            tls,
            profile,
            handler,
            Limits::default(),
            shutdown.clone(),
            tracker.clone(),
        ));
    }
    {
        let shutdown = shutdown.clone();
        let app = ssn_admin_api::router(admin_state);
        tracker.spawn_on(
            async move {
                let listener = TcpListener::from_std(admin).and_then(|admin| match admin_tls {
                    None => Ok(AdminListener::Plain(admin)),
                    Some(acceptor) => AdminListener::tls(admin, acceptor, ADMIN_HANDSHAKE_TIMEOUT),
                });
                let served = match listener {
                    // With each client's address, so failed authentications count per
                    // address.
                    Ok(listener) => {
                        // (`tap_io` only so that axum gives the client's address for a
                        // listener of ours.)
                        axum::serve(
                            axum::serve::ListenerExt::tap_io(listener, |_| {}),
                            app.into_make_service_with_connect_info::<SocketAddr>(),
                        )
                        .with_graceful_shutdown(async move { shutdown.cancelled().await })
                        .await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = served {
                    tracing::error!(error = %e, "the admin API listener failed");
                }
            },
            &admin_runtime,
        );
    }
    tracker.spawn(resolve_debits_in_doubt(ledger.clone(), shutdown.clone()));
    if !args.no_monitor {
        tracker.spawn(monitor_misuse(
            ledger.clone(),
            monitor_config,
            args.node_id.to_string(),
            shutdown.clone(),
        ));
    }
    tracing::info!(bcd = %args.bcd_listen, ascii = %args.ascii_listen, admin = %args.admin_listen, "serving");

    wait_for_signal().await;
    tracing::info!("shutting down: no new connections; answering what is in flight");
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still in flight after the grace period; they were not acknowledged"
        );
    }
    // The connection threads stop once their connections have ended (or the grace is over).
    drop(cores);
    // Dropping the ledger stops the journal writer after its last batch is durable.
    drop(host);
    drop(ledger);
    tracing::info!("stopped");
    Ok(())
}

/// How long a client of the admin listener may take over its TLS handshake.
const ADMIN_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Debits the balance store did not answer in time may still run there later: the ledger
/// voids them as soon as the store answers again (`ssn_ledger::Ledger::resolve_debits_in_doubt`),
/// so every card's pockets come back to the journal's truth without a restart.
async fn resolve_debits_in_doubt(ledger: Arc<Ledger>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(ssn_ledger::DOUBT_RESOLVE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = ledger.debits_in_doubt();
        if before == 0 {
            continue;
        }
        match ledger.resolve_debits_in_doubt().await {
            Ok(left) => tracing::info!(
                resolved = before.saturating_sub(left),
                left,
                "debits in doubt voided in the balance store"
            ),
            Err(error) => {
                tracing::debug!(%error, in_doubt = before, "debits in doubt wait for the balance store")
            }
        }
    }
}

/// Follows the transaction log with the misuse monitor and stores its alerts, beside the
/// switch: nothing here is on a purchase's path, and a slow round only makes alerts later.
/// It resumes from this node's checkpoint and writes a last one when the switch stops.
async fn monitor_misuse(
    ledger: Arc<Ledger>,
    config: ssn_ledger::monitor::MonitorConfig,
    node: String,
    shutdown: CancellationToken,
) {
    use ssn_ledger::monitor::{MONITOR_POLL_INTERVAL, MonitorFollower};
    let mut follower = loop {
        match MonitorFollower::resume(config.clone(), &node, &ledger).await {
            Ok(follower) => break follower,
            Err(error) => {
                tracing::warn!(%error, "the misuse monitor could not read its checkpoint")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(MONITOR_POLL_INTERVAL) => {}
        }
    };
    tracing::info!(
        position = follower.monitor().next_position(),
        "the misuse monitor resumes"
    );
    loop {
        if shutdown.is_cancelled() {
            if let Err(error) = follower.checkpoint(&ledger).await {
                tracing::warn!(%error, "the misuse monitor's last checkpoint failed");
            }
            return;
        }
        let caught_up = match follower.round(&ledger).await {
            Ok(round) => {
                for alert in &round.stored {
                    tracing::info!(
                        alert = %alert.id,
                        rule = alert.rule.as_str(),
                        merchant = alert.merchant.as_ref().map(|m| m.as_str()),
                        "misuse alert"
                    );
                }
                if let Some(error) = round.storage_error {
                    tracing::warn!(%error, "misuse alerts wait for the registry");
                }
                round.caught_up
            }
            Err(error) => {
                tracing::warn!(%error, "the misuse monitor could not read the log");
                true
            }
        };
        if caught_up {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(MONITOR_POLL_INTERVAL) => {}
            }
        }
    }
}

/// The monitor's thresholds: the defaults, overridden by the file's fields.
fn monitor_config(path: Option<&Path>) -> anyhow::Result<ssn_ledger::monitor::MonitorConfig> {
    let Some(path) = path else {
        return Ok(Default::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the monitor's thresholds {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "the monitor's thresholds in {} do not parse",
            path.display()
        )
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let interrupt = tokio::signal::ctrl_c();
    tokio::select! {
        _ = interrupt => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// `HH:MM` as seconds after a WITA day's midnight at which the day ends; `00:00` is the
/// midnight at its end (86,400).
fn parse_cutover(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    let seconds = h * 3600 + m * 60;
    Some(if seconds == 0 { 86_400 } else { seconds })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
