//! `ApiError`: every error an HTTP handler can return, each with its status and a short JSON reason.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::store::StoreError;
use crate::throttle::RetryAfter;
use app::error::AppError;

/// The body of every error answer: a short reason.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

impl ErrorBody {
    pub fn json(reason: impl ToString) -> Json<ErrorBody> {
        Json(ErrorBody {
            error: reason.to_string(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be understood; the reason says why.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or invalid credentials or signature.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but the role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// 404: the named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 410: the account is disabled; nothing is accepted for it.
    #[error("{0}")]
    Gone(String),
    /// 413: the body is larger than the receiver accepts.
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// 413: a delivery holds more events than the receiver takes at once.
    #[error("a delivery may hold at most {0} events (MAX_EVENTS_PER_DELIVERY): send the rest in further deliveries")]
    TooManyEvents(usize),
    /// 413: one event of a delivery carries more than the receiver keeps for an event.
    #[error("an event's changes may take at most {0} bytes (MAX_EVENT_BYTES)")]
    EventTooLarge(usize),
    /// 429 with Retry-After: too many attempts from this client; the limit refills.
    #[error("too many attempts: try again in {} s", .0.seconds())]
    TooManyRequests(RetryAfter),
    /// 502: an upstream (the ServiceM8 API) failed to answer usefully.
    #[error("{0}")]
    BadGateway(String),
    /// 503 with Retry-After: storage is unavailable; nothing was accepted, the sender should retry.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if let StoreError::Saturated = error {
            tracing::warn!("delivery refused: the event writer is saturated");
            return ApiError::Unavailable("the receiver is saturated, retry later".into());
        }
        tracing::error!(%error, "storage error");
        ApiError::Unavailable("storage unavailable, retry later".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) | ApiError::TooManyEvents(_) | ApiError::EventTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = ErrorBody::json(&self);
        match self {
            ApiError::Unavailable(_) => {
                (status, [(header::RETRY_AFTER, HeaderValue::from_static("5"))], body).into_response()
            }
            ApiError::TooManyRequests(wait) => {
                (status, [(header::RETRY_AFTER, wait.header_value())], body).into_response()
            }
            _ => (status, body).into_response(),
        }
    }
}

/// By `AppError::status`, the one mapping of an `AppError` to HTTP.
impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        let reason = match &error {
            AppError::InvalidInput(reason)
            | AppError::NotFound(reason)
            | AppError::Conflict(reason)
            | AppError::Forbidden(reason)
            | AppError::Gone(reason) => reason.clone(),
            _ => error.to_string(),
        };
        match error.status() {
            400 => ApiError::BadRequest(reason),
            401 => ApiError::Unauthorized(reason),
            403 => ApiError::Forbidden(reason),
            404 => ApiError::NotFound(reason),
            410 => ApiError::Gone(reason),
            409 => ApiError::Conflict(reason),
            429 => ApiError::TooManyRequests(RetryAfter(std::time::Duration::from_secs(match error {
                AppError::RateLimited(seconds) => seconds,
                _ => 1,
            }))),
            _ => ApiError::Unavailable(reason),
        }
    }
}

/// Gives a bare `405 Method Not Allowed` from the router (a route that exists, asked with another method) the
/// JSON reason every other error has; its `Allow` header stays.
pub async fn explain_wrong_method(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let mut response = next.run(request).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED && response.headers().get(header::CONTENT_TYPE).is_none() {
        let allow = response.headers().get(header::ALLOW).cloned();
        let allowed = allow
            .as_ref()
            .and_then(|allow| allow.to_str().ok())
            .map(|allow| format!(": use {allow}"))
            .unwrap_or_default();
        let reason = format!("{method} is not allowed here{allowed}");
        response = (
            StatusCode::METHOD_NOT_ALLOWED,
            Json(serde_json::json!({ "error": reason })),
        )
            .into_response();
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    response
}

/// Answers a rejected extractor (bad query string, bad JSON) with a 400 in the same shape.
pub fn bad_request(rejection: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(rejection.to_string())
}
