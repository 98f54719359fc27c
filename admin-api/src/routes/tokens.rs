//! API tokens (`admin`). Only a SHA-256 of each secret is stored; the secret is shown once.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use ssn_ledger::{ApiToken, RegistryOp, RegistryRecord, Role};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::{ApiError, ApiResult};
use crate::support::{
    Caller, JsonBody, Page, Paging, QueryParams, parse_role, random_bytes, role_name, token_hash,
    wita_time,
};

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(delete_token))
        .routes(routes!(rotate_token))
}

/// A new secret: `ssn_` and 64 hex digits (256 bits from the operating system).
pub(crate) fn new_secret() -> ApiResult<String> {
    let bytes: [u8; 32] = random_bytes()?;
    Ok(format!("ssn_{}", ssn_ledger::hex(&bytes)))
}

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Unique name: `a`-`z`, `0`-`9`, `-`, `_`, `.`; 1 to 64 characters.
    #[schema(pattern = r"^[a-z0-9._-]{1,64}$", example = "dinsos-operator-1")]
    pub name: String,
    /// `admin`, `diskominfo`, `dinsos`, `walikota`, `bank` or `auditor`.
    #[schema(
        example = "dinsos",
        pattern = "^(admin|diskominfo|dinsos|walikota|bank|auditor)$"
    )]
    pub role: String,
    /// When it stops being accepted (RFC 3339, e.g. `2027-06-30T23:59:59+08:00`); none:
    /// never. Must be in the future.
    #[serde(default)]
    #[schema(example = "2027-06-30T23:59:59+08:00")]
    pub expires_at: Option<String>,
}

/// A created token, with its secret (shown only here).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// The bearer secret.
    pub token: String,
    /// When it stops being accepted (WITA), if ever.
    pub expires_at: Option<String>,
}

/// A token as listed (no secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// When it stops being accepted (WITA), if ever.
    pub expires_at: Option<String>,
}

/// An expiry as an RFC 3339 time (`YYYY-MM-DDThh:mm:ss` and `Z` or an offset `±hh:mm`), in
/// UTC seconds; it must be after `now`.
fn parse_expiry(text: &str, now: i64) -> ApiResult<i64> {
    let bad = || ApiError::malformed("expires_at is a time like 2027-06-30T23:59:59+08:00");
    let (date, rest) = text.split_once('T').ok_or_else(bad)?;
    let day = ssn_ledger::Day::parse_iso(date).ok_or_else(bad)?;
    let (clock, zone) = (
        rest.get(..8).ok_or_else(bad)?,
        rest.get(8..).ok_or_else(bad)?,
    );
    let number = |text: Option<&str>, max: i64| -> ApiResult<i64> {
        text.filter(|t| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<i64>().ok())
            .filter(|n| *n <= max)
            .ok_or_else(bad)
    };
    let mut parts = clock.split(':');
    let seconds = number(parts.next(), 23)? * 3_600
        + number(parts.next(), 59)? * 60
        + number(parts.next(), 59)?;
    let offset = match zone {
        "Z" => 0,
        _ => {
            let sign = match zone.get(..1) {
                Some("+") => 1,
                Some("-") => -1,
                _ => return Err(bad()),
            };
            let (hours, minutes) = zone
                .get(1..)
                .and_then(|z| z.split_once(':'))
                .ok_or_else(bad)?;
            sign * (number(Some(hours), 23)? * 3_600 + number(Some(minutes), 59)? * 60)
        }
    };
    let at = i64::from(day.0) * 86_400 + seconds - offset;
    if at <= now {
        return Err(ApiError::malformed("expires_at is in the future"));
    }
    Ok(at)
}

/// Creates a token.
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, description = "Created; the secret is shown only here", body = CreatedToken)))]
pub(crate) async fn create_token(
    State(state): State<AdminState>,
    caller: Caller,
    body: JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    caller.require(&[])?;
    let new = body.into_inner()?;
    let valid_name = !new.name.is_empty()
        && new.name.len() <= 64
        && new
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if !valid_name {
        return Err(ApiError::malformed(
            "name is 1 to 64 characters of a-z, 0-9, -, _ and .",
        ));
    }
    let role = parse_role(&new.role)?;
    let expires_at = new
        .expires_at
        .as_deref()
        .map(|text| parse_expiry(text, state.now()))
        .transpose()?;
    if state
        .ledger
        .registry()
        .tokens()
        .await?
        .iter()
        .any(|t| t.name == new.name)
    {
        let error = ApiError::conflict(format!("a token named {} exists", new.name));
        state
            .audit_failure(&caller, "tokens.create", &new.name, &error)
            .await;
        return Err(error);
    }
    let secret = new_secret()?;
    state
        .apply_audited(
            &caller,
            "tokens.create",
            &format!("token {} ({})", new.name, role_name(role)),
            vec![RegistryOp::Insert(RegistryRecord::Token(ApiToken {
                name: new.name.clone(),
                role,
                token_hash: token_hash(&secret),
                expires_at,
            }))],
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            name: new.name,
            role: role_name(role).into(),
            token: secret,
            expires_at: expires_at.map(wita_time),
        }),
    ))
}

/// Every token's name and role.
#[utoipa::path(get, path = "/tokens", tag = "tokens", params(Paging),
    responses((status = 200, description = "A page of tokens, by name", body = Page<TokenView>)))]
pub(crate) async fn list_tokens(
    State(state): State<AdminState>,
    _caller: Caller,
    QueryParams(paging): QueryParams<Paging>,
) -> ApiResult<Json<Page<TokenView>>> {
    paging.resolve()?;
    let mut tokens: Vec<TokenView> = state
        .ledger
        .registry()
        .tokens()
        .await?
        .into_iter()
        .map(|t| TokenView {
            name: t.name,
            role: role_name(t.role).into(),
            expires_at: t.expires_at.map(wita_time),
        })
        .collect();
    tokens.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(paging.page(tokens)?))
}

/// What a rotation sets.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// The new secret's expiry (RFC 3339); none: the token's expiry stays.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// Rotates a token: a new secret under the same name and role (the old one is refused from
/// now on), shown only in this answer.
#[utoipa::path(post, path = "/tokens/{name}/rotate", tag = "tokens", request_body = Rotation,
    params(("name" = String, Path, description = "Token name")),
    responses((status = 200, description = "Rotated; the new secret is shown only here", body = CreatedToken)))]
pub(crate) async fn rotate_token(
    State(state): State<AdminState>,
    caller: Caller,
    Path(name): Path<String>,
    body: JsonBody<Rotation>,
) -> ApiResult<Json<CreatedToken>> {
    caller.require(&[])?;
    let rotation = body.into_inner()?;
    let tokens = state.ledger.registry().tokens().await?;
    let Some(token) = tokens.into_iter().find(|t| t.name == name) else {
        return Err(ApiError::not_found(format!("no token named {name}")));
    };
    let expires_at = match rotation.expires_at.as_deref() {
        Some(text) => Some(parse_expiry(text, state.now())?),
        None => token.expires_at,
    };
    let secret = new_secret()?;
    let next = ApiToken {
        token_hash: token_hash(&secret),
        expires_at,
        ..token.clone()
    };
    state
        .apply_audited(
            &caller,
            "tokens.rotate",
            &format!("token {name}"),
            vec![RegistryOp::Replace {
                expected: RegistryRecord::Token(token),
                new: RegistryRecord::Token(next.clone()),
            }],
        )
        .await?;
    Ok(Json(CreatedToken {
        name: next.name,
        role: role_name(next.role).into(),
        token: secret,
        expires_at: expires_at.map(wita_time),
    }))
}

/// Revokes a token.
#[utoipa::path(delete, path = "/tokens/{name}", tag = "tokens",
    params(("name" = String, Path, description = "Token name")),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_token(
    State(state): State<AdminState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(&[])?;
    let tokens = state.ledger.registry().tokens().await?;
    let Some(token) = tokens.iter().find(|t| t.name == name) else {
        return Err(ApiError::not_found(format!("no token named {name}")));
    };
    // Nobody locks the operators out: a token does not delete itself, and the last admin
    // token stays.
    let admins = tokens.iter().filter(|t| t.role == Role::Admin).count();
    let refusal = if name == caller.name {
        Some("a token cannot delete itself; delete it with another admin token")
    } else if token.role == Role::Admin && admins == 1 {
        Some("the last admin token cannot be deleted")
    } else {
        None
    };
    if let Some(message) = refusal {
        let error = ApiError::conflict(message);
        state
            .audit_failure(&caller, "tokens.delete", &format!("token {name}"), &error)
            .await;
        return Err(error);
    }
    state
        .apply_audited(
            &caller,
            "tokens.delete",
            &format!("token {name}"),
            vec![RegistryOp::DeleteToken(name.clone())],
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
