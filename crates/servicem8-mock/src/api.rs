//! The REST side of the simulated account: `GET /api_1.0/{object}.json` and `/api_1.0/{object}/{uuid}.json`,
//! behind the gate every API request passes (API key, rate limits, injected faults), and the `/_mock` control
//! endpoints tests and operators use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::filter::Filter;
use super::limits::{FaultOutcome, Faults, RateDecision};
use super::oauth::TokenCheck;
use super::oauth_http;
use super::records::ObjectKind;
use super::state::{lock, MockState, MockStats};
use super::subscriptions;

/// Header carrying the cursor of the next page; absent on the last page.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";
/// The `cursor` value that starts paging.
const FIRST_PAGE: &str = "-1";

/// An answer other than success, in the real API's shape: `{"errorCode":N,"message":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MockApiError {
    /// 400: the request cannot be understood.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no API key, or not the account's.
    #[error("Authentication failed: send the API key as X-API-Key")]
    Unauthorized,
    /// 401: an OAuth access token that expired or was never issued.
    #[error("The access token is invalid or has expired")]
    InvalidToken,
    /// 404: no such object type or record.
    #[error("{0}")]
    NotFound(String),
    /// 429: over a rate limit.
    #[error("Number of allowed API requests per {0} exceeded")]
    TooManyRequests(&'static str),
    /// 500: an injected fault.
    #[error("Internal server error")]
    Internal,
    /// 503: an injected fault, or the account is shutting down.
    #[error("Service temporarily unavailable")]
    Unavailable,
    /// 504: a request left hanging by an injected fault.
    #[error("Request timed out")]
    Timeout,
}

impl MockApiError {
    fn status(&self) -> StatusCode {
        match self {
            MockApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            MockApiError::Unauthorized | MockApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            MockApiError::NotFound(_) => StatusCode::NOT_FOUND,
            MockApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            MockApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            MockApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            MockApiError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl IntoResponse for MockApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Like ServiceM8, a 429 carries no Retry-After.
        (
            status,
            Json(json!({"errorCode": status.as_u16(), "message": self.to_string()})),
        )
            .into_response()
    }
}

pub(crate) fn router(state: Arc<MockState>) -> Router {
    let api = Router::new()
        .route("/api_1.0/{resource}", get(list_records))
        .route("/api_1.0/{object}/{resource}", get(get_record))
        .merge(subscriptions::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), gate));
    let control = Router::new()
        .route("/_mock/faults", get(get_faults).post(set_faults))
        .route("/_mock/stats", get(get_stats));
    api.merge(control)
        .merge(oauth_http::router())
        .fallback(|| async { MockApiError::NotFound("No such endpoint".into()) })
        .with_state(state)
}

/// Counts the request, then applies latency, authentication, rate limits and injected faults, in that order.
async fn gate(State(state): State<Arc<MockState>>, request: Request, next: Next) -> Response {
    state.counters.request();
    let faults = *lock(&state.faults);
    if !faults.latency().is_zero() && !pause(&state, faults.latency()).await {
        return MockApiError::Unavailable.into_response();
    }
    let key = match authenticate(&state, request.headers()) {
        Ok(key) => key,
        Err(refusal) => return refusal.into_response(),
    };
    let decision = lock(&state.limiter).check(&key, Instant::now());
    let refusal = match decision {
        RateDecision::Allowed => None,
        RateDecision::MinuteExceeded => Some(MockApiError::TooManyRequests("minute")),
        RateDecision::DayExceeded => Some(MockApiError::TooManyRequests("day")),
    };
    if let Some(refusal) = refusal {
        state.counters.over_limit();
        return refusal.into_response();
    }
    match faults.draw(rand::random(), rand::random()) {
        FaultOutcome::None => next.run(request).await,
        FaultOutcome::RateLimited => {
            state.counters.rate_limited();
            MockApiError::TooManyRequests("minute").into_response()
        }
        FaultOutcome::ServerError => {
            state.counters.fault();
            MockApiError::Internal.into_response()
        }
        FaultOutcome::Unavailable => {
            state.counters.fault();
            MockApiError::Unavailable.into_response()
        }
        FaultOutcome::Hang => {
            state.counters.fault();
            if pause(&state, state.hang).await {
                MockApiError::Timeout.into_response()
            } else {
                MockApiError::Unavailable.into_response()
            }
        }
    }
}

/// Sleeps for `duration` unless the account shuts down first; false when it did.
async fn pause(state: &MockState, duration: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => true,
        _ = state.shutdown.cancelled() => false,
    }
}

/// What a request authenticates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Presented {
    /// `X-API-Key`.
    ApiKey(String),
    /// `Authorization: Bearer`: an OAuth access token, or the API key sent that way.
    Bearer(String),
}

pub(crate) fn presented_credential(headers: &HeaderMap) -> Option<Presented> {
    if let Some(key) = headers.get("x-api-key").and_then(|value| value.to_str().ok()) {
        return Some(Presented::ApiKey(key.trim().to_owned()));
    }
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Presented::Bearer(token.trim().to_owned()))
}

/// Whom the request counts against: the API key, or the OAuth application for its access tokens (ServiceM8's
/// limits are per add-on and account, not per token).
fn authenticate(state: &MockState, headers: &HeaderMap) -> Result<String, MockApiError> {
    let api_key = state.api_key.expose();
    match presented_credential(headers) {
        Some(Presented::ApiKey(key)) if keys_equal(&key, api_key) => Ok(key),
        Some(Presented::Bearer(token)) if keys_equal(&token, api_key) => Ok(token),
        Some(Presented::Bearer(token)) => {
            let mut grants = lock(&state.grants);
            match grants.check_access(&token, Instant::now()) {
                TokenCheck::Valid => Ok(format!("oauth:{}", grants.client_id())),
                TokenCheck::Expired | TokenCheck::Unknown => Err(MockApiError::InvalidToken),
            }
        }
        Some(Presented::ApiKey(_)) | None => Err(MockApiError::Unauthorized),
    }
}

pub(crate) fn keys_equal(presented: &str, expected: &str) -> bool {
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// `{object}.json` to the object type; anything else is a 404 like the real API's.
fn object_of(resource: &str) -> Result<ObjectKind, MockApiError> {
    resource
        .strip_suffix(".json")
        .and_then(|name| name.parse().ok())
        .ok_or_else(|| MockApiError::NotFound(format!("Unknown object type {resource}")))
}

/// `GET /api_1.0/{object}.json[?cursor=..][&$filter=..]`: everything without `cursor`, else a page.
async fn list_records(
    State(state): State<Arc<MockState>>,
    Path(resource): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, MockApiError> {
    let kind = object_of(&resource)?;
    let filter = match params.get("$filter") {
        Some(text) => Filter::parse(text).map_err(|error| MockApiError::BadRequest(error.to_string()))?,
        None => Filter::default(),
    };
    let (cursor, page_size) = match params.get("cursor").map(String::as_str) {
        None => (None, None),
        Some(FIRST_PAGE | "") => (None, Some(state.page_size)),
        Some(after) => (Some(after), Some(state.page_size)),
    };
    let page = lock(&state.records).list(kind, &filter, cursor, page_size);
    let mut response = Json(page.records).into_response();
    if let Some(next) = page.next_cursor.and_then(|next| HeaderValue::from_str(&next).ok()) {
        response.headers_mut().insert(NEXT_CURSOR_HEADER, next);
    }
    Ok(response)
}

/// `GET /api_1.0/{object}/{uuid}.json`.
async fn get_record(
    State(state): State<Arc<MockState>>,
    Path((object, resource)): Path<(String, String)>,
) -> Result<Response, MockApiError> {
    let kind = object_of(&format!("{object}.json"))?;
    if let (ObjectKind::Attachment, Some(uuid)) = (kind, resource.strip_suffix(".file")) {
        return attachment_file(&state, uuid);
    }
    let uuid = resource
        .strip_suffix(".json")
        .ok_or_else(|| MockApiError::NotFound(format!("No such resource {resource}")))?;
    state.counters.fetch(kind, uuid);
    let record = lock(&state.records).get(kind, uuid).cloned();
    match record {
        Some(record) => Ok(Json(record).into_response()),
        None => Err(MockApiError::NotFound(format!("{kind} {uuid} not found"))),
    }
}

/// `GET /api_1.0/Attachment/{uuid}.file`: the attachment's bytes. A simulated account holds no real files, so
/// each is a short text naming the attachment.
fn attachment_file(state: &MockState, uuid: &str) -> Result<Response, MockApiError> {
    state.counters.fetch(ObjectKind::Attachment, uuid);
    let record = lock(&state.records).get(ObjectKind::Attachment, uuid).cloned();
    let Some(record) = record else {
        return Err(MockApiError::NotFound(format!("attachment {uuid} not found")));
    };
    let name = record
        .get("attachment_name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body = format!("Simulated ServiceM8 attachment {name:?} ({uuid})\n");
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

async fn get_faults(State(state): State<Arc<MockState>>) -> Json<Faults> {
    Json(*lock(&state.faults))
}

/// `POST /_mock/faults` with a JSON `Faults`; omitted fields are zero.
async fn set_faults(State(state): State<Arc<MockState>>, Json(faults): Json<Faults>) -> Json<Faults> {
    *lock(&state.faults) = faults;
    Json(faults)
}

async fn get_stats(State(state): State<Arc<MockState>>) -> Json<MockStats> {
    Json(state.counters.snapshot())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_is_read_from_x_api_key_or_a_bearer_token() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_credential(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(presented_credential(&headers), Some(Presented::Bearer("abc".into())));
        headers.insert("x-api-key", HeaderValue::from_static("xyz"));
        assert_eq!(presented_credential(&headers), Some(Presented::ApiKey("xyz".into())));
        headers.remove("x-api-key");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_credential(&headers), None);
    }

    #[test]
    fn the_api_key_or_a_live_access_token_is_let_in_and_anything_else_is_a_401() {
        let state = MockState::new(
            &crate::MockConfig::default(),
            "http://mock.test/api_1.0".into(),
            tokio_util::sync::CancellationToken::new(),
        )
        .unwrap();
        let headers = |name: &'static str, value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_str(value).unwrap());
            headers
        };
        assert_eq!(authenticate(&state, &HeaderMap::new()), Err(MockApiError::Unauthorized));
        assert_eq!(
            authenticate(&state, &headers("x-api-key", "nope")),
            Err(MockApiError::Unauthorized)
        );
        assert!(authenticate(&state, &headers("x-api-key", "mock-api-key")).is_ok());
        assert!(authenticate(&state, &headers("authorization", "Bearer mock-api-key")).is_ok());
        assert_eq!(
            authenticate(&state, &headers("authorization", "Bearer made-up")),
            Err(MockApiError::InvalidToken)
        );

        let now = Instant::now();
        let token = {
            let mut grants = lock(&state.grants);
            let code = grants.issue_code("http://app.test/cb", "read_jobs", now);
            grants
                .exchange_code("mock-client-id", "mock-client-secret", &code, None, now)
                .unwrap()
                .access_token
        };
        let bearer = headers("authorization", &format!("Bearer {token}"));
        assert_eq!(authenticate(&state, &bearer), Ok("oauth:mock-client-id".into()));
        lock(&state.grants).expire_access_tokens(Instant::now());
        assert_eq!(authenticate(&state, &bearer), Err(MockApiError::InvalidToken));
        let stats = lock(&state.grants).stats();
        assert_eq!((stats.bearer_accepted, stats.bearer_refused), (1, 2));
    }

    #[test]
    fn keys_of_another_length_or_value_are_not_equal() {
        assert!(keys_equal("mock-api-key", "mock-api-key"));
        assert!(!keys_equal("mock-api-ke", "mock-api-key"));
        assert!(!keys_equal("mock-api-kez", "mock-api-key"));
        assert!(!keys_equal("", "mock-api-key"));
    }

    #[test]
    fn resources_name_their_object_type_in_any_case() {
        assert_eq!(object_of("Job.json"), Ok(ObjectKind::Job));
        assert_eq!(object_of("jobactivity.json"), Ok(ObjectKind::JobActivity));
        assert!(matches!(object_of("job"), Err(MockApiError::NotFound(_))));
        assert!(matches!(object_of("invoice.json"), Err(MockApiError::NotFound(_))));
    }
}
