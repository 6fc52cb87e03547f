//! The Phoenix channel wire format as `@supabase/realtime-js` speaks it: serializer 1.0.0 (JSON objects) and
//! 2.0.0 (JSON arrays, plus binary kind 3 broadcast pushes from clients and kind 4 broadcasts to clients).
//! Only encoding and decoding live here; what a frame means is the session's business.

use serde_json::{json, Map, Value};

/// Binary frame kind of a broadcast pushed by a client (2.0.0 only).
const USER_BROADCAST_PUSH: u8 = 3;
/// Binary frame kind of a broadcast sent to a client (2.0.0 only).
const USER_BROADCAST: u8 = 4;
/// Binary payload encodings.
const ENCODING_RAW: u8 = 0;
const ENCODING_JSON: u8 = 1;

/// One websocket message, as the session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireMessage {
    Text(String),
    Binary(Vec<u8>),
    /// The websocket's close frame, which the server sends when it goes away.
    Close {
        code: u16,
        reason: String,
    },
}

/// The serializer a socket negotiated with `?vsn=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vsn {
    V1,
    V2,
}

impl Vsn {
    /// The serializer named by `vsn`; Phoenix's default, 1.0.0, when absent.
    pub fn from_query(vsn: Option<&str>) -> Result<Vsn, ProtocolError> {
        match vsn {
            None | Some("1.0.0") => Ok(Vsn::V1),
            Some("2.0.0") => Ok(Vsn::V2),
            Some(other) => Err(ProtocolError::UnsupportedVsn(other.to_owned())),
        }
    }

    pub fn decode(self, message: WireMessage) -> Result<Incoming, ProtocolError> {
        match (self, message) {
            (Vsn::V1, WireMessage::Text(text)) => decode_object(&text).map(Incoming::Frame),
            (Vsn::V2, WireMessage::Text(text)) => decode_array(&text).map(Incoming::Frame),
            (Vsn::V2, WireMessage::Binary(bytes)) => decode_broadcast_push(&bytes).map(Incoming::BinaryBroadcast),
            (Vsn::V1, WireMessage::Binary(_)) => Err(ProtocolError::Malformed("binary frames need vsn 2.0.0".into())),
            (_, WireMessage::Close { .. }) => Err(ProtocolError::Malformed("a close frame carries no message".into())),
        }
    }

    pub fn encode(self, outgoing: Outgoing) -> WireMessage {
        match outgoing {
            Outgoing::Frame(frame) => self.encode_frame(frame),
            Outgoing::Rendered(message) => message,
            Outgoing::Broadcast {
                topic,
                event,
                payload,
                binary,
            } => {
                let fits = topic.len() <= 255 && event.len() <= 255;
                if self == Vsn::V2 && fits && (binary || matches!(payload, BroadcastPayload::Raw(_))) {
                    WireMessage::Binary(encode_broadcast(&topic, &event, &payload))
                } else {
                    let payload = match payload {
                        BroadcastPayload::Json(value) => value,
                        // 1.0.0 cannot carry bytes; UTF-8 text is the best a JSON client can get.
                        BroadcastPayload::Raw(bytes) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                    };
                    let payload = json!({ "type": "broadcast", "event": event, "payload": payload });
                    self.encode_frame(Frame::new(None, None, topic, "broadcast", payload))
                }
            }
        }
    }

    fn encode_frame(self, frame: Frame) -> WireMessage {
        let value = match self {
            Vsn::V1 => json!({
                "join_ref": frame.join_ref,
                "ref": frame.msg_ref,
                "topic": frame.topic,
                "event": frame.event,
                "payload": frame.payload,
            }),
            Vsn::V2 => json!([frame.join_ref, frame.msg_ref, frame.topic, frame.event, frame.payload]),
        };
        WireMessage::Text(value.to_string())
    }
}

/// A text frame: `[join_ref, ref, topic, event, payload]` in either serializer.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub join_ref: Option<String>,
    /// The frame's `ref`; replies carry the ref of the push they answer.
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

impl Frame {
    pub fn new(
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: impl Into<String>,
        event: impl Into<String>,
        payload: Value,
    ) -> Frame {
        Frame {
            join_ref,
            msg_ref,
            topic: topic.into(),
            event: event.into(),
            payload,
        }
    }

    /// `phx_reply` answering this frame with `status` and `response`.
    pub fn reply(&self, status: ReplyStatus, response: Value) -> Frame {
        let status = match status {
            ReplyStatus::Ok => "ok",
            ReplyStatus::Error => "error",
        };
        Frame::new(
            self.join_ref.clone(),
            self.msg_ref.clone(),
            self.topic.clone(),
            "phx_reply",
            json!({ "status": status, "response": response }),
        )
    }

    pub fn reply_ok(&self) -> Frame {
        self.reply(ReplyStatus::Ok, json!({}))
    }

    /// An error reply with a reason, the shape the client reports as CHANNEL_ERROR.
    pub fn reply_error(&self, reason: impl Into<String>) -> Frame {
        self.reply(ReplyStatus::Error, json!({ "reason": reason.into() }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    Ok,
    Error,
}

/// A broadcast's payload: JSON, or bytes a 2.0.0 client pushed with the raw encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum BroadcastPayload {
    Json(Value),
    Raw(Vec<u8>),
}

/// A kind 3 frame: a client's broadcast push in binary form.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryPush {
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: BroadcastPayload,
}

impl BinaryPush {
    /// The text frame this push is equivalent to, so it can be answered like one.
    pub fn as_frame(&self) -> Frame {
        Frame::new(
            self.join_ref.clone(),
            self.msg_ref.clone(),
            self.topic.clone(),
            "broadcast",
            json!({}),
        )
    }
}

/// What a client sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Frame(Frame),
    BinaryBroadcast(BinaryPush),
}

/// What the server sends: a frame, or a broadcast the serializer may render as text or as kind 4.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Frame(Frame),
    Broadcast {
        topic: String,
        event: String,
        payload: BroadcastPayload,
        /// Pushed as a kind 3 frame: relayed to 2.0.0 clients as kind 4, as upstream does.
        binary: bool,
    },
    /// Already encoded for this connection's serializer (a broadcast shared by many subscribers).
    Rendered(WireMessage),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("unsupported serializer vsn {0:?}: use 1.0.0 or 2.0.0")]
    UnsupportedVsn(String),
    #[error("malformed frame: {0}")]
    Malformed(String),
}

fn malformed(reason: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed(reason.into())
}

fn decode_object(text: &str) -> Result<Frame, ProtocolError> {
    let value: Map<String, Value> = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
    Ok(Frame {
        join_ref: optional_ref(value.get("join_ref"))?,
        msg_ref: optional_ref(value.get("ref"))?,
        topic: required_string(value.get("topic"), "topic")?,
        event: required_string(value.get("event"), "event")?,
        payload: value.get("payload").cloned().unwrap_or_else(|| json!({})),
    })
}

fn decode_array(text: &str) -> Result<Frame, ProtocolError> {
    let value: Vec<Value> = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
    let [join_ref, msg_ref, topic, event, payload]: [Value; 5] = value
        .try_into()
        .map_err(|_| malformed("expected [join_ref, ref, topic, event, payload]"))?;
    Ok(Frame {
        join_ref: optional_ref(Some(&join_ref))?,
        msg_ref: optional_ref(Some(&msg_ref))?,
        topic: required_string(Some(&topic), "topic")?,
        event: required_string(Some(&event), "event")?,
        payload,
    })
}

/// Refs are decimal strings; a number is accepted as its decimal form.
fn optional_ref(value: Option<&Value>) -> Result<Option<String>, ProtocolError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(malformed("refs must be strings")),
    }
}

fn required_string(value: Option<&Value>, name: &str) -> Result<String, ProtocolError> {
    match value {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(malformed(format!("{name} must be a string"))),
    }
}

/// `03 | len(join_ref) | len(ref) | len(topic) | len(event) | len(meta) | enc | strings... | payload`.
fn decode_broadcast_push(bytes: &[u8]) -> Result<BinaryPush, ProtocolError> {
    let (&kind, rest) = bytes.split_first().ok_or_else(|| malformed("empty binary frame"))?;
    if kind != USER_BROADCAST_PUSH {
        return Err(malformed(format!("unsupported binary frame kind {kind}")));
    }
    let header = rest.get(..6).ok_or_else(|| malformed("truncated binary header"))?;
    let lengths: Vec<usize> = header[..5].iter().map(|&n| n as usize).collect();
    let encoding = header[5];
    let mut body = &rest[6..];
    let mut fields = Vec::with_capacity(5);
    for length in lengths {
        if body.len() < length {
            return Err(malformed("binary frame shorter than its header says"));
        }
        let (field, tail) = body.split_at(length);
        fields.push(std::str::from_utf8(field).map_err(|_| malformed("binary frame strings must be UTF-8"))?);
        body = tail;
    }
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let payload = match encoding {
        ENCODING_JSON => BroadcastPayload::Json(serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?),
        ENCODING_RAW => BroadcastPayload::Raw(body.to_vec()),
        other => return Err(malformed(format!("unknown payload encoding {other}"))),
    };
    Ok(BinaryPush {
        join_ref: non_empty(fields[0]),
        msg_ref: non_empty(fields[1]),
        topic: fields[2].to_owned(),
        event: fields[3].to_owned(),
        payload,
    })
}

/// A client's kind 3 frame for `push`, as `@supabase/realtime-js` builds it: the server only decodes these, its
/// tests and the fuzzer build them. `None` when a string is longer than the 255 bytes its length byte can count.
pub fn encode_broadcast_push(push: &BinaryPush) -> Option<Vec<u8>> {
    let join_ref = push.join_ref.as_deref().unwrap_or_default();
    let msg_ref = push.msg_ref.as_deref().unwrap_or_default();
    let strings = [join_ref, msg_ref, &push.topic, &push.event];
    let (encoding, body) = match &push.payload {
        BroadcastPayload::Json(value) => (ENCODING_JSON, value.to_string().into_bytes()),
        BroadcastPayload::Raw(bytes) => (ENCODING_RAW, bytes.clone()),
    };
    let mut frame = vec![USER_BROADCAST_PUSH];
    for string in strings {
        frame.push(u8::try_from(string.len()).ok()?);
    }
    frame.extend([0, encoding]);
    for string in strings {
        frame.extend_from_slice(string.as_bytes());
    }
    frame.extend_from_slice(&body);
    Some(frame)
}

/// `04 | len(topic) | len(event) | len(meta) | enc | topic | event | meta | payload`; the caller checks the
/// lengths fit in a byte.
fn encode_broadcast(topic: &str, event: &str, payload: &BroadcastPayload) -> Vec<u8> {
    let (encoding, body) = match payload {
        BroadcastPayload::Json(value) => (ENCODING_JSON, value.to_string().into_bytes()),
        BroadcastPayload::Raw(bytes) => (ENCODING_RAW, bytes.clone()),
    };
    let mut frame = Vec::with_capacity(5 + topic.len() + event.len() + body.len());
    frame.extend([USER_BROADCAST, topic.len() as u8, event.len() as u8, 0, encoding]);
    frame.extend_from_slice(topic.as_bytes());
    frame.extend_from_slice(event.as_bytes());
    frame.extend_from_slice(&body);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kind 3 frame with a JSON payload, as realtime-js builds it.
    fn broadcast_push(join_ref: &str, msg_ref: &str, topic: &str, event: &str, payload: Value) -> Vec<u8> {
        encode_broadcast_push(&BinaryPush {
            join_ref: Some(join_ref.into()),
            msg_ref: Some(msg_ref.into()),
            topic: topic.into(),
            event: event.into(),
            payload: BroadcastPayload::Json(payload),
        })
        .expect("short strings")
    }

    #[test]
    fn the_serializer_defaults_to_1_0_0_and_refuses_unknown_versions() {
        assert_eq!(Vsn::from_query(None), Ok(Vsn::V1));
        assert_eq!(Vsn::from_query(Some("2.0.0")), Ok(Vsn::V2));
        assert!(matches!(
            Vsn::from_query(Some("3.0.0")),
            Err(ProtocolError::UnsupportedVsn(_))
        ));
    }

    #[test]
    fn a_2_0_0_join_decodes_from_its_array_form() {
        let text = r#"["6","6","realtime:room1","phx_join",{"config":{"private":false}}]"#;
        let Incoming::Frame(frame) = Vsn::V2.decode(WireMessage::Text(text.into())).unwrap() else {
            panic!()
        };
        assert_eq!(frame.join_ref.as_deref(), Some("6"));
        assert_eq!(frame.msg_ref.as_deref(), Some("6"));
        assert_eq!(frame.topic, "realtime:room1");
        assert_eq!(frame.event, "phx_join");
        assert_eq!(frame.payload["config"]["private"], false);
    }

    #[test]
    fn a_1_0_0_heartbeat_decodes_from_its_object_form_with_missing_keys() {
        let text = r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7"}"#;
        let Incoming::Frame(frame) = Vsn::V1.decode(WireMessage::Text(text.into())).unwrap() else {
            panic!()
        };
        assert_eq!(frame.join_ref, None);
        assert_eq!(frame.msg_ref.as_deref(), Some("7"));
        assert_eq!(frame.topic, "phoenix");
    }

    #[test]
    fn frames_without_a_topic_or_of_the_wrong_shape_are_malformed() {
        for text in [r#"{"event":"x"}"#, r#"["1","1","t"]"#, "not json", r#"[1,2,3,"e",{}]"#] {
            for vsn in [Vsn::V1, Vsn::V2] {
                assert!(
                    vsn.decode(WireMessage::Text(text.into())).is_err(),
                    "{text} decoded under {vsn:?}"
                );
            }
        }
        assert!(Vsn::V1.decode(WireMessage::Binary(vec![3])).is_err());
    }

    #[test]
    fn the_captured_kind_3_push_decodes() {
        let bytes = broadcast_push("8", "10", "realtime:room1", "check_relay", json!({"hello": "world"}));
        assert_eq!(&bytes[..7], &[0x03, 0x01, 0x02, 0x0e, 0x0b, 0x00, 0x01]);
        let Incoming::BinaryBroadcast(push) = Vsn::V2.decode(WireMessage::Binary(bytes)).unwrap() else {
            panic!()
        };
        assert_eq!(push.join_ref.as_deref(), Some("8"));
        assert_eq!(push.msg_ref.as_deref(), Some("10"));
        assert_eq!(push.topic, "realtime:room1");
        assert_eq!(push.event, "check_relay");
        assert_eq!(push.payload, BroadcastPayload::Json(json!({"hello": "world"})));
    }

    #[test]
    fn a_number_reaches_subscribers_as_the_sender_wrote_it() {
        // The relay re-encodes what it decodes, so a number parsed one unit in the last place off would reach
        // subscribers changed, and change again at every hop.
        let text = r#"[null,null,"realtime:x","broadcast",{"n":555555555555555555555555555500000000000000000000000000000000}]"#;
        let Incoming::Frame(frame) = Vsn::V2.decode(WireMessage::Text(text.into())).unwrap() else {
            panic!()
        };
        assert_eq!(frame.payload["n"].as_f64(), Some(5.555555555555556e59));
        let relayed = Vsn::V2.encode(Outgoing::Frame(frame.clone()));
        assert_eq!(Vsn::V2.decode(relayed), Ok(Incoming::Frame(frame)));
    }

    #[test]
    fn truncated_binary_frames_are_malformed() {
        let bytes = broadcast_push("8", "10", "realtime:room1", "e", json!({}));
        assert!(Vsn::V2.decode(WireMessage::Binary(bytes[..12].to_vec())).is_err());
        assert!(Vsn::V2.decode(WireMessage::Binary(vec![4, 0, 0, 0, 1])).is_err());
    }

    #[test]
    fn a_binary_broadcast_encodes_as_the_captured_kind_4_frame() {
        let payload = BroadcastPayload::Json(json!({"job": 42}));
        let outgoing = Outgoing::Broadcast {
            topic: "realtime:room1".into(),
            event: "webhook_update".into(),
            payload,
            binary: true,
        };
        let WireMessage::Binary(bytes) = Vsn::V2.encode(outgoing) else {
            panic!("expected a binary frame")
        };
        assert_eq!(&bytes[..5], &[0x04, 0x0e, 0x0e, 0x00, 0x01]);
        assert_eq!(&bytes[5..19], b"realtime:room1");
        assert_eq!(&bytes[19..33], b"webhook_update");
        assert_eq!(&bytes[33..], br#"{"job":42}"#);
    }

    #[test]
    fn a_json_broadcast_is_a_text_frame_in_both_serializers() {
        let outgoing = || Outgoing::Broadcast {
            topic: "realtime:jobs".into(),
            event: "webhook_update".into(),
            payload: BroadcastPayload::Json(json!({"a": 1})),
            binary: false,
        };
        let WireMessage::Text(v2) = Vsn::V2.encode(outgoing()) else {
            panic!()
        };
        let v2: Value = serde_json::from_str(&v2).unwrap();
        assert_eq!(
            v2,
            json!([null, null, "realtime:jobs", "broadcast", {"type": "broadcast", "event": "webhook_update", "payload": {"a": 1}}])
        );
        let WireMessage::Text(v1) = Vsn::V1.encode(outgoing()) else {
            panic!()
        };
        let v1: Value = serde_json::from_str(&v1).unwrap();
        assert_eq!(v1["topic"], "realtime:jobs");
        assert_eq!(v1["payload"]["event"], "webhook_update");
        assert_eq!(v1["ref"], Value::Null);
    }

    #[test]
    fn replies_carry_the_refs_of_the_frame_they_answer() {
        let push = Frame::new(Some("6".into()), Some("9".into()), "realtime:x", "broadcast", json!({}));
        let reply = push.reply_error("nope");
        assert_eq!(
            (reply.join_ref.as_deref(), reply.msg_ref.as_deref()),
            (Some("6"), Some("9"))
        );
        assert_eq!(reply.event, "phx_reply");
        assert_eq!(
            reply.payload,
            json!({"status": "error", "response": {"reason": "nope"}})
        );
    }
}
