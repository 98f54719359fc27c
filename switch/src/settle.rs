//! `ssn-switch settle ...`: the settlement operations for the bank's batch jobs, over the
//! running switch's admin API (the embedded store has one writer: the serving process), in the
//! clear or over HTTPS (mutual TLS too) when the admin listener speaks TLS. Every
//! operation is idempotent on the server, so a job that died at any point is simply run again:
//! `run` answers the settlement made first, `file` writes the same bytes (to a temporary file
//! renamed into place, so a crash never leaves half a file), `confirm` accepts the same answers
//! again.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

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
    /// For an `https://` admin URL (required there): the certificates to trust, PEM: the
    /// switch's own certificate or the CA that issued it.
    #[arg(long, env = "SSN_ADMIN_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// For an admin listener with mutual TLS: the certificate to present (PEM).
    #[arg(long, env = "SSN_ADMIN_CLIENT_CERT", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// The private key of `--client-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SSN_ADMIN_CLIENT_KEY", requires = "client_cert")]
    client_key: Option<PathBuf>,
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
    let Some(token) = args.token.as_deref().filter(|t| !t.trim().is_empty()) else {
        bail!("SSN_ADMIN_TOKEN must hold a bank or admin token");
    };
    let api = AdminApi::new(&args)?;
    let auth = format!("Bearer {}", token.trim());
    let (method, path, body, what) = match &args.command {
        SettleCommand::Run { business_date } => (
            Method::POST,
            "/settlements".to_string(),
            Some((
                "application/json",
                serde_json::json!({ "business_date": business_date }).to_string(),
            )),
            "settling",
        ),
        SettleCommand::File { business_date, .. } => (
            Method::GET,
            format!("/settlements/{business_date}/file"),
            None,
            "fetching the settlement file",
        ),
        SettleCommand::Confirm {
            business_date,
            file,
        } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            (
                Method::POST,
                format!("/settlements/{business_date}/confirmation"),
                Some(("text/plain", text)),
                "recording the confirmation",
            )
        }
        SettleCommand::Reconcile { business_date } => (
            Method::GET,
            format!("/reconciliation?business_date={business_date}"),
            None,
            "reconciling",
        ),
    };
    let (status, body) = tokio::time::timeout(CALL_TIMEOUT, api.call(method, &path, &auth, body))
        .await
        .with_context(|| {
            format!(
                "{what}: no answer from {} within {CALL_TIMEOUT:?}",
                api.base
            )
        })?
        .with_context(|| format!("{what}: calling {}", api.base))?;
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

/// The admin API of the running switch, reached with one HTTP/1.1 request per connection: in
/// the clear for `http://`, over TLS (rustls with the ring provider, given explicitly, as the
/// listeners have it) for `https://`. The TLS is this client's own, not reqwest's: enabling a
/// TLS feature of reqwest would switch it on for every reqwest client of the workspace, which
/// then need a process-wide crypto provider (commit a2a96e2).
struct AdminApi {
    /// The URL as given, for error messages.
    base: String,
    /// `host:port`, for the connection and the `Host` header.
    authority: String,
    /// The path the API's own paths go under (`/api/v1` after any prefix of the URL's).
    prefix: String,
    /// For `https://`: the TLS connector and the name the certificate must carry.
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl AdminApi {
    fn new(args: &SettleArgs) -> anyhow::Result<AdminApi> {
        let base = args.admin_url.trim_end_matches('/').to_string();
        let uri: Uri = base
            .parse()
            .with_context(|| format!("--admin-url {base} is not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("--admin-url {base} must start with http:// or https://"),
        };
        let Some(host) = uri.host().map(|h| h.trim_matches(['[', ']']).to_string()) else {
            bail!("--admin-url {base} names no host");
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = match host.contains(':') {
            true => format!("[{host}]:{port}"),
            false => format!("{host}:{port}"),
        };
        let client = match (&args.client_cert, &args.client_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            _ => None,
        };
        let tls = match (https, &args.ca_cert) {
            (true, Some(ca)) => {
                let name = ServerName::try_from(host.clone())
                    .with_context(|| format!("{host} is not a name a certificate can carry"))?;
                Some((ssn_switch::net::tls::connector(ca, client)?, name))
            }
            (true, None) => bail!(
                "an https:// admin URL needs --ca-cert: the switch's certificate or its CA (PEM)"
            ),
            (false, None) if client.is_none() => None,
            (false, _) => bail!("--ca-cert and --client-cert are for an https:// admin URL"),
        };
        Ok(AdminApi {
            prefix: format!("{}/api/v1", uri.path().trim_end_matches('/')),
            base,
            authority,
            tls,
        })
    }

    /// Sends one request (`path` under `/api/v1`, with its query) and reads the whole answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        body: Option<(&str, String)>,
    ) -> anyhow::Result<(StatusCode, String)> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(HOST, &self.authority)
            .header(AUTHORIZATION, authorization);
        if let Some((content_type, _)) = &body {
            request = request.header(CONTENT_TYPE, *content_type);
        }
        let request = request
            .body(Full::new(Bytes::from(
                body.map(|(_, b)| b).unwrap_or_default(),
            )))
            .context("building the request")?;
        let tcp = TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("connecting to {}", self.authority))?;
        let (status, body) =
            match &self.tls {
                None => exchange(tcp, request).await?,
                Some((connector, name)) => {
                    let stream = connector.connect(name.clone(), tcp).await.with_context(|| {
                    format!(
                        "TLS with {}: the switch's certificate is not one --ca-cert trusts, \
                         or it refused this client",
                        self.authority
                    )
                })?;
                    exchange(stream, request).await?
                }
            };
        let body = String::from_utf8(body.to_vec()).context("the answer is not UTF-8")?;
        Ok((status, body))
    }
}

/// One HTTP/1.1 request and its whole answer over `stream`.
async fn exchange<S>(
    stream: S,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("the HTTP handshake")?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .context("sending the request")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    drop(sender);
    driver.abort();
    Ok((status, body))
}
