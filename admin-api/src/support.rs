//! Shared pieces of every handler: the caller's identity and role checks, extractors that turn
//! every malformed body, query or path into the API's JSON 400, money as decimal strings,
//! WITA timestamps, paging and masking of personal data.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use ssn_ledger::{AuditEntry, Day, Money, RegistryOp, Role, WITA_OFFSET_SECONDS};
use utoipa::{IntoParams, ToSchema};

use crate::AdminState;
use crate::error::{ApiError, ApiResult};

/// The token that made the request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's name, written to the audit log.
    pub name: String,
    /// The token's role.
    pub role: Role,
}

impl Caller {
    /// Allows `admin` and the roles named; 403 for the others.
    pub fn require(&self, roles: &[Role]) -> ApiResult<()> {
        if self.role == Role::Admin || roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the {} role may not do this",
                role_name(self.role)
            )))
        }
    }

    /// Whether this caller sees personal data (NIK, KK, names, addresses) in full.
    pub fn sees_personal_data(&self) -> bool {
        matches!(
            self.role,
            Role::Admin | Role::Diskominfo | Role::Dinsos | Role::Walikota
        )
    }

    /// An audit line for an action of this caller.
    pub fn audit(&self, at: i64, action: &str, target: &str, outcome: &str) -> AuditEntry {
        AuditEntry {
            at_unix_seconds: at,
            token_name: self.name.clone(),
            role: self.role,
            action: action.to_string(),
            target: target.to_string(),
            outcome: outcome.to_string(),
        }
    }
}

/// SHA-256 of a token's secret: the only form in which tokens are stored.
pub fn token_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Failed authentications an address may make per [`AUTH_FAILURE_WINDOW_SECONDS`] before each
/// further one is answered slower.
pub const AUTH_FAILURES_FREE: u32 = 10;
/// The window failed authentications are counted in, per address.
pub const AUTH_FAILURE_WINDOW_SECONDS: i64 = 60;
/// The delay of the first failed authentication past [`AUTH_FAILURES_FREE`]; each next one
/// doubles it, up to [`AUTH_FAILURE_DELAY_MAX`].
pub const AUTH_FAILURE_DELAY: std::time::Duration = std::time::Duration::from_millis(250);
/// The longest a failed authentication is held.
pub const AUTH_FAILURE_DELAY_MAX: std::time::Duration = std::time::Duration::from_secs(4);
/// Addresses counted at most; past it the oldest windows are forgotten.
pub const AUTH_FAILURE_ADDRESSES_MAX: usize = 10_000;

/// Failed authentications per client address: past [`AUTH_FAILURES_FREE`] in a window, each
/// further 401 is held back longer (guessing tokens slows down; a right token never waits).
#[derive(Debug, Default)]
pub struct FailedAuthentications {
    by_address: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (i64, u32)>>,
}

impl FailedAuthentications {
    /// Counts a failure of `address` at `now`; how long to hold its answer.
    pub fn failed(&self, address: std::net::IpAddr, now: i64) -> std::time::Duration {
        let mut by_address = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        if by_address.len() >= AUTH_FAILURE_ADDRESSES_MAX {
            by_address.retain(|_, (since, _)| now - *since < AUTH_FAILURE_WINDOW_SECONDS);
        }
        let entry = by_address.entry(address).or_insert((now, 0));
        if now - entry.0 >= AUTH_FAILURE_WINDOW_SECONDS {
            *entry = (now, 0);
        }
        entry.1 += 1;
        let excess = entry.1.saturating_sub(AUTH_FAILURES_FREE);
        if excess == 0 {
            return std::time::Duration::ZERO;
        }
        if excess == 1 {
            tracing::warn!(%address, "repeated failed authentications: answers slowed down");
        }
        AUTH_FAILURE_DELAY
            .saturating_mul(1 << (excess - 1).min(8))
            .min(AUTH_FAILURE_DELAY_MAX)
    }
}

impl FromRequestParts<AdminState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> ApiResult<Caller> {
        let result = authenticate(parts, state).await;
        // Only a refused token counts: a store that did not answer is no guess.
        if matches!(&result, Err(e) if e.status == axum::http::StatusCode::UNAUTHORIZED)
            && let Some(axum::extract::ConnectInfo(address)) =
                parts
                    .extensions
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        {
            let delay = state
                .failed_authentications
                .failed(address.ip(), state.now());
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
        result
    }
}

/// The caller a request's bearer token names.
async fn authenticate(parts: &Parts, state: &AdminState) -> ApiResult<Caller> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("an Authorization: Bearer token is required"))?;
    let secret = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header is not a Bearer token"))?;
    caller_of_secret(state, secret).await
}

/// The caller a bearer secret names: the one token check, for the API's header and the
/// console's sign-in form alike.
pub(crate) async fn caller_of_secret(state: &AdminState, secret: &str) -> ApiResult<Caller> {
    let token = state
        .ledger
        .registry()
        .token_by_hash(&token_hash(secret))
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown token"))?;
    if token.expires_at.is_some_and(|at| at <= state.now()) {
        return Err(ApiError::unauthorized(
            "this token has expired: ask an admin for a new one",
        ));
    }
    Ok(Caller {
        name: token.name,
        role: token.role,
    })
}

/// A JSON body that never rejects on its own: handlers check the caller's role first (a 403
/// must not depend on the body) and then take the body or its 400.
#[derive(Debug)]
pub struct JsonBody<T>(pub ApiResult<T>);

impl<T> JsonBody<T> {
    /// The body, or the 400 explaining why it could not be read.
    pub fn into_inner(self) -> ApiResult<T> {
        self.0
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request(request: Request, state: &S) -> Result<JsonBody<T>, Self::Rejection> {
        Ok(JsonBody(
            axum::Json::<T>::from_request(request, state)
                .await
                .map(|axum::Json(value)| value)
                .map_err(|rejection| ApiError::malformed(rejection.body_text())),
        ))
    }
}

/// Query parameters whose errors are the API's JSON 400.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<QueryParams<T>> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection| ApiError::malformed(rejection.body_text()))
    }
}

/// Largest `page_size`.
pub const PAGE_SIZE_MAX: u32 = 1_000;
/// `page_size` when none is given.
pub const PAGE_SIZE_DEFAULT: u32 = 50;

/// Paging of every list.
#[derive(Debug, Deserialize, IntoParams, Clone, Copy)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Page number, from 1.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
}

/// A list answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// Page number, from 1.
    pub page: u32,
    /// Items per page.
    pub page_size: u32,
    /// Items on all pages.
    pub total: u64,
}

impl Paging {
    /// Checked page and page size.
    pub fn resolve(self) -> ApiResult<(u32, u32)> {
        let page = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(PAGE_SIZE_DEFAULT);
        if page == 0 {
            return Err(ApiError::malformed("page starts at 1"));
        }
        if size == 0 || size > PAGE_SIZE_MAX {
            return Err(ApiError::malformed(format!(
                "page_size is 1 to {PAGE_SIZE_MAX}"
            )));
        }
        Ok((page, size))
    }

    /// Cuts one page out of `items`.
    pub fn page<T>(self, items: Vec<T>) -> ApiResult<Page<T>> {
        let (page, size) = self.resolve()?;
        let total = items.len() as u64;
        let skip = (u64::from(page) - 1).saturating_mul(u64::from(size));
        let items = items
            .into_iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(size as usize)
            .collect();
        Ok(Page {
            items,
            page,
            page_size: size,
            total,
        })
    }
}

/// Parses rupiah as the API writes them: digits, optionally `.` and one or two decimals.
/// No sign, no grouping, no exponent: `"300000.00"`, `"300000"`, `"12.5"`.
pub fn parse_amount(text: &str, field: &str) -> ApiResult<Money> {
    let bad = || ApiError::malformed(format!("{field} is rupiah as a string, e.g. \"300000.00\""));
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if whole.is_empty()
        || whole.len() > 15
        || fraction.len() > 2
        || (text.contains('.') && fraction.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let mut cents: i64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| bad())?
    };
    if fraction.len() == 1 {
        cents *= 10;
    }
    whole
        .checked_mul(100)
        .and_then(|m| m.checked_add(cents))
        .map(Money::from_minor)
        .ok_or_else(bad)
}

/// A positive amount.
pub fn parse_positive_amount(text: &str, field: &str) -> ApiResult<Money> {
    let amount = parse_amount(text, field)?;
    if !amount.is_positive() {
        return Err(ApiError::malformed(format!(
            "{field} must be more than zero"
        )));
    }
    Ok(amount)
}

/// Parses `YYYY-MM-DD`.
pub fn parse_day(text: &str, field: &str) -> ApiResult<Day> {
    Day::parse_iso(text)
        .ok_or_else(|| ApiError::malformed(format!("{field} is a date, YYYY-MM-DD")))
}

/// A UTC instant as ISO 8601 in Samarinda time: `2026-11-29T06:10:53+08:00`.
pub fn wita_time(unix_seconds: i64) -> String {
    let day = Day::wita_of_unix_seconds(unix_seconds);
    let (y, m, d) = day.ymd();
    let second_of_day = (unix_seconds + WITA_OFFSET_SECONDS).rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+08:00",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// The first UTC second of a WITA day.
pub fn wita_day_start(day: Day) -> i64 {
    i64::from(day.0) * 86_400 - WITA_OFFSET_SECONDS
}

/// A time window from optional `from` and `to` dates (inclusive WITA days).
pub fn window(from: Option<&str>, to: Option<&str>) -> ApiResult<(i64, i64)> {
    let start = match from {
        Some(text) => wita_day_start(parse_day(text, "from")?),
        None => i64::MIN,
    };
    let end = match to {
        Some(text) => wita_day_start(parse_day(text, "to")?) + 86_399,
        None => i64::MAX,
    };
    Ok((start, end))
}

/// A name for a caller who may not see personal data: its initials (`Siti Aminah` →
/// `S. A.`).
pub fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|word| word.chars().next())
        .map(|first| format!("{first}."))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Digits of a NIK or KK that name its region (province, city, kecamatan), shown to every role.
pub const NIK_REGION_DIGITS: usize = 6;

/// A NIK or KK for a caller who may not see personal data: its region code and `*`s (the rest
/// encodes birth date, sex and a serial, from which the person could be found).
pub fn region_only(number: &str) -> String {
    let region: String = number.chars().take(NIK_REGION_DIGITS).collect();
    let rest = number.chars().count().saturating_sub(NIK_REGION_DIGITS);
    format!("{region}{}", "*".repeat(rest))
}

/// The role's name as in the spec.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Diskominfo => "diskominfo",
        Role::Dinsos => "dinsos",
        Role::Walikota => "walikota",
        Role::Bank => "bank",
        Role::Auditor => "auditor",
    }
}

/// A role from its name.
pub fn parse_role(text: &str) -> ApiResult<Role> {
    Ok(match text {
        "admin" => Role::Admin,
        "diskominfo" => Role::Diskominfo,
        "dinsos" => Role::Dinsos,
        "walikota" => Role::Walikota,
        "bank" => Role::Bank,
        "auditor" => Role::Auditor,
        _ => {
            return Err(ApiError::malformed(
                "role is one of admin, diskominfo, dinsos, walikota, bank, auditor",
            ));
        }
    })
}

impl AdminState {
    /// Applies registry ops with their audit line in the same transaction; a refused change
    /// is audited on its own with the error code as the outcome.
    pub async fn apply_audited(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        mut ops: Vec<RegistryOp>,
    ) -> ApiResult<()> {
        let now = self.now();
        ops.push(RegistryOp::Audit(caller.audit(now, action, target, "ok")));
        match self.ledger.registry().apply(ops).await {
            Ok(()) => Ok(()),
            Err(error) => {
                let error = ApiError::from(error);
                self.audit_failure(caller, action, target, &error).await;
                Err(error)
            }
        }
    }

    /// Audits a change made outside the registry (a journal entry) with its outcome.
    pub async fn audit_outcome<T>(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        result: ApiResult<T>,
    ) -> ApiResult<T> {
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(error) => error.code.to_string(),
        };
        let entry = caller.audit(self.now(), action, target, &outcome);
        if let Err(e) = self
            .ledger
            .registry()
            .apply(vec![RegistryOp::Audit(entry)])
            .await
        {
            tracing::error!(error = %e, action, target, "could not write an audit line");
            if result.is_ok() {
                // The change is in the journal; say the audit line is missing rather than
                // hide it.
                return Err(ApiError::unavailable(
                    "the change was made but its audit line could not be written",
                )
                .with_detail(e.to_string()));
            }
        }
        result
    }

    /// Audits a read of personal data in full (UU 27/2022): who read whose records (`target`
    /// names them), when. A read that cannot be audited is refused (503), never served
    /// unrecorded.
    pub async fn audit_read(&self, caller: &Caller, action: &str, target: &str) -> ApiResult<()> {
        let entry = caller.audit(self.now(), action, target, "read");
        self.ledger
            .registry()
            .apply(vec![RegistryOp::Audit(entry)])
            .await
            .map_err(|e| {
                ApiError::unavailable(
                    "personal data is read only with its audit line, which could not be written",
                )
                .with_detail(e.to_string())
            })
    }

    /// Audits a refused change.
    pub async fn audit_failure(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        error: &ApiError,
    ) {
        let entry = caller.audit(self.now(), action, target, error.code);
        if let Err(e) = self
            .ledger
            .registry()
            .apply(vec![RegistryOp::Audit(entry)])
            .await
        {
            tracing::error!(error = %e, action, target, "could not write an audit line");
        }
    }
}

/// `field: 'before' -> 'after'` for each field that differs: what an audit line of a
/// correction says.
pub fn changed_fields(fields: &[(&str, String, String)]) -> Vec<String> {
    fields
        .iter()
        .filter(|(_, before, after)| before != after)
        .map(|(field, before, after)| format!("{field}: '{before}' -> '{after}'"))
        .collect()
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> ApiResult<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::internal(format!("system random generator: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_strictly() {
        assert_eq!(parse_amount("300000.00", "a").unwrap().minor(), 30_000_000);
        assert_eq!(parse_amount("300000", "a").unwrap().minor(), 30_000_000);
        assert_eq!(parse_amount("12.5", "a").unwrap().minor(), 1250);
        for bad in [
            "",
            "-1",
            "1.",
            ".5",
            "1.234",
            "1e5",
            "1,000",
            " 1",
            "9999999999999999",
        ] {
            assert!(parse_amount(bad, "a").is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_wita() {
        assert_eq!(wita_time(0), "1970-01-01T08:00:00+08:00");
        assert_eq!(wita_time(16 * 3600), "1970-01-02T00:00:00+08:00");
        let day = Day::from_ymd(2026, 11, 30).unwrap();
        assert_eq!(wita_time(wita_day_start(day)), "2026-11-30T00:00:00+08:00");
    }

    #[test]
    fn masking() {
        assert_eq!(initials("Siti  Aminah"), "S. A.");
        assert_eq!(region_only("6472014101700001"), "647201**********");
    }
}
