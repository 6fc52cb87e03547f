//! The management API, `/api/webhooks/management`, admin only: `Authorization: Bearer <ADMIN_TOKEN>` or a
//! dashboard session.

use app::api::DashboardBackend;
use app::model::{EventQuery, EventStatus};
use app::session::SessionCookie;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{bad_request, ApiError};
use crate::state::AppState;
use crate::throttle::client_address;

/// The largest management request body: an action is a few fields.
pub const MAX_ACTION_BYTES: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/webhooks/management", get(query_management).post(act))
        .layer(DefaultBodyLimit::max(MAX_ACTION_BYTES))
}

/// Proof that the request comes from an admin; take it as a handler argument to require admin access.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(authorization) = parts.headers.get(AUTHORIZATION) {
            // A client that sent too many wrong tokens is refused whatever it sends now.
            let client = client_address(&parts.extensions);
            if let Some(client) = client {
                state
                    .throttles
                    .bearer_tokens
                    .admit(client)
                    .map_err(ApiError::TooManyRequests)?;
            }
            let token = authorization
                .to_str()
                .ok()
                .and_then(|value| value.strip_prefix("Bearer "))
                .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <ADMIN_TOKEN>".into()))?;
            if state.backend.admin_token_matches(token.trim()) {
                return Ok(Admin);
            }
            if let Some(client) = client {
                state
                    .throttles
                    .bearer_tokens
                    .failed(client)
                    .map_err(ApiError::TooManyRequests)?;
            }
            return Err(ApiError::Unauthorized("invalid admin token".into()));
        }
        if let Some(session) = SessionCookie::Admin.value_in(&parts.headers) {
            if state.backend.session_is_active(session).await? {
                return Ok(Admin);
            }
        }
        Err(ApiError::Unauthorized(
            "admin authentication required: send Authorization: Bearer <ADMIN_TOKEN>".into(),
        ))
    }
}

#[derive(Debug, Deserialize)]
struct ManagementQuery {
    action: Option<String>,
    status: Option<String>,
    object_type: Option<String>,
    event_type: Option<String>,
    /// Part of an object uuid, or an event id.
    #[serde(alias = "uuid")]
    search: Option<String>,
    /// RFC 3339: received at or after.
    from: Option<String>,
    /// RFC 3339: received before.
    to: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
    /// The event of `action=event`.
    #[serde(alias = "eventId")]
    id: Option<String>,
}

const ACTIONS: &str = "stats, health, throughput, events or event";

/// `?action=stats` or `?action=events&status=...&limit=...`.
async fn query_management(
    _: Admin,
    State(state): State<AppState>,
    query: Result<Query<ManagementQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(bad_request)?;
    match query.action.as_deref() {
        Some("stats") => Ok(Json(json!(state.backend.stats().await?))),
        Some("health") => Ok(Json(json!(state.backend.pipeline_health().await?))),
        Some("throughput") => Ok(Json(json!({ "minutes": state.backend.minute_buckets().await? }))),
        Some("events") => Ok(Json(json!(state.backend.list_events(event_query(&query)?).await?))),
        Some("event") => {
            let id = query
                .id
                .as_deref()
                .ok_or_else(|| ApiError::BadRequest("action=event needs id".into()))?;
            Ok(Json(json!(state.backend.event_detail(id).await?)))
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "unknown action {other:?}: expected {ACTIONS}"
        ))),
        None => Err(ApiError::BadRequest(format!("missing action: expected {ACTIONS}"))),
    }
}

fn event_query(query: &ManagementQuery) -> Result<EventQuery, ApiError> {
    let status = match query.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(name) => Some(name.parse::<EventStatus>().map_err(bad_request)?),
    };
    let limit = match query.limit.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<u32>()
                .map_err(|_| ApiError::BadRequest(format!("limit must be a positive number, not {text:?}")))?,
        ),
    };
    let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    Ok(EventQuery {
        status,
        object_type: non_empty(&query.object_type).map(|t| crate::ingest::payload::canonical_object_type(&t)),
        event_type: non_empty(&query.event_type),
        search: non_empty(&query.search),
        received_from: time_param("from", &query.from)?,
        received_to: time_param("to", &query.to)?,
        cursor: non_empty(&query.cursor),
        limit,
    })
}

/// An RFC 3339 (or ServiceM8 date) query parameter as unix milliseconds.
fn time_param(name: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => crate::ingest::payload::parse_timestamp(text)
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest(format!("{name} must be an RFC 3339 time, not {text:?}"))),
    }
}

/// The actions of `POST /api/webhooks/management`; field names as in the seed (camelCase), snake_case accepted.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Action {
    RetryEvent {
        #[serde(rename = "eventId", alias = "event_id")]
        event_id: String,
    },
    RetryFailedEvents {
        #[serde(default, rename = "dryRun", alias = "dry_run")]
        dry_run: bool,
    },
    Cleanup {
        #[serde(rename = "olderThanDays", alias = "older_than_days")]
        older_than_days: i64,
    },
}

async fn act(
    _: Admin,
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(MAX_ACTION_BYTES),
        _ => bad_request(rejection),
    })?;
    let action: Action = serde_json::from_value(body).map_err(|error| {
        ApiError::BadRequest(format!(
            "{error}: expected {{\"action\": \"retry_event\", \"eventId\"}}, {{\"action\": \"retry_failed_events\"}} \
             or {{\"action\": \"cleanup\", \"olderThanDays\"}}"
        ))
    })?;
    match action {
        Action::RetryEvent { event_id } => {
            state.backend.retry_event(&event_id).await?;
            Ok(Json(
                json!({ "success": true, "eventId": event_id, "status": "queued" }),
            ))
        }
        Action::RetryFailedEvents { dry_run } => {
            let count = state.backend.retry_failed_events(dry_run).await?;
            Ok(Json(if dry_run {
                json!({ "success": true, "dryRun": true, "wouldRetry": count })
            } else {
                json!({ "success": true, "retried": count })
            }))
        }
        Action::Cleanup { older_than_days } => {
            let deleted = state.backend.cleanup(older_than_days).await?;
            Ok(Json(
                json!({ "success": true, "deleted": deleted, "olderThanDays": older_than_days }),
            ))
        }
    }
}
