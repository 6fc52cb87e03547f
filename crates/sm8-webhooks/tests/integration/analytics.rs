//! Analytics end to end: events processed against the simulated account are rolled up, still reported after
//! retention deleted them, and served by the management API as a report and as CSV or JSON exports; a digest of
//! the day before goes once to the destination an admin chose.

use std::sync::Arc;

use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use serde_json::{json, Value};
use server::analytics::digest::{self, DigestOutcome};
use server::analytics::tally::Tallies;
use server::analytics::{self, SETTLE_MS};
use server::secret::Secret;
use server::store::analytics::{Cadence, HOUR_MS};
use server::store::{self, now_millis, AttemptTiming, Completion, Store};
use servicem8_mock::{self as mock, MockConfig, ObjectKind};

use crate::common::outbound::Receiver;
use crate::common::{
    claim, eventually, queued_event, serve_args, spawn_app, spawn_app_with, spawn_with, TestApp, ACCOUNT, ADMIN_TOKEN,
};

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

/// Rolls up everything the account finished until now, as the processor's next pass after a minute would, as a
/// node that counted nothing in memory.
async fn roll_up_now(store: &dyn Store) {
    analytics::roll_up(
        store,
        &Tallies::default(),
        ACCOUNT,
        "test-node",
        now_millis() + SETTLE_MS + 1,
    )
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
    // Only what the events table gave: the server's own pass may have added what it counted in memory since.
    for from_events in ["events", "by_key", "by_outcome", "processing"] {
        assert_eq!(
            after["totals"][from_events], before["totals"][from_events],
            "the rollups outlive the events: {from_events}"
        );
    }
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

#[tokio::test]
async fn a_daily_digest_of_the_day_before_goes_once_to_the_chosen_destination() {
    let data = tempfile::TempDir::new().unwrap();
    let database_url = format!("sqlite://{}", data.path().join("sm8.db").display());
    // Events of the day the digest covers now (yesterday, but for the first minutes after midnight), finished
    // before the server starts: its first pass rolls them up.
    let (yesterday, _) = Cadence::Daily.last_period(now_millis() - 2 * SETTLE_MS);
    {
        let store = store::connect(&database_url).await.unwrap();
        for (n, completion) in [
            Completion::Success,
            Completion::Success,
            Completion::Failed("gone".into()),
        ]
        .iter()
        .enumerate()
        {
            let received_at = yesterday + 10 * HOUR_MS + n as i64;
            store
                .insert_events(&[queued_event("job", &format!("job-{n}"), received_at)])
                .await
                .unwrap();
            let claimed = claim(store.as_ref(), received_at, received_at + 60_000, 1).await;
            let timing = AttemptTiming {
                started_at: received_at,
                finished_at: received_at + 250,
                http_status: None,
            };
            store.finish_events(&claimed, completion, &timing).await.unwrap();
        }
    }
    let mut args = serve_args(&database_url);
    args.processor.workers = 0;
    args.deliveries.delivery_poll_interval_ms = 20;
    let app = spawn_with(args, data).await;
    let store = store::connect(&app.database_url).await.unwrap();
    let receiver = Receiver::answering(200).await;
    let created = app
        .client
        .post(app.url("/api/webhooks/management"))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({"action": "create_destination", "name": "digest", "kind": "webhook",
            "settings": {"url": receiver.url("/digest")}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let destination = created.json::<Value>().await.unwrap()["destination"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let set = app
        .client
        .post(app.url("/api/webhooks/management/analytics/digest"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"destination_id": destination, "cadence": "daily"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let read = get(&app, "analytics/digest").await.json::<Value>().await.unwrap();
    assert_eq!(
        read["digest"],
        json!({"destination_id": destination, "cadence": "daily"})
    );

    eventually("the server's first pass to roll yesterday up", || async {
        let totals = report(&app, "range=7d").await["totals"].clone();
        (totals["events"] == 3).then_some(())
    })
    .await;
    let first = digest::queue_due(store.as_ref(), ACCOUNT, now_millis()).await.unwrap();
    let second = digest::queue_due(store.as_ref(), ACCOUNT, now_millis()).await.unwrap();
    assert_eq!(second, DigestOutcome::AlreadyQueued);
    assert!(
        matches!(first, DigestOutcome::Queued | DigestOutcome::AlreadyQueued),
        "{first:?}"
    );
    let sent = eventually("the digest to arrive", || async {
        let requests = receiver.requests();
        (!requests.is_empty()).then_some(requests)
    })
    .await;
    assert_eq!(sent.len(), 1, "one digest for the day");
    let body = sent[0].json();
    assert_eq!(body["type"], "analytics.digest");
    assert_eq!(body["cadence"], "daily");
    assert_eq!(body["from"], store::millis_to_rfc3339(yesterday));
    assert_eq!(body["totals"]["events"], 3);
    assert_eq!(body["totals"]["by_outcome"], json!({"success": 2, "failed": 1}));

    let unknown = app
        .client
        .post(app.url("/api/webhooks/management/analytics/digest"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"destination_id": "no-such-destination", "cadence": "weekly"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    let stopped = app
        .client
        .post(app.url("/api/webhooks/management/analytics/digest"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.json::<Value>().await.unwrap(), json!({"digest": null}));
    assert_eq!(
        digest::queue_due(store.as_ref(), ACCOUNT, now_millis()).await.unwrap(),
        DigestOutcome::NotSet
    );
}
