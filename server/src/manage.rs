//! The management API, `/api/webhooks/management`, admin only.

use app::api::DashboardBackend;
use app::model::{EventQuery, EventStatus};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Admin;
use crate::error::{bad_request, ApiError};
use crate::startup::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/webhooks/management", get(query_management))
}

#[derive(Debug, Deserialize)]
struct ManagementQuery {
    action: Option<String>,
    status: Option<String>,
    limit: Option<String>,
}

/// `?action=stats` or `?action=events&status=...&limit=...`.
async fn query_management(
    _: Admin,
    State(state): State<AppState>,
    query: Result<Query<ManagementQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(bad_request)?;
    match query.action.as_deref() {
        Some("stats") => Ok(Json(json!(state.backend.stats().await?))),
        Some("events") => {
            let events = state.backend.list_events(event_query(&query)?).await?;
            Ok(Json(json!({ "events": events })))
        }
        Some(other) => Err(ApiError::BadRequest(format!("unknown action {other:?}: expected stats or events"))),
        None => Err(ApiError::BadRequest("missing action: expected stats or events".into())),
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
    Ok(EventQuery { status, limit })
}
