//! `GET /realtime/v1/websocket?apikey=...&vsn=...` (and upstream's `/socket/websocket`): checks the apikey before
//! the upgrade (401 otherwise, as upstream), negotiates the serializer, and adapts axum's socket to the session.

use std::future::ready;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};

/// Per-connection read buffer of the websocket.
const READ_BUFFER_BYTES: usize = 4 * 1024;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use tokio_util::sync::DropGuard;

use super::protocol::{Vsn, WireMessage};
use super::session::{run_session, SessionContext};
use super::slots::{Full, Slot, Slots};
use crate::throttle::ClientAddress;

#[derive(Clone)]
struct SocketState {
    context: Arc<SessionContext>,
    /// The largest message, and frame, a client may send: past it the connection is closed (1009), so that a
    /// message fragmented over many frames cannot make the server buffer without bound.
    max_message_bytes: usize,
    /// Places for connections: a socket holds one for its life.
    slots: Arc<Slots>,
    /// Stops the relay's background tasks once the last router clone is gone.
    _running: Arc<DropGuard>,
}

pub fn router(context: Arc<SessionContext>, running: DropGuard, max_message_bytes: usize, slots: Arc<Slots>) -> Router {
    Router::new()
        .route("/realtime/v1/websocket", get(open_socket))
        .route("/socket/websocket", get(open_socket))
        .with_state(SocketState {
            context,
            max_message_bytes,
            slots,
            _running: Arc::new(running),
        })
}

async fn open_socket(
    State(state): State<SocketState>,
    ClientAddress(client): ClientAddress,
    Query(params): Query<Vec<(String, String)>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // As Phoenix does, a repeated parameter takes its last value (realtime-js may append `vsn` to params that
    // already carry one).
    let param = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    if !param("apikey").is_some_and(|apikey| state.context.authority.accepts_apikey(apikey)) {
        return refuse(StatusCode::UNAUTHORIZED, "a valid apikey is required".into());
    }
    let vsn = match Vsn::from_query(param("vsn")) {
        Ok(vsn) => vsn,
        Err(error) => return refuse(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let slot = match state.slots.take(client) {
        Ok(slot) => slot,
        Err(Full::Node) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "this node holds as many connections as it may (REALTIME_MAX_CONNECTIONS): try again later".into(),
            )
        }
        Err(Full::Address) => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "too many connections from this address (REALTIME_MAX_CONNECTIONS_PER_ADDRESS)".into(),
            )
        }
    };
    let apikey = param("apikey").map(str::to_owned);
    match upgrade {
        // The default 128 KiB read buffer, allocated for every connection, would dominate the memory of thousands
        // of idle subscribers; channel frames are small.
        Ok(upgrade) => upgrade
            .read_buffer_size(READ_BUFFER_BYTES)
            .max_message_size(state.max_message_bytes)
            .max_frame_size(state.max_message_bytes)
            .on_upgrade(move |socket| serve_socket(state.context, vsn, apikey, socket, slot)),
        Err(rejection) => rejection.into_response(),
    }
}

fn refuse(status: StatusCode, reason: String) -> Response {
    (status, Json(serde_json::json!({ "error": reason }))).into_response()
}

/// Serves one connection, holding its `slot` until it ends.
async fn serve_socket(context: Arc<SessionContext>, vsn: Vsn, apikey: Option<String>, socket: WebSocket, _slot: Slot) {
    // Lives in this future, so the connection stops counting even when the session is dropped mid-way.
    let _open = crate::metrics::count_realtime_connection();
    let (sink, stream) = socket.split();
    let sink = sink.with(|message: WireMessage| {
        ready(Ok::<_, axum::Error>(match message {
            WireMessage::Text(text) => Message::Text(text.into()),
            WireMessage::Binary(bytes) => Message::Binary(bytes.into()),
            WireMessage::Close { code, reason } => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        }))
    });
    // Pings are answered by the websocket layer itself; a close or an error ends the session.
    let stream = stream
        .take_while(|message| ready(matches!(message, Ok(message) if !matches!(message, Message::Close(_)))))
        .filter_map(|message| {
            ready(match message {
                Ok(Message::Text(text)) => Some(WireMessage::Text(text.to_string())),
                Ok(Message::Binary(bytes)) => Some(WireMessage::Binary(bytes.to_vec())),
                _ => None,
            })
        });
    run_session(context, vsn, apikey, Box::pin(sink), Box::pin(stream)).await;
}
