//! `ssn-ledger verify --data-dir DIR`: recomputes the journal's hash chain and every balance,
//! checks every snapshot in force against the replay, and reports the first break. Exit status
//! 0 when intact, 1 when broken, 2 on bad usage.
//!
//! `ssn-ledger snapshot --data-dir DIR`: takes the next snapshot of the projection from the
//! newest one and the journal after it (safe beside a running switch: it only reads the
//! journal, and writes the snapshot atomically). Exit status 0 when done.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, data_dir) = match args.as_slice() {
        [command, flag, dir]
            if (command == "verify" || command == "snapshot") && flag == "--data-dir" =>
        {
            (command.as_str(), PathBuf::from(dir))
        }
        _ => {
            eprintln!("usage: ssn-ledger verify|snapshot --data-dir DIR");
            return Ok(ExitCode::from(2));
        }
    };
    if !data_dir.is_dir() {
        bail!("{} is not a directory", data_dir.display());
    }
    if command == "snapshot" {
        // The running ledger holds the history file (and takes snapshots itself).
        let history = std::sync::Arc::new(
            ssn_ledger::history::History::open(&data_dir)
                .context("opening history (is the switch running? it takes snapshots itself)")?,
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let taken = ssn_ledger::snapshot::take(
            &data_dir,
            Some((&history, i64::try_from(now).unwrap_or(i64::MAX))),
            &|| false,
        )
        .context("taking a snapshot")?;
        match taken.path {
            Some(path) => println!(
                "snapshot of {} entries ({} replayed): {}",
                taken.entries,
                taken.replayed,
                path.display()
            ),
            None => println!(
                "nothing new since the snapshot of {} entries",
                taken.entries
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    match ssn_ledger::verify(&data_dir) {
        Ok(report) => {
            println!(
                "ok: {} entries, {} accounts, funded {}, {} snapshots checked, last hash {}",
                report.entries,
                report.accounts,
                report.funded,
                report.snapshots,
                ssn_ledger::hex(&report.last_hash)
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
