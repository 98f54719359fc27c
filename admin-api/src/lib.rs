//! # ssn-admin-api: the agencies' HTTP/JSON API
//!
//! `../shared/spec/admin-api.md` is the contract; this crate is its implementation on axum,
//! served by `ssn-switch serve` on `--admin-listen` next to the ISO 8583 listeners. It is a thin
//! layer over [`ssn_ledger::Ledger`]: every write is a ledger call (journal) or an all-or-nothing
//! list of registry ops, and every write carries its audit line.
//!
//! ## Code map
//!
//! - `support`: the caller ([`Caller`]) and role checks, extractors that answer every malformed
//!   body, query or path with the JSON 400, money strings, WITA times, paging, masking, audit.
//! - `error`: [`ApiError`], the one error shape, and the mapping from ledger errors.
//! - `nik`: NIK shape and date checks.
//! - `routes::*`: one module per resource of the spec; each handler checks the role first,
//!   then the input, then acts.
//! - `openapi`: the document at `/api/v1/openapi.json`, generated from the handlers'
//!   annotations, with the error responses and bearer security added to every operation.
//!
//! ## Invariants
//!
//! - Role before body: a token that may not do something gets 403 whatever it sent.
//! - No 500 for bad input: every library error is mapped to 400/404/409/422/503 by kind
//!   ([`ApiError`]'s `From` impls); 500 means a bug or a broken store.
//! - Personal data (NIK, KK, name, address) leaves in full only for `admin`, `diskominfo`,
//!   `dinsos` and `walikota`; a full PAN only in the answer that issues a card; a PIN only in
//!   the answer that sets it; a token's secret only in the answer that creates it.
//! - Registry changes are written with their audit line in the same transaction; journal
//!   changes (funding, disbursement, replacement) are audited right after, with the outcome.

mod console;
mod error;
mod nik;
mod openapi;
mod report;
mod report_alerts;
mod report_html;
mod routes;
pub use routes::reports::{
    PUBLIC_SUMMARY_MAX_AGE_SECONDS, PublicSummaryCache, SEMESTER_REPORT_MAX_AGE_SECONDS,
};
mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use metrics_exporter_prometheus::PrometheusHandle;
use ssn_hsm::{SoftHsm, WrappedKey};
use ssn_ledger::{ApiToken, Ledger, RegistryOp, RegistryRecord, Role};

pub use error::{ApiError, ApiResult, ErrorBody};
pub use nik::{NikFacts, check_against as check_nik_against, parse as parse_nik};
pub use openapi::openapi;
pub use support::{
    AUTH_FAILURE_DELAY, AUTH_FAILURE_DELAY_MAX, AUTH_FAILURE_WINDOW_SECONDS, AUTH_FAILURES_FREE,
    Caller, FailedAuthentications, PAGE_SIZE_MAX, token_hash,
};

/// Largest request body except a CSV import.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Largest CSV import body (about 300,000 rows of the Portal Data SSN's export).
pub const IMPORT_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Longest a request may take before it is answered 503 (imports of 100,000 rows take
/// seconds; this bounds a stuck store).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Settings of the API.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// Issuer BIN: the first six digits of every card number.
    pub bin: String,
    /// Months a new card is valid (expiry `YYMM` counted from the issue month).
    pub card_validity_months: u32,
    /// Digits of a generated PIN (4 to 6).
    pub pin_digits: usize,
    /// The institution named in the settlement file's header.
    pub institution: String,
    /// Whether the console's cookies are marked `Secure` (the admin listener speaks TLS).
    pub console_secure_cookie: bool,
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            bin: "604872".into(),
            card_validity_months: 60,
            pin_digits: 6,
            institution: "SSN-SAMARINDA".into(),
            console_secure_cookie: false,
        }
    }
}

/// The clock, injectable for tests (UTC seconds).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Everything a handler needs.
#[derive(Clone)]
pub struct AdminState {
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// Key and PIN operations (PVVs, terminal keys under the master key).
    pub hsm: Arc<SoftHsm>,
    /// The issuer's PIN verification key, wrapped.
    pub pvk: WrappedKey,
    /// Settings.
    pub config: AdminConfig,
    /// Prometheus rendering of the process's metrics, when a recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// The clock.
    pub clock: Clock,
    /// Locks that serialize what a compare-and-set alone cannot (one live card per person).
    pub locks: Arc<Locks>,
    /// The public summary as last made, served again for a few seconds.
    pub public_summary: Arc<routes::reports::PublicSummaryCache>,
    /// Semester reports as last made, served again for a few seconds.
    pub semester_reports: Arc<routes::reports::SemesterReports>,
    /// Failed authentications per client address (served with `ConnectInfo`).
    pub failed_authentications: Arc<support::FailedAuthentications>,
}

/// Process-wide locks of the API. With several switch nodes (ScyllaDB) they are per node:
/// card issuing then relies on staff issuing from one node, which the README states.
#[derive(Debug, Default)]
pub struct Locks {
    /// Held while a card is issued or replaced.
    pub cards: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// State with the system clock, no metrics handle and default locks.
    pub fn new(
        ledger: Arc<Ledger>,
        hsm: Arc<SoftHsm>,
        pvk: WrappedKey,
        config: AdminConfig,
    ) -> AdminState {
        AdminState {
            ledger,
            hsm,
            pvk,
            config,
            metrics: None,
            clock: system_clock(),
            locks: Arc::default(),
            public_summary: Arc::default(),
            semester_reports: Arc::default(),
            failed_authentications: Arc::default(),
        }
    }

    /// Now, in UTC seconds.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }
}

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    })
}

/// The whole HTTP service: `/api/v1/...`, `/healthz`, `/readyz`, `/metrics`, and the
/// console at `/console` (a client of the first, in the same process).
pub fn router(state: AdminState) -> Router {
    let (api, document) = routes::api().split_for_parts();
    let document = Arc::new(openapi::finish(document));
    let service = Router::new()
        .nest("/api/v1", api.merge(routes::openapi_route(document)))
        .merge(routes::health::routes())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .with_state(state.clone());
    service.clone().merge(console::router(state, service))
}

/// What [`bootstrap`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Tokens exist already: nothing.
    AlreadyHasTokens,
    /// `SSN_BOOTSTRAP_TOKEN`'s value became the `admin` token `bootstrap`.
    FromEnvironment,
    /// A new `admin` token `bootstrap` was made; its secret is here, to print once.
    Generated(String),
}

/// When the store has no token yet: the given secret (from `SSN_BOOTSTRAP_TOKEN`), or a new
/// one, becomes an `admin` token named `bootstrap`.
pub async fn bootstrap(ledger: &Ledger, given: Option<&str>) -> ApiResult<Bootstrap> {
    if !ledger.registry().tokens().await?.is_empty() {
        return Ok(Bootstrap::AlreadyHasTokens);
    }
    let (secret, outcome) = match given.map(str::trim).filter(|s| !s.is_empty()) {
        Some(secret) => (secret.to_string(), Bootstrap::FromEnvironment),
        None => {
            let secret = routes::tokens::new_secret()?;
            (secret.clone(), Bootstrap::Generated(secret))
        }
    };
    ledger
        .registry()
        .apply(vec![RegistryOp::Insert(RegistryRecord::Token(ApiToken {
            name: "bootstrap".into(),
            role: Role::Admin,
            token_hash: token_hash(&secret),
            expires_at: None,
        }))])
        .await?;
    Ok(outcome)
}
