//! `ssn-switch settle ...`: the settlement operations for the bank's batch jobs, over the
//! running switch's admin API (the embedded store has one writer: the serving process). Every
//! operation is idempotent on the server, so a job that died at any point is simply run again:
//! `run` answers the settlement made first, `file` writes the same bytes (to a temporary file
//! renamed into place, so a crash never leaves half a file), `confirm` accepts the same answers
//! again.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

/// How long one call to the admin API may take (a settlement of a big city takes seconds).
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Args)]
pub struct SettleArgs {
    /// The admin API of the running switch.
    #[arg(long, env = "SSN_ADMIN_URL", default_value = "http://127.0.0.1:8080")]
    admin_url: String,
    /// A `bank` (or `admin`) token. Environment only: a flag would show it in the process list.
    #[arg(skip = std::env::var("SSN_ADMIN_TOKEN").ok())]
    token: Option<String>,
    #[command(subcommand)]
    command: SettleCommand,
}

#[derive(Subcommand)]
enum SettleCommand {
    /// Settle a business date (after its cut-over): exactly the purchases authorized on it,
    /// net of reversals and adjustments, whenever it runs; prints the settlement as JSON.
    Run {
        /// WITA business date, YYYY-MM-DD.
        #[arg(long)]
        business_date: String,
    },
    /// Write the bank file of a settled day.
    File {
        /// WITA business date, YYYY-MM-DD.
        #[arg(long)]
        business_date: String,
        /// Where to write it (atomically); standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Record the bank's confirmation file of a settled day.
    Confirm {
        /// WITA business date, YYYY-MM-DD.
        #[arg(long)]
        business_date: String,
        /// The bank's file: `merchant id|net amount|PAID or REJECTED|bank reference` per line.
        #[arg(long)]
        file: PathBuf,
    },
    /// Print the three-way reconciliation of a settled day as JSON; exit 1 on differences.
    Reconcile {
        /// WITA business date, YYYY-MM-DD.
        #[arg(long)]
        business_date: String,
    },
}

pub fn settle(args: SettleArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: SettleArgs) -> anyhow::Result<ExitCode> {
    let Some(token) = args.token.filter(|t| !t.trim().is_empty()) else {
        bail!("SSN_ADMIN_TOKEN must hold a bank or admin token");
    };
    let base = format!("{}/api/v1", args.admin_url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let auth = format!("Bearer {}", token.trim());
    let (request, what) = match &args.command {
        SettleCommand::Run { business_date } => (
            client
                .post(format!("{base}/settlements"))
                .json(&serde_json::json!({ "business_date": business_date })),
            "settling",
        ),
        SettleCommand::File { business_date, .. } => (
            client.get(format!("{base}/settlements/{business_date}/file")),
            "fetching the settlement file",
        ),
        SettleCommand::Confirm {
            business_date,
            file,
        } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            (
                client
                    .post(format!("{base}/settlements/{business_date}/confirmation"))
                    .header("content-type", "text/plain")
                    .body(text),
                "recording the confirmation",
            )
        }
        SettleCommand::Reconcile { business_date } => (
            client.get(format!(
                "{base}/reconciliation?business_date={business_date}"
            )),
            "reconciling",
        ),
    };
    let response = request
        .header("authorization", auth)
        .send()
        .await
        .with_context(|| format!("{what}: calling {base}"))?;
    let status = response.status();
    let body = response.text().await.context("reading the answer")?;
    if !status.is_success() {
        bail!("{what}: {status}: {body}");
    }
    match args.command {
        SettleCommand::File {
            out: Some(path), ..
        } => {
            let tmp = path.with_extension("partial");
            std::fs::write(&tmp, &body).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("renaming {} into place", tmp.display()))?;
            eprintln!("wrote {} ({} bytes)", path.display(), body.len());
            Ok(ExitCode::SUCCESS)
        }
        SettleCommand::Reconcile { .. } => {
            println!("{body}");
            let balanced = serde_json::from_str::<serde_json::Value>(&body)
                .map(|v| v["status"] == "balanced")
                .unwrap_or(false);
            Ok(if balanced {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        _ => {
            print!("{body}");
            if !body.ends_with('\n') {
                println!();
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
