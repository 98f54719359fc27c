//! The audit log (any role reads).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::beneficiaries::{
    RESOLVE_ACTION, UPDATE_ACTION, correction_withheld, resolution_withheld,
};
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
    caller: Caller,
    QueryParams(query): QueryParams<AuditQuery>,
) -> ApiResult<Json<Page<AuditView>>> {
    let paging = Paging {
        page: query.page,
        page_size: query.page_size,
    };
    let (page, size) = paging.resolve()?;
    let (start, end) = window(query.from.as_deref(), query.to.as_deref())?;
    let registry = state.ledger.registry();
    let first = (u64::from(page) - 1).saturating_mul(u64::from(size));
    if query.from.is_none() && query.to.is_none() && query.actor.is_none() {
        // Every line is selected: the page is read where it is (lines are numbered from 1).
        let total = registry.audit_last().await?;
        let lines = registry
            .audit(
                first.saturating_add(1),
                usize::try_from(size).unwrap_or(usize::MAX),
            )
            .await?;
        return Ok(Json(Page {
            items: lines.into_iter().map(|line| view(&caller, line)).collect(),
            page,
            page_size: size,
            total,
        }));
    }
    // Filtered: the log is read in chunks; only the page's lines are kept.
    let wanted = first..first.saturating_add(u64::from(size));
    let (mut items, mut selected, mut from) = (Vec::new(), 0u64, 1u64);
    loop {
        let lines = registry.audit(from, AUDIT_SCAN_CHUNK).await?;
        let Some((last, _)) = lines.last() else {
            break;
        };
        from = last + 1;
        for (seq, entry) in lines {
            let chosen = entry.at_unix_seconds >= start
                && entry.at_unix_seconds <= end
                && query.actor.as_ref().is_none_or(|a| *a == entry.token_name);
            if chosen {
                if wanted.contains(&selected) {
                    items.push(view(&caller, (seq, entry)));
                }
                selected += 1;
            }
        }
    }
    Ok(Json(Page {
        items,
        page,
        page_size: size,
        total: selected,
    }))
}

/// Audit lines read per registry call while a filtered page is looked for.
pub const AUDIT_SCAN_CHUNK: usize = 4_096;

/// A line as `caller` reads it: for roles without personal data, a correction of a person's
/// data names the fields changed but not their values (a name, a KK or a birth date before
/// and after is personal data; UU 27/2022), and a settled duplicate its outcome without Dinas
/// Sosial's note.
fn view(caller: &Caller, (seq, mut e): (u64, ssn_ledger::AuditEntry)) -> AuditView {
    if !caller.sees_personal_data() {
        if e.action == UPDATE_ACTION {
            e.target = correction_withheld(&e.target);
        } else if e.action == RESOLVE_ACTION {
            e.target = resolution_withheld(&e.target);
        }
    }
    AuditView {
        seq,
        at: wita_time(e.at_unix_seconds),
        actor: e.token_name,
        role: role_name(e.role).into(),
        action: e.action,
        target: e.target,
        outcome: e.outcome,
    }
}
