//! The API's one error shape: `{"error": "<code>", "message": "<human text>"}` with the status
//! the spec names (400 malformed, 401, 403, 404, 409 conflict, 422 business rule). Bad input
//! never becomes a 500: every conversion from a library error below decides which it is.

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
    /// 500: a bug or a broken store, never bad input.
    pub fn internal(message: impl Into<String>) -> ApiError {
        let message = message.into();
        tracing::error!(%message, "admin API internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.code.to_string(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<LedgerError> for ApiError {
    fn from(error: LedgerError) -> ApiError {
        match error {
            LedgerError::Conflict(m) => ApiError::conflict(m),
            LedgerError::Unavailable(m) => ApiError::unavailable(m),
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
