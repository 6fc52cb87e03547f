//! The realtime relay carrying the pipeline, over real websockets under both serializers: lifecycle frames for
//! admins, record updates on their topics with per-topic offsets, resume and refetch, and the REST broadcast.

use crate::common::outbound::Receiver;
use crate::common::realtime_client::{
    admin_token, broadcasts, join_payload, portal_token, spawn_relay, spawn_relay_with, Received, RelayApp, ANON_KEY,
};
use crate::common::seed_event;
use crate::under_both_serializers;
use serde_json::{json, Value};

under_both_serializers!(
    a_received_webhook_reaches_admins_as_a_pipeline_frame,
    record_updates_reach_their_topics_with_the_seed_payload_and_increasing_offsets,
    a_rejoin_with_an_old_offset_replays_what_was_missed,
    a_rejoin_with_an_offset_no_longer_retained_is_told_to_refetch,
    a_join_with_a_broadcast_replay_gets_the_latest_retained_broadcasts_since_then,
    the_rest_broadcast_is_accepted_and_delivered,
    a_deliverys_attempt_and_an_alerts_change_reach_admins,
);

async fn a_received_webhook_reaches_admins_as_a_pipeline_frame(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = relay.client(vsn).await;
    client.join_ok("realtime:admin:webhooks", Some(&admin_token())).await;
    let response = relay.app.post_signed(&seed_event("job", "job-77", "Quote")).await;
    assert_eq!(response.status(), 200);
    let received = client
        .receive_where(|r| {
            r.broadcast()
                .is_some_and(|(_, event, p)| event == "pipeline" && p["stage"] == "received")
        })
        .await;
    let (topic, _, payload) = received.broadcast().unwrap();
    assert_eq!(topic, "realtime:admin:webhooks");
    assert_eq!(payload["object_uuid"], "job-77");
    assert_eq!(payload["object_type"], "job");
    assert!(payload["event_id"].is_string());
    assert!(payload["offset"].as_i64().unwrap() >= 1);
}

async fn record_updates_reach_their_topics_with_the_seed_payload_and_increasing_offsets(vsn: &str) {
    let relay = spawn_relay().await;
    let mut admin = relay.client(vsn).await;
    for topic in ["realtime:jobs", "realtime:company:co-1", "realtime:job:job-1"] {
        admin.join_ok(topic, Some(&admin_token())).await;
    }
    let mut portal = relay.client(vsn).await;
    portal
        .join_ok("realtime:company:co-1", Some(&portal_token("co-1")))
        .await;
    relay.send_job_update("job-1", "co-1", "Quote");
    relay.send_job_update("job-1", "co-1", "Completed");

    let seen = broadcasts(&mut admin, 6).await;
    for topic in ["realtime:jobs", "realtime:company:co-1", "realtime:job:job-1"] {
        let on_topic: Vec<&Value> = seen
            .iter()
            .filter(|(t, e, _)| t == topic && e == "webhook_update")
            .map(|s| &s.2)
            .collect();
        assert_eq!(on_topic.len(), 2, "two updates on {topic}: {seen:?}");
        assert_eq!(
            on_topic[0],
            &json!({
                "type": "job_update", "object_uuid": "job-1", "event_type": "updated", "changes": {"status": "Quote"},
                "company_uuid": "co-1", "job_uuid": "job-1", "event_id": "ev-Quote", "offset": 1,
            })
        );
        assert_eq!(on_topic[1]["changes"]["status"], "Completed");
        assert_eq!(on_topic[1]["offset"], 2);
    }
    let offsets: Vec<Value> = broadcasts(&mut portal, 2)
        .await
        .into_iter()
        .map(|(_, _, p)| p["offset"].clone())
        .collect();
    assert_eq!(offsets, [json!(1), json!(2)]);
}

async fn a_rejoin_with_an_old_offset_replays_what_was_missed(vsn: &str) {
    let relay = spawn_relay().await;
    let mut observer = relay.client(vsn).await;
    observer.join_ok("realtime:jobs", Some(&admin_token())).await;
    for status in ["A", "B", "C"] {
        relay.send_job_update("job-1", "co-1", status);
    }
    broadcasts(&mut observer, 3).await;

    let mut client = relay.client(vsn).await;
    let resume = join_payload(json!({"resume": {"offset": 1}}), Some(&admin_token()));
    let (_, reply) = client.join("realtime:jobs", resume).await;
    assert_eq!(reply.payload["status"], "ok");
    let replayed: Vec<(Value, Value)> = broadcasts(&mut client, 2)
        .await
        .into_iter()
        .map(|(_, _, p)| (p["offset"].clone(), p["changes"]["status"].clone()))
        .collect();
    assert_eq!(replayed, [(json!(2), json!("B")), (json!(3), json!("C"))]);
    relay.send_job_update("job-1", "co-1", "D");
    assert_eq!(
        client.broadcast_on("realtime:jobs", "webhook_update").await["offset"],
        4,
        "then live, no repeats"
    );

    let mut top_level = relay.client(vsn).await;
    let mut payload = join_payload(json!({}), Some(&admin_token()));
    payload["offset"] = json!(3);
    top_level.join("realtime:jobs", payload).await;
    assert_eq!(
        top_level.broadcast_on("realtime:jobs", "webhook_update").await["offset"],
        4
    );
}

async fn a_rejoin_with_an_offset_no_longer_retained_is_told_to_refetch(vsn: &str) {
    let relay = spawn_relay_with(|args| args.realtime.realtime_retention_messages = 2).await;
    let mut observer = relay.client(vsn).await;
    observer.join_ok("realtime:jobs", Some(&admin_token())).await;
    for status in ["A", "B", "C", "D", "E"] {
        relay.send_job_update("job-1", "co-1", status);
    }
    broadcasts(&mut observer, 5).await;

    let mut client = relay.client(vsn).await;
    let resume = join_payload(json!({"resume": {"offset": 1}}), Some(&admin_token()));
    let (_, reply) = client.join("realtime:jobs", resume).await;
    assert_eq!(reply.payload["status"], "ok");
    let refetch = client.frame().await;
    assert_eq!(
        (refetch.event.as_str(), refetch.topic.as_str()),
        ("system", "realtime:jobs")
    );
    assert_eq!(
        refetch.payload,
        json!({"extension": "system", "status": "ok", "message": "refetch", "channel": "jobs", "offset": 5})
    );
    assert_eq!(
        client.drain().await,
        Vec::<Received>::new(),
        "nothing is replayed when a refetch is due"
    );
}

async fn the_rest_broadcast_is_accepted_and_delivered(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = relay.client(vsn).await;
    client.join_ok("realtime:room1", Some(&admin_token())).await;
    let body = json!({"messages": [{"topic": "room1", "event": "e", "payload": {"x": 1}, "private": false}]});
    let response = rest_broadcast(
        &relay,
        "/realtime/v1/api/broadcast",
        Some(&admin_token()),
        body.to_string(),
    )
    .await;
    assert_eq!(response.status(), 202);
    assert_eq!(client.broadcast_on("realtime:room1", "e").await, json!({"x": 1}));

    let path = "/realtime/v1/api/broadcast/room1/events/ping";
    let response = rest_broadcast(&relay, path, Some(&admin_token()), json!({"y": 2}).to_string()).await;
    assert_eq!(response.status(), 202);
    assert_eq!(client.broadcast_on("realtime:room1", "ping").await, json!({"y": 2}));
}

async fn rest_broadcast(relay: &RelayApp, path: &str, token: Option<&str>, body: String) -> reqwest::Response {
    let mut request = relay
        .app
        .client
        .post(relay.app.url(path))
        .header("apikey", ANON_KEY)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_rest_broadcast_refuses_bad_keys_portal_tokens_and_bad_input() {
    let relay = spawn_relay().await;
    let path = "/realtime/v1/api/broadcast";
    let valid = json!({"messages": [{"topic": "room1", "event": "e", "payload": {}}]}).to_string();
    let without_apikey = relay
        .app
        .client
        .post(relay.app.url(path))
        .bearer_auth(admin_token())
        .body(valid.clone());
    assert_eq!(without_apikey.send().await.unwrap().status(), 401);
    assert_eq!(rest_broadcast(&relay, path, None, valid.clone()).await.status(), 401);
    assert_eq!(
        rest_broadcast(&relay, path, Some("forged"), valid.clone())
            .await
            .status(),
        401
    );
    assert_eq!(
        rest_broadcast(&relay, path, Some(&portal_token("co-1")), valid)
            .await
            .status(),
        403
    );

    for bad in [
        "{",
        r#"{"messages": []}"#,
        r#"{"messages": [{"topic": "", "event": "e"}]}"#,
        r#"{"nope": 1}"#,
    ] {
        let response = rest_broadcast(&relay, path, Some(&admin_token()), bad.into()).await;
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{bad} answers a reason");
    }
    let public = json!({"messages": [{"topic": "lobby", "event": "e", "payload": {}}]}).to_string();
    assert_eq!(
        rest_broadcast(&relay, path, Some(ANON_KEY), public).await.status(),
        202,
        "public topics need no token"
    );
}

async fn a_join_with_a_broadcast_replay_gets_the_latest_retained_broadcasts_since_then(vsn: &str) {
    let relay = spawn_relay().await;
    let mut observer = relay.client(vsn).await;
    observer.join_ok("realtime:jobs", Some(&admin_token())).await;
    for status in ["Quote", "Work Order", "Completed"] {
        relay.send_job_update("job-1", "co-1", status);
    }
    broadcasts(&mut observer, 3).await;

    let mut late = relay.client(vsn).await;
    let replay = json!({"broadcast": {"replay": {"since": 0, "limit": 2}}});
    let (_, reply) = late
        .join("realtime:jobs", join_payload(replay, Some(&admin_token())))
        .await;
    assert_eq!(reply.payload["status"], "ok");
    let replayed: Vec<(Value, Value)> = broadcasts(&mut late, 2)
        .await
        .into_iter()
        .map(|(_, _, p)| (p["offset"].clone(), p["changes"]["status"].clone()))
        .collect();
    assert_eq!(
        replayed,
        [(json!(2), json!("Work Order")), (json!(3), json!("Completed"))]
    );

    let mut later = relay.client(vsn).await;
    let future = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 3_600_000;
    let replay = json!({"broadcast": {"replay": {"since": future}}});
    let (_, reply) = later
        .join("realtime:jobs", join_payload(replay, Some(&admin_token())))
        .await;
    assert_eq!(reply.payload["status"], "ok");
    assert!(
        later.drain().await.iter().all(|r| r.broadcast().is_none()),
        "nothing since then"
    );
}

async fn a_deliverys_attempt_and_an_alerts_change_reach_admins(vsn: &str) {
    let relay = spawn_relay_with(|args| {
        args.processor.workers = 1;
        args.processor.poll_interval_ms = 20;
        args.deliveries.delivery_poll_interval_ms = 20;
        args.alerts.alert_interval_ms = 50;
    })
    .await;
    let app = &relay.app;
    let mut client = relay.client(vsn).await;
    client.join_ok("realtime:admin:webhooks", Some(&admin_token())).await;
    let receiver = Receiver::answering(200).await;
    let created = app
        .changed(
            json!({"action": "create_destination", "name": "hook", "kind": "webhook",
            "settings": {"url": receiver.url("/hook")}}),
        )
        .await;
    let destination = created["destination"]["id"].as_str().unwrap().to_owned();
    app.changed(json!({"action": "create_rule", "definition": {"name": "Every job",
        "when": {"stage": "processed", "object_types": ["job"]}, "actions": [{"type": "deliver", "destinations": ["hook"]}]}}))
    .await;
    let posted: Value = app
        .post_signed(&seed_event("job", "job-live", "Quote"))
        .await
        .json()
        .await
        .unwrap();
    let event_id = posted["event_ids"][0].as_str().unwrap().to_owned();
    let delivered = client
        .receive_where(|r| r.broadcast().is_some_and(|(_, event, _)| event == "delivery"))
        .await;
    let (topic, _, payload) = delivered.broadcast().unwrap();
    assert_eq!(topic, "realtime:admin:webhooks");
    assert_eq!(payload["status"], "delivered", "{payload}");
    assert_eq!(payload["destination_id"], destination.as_str());
    assert_eq!(payload["event_id"], event_id.as_str());

    let alerts = app.manage_json("action=alerts").await;
    let alert_id = alerts["alerts"][0]["id"].as_str().unwrap().to_owned();
    app.changed(json!({"action": "silence_alert", "id": alert_id, "minutes": 5}))
        .await;
    let silenced = client
        .receive_where(|r| r.broadcast().is_some_and(|(_, event, _)| event == "alert"))
        .await;
    let (_, _, payload) = silenced.broadcast().unwrap();
    assert_eq!(payload["alert_id"], alert_id.as_str());
    assert_eq!(payload["transition"], "silenced");
}
