//! One module per resource of the spec.

pub(crate) mod alerts;
pub(crate) mod audit;
pub(crate) mod batches;
pub(crate) mod beneficiaries;
pub(crate) mod cards;
pub(crate) mod disbursements;
pub(crate) mod dtsen;
pub(crate) mod health;
pub(crate) mod merchants;
pub(crate) mod programs;
pub(crate) mod reports;
pub(crate) mod revocations;
pub(crate) mod settlements;
pub(crate) mod tokens;
pub(crate) mod transactions;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;

use crate::AdminState;
use crate::error::ApiError;
use crate::support::Caller;

/// Every `/api/v1` route with its OpenAPI description.
pub(crate) fn api() -> OpenApiRouter<AdminState> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .merge(tokens::routes())
        .merge(programs::routes())
        .merge(beneficiaries::routes())
        .merge(dtsen::routes())
        .merge(revocations::routes())
        .merge(cards::routes())
        .merge(disbursements::routes())
        .merge(merchants::routes())
        .merge(transactions::routes())
        .merge(settlements::routes())
        .merge(batches::routes())
        .merge(reports::routes())
        .merge(audit::routes())
        .merge(alerts::routes())
}

/// `GET /api/v1/openapi.json` (any role).
pub(crate) fn openapi_route(document: Arc<utoipa::openapi::OpenApi>) -> Router<AdminState> {
    Router::new().route(
        "/openapi.json",
        get(move |_caller: Caller| {
            let document = document.clone();
            async move { Json(document.as_ref().clone()) }
        }),
    )
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError {
        status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: "this resource does not take that method".into(),
        detail: None,
    }
}
