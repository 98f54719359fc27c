//! `ssn-loadtest`: seed a synthetic city, drive it against `ssn-switch` (or the baseline echo
//! server) from simulated EDC terminals, report latency and throughput, and check the books.
//!
//! ```sh
//! ssn-loadtest seed --data-dir city --cards 100000 --merchants 500 --terminals 1000
//! ssn-loadtest run --data-dir city --switch-bin target/release/ssn-switch \
//!     --profile bcd --rate 20000 --arrivals poisson --duration 30 --json run.json --svg run.svg
//! ssn-loadtest run --data-dir city --switch-bin target/release/ssn-switch --target both --closed
//! ssn-loadtest run --data-dir city --switch-bin target/release/ssn-switch --target both \
//!     --mix echo=1 --rates 60000,70000,80000,90000 --duration 15 --warmup 5
//! ssn-loadtest run --fresh-from city --data-dir city.run --switch-bin target/release/ssn-switch \
//!     --mix purchase=1 --rates 14000,16000,18000 --duration 20 --warmup 5
//! ```
//!
//! `run` starts the switch itself on the data directory (on free loopback ports), runs the
//! load, stops the switch with SIGTERM, and checks the books on the journal; `--addr` drives a
//! switch started by hand instead, without the books check. This file is the only place that
//! reads flags, files, processes and signals.

use std::io::{BufRead, BufReader, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ssn_codec::Profile;
use ssn_hsm::{KeyUsage, MasterKey, SoftHsm};
use ssn_ledger::{Ledger, LedgerConfig};
use ssn_loadtest::books;
use ssn_loadtest::city::{City, CitySize};
use ssn_loadtest::load::{self, LoadConfig, RunPace};
use ssn_loadtest::mix::{DEFAULT_MIX, Mix};
use ssn_loadtest::report::{LoadShape, Report};
use ssn_loadtest::terminal::Progress;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long a started server (switch or baseline) may take to print its listening line; the
/// switch replays the whole journal and rebuilds its balance store first.
const LISTENING_DEADLINE: Duration = Duration::from_secs(300);
/// How long a server may take to stop after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(60);
/// How often the progress bar is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// Rates one `--rates` sweep may run.
const SWEEP_RATES_MAX: usize = 64;
/// After the load starts, when `--misuse` begins injecting (the terminals sign on first).
const MISUSE_DELAY: Duration = Duration::from_secs(2);
/// The city file's name inside the data directory.
const CITY_FILE: &str = "loadtest-city.json";
/// Where `run --misuse` keeps its admin token, in the data directory.
const ADMIN_TOKEN_FILE: &str = "loadtest-admin.token";

#[derive(Parser)]
#[command(
    name = "ssn-loadtest",
    version,
    about = "Load harness for the SSN switch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command_,
}

#[derive(Subcommand)]
enum Command_ {
    /// Provision a synthetic city into a new data directory, with the keys the switch reads
    /// and a city file (PANs, PINs, clear terminal keys) for `run`.
    Seed(SeedArgs),
    /// Drive the city's terminals against the switch (and/or the baseline) and report.
    Run(Box<RunArgs>),
    /// Write history fast into a seeded city: approved purchases through the ledger's own
    /// calls, in-process (no switch may be running on it), spread over the days before now.
    History(HistoryArgs),
    /// Serve the baseline: frame and echo every message, no business logic.
    Baseline {
        /// `bcd` listener.
        #[arg(long, default_value = "127.0.0.1:0")]
        bcd_listen: SocketAddr,
        /// `ascii` listener.
        #[arg(long, default_value = "127.0.0.1:0")]
        ascii_listen: SocketAddr,
    },
}

#[derive(Args)]
struct HistoryArgs {
    /// The seeded data directory (stopped).
    #[arg(long)]
    data_dir: PathBuf,
    /// Purchases to write.
    #[arg(long)]
    purchases: u64,
    /// Days before now they are spread over.
    #[arg(long, default_value_t = 100)]
    days: u64,
}

#[derive(Args)]
struct SeedArgs {
    /// A new data directory for the switch (created).
    #[arg(long)]
    data_dir: PathBuf,
    /// Beneficiaries, one card each.
    #[arg(long, default_value_t = 1_000)]
    cards: u32,
    /// E-Warong.
    #[arg(long, default_value_t = 10)]
    merchants: u32,
    /// Terminals, spread evenly over the E-Warong.
    #[arg(long, default_value_t = 20)]
    terminals: u32,
    /// Where to write the city file (default DATA_DIR/loadtest-city.json).
    #[arg(long)]
    city: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// The switch.
    Switch,
    /// The baseline echo server.
    Baseline,
    /// The switch, then the baseline with the same load, and their ratio.
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProfileArg {
    Bcd,
    Ascii,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Arrivals {
    Constant,
    Poisson,
}

#[derive(Args)]
struct RunArgs {
    /// The seeded data directory; the switch is started on it and the books checked on it.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Before every start of the switch (each step of a sweep), replace --data-dir with a
    /// copy of this seeded city, so every run starts on the same journal and no step carries
    /// another's purchases. --data-dir must then be a seeded city or not exist.
    #[arg(long, requires = "data_dir", conflicts_with = "addr")]
    fresh_from: Option<PathBuf>,
    /// The city file (default DATA_DIR/loadtest-city.json).
    #[arg(long)]
    city: Option<PathBuf>,
    /// What to measure.
    #[arg(long, value_enum, default_value = "switch")]
    target: Target,
    /// The `ssn-switch` binary to start on the data directory.
    #[arg(long)]
    switch_bin: Option<PathBuf>,
    /// Start the switch with balances in this Redis (`redis://127.0.0.1:PORT/`).
    #[arg(long)]
    redis_url: Option<String>,
    /// The Redis key prefix of the started switch.
    #[arg(long, default_value = "ssn-loadtest")]
    redis_key_prefix: String,
    /// Drive a switch that is already running at this address instead (no books check).
    #[arg(long, conflicts_with_all = ["switch_bin", "target"])]
    addr: Option<SocketAddr>,
    /// Wire profile.
    #[arg(long, value_enum, default_value = "bcd")]
    profile: ProfileArg,
    /// Terminals (TCP connections); default every terminal of the city.
    #[arg(long)]
    terminals: Option<usize>,
    /// Open loop: requests per second over all terminals.
    #[arg(long, conflicts_with = "closed")]
    rate: Option<f64>,
    /// A sweep: open-loop rates (comma-separated, each a whole run: the switch started, the
    /// load, the books; with `--target baseline` or `both`, the baseline too), then the
    /// highest that kept p99 within `--p99-max-ms`, for each target, and their ratio.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["rate", "closed"])]
    rates: Option<Vec<f64>>,
    /// With `--rates`: the p99 latency a rate must keep, in milliseconds.
    #[arg(long, default_value_t = 10.0)]
    p99_max_ms: f64,
    /// Open-loop arrivals.
    #[arg(long, value_enum, default_value = "poisson")]
    arrivals: Arrivals,
    /// Closed loop: as fast as answers come back.
    #[arg(long)]
    closed: bool,
    /// Closed loop: requests outstanding per terminal.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Seconds of arrivals.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds at the start left out of latency and rates.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// A request unanswered after this many milliseconds is a timeout.
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
    /// What to send, by weight.
    #[arg(long, default_value = DEFAULT_MIX)]
    mix: String,
    /// Seed of the generators (default: random, printed in the report).
    #[arg(long)]
    seed: Option<u64>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the latency-over-time plot here (SVG).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Where the started switch's log goes (default DATA_DIR/switch.log).
    #[arg(long)]
    switch_log: Option<PathBuf>,
    /// No progress bar even on a terminal.
    #[arg(long)]
    no_progress: bool,
    /// Inject misuse beside the load and score the switch's alerts against it: rules,
    /// comma-separated (`card_collection,pin_guessing,split_purchase,fixed_package`), `all`,
    /// or `none` (honest traffic alone, its alerts scored). Each pattern runs on an E-Warong
    /// none of whose terminals is among the load's --terminals.
    #[arg(long, conflicts_with_all = ["addr", "rates"])]
    misuse: Option<String>,
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command_::Seed(args) => runtime.block_on(seed(args)),
        Command_::History(args) => runtime.block_on(history(args)),
        Command_::Run(args) => runtime.block_on(run(*args)),
        Command_::Baseline {
            bcd_listen,
            ascii_listen,
        } => runtime.block_on(baseline(bcd_listen, ascii_listen)),
    }
}

// ---------------------------------------------------------------------------------- seed

async fn seed(args: SeedArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.data_dir;
    if dir.join("master.key").exists() || dir.join("journal.log").exists() {
        bail!(
            "{} already holds a switch's data: seed into a new directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let started = std::time::Instant::now();
    let master = MasterKey::generate().map_err(|e| anyhow::anyhow!("master key: {e}"))?;
    write_private(&dir.join("master.key"), master.reveal_hex().as_bytes())?;
    let hsm = SoftHsm::new(master);
    let pvk = hsm
        .generate_key(KeyUsage::Pvk)
        .map_err(|e| anyhow::anyhow!("PVK: {e}"))?;
    write_private(&dir.join("pvk.key"), pvk.to_hex().as_bytes())?;
    let ledger = Ledger::open(LedgerConfig::embedded(dir))
        .await
        .context("opening the ledger")?;
    let now = ssn_loadtest::clock::unix_seconds_now();
    let period = {
        let de7 = ssn_loadtest::clock::de7(now);
        format!("LOAD-{}", String::from_utf8_lossy(&de7[..4]))
    };
    let size = CitySize {
        cards: args.cards,
        merchants: args.merchants,
        terminals: args.terminals,
    };
    let city = ssn_loadtest::city::seed(&ledger, &hsm, &pvk, size, &period, now).await?;
    // The disbursement's 100,000 card rows leave the working set at once: moved now, the
    // first run does not pay for them in its first seconds.
    as_if_running(Box::new(ledger), dir, now)?;
    let path = args.city.unwrap_or_else(|| dir.join(CITY_FILE));
    write_private(&path, &serde_json::to_vec(&city)?)?;
    println!(
        "{}",
        serde_json::json!({
            "event": "seeded",
            "data_dir": dir,
            "city": path,
            "cards": city.cards.len(),
            "merchants": city.merchants.len(),
            "terminals": city.terminals.len(),
            "seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// Leaves the city in `dir` as a running switch would have by `now`: what has left the
/// working set in history, and a snapshot of the rest, from which the switch starts. Takes
/// the ledger to close it before the snapshot is taken.
fn as_if_running(
    ledger: impl std::ops::Deref<Target = Ledger>,
    dir: &Path,
    now: i64,
) -> anyhow::Result<()> {
    ledger
        .move_to_history(now, ssn_ledger::window::WORKING_SET_PURCHASES_MAX)
        .context("moving to history")?;
    drop(ledger);
    let history = Arc::new(ssn_ledger::history::History::open(dir).context("opening history")?);
    ssn_ledger::snapshot::take(dir, Some((&history, now)), &|| false)
        .context("taking a snapshot")?;
    Ok(())
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

// ---------------------------------------------------------------------------------- servers

/// A server this harness started, stopped (SIGTERM, then SIGKILL after a deadline) when it is
/// done or dropped.
struct Server {
    child: Option<Child>,
    bcd: SocketAddr,
    ascii: SocketAddr,
    /// The admin API's address (the switch's; the baseline has none).
    admin: Option<SocketAddr>,
    what: &'static str,
}

impl Server {
    fn start(
        mut command: Command,
        what: &'static str,
        log: Option<&Path>,
    ) -> anyhow::Result<Server> {
        let stderr = match log {
            Some(path) => Stdio::from(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            ),
            None => Stdio::null(),
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting the {what}"))?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut server = Server {
            child: Some(child),
            bcd: "127.0.0.1:0".parse()?,
            ascii: "127.0.0.1:0".parse()?,
            admin: None,
            what,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining, so the server never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(LISTENING_DEADLINE).map_err(|_| {
            anyhow::anyhow!("the {what} did not announce its ports in {LISTENING_DEADLINE:?}")
        })?;
        let ready: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("the {what}'s first line {line:?}"))?;
        let addr = |key: &str| -> anyhow::Result<SocketAddr> {
            ready[key]
                .as_str()
                .with_context(|| format!("no {key} address in {line:?}"))?
                .parse()
                .with_context(|| format!("{key} address in {line:?}"))
        };
        server.bcd = addr("bcd")?;
        server.ascii = addr("ascii")?;
        server.admin = addr("admin").ok();
        Ok(server)
    }

    fn addr(&self, profile: Profile) -> SocketAddr {
        match profile {
            Profile::Bcd => self.bcd,
            Profile::Ascii => self.ascii,
        }
    }

    /// SIGTERM by PID, then wait for the exit; SIGKILL if it does not come in time.
    fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + STOP_DEADLINE;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("the {} exited with {status}", self.what);
                }
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the {} did not stop within {STOP_DEADLINE:?}; killed",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn baseline(bcd: SocketAddr, ascii: SocketAddr) -> anyhow::Result<ExitCode> {
    let bcd = tokio::net::TcpListener::bind(bcd)
        .await
        .context("binding bcd")?;
    let ascii = tokio::net::TcpListener::bind(ascii)
        .await
        .context("binding ascii")?;
    println!(
        "{}",
        serde_json::json!({"event": "listening", "bcd": bcd.local_addr()?.to_string(), "ascii": ascii.local_addr()?.to_string()})
    );
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(ssn_loadtest::baseline::serve(
        bcd,
        Profile::Bcd,
        shutdown.clone(),
        tracker.clone(),
    ));
    tracker.spawn(ssn_loadtest::baseline::serve(
        ascii,
        Profile::Ascii,
        shutdown.clone(),
        tracker.clone(),
    ));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    shutdown.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------------------------- history

async fn history(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let city_path = args.data_dir.join(CITY_FILE);
    let city: City = serde_json::from_slice(
        &std::fs::read(&city_path).with_context(|| format!("reading {}", city_path.display()))?,
    )
    .with_context(|| format!("parsing {}", city_path.display()))?;
    city.validate()?;
    let ledger = Arc::new(
        Ledger::open(LedgerConfig::embedded(args.data_dir.clone()))
            .await
            .context("opening the city's ledger (is a switch running on it?)")?,
    );
    let started = std::time::Instant::now();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let written = ssn_loadtest::history::write(
        ledger.clone(),
        Arc::new(city),
        args.purchases,
        args.days,
        now,
        move |done| eprintln!("{done} purchases written"),
    )
    .await
    .context("writing history")?;
    as_if_running(ledger, &args.data_dir, now)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} approved, {} declined in {seconds:.1} s ({:.0}/s)",
        written.approved,
        written.declined,
        (written.approved + written.declined) as f64 / seconds
    );
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------- run

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let city_path = match (&args.city, &args.fresh_from, &args.data_dir) {
        (Some(p), _, _) => p.clone(),
        (None, Some(from), _) => from.join(CITY_FILE),
        (None, None, Some(dir)) => dir.join(CITY_FILE),
        (None, None, None) => bail!("give --data-dir (or --city with --addr)"),
    };
    let city: City = serde_json::from_slice(
        &std::fs::read(&city_path).with_context(|| format!("reading {}", city_path.display()))?,
    )
    .with_context(|| format!("parsing {}", city_path.display()))?;
    city.validate()?;
    let profile = match args.profile {
        ProfileArg::Bcd => Profile::Bcd,
        ProfileArg::Ascii => Profile::Ascii,
    };
    let seed = match args.seed {
        Some(s) => s,
        None => {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random seed: {e}"))?;
            u64::from_le_bytes(bytes)
        }
    };
    let pace = if args.closed {
        RunPace::Closed {
            in_flight_per_terminal: args.in_flight,
        }
    } else if let Some(rates) = &args.rates {
        let valid = |r: &f64| r.is_finite() && *r > 0.0;
        if rates.is_empty() || rates.len() > SWEEP_RATES_MAX || !rates.iter().all(valid) {
            bail!("--rates takes 1 to {SWEEP_RATES_MAX} positive rates");
        }
        if !(args.p99_max_ms.is_finite() && args.p99_max_ms > 0.0) {
            bail!("--p99-max-ms must be a positive number of milliseconds");
        }
        // Each step of the sweep sets its own rate; the first stands in until then.
        RunPace::Open {
            rate_per_second: rates[0],
            poisson: args.arrivals == Arrivals::Poisson,
        }
    } else {
        RunPace::Open {
            rate_per_second: args.rate.context("give --rate (open loop) or --closed")?,
            poisson: args.arrivals == Arrivals::Poisson,
        }
    };
    if !(args.duration > 0.0
        && args.duration <= 3_600.0
        && (0.0..args.duration).contains(&args.warmup))
    {
        bail!("--duration must be in (0, 3600] seconds and --warmup shorter than it");
    }
    let config = LoadConfig {
        profile,
        addr: "127.0.0.1:0".parse()?,
        terminals: args.terminals.unwrap_or(city.terminals.len()),
        pace,
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
        timeout: Duration::from_millis(args.timeout_ms.max(1)),
        mix: Mix::parse(&args.mix)?,
        seed,
    };
    if let Some(list) = &args.misuse {
        ssn_loadtest::misuse::Pattern::parse_list(list)?;
    }
    let load_before = load_average();
    if let Some(rates) = &args.rates {
        return sweep(&city, &config, rates, &args, load_before).await;
    }

    let mut exit = ExitCode::SUCCESS;
    let mut switch_report = None;
    let mut baseline_report = None;
    if let Some(addr) = args.addr {
        let report = measure(&city, &config, addr, "switch", &args).await?;
        println!("{}", report.text());
        println!("  books        not checked: the switch was not started by this run");
        switch_report = Some(report);
    } else {
        if matches!(args.target, Target::Switch | Target::Both) {
            let (report, ok) = run_switch(&city, &config, &args).await?;
            if !ok {
                exit = ExitCode::FAILURE;
            }
            switch_report = Some(report);
        }
        if matches!(args.target, Target::Baseline | Target::Both) {
            let (report, ok) = run_baseline(&city, &config, &args).await?;
            if !ok {
                exit = ExitCode::FAILURE;
            }
            baseline_report = Some(report);
        }
    }

    // The JSON: the switch's report at the top (or the baseline's alone), the baseline and the
    // ratio beside it when both ran.
    let main_report = switch_report
        .as_ref()
        .or(baseline_report.as_ref())
        .context("nothing ran")?;
    let mut json = serde_json::to_value(main_report)?;
    json["machine"] = serde_json::json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    });
    if let (Some(s), Some(b)) = (&switch_report, &baseline_report) {
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                (a / b * 1000.0).round() / 1000.0
            } else {
                0.0
            }
        };
        let r = serde_json::json!({
            "requests_per_second": ratio(s.requests_per_second, b.requests_per_second),
            "approved_per_second": ratio(s.approved_per_second, b.approved_per_second),
            "p99": ratio(s.latency_ms.p99, b.latency_ms.p99),
        });
        println!(
            "switch / baseline: requests/s {} ({:.1} / {:.1}), p99 {} ({:.3} ms / {:.3} ms)",
            r["requests_per_second"],
            s.requests_per_second,
            b.requests_per_second,
            r["p99"],
            s.latency_ms.p99,
            b.latency_ms.p99
        );
        json["baseline"] = serde_json::to_value(b)?;
        json["ratio"] = r;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, main_report.svg())
            .with_context(|| format!("writing {}", path.display()))?;
        if let Some(b) = baseline_report.as_ref().filter(|_| switch_report.is_some()) {
            let baseline_path = path.with_extension("baseline.svg");
            std::fs::write(&baseline_path, b.svg())
                .with_context(|| format!("writing {}", baseline_path.display()))?;
        }
    }
    Ok(exit)
}

/// One step of a sweep: what was measured at which rate, its report, and whether it kept
/// the bar.
#[derive(serde::Serialize)]
struct SweepStep {
    target: &'static str,
    rate: f64,
    meets: bool,
    report: Report,
}

/// Runs the load once per rate, in order, on the same data directory (each step starts its
/// own switch and checks its own books; the journal keeps the earlier steps' purchases unless
/// `--fresh-from` gives every step a fresh copy of the city), and
/// reports the highest rate that kept p99 within `--p99-max-ms` with every request answered,
/// nothing dropped, and the books in agreement. With `--target baseline` or `both` each rate
/// is also run against the baseline echo server, and the two highest rates are compared. A
/// step that fails its books fails the sweep; a rate that misses the p99 is a measurement,
/// not a failure.
async fn sweep(
    city: &City,
    base: &LoadConfig,
    rates: &[f64],
    args: &RunArgs,
    load_before: String,
) -> anyhow::Result<ExitCode> {
    let targets: &[&'static str] = match (args.addr, args.target) {
        (Some(_), _) | (None, Target::Switch) => &["switch"],
        (None, Target::Baseline) => &["baseline"],
        (None, Target::Both) => &["switch", "baseline"],
    };
    let mut exit = ExitCode::SUCCESS;
    let mut steps = Vec::with_capacity(rates.len() * targets.len());
    for &rate in rates {
        let mut config = base.clone();
        config.pace = RunPace::Open {
            rate_per_second: rate,
            poisson: args.arrivals == Arrivals::Poisson,
        };
        for &target in targets {
            let (report, ok) = match (target, args.addr) {
                ("baseline", _) => run_baseline(city, &config, args).await?,
                (_, Some(addr)) => {
                    let report = measure(city, &config, addr, "switch", args).await?;
                    println!("{}", report.text());
                    let ok = report.errors_total == 0;
                    (report, ok)
                }
                (_, None) => run_switch(city, &config, args).await?,
            };
            if !ok {
                exit = ExitCode::FAILURE;
            }
            let meets = ok
                && report.latency_ms.p99 <= args.p99_max_ms
                && report.answered_total == report.sent_total
                && report.timeouts == 0
                && report.dropped_arrivals == 0;
            if let Some(path) = &args.svg {
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("sweep");
                let name = match target {
                    "baseline" => format!("{stem}-baseline-{rate}.svg"),
                    _ => format!("{stem}-{rate}.svg"),
                };
                let step_path = path.with_file_name(name);
                std::fs::write(&step_path, report.svg())
                    .with_context(|| format!("writing {}", step_path.display()))?;
            }
            steps.push(SweepStep {
                target,
                rate,
                meets,
                report,
            });
        }
    }
    let best = |target: &str| {
        steps
            .iter()
            .filter(|s| s.target == target && s.meets)
            .max_by(|a, b| a.rate.total_cmp(&b.rate))
    };
    let bests: Vec<(&str, Option<&SweepStep>)> = targets.iter().map(|t| (*t, best(t))).collect();
    println!(
        "sweep: p99 within {} ms, every request answered{}",
        args.p99_max_ms,
        if targets.contains(&"switch") && args.addr.is_none() {
            ", books in agreement"
        } else {
            ""
        }
    );
    println!(
        "  {:>8}  {:>10}  {:>12}  {:>12}  {:>9}  {:>9}  meets",
        "target", "rate/s", "requests/s", "approved/s", "p50 ms", "p99 ms"
    );
    for s in &steps {
        println!(
            "  {:>8}  {:>10}  {:>12.1}  {:>12.1}  {:>9.3}  {:>9.3}  {}",
            s.target,
            s.rate,
            s.report.requests_per_second,
            s.report.approved_per_second,
            s.report.latency_ms.p50,
            s.report.latency_ms.p99,
            if s.meets { "yes" } else { "no" }
        );
    }
    for (target, best) in &bests {
        let whose = if targets.len() > 1 {
            format!(" ({target})")
        } else {
            String::new()
        };
        match best {
            Some(b) => println!(
                "  highest rate that kept the bar{whose}: {}/s ({:.1} requests/s, {:.1} approved purchases/s, p99 {:.3} ms)",
                b.rate,
                b.report.requests_per_second,
                b.report.approved_per_second,
                b.report.latency_ms.p99
            ),
            None => println!("  no rate kept the bar{whose}"),
        }
    }
    // The switch's highest rate over the baseline's: how much of the bare TCP path of this
    // machine the switch keeps at the same latency bar.
    let ratio = match (best("switch"), best("baseline")) {
        (Some(s), Some(b)) if targets.len() > 1 => {
            let ratio = (s.rate / b.rate * 1000.0).round() / 1000.0;
            println!(
                "  switch / baseline at p99 within {} ms: {ratio} ({}/s / {}/s)",
                args.p99_max_ms, s.rate, b.rate
            );
            Some(ratio)
        }
        _ => None,
    };
    if let Some(path) = &args.json {
        let best_json = |best: Option<&SweepStep>| {
            best.map(|b| {
                serde_json::json!({
                    "rate": b.rate,
                    "requests_per_second": b.report.requests_per_second,
                    "approved_per_second": b.report.approved_per_second,
                    "p99_ms": b.report.latency_ms.p99,
                })
            })
        };
        let json = serde_json::json!({
            "p99_max_ms": args.p99_max_ms,
            "best": best_json(bests[0].1),
            "baseline_best": best_json(best("baseline")),
            "ratio": ratio,
            "steps": steps,
            "machine": {
                "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                "load_average_before": load_before,
                "load_average_after": load_average(),
            },
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(exit)
}

/// Starts the baseline echo server (this binary's `baseline`), runs the load, stops it.
async fn run_baseline(
    city: &City,
    config: &LoadConfig,
    args: &RunArgs,
) -> anyhow::Result<(Report, bool)> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let mut command = Command::new(exe);
    command.arg("baseline");
    let mut server = Server::start(command, "baseline", None)?;
    let report = measure(city, config, server.addr(config.profile), "baseline", args).await;
    server.stop()?;
    let report = report?;
    println!("{}", report.text());
    let ok = report.errors_total == 0;
    Ok((report, ok))
}

/// Starts the switch on the data directory, runs the load, stops it, checks the books.
async fn run_switch(
    city: &City,
    config: &LoadConfig,
    args: &RunArgs,
) -> anyhow::Result<(Report, bool)> {
    let dir = args
        .data_dir
        .as_ref()
        .context("--data-dir: the seeded city to start the switch on")?;
    let bin = args
        .switch_bin
        .as_ref()
        .context("--switch-bin: the ssn-switch binary to start (or --addr for a running one)")?;
    if let Some(from) = &args.fresh_from {
        refresh_data_dir(from, dir)?;
    }
    let mut command = Command::new(bin);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--bcd-listen",
            "127.0.0.1:0",
            "--ascii-listen",
            "127.0.0.1:0",
        ])
        .args(["--admin-listen", "127.0.0.1:0", "--log", "warn"]);
    if let Some(url) = &args.redis_url {
        command.args([
            "--redis-url",
            url,
            "--redis-key-prefix",
            &args.redis_key_prefix,
        ]);
    }
    let log = args
        .switch_log
        .clone()
        .unwrap_or_else(|| dir.join("switch.log"));
    // `--misuse` reads the alerts through the admin API with a token of the harness's own,
    // kept in the data directory: the switch takes it as its first admin token.
    let token = match &args.misuse {
        Some(_) => {
            let token = admin_token(dir)?;
            command.env("SSN_BOOTSTRAP_TOKEN", &token);
            Some(token)
        }
        None => None,
    };
    let mut server = Server::start(command, "switch", Some(&log))?;
    let addr = server.addr(config.profile);
    let (outcome, misuse) = match (&args.misuse, &token, server.admin) {
        (Some(list), Some(token), Some(admin)) => {
            use ssn_loadtest::misuse;
            let injection = misuse::Injection {
                patterns: misuse::Pattern::parse_list(list)?,
                honest_terminals: config.terminals,
                delay: MISUSE_DELAY,
                addr,
                profile: config.profile,
            };
            let cards = load::card_secrets(city)?;
            // Alerts are watched for while the load still runs, so their latency is the
            // monitor's, not the run's length.
            let (send, sent) = tokio::sync::oneshot::channel();
            let injected = async {
                let labels = misuse::inject(city, &cards, &injection).await?;
                let _ = send.send(labels);
                Ok::<_, ssn_loadtest::Error>(())
            };
            let (outcome, injected, watched) = tokio::join!(
                drive(city, config, addr, args.no_progress),
                injected,
                misuse::watch(admin, token, sent)
            );
            injected.context("--misuse")?;
            let (labels, seen) = watched.context("--misuse")?;
            let labels = labels.context("--misuse: the injection stopped")?;
            let score = misuse::score(admin, token, labels, seen).await;
            (outcome, Some(score.context("--misuse")?))
        }
        (Some(_), _, _) => bail!("--misuse: the switch announced no admin address"),
        _ => (drive(city, config, addr, args.no_progress).await, None),
    };
    // Stop it whatever the run did: the books are read from the journal it leaves.
    let stopped = server.stop();
    let (outcome, shape) = outcome?;
    stopped?;
    let mut report = Report::new(
        shape_with(shape, "switch"),
        &outcome.counts,
        &outcome.recorder,
        &outcome.errors,
    );

    let journal =
        books::journaled(dir, &outcome.keys).context("reading the journal for the books check")?;
    let books_report = books::compare(&outcome.seen, &journal, &outcome.in_doubt);
    let ok = books_report.ok && report.errors_total == 0;
    report.books = Some(books_report);
    report.misuse = misuse;
    println!("{}", report.text());
    Ok((report, ok))
}

/// The admin token `--misuse` reads alerts with: `DIR/loadtest-admin.token`, made (and given
/// to the switch as its bootstrap token) when the file does not exist. A switch that already
/// has tokens ignores a new bootstrap token: put one of its admin tokens in the file then.
fn admin_token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(ADMIN_TOKEN_FILE);
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_string());
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, token.as_bytes())?;
    Ok(token)
}

/// `--fresh-from`: replaces `dir` with a copy of the seeded city in `from`, synced to disk so
/// the run does not pay for writing the copy back. Refuses a `dir` that exists without being
/// a seeded city (it is deleted), and directories inside one another.
fn refresh_data_dir(from: &Path, dir: &Path) -> anyhow::Result<()> {
    let from_real = from
        .canonicalize()
        .with_context(|| format!("--fresh-from {}", from.display()))?;
    if !from_real.join(CITY_FILE).is_file() {
        bail!(
            "--fresh-from {}: not a seeded city (no {CITY_FILE})",
            from.display()
        );
    }
    // Where `dir` is or would be, symbolic links resolved as far as it exists.
    let dir_real = match (dir.canonicalize(), dir.parent(), dir.file_name()) {
        (Ok(real), _, _) => real,
        (Err(_), Some(parent), Some(name)) if parent.as_os_str().is_empty() => {
            std::env::current_dir()?.join(name)
        }
        (Err(_), Some(parent), Some(name)) => parent
            .canonicalize()
            .with_context(|| format!("--data-dir {}", dir.display()))?
            .join(name),
        (Err(e), _, _) => return Err(e).context(format!("--data-dir {}", dir.display())),
    };
    if dir_real.starts_with(&from_real) || from_real.starts_with(&dir_real) {
        bail!(
            "--data-dir {} and --fresh-from {} must be apart, neither inside the other",
            dir.display(),
            from.display()
        );
    }
    if dir.exists() {
        if !dir_real.join(CITY_FILE).is_file() {
            bail!(
                "--data-dir {} exists and is not a seeded city (no {CITY_FILE}): not replacing it",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    copy_tree(&from_real, dir)
        .with_context(|| format!("copying {} to {}", from.display(), dir.display()))
}

/// Copies the files and directories under `from` into `to`, each synced.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
            std::fs::File::open(&target)?.sync_all()?;
        } else {
            return Err(std::io::Error::other(format!(
                "{}: neither a file nor a directory",
                entry.path().display()
            )));
        }
    }
    std::fs::File::open(to)?.sync_all()
}

fn shape_with(mut shape: LoadShape, target: &str) -> LoadShape {
    shape.target = target.into();
    shape
}

async fn measure(
    city: &City,
    config: &LoadConfig,
    addr: SocketAddr,
    target: &str,
    args: &RunArgs,
) -> anyhow::Result<Report> {
    let (outcome, shape) = drive(city, config, addr, args.no_progress).await?;
    Ok(Report::new(
        shape_with(shape, target),
        &outcome.counts,
        &outcome.recorder,
        &outcome.errors,
    ))
}

/// Runs the load at `addr` with a progress bar on stderr when it is a terminal.
async fn drive(
    city: &City,
    config: &LoadConfig,
    addr: SocketAddr,
    no_progress: bool,
) -> anyhow::Result<(load::Outcome, LoadShape)> {
    let mut config = config.clone();
    config.addr = addr;
    let progress = Arc::new(Progress::default());
    let bar = if no_progress || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(config.duration.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    };
    let ticker = {
        let bar = bar.clone();
        let progress = progress.clone();
        let terminals = config.terminals;
        tokio::spawn(async move {
            use std::sync::atomic::Ordering::Relaxed;
            let started = std::time::Instant::now();
            let mut last = (0u64, std::time::Instant::now());
            loop {
                tokio::time::sleep(PROGRESS_INTERVAL).await;
                let answered = progress.answered.load(Relaxed);
                let now = std::time::Instant::now();
                let rate =
                    (answered - last.0) as f64 / now.duration_since(last.1).as_secs_f64().max(1e-3);
                last = (answered, now);
                bar.set_position(started.elapsed().as_millis() as u64);
                bar.set_message(format!(
                    "signed on {}/{terminals}  sent {}  answered {}  ({rate:.0}/s)  approved {}  timeouts {}",
                    progress.signed_on.load(Relaxed),
                    progress.sent.load(Relaxed),
                    answered,
                    progress.approved.load(Relaxed),
                    progress.timeouts.load(Relaxed),
                ));
            }
        })
    };
    let cards = load::card_secrets(city)?;
    let outcome = load::run(city, cards, &config, progress).await;
    ticker.abort();
    bar.finish_and_clear();
    let outcome = outcome?;
    let (mode, arrivals, rate, in_flight) = match config.pace {
        RunPace::Open {
            rate_per_second,
            poisson,
        } => (
            "open",
            Some(if poisson { "poisson" } else { "constant" }.to_string()),
            Some(rate_per_second),
            None,
        ),
        RunPace::Closed {
            in_flight_per_terminal,
        } => ("closed", None, None, Some(in_flight_per_terminal)),
    };
    let shape = LoadShape {
        target: String::new(),
        profile: match config.profile {
            Profile::Bcd => "bcd".into(),
            Profile::Ascii => "ascii".into(),
        },
        address: addr.to_string(),
        terminals: config.terminals,
        mode: mode.into(),
        arrivals,
        target_rate_per_second: rate,
        in_flight_per_terminal: in_flight,
        mix: config.mix.describe(),
        duration_seconds: config.duration.as_secs_f64(),
        warmup_seconds: config.warmup.as_secs_f64(),
        seed: config.seed,
        timeout_ms: config.timeout.as_millis() as u64,
    };
    Ok((outcome, shape))
}

/// `/proc/loadavg`'s first three figures, for the report's record of the machine.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
