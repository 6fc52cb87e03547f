//! Supabase's REST broadcast for server-side senders (and supabase-js's fallback for channels not joined):
//! `POST /realtime/v1/api/broadcast` with `{"messages":[{"topic","event","payload","private"}]}`, and
//! `POST /realtime/v1/api/broadcast/{topic}/events/{event}` with the payload as body. Both answer 202.
//! Headers: `apikey` (the anon key) and `Authorization: Bearer <access token>`; the token must allow broadcasting
//! on each topic (admins anywhere, anyone on public topics, portal users never).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Access, Identity, TOPIC_PREFIX};
use super::bus::{Broadcast, Publication};
use super::protocol::BroadcastPayload;
use super::scope::scoped;
use super::session::SessionContext;
use crate::error::ErrorBody;

/// Most messages one request may carry.
const MAX_MESSAGES: usize = 1000;

pub fn router(context: Arc<SessionContext>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(broadcast_messages))
        .routes(routes!(broadcast_event))
        .with_state(context)
}

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// 400: the body is not a broadcast request.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid apikey or access token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the token does not allow broadcasting on a topic.
    #[error("{0}")]
    Forbidden(String),
    /// 503: the bus could not take the messages; retry.
    #[error("broadcast failed, retry later")]
    Unavailable,
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let status = match &self {
            RestError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RestError::Forbidden(_) => StatusCode::FORBIDDEN,
            RestError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, ErrorBody::json(&self)).into_response()
    }
}

/// Messages to broadcast, between 1 and 1,000.
#[derive(Deserialize, ToSchema)]
struct BroadcastRequest {
    messages: Vec<Message>,
}

#[derive(Deserialize, ToSchema)]
struct Message {
    /// The topic, with or without the `realtime:` prefix.
    topic: String,
    event: String,
    #[serde(default)]
    payload: Option<Value>,
}

#[utoipa::path(
    post,
    path = "/realtime/v1/api/broadcast",
    tag = "realtime",
    summary = "Broadcast messages to their topics' subscribers",
    request_body(content = BroadcastRequest, content_type = "application/json"),
    security(("realtime_apikey" = [])),
    params(("authorization" = Option<String>, Header, description = "`Bearer <access token>`: an admin's token may broadcast anywhere, others on public topics only")),
    responses(
        (status = 202, description = "Published"),
        (status = 400, description = "Not a broadcast request", body = ErrorBody),
        (status = 401, description = "No valid apikey or access token", body = ErrorBody),
        (status = 403, description = "The token may not broadcast on a topic", body = ErrorBody),
        (status = 503, description = "The bus could not take the messages; retry", body = ErrorBody),
    )
)]
async fn broadcast_messages(
    State(context): State<Arc<SessionContext>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, RestError> {
    let identity = authenticate(&context, &headers)?;
    let request: BroadcastRequest =
        serde_json::from_slice(&body).map_err(|error| RestError::BadRequest(format!("invalid broadcast: {error}")))?;
    if request.messages.is_empty() || request.messages.len() > MAX_MESSAGES {
        return Err(RestError::BadRequest(format!(
            "send between 1 and {MAX_MESSAGES} messages"
        )));
    }
    let messages = request
        .messages
        .into_iter()
        .map(|m| (m.topic, m.event, m.payload.unwrap_or_default()));
    publish(&context, &identity, messages.collect()).await
}

#[utoipa::path(
    post,
    path = "/realtime/v1/api/broadcast/{topic}/events/{event}",
    tag = "realtime",
    summary = "Broadcast one message, its payload the body",
    params(
        ("topic" = String, Path, description = "The topic, with or without the `realtime:` prefix"),
        ("event" = String, Path, description = "The event name"),
        ("authorization" = Option<String>, Header, description = "`Bearer <access token>`"),
    ),
    request_body(content = Value, content_type = "application/json", description = "The payload (empty: `{}`)"),
    security(("realtime_apikey" = [])),
    responses(
        (status = 202, description = "Published"),
        (status = 400, description = "The payload is not JSON", body = ErrorBody),
        (status = 401, description = "No valid apikey or access token", body = ErrorBody),
        (status = 403, description = "The token may not broadcast on this topic", body = ErrorBody),
        (status = 503, description = "The bus could not take the message; retry", body = ErrorBody),
    )
)]
async fn broadcast_event(
    State(context): State<Arc<SessionContext>>,
    Path((topic, event)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, RestError> {
    let identity = authenticate(&context, &headers)?;
    let payload = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&body).map_err(|error| RestError::BadRequest(format!("invalid payload: {error}")))?
    };
    publish(&context, &identity, vec![(topic, event, payload)]).await
}

/// Checks the apikey and returns who the bearer token is.
fn authenticate(context: &SessionContext, headers: &HeaderMap) -> Result<Identity, RestError> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if !header("apikey").is_some_and(|apikey| context.authority.accepts_apikey(apikey)) {
        return Err(RestError::Unauthorized("a valid apikey header is required".into()));
    }
    let token = header("authorization").and_then(|value| value.strip_prefix("Bearer "));
    let credentials = context
        .authority
        .credentials(token)
        .map_err(|error| RestError::Unauthorized(error.to_string()))?;
    Ok(credentials.identity)
}

async fn publish(
    context: &SessionContext,
    identity: &Identity,
    messages: Vec<(String, String, Value)>,
) -> Result<StatusCode, RestError> {
    let mut publications = Vec::with_capacity(messages.len());
    for (topic, event, payload) in messages {
        if topic.trim().is_empty() || event.trim().is_empty() {
            return Err(RestError::BadRequest("each message needs a topic and an event".into()));
        }
        let topic = if topic.starts_with(TOPIC_PREFIX) {
            topic
        } else {
            format!("{TOPIC_PREFIX}{topic}")
        };
        if let Access::Denied(reason) = context.authority.authorize_broadcast(identity, &topic) {
            return Err(match identity {
                Identity::Anonymous => RestError::Unauthorized(reason),
                Identity::Admin { .. } | Identity::Viewer { .. } | Identity::Portal { .. } => {
                    RestError::Forbidden(reason)
                }
            });
        }
        let topic = scoped(identity.account(), &topic);
        let broadcast = Broadcast::new(topic, event, BroadcastPayload::Json(payload), None, false);
        publications.push(Publication::Ephemeral(broadcast));
    }
    context.bus.publish(publications).await.map_err(|error| {
        tracing::error!(%error, "publishing a REST broadcast failed");
        RestError::Unavailable
    })?;
    Ok(StatusCode::ACCEPTED)
}
