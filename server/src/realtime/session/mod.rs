//! One websocket connection: the channels it joined and the loop that answers its frames.
//!
//! The loop is generic over a `Sink`/`Stream` of `WireMessage`s, so unit tests drive it through channels. What it
//! answers follows Supabase Realtime's channel protocol: heartbeat replies, `phx_join` replies (`postgres_changes` echoed in order
//! with ids, or absent), `presence_state` after a join with presence, broadcasts honouring `self` and `ack`,
//! `access_token` re-checks, `phx_leave` → reply then `phx_close`, and errors as `phx_reply` errors with a reason.
//!
//! Replay as upstream: a join's `config.broadcast.replay` (`{since: unix ms, limit}`) gets the topic's retained
//! broadcasts since then (the latest `limit`, at most `REPLAY_LIMIT`), oldest first, before anything live.
//!
//! Resume: a join may carry the last offset the client saw on that topic, as `config.resume.offset` or a top-level
//! `offset`. The client then gets every retained broadcast after it, as ordinary broadcast frames, before anything
//! live; or, when some are no longer retained, one `system` frame telling it to refetch and where the topic now is:
//! `[null,null,"realtime:jobs","system",{"extension":"system","status":"ok","message":"refetch","channel":"jobs",
//! "offset":57}]` (`offset` is null when the record could not be read).

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use governor::{Quota, RateLimiter};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::auth::{now_seconds, Access, Authority, CLOCK_SKEW_SECONDS};
use super::bus::{Broadcast, Bus, Publication};
use super::changes::ROWS_TOPIC;
use super::channel::{close_frame, refetch_frame, reply, system_error_frame, with, Channel, JoinRequest};
use super::hub::{ConnectionId, Hub, Outlet, Push, SESSION_QUEUE};
use super::protocol::{BroadcastPayload, Frame, Incoming, Outgoing, ReplyStatus, Vsn, WireMessage};
use super::scope::{scoped, unscoped};

/// A connection that sends nothing, not even a heartbeat (every 25 s from realtime-js), for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What every session of a node shares.
pub struct SessionContext {
    pub hub: Arc<Hub>,
    pub bus: Arc<dyn Bus>,
    pub authority: Authority,
    /// Messages a client may send per second (twice as many in a burst); past it the connection is closed.
    pub messages_per_second: u32,
    /// Cancelled when the node shuts down: every session tells its client and closes.
    pub closing: CancellationToken,
}

/// The close frame's code when the node shuts down: 1012, service restart (the client reconnects).
const SERVICE_RESTART: u16 = 1012;

/// Serves one connection, opened with `apikey`, until the client goes away, stops heartbeating, or the sink fails.
pub async fn run_session<S, R>(
    context: Arc<SessionContext>,
    vsn: Vsn,
    apikey: Option<String>,
    mut sink: S,
    mut stream: R,
) where
    S: Sink<WireMessage> + Unpin,
    R: Stream<Item = WireMessage> + Unpin,
{
    let (queue, mut pushes) = mpsc::channel(SESSION_QUEUE);
    let outlet = Outlet {
        queue,
        overflowed: Arc::default(),
    };
    let rate = NonZeroU32::new(context.messages_per_second.max(1)).expect("at least one");
    let burst = rate.saturating_mul(NonZeroU32::new(2).expect("two"));
    let messages = RateLimiter::direct(Quota::per_second(rate).allow_burst(burst));
    let closing = context.closing.clone();
    let mut session = Session::new(context, vsn, outlet);
    // An apikey that is a token (as Supabase's anon key is) authorises the joins that carry none.
    session.socket_token = apikey;
    let idle = tokio::time::sleep(IDLE_TIMEOUT);
    tokio::pin!(idle);
    'connection: loop {
        let expiry = session.next_expiry();
        // Biased towards queued pushes: what was queued before a frame arrived goes out before its reply.
        let outgoing = tokio::select! {
            biased;
            Some(push) = pushes.recv() => {
                let mut outgoing = session.on_push(push);
                // Caught up: now tell the client about what its queue could not hold.
                if pushes.is_empty() {
                    outgoing.extend(session.refetch_overflowed());
                }
                outgoing
            }
            () = sleep_until(expiry) => session.expire_tokens().await,
            message = stream.next() => match message {
                Some(message) => {
                    if messages.check().is_err() {
                        tracing::warn!(connection = %session.id, "closing a realtime connection: too many messages");
                        break;
                    }
                    idle.as_mut().reset(Instant::now() + IDLE_TIMEOUT);
                    session.receive(message).await
                }
                None => break,
            },
            () = &mut idle => {
                tracing::debug!(connection = %session.id, "closing an idle realtime connection");
                break;
            }
            () = closing.cancelled() => {
                for frame in session.shut_down() {
                    let _ = sink.send(vsn.encode(frame)).await;
                }
                let close = WireMessage::Close { code: SERVICE_RESTART, reason: "the server is restarting".into() };
                let _ = sink.send(close).await;
                break;
            }
        };
        for frame in outgoing {
            if sink.send(vsn.encode(frame)).await.is_err() {
                break 'connection;
            }
        }
    }
    session.leave_all().await;
    session.context.hub.disconnect(session.id);
    let _ = sink.close().await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

struct Session {
    id: ConnectionId,
    context: Arc<SessionContext>,
    /// The serializer the client negotiated.
    vsn: Vsn,
    outlet: Outlet,
    channels: HashMap<String, Channel>,
    /// The latest token the client gave, used by joins that carry none (supabase-js's first join often does not).
    socket_token: Option<String>,
    next_binding_id: u64,
    /// The hub topics of the accounts whose row changes the channels' `postgres_changes` bindings follow.
    row_topics: BTreeSet<String>,
}

impl Session {
    fn new(context: Arc<SessionContext>, vsn: Vsn, outlet: Outlet) -> Session {
        Session {
            id: Uuid::new_v4(),
            context,
            vsn,
            outlet,
            channels: HashMap::new(),
            socket_token: None,
            next_binding_id: 1,
            row_topics: BTreeSet::new(),
        }
    }

    async fn receive(&mut self, message: WireMessage) -> Vec<Outgoing> {
        match self.vsn.decode(message) {
            Ok(Incoming::Frame(frame)) => self.handle_frame(frame).await,
            Ok(Incoming::BinaryBroadcast(push)) => {
                self.broadcast(&push.as_frame(), push.event.clone(), push.payload.clone(), true)
                    .await
            }
            // Without a decodable ref there is nothing to reply to.
            Err(error) => {
                tracing::debug!(connection = %self.id, %error, "ignored an undecodable realtime frame");
                Vec::new()
            }
        }
    }

    async fn handle_frame(&mut self, frame: Frame) -> Vec<Outgoing> {
        match frame.event.as_str() {
            "heartbeat" if frame.topic == "phoenix" => reply(frame.reply_ok()),
            "phx_join" => self.join(frame).await,
            _ if !self.channels.contains_key(&frame.topic) => reply(frame.reply_error("unmatched topic")),
            "phx_leave" => self.leave(&frame).await,
            "broadcast" => {
                let Some(event) = frame.payload["event"].as_str() else {
                    return reply(frame.reply_error("a broadcast needs an event"));
                };
                let payload = frame.payload.get("payload").cloned().unwrap_or_else(|| json!({}));
                self.broadcast(&frame, event.to_owned(), BroadcastPayload::Json(payload), false)
                    .await
            }
            "presence" => self.presence(&frame).await,
            "access_token" => self.refresh_token(&frame).await,
            // Upstream ignores events it has no handler for.
            _ => Vec::new(),
        }
    }

    async fn join(&mut self, frame: Frame) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let topic = frame.topic.clone();
        // A second join of a topic replaces the first, as Phoenix does for a duplicate join.
        if let Some(previous) = self.channels.remove(&topic) {
            self.release(&previous).await;
            out.push(close_frame(&topic, &previous.join_ref));
        }
        let request = JoinRequest::parse(&frame.payload);
        let token = request.access_token.clone().or_else(|| self.socket_token.clone());
        let credentials = match self.context.authority.credentials(token.as_deref()) {
            Ok(credentials) => credentials,
            Err(error) => return with(out, frame.reply_error(error.to_string())),
        };
        if let Access::Denied(reason) = self
            .context
            .authority
            .authorize_join(&credentials.identity, &topic)
            .await
        {
            return with(out, frame.reply_error(reason));
        }
        if request.access_token.is_some() {
            self.socket_token = request.access_token.clone();
        }
        let (bindings, response) = match &request.postgres_changes {
            Some(requested) => match self.bindings(requested) {
                Ok((bindings, echoed)) => (bindings, json!({ "postgres_changes": echoed })),
                Err(reason) => return with(out, frame.reply_error(format!("postgres_changes: {reason}"))),
            },
            None => (Vec::new(), json!({})),
        };
        let hub_topic = scoped(credentials.identity.account(), &topic);
        self.context
            .hub
            .subscribe(&hub_topic, self.id, request.receive_own, self.outlet.clone());
        out.push(Outgoing::Frame(frame.reply(ReplyStatus::Ok, response)));
        if request.presence_enabled {
            let state = match self.context.bus.presence_state(&hub_topic).await {
                Ok(state) => state,
                Err(error) => {
                    tracing::error!(%error, topic, "reading who is present failed");
                    json!({})
                }
            };
            out.push(Outgoing::Frame(Frame::new(
                frame.join_ref.clone(),
                None,
                &topic,
                "presence_state",
                state,
            )));
        }
        let mut channel = Channel {
            hub_topic,
            join_ref: frame.join_ref.clone(),
            credentials,
            ack: request.ack,
            presence_key: request.presence_key,
            last_offset: 0,
            bindings,
            tracked: false,
        };
        if let Some(after) = request.resume_after {
            out.extend(self.replay(&topic, after, &mut channel).await);
        } else if let Some(since) = request.replay {
            out.extend(self.replay_since(&topic, since, &mut channel).await);
        }
        self.channels.insert(topic, channel);
        self.follow_rows();
        out
    }

    async fn leave(&mut self, frame: &Frame) -> Vec<Outgoing> {
        let Some(channel) = self.channels.remove(&frame.topic) else {
            return Vec::new();
        };
        self.release(&channel).await;
        self.follow_rows();
        vec![
            Outgoing::Frame(frame.reply_ok()),
            close_frame(&frame.topic, &channel.join_ref),
        ]
    }

    async fn broadcast(
        &mut self,
        frame: &Frame,
        event: String,
        payload: BroadcastPayload,
        binary: bool,
    ) -> Vec<Outgoing> {
        let Some(channel) = self.channels.get(&frame.topic) else {
            return reply(frame.reply_error("unmatched topic"));
        };
        if let Access::Denied(reason) = self
            .context
            .authority
            .authorize_broadcast(&channel.credentials.identity, &frame.topic)
        {
            return reply(frame.reply_error(reason));
        }
        let ack = channel.ack;
        let broadcast = Broadcast::new(&channel.hub_topic, event, payload, Some(self.id), binary);
        match self.context.bus.publish(vec![Publication::Ephemeral(broadcast)]).await {
            Ok(()) if ack => reply(frame.reply_ok()),
            Ok(()) => Vec::new(),
            Err(error) => {
                tracing::error!(%error, "publishing a broadcast failed");
                reply(frame.reply_error("broadcast failed, retry later"))
            }
        }
    }

    async fn presence(&mut self, frame: &Frame) -> Vec<Outgoing> {
        let Some(channel) = self.channels.get_mut(&frame.topic) else {
            return Vec::new();
        };
        let bus = &self.context.bus;
        let done = match frame.payload["event"].as_str() {
            Some("track") => {
                let meta: Map<String, Value> = frame.payload["payload"].as_object().cloned().unwrap_or_default();
                channel.tracked = true;
                bus.track(&channel.hub_topic, self.id, &channel.presence_key, meta)
                    .await
            }
            Some("untrack") => {
                channel.tracked = false;
                bus.untrack(&channel.hub_topic, self.id).await
            }
            _ => return reply(frame.reply_error("presence event must be track or untrack")),
        };
        match done {
            Ok(()) => reply(frame.reply_ok()),
            Err(error) => {
                tracing::error!(%error, "updating presence failed");
                reply(frame.reply_error("presence failed, retry later"))
            }
        }
    }

    /// Ends a channel's subscription and its presence, on every node.
    async fn release(&self, channel: &Channel) {
        self.context.hub.unsubscribe(&channel.hub_topic, self.id);
        if channel.tracked {
            if let Err(error) = self.context.bus.untrack(&channel.hub_topic, self.id).await {
                tracing::error!(%error, "removing a presence failed; it expires with its node");
            }
        }
    }

    /// What the client is told when the node shuts down: `phx_error` on each channel, so that realtime-js rejoins
    /// them once it has reconnected (after `phx_close` it would drop them), as it does when a channel crashes.
    fn shut_down(&self) -> Vec<Outgoing> {
        self.channels
            .iter()
            .map(|(topic, channel)| {
                let join_ref = channel.join_ref.clone();
                Outgoing::Frame(Frame::new(join_ref.clone(), join_ref, topic, "phx_error", json!({})))
            })
            .collect()
    }

    /// Releases every channel of a connection that is going away.
    async fn leave_all(&mut self) {
        for (_, channel) in std::mem::take(&mut self.channels) {
            self.release(&channel).await;
        }
    }

    /// Re-checks a refreshed token: the channel carries on under it, or is closed when it no longer grants access.
    async fn refresh_token(&mut self, frame: &Frame) -> Vec<Outgoing> {
        let token = frame.payload["access_token"].as_str();
        let refused = match self.context.authority.credentials(token) {
            Ok(credentials) => {
                match self
                    .context
                    .authority
                    .authorize_join(&credentials.identity, &frame.topic)
                    .await
                {
                    // The channel stays on its account's topic: a token for another account cannot move it.
                    Access::Granted
                        if self.channels.get(&frame.topic).is_some_and(|channel| {
                            channel.credentials.identity.account() == credentials.identity.account()
                        }) =>
                    {
                        if let Some(channel) = self.channels.get_mut(&frame.topic) {
                            channel.credentials = credentials;
                        }
                        self.socket_token = token.map(str::to_owned);
                        return Vec::new();
                    }
                    Access::Granted => "Unauthorized: the token is for another account".to_owned(),
                    Access::Denied(reason) => reason,
                }
            }
            Err(error) => error.to_string(),
        };
        self.close_channel(&frame.topic, &refused).await
    }

    fn next_expiry(&self) -> Option<Instant> {
        let expires_at = self
            .channels
            .values()
            .filter_map(|channel| channel.credentials.expires_at)
            .min()?;
        // A token is valid through its `exp` second and the allowance for skewed clocks, expired after.
        let remaining_ms = ((expires_at + 1 + CLOCK_SKEW_SECONDS) * 1000 - crate::store::now_millis()).max(0);
        Some(Instant::now() + Duration::from_millis(remaining_ms as u64))
    }

    async fn expire_tokens(&mut self) -> Vec<Outgoing> {
        let now = now_seconds();
        let expired: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, channel)| {
                channel
                    .credentials
                    .expires_at
                    .is_some_and(|at| at + CLOCK_SKEW_SECONDS < now)
            })
            .map(|(topic, _)| topic.clone())
            .collect();
        let mut out = Vec::new();
        for topic in &expired {
            out.extend(self.close_channel(topic, "Token has expired").await);
        }
        out
    }

    /// Tells the client why, then closes the channel: a `system` error followed by `phx_close`.
    async fn close_channel(&mut self, topic: &str, message: &str) -> Vec<Outgoing> {
        let Some(channel) = self.channels.remove(topic) else {
            return Vec::new();
        };
        self.release(&channel).await;
        self.follow_rows();
        vec![
            system_error_frame(topic, message),
            close_frame(topic, &channel.join_ref),
        ]
    }

    fn on_push(&mut self, push: Push) -> Vec<Outgoing> {
        match push {
            Push::Broadcast(broadcast) if unscoped(&broadcast.topic) == ROWS_TOPIC => self.on_row_change(&broadcast),
            Push::Broadcast(broadcast) => {
                let Some(channel) = self.joined_mut(&broadcast.topic) else {
                    return Vec::new();
                };
                if let Some(offset) = broadcast.offset {
                    if offset <= channel.last_offset {
                        return Vec::new();
                    }
                    channel.last_offset = offset;
                }
                vec![broadcast.render(self.vsn)]
            }
            Push::PresenceDiff { topic, diff } if self.joined_mut(&topic).is_some() => {
                vec![Outgoing::Frame(Frame::new(
                    None,
                    None,
                    unscoped(&topic),
                    "presence_diff",
                    diff,
                ))]
            }
            Push::PresenceDiff { .. } => Vec::new(),
            Push::Refetch { topic } => self.refetch(&topic).into_iter().collect(),
        }
    }

    /// Refetch frames for the joined topics whose messages the queue could not hold.
    fn refetch_overflowed(&mut self) -> Vec<Outgoing> {
        let overflowed = self.outlet.overflowed.take();
        overflowed.iter().filter_map(|topic| self.refetch(topic)).collect()
    }

    /// Tells the client that updates of `hub_topic` were lost, if it is still joined to it.
    fn refetch(&mut self, hub_topic: &str) -> Option<Outgoing> {
        self.joined_mut(hub_topic).map(|_| {
            crate::metrics::count_realtime_refetch();
            refetch_frame(unscoped(hub_topic), None)
        })
    }

    /// The channel joined on `hub_topic`, if any.
    fn joined_mut(&mut self, hub_topic: &str) -> Option<&mut Channel> {
        self.channels
            .get_mut(unscoped(hub_topic))
            .filter(|channel| channel.hub_topic == hub_topic)
    }
}

mod replay;
mod rows;
#[cfg(test)]
mod tests;
