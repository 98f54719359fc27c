//! `ssn-ledger verify --data-dir DIR`: recomputes the journal's hash chain and every balance,
//! and reports the first break. Exit status 0 when intact, 1 when broken, 2 on bad usage.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data_dir = match args.as_slice() {
        [command, flag, dir] if command == "verify" && flag == "--data-dir" => PathBuf::from(dir),
        _ => {
            eprintln!("usage: ssn-ledger verify --data-dir DIR");
            return Ok(ExitCode::from(2));
        }
    };
    if !data_dir.is_dir() {
        bail!("{} is not a directory", data_dir.display());
    }
    match ssn_ledger::verify(&data_dir) {
        Ok(report) => {
            println!(
                "ok: {} entries, {} accounts, funded {}, last hash {}",
                report.entries,
                report.accounts,
                report.funded,
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
