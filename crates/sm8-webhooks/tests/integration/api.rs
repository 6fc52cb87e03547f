//! The receiver, management API, health checks and pages, over real HTTP.

use crate::common::{seed_event, spawn_app, ADMIN_TOKEN};
use serde_json::Value;

#[tokio::test]
async fn a_signed_webhook_is_stored_as_queued_before_the_answer() {
    let app = spawn_app().await;
    let response = app.post_signed(&seed_event("Job", "job-1", "Work Order")).await;
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["received"], 1);
    assert_eq!(receipt["duplicates"], 0);
    let event_id = receipt["event_ids"][0].as_str().unwrap().to_owned();

    let listed = app.manage_json("action=events").await;
    let events = listed["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], event_id.as_str());
    assert_eq!(events[0]["object_type"], "job");
    assert_eq!(events[0]["object_uuid"], "job-1");
    assert_eq!(events[0]["event_type"], "updated");
    assert_eq!(events[0]["status"], "queued");
    assert_eq!(events[0]["attempts"], 0);
    assert!(events[0]["received_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(events[0]["last_error"], Value::Null);
}

#[tokio::test]
async fn a_redelivered_webhook_is_not_stored_twice() {
    let app = spawn_app().await;
    let body = seed_event("Job", "job-1", "Work Order");
    let first: Value = app.post_signed(&body).await.json().await.unwrap();
    let second = app.post_signed(&body).await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["duplicates"], 1);
    assert_eq!(second["event_ids"], first["event_ids"]);
    assert_eq!(app.manage_json("action=stats").await["total"], 1);
}

#[tokio::test]
async fn a_delivery_of_several_events_stores_each() {
    let app = spawn_app().await;
    let body = format!(
        "[{},{}]",
        seed_event("Job", "job-1", "Quote"),
        seed_event("Company", "co-1", "x")
    );
    let receipt: Value = app.post_signed(&body).await.json().await.unwrap();
    assert_eq!(receipt["received"], 2);
    assert_eq!(receipt["event_ids"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_or_missing_signatures_are_refused_with_401_and_nothing_is_stored() {
    let app = spawn_app().await;
    let body = seed_event("Job", "job-1", "Work Order");
    let wrong = server::ingest::signature::sign(b"another secret", body.as_bytes());
    for signature in [
        None,
        Some(""),
        Some("sha256="),
        Some("abc123"),
        Some(&"zz".repeat(32)),
        Some(wrong.as_str()),
    ] {
        let response = app.post_webhook(&body, signature).await;
        assert_eq!(response.status(), 401, "signature {signature:?} was not refused");
        let reason: Value = response.json().await.unwrap();
        assert!(reason["error"].as_str().unwrap().contains("signature"), "{reason}");
    }
    assert_eq!(app.manage_json("action=stats").await["total"], 0);
}

#[tokio::test]
async fn malformed_payloads_get_400_with_a_reason() {
    let app = spawn_app().await;
    let cases = [
        ("", "empty"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "object"),
        (
            r#"{"object_uuid":"u","event_type":"updated","timestamp":"2024-01-01T00:00:00Z"}"#,
            "object_type",
        ),
        (
            r#"{"object_type":"Job","object_uuid":"u","timestamp":"2024-01-01T00:00:00Z"}"#,
            "event_type",
        ),
        (
            r#"{"object_type":"Job","object_uuid":"u","event_type":"updated","timestamp":"soon"}"#,
            "timestamp",
        ),
    ];
    for (body, expected) in cases {
        let response = app.post_signed(body).await;
        assert_eq!(response.status(), 400, "body {body:?}");
        let reason: Value = response.json().await.unwrap();
        assert!(
            reason["error"].as_str().unwrap().contains(expected),
            "body {body:?} gave {reason}"
        );
    }
    assert_eq!(app.manage_json("action=stats").await["total"], 0);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_gets_413() {
    let app = spawn_app().await;
    let padding = "x".repeat(1024 * 1024);
    let body = format!(r#"{{"object_type":"Job","object_uuid":"u","event_type":"updated","padding":"{padding}"}}"#);
    let response = app.post_signed(&body).await;
    assert_eq!(response.status(), 413);
    let reason: Value = response.json().await.unwrap();
    assert!(reason["error"].as_str().unwrap().contains("exceeds"));

    // Without a Content-Length the limit still holds.
    let stream = futures_stream(body.into_bytes());
    let response = app
        .client
        .post(app.url("/api/webhooks/sm8"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

fn futures_stream(bytes: Vec<u8>) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    futures_util::stream::iter(chunks)
}

#[tokio::test]
async fn the_status_endpoint_and_health_checks_answer() {
    let app = spawn_app().await;
    let status: Value = app
        .client
        .get(app.url("/api/webhooks/sm8"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "ok");
    assert_eq!(status["signature_verification"], "enabled");
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            app.client.get(app.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_management_api_requires_the_admin_token() {
    let app = spawn_app().await;
    let url = app.url("/api/webhooks/management?action=stats");
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        app.client.get(&url).bearer_auth("wrong").send().await.unwrap().status(),
        401
    );
    assert_eq!(
        app.client
            .get(&url)
            .header("authorization", "Basic abc")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        app.client
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn the_management_api_answers_bad_queries_with_400() {
    let app = spawn_app().await;
    for query in [
        "",
        "action=delete_everything",
        "action=events&status=done",
        "action=events&limit=many",
    ] {
        let response = app.manage(query).await;
        assert_eq!(response.status(), 400, "query {query:?}");
        let reason: Value = response.json().await.unwrap();
        assert!(reason["error"].is_string());
    }
}

#[tokio::test]
async fn stats_count_events_by_status_and_object_type() {
    let app = spawn_app().await;
    app.post_signed(&seed_event("Job", "job-1", "Quote")).await;
    app.post_signed(&seed_event("Job", "job-2", "Quote")).await;
    app.post_signed(&seed_event("Company", "co-1", "x")).await;
    let stats = app.manage_json("action=stats").await;
    assert_eq!(stats["total"], 3);
    assert_eq!(stats["by_status"]["queued"], 3);
    assert_eq!(stats["by_status"]["failed"], 0);
    assert_eq!(stats["by_object_type"]["job"], 2);
    assert_eq!(stats["by_object_type"]["company"], 1);
    assert!(stats["last_received_at"].is_string());
}

#[tokio::test]
async fn events_are_listed_newest_first_with_status_and_limit_filters() {
    let app = spawn_app().await;
    for uuid in ["job-1", "job-2", "job-3"] {
        app.post_signed(&seed_event("Job", uuid, "Quote")).await;
    }
    let listed = app.manage_json("action=events&limit=2").await;
    let uuids: Vec<&str> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["object_uuid"].as_str().unwrap())
        .collect();
    assert_eq!(uuids, ["job-3", "job-2"]);
    assert_eq!(
        app.manage_json("action=events&status=queued").await["events"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(app.manage_json("action=events&status=failed").await["events"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_accepted_event_is_kept_across_a_restart() {
    let app = spawn_app().await;
    let receipt: Value = app
        .post_signed(&seed_event("Job", "job-1", "Quote"))
        .await
        .json()
        .await
        .unwrap();
    let app = app.restart().await;
    let listed = app.manage_json("action=events").await;
    assert_eq!(listed["events"][0]["id"], receipt["event_ids"][0]);
}

#[tokio::test]
async fn the_dashboard_is_rendered_on_the_server_with_a_sign_in_form() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/admin/webhook-dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the page shows that a session is needed");
    let html = response.text().await.unwrap();
    assert!(html.contains("Webhook dashboard"));
    assert!(html.contains("Email") && html.contains("Password"));
    assert!(html.contains("/pkg/sm8-webhooks"), "the bundle's script, packed or not");
}
