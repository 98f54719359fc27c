//! The audit log (any role reads).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::ApiResult;
use crate::support::{Caller, Page, Paging, QueryParams, role_name, window, wita_time};

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// Filters of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// First day (`YYYY-MM-DD`, WITA), inclusive.
    pub from: Option<String>,
    /// Last day, inclusive.
    pub to: Option<String>,
    /// Token name.
    pub actor: Option<String>,
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Items per page, 1 to 1000.
    pub page_size: Option<u32>,
}

/// One line of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Sequence number.
    pub seq: u64,
    /// When (WITA).
    pub at: String,
    /// Token name.
    pub actor: String,
    /// Token role.
    pub role: String,
    /// What was done.
    pub action: String,
    /// To what.
    pub target: String,
    /// `ok`, a decision, or the error code.
    pub outcome: String,
}

/// Audit lines, oldest first.
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "A page of the audit log", body = Page<AuditView>)))]
pub(crate) async fn list_audit(
    State(state): State<AdminState>,
    _caller: Caller,
    QueryParams(query): QueryParams<AuditQuery>,
) -> ApiResult<Json<Page<AuditView>>> {
    let paging = Paging {
        page: query.page,
        page_size: query.page_size,
    };
    paging.resolve()?;
    let (start, end) = window(query.from.as_deref(), query.to.as_deref())?;
    let lines = state.ledger.registry().audit(0, usize::MAX).await?;
    let items: Vec<AuditView> = lines
        .into_iter()
        .filter(|(_, e)| e.at_unix_seconds >= start && e.at_unix_seconds <= end)
        .filter(|(_, e)| query.actor.as_ref().is_none_or(|a| *a == e.token_name))
        .map(|(seq, e)| AuditView {
            seq,
            at: wita_time(e.at_unix_seconds),
            actor: e.token_name,
            role: role_name(e.role).into(),
            action: e.action,
            target: e.target,
            outcome: e.outcome,
        })
        .collect();
    Ok(Json(paging.page(items)?))
}
