//! What one browser connection to the relay must do, as a state machine without a socket or a clock: join each
//! topic (resuming after the last offset it saw), answer to join replies and closes, heartbeat, hand over fresh
//! tokens, drop duplicate updates, and say when the connection is dead. `client` feeds it frames and the time and
//! sends what it returns; the tests below drive it directly.

use std::collections::VecDeque;

use super::protocol::{Frame, ReplyOutcome, ServerMessage, PHOENIX_TOPIC};
use super::{AlertChange, DeliveryChange, PipelineEvent, WebhookUpdate};

/// How often the client heartbeats (realtime-js's default); a heartbeat unanswered by the next one means the
/// connection is dead.
pub const HEARTBEAT_INTERVAL_MS: i64 = 25_000;
/// How long a join may wait for its reply before it is tried again.
pub const JOIN_TIMEOUT_MS: i64 = 10_000;
/// The first reconnect or rejoin delay; it doubles per failure up to `MAX_BACKOFF_MS`.
pub const BASE_BACKOFF_MS: i64 = 1_000;
pub const MAX_BACKOFF_MS: i64 = 30_000;
/// How many recent updates are remembered to drop the copy that arrives on a second topic.
const SEEN_CAPACITY: usize = 256;

/// The delay before retry number `failures` (0-based): 1 s doubling to 30 s, spread by `jitter` (0..1) over
/// ±25 % so that clients cut off together do not all come back in the same instant.
pub fn backoff_ms(failures: u32, jitter: f64) -> i64 {
    let base = BASE_BACKOFF_MS
        .saturating_mul(1_i64 << failures.min(15))
        .min(MAX_BACKOFF_MS);
    let spread = 0.75 + 0.5 * jitter.clamp(0.0, 1.0);
    ((base as f64 * spread) as i64).min(MAX_BACKOFF_MS)
}

/// What the session asks of its caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Send(Frame),
    Update(WebhookUpdate),
    Pipeline(PipelineEvent),
    Alert(AlertChange),
    Delivery(DeliveryChange),
    /// Updates were missed and cannot be replayed: whoever shows the data should fetch it again.
    Refetch,
}

/// The heartbeat went unanswered: close the socket and reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionDead;

#[derive(Debug, Clone, Copy, PartialEq)]
enum JoinState {
    /// Not joined; (re)join at `retry_at`.
    Idle {
        retry_at: i64,
    },
    Joining {
        sent_at: i64,
    },
    Joined,
}

#[derive(Debug)]
struct Channel {
    topic: String,
    join_ref: Option<String>,
    state: JoinState,
    /// The highest offset seen on this topic, to resume after on a rejoin.
    last_offset: Option<i64>,
    /// Joined at least once, so a rejoin may have missed something.
    joined_before: bool,
    /// This join follows a gap that cannot be resumed (nothing was ever received): refetch once it succeeds.
    refetch_on_join: bool,
    /// Consecutive failed joins, for the rejoin backoff.
    failures: u32,
    /// Why the last join was refused, if it was.
    refused: Option<String>,
}

/// One connection's protocol state; it outlives sockets, so offsets carry over to the next one.
#[derive(Debug)]
pub struct Session {
    channels: Vec<Channel>,
    next_ref: u64,
    access_token: String,
    pending_heartbeat: Option<String>,
    next_heartbeat_at: i64,
    /// The relay closed a channel with a `system` error (typically an expired token): fetch a new token first.
    wants_token: bool,
    seen: VecDeque<String>,
}

impl Session {
    pub fn new(topics: &[String]) -> Session {
        let channels = topics
            .iter()
            .map(|topic| Channel {
                topic: topic.clone(),
                join_ref: None,
                state: JoinState::Idle { retry_at: 0 },
                last_offset: None,
                joined_before: false,
                refetch_on_join: false,
                failures: 0,
                refused: None,
            })
            .collect();
        Session {
            channels,
            next_ref: 0,
            access_token: String::new(),
            pending_heartbeat: None,
            next_heartbeat_at: i64::MAX,
            wants_token: false,
            seen: VecDeque::new(),
        }
    }

    /// A new socket is open: join every topic with `access_token`, resuming where each left off.
    pub fn open(&mut self, access_token: &str, now: i64) -> Vec<Output> {
        self.access_token = access_token.to_owned();
        self.wants_token = false;
        self.pending_heartbeat = None;
        self.next_heartbeat_at = now + HEARTBEAT_INTERVAL_MS;
        (0..self.channels.len())
            .map(|index| Output::Send(self.join(index, now)))
            .collect()
    }

    /// Every topic is joined: updates flow.
    pub fn is_live(&self) -> bool {
        self.channels.iter().all(|channel| channel.state == JoinState::Joined)
    }

    /// The relay refused or closed a channel over its token; fetch a new one before rejoining.
    pub fn wants_token(&self) -> bool {
        self.wants_token
    }

    /// Why joins were refused, for logs.
    pub fn refusals(&self) -> impl Iterator<Item = (&str, &str)> {
        self.channels
            .iter()
            .filter_map(|channel| Some((channel.topic.as_str(), channel.refused.as_deref()?)))
    }

    /// When `tick` next has something to do.
    pub fn next_deadline(&self) -> i64 {
        self.channels
            .iter()
            .map(|channel| match channel.state {
                // Rejoins wait for the new token the caller is fetching.
                JoinState::Idle { .. } if self.wants_token => i64::MAX,
                JoinState::Idle { retry_at } => retry_at,
                JoinState::Joining { sent_at } => sent_at + JOIN_TIMEOUT_MS,
                JoinState::Joined => i64::MAX,
            })
            .fold(self.next_heartbeat_at, i64::min)
    }

    /// Heartbeats, join timeouts and due rejoins; `jitter` (0..1) spreads the rejoin delays.
    pub fn tick(&mut self, now: i64, jitter: f64) -> Result<Vec<Output>, ConnectionDead> {
        let mut out = Vec::new();
        if now >= self.next_heartbeat_at {
            if self.pending_heartbeat.is_some() {
                return Err(ConnectionDead);
            }
            let msg_ref = self.make_ref();
            out.push(Output::Send(Frame::heartbeat(&msg_ref)));
            self.pending_heartbeat = Some(msg_ref);
            self.next_heartbeat_at = now + HEARTBEAT_INTERVAL_MS;
        }
        for index in 0..self.channels.len() {
            match self.channels[index].state {
                JoinState::Joining { sent_at } if now >= sent_at + JOIN_TIMEOUT_MS => {
                    self.channels[index].refused = Some("no reply to the join".into());
                    self.fail(index, now, jitter);
                }
                JoinState::Idle { retry_at } if now >= retry_at && !self.wants_token => {
                    out.push(Output::Send(self.join(index, now)));
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// A fresh access token: joined channels are told at once, later joins carry it.
    pub fn set_token(&mut self, access_token: &str) -> Vec<Output> {
        self.access_token = access_token.to_owned();
        self.wants_token = false;
        self.joined()
            .into_iter()
            .map(|(topic, join_ref)| {
                let msg_ref = self.make_ref();
                Output::Send(Frame::access_token(&topic, &join_ref, &msg_ref, access_token))
            })
            .collect()
    }

    /// Leaves every joined channel, before the socket is closed for good.
    pub fn leave_all(&mut self) -> Vec<Frame> {
        self.joined()
            .into_iter()
            .map(|(topic, join_ref)| {
                let msg_ref = self.make_ref();
                Frame::leave(&topic, &join_ref, &msg_ref)
            })
            .collect()
    }

    /// The socket is gone: every channel must be joined again on the next one.
    pub fn disconnected(&mut self) {
        for channel in &mut self.channels {
            channel.state = JoinState::Idle { retry_at: 0 };
            channel.join_ref = None;
        }
        self.pending_heartbeat = None;
        self.next_heartbeat_at = i64::MAX;
    }

    /// Handles one frame from the relay.
    pub fn receive(&mut self, frame: Frame, now: i64, jitter: f64) -> Vec<Output> {
        if frame.topic == PHOENIX_TOPIC {
            if frame.msg_ref.is_some() && frame.msg_ref == self.pending_heartbeat {
                self.pending_heartbeat = None;
            }
            return Vec::new();
        }
        let Some(index) = self.channels.iter().position(|channel| channel.topic == frame.topic) else {
            return Vec::new();
        };
        // A frame of an earlier join of this topic is stale (as in phoenix.js `isMember`).
        if frame.join_ref.is_some() && frame.join_ref != self.channels[index].join_ref {
            return Vec::new();
        }
        match ServerMessage::from_frame(frame) {
            ServerMessage::Reply { msg_ref, outcome, .. } => self.on_reply(index, msg_ref, outcome, now, jitter),
            ServerMessage::Webhook { update, .. } => {
                self.advance(index, update.offset);
                if self.is_new(&update) {
                    vec![Output::Update(update)]
                } else {
                    Vec::new()
                }
            }
            ServerMessage::Pipeline { event, .. } => {
                self.advance(index, event.offset);
                vec![Output::Pipeline(event)]
            }
            ServerMessage::Alert { change, .. } => {
                self.advance(index, change.offset);
                vec![Output::Alert(change)]
            }
            ServerMessage::Delivery { change, .. } => vec![Output::Delivery(change)],
            ServerMessage::Refetch { offset, .. } => {
                if offset.is_some() {
                    self.channels[index].last_offset = offset;
                }
                vec![Output::Refetch]
            }
            ServerMessage::SystemError { message, .. } => {
                self.channels[index].refused = Some(message);
                self.wants_token = true;
                Vec::new()
            }
            ServerMessage::ChannelClosed { .. } => {
                if !matches!(self.channels[index].state, JoinState::Idle { .. }) {
                    self.fail(index, now, jitter);
                }
                Vec::new()
            }
            ServerMessage::Ignored => Vec::new(),
        }
    }

    fn on_reply(
        &mut self,
        index: usize,
        msg_ref: Option<String>,
        outcome: ReplyOutcome,
        now: i64,
        jitter: f64,
    ) -> Vec<Output> {
        let channel = &mut self.channels[index];
        if !matches!(channel.state, JoinState::Joining { .. }) || msg_ref != channel.join_ref {
            return Vec::new();
        }
        match outcome {
            ReplyOutcome::Ok => {
                channel.state = JoinState::Joined;
                channel.failures = 0;
                channel.refused = None;
                channel.joined_before = true;
                if std::mem::take(&mut channel.refetch_on_join) {
                    return vec![Output::Refetch];
                }
            }
            ReplyOutcome::Error(reason) => {
                if token_problem(&reason) {
                    self.wants_token = true;
                }
                self.channels[index].refused = Some(reason);
                self.fail(index, now, jitter);
            }
        }
        Vec::new()
    }

    fn join(&mut self, index: usize, now: i64) -> Frame {
        let join_ref = self.make_ref();
        let channel = &mut self.channels[index];
        channel.join_ref = Some(join_ref.clone());
        channel.state = JoinState::Joining { sent_at: now };
        channel.refetch_on_join = channel.joined_before && channel.last_offset.is_none();
        Frame::join(&channel.topic, &join_ref, &self.access_token, channel.last_offset)
    }

    fn fail(&mut self, index: usize, now: i64, jitter: f64) {
        let channel = &mut self.channels[index];
        channel.state = JoinState::Idle {
            retry_at: now + backoff_ms(channel.failures, jitter),
        };
        channel.failures = channel.failures.saturating_add(1);
    }

    fn advance(&mut self, index: usize, offset: Option<i64>) {
        let channel = &mut self.channels[index];
        if let Some(offset) = offset {
            channel.last_offset = Some(channel.last_offset.map_or(offset, |last| last.max(offset)));
        }
    }

    /// The same change reaches us once per topic it went to (a job's update on `job:` and `company:`).
    fn is_new(&mut self, update: &WebhookUpdate) -> bool {
        let Some(event_id) = &update.event_id else {
            return true;
        };
        let key = format!("{}/{}/{event_id}", update.kind.as_str(), update.object_uuid);
        if self.seen.contains(&key) {
            return false;
        }
        if self.seen.len() == SEEN_CAPACITY {
            self.seen.pop_front();
        }
        self.seen.push_back(key);
        true
    }

    /// The topic and join ref of every joined channel.
    fn joined(&self) -> Vec<(String, String)> {
        self.channels
            .iter()
            .filter(|channel| channel.state == JoinState::Joined)
            .filter_map(|channel| Some((channel.topic.clone(), channel.join_ref.clone()?)))
            .collect()
    }

    fn make_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }
}

/// Whether the relay refused our token itself (expired or invalid), rather than what it grants.
fn token_problem(reason: &str) -> bool {
    reason.contains("Token has expired") || reason.contains("invalid access token")
}

#[cfg(test)]
mod tests;
