//! `/healthz`, `/readyz`, `/metrics`: no token.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::AdminState;

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The stores answer (one registry read and one balance-store read: card 0 never exists) and
/// the issuer PVK unwraps under this node's master key (without it every PIN check fails).
async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let registry = state.ledger.registry().programs().await;
    let balances = state.ledger.pockets(ssn_ledger::CardId(0)).await;
    let keys = state.hsm.check_value(&state.pvk);
    match (registry, balances, keys) {
        (Ok(_), Ok(_), Ok(_)) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        (registry, balances, keys) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "registry": registry.err().map(|e| e.to_string()),
                "balances": balances.err().map(|e| e.to_string()),
                "keys": keys.err().map(|e| e.to_string()),
            })),
        ),
    }
}

/// Prometheus text format.
async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    match &state.metrics {
        Some(handle) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        ),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            "# no metrics recorder in this process\n".to_string(),
        ),
    }
}
