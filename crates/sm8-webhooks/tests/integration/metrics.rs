//! `GET /metrics` over real HTTP: counters moved by webhooks and processing, gauges read from the store, the
//! optional token, and a store failure during a scrape.
//!
//! Counters and histograms belong to the process, which every test in this binary shares, so tests check that
//! they grew by at least what the test did; the store's gauges belong to each server and are checked exactly.

use std::time::Duration;

use crate::common::{seed_event, serve_args, spawn_app, spawn_app_with, TestApp};
use server::ingest::signature::sign;
use server::secret::Secret;

const METRICS_TOKEN: &str = "test-metrics-token";

async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of one series (`name{labels}`), 0 when it has not been recorded yet.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Webhooks counted with `outcome`: of the default account once accepted, of no account when refused first.
fn webhooks(text: &str, outcome: &str) -> f64 {
    let accepted = format!("sm8_webhooks_received_total{{outcome=\"{outcome}\",account=\"default\"}}");
    let refused = format!("sm8_webhooks_received_total{{outcome=\"{outcome}\"}}");
    sample(text, &accepted) + sample(text, &refused)
}

#[tokio::test]
async fn webhooks_are_counted_by_outcome_including_failed_verification() {
    let app = spawn_app().await;
    let before = scrape(&app).await;

    let body = seed_event("Job", "metrics-job-1", "Quote");
    assert_eq!(app.post_signed(&body).await.status(), 200);
    assert_eq!(app.post_signed(&body).await.status(), 200);
    let forged = sign(b"not the secret", body.as_bytes());
    assert_eq!(app.post_webhook(&body, Some(&forged)).await.status(), 401);
    let malformed = "{not json";
    let signature = sign(crate::common::WEBHOOK_SECRET.as_bytes(), malformed.as_bytes());
    assert_eq!(app.post_webhook(malformed, Some(&signature)).await.status(), 400);

    let after = scrape(&app).await;
    for outcome in ["stored", "duplicate", "unauthorized", "bad_request"] {
        assert!(
            webhooks(&after, outcome) >= webhooks(&before, outcome) + 1.0,
            "{outcome} did not grow:\n{after}"
        );
    }
    assert!(after.contains("# HELP sm8_webhooks_received_total "), "{after}");
    assert!(after.contains("# TYPE sm8_webhooks_received_total counter"), "{after}");
}

#[tokio::test]
async fn queue_gauges_show_what_waits_in_this_servers_store() {
    let app = spawn_app().await;
    let idle = scrape(&app).await;
    assert_eq!(sample(&idle, "sm8_queue_depth{account=\"default\"}"), 0.0, "{idle}");
    assert_eq!(
        sample(&idle, "sm8_oldest_queued_age_seconds{account=\"default\"}"),
        0.0,
        "{idle}"
    );

    for uuid in ["metrics-queued-1", "metrics-queued-2"] {
        assert_eq!(app.post_signed(&seed_event("Job", uuid, "Quote")).await.status(), 200);
    }
    let queued = scrape(&app).await;
    assert_eq!(sample(&queued, "sm8_queue_depth{account=\"default\"}"), 2.0, "{queued}");
    assert!(
        queued.contains("\nsm8_oldest_queued_age_seconds{account=\"default\"} "),
        "{queued}"
    );
    // ServiceM8's 180 a minute and 20,000 a day, less the default 5 % margin.
    for (window, limit) in [("minute", 171.0), ("day", 19_000.0)] {
        let labels = format!("{{account=\"default\",window=\"{window}\"}}");
        let limit_series = format!("sm8_servicem8_api_requests_limit{labels}");
        assert_eq!(sample(&queued, &limit_series), limit, "{queued}");
        assert!(
            queued.contains(&format!("sm8_servicem8_api_requests_used{labels} ")),
            "{queued}"
        );
    }
}

#[tokio::test]
async fn processing_an_event_is_counted_and_timed_up_to_its_broadcast() {
    let mut args = serve_args("");
    args.processor.workers = 1;
    args.processor.poll_interval_ms = 20;
    args.processor.sync_interval_seconds = 0;
    let app = spawn_app_with(args).await;
    let before = scrape(&app).await;
    let succeeded = |text: &str| {
        sample(
            text,
            "sm8_events_finished_total{outcome=\"success\",account=\"default\"}",
        )
    };
    let timed = |text: &str| sample(text, "sm8_processing_duration_seconds_count");
    let broadcast = |text: &str| sample(text, "sm8_webhook_to_broadcast_seconds_count");

    // Without ServiceM8 credentials the event's own changes are applied, and the record update announced.
    let body = seed_event("Job", "metrics-processed-1", "Completed");
    assert_eq!(app.post_signed(&body).await.status(), 200);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = scrape(&app).await;
        // The gauges are read from the store before the counters are rendered, so they may lag one scrape.
        let drained = sample(&now, "sm8_queue_depth{account=\"default\"}") == 0.0;
        if drained && succeeded(&now) > succeeded(&before) && broadcast(&now) > broadcast(&before) {
            assert!(timed(&now) > timed(&before), "{now}");
            assert!(
                now.contains("sm8_webhook_to_broadcast_seconds_bucket{le=\"+Inf\"}"),
                "{now}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event was not processed:\n{now}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_configured_metrics_token_is_required() {
    let mut args = serve_args("");
    args.processor.workers = 0;
    args.metrics_token = Some(Secret::new(METRICS_TOKEN));
    let app = spawn_app_with(args).await;
    let url = app.url("/metrics");

    let anonymous = app.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let reason: serde_json::Value = anonymous.json().await.unwrap();
    assert!(reason["error"].as_str().unwrap().contains("METRICS_TOKEN"), "{reason}");

    for wrong in ["wrong-token", crate::common::ADMIN_TOKEN] {
        let refused = app.client.get(&url).bearer_auth(wrong).send().await.unwrap();
        assert_eq!(refused.status(), 401, "{wrong} was accepted");
    }

    let allowed = app.client.get(&url).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert!(allowed.text().await.unwrap().contains("sm8_queue_depth "));
}

#[tokio::test]
async fn a_store_failure_during_a_scrape_answers_503_with_a_reason() {
    use sqlx::Connection;
    let app = spawn_app().await;
    let mut database = sqlx::SqliteConnection::connect(&app.database_url).await.unwrap();
    sqlx::query("DROP TABLE webhook_events")
        .execute(&mut database)
        .await
        .unwrap();

    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let reason: serde_json::Value = response.json().await.unwrap();
    assert!(
        reason["error"].as_str().is_some_and(|error| !error.is_empty()),
        "{reason}"
    );
}
