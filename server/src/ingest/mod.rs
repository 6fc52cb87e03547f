//! The webhook receiver, `POST /api/webhooks/sm8`: reads the raw body, verifies it, normalises it into events
//! and commits them as `queued` before answering.

pub mod payload;
pub mod signature;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::{now_millis, Insertion, NewEvent};
use signature::Verification;

/// Largest body the receiver reads; larger deliveries get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Header carrying the seed format's HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-servicem8-signature";
/// Headers never stored with an event.
const UNSTORED_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

pub fn router() -> Router<AppState> {
    Router::new().route("/api/webhooks/sm8", post(receive_webhook).get(webhook_status))
}

/// What the receiver answers for an accepted delivery.
#[derive(Debug, Serialize)]
pub struct Receipt {
    /// Events in the delivery.
    pub received: usize,
    /// How many of them were already stored by an earlier delivery.
    pub duplicates: usize,
    /// The stored id of each event, in delivery order (the earlier id for a duplicate).
    pub event_ids: Vec<Uuid>,
}

async fn receive_webhook(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Json<Receipt>, ApiError> {
    let body = read_body(&headers, body).await?;
    let secret = state.webhook_secret.as_ref().map(|secret| secret.expose().as_bytes());
    let verification =
        signature::verify(secret, &body, headers.get(SIGNATURE_HEADER).map(|value| value.as_bytes()));
    if let Verification::Rejected(reason) = &verification {
        tracing::warn!(%reason, "webhook rejected: bad signature");
        return Err(ApiError::Unauthorized(format!("invalid signature: {reason}")));
    }
    let parsed = payload::parse_seed(&body).map_err(|error| ApiError::BadRequest(error.to_string()))?;

    let received_at = now_millis();
    let stored_headers = headers_as_json(&headers);
    let events: Vec<NewEvent> = parsed
        .into_iter()
        .map(|event| NewEvent {
            id: Uuid::now_v7(),
            dedup_key: event.dedup_key("seed"),
            format: "seed".into(),
            object_type: event.object_type,
            object_uuid: event.object_uuid,
            event_type: event.event_type,
            occurred_at: event.occurred_at,
            changes: event.changes,
            raw_body: body.to_vec(),
            headers: stored_headers.clone(),
            verification: verification.as_str().into(),
            received_at,
        })
        .collect();
    let insertions = state.store.insert_events(&events).await?;
    let duplicates = insertions.iter().filter(|i| matches!(i, Insertion::Duplicate(_))).count();
    tracing::info!(received = insertions.len(), duplicates, "webhook accepted");
    Ok(Json(Receipt {
        received: insertions.len(),
        duplicates,
        event_ids: insertions.iter().map(Insertion::event_id).collect(),
    }))
}

/// The seed's test endpoint: tells a sender the receiver is up and how it checks deliveries.
async fn webhook_status(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "endpoint": "/api/webhooks/sm8",
        "signature_verification": if state.webhook_secret.is_some() { "enabled" } else { "disabled" },
        "signature_header": SIGNATURE_HEADER,
        "formats": ["seed"],
        "max_body_bytes": MAX_BODY_BYTES,
    }))
}

/// Reads the whole body, refusing more than `MAX_BODY_BYTES` without buffering it.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared_length.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|error| {
        let over_limit = std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if over_limit {
            ApiError::PayloadTooLarge(MAX_BODY_BYTES)
        } else {
            ApiError::BadRequest(format!("could not read the request body: {error}"))
        }
    })
}

fn headers_as_json(headers: &HeaderMap) -> serde_json::Value {
    let mut stored = serde_json::Map::new();
    for (name, value) in headers {
        if UNSTORED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        stored.insert(name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned().into());
    }
    serde_json::Value::Object(stored)
}
