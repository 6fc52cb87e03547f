//! A realtime subscriber as realtime-js is one: a websocket to `/realtime/v1/websocket` (serializer 2.0.0) that
//! joins one topic with an access token, heartbeats, and hands every broadcast it receives to a callback.
//! Its buffers are kept small because the fan-out scenario opens fifty thousand of them in this process.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::harness::ANON_KEY;

/// realtime-js heartbeats this often; the relay closes connections silent for 60 s.
const HEARTBEAT: Duration = Duration::from_secs(25);
/// How long a join may take to be answered.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Subscriber {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Subscriber {
    /// Connects and joins `topic` (e.g. `realtime:jobs`) with `access_token`; fails unless the join is accepted.
    pub async fn join(address: SocketAddr, topic: &str, access_token: &str) -> anyhow::Result<Subscriber> {
        Self::join_from(Ipv4Addr::LOCALHOST, address, topic, access_token).await
    }

    /// As `join`, connecting from `source`, a loopback address of its own: one source address reaches a server
    /// address and port through at most the ~28,000 ports of the ephemeral range.
    pub async fn join_from(
        source: Ipv4Addr,
        address: SocketAddr,
        topic: &str,
        access_token: &str,
    ) -> anyhow::Result<Subscriber> {
        let url = format!("ws://{address}/realtime/v1/websocket?apikey={ANON_KEY}&vsn=2.0.0");
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((source, 0)))?;
        let stream = socket.connect(address).await.context("connecting to the relay")?;
        stream.set_nodelay(true)?;
        let (mut socket, _) =
            tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(stream), Some(config))
                .await
                .context("opening the realtime websocket")?;
        let join = json!(["1", "1", topic, "phx_join", {
            "config": {
                "broadcast": {"ack": false, "self": false},
                "presence": {"key": "", "enabled": false},
                "private": false,
            },
            "access_token": access_token,
        }]);
        socket.send(Message::text(join.to_string())).await?;
        let reply = tokio::time::timeout(JOIN_TIMEOUT, async {
            while let Some(message) = socket.next().await {
                if let Message::Text(text) = message? {
                    let frame: Value = serde_json::from_str(text.as_str())?;
                    if frame[2] == topic && frame[3] == "phx_reply" {
                        return Ok(frame[4].clone());
                    }
                }
            }
            Err(anyhow!("the relay closed the socket before answering the join"))
        })
        .await
        .context("the join was not answered")??;
        if reply["status"] != "ok" {
            bail!("joining {topic} was refused: {reply}");
        }
        Ok(Subscriber { socket })
    }

    /// Calls `on_broadcast(event, payload)` for every broadcast until `stop` is cancelled or the socket closes.
    pub async fn listen(mut self, stop: CancellationToken, mut on_broadcast: impl FnMut(&str, &Value)) {
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        let mut heartbeat_ref = 1u64;
        loop {
            tokio::select! {
                message = self.socket.next() => match message {
                    Some(Ok(message)) => {
                        if let Some((event, payload)) = broadcast_of(&message) {
                            on_broadcast(&event, &payload);
                        }
                    }
                    Some(Err(_)) | None => return,
                },
                _ = heartbeat.tick() => {
                    heartbeat_ref += 1;
                    let frame = json!([null, heartbeat_ref.to_string(), "phoenix", "heartbeat", {}]);
                    if self.socket.send(Message::text(frame.to_string())).await.is_err() {
                        return;
                    }
                }
                () = stop.cancelled() => {
                    let _ = self.socket.close(None).await;
                    return;
                }
            }
        }
    }
}

/// The event and payload of a broadcast frame, text (`[_, _, topic, "broadcast", {event, payload}]`) or binary
/// kind 4 (`04 | len(topic) | len(event) | len(meta) | enc | topic | event | meta | payload`).
fn broadcast_of(message: &Message) -> Option<(String, Value)> {
    match message {
        Message::Text(text) => {
            let frame: Value = serde_json::from_str(text.as_str()).ok()?;
            if frame[3] != "broadcast" {
                return None;
            }
            Some((frame[4]["event"].as_str()?.to_owned(), frame[4]["payload"].clone()))
        }
        Message::Binary(bytes) => {
            let (&kind, header) = bytes.split_first()?;
            if kind != 4 || header.len() < 4 {
                return None;
            }
            let (topic, event, meta) = (header[0] as usize, header[1] as usize, header[2] as usize);
            let body = &header[4..];
            let event_name = std::str::from_utf8(body.get(topic..topic + event)?).ok()?;
            let payload = serde_json::from_slice(body.get(topic + event + meta..)?).ok()?;
            Some((event_name.to_owned(), payload))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_broadcasts_are_recognised_and_other_frames_are_not() {
        let text = r#"[null,null,"realtime:jobs","broadcast",{"type":"broadcast","event":"bench","payload":{"n":1}}]"#;
        assert_eq!(
            broadcast_of(&Message::text(text)),
            Some(("bench".into(), json!({"n": 1})))
        );
        let reply = r#"[null,"2","phoenix","phx_reply",{"status":"ok","response":{}}]"#;
        assert_eq!(broadcast_of(&Message::text(reply)), None);
    }

    #[test]
    fn binary_kind_4_broadcasts_are_decoded() {
        let (topic, event, payload) = ("realtime:jobs", "bench", br#"{"seq":3}"#);
        let mut frame = vec![4, topic.len() as u8, event.len() as u8, 0, 1];
        frame.extend_from_slice(topic.as_bytes());
        frame.extend_from_slice(event.as_bytes());
        frame.extend_from_slice(payload);
        assert_eq!(
            broadcast_of(&Message::binary(frame)),
            Some(("bench".into(), json!({"seq": 3})))
        );
        assert_eq!(broadcast_of(&Message::binary(vec![4, 1])), None);
    }
}
