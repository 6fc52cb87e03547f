//! What one browser connection to the relay must do, as a state machine without a socket or a clock: join each
//! topic (resuming after the last offset it saw), answer to join replies and closes, heartbeat, hand over fresh
//! tokens, drop duplicate updates, and say when the connection is dead. `client` feeds it frames and the time and
//! sends what it returns; the tests below drive it directly.

use std::collections::VecDeque;

use super::protocol::{Frame, ReplyOutcome, ServerMessage, PHOENIX_TOPIC};
use super::{PipelineEvent, WebhookUpdate};

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
        let joined: Vec<(String, String)> = self
            .channels
            .iter()
            .filter(|channel| channel.state == JoinState::Joined)
            .filter_map(|channel| Some((channel.topic.clone(), channel.join_ref.clone()?)))
            .collect();
        joined
            .into_iter()
            .map(|(topic, join_ref)| {
                let msg_ref = self.make_ref();
                Output::Send(Frame::access_token(&topic, &join_ref, &msg_ref, access_token))
            })
            .collect()
    }

    /// Leaves every joined channel, before the socket is closed for good.
    pub fn leave_all(&mut self) -> Vec<Frame> {
        let joined: Vec<(String, String)> = self
            .channels
            .iter()
            .filter(|channel| channel.state == JoinState::Joined)
            .filter_map(|channel| Some((channel.topic.clone(), channel.join_ref.clone()?)))
            .collect();
        joined
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
mod tests {
    use serde_json::json;

    use super::*;

    fn sent(outputs: &[Output]) -> Vec<&Frame> {
        outputs
            .iter()
            .filter_map(|output| match output {
                Output::Send(frame) => Some(frame),
                _ => None,
            })
            .collect()
    }

    fn reply(join: &Frame, status: &str) -> Frame {
        let payload = match status {
            "ok" => json!({"status": "ok", "response": {}}),
            _ => json!({"status": "error", "response": {"reason": status}}),
        };
        Frame::new(
            join.join_ref.clone(),
            join.msg_ref.clone(),
            &join.topic,
            "phx_reply",
            payload,
        )
    }

    fn webhook(topic: &str, event_id: &str, offset: i64) -> Frame {
        let payload = json!({"type": "broadcast", "event": "webhook_update", "payload": {
            "type": "job_update", "object_uuid": "j1", "event_type": "updated", "changes": {"status": "Done"},
            "company_uuid": "c1", "job_uuid": "j1", "event_id": event_id, "offset": offset}});
        Frame::new(None, None, topic, "broadcast", payload)
    }

    /// A session on `topics` whose joins all succeeded at time 0.
    fn joined(topics: &[&str]) -> Session {
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        let mut session = Session::new(&topics);
        for join in sent(&session.open("t1", 0)).into_iter().cloned().collect::<Vec<_>>() {
            session.receive(reply(&join, "ok"), 0, 0.5);
        }
        assert!(session.is_live());
        session
    }

    #[test]
    fn backoff_doubles_from_one_second_to_thirty_with_jitter() {
        assert_eq!(backoff_ms(0, 0.5), 1_000);
        assert_eq!(backoff_ms(1, 0.5), 2_000);
        assert_eq!(backoff_ms(4, 0.5), 16_000);
        assert_eq!(backoff_ms(5, 0.5), 30_000);
        assert_eq!(backoff_ms(60, 0.5), 30_000);
        assert_eq!(backoff_ms(0, 0.0), 750);
        assert_eq!(backoff_ms(0, 1.0), 1_250);
        assert_eq!(backoff_ms(9, 1.0), 30_000);
    }

    #[test]
    fn opening_joins_every_topic_and_is_live_once_all_replied_ok() {
        let topics = vec!["realtime:company:c1".to_owned(), "realtime:job:j1".to_owned()];
        let mut session = Session::new(&topics);
        let out = session.open("jwt", 0);
        let joins = sent(&out);
        assert_eq!(joins.len(), 2);
        assert!(joins
            .iter()
            .all(|join| join.event == "phx_join" && join.payload["access_token"] == "jwt"));
        assert_ne!(joins[0].join_ref, joins[1].join_ref);
        let joins: Vec<Frame> = joins.into_iter().cloned().collect();
        session.receive(reply(&joins[0], "ok"), 10, 0.5);
        assert!(!session.is_live());
        session.receive(reply(&joins[1], "ok"), 10, 0.5);
        assert!(session.is_live());
    }

    #[test]
    fn a_refused_join_is_retried_with_backoff() {
        let mut session = Session::new(&["realtime:company:c2".to_owned()]);
        let join = sent(&session.open("jwt", 0))[0].clone();
        session.receive(
            reply(&join, "Unauthorized: this portal token cannot join company:c2"),
            100,
            0.5,
        );
        assert!(!session.is_live());
        assert_eq!(
            session.refusals().next().map(|(topic, _)| topic),
            Some("realtime:company:c2")
        );
        assert_eq!(session.next_deadline(), 1_100);
        assert!(sent(&session.tick(1_000, 0.5).unwrap()).is_empty());
        let again = sent(&session.tick(1_100, 0.5).unwrap())[0].clone();
        assert_eq!(again.event, "phx_join");
        session.receive(reply(&again, "refused"), 1_200, 0.5);
        assert_eq!(session.next_deadline(), 3_200, "the second retry waits twice as long");
    }

    #[test]
    fn heartbeats_go_out_every_25_seconds_and_a_missed_reply_kills_the_connection() {
        let mut session = joined(&["realtime:jobs"]);
        assert_eq!(session.next_deadline(), HEARTBEAT_INTERVAL_MS);
        let out = session.tick(HEARTBEAT_INTERVAL_MS, 0.5).unwrap();
        let heartbeat = sent(&out)[0].clone();
        assert_eq!(
            (heartbeat.topic.as_str(), heartbeat.event.as_str()),
            ("phoenix", "heartbeat")
        );
        let answer = Frame::new(
            None,
            heartbeat.msg_ref.clone(),
            "phoenix",
            "phx_reply",
            json!({"status": "ok"}),
        );
        session.receive(answer, HEARTBEAT_INTERVAL_MS + 5, 0.5);
        assert!(session.tick(2 * HEARTBEAT_INTERVAL_MS, 0.5).is_ok());
        assert_eq!(session.tick(3 * HEARTBEAT_INTERVAL_MS, 0.5), Err(ConnectionDead));
    }

    #[test]
    fn updates_advance_the_offset_and_a_rejoin_resumes_after_it() {
        let mut session = joined(&["realtime:jobs"]);
        let out = session.receive(webhook("realtime:jobs", "e1", 7), 5, 0.5);
        assert!(matches!(&out[..], [Output::Update(update)] if update.offset == Some(7)));
        session.receive(webhook("realtime:jobs", "e2", 9), 6, 0.5);
        session.disconnected();
        assert!(!session.is_live());
        let rejoin = sent(&session.open("t2", 1_000))[0].clone();
        assert_eq!(rejoin.payload["config"]["resume"]["offset"], 9);
        assert_eq!(rejoin.payload["access_token"], "t2");
    }

    #[test]
    fn a_rejoin_with_nothing_to_resume_from_asks_for_a_refetch_and_the_first_join_does_not() {
        let mut session = joined(&["realtime:jobs"]);
        session.disconnected();
        let rejoin = sent(&session.open("t1", 1_000))[0].clone();
        assert!(rejoin.payload["config"].get("resume").is_none());
        assert_eq!(session.receive(reply(&rejoin, "ok"), 1_001, 0.5), vec![Output::Refetch]);
    }

    #[test]
    fn the_relays_refetch_message_is_passed_on_and_moves_the_offset() {
        let mut session = joined(&["realtime:jobs"]);
        let refetch = Frame::new(
            None,
            None,
            "realtime:jobs",
            "system",
            json!({"status": "ok", "message": "refetch", "offset": 57, "extension": "system"}),
        );
        assert_eq!(session.receive(refetch, 1, 0.5), vec![Output::Refetch]);
        session.disconnected();
        let rejoin = sent(&session.open("t1", 2))[0].clone();
        assert_eq!(rejoin.payload["config"]["resume"]["offset"], 57);
    }

    #[test]
    fn the_same_change_on_two_topics_is_delivered_once() {
        let mut session = joined(&["realtime:company:c1", "realtime:job:j1"]);
        assert_eq!(
            session.receive(webhook("realtime:company:c1", "e1", 3), 1, 0.5).len(),
            1
        );
        assert!(session.receive(webhook("realtime:job:j1", "e1", 8), 1, 0.5).is_empty());
        assert_eq!(session.receive(webhook("realtime:job:j1", "e2", 9), 1, 0.5).len(), 1);
    }

    #[test]
    fn frames_of_an_earlier_join_are_dropped() {
        let mut session = joined(&["realtime:jobs"]);
        let stale = Frame::new(
            Some("999".into()),
            Some("999".into()),
            "realtime:jobs",
            "phx_close",
            json!({}),
        );
        session.receive(stale, 1, 0.5);
        assert!(session.is_live());
    }

    #[test]
    fn an_expired_token_closes_the_channel_and_the_rejoin_waits_for_a_new_token() {
        let mut session = joined(&["realtime:jobs"]);
        let error = Frame::new(
            None,
            None,
            "realtime:jobs",
            "system",
            json!({"extension": "system", "status": "error", "message": "Token has expired"}),
        );
        session.receive(error, 10, 0.5);
        let close = Frame::new(
            Some("1".into()),
            Some("1".into()),
            "realtime:jobs",
            "phx_close",
            json!({}),
        );
        session.receive(close, 10, 0.5);
        assert!(!session.is_live());
        assert!(session.wants_token());
        assert_eq!(
            session.next_deadline(),
            HEARTBEAT_INTERVAL_MS,
            "nothing to do but heartbeat until then"
        );
        assert!(
            sent(&session.tick(5_000, 0.5).unwrap()).is_empty(),
            "no rejoin with the expired token"
        );
        assert!(
            session.set_token("fresh").is_empty(),
            "no channel is joined to hand the token to"
        );
        let rejoin = sent(&session.tick(5_001, 0.5).unwrap())[0].clone();
        assert_eq!(rejoin.payload["access_token"], "fresh");
    }

    #[test]
    fn a_fresh_token_is_handed_to_each_joined_channel_and_leaving_names_each_join() {
        let mut session = joined(&["realtime:jobs", "realtime:staff"]);
        let out = session.set_token("fresh");
        let refreshes = sent(&out);
        assert_eq!(refreshes.len(), 2);
        assert!(refreshes
            .iter()
            .all(|frame| frame.event == "access_token" && frame.payload["access_token"] == "fresh"));
        let leaves = session.leave_all();
        assert_eq!(leaves.len(), 2);
        assert!(leaves
            .iter()
            .all(|frame| frame.event == "phx_leave" && frame.join_ref.is_some()));
    }

    #[test]
    fn a_join_without_reply_is_tried_again() {
        let mut session = Session::new(&["realtime:jobs".to_owned()]);
        session.open("t", 0);
        assert_eq!(session.next_deadline(), JOIN_TIMEOUT_MS);
        assert!(sent(&session.tick(JOIN_TIMEOUT_MS, 0.5).unwrap()).is_empty());
        let again = session.tick(JOIN_TIMEOUT_MS + 1_000, 0.5).unwrap();
        assert_eq!(sent(&again)[0].event, "phx_join");
    }
}
