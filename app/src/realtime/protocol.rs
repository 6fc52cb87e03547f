//! The Phoenix channel frames the browser client exchanges with the relay, in serializer 1.0.0 (one JSON object
//! per text message: `{"topic","event","payload","ref","join_ref"}`). Pure: encoding, decoding and what a server
//! frame means, with no socket and no clock, so it is tested on the host.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::wire::{ALERT_EVENT, DELIVERY_EVENT};
use super::{AlertChange, DeliveryChange, PipelineEvent, WebhookUpdate};

/// The `vsn` query parameter for this serializer.
pub const VSN: &str = "1.0.0";
/// Topic of the socket-level heartbeat.
pub const PHOENIX_TOPIC: &str = "phoenix";
/// Broadcast event of record changes (the seed's name).
pub const WEBHOOK_EVENT: &str = "webhook_update";
/// Broadcast event of pipeline lifecycle updates on `realtime:admin:webhooks`.
pub const PIPELINE_EVENT: &str = "pipeline";
/// The message of the relay's `system` frame telling a resuming client that what it missed is gone.
pub const REFETCH_MESSAGE: &str = "refetch";

/// One frame on the wire. `ref` and `join_ref` are decimal strings or absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    #[serde(default)]
    pub join_ref: Option<String>,
    #[serde(rename = "ref", default)]
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    #[serde(default)]
    pub payload: Value,
}

/// A text message that is not a frame of serializer 1.0.0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a realtime frame: {0}")]
pub struct DecodeError(pub String);

impl Frame {
    pub fn new(join_ref: Option<String>, msg_ref: Option<String>, topic: &str, event: &str, payload: Value) -> Frame {
        Frame {
            join_ref,
            msg_ref,
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload,
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a frame always serialises")
    }

    pub fn decode(text: &str) -> Result<Frame, DecodeError> {
        serde_json::from_str(text).map_err(|error| DecodeError(error.to_string()))
    }

    /// `phx_join` for `topic` with our access token; `resume_after` asks the relay to replay what came after that
    /// offset (`config.resume.offset`). We neither receive our own broadcasts nor use presence.
    pub fn join(topic: &str, join_ref: &str, access_token: &str, resume_after: Option<i64>) -> Frame {
        let mut config = json!({
            "broadcast": {"ack": false, "self": false},
            "presence": {"key": "", "enabled": false},
            "private": false,
        });
        if let Some(offset) = resume_after {
            config["resume"] = json!({ "offset": offset });
        }
        let payload = json!({ "config": config, "access_token": access_token });
        Frame::new(
            Some(join_ref.to_owned()),
            Some(join_ref.to_owned()),
            topic,
            "phx_join",
            payload,
        )
    }

    pub fn heartbeat(msg_ref: &str) -> Frame {
        Frame::new(None, Some(msg_ref.to_owned()), PHOENIX_TOPIC, "heartbeat", json!({}))
    }

    /// Hands a joined channel a fresh access token before the old one expires.
    pub fn access_token(topic: &str, join_ref: &str, msg_ref: &str, access_token: &str) -> Frame {
        let payload = json!({ "access_token": access_token });
        Frame::new(
            Some(join_ref.to_owned()),
            Some(msg_ref.to_owned()),
            topic,
            "access_token",
            payload,
        )
    }

    pub fn leave(topic: &str, join_ref: &str, msg_ref: &str) -> Frame {
        Frame::new(
            Some(join_ref.to_owned()),
            Some(msg_ref.to_owned()),
            topic,
            "phx_leave",
            json!({}),
        )
    }
}

/// What a frame from the relay means to the client.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// The answer to a push of ours (a join, a heartbeat).
    Reply {
        topic: String,
        msg_ref: Option<String>,
        outcome: ReplyOutcome,
    },
    /// A record changed (`webhook_update`).
    Webhook { topic: String, update: WebhookUpdate },
    /// An event moved through the pipeline (`pipeline`).
    Pipeline { topic: String, event: PipelineEvent },
    /// An alert changed (`alert`).
    Alert { topic: String, change: AlertChange },
    /// A delivery's attempt ended (`delivery`).
    Delivery { topic: String, change: DeliveryChange },
    /// What we missed on `topic` is no longer retained; `offset` is where the topic is now.
    Refetch { topic: String, offset: Option<i64> },
    /// The relay is about to close the channel, and says why (e.g. "Token has expired").
    SystemError { topic: String, message: String },
    /// The channel was closed (`phx_close`) or crashed (`phx_error`).
    ChannelClosed { topic: String, join_ref: Option<String> },
    /// Anything else: presence, other broadcasts, unknown events.
    Ignored,
}

/// The status of a `phx_reply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    Ok,
    /// Refused, with the relay's reason.
    Error(String),
}

impl ServerMessage {
    pub fn from_frame(frame: Frame) -> ServerMessage {
        let Frame {
            join_ref,
            msg_ref,
            topic,
            event,
            payload,
        } = frame;
        match event.as_str() {
            "phx_reply" => {
                let outcome = match payload["status"].as_str() {
                    Some("ok") => ReplyOutcome::Ok,
                    _ => ReplyOutcome::Error(payload["response"]["reason"].as_str().unwrap_or("refused").to_owned()),
                };
                ServerMessage::Reply {
                    topic,
                    msg_ref,
                    outcome,
                }
            }
            "phx_close" | "phx_error" => ServerMessage::ChannelClosed { topic, join_ref },
            "system" => match (payload["status"].as_str(), payload["message"].as_str()) {
                (Some("ok"), Some(REFETCH_MESSAGE)) => ServerMessage::Refetch {
                    topic,
                    offset: payload["offset"].as_i64(),
                },
                (Some("error"), message) => ServerMessage::SystemError {
                    topic,
                    message: message.unwrap_or_default().to_owned(),
                },
                _ => ServerMessage::Ignored,
            },
            "broadcast" => {
                let inner = payload.get("payload").cloned().unwrap_or(Value::Null);
                match payload["event"].as_str() {
                    Some(name) if name.eq_ignore_ascii_case(WEBHOOK_EVENT) => match serde_json::from_value(inner) {
                        Ok(update) => ServerMessage::Webhook { topic, update },
                        Err(_) => ServerMessage::Ignored,
                    },
                    Some(name) if name.eq_ignore_ascii_case(PIPELINE_EVENT) => match serde_json::from_value(inner) {
                        Ok(event) => ServerMessage::Pipeline { topic, event },
                        Err(_) => ServerMessage::Ignored,
                    },
                    Some(name) if name.eq_ignore_ascii_case(ALERT_EVENT) => match serde_json::from_value(inner) {
                        Ok(change) => ServerMessage::Alert { topic, change },
                        Err(_) => ServerMessage::Ignored,
                    },
                    Some(name) if name.eq_ignore_ascii_case(DELIVERY_EVENT) => match serde_json::from_value(inner) {
                        Ok(change) => ServerMessage::Delivery { topic, change },
                        Err(_) => ServerMessage::Ignored,
                    },
                    _ => ServerMessage::Ignored,
                }
            }
            _ => ServerMessage::Ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::{PipelineStage, UpdateKind};

    #[test]
    fn a_frame_round_trips_through_the_object_serializer() {
        let frame = Frame::heartbeat("7");
        let text = frame.encode();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({"join_ref": null, "ref": "7", "topic": "phoenix", "event": "heartbeat", "payload": {}})
        );
        assert_eq!(Frame::decode(&text), Ok(frame));
    }

    #[test]
    fn missing_refs_and_payload_decode_as_absent() {
        let frame = Frame::decode(r#"{"topic":"realtime:jobs","event":"phx_close"}"#).unwrap();
        assert_eq!(
            (frame.join_ref, frame.msg_ref, frame.payload),
            (None, None, Value::Null)
        );
        assert!(
            Frame::decode(r#"{"event":"phx_reply","payload":{}}"#).is_err(),
            "a frame names its topic"
        );
        assert!(Frame::decode("not json").is_err());
    }

    #[test]
    fn a_join_carries_the_token_and_the_resume_offset_where_the_relay_reads_them() {
        let first = Frame::join("realtime:jobs", "3", "jwt", None);
        assert_eq!(
            (first.join_ref.as_deref(), first.msg_ref.as_deref()),
            (Some("3"), Some("3"))
        );
        assert_eq!(first.payload["access_token"], "jwt");
        assert_eq!(first.payload["config"]["broadcast"]["self"], false);
        assert!(first.payload["config"].get("resume").is_none());
        let again = Frame::join("realtime:jobs", "9", "jwt", Some(41));
        assert_eq!(again.payload["config"]["resume"]["offset"], 41);
    }

    #[test]
    fn the_token_refresh_and_leave_name_the_channel_join() {
        let refresh = Frame::access_token("realtime:jobs", "3", "8", "new");
        assert_eq!(
            (refresh.event.as_str(), refresh.join_ref.as_deref()),
            ("access_token", Some("3"))
        );
        assert_eq!(refresh.payload, json!({"access_token": "new"}));
        let leave = Frame::leave("realtime:jobs", "3", "9");
        assert_eq!(
            (leave.event.as_str(), leave.msg_ref.as_deref()),
            ("phx_leave", Some("9"))
        );
    }

    #[test]
    fn replies_are_ok_or_carry_the_reason() {
        let ok = r#"{"topic":"realtime:jobs","event":"phx_reply","ref":"3","join_ref":"3","payload":{"status":"ok","response":{}}}"#;
        assert_eq!(
            ServerMessage::from_frame(Frame::decode(ok).unwrap()),
            ServerMessage::Reply {
                topic: "realtime:jobs".into(),
                msg_ref: Some("3".into()),
                outcome: ReplyOutcome::Ok
            }
        );
        let refused = r#"{"topic":"realtime:company:c2","event":"phx_reply","ref":"4","join_ref":"4",
            "payload":{"status":"error","response":{"reason":"Unauthorized: this portal token cannot join company:c2"}}}"#;
        let ServerMessage::Reply {
            outcome: ReplyOutcome::Error(reason),
            ..
        } = ServerMessage::from_frame(Frame::decode(refused).unwrap())
        else {
            panic!("expected a refusal")
        };
        assert!(reason.starts_with("Unauthorized"));
    }

    #[test]
    fn a_webhook_broadcast_becomes_a_typed_update_with_its_offset() {
        let text = r#"{"topic":"realtime:company:c1","event":"broadcast","ref":null,"join_ref":null,"payload":{
            "type":"broadcast","event":"webhook_update","payload":{"type":"job_update","object_uuid":"j1",
            "event_type":"updated","changes":{"status":"Completed"},"company_uuid":"c1","job_uuid":"j1",
            "event_id":"e1","offset":12}}}"#;
        let ServerMessage::Webhook { topic, update } = ServerMessage::from_frame(Frame::decode(text).unwrap()) else {
            panic!("expected an update")
        };
        assert_eq!(topic, "realtime:company:c1");
        assert_eq!(update.kind, UpdateKind::JobUpdate);
        assert_eq!(update.offset, Some(12));
        assert_eq!(update.changes["status"], "Completed");
        assert_eq!(update.job_uuid.as_deref(), Some("j1"));
    }

    #[test]
    fn a_pipeline_broadcast_becomes_a_pipeline_event() {
        let text = r#"{"topic":"realtime:admin:webhooks","event":"broadcast","payload":{"type":"broadcast",
            "event":"pipeline","payload":{"event_id":"e1","object_type":"job","object_uuid":"j1",
            "event_type":"updated","stage":"success","attempts":1,"error":null,"at":5,"offset":3}}}"#;
        let ServerMessage::Pipeline { event, .. } = ServerMessage::from_frame(Frame::decode(text).unwrap()) else {
            panic!("expected a pipeline event")
        };
        assert_eq!(
            (event.stage, event.attempts, event.offset),
            (PipelineStage::Success, 1, Some(3))
        );
    }

    #[test]
    fn alert_and_delivery_broadcasts_become_their_changes() {
        let alert = r#"{"topic":"realtime:admin:webhooks","event":"broadcast","payload":{"type":"broadcast",
            "event":"alert","payload":{"alert_id":"a1","kind":"queue_age","transition":"fired","offset":4}}}"#;
        let ServerMessage::Alert { change, .. } = ServerMessage::from_frame(Frame::decode(alert).unwrap()) else {
            panic!("expected an alert change")
        };
        assert_eq!(
            (change.alert_id.as_str(), change.transition.as_str(), change.offset),
            ("a1", "fired", Some(4))
        );
        let delivery = r#"{"topic":"realtime:admin:webhooks","event":"broadcast","payload":{"type":"broadcast",
            "event":"delivery","payload":{"delivery_id":"d1","destination_id":"t1","event_id":null,"status":"failed"}}}"#;
        let ServerMessage::Delivery { change, .. } = ServerMessage::from_frame(Frame::decode(delivery).unwrap()) else {
            panic!("expected a delivery change")
        };
        assert_eq!(
            (change.delivery_id.as_str(), change.status.as_str(), change.event_id),
            ("d1", "failed", None)
        );
    }

    #[test]
    fn unknown_update_types_and_stages_still_decode() {
        let update: WebhookUpdate =
            serde_json::from_value(json!({"type": "invoice_update", "object_uuid": "i1", "event_type": "created"}))
                .unwrap();
        assert_eq!(update.kind, UpdateKind::Other);
        let event: PipelineEvent = serde_json::from_value(json!({"event_id": "e", "stage": "teleported"})).unwrap();
        assert_eq!(event.stage, PipelineStage::Other);
    }

    #[test]
    fn refetch_and_system_errors_and_closes_are_recognised() {
        let refetch = Frame::new(
            None,
            None,
            "realtime:jobs",
            "system",
            json!({"extension": "system", "status": "ok", "message": "refetch", "channel": "jobs", "offset": 57}),
        );
        assert_eq!(
            ServerMessage::from_frame(refetch),
            ServerMessage::Refetch {
                topic: "realtime:jobs".into(),
                offset: Some(57)
            }
        );
        let expired = Frame::new(
            None,
            None,
            "realtime:jobs",
            "system",
            json!({"extension": "system", "status": "error", "message": "Token has expired", "channel": "jobs"}),
        );
        assert_eq!(
            ServerMessage::from_frame(expired),
            ServerMessage::SystemError {
                topic: "realtime:jobs".into(),
                message: "Token has expired".into()
            }
        );
        let close = Frame::new(
            Some("3".into()),
            Some("3".into()),
            "realtime:jobs",
            "phx_close",
            json!({}),
        );
        assert_eq!(
            ServerMessage::from_frame(close),
            ServerMessage::ChannelClosed {
                topic: "realtime:jobs".into(),
                join_ref: Some("3".into())
            }
        );
        let presence = Frame::new(None, None, "realtime:jobs", "presence_diff", json!({}));
        assert_eq!(ServerMessage::from_frame(presence), ServerMessage::Ignored);
    }
}
