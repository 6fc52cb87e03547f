//! The realtime relay's protocol over real websockets, under both serializers (1.0.0 and 2.0.0): each rule of
//! Supabase Realtime's channel protocol, who may join and broadcast, and the limits on what a client may send.

use crate::common::realtime_client::{
    admin_token, join_payload, portal_token, reason, spawn_relay, spawn_relay_with, token, Frame, RealtimeClient,
    Received, ANON_KEY, JWT_SECRET, PUBLIC_TOPIC,
};
use crate::common::ACCOUNT;
use crate::under_both_serializers;
use serde_json::json;
use server::realtime::auth::{Role, TokenKeys};
use server::secret::Secret;
use server::store::{self, now_millis, object_spec, MirrorRecord};

under_both_serializers!(
    an_apikey_that_is_a_token_authorises_joins_that_carry_none,
    a_configured_audience_refuses_tokens_for_another,
    a_shutdown_errors_every_channel_so_that_clients_rejoin_and_closes_the_socket,
    a_heartbeat_is_answered_with_its_ref,
    a_join_echoes_postgres_changes_bindings_in_order_with_ids,
    a_join_without_postgres_changes_gets_a_reply_without_the_key,
    an_unknown_apikey_is_refused_with_401_on_the_upgrade,
    joins_without_access_are_refused_with_a_reason,
    broadcasts_honour_self_and_ack,
    a_portal_client_cannot_broadcast,
    a_portal_client_joins_only_the_jobs_of_its_company,
    presence_state_follows_a_join_and_diffs_reach_every_subscriber,
    a_refreshed_token_is_rechecked_and_an_expired_one_closes_the_channel,
    leaving_replies_then_closes_with_the_join_ref,
);

async fn a_heartbeat_is_answered_with_its_ref(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = relay.client(vsn).await;
    client.push(None, Some("7"), "phoenix", "heartbeat", json!({})).await;
    let expected = Frame {
        join_ref: None,
        msg_ref: Some("7".into()),
        topic: "phoenix".into(),
        event: "phx_reply".into(),
        payload: json!({"status": "ok", "response": {}}),
    };
    assert_eq!(client.frame().await, expected);
}

async fn a_join_echoes_postgres_changes_bindings_in_order_with_ids(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = relay.client(vsn).await;
    let bindings = json!([
        {"event": "INSERT", "schema": "public", "table": "staff", "filter": "uuid=eq.1"},
        {"event": "*", "schema": "public", "table": "jobs"},
    ]);
    let payload = join_payload(json!({"postgres_changes": bindings}), Some(&admin_token()));
    let (join_ref, reply) = client.join("realtime:jobs", payload).await;
    assert_eq!(
        (reply.join_ref.as_deref(), reply.msg_ref.as_deref()),
        (Some(&*join_ref), Some(&*join_ref))
    );
    assert_eq!(reply.payload["status"], "ok");
    let echoed = reply.payload["response"]["postgres_changes"]
        .as_array()
        .expect("bindings echoed")
        .clone();
    assert_eq!(echoed.len(), 2);
    for (echo, binding) in echoed.iter().zip(bindings.as_array().unwrap()) {
        assert!(echo["id"].is_number(), "each binding has an id: {echo}");
        let mut without_id = echo.clone();
        without_id.as_object_mut().unwrap().remove("id");
        assert_eq!(&without_id, binding);
    }
    assert_ne!(echoed[0]["id"], echoed[1]["id"]);
}

async fn a_join_without_postgres_changes_gets_a_reply_without_the_key(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = relay.client(vsn).await;
    let payload = json!({"config": {"broadcast": {"self": false}}, "access_token": admin_token()});
    let (_, reply) = client.join("realtime:jobs", payload).await;
    assert_eq!(reply.payload, json!({"status": "ok", "response": {}}));
}

async fn an_unknown_apikey_is_refused_with_401_on_the_upgrade(vsn: &str) {
    let relay = spawn_relay().await;
    assert_eq!(
        RealtimeClient::try_connect(relay.app.address, "not-the-key", vsn)
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        RealtimeClient::try_connect(relay.app.address, "", vsn).await.err(),
        Some(401)
    );
    assert!(RealtimeClient::try_connect(relay.app.address, ANON_KEY, vsn)
        .await
        .is_ok());
}

async fn joins_without_access_are_refused_with_a_reason(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = relay.client(vsn).await;
    let (_, reply) = client.join("realtime:jobs", join_payload(json!({}), None)).await;
    assert!(reason(&reply).starts_with("Unauthorized"), "{reply:?}");
    let (_, reply) = client
        .join("realtime:jobs", join_payload(json!({}), Some(ANON_KEY)))
        .await;
    assert!(
        reason(&reply).starts_with("Unauthorized"),
        "the anon key is no token: {reply:?}"
    );
    let (_, reply) = client
        .join(
            "realtime:company:co-2",
            join_payload(json!({}), Some(&portal_token("co-1"))),
        )
        .await;
    assert!(reason(&reply).contains("company:co-2"), "{reply:?}");
    let (_, reply) = client
        .join(
            "realtime:jobs",
            join_payload(json!({}), Some(&token(Role::Admin, None, -60))),
        )
        .await;
    assert!(reason(&reply).contains("expired"), "{reply:?}");
    let (_, reply) = client
        .join("realtime:jobs", join_payload(json!({}), Some("not.a.jwt")))
        .await;
    assert!(reason(&reply).starts_with("Unauthorized"), "{reply:?}");

    client
        .join_ok("realtime:company:co-1", Some(&portal_token("co-1")))
        .await;
    let mut anonymous = relay.client(vsn).await;
    anonymous.join_ok(PUBLIC_TOPIC, None).await;
}

async fn broadcasts_honour_self_and_ack(vsn: &str) {
    let relay = spawn_relay().await;
    let (mut alice, mut bob) = (relay.client(vsn).await, relay.client(vsn).await);
    let alice_config = json!({"broadcast": {"ack": true, "self": false}});
    let (alice_join, _) = alice
        .join(PUBLIC_TOPIC, join_payload(alice_config, Some(&admin_token())))
        .await;
    let (bob_join, _) = bob
        .join(PUBLIC_TOPIC, join_payload(json!({"broadcast": {"self": true}}), None))
        .await;

    let message = json!({"type": "broadcast", "event": "hello", "payload": {"n": 1}});
    alice
        .push(Some(&alice_join), Some("50"), PUBLIC_TOPIC, "broadcast", message)
        .await;
    let ack = alice.frame().await;
    assert_eq!((ack.event.as_str(), ack.msg_ref.as_deref()), ("phx_reply", Some("50")));
    assert_eq!(ack.payload, json!({"status": "ok", "response": {}}));
    assert_eq!(bob.broadcast_on(PUBLIC_TOPIC, "hello").await, json!({"n": 1}));
    assert_eq!(
        alice.drain().await,
        Vec::<Received>::new(),
        "self: false spares the sender"
    );

    let message = json!({"type": "broadcast", "event": "HELLO_BACK", "payload": {"n": 2}});
    bob.push(Some(&bob_join), Some("51"), PUBLIC_TOPIC, "broadcast", message)
        .await;
    assert_eq!(alice.broadcast_on(PUBLIC_TOPIC, "HELLO_BACK").await, json!({"n": 2}));
    let own = bob.drain().await;
    assert_eq!(
        own.len(),
        1,
        "self: true returns the sender's own broadcast, and no ack was asked: {own:?}"
    );
    assert_eq!(own[0].broadcast().unwrap().2, &json!({"n": 2}));

    if vsn == "2.0.0" {
        let mut carol = relay.client("1.0.0").await;
        carol.join_ok(PUBLIC_TOPIC, None).await;
        alice
            .push_binary_broadcast(
                &alice_join,
                "52",
                PUBLIC_TOPIC,
                "check_relay",
                json!({"hello": "world"}),
            )
            .await;
        let ack = alice.frame().await;
        assert_eq!(
            (ack.msg_ref.as_deref(), &ack.payload["status"]),
            (Some("52"), &json!("ok"))
        );
        let relayed = bob.receive_where(|r| r.broadcast().is_some()).await;
        let expected = Received::Binary {
            topic: PUBLIC_TOPIC.into(),
            event: "check_relay".into(),
            payload: json!({"hello": "world"}),
        };
        assert_eq!(relayed, expected, "a kind 3 push reaches 2.0.0 clients as kind 4");
        assert_eq!(
            carol.broadcast_on(PUBLIC_TOPIC, "check_relay").await,
            json!({"hello": "world"})
        );
    }
}

async fn a_portal_client_cannot_broadcast(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = relay.client(vsn).await;
    let join_ref = client
        .join_ok("realtime:company:co-1", Some(&portal_token("co-1")))
        .await;
    let message = json!({"type": "broadcast", "event": "e", "payload": {}});
    client
        .push(
            Some(&join_ref),
            Some("60"),
            "realtime:company:co-1",
            "broadcast",
            message,
        )
        .await;
    let reply = client.frame().await;
    assert_eq!(reply.msg_ref.as_deref(), Some("60"));
    assert!(reason(&reply).contains("cannot broadcast"), "{reply:?}");
}

async fn a_portal_client_joins_only_the_jobs_of_its_company(vsn: &str) {
    let relay = spawn_relay().await;
    let store = store::connect(&relay.app.database_url).await.unwrap();
    for (job_uuid, company_uuid) in [("job-of-co-1", "co-1"), ("job-of-co-2", "co-2")] {
        let record = json!({"uuid": job_uuid, "company_uuid": company_uuid, "edit_date": "2024-01-01 00:00:00"});
        let row = MirrorRecord::from_record(ACCOUNT, object_spec("job").unwrap(), record).unwrap();
        store.upsert_mirror(&row, now_millis()).await.unwrap();
    }
    let mut client = relay.client(vsn).await;
    client
        .join_ok("realtime:job:job-of-co-1", Some(&portal_token("co-1")))
        .await;
    for job_topic in ["realtime:job:job-of-co-2", "realtime:job:never-mirrored"] {
        let payload = join_payload(json!({}), Some(&portal_token("co-1")));
        let (_, reply) = client.join(job_topic, payload).await;
        assert!(reason(&reply).starts_with("Unauthorized"), "{job_topic}: {reply:?}");
    }
}

async fn presence_state_follows_a_join_and_diffs_reach_every_subscriber(vsn: &str) {
    let relay = spawn_relay().await;
    let presence = |key: &str| join_payload(json!({"presence": {"key": key, "enabled": true}}), None);
    let (mut alice, mut bob) = (relay.client(vsn).await, relay.client(vsn).await);
    let (alice_join, _) = alice.join(PUBLIC_TOPIC, presence("alice")).await;
    let state = alice.frame().await;
    assert_eq!(
        (state.event.as_str(), state.join_ref.as_deref()),
        ("presence_state", Some(&*alice_join))
    );
    assert_eq!(state.payload, json!({}));
    let (bob_join, _) = bob.join(PUBLIC_TOPIC, presence("bob")).await;
    assert_eq!(bob.frame().await.event, "presence_state");

    let track = json!({"type": "presence", "event": "track", "payload": {"name": "Alice"}});
    alice
        .push(Some(&alice_join), Some("70"), PUBLIC_TOPIC, "presence", track)
        .await;
    let reply = alice.frame().await;
    assert_eq!(
        (reply.msg_ref.as_deref(), &reply.payload["status"]),
        (Some("70"), &json!("ok"))
    );
    for client in [&mut alice, &mut bob] {
        let diff = client
            .receive_where(|r| matches!(r, Received::Text(f) if f.event == "presence_diff"))
            .await
            .text();
        assert_eq!(diff.payload["joins"]["alice"]["metas"][0]["name"], "Alice");
        assert!(diff.payload["joins"]["alice"]["metas"][0]["phx_ref"].is_string());
        assert_eq!(diff.payload["leaves"], json!({}));
    }

    let mut carol = relay.client(vsn).await;
    carol.join(PUBLIC_TOPIC, presence("carol")).await;
    let state = carol.frame().await;
    assert_eq!(
        state.payload["alice"]["metas"][0]["name"], "Alice",
        "presence_state lists who is present"
    );

    let untrack = json!({"type": "presence", "event": "untrack"});
    alice
        .push(Some(&alice_join), Some("71"), PUBLIC_TOPIC, "presence", untrack)
        .await;
    let diff = bob
        .receive_where(|r| matches!(r, Received::Text(f) if f.event == "presence_diff"))
        .await
        .text();
    assert_eq!(diff.payload["leaves"]["alice"]["metas"][0]["name"], "Alice");

    let track = json!({"type": "presence", "event": "track", "payload": {"name": "Bob"}});
    bob.push(Some(&bob_join), Some("72"), PUBLIC_TOPIC, "presence", track)
        .await;
    let diff_on = |side: &'static str, key: &'static str| move |r: &Received| matches!(r, Received::Text(f) if f.event == "presence_diff" && f.payload[side].get(key).is_some());
    let joined = carol.receive_where(diff_on("joins", "bob")).await.text();
    assert_eq!(joined.payload["joins"]["bob"]["metas"][0]["name"], "Bob");
    drop(bob);
    let left = carol.receive_where(diff_on("leaves", "bob")).await.text();
    assert_eq!(
        left.payload["leaves"]["bob"]["metas"][0]["name"], "Bob",
        "a disconnect leaves"
    );
}

async fn a_refreshed_token_is_rechecked_and_an_expired_one_closes_the_channel(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = relay.client(vsn).await;
    let join_ref = client.join_ok("realtime:company:co-1", Some(&admin_token())).await;
    let refresh = json!({"access_token": portal_token("co-1")});
    client
        .push(
            Some(&join_ref),
            Some("80"),
            "realtime:company:co-1",
            "access_token",
            refresh,
        )
        .await;
    assert_eq!(
        client.drain().await,
        Vec::<Received>::new(),
        "a valid refresh is accepted silently"
    );
    relay.send_job_update("job-1", "co-1", "Quote");
    assert_eq!(
        client.broadcast_on("realtime:company:co-1", "webhook_update").await["object_uuid"],
        "job-1"
    );

    let expired = json!({"access_token": token(Role::Portal, Some("co-1"), -60)});
    client
        .push(
            Some(&join_ref),
            Some("81"),
            "realtime:company:co-1",
            "access_token",
            expired,
        )
        .await;
    let system = client.frame().await;
    assert_eq!((system.event.as_str(), system.join_ref.as_deref()), ("system", None));
    assert_eq!(system.payload["extension"], "system");
    assert_eq!(system.payload["status"], "error");
    assert_eq!(system.payload["channel"], "company:co-1");
    assert!(system.payload["message"].as_str().unwrap().contains("expired"));
    let close = client.frame().await;
    assert_eq!(close.event, "phx_close");
    assert_eq!(
        (close.join_ref.as_deref(), close.msg_ref.as_deref()),
        (Some(&*join_ref), Some(&*join_ref))
    );

    let join_ref = client.join_ok("realtime:jobs", Some(&admin_token())).await;
    let downgrade = json!({"access_token": portal_token("co-1")});
    client
        .push(Some(&join_ref), Some("82"), "realtime:jobs", "access_token", downgrade)
        .await;
    assert_eq!(
        client.frame().await.event,
        "system",
        "a refresh that no longer grants the topic closes it"
    );
    assert_eq!(client.frame().await.event, "phx_close");
}

async fn leaving_replies_then_closes_with_the_join_ref(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = relay.client(vsn).await;
    let join_ref = client.join_ok(PUBLIC_TOPIC, None).await;
    client
        .push(Some(&join_ref), Some("90"), PUBLIC_TOPIC, "phx_leave", json!({}))
        .await;
    let reply = client.frame().await;
    assert_eq!(
        (reply.event.as_str(), reply.msg_ref.as_deref()),
        ("phx_reply", Some("90"))
    );
    assert_eq!(reply.payload["status"], "ok");
    let close = client.frame().await;
    assert_eq!(close.event, "phx_close");
    assert_eq!(
        (close.join_ref.as_deref(), close.msg_ref.as_deref()),
        (Some(&*join_ref), Some(&*join_ref))
    );

    let message = json!({"type": "broadcast", "event": "e", "payload": {}});
    client
        .push(Some(&join_ref), Some("91"), PUBLIC_TOPIC, "broadcast", message)
        .await;
    assert_eq!(reason(&client.frame().await), "unmatched topic");
}

#[tokio::test]
async fn the_socket_is_also_served_at_the_upstream_path() {
    let relay = spawn_relay().await;
    let url = format!(
        "ws://{}/socket/websocket?apikey={ANON_KEY}&vsn=2.0.0",
        relay.app.address
    );
    assert!(tokio_tungstenite::connect_async(url).await.is_ok());
}

#[tokio::test]
async fn a_repeated_vsn_takes_its_last_value_and_an_unknown_one_is_refused() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{self, Message};

    let relay = spawn_relay().await;
    let base = format!("ws://{}/realtime/v1/websocket?apikey={ANON_KEY}", relay.app.address);
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{base}&vsn=1.0.0&vsn=2.0.0"))
        .await
        .unwrap();
    let heartbeat = json!([null, "1", "phoenix", "heartbeat", {}]).to_string();
    socket.send(Message::text(heartbeat)).await.unwrap();
    let reply = tokio::time::timeout(crate::common::realtime_client::FRAME_TIMEOUT, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let reply: serde_json::Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(reply[3], "phx_reply", "answered in the 2.0.0 array form");

    match tokio_tungstenite::connect_async(format!("{base}&vsn=9.9.9")).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected a refused upgrade, got {:?}", other.map(|_| ())),
    }
}

/// Sends `frames` raw websocket frames of `bytes` each, as one text message, and says how the server answered.
async fn send_fragmented(app: &crate::common::TestApp, frames: usize, bytes: usize) -> bool {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::Message;

    let url = format!(
        "ws://{}/realtime/v1/websocket?apikey={}&vsn=2.0.0",
        app.address, ANON_KEY
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for n in 0..frames {
        let opcode = OpCode::Data(if n == 0 { Data::Text } else { Data::Continue });
        let frame = Frame::message(vec![b' '; bytes], opcode, n + 1 == frames);
        if socket.send(Message::Frame(frame)).await.is_err() {
            return true;
        }
    }
    // The server closes a socket whose message is too large; wait for that (or for the socket to end).
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(_)) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
        true
    })
    .await;
    closed.unwrap_or(false)
}

#[tokio::test]
async fn a_message_over_the_limit_closes_its_connection_and_others_go_on() {
    let relay = spawn_relay_with(|args| args.realtime.realtime_max_message_kib = 64).await;
    // A fragmented message of 40 × 16 KiB, past the 64 KiB limit after its fifth frame.
    assert!(
        send_fragmented(&relay.app, 40, 16 * 1024).await,
        "the fragmented message closed the socket"
    );
    // One frame past the limit.
    assert!(
        send_fragmented(&relay.app, 1, 128 * 1024).await,
        "the large frame closed the socket"
    );
    // Others are unaffected.
    let mut client = relay.client("2.0.0").await;
    client.join_ok(PUBLIC_TOPIC, None).await;
}

async fn a_shutdown_errors_every_channel_so_that_clients_rejoin_and_closes_the_socket(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = relay.client(vsn).await;
    let jobs = client.join_ok("realtime:jobs", Some(&admin_token())).await;
    let lobby = client.join_ok(PUBLIC_TOPIC, None).await;
    relay.app.begin_shutdown();
    let (frames, code) = client.until_closed().await;
    let mut errored: Vec<(String, Option<String>, Option<String>)> = frames
        .into_iter()
        .filter(|frame| frame.event == "phx_error")
        .map(|frame| (frame.topic, frame.join_ref, frame.msg_ref))
        .collect();
    errored.sort();
    assert_eq!(
        errored,
        [
            ("realtime:jobs".to_owned(), Some(jobs.clone()), Some(jobs)),
            (PUBLIC_TOPIC.to_owned(), Some(lobby.clone()), Some(lobby)),
        ]
    );
    assert_eq!(code, Some(1012), "service restart: the client reconnects");
}

async fn an_apikey_that_is_a_token_authorises_joins_that_carry_none(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = RealtimeClient::try_connect(relay.app.address, &admin_token(), vsn)
        .await
        .expect("a valid token is an apikey");
    client.join_ok("realtime:jobs", None).await;
    relay.send_job_update("job-1", "co-1", "Quote");
    assert_eq!(
        client.broadcast_on("realtime:jobs", "webhook_update").await["object_uuid"],
        "job-1"
    );
    assert_eq!(
        RealtimeClient::try_connect(relay.app.address, &token(Role::Admin, None, -60), vsn)
            .await
            .err(),
        Some(401),
        "an expired token is no apikey"
    );
}

async fn a_configured_audience_refuses_tokens_for_another(vsn: &str) {
    let relay = spawn_relay_with(|args| args.realtime.realtime_jwt_audience = Some("sm8".into())).await;
    let mut client = relay.client(vsn).await;
    let (_, reply) = client
        .join("realtime:jobs", join_payload(json!({}), Some(&admin_token())))
        .await;
    assert_eq!(reason(&reply), "Unauthorized: invalid access token (wrong audience)");
    let keys = TokenKeys::new(&Secret::new(JWT_SECRET)).with_audience(Some("sm8".into()));
    let token = keys.mint(Role::Admin, ACCOUNT, None, 60, now_millis() / 1000).unwrap();
    client.join_ok("realtime:jobs", Some(&token)).await;
}
