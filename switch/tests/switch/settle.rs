//! `ssn-switch settle ...` against a real switch: the bank's batch job settles a day, writes the
//! file, reconciles, and every step can be run again with the same result.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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

#[test]
fn the_batch_job_settles_writes_the_file_and_reconciles_idempotently() {
    let dir = std::env::temp_dir().join(format!("ssn-settle-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ssn-switch"))
        .args(["serve", "--demo", "--demo-cards", "2", "--log", "warn"])
        .args([
            "--bcd-listen",
            "127.0.0.1:0",
            "--ascii-listen",
            "127.0.0.1:0",
        ])
        .args(["--admin-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
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
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the switch announces its ports in time");
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let admin = ready["admin"].as_str().unwrap().to_string();

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
