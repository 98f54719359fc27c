//! The API's one error shape: `{"error": "<code>", "message": "<human text>"}` with the status
//! the spec names (400 malformed, 401, 403, 404, 409 conflict, 422 business rule). Bad input
//! never becomes a 500: every conversion from a library error below decides which it is.
//!
//! What a store or library said (redb, Redis, CQL text, an I/O error) never reaches the body:
//! such an error carries it as its `detail`, which is logged with a fresh `error_id`, and the
//! body gets a short message and that id, so an operator finds the log line from the answer.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use ssn_ledger::{InvalidId, LedgerError, RegistryError};
use utoipa::ToSchema;

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code: `malformed`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `refused`, `unavailable`, `internal`.
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
    /// For a failure whose detail is in the switch's log (503, 500): the id of that log line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `error` of the body.
    pub code: &'static str,
    /// `message` of the body.
    pub message: String,
    /// What a store or library said: logged with an id, never answered.
    pub detail: Option<String>,
}

impl ApiError {
    /// 400: the request is malformed.
    pub fn malformed(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed", message)
    }
    /// 401: no token, or not a token we know.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// 403: the token's role may not do this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 409: duplicate, wrong state, replayed key with other content.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }
    /// 422: a business rule refuses it.
    pub fn refused(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", message)
    }
    /// 503: a store cannot be reached; nothing was changed.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    /// 500: a bug or a broken store, never bad input. `detail` goes to the log only.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error: nothing was changed by it",
        )
        .with_detail(detail)
    }

    /// The same answer, with what a store or library said kept for the log.
    pub fn with_detail(mut self, detail: impl Into<String>) -> ApiError {
        self.detail = Some(detail.into());
        self
    }

    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: None,
        }
    }
}

/// A fresh id for a logged error: 16 hex digits.
fn error_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Unique enough within one process's log when the system has no randomness.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        bytes = NEXT
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (message, error_id) = match self.detail {
            Some(detail) => {
                let id = error_id();
                tracing::error!(error_id = %id, status = self.status.as_u16(), %detail,
                    message = %self.message, "admin API error");
                (format!("{} (error id {id})", self.message), Some(id))
            }
            None => (self.message, None),
        };
        (
            self.status,
            Json(ErrorBody {
                error: self.code.to_string(),
                message,
                error_id,
            }),
        )
            .into_response()
    }
}

impl From<LedgerError> for ApiError {
    fn from(error: LedgerError) -> ApiError {
        match error {
            LedgerError::Conflict(m) => ApiError::conflict(m),
            LedgerError::Unavailable(m) => ApiError::unavailable(
                "a store the ledger needs did not answer in time; nothing was changed",
            )
            .with_detail(m),
            LedgerError::NotFound(m) => ApiError::not_found(m),
            LedgerError::Refused(m) => ApiError::refused(m),
            LedgerError::Invalid(m) => ApiError::malformed(m),
            LedgerError::Internal(m) => ApiError::internal(m),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> ApiError {
        ApiError::from(LedgerError::from(error))
    }
}

impl From<InvalidId> for ApiError {
    fn from(error: InvalidId) -> ApiError {
        ApiError::malformed(error.to_string())
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// What a store said stays in the log: the body has a short message and the id of the log
    /// line, whatever the failure.
    #[tokio::test]
    async fn a_store_failure_answers_an_id_never_the_store_text() {
        let store_text = "redis: Connection refused (os error 111) at 10.0.0.7:6379";
        for error in [
            ApiError::from(LedgerError::Unavailable(store_text.into())),
            ApiError::from(RegistryError::Storage(store_text.into())),
            ApiError::from(LedgerError::Internal(store_text.into())),
            ApiError::internal(store_text),
        ] {
            let expected = error.status;
            let (status, body) = body_of(error).await;
            assert_eq!(status, expected);
            let message = body["message"].as_str().unwrap();
            let id = body["error_id"].as_str().unwrap();
            assert!(
                !message.contains("redis") && !message.contains("10.0.0.7"),
                "{body}"
            );
            assert_eq!(id.len(), 16, "{body}");
            assert!(message.ends_with(&format!("(error id {id})")), "{body}");
        }
        // Errors about the request itself keep their message and have no id.
        let (status, body) = body_of(ApiError::refused("giro too low")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["message"], "giro too low");
        assert!(body.get("error_id").is_none());
    }
}
