//! `ApiError`: every error an HTTP handler can return, each with its status and a short JSON reason.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::store::StoreError;
use app::error::AppError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be understood; the reason says why.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or invalid credentials or signature.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: the named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than the receiver accepts.
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// 502: an upstream (the ServiceM8 API) failed to answer usefully.
    #[error("{0}")]
    BadGateway(String),
    /// 503 with Retry-After: storage is unavailable; nothing was accepted, the sender should retry.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "storage error");
        ApiError::Unavailable("storage unavailable, retry later".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = Json(serde_json::json!({ "error": self.to_string() }));
        match self {
            ApiError::Unavailable(_) => (status, [(header::RETRY_AFTER, "5")], body).into_response(),
            _ => (status, body).into_response(),
        }
    }
}

/// By `AppError::status`, the one mapping of an `AppError` to HTTP.
impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        let reason = match &error {
            AppError::InvalidInput(reason) | AppError::NotFound(reason) | AppError::Conflict(reason) => reason.clone(),
            _ => error.to_string(),
        };
        match error.status() {
            400 => ApiError::BadRequest(reason),
            401 => ApiError::Unauthorized(reason),
            404 => ApiError::NotFound(reason),
            409 => ApiError::Conflict(reason),
            _ => ApiError::Unavailable(reason),
        }
    }
}

/// Answers a rejected extractor (bad query string, bad JSON) with a 400 in the same shape.
pub fn bad_request(rejection: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(rejection.to_string())
}
