//! Analytics end to end: events processed against the simulated account are rolled up, still reported after
//! retention deleted them, and served by the management API as a report and as CSV or JSON exports.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use serde_json::{json, Value};
use server::analytics::{self, SETTLE_MS};
use server::secret::Secret;
use server::store::{self, now_millis, AttemptTiming, Completion, Store};
use servicem8_mock::{self as mock, MockConfig, ObjectKind};

use crate::common::{claim, queued_event, serve_args, spawn_app, spawn_app_with, TestApp, ACCOUNT, ADMIN_TOKEN};

/// Polls `probe` until it yields a value; fails after 20 s.
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut probe: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(app: &TestApp, path_and_query: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/api/webhooks/management/{path_and_query}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

async fn report(app: &TestApp, query: &str) -> Value {
    let response = get(app, &format!("analytics?{query}")).await;
    assert_eq!(response.status(), 200, "analytics?{query}");
    response.json().await.unwrap()
}

/// Rolls up everything the account finished until now, as the processor's next pass after a minute would.
async fn roll_up_now(store: &dyn Store) {
    analytics::roll_up(store, ACCOUNT, "test-node", now_millis() + SETTLE_MS + 1)
        .await
        .unwrap();
}

#[tokio::test]
async fn processed_events_are_rolled_up_and_still_reported_after_retention_deletes_them() {
    let simulated = mock::start(MockConfig {
        change_interval_ms: 0,
        companies: 2,
        jobs_per_company: 2,
        ..MockConfig::on_free_port()
    })
    .await
    .unwrap();
    let mut args = serve_args("sqlite::memory:");
    args.processor.workers = 2;
    args.processor.poll_interval_ms = 20;
    args.processor.sync_interval_seconds = 0;
    args.servicem8.servicem8_api_key = Some(Secret::new(simulated.api_key()));
    args.servicem8.servicem8_base_url = simulated.base_url();
    let app = spawn_app_with(args).await;
    let store = store::connect(&app.database_url).await.unwrap();

    let jobs = simulated.uuids(ObjectKind::Job);
    let mut bodies: Vec<Value> = jobs
        .iter()
        .take(3)
        .enumerate()
        .map(|(n, uuid)| {
            json!({"object_type": "job", "object_uuid": uuid, "event_type": "updated",
                "timestamp": format!("2024-03-01T10:00:0{n}Z"), "changes": {"status": "Work Order"}})
        })
        .collect();
    bodies.push(
        json!({"object_type": "widget", "object_uuid": "w-1", "event_type": "created",
        "timestamp": "2024-03-01T10:00:09Z", "changes": {}}),
    );
    for body in &bodies {
        assert_eq!(app.post_signed(&body.to_string()).await.status(), 200);
    }
    eventually("every event finished", || async {
        let stats = app.manage_json("action=stats").await;
        (stats["by_status"]["success"] == 3 && stats["by_status"]["skipped"] == 1).then_some(())
    })
    .await;

    roll_up_now(store.as_ref()).await;
    let before = report(&app, "range=24h&dimension=object_type").await;
    assert_eq!(before["totals"]["events"], 4);
    assert_eq!(before["totals"]["by_key"], json!({"job": 3, "widget": 1}));
    assert_eq!(before["totals"]["by_outcome"], json!({"success": 3, "skipped": 1}));
    assert_eq!(before["totals"]["processing"]["samples"], 4);
    assert_eq!(before["buckets"].as_array().unwrap().len(), 24);
    let filled: Vec<&Value> = before["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|bucket| bucket["counts"] != json!({}))
        .collect();
    assert_eq!(filled.len(), 1, "one hour holds them");
    assert_eq!(filled[0]["counts"], json!({"job": 3, "widget": 1}));

    let deleted = store
        .delete_finished_events_before(ACCOUNT, now_millis() + 1)
        .await
        .unwrap();
    assert_eq!(deleted, 4);
    assert_eq!(app.manage_json("action=stats").await["total"], 0);
    roll_up_now(store.as_ref()).await;
    let after = report(&app, "range=24h&dimension=object_type").await;
    assert_eq!(after["totals"], before["totals"], "the rollups outlive the events");
    let week = report(&app, "range=7d&dimension=outcome").await;
    assert_eq!(week["bucket"], "hour");
    assert_eq!(week["totals"]["by_key"], json!({"success": 3, "skipped": 1}));
    let month = report(&app, "range=30d").await;
    assert_eq!(
        (month["bucket"].as_str(), month["totals"]["events"].as_i64()),
        (Some("day"), Some(4))
    );
}

/// Stores an event of `object_uuid`, and fails it with `error` now.
async fn fail_one(store: &dyn Store, object_uuid: &str, error: &str) {
    let now = now_millis();
    store
        .insert_events(&[queued_event("job", object_uuid, now)])
        .await
        .unwrap();
    let claimed = claim(store, now, now + 60_000, 1).await;
    let timing = AttemptTiming {
        started_at: now,
        finished_at: now,
        http_status: None,
    };
    store
        .finish_events(&claimed, &Completion::Failed(error.into()), &timing)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_csv_export_is_a_download_with_a_header_and_a_row_per_bucket_and_is_audited() {
    let app = spawn_app().await;
    let store: Arc<dyn Store> = store::connect(&app.database_url).await.unwrap();
    fail_one(store.as_ref(), "job-a", "could not reach ServiceM8: connection refused").await;
    fail_one(store.as_ref(), "job-b", "ServiceM8 did not answer in time").await;
    roll_up_now(store.as_ref()).await;

    let response = get(&app, "analytics/export?format=csv&range=7d&dimension=error_class").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        response.headers()[CONTENT_DISPOSITION],
        "attachment; filename=\"analytics-default-7d-error_class.csv\""
    );
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 7 * 24, "a header and one row per hour");
    assert_eq!(
        lines[0],
        "bucket_start,network,timeout,processing_p50_ms,processing_p95_ms,processing_p99_ms,browser_p50_ms,\
         browser_p95_ms,browser_p99_ms"
    );
    let (filled, empty): (Vec<&str>, Vec<&str>) = lines[1..].iter().partition(|line| !line.ends_with(",0,0,,,,,,"));
    assert_eq!(filled.len(), 1, "{csv}");
    assert_eq!(filled[0].split(',').collect::<Vec<_>>()[1..4], ["1", "1", "0"], "{csv}");
    assert_eq!(empty.len(), 7 * 24 - 1);

    let response = get(&app, "analytics/export?format=json&range=7d&dimension=error_class").await;
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let exported: Value = response.json().await.unwrap();
    assert_eq!(exported["totals"]["error_classes"], json!({"network": 1, "timeout": 1}));
    let failing: Vec<&str> = exported["totals"]["top_failing_objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|object| object["object"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["job:job-a", "job:job-b"]);

    let audit = app.manage_json("action=audit").await;
    let exports: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == "export_analytics")
        .collect();
    assert_eq!(exports.len(), 2, "{audit}");
}

#[tokio::test]
async fn malformed_analytics_requests_are_refused_with_a_reason() {
    let app = spawn_app().await;
    for (query, reason) in [
        ("analytics?range=1y", "unknown range"),
        ("analytics?dimension=colour", "unknown dimension"),
        ("analytics?range=custom&to=2026-01-01", "needs `from`"),
        ("analytics?range=custom&from=2026-02-01&to=2026-01-01", "after `from`"),
        ("analytics/export?range=7d", "missing format"),
        ("analytics/export?format=xml", "unknown format"),
    ] {
        let response = get(&app, query).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains(reason), "{query}: {body}");
    }
    let anonymous = app
        .client
        .get(app.url("/api/webhooks/management/analytics"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
