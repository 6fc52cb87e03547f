//! One joined channel of a session: what its `phx_join` asked for, and the frames the server sends about it
//! (`phx_close`, `system` errors, the resume `refetch`).

use serde_json::{json, Value};
use uuid::Uuid;

use super::auth::{Credentials, TOPIC_PREFIX};
use super::changes::Binding;
use super::protocol::{Frame, Outgoing};

pub(super) struct Channel {
    /// The topic's name in the hub: the client's topic in the account of the token that joined it (`scope`).
    pub hub_topic: String,
    pub join_ref: Option<String>,
    pub credentials: Credentials,
    /// `config.broadcast.ack`: reply to each broadcast push.
    pub ack: bool,
    pub presence_key: String,
    /// The highest offset delivered, so a live broadcast a replay already delivered is not sent again.
    pub last_offset: i64,
    /// `config.postgres_changes`: the row changes the channel gets.
    pub bindings: Vec<Binding>,
    /// Whether the connection tracks a presence on the channel.
    pub tracked: bool,
}

/// The parts of a `phx_join` payload the relay uses.
#[derive(Debug, PartialEq)]
pub(super) struct JoinRequest {
    /// `config.broadcast.self`.
    pub receive_own: bool,
    pub ack: bool,
    pub presence_enabled: bool,
    /// `config.presence.key`, or a random one when empty (as upstream).
    pub presence_key: String,
    /// `config.postgres_changes`, when present, to echo in the reply.
    pub postgres_changes: Option<Vec<Value>>,
    pub access_token: Option<String>,
    /// The last offset the client saw: `config.resume.offset`, or a top-level `offset`.
    pub resume_after: Option<i64>,
    /// `config.broadcast.replay`: retained broadcasts since a time.
    pub replay: Option<ReplaySince>,
}

/// Most broadcasts one `config.broadcast.replay` gets, and how many it gets when it names no `limit` (upstream's).
pub(super) const REPLAY_LIMIT: usize = 25;

/// `config.broadcast.replay`: `{since: unix ms, limit}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReplaySince {
    pub since: i64,
    /// 1 to `REPLAY_LIMIT`.
    pub limit: usize,
}

impl JoinRequest {
    pub fn parse(payload: &Value) -> JoinRequest {
        let config = &payload["config"];
        let flag = |value: &Value| value.as_bool().unwrap_or(false);
        let presence_key = config["presence"]["key"].as_str().unwrap_or_default();
        JoinRequest {
            receive_own: flag(&config["broadcast"]["self"]),
            ack: flag(&config["broadcast"]["ack"]),
            presence_enabled: flag(&config["presence"]["enabled"]),
            presence_key: if presence_key.is_empty() {
                Uuid::new_v4().to_string()
            } else {
                presence_key.to_owned()
            },
            postgres_changes: config["postgres_changes"].as_array().cloned(),
            access_token: payload["access_token"]
                .as_str()
                .filter(|token| !token.is_empty())
                .map(str::to_owned),
            resume_after: config["resume"]["offset"]
                .as_i64()
                .or_else(|| payload["offset"].as_i64()),
            replay: config["broadcast"]["replay"]["since"]
                .as_i64()
                .map(|since| ReplaySince {
                    since,
                    limit: config["broadcast"]["replay"]["limit"]
                        .as_u64()
                        .map_or(REPLAY_LIMIT, |limit| (limit as usize).clamp(1, REPLAY_LIMIT)),
                }),
        }
    }
}

pub(super) fn reply(frame: Frame) -> Vec<Outgoing> {
    vec![Outgoing::Frame(frame)]
}

pub(super) fn with(mut out: Vec<Outgoing>, frame: Frame) -> Vec<Outgoing> {
    out.push(Outgoing::Frame(frame));
    out
}

/// `phx_close` must carry `ref == join_ref`, or the client ignores it.
pub(super) fn close_frame(topic: &str, join_ref: &Option<String>) -> Outgoing {
    Outgoing::Frame(Frame::new(
        join_ref.clone(),
        join_ref.clone(),
        topic,
        "phx_close",
        json!({}),
    ))
}

/// Why a channel is being closed, as upstream tells it before `phx_close`.
pub(super) fn system_error_frame(topic: &str, message: &str) -> Outgoing {
    let payload = json!({
        "extension": "system",
        "status": "error",
        "message": message,
        "channel": sub_topic(topic),
    });
    Outgoing::Frame(Frame::new(None, None, topic, "system", payload))
}

/// Tells a resuming client that what it missed is gone and where the topic is now.
pub(super) fn refetch_frame(topic: &str, latest: Option<i64>) -> Outgoing {
    let payload = json!({
        "extension": "system",
        "status": "ok",
        "message": "refetch",
        "channel": sub_topic(topic),
        "offset": latest,
    });
    Outgoing::Frame(Frame::new(None, None, topic, "system", payload))
}

fn sub_topic(topic: &str) -> &str {
    topic.strip_prefix(TOPIC_PREFIX).unwrap_or(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_realtime_js_join_parses_with_its_defaults() {
        let payload = json!({"config": {
            "broadcast": {"ack": true},
            "presence": {"key": "u1", "enabled": true},
            "postgres_changes": [{"event": "INSERT", "schema": "public", "table": "todos"}],
            "private": false,
        }, "access_token": "jwt"});
        let request = JoinRequest::parse(&payload);
        assert!(request.ack && request.presence_enabled && !request.receive_own);
        assert_eq!(request.presence_key, "u1");
        assert_eq!(request.postgres_changes.map(|b| b.len()), Some(1));
        assert_eq!(request.access_token.as_deref(), Some("jwt"));
        assert_eq!(request.resume_after, None);
    }

    #[test]
    fn an_empty_presence_key_is_replaced_and_a_missing_bindings_key_stays_missing() {
        let request = JoinRequest::parse(&json!({"config": {"presence": {"key": ""}}, "access_token": ""}));
        assert!(!request.presence_key.is_empty());
        assert_eq!(request.postgres_changes, None);
        assert_eq!(request.access_token, None);
    }

    #[test]
    fn a_replay_is_read_from_the_broadcast_config_with_upstreams_limit() {
        let replay = |config: Value| JoinRequest::parse(&json!({ "config": { "broadcast": config } })).replay;
        assert_eq!(
            replay(json!({"replay": {"since": 5, "limit": 3}})),
            Some(ReplaySince { since: 5, limit: 3 })
        );
        assert_eq!(
            replay(json!({"replay": {"since": 5}})),
            Some(ReplaySince {
                since: 5,
                limit: REPLAY_LIMIT
            })
        );
        assert_eq!(
            replay(json!({"replay": {"since": 5, "limit": 1000}})).unwrap().limit,
            REPLAY_LIMIT
        );
        assert_eq!(replay(json!({"ack": true})), None);
    }

    #[test]
    fn the_resume_offset_is_read_from_the_config_or_the_top_level() {
        let nested = json!({"config": {"resume": {"offset": 7}}, "offset": 3});
        assert_eq!(JoinRequest::parse(&nested).resume_after, Some(7));
        assert_eq!(
            JoinRequest::parse(&json!({"config": {}, "offset": 3})).resume_after,
            Some(3)
        );
    }
}
