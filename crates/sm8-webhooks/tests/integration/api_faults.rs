//! The pipeline against a ServiceM8 that misbehaves the way a real one can: server errors, 429s and requests
//! that hang, all at once, and a rate limit that rolls. Every event ends, no event is attempted more than it may
//! be, and the budget never passes the account's limit in any 60 s.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server::secret::Secret;
use servicem8_mock::{self as mock, MockConfig, ObjectKind};

use crate::common::{serve_args, spawn_app_with};

const MAX_RETRIES: i32 = 3;

#[tokio::test]
async fn under_errors_429s_and_timeouts_every_event_ends_within_its_attempts_and_the_budget_holds() {
    let account = mock::start(MockConfig {
        change_interval_ms: 0,
        companies: 6,
        jobs_per_company: 5,
        activities_per_job: 0,
        attachments_per_job: 0,
        per_minute: 60,
        error_rate: 0.30,
        rate_limit_rate: 0.10,
        timeout_rate: 0.05,
        hang_ms: 5_000,
        ..MockConfig::on_free_port()
    })
    .await
    .unwrap();
    let mut args = serve_args("sqlite::memory:");
    args.processor.workers = 4;
    args.processor.poll_interval_ms = 20;
    args.processor.retry_base_delay_ms = 100;
    args.processor.max_retries = MAX_RETRIES;
    args.processor.lease_ms = 2_000;
    args.processor.sync_interval_seconds = 0;
    args.servicem8.servicem8_timeout_ms = 500;
    args.servicem8.servicem8_api_key = Some(Secret::new(account.api_key()));
    args.servicem8.servicem8_base_url = account.base_url();
    args.servicem8.servicem8_requests_per_minute = 60;
    // The default margin (57 of the account's 60): a request is counted when it is taken and the account counts
    // it when it arrives, and the margin is what absorbs requests that overtake each other on the way.
    args.servicem8.servicem8_budget_margin_percent = 5;
    let app = spawn_app_with(args).await;

    let jobs = account.uuids(ObjectKind::Job);
    for (n, job) in jobs.iter().enumerate() {
        let body = json!({
            "object_type": "Job",
            "object_uuid": job,
            "event_type": "updated",
            "timestamp": format!("2024-01-01T00:00:{:02}Z", n % 60),
            "changes": {"status": "Work Order"},
        });
        assert_eq!(app.post_signed(&body.to_string()).await.status(), 200);
    }

    let started = Instant::now();
    let events = loop {
        let listed = app.manage_json("action=events&limit=500").await;
        let events: Vec<Value> = listed["events"].as_array().unwrap().clone();
        if events.len() == jobs.len()
            && events
                .iter()
                .all(|e| e["status"] == "success" || e["status"] == "failed")
        {
            break events;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not every event ended within 120 s: {:?}",
            events.iter().map(|e| e["status"].clone()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    for event in &events {
        let attempts = event["attempts"].as_i64().unwrap();
        assert!(
            (1..=i64::from(MAX_RETRIES) + 1).contains(&attempts),
            "{} took {attempts} attempts",
            event["id"]
        );
    }
    let succeeded = events.iter().filter(|e| e["status"] == "success").count();
    assert!(
        succeeded * 2 > events.len(),
        "only {succeeded} of {} succeeded",
        events.len()
    );
    assert_eq!(
        account.over_limit_count(),
        0,
        "the budget passed the account's rolling minute"
    );
}
