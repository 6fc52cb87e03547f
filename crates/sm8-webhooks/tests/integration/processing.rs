//! The processing pipeline against the simulated ServiceM8 account, over real HTTP.

use std::sync::Arc;

use crate::common::ACCOUNT;
use crate::common::{claim, eventually, queued_event, serve_args, spawn_app_with, spawn_with, TestApp};
use serde_json::{json, Value};
use server::config::ServeArgs;
use server::secret::Secret;
use server::servicem8::client::ServiceM8Client;
use server::servicem8::{subscriptions, sync};
use server::store::{self, now_millis, object_spec, MirrorRecord, Store};
use servicem8_mock::{self as mock, Faults, MockConfig, MockHandle, ObjectKind};

/// A server that fetches from its own simulated ServiceM8 account.
struct Pipeline {
    app: TestApp,
    account: MockHandle,
    store: Arc<dyn Store>,
}

fn quick(args: &mut ServeArgs) {
    args.processor.workers = 2;
    args.processor.poll_interval_ms = 20;
    args.processor.retry_base_delay_ms = 200;
    args.processor.sync_interval_seconds = 0;
}

async fn pipeline(configure: impl FnOnce(&mut ServeArgs, &mut MockConfig)) -> Pipeline {
    let mut account_config = MockConfig {
        change_interval_ms: 0,
        companies: 3,
        jobs_per_company: 4,
        ..MockConfig::on_free_port()
    };
    let mut args = serve_args("sqlite::memory:");
    quick(&mut args);
    configure(&mut args, &mut account_config);
    let account = mock::start(account_config).await.unwrap();
    args.servicem8.servicem8_api_key = Some(Secret::new(account.api_key()));
    args.servicem8.servicem8_base_url = account.base_url();
    let app = spawn_app_with(args).await;
    let store = store::connect(&app.database_url).await.unwrap();
    Pipeline { app, account, store }
}

async fn event(app: &TestApp, id: &str) -> Value {
    let listed = app.manage_json("action=events&limit=500").await;
    listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .cloned()
        .expect("event is listed")
}

async fn wait_for_status(app: &TestApp, id: &str, status: &str) -> Value {
    eventually(&format!("event {id} to be {status}"), || async {
        let event = event(app, id).await;
        (event["status"] == status).then_some(event)
    })
    .await
}

fn seed(object_type: &str, object_uuid: &str, event_type: &str, second: u32, changes: Value) -> Value {
    json!({
        "object_type": object_type,
        "object_uuid": object_uuid,
        "event_type": event_type,
        "timestamp": format!("2024-03-01T10:00:{:02}Z", second % 60),
        "changes": changes,
    })
}

async fn post(app: &TestApp, body: &Value) -> Vec<String> {
    let response = app.post_signed(&body.to_string()).await;
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    receipt["event_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

async fn act(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/api/webhooks/management"))
        .bearer_auth(crate::common::ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn every_object_and_event_type_is_fetched_and_mirrored() {
    let p = pipeline(|_, _| {}).await;
    let cases: [(ObjectKind, &str, &[&str]); 5] = [
        (
            ObjectKind::Job,
            "Job",
            &[
                "created",
                "updated",
                "status_changed",
                "quote_sent",
                "quote_approved",
                "quote_rejected",
            ],
        ),
        (ObjectKind::Company, "Company", &["created", "updated"]),
        (
            ObjectKind::JobActivity,
            "JobActivity",
            &["created", "updated", "completed"],
        ),
        (ObjectKind::Attachment, "Attachment", &["created", "updated"]),
        (ObjectKind::Staff, "Staff", &["created", "updated"]),
    ];
    let mut ids = Vec::new();
    for (kind, name, event_types) in cases {
        let uuid = p.account.uuids(kind)[0].clone();
        for (second, event_type) in event_types.iter().enumerate() {
            ids.extend(post(&p.app, &seed(name, &uuid, event_type, second as u32, json!({}))).await);
        }
    }
    for id in &ids {
        wait_for_status(&p.app, id, "success").await;
    }
    for (kind, _, _) in cases {
        let uuid = &p.account.uuids(kind)[0];
        let mirrored = p
            .store
            .mirror_record(ACCOUNT, kind.as_str(), uuid)
            .await
            .unwrap()
            .expect("record is mirrored");
        assert_eq!(
            mirrored,
            Value::Object(p.account.record(kind, uuid).unwrap()),
            "{}",
            kind.as_str()
        );
    }
}

#[tokio::test]
async fn ten_events_for_one_job_are_fetched_once() {
    let p = pipeline(|_, _| {}).await;
    let job = p.account.uuids(ObjectKind::Job)[0].clone();
    let delivery: Vec<Value> = (0..10)
        .map(|n| seed("Job", &job, "updated", n, json!({ "job_description": format!("v{n}") })))
        .collect();
    let ids = post(&p.app, &Value::Array(delivery)).await;
    assert_eq!(ids.len(), 10);
    for id in &ids {
        wait_for_status(&p.app, id, "success").await;
    }
    assert_eq!(p.account.fetch_count(ObjectKind::Job, &job), 1);
}

#[tokio::test]
async fn an_older_record_never_overwrites_a_newer_one() {
    let p = pipeline(|_, _| {}).await;
    let job = p.account.uuids(ObjectKind::Job)[0].clone();
    let newer = json!({"uuid": job, "status": "Completed", "edit_date": "2999-01-01 00:00:00", "active": 1});
    let row = MirrorRecord::from_record(ACCOUNT, object_spec("job").unwrap(), newer.clone()).unwrap();
    p.store.upsert_mirror(&row, now_millis()).await.unwrap();

    let ids = post(&p.app, &seed("Job", &job, "updated", 1, json!({}))).await;
    wait_for_status(&p.app, &ids[0], "success").await;
    assert_eq!(p.store.mirror_record(ACCOUNT, "job", &job).await.unwrap(), Some(newer));
}

#[tokio::test]
async fn a_failing_fetch_is_retried_three_times_with_growing_delays_then_failed_and_a_manual_retry_recovers_it() {
    let p = pipeline(|_, _| {}).await;
    p.account.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::none()
    });
    let job = p.account.uuids(ObjectKind::Job)[0].clone();
    let ids = post(&p.app, &seed("Job", &job, "updated", 1, json!({}))).await;
    let failed = wait_for_status(&p.app, &ids[0], "failed").await;
    assert_eq!(failed["attempts"], 4);
    assert!(
        failed["last_error"].as_str().unwrap().contains("ServiceM8 answered 5"),
        "{failed}"
    );

    let attempts = p.store.event_attempts(&ids[0]).await.unwrap();
    assert_eq!(attempts.len(), 4);
    assert!(attempts.iter().all(|a| a.outcome == "retry" || a.outcome == "failed"));
    assert_eq!(attempts[3].outcome, "failed");
    let gaps: Vec<i64> = attempts
        .windows(2)
        .map(|pair| pair[1].started_at - pair[0].finished_at)
        .collect();
    for (retry, gap) in gaps.iter().enumerate() {
        // Nominal delays are 200, 400 and 800 ms with ±25% jitter.
        let minimum = (200 << retry) as i64 * 3 / 4;
        assert!(
            *gap >= minimum,
            "retry {} came after {gap} ms, before {minimum} ms",
            retry + 1
        );
    }
    assert!(gaps[2] > gaps[0], "delays grow: {gaps:?}");

    p.account.set_faults(Faults::none());
    let (status, answer) = act(&p.app, json!({"action": "retry_event", "eventId": ids[0]})).await;
    assert_eq!(status, 200, "{answer}");
    wait_for_status(&p.app, &ids[0], "success").await;
}

#[tokio::test]
async fn retrying_all_failed_events_says_how_many_first() {
    let p = pipeline(|args, _| args.processor.max_retries = 0).await;
    p.account.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::none()
    });
    let jobs = p.account.uuids(ObjectKind::Job);
    let mut ids = Vec::new();
    for job in &jobs[..2] {
        ids.extend(post(&p.app, &seed("Job", job, "updated", 1, json!({}))).await);
    }
    for id in &ids {
        wait_for_status(&p.app, id, "failed").await;
    }
    let (status, answer) = act(&p.app, json!({"action": "retry_failed_events", "dryRun": true})).await;
    assert_eq!((status, answer["wouldRetry"].clone()), (200, json!(2)));
    assert_eq!(event(&p.app, &ids[0]).await["status"], "failed");

    p.account.set_faults(Faults::none());
    let (status, answer) = act(&p.app, json!({"action": "retry_failed_events"})).await;
    assert_eq!((status, answer["retried"].clone()), (200, json!(2)));
    for id in &ids {
        wait_for_status(&p.app, id, "success").await;
    }
}

#[tokio::test]
async fn management_actions_answer_bad_requests_clearly() {
    let p = pipeline(|_, _| {}).await;
    let job = p.account.uuids(ObjectKind::Job)[0].clone();
    let ids = post(&p.app, &seed("Job", &job, "updated", 1, json!({}))).await;
    wait_for_status(&p.app, &ids[0], "success").await;

    assert_eq!(
        act(&p.app, json!({"action": "retry_event", "eventId": "nope"})).await.0,
        404
    );
    assert_eq!(act(&p.app, json!({"action": "retry_event"})).await.0, 400);
    assert_eq!(act(&p.app, json!({"action": "explode"})).await.0, 400);
    assert_eq!(
        act(&p.app, json!({"action": "cleanup", "olderThanDays": -1})).await.0,
        400
    );
    let response = p
        .app
        .client
        .post(p.app.url("/api/webhooks/management"))
        .bearer_auth(crate::common::ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let unauthenticated = p
        .app
        .client
        .post(p.app.url("/api/webhooks/management"))
        .json(&json!({"action": "cleanup", "olderThanDays": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn cleanup_deletes_finished_events_older_than_the_cutoff_only() {
    let p = pipeline(|_, _| {}).await;
    let job = p.account.uuids(ObjectKind::Job)[0].clone();
    let ids = post(&p.app, &seed("Job", &job, "updated", 1, json!({}))).await;
    wait_for_status(&p.app, &ids[0], "success").await;
    let (status, answer) = act(&p.app, json!({"action": "cleanup", "olderThanDays": 30})).await;
    assert_eq!((status, answer["deleted"].clone()), (200, json!(0)));
    let (status, answer) = act(&p.app, json!({"action": "cleanup", "olderThanDays": 0})).await;
    assert_eq!((status, answer["deleted"].clone()), (200, json!(1)));
    assert_eq!(p.app.manage_json("action=stats").await["total"], 0);
}

#[tokio::test]
async fn a_killed_workers_event_is_reclaimed_after_its_lease() {
    let data = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}", data.path().join("sm8.db").display());
    let account = mock::start(MockConfig {
        change_interval_ms: 0,
        ..MockConfig::on_free_port()
    })
    .await
    .unwrap();
    let job = account.uuids(ObjectKind::Job)[0].clone();
    {
        // A worker claims the event and dies without finishing it.
        let store = store::connect(&url).await.unwrap();
        let now = now_millis();
        store.insert_events(&[queued_event("job", &job, now)]).await.unwrap();
        assert_eq!(claim(store.as_ref(), now, now + 300, 1).await.len(), 1);
    }
    let mut args = serve_args(&url);
    quick(&mut args);
    args.servicem8.servicem8_api_key = Some(Secret::new(account.api_key()));
    args.servicem8.servicem8_base_url = account.base_url();
    let app = spawn_with(args, data).await;
    let id = app.manage_json("action=events").await["events"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = wait_for_status(&app, &id, "success").await;
    assert_eq!(done["attempts"], 2);
}

#[tokio::test]
async fn the_request_budget_holds_under_a_burst() {
    let p = pipeline(|args, account| {
        args.servicem8.servicem8_requests_per_minute = 5;
        args.servicem8.servicem8_budget_margin_percent = 0;
        args.processor.batch_objects = 2;
        account.per_minute = 5;
    })
    .await;
    let jobs = p.account.uuids(ObjectKind::Job);
    assert!(jobs.len() >= 12);
    let mut ids = Vec::new();
    for (n, job) in jobs[..12].iter().enumerate() {
        ids.extend(post(&p.app, &seed("Job", job, "updated", n as u32, json!({}))).await);
    }
    let budget_error = |e: &Value| e["last_error"].as_str().is_some_and(|err| err.contains("budget"));
    // Five are fetched; the others wait in the queue until the first request is a minute old, and a worker that
    // found the budget spent put its claim back.
    let events = eventually("five successes and seven waiting", || async {
        let events = p.app.manage_json("action=events&limit=500").await["events"]
            .as_array()
            .unwrap()
            .clone();
        let successes = events.iter().filter(|e| e["status"] == "success").count();
        let queued = events.iter().filter(|e| e["status"] == "queued").count();
        let put_back = events.iter().filter(|e| budget_error(e)).count();
        (successes == 5 && queued == 7 && put_back >= 1).then_some(events)
    })
    .await;
    let put_back = events.iter().filter(|e| budget_error(e)).count();
    assert!(
        put_back <= 4,
        "{put_back} events were claimed while the budget was spent; 2 workers claim 2 objects at a time"
    );
    assert!(
        events.iter().all(|e| e["attempts"] == 0 || e["status"] == "success"),
        "waiting costs no attempt"
    );
    assert_eq!(p.account.request_count(), 5);
    assert_eq!(p.account.rate_limited_count(), 0);
}

#[tokio::test]
async fn unknown_objects_and_records_servicem8_lacks_are_skipped_with_a_reason() {
    let p = pipeline(|_, _| {}).await;
    let widget = post(&p.app, &seed("Widget", "w-1", "created", 1, json!({}))).await;
    let missing = post(&p.app, &seed("Job", "no-such-job", "updated", 2, json!({}))).await;
    wait_for_status(&p.app, &widget[0], "skipped").await;
    wait_for_status(&p.app, &missing[0], "skipped").await;
    let attempts = p.store.event_attempts(&missing[0]).await.unwrap();
    assert!(
        attempts[0].error.as_deref().unwrap().contains("ServiceM8 has no job"),
        "{attempts:?}"
    );
    assert_eq!(attempts[0].http_status, Some(404));
    assert_eq!(
        p.store.mirror_record(ACCOUNT, "job", "no-such-job").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn without_credentials_the_payload_changes_are_applied_and_nothing_pretends_to_be_fetched() {
    let mut args = serve_args("sqlite::memory:");
    quick(&mut args);
    let app = spawn_app_with(args).await;
    let store = store::connect(&app.database_url).await.unwrap();
    let ids = post(
        &app,
        &seed("Job", "job-1", "status_changed", 1, json!({"status": "Work Order"})),
    )
    .await;
    wait_for_status(&app, &ids[0], "success").await;
    let record = store.mirror_record(ACCOUNT, "job", "job-1").await.unwrap().unwrap();
    assert_eq!(record["status"], "Work Order");
    assert_eq!(record["edit_date"], "2024-03-01 10:00:01");
    let stats = app.manage_json("action=stats").await;
    assert!(stats["notice"].as_str().unwrap().contains("No ServiceM8 credentials"));

    let no_values = post(&app, &seed("Job", "job-2", "updated", 2, json!({}))).await;
    wait_for_status(&app, &no_values[0], "skipped").await;
}

#[tokio::test]
async fn a_failed_reconciliation_pass_is_tried_again_long_before_the_next_interval() {
    let p = pipeline(|args, account| {
        args.processor.sync_interval_seconds = 3_600;
        account.error_rate = 1.0;
    })
    .await;
    // Every answer fails at first, so the pass at start fails; then ServiceM8 recovers.
    eventually("the pass at start to fail", || async {
        (p.account.stats().requests > 0).then_some(())
    })
    .await;
    p.account.set_faults(Faults::default());
    let company = p.account.uuids(ObjectKind::Company)[0].clone();
    eventually("the retried pass to mirror the account", || async {
        p.store
            .mirror_record(ACCOUNT, "company", &company)
            .await
            .unwrap()
            .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn reconciliation_queues_what_the_mirror_lacks_and_nothing_twice() {
    let p = pipeline(|_, _| {}).await;
    let mut args = ServeArgs::new("127.0.0.1:0".parse().unwrap(), "unused").servicem8;
    args.servicem8_api_key = Some(Secret::new(p.account.api_key()));
    args.servicem8_base_url = p.account.base_url();
    let client = ServiceM8Client::from_args(&args, p.store.clone()).unwrap().unwrap();

    let first = sync::reconcile(&p.store, ACCOUNT, &client, None).await.unwrap();
    let queued: usize = first.iter().map(|r| r.queued).sum();
    let total: usize = ObjectKind::ALL.iter().map(|kind| p.account.uuids(*kind).len()).sum();
    assert_eq!(queued, total);
    eventually("every reconciled record mirrored", || async {
        let stats = p.app.manage_json("action=stats").await;
        (stats["by_status"]["success"] == json!(total)).then_some(())
    })
    .await;
    let job = p.account.uuids(ObjectKind::Job)[0].clone();
    assert_eq!(
        p.account.fetch_count(ObjectKind::Job, &job),
        0,
        "listed records are not fetched again"
    );

    let again = sync::reconcile(&p.store, ACCOUNT, &client, None).await.unwrap();
    assert_eq!(again.iter().map(|r| r.queued).sum::<usize>(), 0);

    p.account
        .update_record(ObjectKind::Job, &job, json!({"status": "Completed"}))
        .unwrap();
    let changed = sync::reconcile(&p.store, ACCOUNT, &client, None).await.unwrap();
    assert_eq!(changed.iter().map(|r| r.queued).sum::<usize>(), 1);
}

#[tokio::test]
async fn subscribing_completes_the_handshake_and_merges_fields() {
    let p = pipeline(|_, _| {}).await;
    let mut args = ServeArgs::new("127.0.0.1:0".parse().unwrap(), "unused").servicem8;
    args.servicem8_api_key = Some(Secret::new(p.account.api_key()));
    args.servicem8_base_url = p.account.base_url();
    let client = ServiceM8Client::from_args(&args, p.store.clone()).unwrap().unwrap();
    let callback = p.app.url("/api/webhooks/sm8");

    subscriptions::subscribe(&client, &callback, &[("job".into(), vec!["status".into()])])
        .await
        .unwrap();
    let merged = subscriptions::subscribe(&client, &callback, &[("job".into(), vec!["job_address".into()])])
        .await
        .unwrap();
    assert_eq!(merged[0].fields, vec!["job_address", "status"]);
    let registered = p.account.subscriptions();
    assert_eq!(registered.len(), 1, "the second subscription replaced the first");
    let listed = serde_json::to_value(&registered[0]).unwrap();
    assert_eq!(listed["fields"], "job_address,status");
    assert_eq!(listed["callback_url"], callback.as_str());
}

#[tokio::test]
async fn the_simulated_accounts_own_changes_flow_through_to_the_mirror() {
    let p = pipeline(|_, _| {}).await;
    p.account.add_target(p.app.url("/api/webhooks/sm8"));
    let (change, deliveries) = p
        .account
        .change_something()
        .await
        .expect("the account changed a record");
    assert!(!deliveries.is_empty());
    assert!(
        deliveries
            .iter()
            .all(|d| matches!(d.outcome, mock::DeliveryOutcome::Delivered(_))),
        "{deliveries:?}"
    );
    let events = p.app.manage_json("action=events").await;
    for event in events["events"].as_array().unwrap() {
        wait_for_status(&p.app, event["id"].as_str().unwrap(), "success").await;
    }
    let kind = change.kind;
    let mirrored = p
        .store
        .mirror_record(ACCOUNT, kind.as_str(), &change.uuid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mirrored, Value::Object(p.account.record(kind, &change.uuid).unwrap()));
}
