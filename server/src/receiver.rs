//! The webhook receiver, `POST /api/webhooks/sm8/{account}` (and `/api/webhooks/sm8`, the default account's, where
//! add-on callbacks are routed by the ServiceM8 account their JWT names): reads the raw body, decodes and verifies
//! it with the account's secrets (`ingest`), and commits its events as `queued` before answering.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::LiveAccount;
use crate::error::{ApiError, ErrorBody};
use crate::ingest::decode::{Decoded, Delivery, IngestError};
use crate::ingest::formats::{self, addon, Body as DeliveryBody};
use crate::ingest::{self, SIGNATURE_HEADER};
use crate::metrics;
use crate::state::AppState;
use crate::store::{now_millis, Insertion, DEFAULT_ACCOUNT};

/// Largest body the receiver reads; larger deliveries get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Headers never stored with an event.
const UNSTORED_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receive_default, default_status))
        .routes(routes!(receive_for_account, account_status))
}

/// What the receiver answers for an accepted delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct Receipt {
    /// Events in the delivery.
    pub received: usize,
    /// How many of them were already stored by an earlier delivery.
    pub duplicates: usize,
    /// The stored id of each event, in delivery order (the earlier id for a duplicate).
    pub event_ids: Vec<Uuid>,
}

/// The default account's receiver; an add-on callback goes to the account its JWT names (`addon_account`).
#[utoipa::path(
    post,
    path = "/api/webhooks/sm8",
    tag = "receiver",
    summary = "Receive a delivery for the default account (add-on callbacks: for the account their JWT names)",
    params(
        ("x-servicem8-signature" = Option<String>, Header, description = "Seed format: hex HMAC-SHA256 of the body under WEBHOOK_SECRET"),
        ("webhook-id" = Option<String>, Header, description = "Standard Webhooks: the message id"),
        ("webhook-timestamp" = Option<String>, Header, description = "Standard Webhooks: unix seconds"),
        ("webhook-signature" = Option<String>, Header, description = "Standard Webhooks: `v1,<base64>` signatures"),
        ("token" = Option<String>, Query, description = "The account's URL token (WEBHOOK_URL_TOKEN), for unsigned callbacks"),
    ),
    request_body(content(
        ("application/json"),
        ("application/x-www-form-urlencoded"),
        ("text/plain"),
        ("application/jwt"),
    ), description = "An object or event callback, the seed format, a Standard Webhooks message, an add-on JWT, \
                      or the `mode=subscribe&challenge=…` handshake"),
    responses(
        (status = 200, description = "Stored as queued: the events and their ids; or, for a subscription \
                                        handshake, the challenge echoed as text",
            content((Receipt = "application/json"), (String = "text/plain"))),
        (status = 400, description = "The delivery cannot be understood", body = ErrorBody),
        (status = 401, description = "The delivery is not authentic", body = ErrorBody),
        (status = 404, description = "No account has the ServiceM8 account an add-on JWT names", body = ErrorBody),
        (status = 410, description = "The account is disabled", body = ErrorBody),
        (status = 413, description = "Over 1 MiB, more events than MAX_EVENTS_PER_DELIVERY, or an event over MAX_EVENT_BYTES", body = ErrorBody),
        (status = 503, description = "The receiver is saturated or storage is unavailable: nothing was stored, retry after Retry-After", body = ErrorBody),
    )
)]
async fn receive_default(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(&headers, body)
        .await
        .inspect_err(metrics::count_refused_webhook)?;
    let account = match formats::read(&body) {
        DeliveryBody::Jwt(token) => addon_account(&state, &token)?,
        _ => receiving_account(&state, DEFAULT_ACCOUNT)?,
    };
    receive(&state, &account, &uri, &headers, &body).await
}

/// The account an add-on callback is for: the one with the ServiceM8 account UUID its JWT names. The default
/// account also takes callbacks naming no UUID, or one no account has while it has none of its own (a one-account
/// deployment need not know its UUID). Otherwise a UUID no account has is refused: every account that installed
/// the add-on shares its App Secret, so the default account's would verify another account's callback.
fn addon_account(state: &AppState, token: &str) -> Result<Arc<LiveAccount>, ApiError> {
    let Some(uuid) = addon::claimed_account_uuid(token) else {
        return receiving_account(state, DEFAULT_ACCOUNT);
    };
    if let Some(account) = state.accounts.by_servicem8_uuid(&uuid) {
        return open_account(account);
    }
    let default = receiving_account(state, DEFAULT_ACCOUNT)?;
    if default.servicem8_account_uuid.is_some() {
        tracing::warn!(account_uuid = %uuid, "add-on callback for a ServiceM8 account no account has refused");
        return Err(ApiError::NotFound(format!(
            "no account has ServiceM8 account UUID {uuid}"
        )));
    }
    Ok(default)
}

/// One account's receiver.
#[utoipa::path(
    post,
    path = "/api/webhooks/sm8/{account}",
    tag = "receiver",
    summary = "Receive a delivery for one account",
    params(
        ("account" = String, Path, description = "The account's slug"),
        ("x-servicem8-signature" = Option<String>, Header, description = "Seed format: hex HMAC-SHA256 of the body under WEBHOOK_SECRET"),
        ("webhook-id" = Option<String>, Header, description = "Standard Webhooks: the message id"),
        ("webhook-timestamp" = Option<String>, Header, description = "Standard Webhooks: unix seconds"),
        ("webhook-signature" = Option<String>, Header, description = "Standard Webhooks: `v1,<base64>` signatures"),
        ("token" = Option<String>, Query, description = "The account's URL token (WEBHOOK_URL_TOKEN), for unsigned callbacks"),
    ),
    request_body(content(
        ("application/json"),
        ("application/x-www-form-urlencoded"),
        ("text/plain"),
        ("application/jwt"),
    ), description = "An object or event callback, the seed format, a Standard Webhooks message, an add-on JWT, \
                      or the `mode=subscribe&challenge=…` handshake"),
    responses(
        (status = 200, description = "Stored as queued: the events and their ids; or, for a subscription \
                                        handshake, the challenge echoed as text",
            content((Receipt = "application/json"), (String = "text/plain"))),
        (status = 400, description = "The delivery cannot be understood", body = ErrorBody),
        (status = 401, description = "The delivery is not authentic", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 410, description = "The account is disabled", body = ErrorBody),
        (status = 413, description = "Over 1 MiB, more events than MAX_EVENTS_PER_DELIVERY, or an event over MAX_EVENT_BYTES", body = ErrorBody),
        (status = 503, description = "The receiver is saturated or storage is unavailable: nothing was stored, retry after Retry-After", body = ErrorBody),
    )
)]
async fn receive_for_account(
    State(state): State<AppState>,
    Path(account): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let account = receiving_account(&state, &account)?;
    let body = read_body(&headers, body)
        .await
        .inspect_err(metrics::count_refused_webhook)?;
    receive(&state, &account, &uri, &headers, &body).await
}

/// The account named `slug`, if it takes webhooks: `404` when there is none, `410` when it is disabled.
fn receiving_account(state: &AppState, slug: &str) -> Result<Arc<LiveAccount>, ApiError> {
    let account = state
        .accounts
        .get(slug)
        .ok_or_else(|| ApiError::NotFound(format!("no account {slug}")))?;
    open_account(account)
}

fn open_account(account: Arc<LiveAccount>) -> Result<Arc<LiveAccount>, ApiError> {
    if account.disabled {
        return Err(ApiError::Gone(format!(
            "account {} is disabled: it takes no webhooks",
            account.slug
        )));
    }
    Ok(account)
}

async fn receive(
    state: &AppState,
    account: &LiveAccount,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let decoded = decode_delivery(state, account, headers, uri.query(), body)
        .inspect_err(|error| metrics::count_refused_account_webhook(state.accounts.tallies(), &account.slug, error))?;
    let delivery = match decoded {
        Decoded::Handshake { challenge } => {
            tracing::info!("answered a ServiceM8 subscription handshake");
            return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], challenge).into_response());
        }
        Decoded::Delivery(delivery) => delivery,
    };
    let receipt = store_delivery(state, &account.slug, headers, body, delivery).await?;
    Ok(Json(receipt).into_response())
}

/// What `body` holds, or why it is refused: not authentic, not understood, more events than one delivery may
/// hold, or an event larger than one may be.
fn decode_delivery(
    state: &AppState,
    account: &LiveAccount,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Decoded, ApiError> {
    let decoded = ingest::decode::decode(&account.delivery, headers, query, body).map_err(|error| match error {
        IngestError::Unauthorized(reason) => {
            tracing::warn!(%reason, account = %account.slug, "webhook rejected");
            ApiError::Unauthorized(reason)
        }
        IngestError::BadRequest(reason) => ApiError::BadRequest(reason),
    })?;
    if let Decoded::Delivery(delivery) = &decoded {
        let limit = state.ingest.max_events_per_delivery;
        if delivery.events.len() > limit {
            return Err(ApiError::TooManyEvents(limit));
        }
        let most_bytes = state.ingest.max_event_bytes;
        if delivery
            .events
            .iter()
            .any(|event| json_length(&event.changes) > most_bytes)
        {
            return Err(ApiError::EventTooLarge(most_bytes));
        }
    }
    Ok(decoded)
}

/// How many bytes `value` takes as compact JSON, without writing it out.
fn json_length(value: &serde_json::Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// Commits the delivery's events to `account` as `queued`, then wakes the processor.
async fn store_delivery(
    state: &AppState,
    account: &str,
    headers: &HeaderMap,
    body: &[u8],
    delivery: Delivery,
) -> Result<Receipt, ApiError> {
    let events = ingest::new_events(account, delivery, headers_as_json(headers), body, now_millis());
    let insertions = state.queue.enqueue(&events).await?;
    metrics::count_stored_webhooks(state.accounts.tallies(), account, &insertions);
    let duplicates = insertions
        .iter()
        .filter(|i| matches!(i, Insertion::Duplicate(_)))
        .count();
    tracing::info!(account, received = insertions.len(), duplicates, "webhook accepted");
    Ok(Receipt {
        received: insertions.len(),
        duplicates,
        event_ids: insertions.iter().map(Insertion::event_id).collect(),
    })
}

#[utoipa::path(
    get,
    path = "/api/webhooks/sm8",
    tag = "receiver",
    summary = "The default account's receiver is up, and how it checks deliveries",
    responses(
        (status = 200, body = ReceiverStatus),
        (status = 404, description = "No default account", body = ErrorBody),
        (status = 410, description = "The account is disabled", body = ErrorBody),
    )
)]
async fn default_status(State(state): State<AppState>) -> Result<Json<ReceiverStatus>, ApiError> {
    let account = receiving_account(&state, DEFAULT_ACCOUNT)?;
    Ok(webhook_status(&account, "/api/webhooks/sm8"))
}

#[utoipa::path(
    get,
    path = "/api/webhooks/sm8/{account}",
    tag = "receiver",
    summary = "One account's receiver is up, and how it checks deliveries",
    params(("account" = String, Path, description = "The account's slug")),
    responses(
        (status = 200, body = ReceiverStatus),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 410, description = "The account is disabled", body = ErrorBody),
    )
)]
async fn account_status(
    State(state): State<AppState>,
    Path(account): Path<String>,
) -> Result<Json<ReceiverStatus>, ApiError> {
    let account = receiving_account(&state, &account)?;
    let endpoint = format!("/api/webhooks/sm8/{}", account.slug);
    Ok(webhook_status(&account, &endpoint))
}

/// The seed's test endpoint: tells a sender the receiver is up and how it checks deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiverStatus {
    /// Always `ok`.
    status: &'static str,
    endpoint: String,
    /// `enabled` when WEBHOOK_SECRET is set.
    signature_verification: &'static str,
    signature_header: &'static str,
    formats: Vec<&'static str>,
    handshake: &'static str,
    verification: Verifications,
    max_body_bytes: usize,
}

/// Which checks are configured, never the secrets themselves.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verifications {
    hmac_sha256: bool,
    url_token: bool,
    addon_jwt: bool,
    standard_webhooks: bool,
}

fn webhook_status(account: &LiveAccount, endpoint: &str) -> Json<ReceiverStatus> {
    let secrets = &account.delivery;
    let hmac_enabled = ingest::decode::configured(&secrets.webhook_secret).is_some();
    Json(ReceiverStatus {
        status: "ok",
        endpoint: endpoint.to_owned(),
        signature_verification: if hmac_enabled { "enabled" } else { "disabled" },
        signature_header: SIGNATURE_HEADER,
        formats: ingest::formats::format_names(),
        handshake: "mode=subscribe&challenge=...",
        verification: Verifications {
            hmac_sha256: hmac_enabled,
            url_token: ingest::decode::configured(&secrets.webhook_url_token).is_some(),
            addon_jwt: ingest::decode::configured(&secrets.servicem8_app_secret).is_some(),
            standard_webhooks: secrets
                .standard_webhook_secrets
                .iter()
                .any(|secret| !secret.expose().is_empty()),
        },
        max_body_bytes: MAX_BODY_BYTES,
    })
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
        stored.insert(
            name.as_str().to_owned(),
            String::from_utf8_lossy(value.as_bytes()).into_owned().into(),
        );
    }
    serde_json::Value::Object(stored)
}
