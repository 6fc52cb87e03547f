//! A realtime test client over a real websocket (tokio-tungstenite), with its own small codec for both
//! serializers, written from `REALTIME_PROTOCOL.md` rather than borrowed from the server.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use super::{run_built, serve_args, TestApp};
use server::config::ServeArgs;
use server::realtime::auth::{Role, TokenKeys};
use server::secret::Secret;
use server::startup::Server;
use server::updates::{PipelineUpdate, RecordUpdate, RowChange, RowChangeKind, UpdateSender};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const ANON_KEY: &str = "test-anon-key";
pub const JWT_SECRET: &str = "test-jwt-secret";
/// Configured as public in `realtime_args`.
pub const PUBLIC_TOPIC: &str = "realtime:lobby";
/// How long a test waits for any one frame.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// Adds the relay's test settings to `args`.
pub fn with_realtime(mut args: ServeArgs) -> ServeArgs {
    args.realtime.realtime_anon_key = Some(Secret::new(ANON_KEY));
    args.realtime.jwt_secret = Some(Secret::new(JWT_SECRET));
    args.realtime.realtime_public_topics = vec!["lobby".into()];
    args
}

/// An access token of the default account signed with the test secret, valid for `ttl_seconds` (negative:
/// already expired).
pub fn token(role: Role, company: Option<&str>, ttl_seconds: i64) -> String {
    account_token(server::store::DEFAULT_ACCOUNT, role, company, ttl_seconds)
}

/// An access token of `account` signed with the test secret, valid for `ttl_seconds`.
pub fn account_token(account: &str, role: Role, company: Option<&str>, ttl_seconds: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    TokenKeys::new(&Secret::new(JWT_SECRET))
        .mint(role, account, company, ttl_seconds, now)
        .unwrap()
}

pub fn admin_token() -> String {
    token(Role::Admin, None, 3600)
}

pub fn portal_token(company: &str) -> String {
    token(Role::Portal, Some(company), 3600)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

/// A frame from the server: text in either serializer, or a binary kind 4 broadcast.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Text(Frame),
    Binary {
        topic: String,
        event: String,
        payload: Value,
    },
}

impl Received {
    /// `(topic, event, payload)` of a broadcast, whichever form it came in.
    pub fn broadcast(&self) -> Option<(&str, &str, &Value)> {
        match self {
            Received::Text(frame) if frame.event == "broadcast" => Some((
                &frame.topic,
                frame.payload["event"].as_str()?,
                &frame.payload["payload"],
            )),
            Received::Binary { topic, event, payload } => Some((topic, event, payload)),
            Received::Text(_) => None,
        }
    }

    pub fn text(self) -> Frame {
        match self {
            Received::Text(frame) => frame,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

pub struct RealtimeClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    vsn: String,
    next_ref: u64,
}

impl RealtimeClient {
    pub async fn connect(address: SocketAddr, vsn: &str) -> RealtimeClient {
        RealtimeClient::try_connect(address, ANON_KEY, vsn)
            .await
            .expect("the websocket upgrade succeeds")
    }

    /// Connects to `/realtime/v1/websocket`, or returns the HTTP status that refused the upgrade.
    pub async fn try_connect(address: SocketAddr, apikey: &str, vsn: &str) -> Result<RealtimeClient, u16> {
        let url = format!("ws://{address}/realtime/v1/websocket?apikey={apikey}&vsn={vsn}");
        match tokio_tungstenite::connect_async(url).await {
            Ok((socket, _)) => Ok(RealtimeClient {
                socket,
                vsn: vsn.to_owned(),
                next_ref: 1,
            }),
            Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(error) => panic!("connecting failed: {error}"),
        }
    }

    pub fn make_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    pub async fn push(
        &mut self,
        join_ref: Option<&str>,
        msg_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) {
        let text = if self.vsn == "2.0.0" {
            json!([join_ref, msg_ref, topic, event, payload])
        } else {
            json!({"join_ref": join_ref, "ref": msg_ref, "topic": topic, "event": event, "payload": payload})
        };
        self.socket.send(Message::text(text.to_string())).await.unwrap();
    }

    /// A kind 3 broadcast push with a JSON payload.
    pub async fn push_binary_broadcast(
        &mut self,
        join_ref: &str,
        msg_ref: &str,
        topic: &str,
        event: &str,
        payload: Value,
    ) {
        let mut frame = vec![
            3,
            join_ref.len() as u8,
            msg_ref.len() as u8,
            topic.len() as u8,
            event.len() as u8,
            0,
            1,
        ];
        for part in [join_ref, msg_ref, topic, event] {
            frame.extend_from_slice(part.as_bytes());
        }
        frame.extend_from_slice(payload.to_string().as_bytes());
        self.socket.send(Message::binary(frame)).await.unwrap();
    }

    /// The next frame; panics after `FRAME_TIMEOUT` or when the socket closes.
    pub async fn receive(&mut self) -> Received {
        loop {
            let message = tokio::time::timeout(FRAME_TIMEOUT, self.socket.next())
                .await
                .expect("a frame within the timeout")
                .expect("the socket is open")
                .expect("a readable frame");
            match message {
                Message::Text(text) => return Received::Text(self.decode(text.as_str())),
                Message::Binary(bytes) => {
                    let (topic, event, payload) = decode_kind_4(&bytes);
                    return Received::Binary { topic, event, payload };
                }
                Message::Close(frame) => panic!("the server closed the socket: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Reads until the server's close frame, returning the frames before it and its code.
    pub async fn until_closed(&mut self) -> (Vec<Frame>, Option<u16>) {
        let mut before = Vec::new();
        loop {
            let message = tokio::time::timeout(FRAME_TIMEOUT, self.socket.next())
                .await
                .expect("a frame within the timeout")
                .expect("a close frame before the end of the stream")
                .expect("a readable frame");
            match message {
                Message::Text(text) => before.push(self.decode(text.as_str())),
                Message::Close(frame) => return (before, frame.map(|frame| u16::from(frame.code))),
                _ => continue,
            }
        }
    }

    pub async fn frame(&mut self) -> Frame {
        self.receive().await.text()
    }

    /// Skips frames until one matches.
    pub async fn receive_where(&mut self, wanted: impl Fn(&Received) -> bool) -> Received {
        loop {
            let received = self.receive().await;
            if wanted(&received) {
                return received;
            }
        }
    }

    /// The next broadcast on `topic` with `event`, skipping anything else.
    pub async fn broadcast_on(&mut self, topic: &str, event: &str) -> Value {
        let received = self
            .receive_where(|r| r.broadcast().is_some_and(|(t, e, _)| t == topic && e == event))
            .await;
        received.broadcast().unwrap().2.clone()
    }

    /// Joins `topic`, returning the join ref and the reply.
    pub async fn join(&mut self, topic: &str, payload: Value) -> (String, Frame) {
        let join_ref = self.make_ref();
        self.push(Some(&join_ref), Some(&join_ref), topic, "phx_join", payload)
            .await;
        let reply = self
            .receive_where(|r| matches!(r, Received::Text(f) if f.event == "phx_reply" && f.topic == topic))
            .await;
        (join_ref, reply.text())
    }

    /// Joins `topic` with `token` and default config, asserting success.
    pub async fn join_ok(&mut self, topic: &str, token: Option<&str>) -> String {
        let (join_ref, reply) = self.join(topic, join_payload(json!({}), token)).await;
        assert_eq!(reply.payload["status"], "ok", "joining {topic} failed: {reply:?}");
        join_ref
    }

    /// Sends a heartbeat and returns everything that arrived before its reply: what the server had queued.
    pub async fn drain(&mut self) -> Vec<Received> {
        let heartbeat_ref = self.make_ref();
        self.push(None, Some(&heartbeat_ref), "phoenix", "heartbeat", json!({}))
            .await;
        let mut before = Vec::new();
        loop {
            match self.receive().await {
                Received::Text(f) if f.topic == "phoenix" && f.msg_ref.as_deref() == Some(&heartbeat_ref) => {
                    return before
                }
                other => before.push(other),
            }
        }
    }

    fn decode(&self, text: &str) -> Frame {
        let value: Value = serde_json::from_str(text).unwrap();
        let string = |v: &Value| v.as_str().map(str::to_owned);
        if self.vsn == "2.0.0" {
            let array = value.as_array().expect("2.0.0 frames are arrays");
            assert_eq!(array.len(), 5, "{text}");
            Frame {
                join_ref: string(&array[0]),
                msg_ref: string(&array[1]),
                topic: string(&array[2]).unwrap(),
                event: string(&array[3]).unwrap(),
                payload: array[4].clone(),
            }
        } else {
            assert!(value.is_object(), "1.0.0 frames are objects: {text}");
            Frame {
                join_ref: string(&value["join_ref"]),
                msg_ref: string(&value["ref"]),
                topic: string(&value["topic"]).unwrap(),
                event: string(&value["event"]).unwrap(),
                payload: value["payload"].clone(),
            }
        }
    }
}

/// A join payload as realtime-js sends it, with `config` merged over the defaults.
pub fn join_payload(config: Value, token: Option<&str>) -> Value {
    let mut full = json!({
        "broadcast": {"ack": false, "self": false},
        "presence": {"key": "", "enabled": false},
        "private": false,
    });
    for (key, value) in config.as_object().cloned().unwrap_or_default() {
        full[key] = value;
    }
    let mut payload = json!({ "config": full });
    if let Some(token) = token {
        payload["access_token"] = token.into();
    }
    payload
}

/// `04 | len(topic) | len(event) | len(meta) | enc | topic | event | meta | payload`.
fn decode_kind_4(bytes: &[u8]) -> (String, String, Value) {
    assert_eq!(bytes[0], 4, "binary frames to clients are kind 4");
    let (topic_len, event_len, meta_len, encoding) =
        (bytes[1] as usize, bytes[2] as usize, bytes[3] as usize, bytes[4]);
    assert_eq!(encoding, 1, "a JSON payload");
    let topic = String::from_utf8(bytes[5..5 + topic_len].to_vec()).unwrap();
    let event = String::from_utf8(bytes[5 + topic_len..5 + topic_len + event_len].to_vec()).unwrap();
    let payload = serde_json::from_slice(&bytes[5 + topic_len + event_len + meta_len..]).unwrap();
    (topic, event, payload)
}

/// Runs each named `async fn(vsn: &str)` as two tests: `name::under_1_0_0` and `name::under_2_0_0`.
#[macro_export]
macro_rules! under_both_serializers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn under_1_0_0() {
                super::$name("1.0.0").await
            }
            #[tokio::test]
            async fn under_2_0_0() {
                super::$name("2.0.0").await
            }
        }
    )*};
}

/// A server with the relay's test settings, and the channel its pipeline announces updates on.
pub struct RelayApp {
    pub app: TestApp,
    pub updates: UpdateSender,
}

pub async fn spawn_relay() -> RelayApp {
    spawn_relay_with(|_| {}).await
}

pub async fn spawn_relay_with(configure: impl FnOnce(&mut ServeArgs)) -> RelayApp {
    let data = TempDir::new().unwrap();
    let database_url = format!("sqlite://{}", data.path().join("sm8.db").display());
    let mut args = with_realtime(serve_args(&database_url));
    configure(&mut args);
    let server = Server::build(&args).await.expect("server starts");
    let updates = server.updates();
    RelayApp {
        app: run_built(server, &database_url, data),
        updates,
    }
}

impl RelayApp {
    pub async fn client(&self, vsn: &str) -> RealtimeClient {
        RealtimeClient::connect(self.app.address, vsn).await
    }

    pub fn send_job_update(&self, job_uuid: &str, company_uuid: &str, status: &str) {
        self.updates
            .send(job_update(job_uuid, company_uuid, status))
            .expect("the relay listens");
    }
}

pub fn job_update(job_uuid: &str, company_uuid: &str, status: &str) -> PipelineUpdate {
    PipelineUpdate::Record(RecordUpdate {
        account: super::ACCOUNT.into(),
        event_id: format!("ev-{status}"),
        object_type: "job".into(),
        object_uuid: job_uuid.into(),
        event_type: "updated".into(),
        changes: json!({ "status": status }),
        company_uuid: Some(company_uuid.into()),
        job_uuid: Some(job_uuid.into()),
        received_at: 0,
        row: None,
    })
}

/// A new job row of `account`, as the pipeline announces it after mirroring it.
pub fn job_row_update(account: &str, job_uuid: &str) -> PipelineUpdate {
    let PipelineUpdate::Record(mut record) = job_update(job_uuid, "co-1", "Quote") else {
        unreachable!("a job update is a record update")
    };
    record.account = account.into();
    record.row = Some(RowChange {
        table: "sm8_jobs".into(),
        kind: RowChangeKind::Insert,
        new: json!({"uuid": job_uuid, "company_uuid": "co-1", "status": "Quote"}),
        old: None,
        committed_at: 1,
    });
    PipelineUpdate::Record(record)
}

pub fn reason(reply: &Frame) -> &str {
    assert_eq!(reply.event, "phx_reply");
    assert_eq!(reply.payload["status"], "error", "expected an error reply: {reply:?}");
    reply.payload["response"]["reason"]
        .as_str()
        .expect("an error reply has a reason")
}

/// The next `count` broadcasts, as `(topic, event, payload)`.
pub async fn broadcasts(client: &mut RealtimeClient, count: usize) -> Vec<(String, String, Value)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let received = client.receive_where(|r| r.broadcast().is_some()).await;
        let (topic, event, payload) = received.broadcast().unwrap();
        seen.push((topic.to_owned(), event.to_owned(), payload.clone()));
    }
    seen
}
