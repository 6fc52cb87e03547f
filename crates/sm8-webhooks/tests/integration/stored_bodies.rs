//! What one request costs in storage: its body and headers are stored once, whatever number of events it holds;
//! a redelivery stores nothing new; retention deletes a body with its last event; and an event larger than
//! `MAX_EVENT_BYTES` is refused before anything is stored.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{seed_event, serve_args, spawn_app, spawn_app_with, TestApp};

/// (rows, bytes) of stored bodies, read from the SQLite file the app uses.
async fn stored_bodies(app: &TestApp) -> (i64, i64) {
    let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
    let counted: (i64, Option<i64>) = sqlx::query_as("SELECT COUNT(*), SUM(LENGTH(raw_body)) FROM webhook_bodies")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    (counted.0, counted.1.unwrap_or(0))
}

/// An object callback with `entries` entries, padded to make its body large.
fn object_callback(entries: usize) -> String {
    let entries: Vec<Value> = (0..entries)
        .map(|n| {
            json!({"uuid": format!("body-job-{n}"), "changed_fields": ["status", "job_description"],
                "time": "2024-01-01 00:00:00"})
        })
        .collect();
    json!({"object": "job", "entry": entries, "resource_url": "https://api.servicem8.com/api_1.0/job.json",
        "padding": "x".repeat(100_000)})
    .to_string()
}

#[tokio::test]
async fn a_delivery_body_is_stored_once_however_many_events_it_holds() {
    let app = spawn_app().await;
    let body = object_callback(100);
    let receipt: Value = app.post_webhook(&body, None).await.json().await.unwrap();
    assert_eq!(receipt["received"], 100, "{receipt}");
    assert_eq!(stored_bodies(&app).await, (1, body.len() as i64));
    for index in [0, 99] {
        let id = receipt["event_ids"][index].as_str().unwrap();
        let detail = app.manage_json(&format!("action=event&id={id}")).await;
        assert_eq!(detail["raw_body"].as_str().unwrap().len(), body.len(), "event {index}");
        assert_eq!(detail["headers"]["content-type"], "application/json");
    }

    let again: Value = app.post_webhook(&body, None).await.json().await.unwrap();
    assert_eq!(again["duplicates"], 100, "{again}");
    assert_eq!(
        stored_bodies(&app).await,
        (1, body.len() as i64),
        "a redelivery keeps no second copy"
    );
}

#[tokio::test]
async fn retention_deletes_a_body_with_the_last_of_its_events() {
    let app = spawn_app_with(serve_args("sqlite::memory:")).await;
    let receipt: Value = app.post_webhook(&object_callback(3), None).await.json().await.unwrap();
    assert_eq!(receipt["received"], 3);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stats = app.manage_json("action=stats").await;
        let finished: i64 = ["success", "skipped", "failed"]
            .iter()
            .map(|status| stats["by_status"][status].as_i64().unwrap_or(0))
            .sum();
        if finished == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not processed: {stats}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stored_bodies(&app).await.0, 1);
    let cleaned = app
        .client
        .post(app.url("/api/webhooks/management"))
        .bearer_auth(crate::common::ADMIN_TOKEN)
        .json(&json!({"action": "cleanup", "olderThanDays": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(cleaned.json::<Value>().await.unwrap()["deleted"], 3);
    assert_eq!(stored_bodies(&app).await, (0, 0));
}

#[tokio::test]
async fn an_event_larger_than_allowed_is_refused_before_anything_is_stored() {
    let mut args = serve_args("sqlite::memory:");
    args.ingest.max_event_bytes = 1_000;
    args.processor.workers = 0;
    let app = spawn_app_with(args).await;
    let large = json!({"object_type": "job", "object_uuid": "big-job", "event_type": "updated",
        "timestamp": "2024-01-01T00:00:00Z", "changes": {"job_description": "x".repeat(1_000)}})
    .to_string();
    let refused = app.post_signed(&large).await;
    assert_eq!(refused.status(), 413);
    let reason: Value = refused.json().await.unwrap();
    assert!(
        reason["error"].as_str().unwrap().contains("MAX_EVENT_BYTES"),
        "{reason}"
    );
    assert_eq!(stored_bodies(&app).await, (0, 0));
    assert_eq!(
        app.post_signed(&seed_event("job", "small-job", "Quote")).await.status(),
        200
    );
}
