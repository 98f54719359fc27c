//! Terminal batches still open (`GET /batches?status=open`): our extension of the spec, which
//! has batches only in the reconciliation of a settled date. The console's dashboard shows
//! them, so the bank sees which terminals have not closed (0500) since their last purchases.
//! A thin read over [`ssn_ledger::Ledger::open_batches`], which pages the terminals' batch
//! state in memory and reads no purchase.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::ApiResult;
use crate::support::{Caller, Page, Paging, QueryParams};

use super::settlements::{TotalsView, totals};

pub(crate) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(list_batches))
}

/// Which batches: only `open` is listed (closed ones are in `GET /reconciliation`).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    /// An approved purchase since the terminal's last 0500.
    Open,
}

/// Filters of the batch list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchQuery {
    /// `open` (the default and, for now, the only value).
    #[param(inline)]
    pub status: Option<BatchStatus>,
    /// Page number, from 1.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
}

/// A terminal's open batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenBatchView {
    /// DE41.
    pub terminal_id: String,
    /// DE42 of its E-Warong (empty when the terminal is no longer registered).
    pub merchant_id: String,
    /// The switch's sequence number the batch will close under.
    pub sequence: u64,
    /// The journal's totals so far (what a 0500 now would be compared with).
    pub journal_totals: TotalsView,
}

/// The terminals' open batches, by terminal id, paged.
#[utoipa::path(get, path = "/batches", tag = "settlements", params(BatchQuery),
    responses((status = 200, description = "A page of open terminal batches, by DE41",
        body = Page<OpenBatchView>)))]
pub(crate) async fn list_batches(
    State(state): State<AdminState>,
    _caller: Caller,
    QueryParams(query): QueryParams<BatchQuery>,
) -> ApiResult<Json<Page<OpenBatchView>>> {
    let BatchStatus::Open = query.status.unwrap_or(BatchStatus::Open);
    let (page, page_size) = Paging {
        page: query.page,
        page_size: query.page_size,
    }
    .resolve()?;
    let offset =
        usize::try_from((u64::from(page) - 1) * u64::from(page_size)).unwrap_or(usize::MAX);
    let (total, open) = state.ledger.open_batches(offset, page_size as usize);
    let mut items = Vec::with_capacity(open.len());
    for batch in open {
        let merchant_id = state
            .ledger
            .registry()
            .terminal(&batch.terminal)
            .await?
            .map(|t| t.merchant_id.as_str().to_string())
            .unwrap_or_default();
        items.push(OpenBatchView {
            terminal_id: batch.terminal.as_str().to_string(),
            merchant_id,
            sequence: batch.sequence,
            journal_totals: totals(&batch.totals),
        });
    }
    Ok(Json(Page {
        items,
        page,
        page_size,
        total: total as u64,
    }))
}
