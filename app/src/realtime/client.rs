//! The browser socket behind `use_webhook_updates`: one task per hook that fetches credentials, opens the
//! websocket with gloo-net, feeds `Session` the frames and the time, sends what it answers, and reconnects with
//! backoff until the component unmounts. The protocol decisions live in `session`; this file only does I/O.

use std::future::Future;
use std::sync::Mutex;

use futures::channel::oneshot;
use futures::{FutureExt, SinkExt, StreamExt};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::Message;
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;

use super::protocol::{Frame, VSN};
use super::session::{backoff_ms, Output, Session};
use super::{realtime_credentials, ConnectionStatus, RealtimeCredentials, UseWebhookUpdatesOptions, WebhookUpdate};
use crate::error::AppError;

/// Fetch a new access token this long before the current one expires.
const TOKEN_REFRESH_MARGIN_MS: i64 = 60_000;
/// After a failed token fetch, try again this much later.
const TOKEN_RETRY_MS: i64 = 10_000;
/// A socket that has not opened by then is given up and tried again.
const OPEN_TIMEOUT_MS: u32 = 10_000;

/// Where the task reports to.
pub(super) struct Sinks {
    pub status: RwSignal<ConnectionStatus>,
    pub last_update: RwSignal<Option<WebhookUpdate>>,
    pub refetch_needed: RwSignal<u64>,
}

impl Sinks {
    /// Changes the status, telling its readers only when it really changed.
    fn set_status(&self, status: ConnectionStatus) {
        if self.status.try_get_untracked().is_some_and(|current| current != status) {
            self.status.try_set(status);
        }
    }
}

/// Starts the connection task; it ends when the current reactive owner is cleaned up.
pub(super) fn start(options: UseWebhookUpdatesOptions, sinks: Sinks) {
    let (stop_sender, stop) = oneshot::channel::<()>();
    let stop_sender = Mutex::new(Some(stop_sender));
    on_cleanup(move || {
        if let Some(sender) = stop_sender.lock().ok().and_then(|mut sender| sender.take()) {
            let _ = sender.send(());
        }
    });
    leptos::task::spawn_local(run(options, sinks, stop));
}

/// How one connection ended.
enum Ended {
    /// The component unmounted.
    Stopped,
    /// No admin or portal session: nothing to connect as.
    SignedOut,
    /// The socket failed or died; `healthy` when it had been live, so the backoff starts over.
    Lost { healthy: bool },
}

async fn run(options: UseWebhookUpdatesOptions, sinks: Sinks, mut stop: oneshot::Receiver<()>) {
    let topics = options.topics();
    if topics.is_empty() {
        sinks.set_status(ConnectionStatus::Closed);
        return;
    }
    let mut session = Session::new(&topics);
    let mut failures = 0_u32;
    let mut was_live = false;
    loop {
        let ended = connect_once(&options, &sinks, &mut session, &mut stop, &mut was_live).await;
        session.disconnected();
        match ended {
            Ended::Stopped | Ended::SignedOut => {
                sinks.set_status(ConnectionStatus::Closed);
                return;
            }
            Ended::Lost { healthy } if healthy => failures = 0,
            Ended::Lost { .. } => {}
        }
        sinks.set_status(pending_status(was_live));
        let delay = backoff_ms(failures, jitter());
        failures = failures.saturating_add(1);
        if until_stopped(&mut stop, TimeoutFuture::new(delay as u32))
            .await
            .is_none()
        {
            sinks.set_status(ConnectionStatus::Closed);
            return;
        }
    }
}

/// One socket from credentials to its end.
async fn connect_once(
    options: &UseWebhookUpdatesOptions,
    sinks: &Sinks,
    session: &mut Session,
    stop: &mut oneshot::Receiver<()>,
    was_live: &mut bool,
) -> Ended {
    let credentials = match until_stopped(stop, realtime_credentials()).await {
        None => return Ended::Stopped,
        Some(Ok(credentials)) => credentials,
        Some(Err(AppError::NotSignedIn)) => return Ended::SignedOut,
        Some(Err(error)) => {
            leptos::logging::warn!("realtime: fetching credentials failed: {error}");
            return Ended::Lost { healthy: false };
        }
    };
    let Some(url) = socket_url(&credentials.apikey) else {
        return Ended::Lost { healthy: false };
    };
    let Ok(mut socket) = WebSocket::open(&url) else {
        return Ended::Lost { healthy: false };
    };
    let mut token_due = refresh_due(&credentials);
    // The joins wait for the socket to open; give up on a socket that never does.
    let joins = session.open(&credentials.access_token, now());
    let opened = {
        let send = deliver(&mut socket, options, sinks, joins).fuse();
        let timeout = TimeoutFuture::new(OPEN_TIMEOUT_MS).fuse();
        futures::pin_mut!(send, timeout);
        futures::select_biased! {
            _ = &mut *stop => return Ended::Stopped,
            sent = send => sent,
            () = timeout => false,
        }
    };
    if !opened {
        return Ended::Lost { healthy: false };
    }
    let mut healthy = false;
    // After a failed token fetch, when the next may be tried.
    let mut token_retry_at = 0;
    loop {
        let token_wanted = session.wants_token() && now() >= token_retry_at;
        if token_wanted || now() >= token_due {
            match until_stopped(stop, realtime_credentials()).await {
                None => return leave(&mut socket, session).await,
                Some(Ok(fresh)) => {
                    token_due = refresh_due(&fresh);
                    token_retry_at = 0;
                    let handed = session.set_token(&fresh.access_token);
                    if !deliver(&mut socket, options, sinks, handed).await {
                        return Ended::Lost { healthy };
                    }
                }
                Some(Err(AppError::NotSignedIn)) => {
                    leave(&mut socket, session).await;
                    return Ended::SignedOut;
                }
                Some(Err(error)) => {
                    leptos::logging::warn!("realtime: refreshing the access token failed: {error}");
                    token_retry_at = now() + TOKEN_RETRY_MS;
                    token_due = token_due.max(token_retry_at);
                }
            }
        }
        let mut deadline = session.next_deadline().min(token_due);
        if session.wants_token() {
            deadline = deadline.min(token_retry_at);
        }
        let wait = (deadline - now()).clamp(0, 60_000) as u32;
        let outputs = {
            let message = socket.next().fuse();
            let timer = TimeoutFuture::new(wait).fuse();
            futures::pin_mut!(message, timer);
            futures::select_biased! {
                _ = &mut *stop => None,
                message = message => match message {
                    Some(Ok(Message::Text(text))) => match Frame::decode(&text) {
                        Ok(frame) => Some(Ok(session.receive(frame, now(), jitter()))),
                        Err(_) => Some(Ok(Vec::new())),
                    },
                    // The relay sends binary frames only to 2.0.0 clients.
                    Some(Ok(Message::Bytes(_))) => Some(Ok(Vec::new())),
                    Some(Err(_)) | None => Some(Err(())),
                },
                () = timer => Some(session.tick(now(), jitter()).map_err(|_| ())),
            }
        };
        let outputs = match outputs {
            None => return leave(&mut socket, session).await,
            Some(Err(())) => return Ended::Lost { healthy },
            Some(Ok(outputs)) => outputs,
        };
        if !deliver(&mut socket, options, sinks, outputs).await {
            return Ended::Lost { healthy };
        }
        if session.is_live() {
            healthy = true;
            *was_live = true;
            sinks.set_status(ConnectionStatus::Connected);
        } else {
            sinks.set_status(pending_status(*was_live));
        }
    }
}

/// Sends the frames and hands updates to their callbacks; false when the socket failed.
async fn deliver(
    socket: &mut WebSocket,
    options: &UseWebhookUpdatesOptions,
    sinks: &Sinks,
    outputs: Vec<Output>,
) -> bool {
    for output in outputs {
        match output {
            Output::Send(frame) => {
                if socket.send(Message::Text(frame.encode())).await.is_err() {
                    return false;
                }
            }
            Output::Update(update) => {
                if !options.concerns(&update) {
                    continue;
                }
                if let Some(callback) = options.callback_for(update.kind) {
                    callback.try_run(update.clone());
                }
                sinks.last_update.try_set(Some(update));
            }
            Output::Pipeline(event) => {
                if let Some(callback) = options.on_pipeline {
                    callback.try_run(event);
                }
            }
            Output::Alert(change) => {
                if let Some(callback) = options.on_alert {
                    callback.try_run(change);
                }
            }
            Output::Delivery(change) => {
                if let Some(callback) = options.on_delivery {
                    callback.try_run(change);
                }
            }
            Output::Refetch => {
                sinks.refetch_needed.try_update(|count| *count += 1);
                if let Some(callback) = options.on_refetch {
                    callback.try_run(());
                }
            }
        }
    }
    true
}

/// Leaves every channel, then lets the socket close as it is dropped.
async fn leave(socket: &mut WebSocket, session: &mut Session) -> Ended {
    for frame in session.leave_all() {
        if socket.send(Message::Text(frame.encode())).await.is_err() {
            break;
        }
    }
    Ended::Stopped
}

/// Runs `future` unless the component unmounts first (`None`).
async fn until_stopped<F: Future>(stop: &mut oneshot::Receiver<()>, future: F) -> Option<F::Output> {
    let future = future.fuse();
    futures::pin_mut!(future);
    futures::select_biased! {
        _ = &mut *stop => None,
        output = future => Some(output),
    }
}

fn pending_status(was_live: bool) -> ConnectionStatus {
    if was_live {
        ConnectionStatus::Reconnecting
    } else {
        ConnectionStatus::Connecting
    }
}

/// `ws(s)://{host}/realtime/v1/websocket?apikey=...&vsn=1.0.0` on the page's own origin.
fn socket_url(apikey: &str) -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    let host = location.host().ok()?;
    let apikey = String::from(js_sys::encode_uri_component(apikey));
    Some(format!(
        "{scheme}://{host}/realtime/v1/websocket?apikey={apikey}&vsn={VSN}"
    ))
}

/// When to fetch the next token: a minute before this one expires, and not in a tight loop.
fn refresh_due(credentials: &RealtimeCredentials) -> i64 {
    (credentials.expires_at * 1000 - TOKEN_REFRESH_MARGIN_MS).max(now() + TOKEN_RETRY_MS)
}

fn now() -> i64 {
    js_sys::Date::now() as i64
}

fn jitter() -> f64 {
    js_sys::Math::random()
}
