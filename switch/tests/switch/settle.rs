//! `ssn-switch settle ...` against a real switch: the bank's batch job settles a day, writes the
//! file, reconciles, and every step can be run again with the same result; over HTTPS and
//! mutual TLS when the admin listener speaks TLS.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "settle-test-admin-token";

fn settle(admin: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ssn-switch"))
        .arg("settle")
        .args(args)
        .env("SSN_ADMIN_URL", format!("http://{admin}"))
        .env("SSN_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("ssn-switch settle runs")
}

/// A demo switch on `dir` with `more` arguments, and its admin address once it listens.
fn start(dir: &Path, more: &[&OsStr]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ssn-switch"))
        .args(["serve", "--demo", "--demo-cards", "2", "--log", "warn"])
        .args([
            "--bcd-listen",
            "127.0.0.1:0",
            "--ascii-listen",
            "127.0.0.1:0",
        ])
        .args(["--admin-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(more)
        .env("SSN_BOOTSTRAP_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssn-switch starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the switch did not announce its ports in time");
    };
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    (child, ready["admin"].as_str().unwrap().to_string())
}

/// Yesterday in WITA: a business day past its cut-over.
fn yesterday() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    ssn_ledger::Day::wita_of_unix_seconds(now - 86_400).to_string()
}

/// With TLS and mutual TLS on the admin listener, the batch job settles over HTTPS trusting the
/// switch's certificate and presenting the bank's; trusting another certificate, presenting
/// none, speaking plain HTTP to it, or leaving out what to trust are each refused with a clear
/// error and settle nothing.
#[test]
fn the_batch_job_settles_over_https_with_mutual_tls() {
    let dir = std::env::temp_dir().join(format!("ssn-settle-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let certificate = |name: &str| ssn_ledger::testing::self_signed_certificate(&dir, name);
    let (switch_cert, switch_key) = certificate("switch");
    let (bank_cert, bank_key) = certificate("bank");
    let (other_cert, _) = certificate("other");
    let (mut child, admin) = start(
        &dir.join("data"),
        &[
            OsStr::new("--tls-cert"),
            switch_cert.as_os_str(),
            OsStr::new("--tls-key"),
            switch_key.as_os_str(),
            OsStr::new("--admin-client-certs"),
            bank_cert.as_os_str(),
        ],
    );
    let yesterday = yesterday();
    let run = |url: String, tls: &[&OsStr]| {
        let output = Command::new(env!("CARGO_BIN_EXE_ssn-switch"))
            .arg("settle")
            .args(tls)
            .args(["run", "--business-date", &yesterday])
            .env("SSN_ADMIN_URL", url)
            .env("SSN_ADMIN_TOKEN", TOKEN)
            .output()
            .expect("ssn-switch settle runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output, stderr)
    };
    let https = format!("https://{admin}");
    fn trust(ca: &Path) -> [&OsStr; 2] {
        [OsStr::new("--ca-cert"), ca.as_os_str()]
    }
    let bank = [
        OsStr::new("--client-cert"),
        bank_cert.as_os_str(),
        OsStr::new("--client-key"),
        bank_key.as_os_str(),
    ];

    for (what, url, args, expect) in [
        (
            "trusting another certificate",
            https.clone(),
            [&trust(&other_cert)[..], &bank[..]].concat(),
            "not one --ca-cert trusts",
        ),
        (
            "without the bank's certificate",
            https.clone(),
            trust(&switch_cert).to_vec(),
            "certificaterequired",
        ),
        (
            "without --ca-cert",
            https.clone(),
            bank.to_vec(),
            "needs --ca-cert",
        ),
        (
            "in plain HTTP",
            format!("http://{admin}"),
            Vec::new(),
            "calling http://",
        ),
    ] {
        let (output, stderr) = run(url, &args);
        assert!(!output.status.success(), "settled {what}");
        assert!(stderr.to_lowercase().contains(expect), "{what}: {stderr}");
    }

    let (settled, stderr) = run(
        https.clone(),
        &[&trust(&switch_cert)[..], &bank[..]].concat(),
    );
    assert!(settled.status.success(), "{stderr}");
    let settlement: serde_json::Value = serde_json::from_slice(&settled.stdout).unwrap();
    assert_eq!(settlement["business_date"], yesterday.as_str());
    // Run again over HTTPS: the same settlement (the refusals above settled nothing first).
    let (again, _) = run(https, &[&trust(&switch_cert)[..], &bank[..]].concat());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&again.stdout).unwrap(),
        settlement
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_batch_job_settles_writes_the_file_and_reconciles_idempotently() {
    let dir = std::env::temp_dir().join(format!("ssn-settle-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut child, admin) = start(&dir, &[]);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let yesterday = ssn_ledger::Day::wita_of_unix_seconds(now - 86_400).to_string();
    let today = ssn_ledger::Day::wita_of_unix_seconds(now).to_string();

    // Today has not reached its cut-over: refused, with the API's reason.
    let early = settle(&admin, &["run", "--business-date", &today]);
    assert!(!early.status.success());
    assert!(String::from_utf8_lossy(&early.stderr).contains("422"));

    let first = settle(&admin, &["run", "--business-date", &yesterday]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let settlement: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(settlement["business_date"], yesterday.as_str());
    assert_eq!(settlement["total_net_amount"], "0.00");
    // Run again (a job restarted after a crash): the same settlement.
    let again = settle(&admin, &["run", "--business-date", &yesterday]);
    assert!(again.status.success());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&again.stdout).unwrap(),
        settlement
    );

    let out = dir.join("bank-file.txt");
    for _ in 0..2 {
        let file = settle(
            &admin,
            &[
                "file",
                "--business-date",
                &yesterday,
                "--out",
                out.to_str().unwrap(),
            ],
        );
        assert!(
            file.status.success(),
            "{}",
            String::from_utf8_lossy(&file.stderr)
        );
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("H|SSN-SAMARINDA|{yesterday}|1|")),
        "{text}"
    );
    // SHA-256 of no detail lines at all; no adjustment, nothing carried.
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(
        lines.last().unwrap(),
        &format!("T|0|0.00|{empty}|0|0.00|0.00")
    );
    assert!(!dir.join("bank-file.partial").exists());

    let reconcile = settle(&admin, &["reconcile", "--business-date", &yesterday]);
    assert!(
        reconcile.status.success(),
        "{}",
        String::from_utf8_lossy(&reconcile.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&reconcile.stdout).unwrap();
    assert_eq!(report["status"], "balanced");

    // A confirmation with no line is refused; no token is refused before any call.
    let confirmation = dir.join("confirmation.txt");
    std::fs::write(&confirmation, "\n").unwrap();
    let refused = settle(
        &admin,
        &[
            "confirm",
            "--business-date",
            &yesterday,
            "--file",
            confirmation.to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    let no_token = Command::new(env!("CARGO_BIN_EXE_ssn-switch"))
        .args(["settle", "run", "--business-date", &yesterday])
        .env("SSN_ADMIN_URL", format!("http://{admin}"))
        .env_remove("SSN_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!no_token.status.success());

    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
