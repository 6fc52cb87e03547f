//! The `realtime_frames` target: a client's text frames under either serializer and its binary (kind 3) frames.
//! Whatever decodes must encode back to itself, and a binary broadcast must reach subscribers of either
//! serializer as it came. Fields: `vsn` (as in the socket's `?vsn=`; absent is 1.0.0) and `frame: binary` for a
//! binary frame (text otherwise); the body is the frame.

use serde_json::Value;

use super::Message;
use crate::realtime::protocol::{
    encode_broadcast_push, BinaryPush, BroadcastPayload, Frame, Incoming, Outgoing, Vsn, WireMessage,
};

/// Decodes one fuzzed frame and checks that it survives encoding.
pub fn realtime_frames(data: &[u8]) {
    let message = Message::read(data);
    let Ok(vsn) = Vsn::from_query(message.text("vsn").as_deref()) else {
        return;
    };
    let frame = match message.field("frame") {
        Some(b"binary") => WireMessage::Binary(message.body.to_vec()),
        _ => WireMessage::Text(String::from_utf8_lossy(message.body).into_owned()),
    };
    match vsn.decode(frame) {
        Ok(Incoming::Frame(frame)) => frame_round_trips(vsn, frame),
        Ok(Incoming::BinaryBroadcast(push)) => push_round_trips(push),
        Err(error) => assert!(!error.to_string().is_empty(), "a refusal without a reason"),
    }
}

fn frame_round_trips(vsn: Vsn, frame: Frame) {
    let encoded = vsn.encode(Outgoing::Frame(frame.clone()));
    assert_eq!(
        vsn.decode(encoded.clone()),
        Ok(Incoming::Frame(frame)),
        "re-encoded as {encoded:?}"
    );
}

fn push_round_trips(push: BinaryPush) {
    let encoded = encode_broadcast_push(&push).expect("decoded strings fit their length bytes");
    assert_eq!(
        Vsn::V2.decode(WireMessage::Binary(encoded)),
        Ok(Incoming::BinaryBroadcast(push.clone()))
    );
    let relayed = |vsn: Vsn| {
        vsn.encode(Outgoing::Broadcast {
            topic: push.topic.clone(),
            event: push.event.clone(),
            payload: push.payload.clone(),
            binary: true,
        })
    };

    // To a 2.0.0 client, kind 4: `04 | len(topic) | len(event) | len(meta) | enc | topic | event | payload`.
    let WireMessage::Binary(kind_4) = relayed(Vsn::V2) else {
        panic!("a binary broadcast reached a 2.0.0 client as text");
    };
    let (topic, event) = (push.topic.as_bytes(), push.event.as_bytes());
    let (encoding, payload) = match &push.payload {
        BroadcastPayload::Json(value) => (1, value.to_string().into_bytes()),
        BroadcastPayload::Raw(bytes) => (0, bytes.clone()),
    };
    let header = [4, topic.len() as u8, event.len() as u8, 0, encoding];
    assert_eq!(kind_4, [&header[..], topic, event, &payload].concat());

    // To a 1.0.0 client, a text `broadcast` frame naming the event.
    let WireMessage::Text(text) = relayed(Vsn::V1) else {
        panic!("a broadcast reached a 1.0.0 client as binary");
    };
    let Ok(Incoming::Frame(frame)) = Vsn::V1.decode(WireMessage::Text(text.clone())) else {
        panic!("the 1.0.0 broadcast {text:?} does not decode");
    };
    assert_eq!(
        (frame.topic.as_str(), frame.event.as_str()),
        (push.topic.as_str(), "broadcast")
    );
    assert_eq!(frame.payload["event"], Value::String(push.event.clone()));
}
