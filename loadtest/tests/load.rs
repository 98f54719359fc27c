//! The harness against a real `ssn-switch`: seed a small city, run a few seconds of load in
//! each profile (open loop with Poisson arrivals, and closed loop), and check that every
//! request got an answer and the books agree with the journal. Then the same against the
//! baseline in one command. On Redis too, at `SSN_TEST_REDIS_URL` (`scripts/test.sh` starts
//! one; without it that test fails). Assertions are about correctness only; speed is in BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use ssn_ledger::{Ledger, LedgerConfig};

/// A data directory removed when the test ends, whatever happened.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("ssn-loadtest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn harness() -> &'static str {
    env!("CARGO_BIN_EXE_ssn-loadtest")
}

/// The `ssn-switch` binary of the same build, built if it is not there yet.
fn switch_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let dir = Path::new(harness())
            .parent()
            .expect("the harness has a directory");
        let binary = dir.join("ssn-switch");
        if !binary.exists() {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build.args(["build", "-p", "ssn-switch"]).current_dir(&root);
            if dir.ends_with("release") {
                build.arg("--release");
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "cargo build -p ssn-switch failed");
        }
        assert!(binary.exists(), "no switch at {}", binary.display());
        binary
    })
}

fn run(args: &[&str]) -> Output {
    Command::new(harness())
        .args(args)
        .output()
        .expect("ssn-loadtest runs")
}

fn seed(dir: &Path) {
    seed_sized(dir, "4", "8");
}

/// Seeds 200 cards, `merchants` E-Warong and `terminals` terminals.
fn seed_sized(dir: &Path, merchants: &str, terminals: &str) {
    let out = run(&[
        "seed",
        "--data-dir",
        dir.to_str().unwrap(),
        "--cards",
        "200",
        "--merchants",
        merchants,
        "--terminals",
        terminals,
    ]);
    assert!(
        out.status.success(),
        "seed failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the load with `extra` arguments and returns the JSON report, after checking the run
/// succeeded.
fn load(dir: &Path, name: &str, extra: &[&str]) -> Value {
    let json = dir.with_extension(format!("{name}.json"));
    let svg = dir.with_extension(format!("{name}.svg"));
    let mut args = vec![
        "run",
        "--data-dir",
        dir.to_str().unwrap(),
        "--switch-bin",
        switch_binary().to_str().unwrap(),
        "--seed",
        "42",
        "--timeout-ms",
        "15000",
        "--no-progress",
        "--json",
        json.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    let context = format!(
        "stdout:\n{}\nstderr:\n{}\nswitch log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("switch.log")).unwrap_or_default()
    );
    assert!(out.status.success(), "run {name} failed\n{context}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).expect("JSON report"))
        .unwrap_or_else(|e| panic!("report: {e}\n{context}"));
    let plot = std::fs::read_to_string(&svg).expect("SVG plot");
    assert!(
        plot.starts_with("<svg") && plot.contains("<polyline"),
        "{plot}"
    );
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&svg);
    let _ = std::fs::remove_file(svg.with_extension("baseline.svg"));
    report
}

/// Every request answered, nothing unexpected, and the books equal the journal.
fn assert_answered_and_books_agree(report: &Value) {
    let text = serde_json::to_string_pretty(report).unwrap();
    let sent = report["sent_total"].as_u64().unwrap();
    assert!(sent > 0, "nothing was sent\n{text}");
    assert_eq!(
        report["answered_total"].as_u64(),
        Some(sent),
        "every request answered\n{text}"
    );
    for key in [
        "timeouts",
        "late_answers",
        "unexpected_answers",
        "dropped_arrivals",
        "errors_total",
    ] {
        assert_eq!(report[key].as_u64(), Some(0), "{key}\n{text}");
    }
    let books = &report["books"];
    assert_eq!(books["ok"], true, "the books agree\n{text}");
    assert_eq!(books["mismatches_total"], 0, "{text}");
    assert!(
        books["journal_purchases"].as_u64().unwrap() > 0,
        "purchases reached the journal\n{text}"
    );
    assert_eq!(
        books["seen_total_minor"], books["journal_total_minor"],
        "{text}"
    );
    // The mix reached the switch's business rules, not only its happy path.
    let responses = report["responses"].as_object().unwrap();
    for code in ["00", "14", "57"] {
        assert!(responses.contains_key(code), "a {code} answer\n{text}");
    }
    assert!(
        report["approved_per_second"].as_f64().unwrap() > 0.0,
        "{text}"
    );
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            report["latency_ms"][key].as_f64().is_some(),
            "latency_ms.{key}\n{text}"
        );
        // The harness's send lag is a part of each answer's latency, so no higher.
        let lag = report["send_lag_ms"][key].as_f64().unwrap();
        assert!(
            lag <= report["latency_ms"][key].as_f64().unwrap(),
            "send_lag_ms.{key}\n{text}"
        );
    }
    assert_eq!(
        report["send_lag_ms"]["samples"], report["latency_ms"]["samples"],
        "{text}"
    );
}

#[test]
fn a_seeded_load_in_both_profiles_is_answered_in_full_and_the_books_agree() {
    let dir = TempDir::new("embedded");
    seed(&dir.0);
    let mix = "purchase=70,inquiry=5,wrong_pin=3,reversal=12,non_food=5,unknown_card=5";
    let bcd = load(
        &dir.0,
        "bcd",
        &[
            "--profile",
            "bcd",
            "--rate",
            "400",
            "--arrivals",
            "poisson",
            "--duration",
            "3",
            "--mix",
            mix,
        ],
    );
    assert_answered_and_books_agree(&bcd);
    assert_eq!(bcd["profile"], "bcd");
    assert!(
        bcd["sent"]["reversal"].as_u64().unwrap() > 0,
        "reversals were sent"
    );

    // The same city again, over ascii, closed loop: the second run's books are its own.
    let ascii = load(
        &dir.0,
        "ascii",
        &[
            "--profile",
            "ascii",
            "--closed",
            "--in-flight",
            "2",
            "--duration",
            "2",
            "--mix",
            mix,
        ],
    );
    assert_answered_and_books_agree(&ascii);
    assert_eq!(ascii["profile"], "ascii");
}

#[test]
fn one_command_measures_the_switch_and_the_baseline_side_by_side() {
    let dir = TempDir::new("both");
    seed(&dir.0);
    let report = load(
        &dir.0,
        "both",
        &[
            "--target",
            "both",
            "--profile",
            "bcd",
            "--rate",
            "200",
            "--arrivals",
            "constant",
            "--duration",
            "2",
        ],
    );
    assert_answered_and_books_agree(&report);
    let baseline = &report["baseline"];
    assert_eq!(baseline["target"], "baseline");
    assert_eq!(baseline["answered_total"], baseline["sent_total"]);
    assert_eq!(baseline["timeouts"], 0);
    // The baseline echoes: every answer is 00, and it has no books.
    assert_eq!(
        baseline["responses"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["00"]
    );
    assert!(baseline.get("books").is_none());
    assert!(report["ratio"]["requests_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_books_agree_on_redis_too() {
    // scripts/test.sh starts redis-server and sets this. Without it the test fails rather
    // than skip, like every Redis test of the workspace: a green run means Redis was tested.
    let url = std::env::var("SSN_TEST_REDIS_URL")
        .expect("SSN_TEST_REDIS_URL is not set: run ./scripts/test.sh, which starts redis-server");
    let dir = TempDir::new("redis");
    seed(&dir.0);
    let prefix = format!("ssn-loadtest-test-{}", std::process::id());
    let report = load(
        &dir.0,
        "redis",
        &[
            "--profile",
            "bcd",
            "--rate",
            "300",
            "--duration",
            "3",
            "--redis-url",
            &url,
            "--redis-key-prefix",
            &prefix,
        ],
    );
    assert_answered_and_books_agree(&report);
}

#[test]
fn an_approval_of_a_request_meant_to_be_declined_still_counts_in_the_books() {
    // A wrong PIN can be rightly approved (a PVV is shared by about one PIN in 10,000): the
    // books count what the terminals were answered, not what they meant. Here every card's
    // "wrong" PIN is its right one, so every wrong-PIN purchase is approved.
    let dir = TempDir::new("meant");
    seed(&dir.0);
    let city_path = dir.0.join("loadtest-city.json");
    let mut city: Value = serde_json::from_slice(&std::fs::read(&city_path).unwrap()).unwrap();
    for card in city["cards"].as_array_mut().unwrap() {
        card["wrong_pin"] = card["pin"].clone();
    }
    std::fs::write(&city_path, serde_json::to_vec(&city).unwrap()).unwrap();
    let report = load(
        &dir.0,
        "meant",
        &[
            "--profile",
            "bcd",
            "--rate",
            "200",
            "--duration",
            "2",
            "--mix",
            "wrong_pin=1",
        ],
    );
    let text = serde_json::to_string_pretty(&report).unwrap();
    assert_eq!(report["answered_total"], report["sent_total"], "{text}");
    let codes: Vec<&String> = report["responses"].as_object().unwrap().keys().collect();
    assert_eq!(codes, vec!["00"], "{text}");
    let books = &report["books"];
    assert!(books["journal_purchases"].as_u64().unwrap() > 0, "{text}");
    assert_eq!(books["ok"], true, "{text}");
    assert_eq!(
        books["seen_total_minor"], books["journal_total_minor"],
        "{text}"
    );
}

/// A one-second purchase sweep over `rates` with a fixed seed, its JSON to `json`.
fn sweep_args<'a>(rates: &'a str, json: &'a Path) -> Vec<&'a str> {
    vec![
        "run",
        "--switch-bin",
        switch_binary().to_str().unwrap(),
        "--seed",
        "42",
        "--no-progress",
        "--duration",
        "1",
        "--mix",
        "purchase=1",
        "--rates",
        rates,
        "--json",
        json.to_str().unwrap(),
    ]
}

#[test]
fn a_sweep_runs_each_rate_and_names_the_highest_that_kept_the_bar() {
    let dir = TempDir::new("sweep");
    seed(&dir.0);
    let sweep = |rates: &str, p99_max_ms: &str, target: &str| {
        let json = dir.0.with_extension("sweep.json");
        let mut args = sweep_args(rates, &json);
        args.extend([
            "--data-dir",
            dir.0.to_str().unwrap(),
            "--p99-max-ms",
            p99_max_ms,
            "--target",
            target,
        ]);
        let out = run(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "sweep {rates} failed\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let _ = std::fs::remove_file(&json);
        (report, stdout)
    };
    // A bar every rate keeps: the highest rate is named, each step checked its own books.
    let (report, stdout) = sweep("100,200", "10000", "switch");
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{report}");
    for (step, rate) in steps.iter().zip([100.0, 200.0]) {
        assert_eq!(step["rate"], rate);
        assert_eq!(step["meets"], true, "{step}");
        assert_eq!(step["report"]["books"]["ok"], true, "{step}");
        assert!(
            step["report"]["books"]["journal_purchases"]
                .as_u64()
                .unwrap()
                > 0
        );
    }
    assert_eq!(report["best"]["rate"], 200.0, "{report}");
    assert!(
        stdout.contains("highest rate that kept the bar: 200/s"),
        "{stdout}"
    );
    // A bar no answer can keep (a microsecond): no rate is named, and that is no failure.
    let (report, stdout) = sweep("100", "0.001", "switch");
    assert_eq!(report["steps"][0]["meets"], false, "{report}");
    assert_eq!(report["steps"][0]["report"]["books"]["ok"], true);
    assert!(report["best"].is_null(), "{report}");
    assert!(stdout.contains("no rate kept the bar"), "{stdout}");
    // Both targets: every rate against the switch and then the baseline, the highest of each,
    // and their ratio.
    let (report, stdout) = sweep("100,200", "10000", "both");
    let steps = report["steps"].as_array().unwrap();
    let order: Vec<(String, f64)> = steps
        .iter()
        .map(|s| {
            (
                s["target"].as_str().unwrap().to_string(),
                s["rate"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("switch", 100.0),
        ("baseline", 100.0),
        ("switch", 200.0),
        ("baseline", 200.0),
    ];
    assert_eq!(order, expected.map(|(t, r)| (t.to_string(), r)), "{report}");
    for step in steps {
        assert_eq!(step["meets"], true, "{step}");
        assert_eq!(step["report"]["target"], step["target"], "{step}");
    }
    assert_eq!(report["best"]["rate"], 200.0, "{report}");
    assert_eq!(report["baseline_best"]["rate"], 200.0, "{report}");
    assert_eq!(report["ratio"], 1.0, "{report}");
    assert!(
        stdout.contains("switch / baseline at p99 within 10000 ms: 1 (200/s / 200/s)"),
        "{stdout}"
    );
}

#[test]
fn fresh_from_starts_every_step_on_a_copy_of_the_city_and_leaves_the_city_alone() {
    let city = TempDir::new("fresh-city");
    seed(&city.0);
    let journal = |dir: &Path| std::fs::read(dir.join("journal.log")).unwrap();
    let seeded = journal(&city.0);
    let work = TempDir::new("fresh-work");
    let json = work.0.with_extension("json");
    let sweep = |extra: &[&str]| {
        let mut args = sweep_args("100,100", &json);
        args.extend(["--fresh-from", city.0.to_str().unwrap()]);
        args.extend_from_slice(extra);
        run(&args)
    };
    // The first step copies the city into a directory that does not exist yet; the second
    // replaces that copy, marker and first step's purchases included.
    let out = sweep(&["--data-dir", work.0.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    for step in report["steps"].as_array().unwrap() {
        assert_eq!(step["report"]["books"]["ok"], true, "{step}");
    }
    // The switch ran on the copy: the city's journal is as seeded, the copy's starts as the
    // city's and holds the last step's purchases alone (the first step's went with the copy
    // the second step replaced).
    assert_eq!(journal(&city.0), seeded, "the city itself was not touched");
    let after = journal(&work.0);
    assert!(
        after.len() > seeded.len(),
        "the steps journaled on the copy"
    );
    assert_eq!(
        &after[..seeded.len()],
        &seeded[..],
        "the copy starts as the city"
    );
    let purchases = |dir: &Path| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let ledger = runtime
            .block_on(Ledger::open(LedgerConfig::embedded(dir)))
            .unwrap();
        ledger.state().purchases.len() as u64
    };
    let last = &report["steps"][1]["report"];
    let journaled = purchases(&work.0);
    assert_eq!(purchases(&city.0), 0, "a seeded city has no purchases");
    assert!(
        journaled >= last["books"]["journal_purchases"].as_u64().unwrap()
            && journaled <= last["sent_total"].as_u64().unwrap(),
        "{journaled} purchases in the copy, the last step sent {}",
        last["sent_total"]
    );

    // A stale file in the working copy is gone after the next run: it was replaced.
    let marker = work.0.join("stale-marker");
    std::fs::write(&marker, b"from an earlier run").unwrap();
    let out = sweep(&["--data-dir", work.0.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(
        !marker.exists(),
        "the data directory was replaced by a fresh copy"
    );
    let _ = std::fs::remove_file(&json);

    // Directories that are not a seeded city, or inside the city, are refused, untouched.
    let elsewhere = TempDir::new("fresh-elsewhere");
    std::fs::create_dir_all(&elsewhere.0).unwrap();
    std::fs::write(elsewhere.0.join("precious"), b"keep").unwrap();
    for (dir, says) in [
        (elsewhere.0.clone(), "is not a seeded city"),
        (city.0.clone(), "neither inside the other"),
        (city.0.join("inside"), "neither inside the other"),
    ] {
        let out = sweep(&["--data-dir", dir.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", dir.display());
        assert!(stderr.contains(says), "{}: {stderr}", dir.display());
    }
    assert!(elsewhere.0.join("precious").exists());
    assert_eq!(journal(&city.0), seeded);
}

/// A seeded city starts as a running switch would have left it: what leaves the working set at
/// once (the disbursement's card rows) is already in history, with a snapshot of the rest, so
/// a run's first seconds do not pay for moving it.
#[test]
fn a_seeded_city_has_nothing_left_to_move() {
    let city = TempDir::new("seeded");
    seed(&city.0);
    let snapshots = std::fs::read_dir(city.0.join("snapshots")).map_or(0, |d| d.count());
    assert_eq!(snapshots, 1, "a snapshot of the seeded city");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ledger = runtime
        .block_on(Ledger::open(LedgerConfig::embedded(city.0.clone())))
        .unwrap();
    let now = ssn_ledger::window::clock_now();
    let moved = ledger
        .move_to_history(now, ssn_ledger::window::WORKING_SET_PURCHASES_MAX)
        .unwrap();
    assert_eq!(moved, 0, "rows the first move of a run would have moved");
}

/// `history` writes purchases through the ledger's own calls: every one is in the journal,
/// approved, spread over the days asked, and the journal verifies.
#[test]
fn history_writes_approved_purchases_the_journal_holds() {
    const PURCHASES: u64 = 3_000;
    let city = TempDir::new("history");
    seed(&city.0);
    let out = run(&[
        "history",
        "--data-dir",
        city.0.to_str().unwrap(),
        "--purchases",
        &PURCHASES.to_string(),
        "--days",
        "30",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!("{PURCHASES} approved, 0 declined")),
        "{stdout}"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ledger = runtime
        .block_on(Ledger::open(LedgerConfig::embedded(city.0.clone())))
        .unwrap();
    // Every purchase is in the log, from history or the working set; only the last days'
    // stay in memory, and every day is settled.
    let mut rows = Vec::new();
    loop {
        let more = ledger.log_rows(rows.len() as u64, 1_000).unwrap();
        if more.is_empty() {
            break;
        }
        rows.extend(more);
    }
    let purchases: Vec<_> = rows
        .iter()
        .filter_map(|row| ledger.purchase_by_id(&row.id).unwrap())
        .filter(|p| p.record.response.rrn.as_str().starts_with('H'))
        .collect();
    assert_eq!(purchases.len() as u64, PURCHASES);
    let days: std::collections::BTreeSet<_> = purchases.iter().map(|p| p.record.day).collect();
    assert!(days.len() >= 29, "{} days", days.len());
    assert!(
        (ledger.state().purchases.len() as u64) < PURCHASES / 5,
        "{} purchases in memory",
        ledger.state().purchases.len()
    );
    for day in &days {
        assert!(ledger.settlement(*day).is_some(), "{day} not settled");
    }
    // The books check of a run counts what the journal holds, not what stayed in memory: a
    // run longer than the working set is checked whole.
    let mut keys = ssn_loadtest::books::RunKeys::default();
    for purchase in &purchases {
        let key = &purchase.record.key;
        // The harness's terminals are `LT` and a number.
        let index = key.terminal.as_str()[2..].parse::<u32>().unwrap();
        keys.terminal(key.terminal.as_str(), index);
        let digits = |s: &str| ssn_loadtest::books::digits_value(s.as_bytes()).unwrap();
        keys.insert(
            index,
            u32::try_from(digits(key.stan.as_str())).unwrap(),
            digits(key.transmitted.as_str()),
        );
    }
    drop(ledger);
    let books = ssn_loadtest::books::journaled(&city.0, &keys).unwrap();
    assert_eq!(books.purchases, PURCHASES);
    let amount: i64 = purchases.iter().map(|p| p.record.amount.minor()).sum();
    assert_eq!(books.per_card.values().sum::<i64>(), amount);
    ssn_ledger::verify(&city.0).unwrap();
}

/// `run --misuse`: honest traffic alone raises no alert; then each injectable pattern,
/// injected among honest traffic on an E-Warong of its own, is detected by an alert of its
/// rule (recall 1), and no alert detects nothing (precision 1). Small and bounded: four honest
/// terminals at a cashier's pace (one purchase each two seconds, under every rule's
/// threshold), patterns half a second a request.
#[test]
fn injected_misuse_is_detected_and_honest_traffic_raises_nothing() {
    let dir = TempDir::new("misuse");
    // Twelve E-Warong with two terminals each; the load uses the first four terminals, so
    // eight E-Warong see only the injected misuse.
    seed_sized(&dir.0, "12", "24");
    let honest = [
        "--terminals",
        "4",
        "--rate",
        "2",
        "--arrivals",
        "constant",
        "--duration",
        "8",
        "--mix",
        "purchase=1",
    ];
    let alone = load(
        &dir.0,
        "honest",
        &[&honest[..], &["--misuse", "none"]].concat(),
    );
    let text = serde_json::to_string_pretty(&alone["misuse"]).unwrap();
    assert_eq!(alone["misuse"]["alerts_false"], 0, "{text}");
    assert_eq!(
        alone["misuse"]["rules"].as_array().unwrap().len(),
        0,
        "{text}"
    );

    let report = load(
        &dir.0,
        "misuse",
        &[&honest[..], &["--misuse", "all"]].concat(),
    );
    let misuse = &report["misuse"];
    let text = serde_json::to_string_pretty(misuse).unwrap();
    assert_eq!(misuse["alerts_false"], 0, "{text}");
    let rules = misuse["rules"].as_array().unwrap();
    let names: Vec<&str> = rules.iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "card_collection",
            "fixed_package",
            "pin_guessing",
            "split_purchase"
        ],
        "{text}"
    );
    for rule in rules {
        assert_eq!(rule["injected"], 1, "{text}");
        assert_eq!(rule["detected"], 1, "{text}");
        assert_eq!(rule["recall"], 1.0, "{text}");
        assert_eq!(rule["precision"], 1.0, "{text}");
        assert!(rule["latency_s_max"].as_f64().is_some(), "{text}");
    }
    assert_eq!(report["books"]["ok"], true);

    // A rule the harness cannot inject is refused, saying why.
    let refused = run(&[
        "run",
        "--data-dir",
        dir.0.to_str().unwrap(),
        "--rate",
        "1",
        "--misuse",
        "dormant_drained",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not injected by the harness"), "{stderr}");
}
