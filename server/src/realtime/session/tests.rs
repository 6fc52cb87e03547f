//! The session loop driven through channels, without a socket.

use super::*;
use crate::realtime::auth::{JobOwnership, Role, TokenKeys};
use crate::realtime::bus::InProcessBus;
use crate::realtime::outbox::Retention;
use crate::secret::Secret;
use tokio_util::sync::PollSender;

struct Client {
    to_server: mpsc::UnboundedSender<WireMessage>,
    from_server: mpsc::Receiver<WireMessage>,
}

impl Client {
    fn send(&self, frame: Value) {
        self.to_server.send(WireMessage::Text(frame.to_string())).unwrap();
    }

    async fn next(&mut self) -> Value {
        let message = tokio::time::timeout(Duration::from_secs(5), self.from_server.recv())
            .await
            .expect("a frame within 5 s")
            .expect("the session is still open");
        let WireMessage::Text(text) = message else {
            panic!("expected a text frame")
        };
        serde_json::from_str(&text).unwrap()
    }
}

fn context() -> Arc<SessionContext> {
    let hub = Arc::new(Hub::new());
    let retention = Retention {
        max_messages: 100,
        max_age: Duration::from_secs(60),
        max_bytes: usize::MAX,
    };
    let keys = TokenKeys::new(&Secret::new("secret"));
    let nobody_owns_jobs: JobOwnership = Arc::new(|_, _| Box::pin(async { None }));
    Arc::new(SessionContext {
        bus: Arc::new(InProcessBus::new(hub.clone(), retention)),
        hub,
        authority: Authority::new(keys, Secret::new("anon"), &["room".into()], nobody_owns_jobs),
        messages_per_second: 1_000,
        closing: CancellationToken::new(),
    })
}

#[tokio::test]
async fn a_client_sending_faster_than_its_rate_is_disconnected() {
    let mut context = Arc::into_inner(context()).unwrap();
    context.messages_per_second = 5;
    let mut client = connect(&Arc::new(context));
    for n in 0..40 {
        client.send(json!([null, n.to_string(), "phoenix", "heartbeat", {}]));
    }
    let mut answered = 0;
    while tokio::time::timeout(Duration::from_secs(5), client.from_server.recv())
        .await
        .expect("the session answers or closes within 5 s")
        .is_some()
    {
        answered += 1;
    }
    assert!((10..40).contains(&answered), "{answered} answered before the close");
}

fn connect(context: &Arc<SessionContext>) -> Client {
    let (to_server, mut server_in) = mpsc::unbounded_channel();
    let (server_out, from_server) = mpsc::channel(64);
    let stream = futures_util::stream::poll_fn(move |cx| server_in.poll_recv(cx));
    let sink = PollSender::new(server_out);
    tokio::spawn(run_session(
        context.clone(),
        Vsn::V2,
        None,
        Box::pin(sink),
        Box::pin(stream),
    ));
    Client { to_server, from_server }
}

#[tokio::test]
async fn a_heartbeat_is_answered_with_its_ref() {
    let mut client = connect(&context());
    client.send(json!([null, "7", "phoenix", "heartbeat", {}]));
    assert_eq!(
        client.next().await,
        json!([null, "7", "phoenix", "phx_reply", {"status": "ok", "response": {}}])
    );
}

#[tokio::test]
async fn a_broadcast_reaches_the_other_subscriber_and_is_acked() {
    let context = context();
    let (mut alice, mut bob) = (connect(&context), connect(&context));
    let join = json!({"config": {"broadcast": {"ack": true, "self": false}}});
    alice.send(json!(["1", "1", "realtime:room", "phx_join", join]));
    bob.send(json!(["1", "1", "realtime:room", "phx_join", join]));
    assert_eq!(alice.next().await[4]["status"], "ok");
    assert_eq!(bob.next().await[4]["status"], "ok");
    alice.send(
        json!(["1", "2", "realtime:room", "broadcast", {"type": "broadcast", "event": "hi", "payload": {"n": 1}}]),
    );
    assert_eq!(
        alice.next().await,
        json!(["1", "2", "realtime:room", "phx_reply", {"status": "ok", "response": {}}])
    );
    let received = bob.next().await;
    assert_eq!(received[3], "broadcast");
    assert_eq!(
        received[4],
        json!({"type": "broadcast", "event": "hi", "payload": {"n": 1}})
    );
}

#[tokio::test]
async fn a_client_too_slow_for_its_queue_is_told_to_refetch_once_it_has_caught_up() {
    let context = context();
    let mut slow = connect(&context);
    slow.send(json!(["1", "1", "realtime:room", "phx_join", {}]));
    assert_eq!(slow.next().await[4]["status"], "ok");
    // The client reads nothing while far more is broadcast than its session can hold.
    let sent = 64 + SESSION_QUEUE + 200;
    for n in 0..sent {
        let payload = BroadcastPayload::Json(json!({"n": n}));
        context
            .hub
            .deliver(Arc::new(Broadcast::new("realtime:room", "e", payload, None, false)));
    }
    let mut received = 0;
    let refetch = loop {
        let frame = slow.next().await;
        if frame[3] == "system" {
            break frame;
        }
        received += 1;
    };
    assert_eq!(refetch[4]["message"], "refetch");
    assert_eq!(refetch[4]["channel"], "room");
    assert!(received < sent, "{received} of {sent} arrived: some were dropped");
}

#[tokio::test]
async fn pushes_to_a_topic_not_joined_are_refused() {
    let mut client = connect(&context());
    client.send(json!(["1", "2", "realtime:room", "broadcast", {"type": "broadcast", "event": "e"}]));
    assert_eq!(client.next().await[4]["response"]["reason"], "unmatched topic");
}

#[tokio::test]
async fn a_token_that_expires_while_joined_closes_the_channel() {
    let context = context();
    let mut client = connect(&context);
    let token = TokenKeys::new(&Secret::new("secret"))
        .mint(Role::Admin, crate::store::DEFAULT_ACCOUNT, None, 0, now_seconds())
        .unwrap();
    client.send(json!(["3", "3", "realtime:jobs", "phx_join", {"config": {}, "access_token": token}]));
    assert_eq!(client.next().await[4]["status"], "ok");
    let system = client.next().await;
    assert_eq!(system[3], "system");
    assert_eq!(system[4]["message"], "Token has expired");
    assert_eq!(client.next().await, json!(["3", "3", "realtime:jobs", "phx_close", {}]));
}
