//! Alerts end to end against the simulated ServiceM8 account and a local Slack receiver: each condition fires
//! once and resolves once, messages reach the alert's destinations through the delivery workers, and users
//! acknowledge and silence alerts through the management API, every step in the history.

use serde_json::{json, Value};
use server::config::ServeArgs;
use server::secret::Secret;
use server::store::now_millis;
use servicem8_mock::{self as mock, Faults, MockConfig, MockHandle, ObjectKind};
use tempfile::TempDir;

use crate::common::outbound::Receiver;
use crate::common::users::store_of;
use crate::common::{
    eventually, fresh_postgres_database, queued_event, serve_args, spawn_with, test_database_url, TestApp,
};

/// A server on a SQLite file (tests reach its store beside it) evaluating alerts every 50 ms.
fn alerting(database_url: &str) -> ServeArgs {
    let mut args = serve_args(database_url);
    args.processor.workers = 2;
    args.processor.poll_interval_ms = 20;
    args.processor.retry_base_delay_ms = 10;
    args.processor.sync_interval_seconds = 0;
    args.deliveries.delivery_poll_interval_ms = 20;
    args.alerts.alert_interval_ms = 50;
    args
}

async fn on_sqlite(configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let data = TempDir::new().unwrap();
    let mut args = alerting(&format!("sqlite://{}", data.path().join("sm8.db").display()));
    configure(&mut args);
    spawn_with(args, data).await
}

fn reaching(args: &mut ServeArgs, account: &MockHandle) {
    args.servicem8.servicem8_api_key = Some(Secret::new(account.api_key()));
    args.servicem8.servicem8_base_url = account.base_url();
}

async fn quiet_account() -> MockHandle {
    mock::start(MockConfig {
        change_interval_ms: 0,
        ..MockConfig::on_free_port()
    })
    .await
    .unwrap()
}

async fn alerts(app: &TestApp) -> Vec<Value> {
    app.manage_json("action=alerts").await["alerts"]
        .as_array()
        .unwrap()
        .clone()
}

async fn alert(app: &TestApp, kind: &str) -> Value {
    alerts(app)
        .await
        .into_iter()
        .find(|alert| alert["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} alert"))
}

/// A Slack destination posting to `slack`, and `kind`'s alert sending to it with `settings`, never re-notifying.
async fn alert_to_slack(app: &TestApp, slack: &Receiver, kind: &str, settings: Value) -> String {
    let created = app
        .changed(
            json!({"action": "create_destination", "name": "ops-slack", "kind": "slack",
            "secrets": {"webhook_url": slack.url("/services/T0/B0/alerts")}}),
        )
        .await;
    let destination = created["destination"]["id"].as_str().unwrap().to_owned();
    let id = alert(app, kind).await["id"].as_str().unwrap().to_owned();
    app.changed(
        json!({"action": "update_alert", "id": id, "enabled": true, "settings": settings,
        "destinationIds": [destination], "renotifyMinutes": 0}),
    )
    .await;
    id
}

/// The `text` of each message Slack received, in order.
fn slack_texts(slack: &Receiver) -> Vec<String> {
    slack
        .requests()
        .iter()
        .map(|request| request.json()["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn wait_for_messages(slack: &Receiver, count: usize, what: &str) -> Vec<String> {
    eventually(what, || async {
        let texts = slack_texts(slack);
        (texts.len() >= count).then_some(texts)
    })
    .await
}

async fn history(app: &TestApp) -> Vec<Value> {
    app.manage_json("action=alert_history&limit=500").await["entries"]
        .as_array()
        .unwrap()
        .clone()
}

/// `(kind, transition)` of every history line, oldest first.
async fn transitions(app: &TestApp, kind: &str) -> Vec<String> {
    let mut lines: Vec<String> = history(app)
        .await
        .into_iter()
        .filter(|line| line["kind"] == kind)
        .map(|line| line["transition"].as_str().unwrap().to_owned())
        .collect();
    lines.reverse();
    lines
}

/// Posts a change of each job.
async fn post_jobs(app: &TestApp, jobs: &[String]) {
    for (n, job) in jobs.iter().enumerate() {
        let body = json!({"object_type": "job", "object_uuid": job, "event_type": "updated",
            "timestamp": format!("2024-03-01T10:00:{:02}Z", n % 60), "changes": {"status": "Work Order"}})
        .to_string();
        assert_eq!(app.post_signed(&body).await.status(), 200);
    }
}

#[tokio::test]
async fn every_account_starts_with_one_enabled_alert_of_each_kind() {
    let app = on_sqlite(|_| {}).await;
    let kinds: Vec<String> = alerts(&app)
        .await
        .iter()
        .map(|alert| alert["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "exhausted_retries",
            "failure_rate",
            "queue_age",
            "api_budget",
            "silence",
            "missed_webhooks",
            "circuit_open",
            "relay_down"
        ]
    );
    let failure_rate = alert(&app, "failure_rate").await;
    assert_eq!(
        failure_rate["settings"],
        json!({"window_minutes": 10, "percent": 50.0, "min_attempts": 20})
    );
    assert_eq!(failure_rate["state"], "ok");
    assert_eq!(failure_rate["enabled"], true);
}

#[tokio::test]
async fn every_api_request_failing_fires_the_failure_rate_alert_once_to_slack_and_it_resolves_once() {
    let account = quiet_account().await;
    let app = on_sqlite(|args| {
        reaching(args, &account);
        args.processor.max_retries = 2;
    })
    .await;
    fires_and_resolves_on_api_errors(&app, &account).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run make test-postgres"]
async fn on_postgresql_the_failure_rate_alert_fires_once_and_resolves_once() {
    let account = quiet_account().await;
    let mut args = alerting(&fresh_postgres_database(&test_database_url()).await);
    reaching(&mut args, &account);
    args.processor.max_retries = 2;
    let app = spawn_with(args, TempDir::new().unwrap()).await;
    fires_and_resolves_on_api_errors(&app, &account).await;
}

async fn fires_and_resolves_on_api_errors(app: &TestApp, account: &MockHandle) {
    let slack = Receiver::answering(200).await;
    alert_to_slack(
        app,
        &slack,
        "failure_rate",
        json!({"window_minutes": 10, "percent": 50, "min_attempts": 6}),
    )
    .await;
    account.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::none()
    });
    let jobs = account.uuids(ObjectKind::Job);
    post_jobs(app, &jobs[..4]).await;
    let texts = wait_for_messages(&slack, 1, "the failure-rate alert's message").await;
    assert!(
        texts[0].starts_with("Firing: Failure rate on account default"),
        "{texts:?}"
    );
    assert!(texts[0].contains("100% of"), "{texts:?}");
    // While the errors go on, all four use up their retries (the failure rate can fire before the last does);
    // the events-failed alert fires once for them and its summary follows the count.
    eventually("the events-failed alert to count all four", || async {
        let grouped = alert(app, "exhausted_retries").await;
        (grouped["state"] == "firing" && grouped["summary"] == "4 events failed in the last 5 minutes").then_some(())
    })
    .await;
    let firing = alert(app, "failure_rate").await;
    assert_eq!(firing["state"], "firing");
    let body = slack.requests()[0].json();
    assert_eq!(
        body["blocks"][0]["type"], "section",
        "Slack gets Block Kit blocks too: {body}"
    );

    // The errors stop; enough attempts succeed to bring the share of failures under the threshold.
    account.set_faults(Faults::none());
    post_jobs(app, &jobs[4..34]).await;
    let texts = wait_for_messages(&slack, 2, "the failure-rate alert's resolution").await;
    assert!(
        texts[1].starts_with("Resolved: Failure rate on account default"),
        "{texts:?}"
    );
    assert_eq!(alert(app, "failure_rate").await["state"], "ok");
    assert_eq!(transitions(app, "failure_rate").await, ["fired", "resolved"]);
    assert_eq!(
        slack_texts(&slack).len(),
        2,
        "one message per transition: {:?}",
        slack_texts(&slack)
    );
    // The four events that used up their retries fired the events-failed alert too, once for the burst.
    let fired = history(app)
        .await
        .into_iter()
        .filter(|line| line["kind"] == "exhausted_retries" && line["transition"] == "fired")
        .collect::<Vec<_>>();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(
        fired[0]["summary"]
            .as_str()
            .unwrap()
            .contains("failed in the last 5 minutes"),
        "{fired:?}"
    );
    assert_eq!(transitions(app, "exhausted_retries").await, ["fired"]);
}

#[tokio::test]
async fn the_silence_alert_fires_when_webhooks_stop_and_resolves_when_one_arrives() {
    let app = on_sqlite(|args| args.processor.workers = 0).await;
    let slack = Receiver::answering(200).await;
    alert_to_slack(
        &app,
        &slack,
        "silence",
        json!({"minutes": 30, "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "from_hour": 0, "to_hour": 24}),
    )
    .await;
    // The last webhook came two hours ago.
    let store = store_of(&app).await;
    store
        .insert_events(&[queued_event("job", "job-long-ago", now_millis() - 2 * 3_600_000)])
        .await
        .unwrap();
    let texts = wait_for_messages(&slack, 1, "the silence alert's message").await;
    assert!(texts[0].starts_with("Firing: Webhooks stopped"), "{texts:?}");
    assert!(
        texts[0].contains("no webhook from ServiceM8 for 120 minutes"),
        "{texts:?}"
    );

    post_jobs(&app, &["job-back".to_owned()]).await;
    let texts = wait_for_messages(&slack, 2, "the silence alert's resolution").await;
    assert!(texts[1].starts_with("Resolved: Webhooks stopped"), "{texts:?}");
    assert_eq!(transitions(&app, "silence").await, ["fired", "resolved"]);
}

#[tokio::test]
async fn a_change_no_webhook_announced_fires_the_missed_webhooks_alert_but_the_first_import_does_not() {
    let account = quiet_account().await;
    let app = on_sqlite(|args| {
        reaching(args, &account);
        args.processor.sync_interval_seconds = 1;
    })
    .await;
    let slack = Receiver::answering(200).await;
    alert_to_slack(
        &app,
        &slack,
        "missed_webhooks",
        json!({"window_minutes": 60, "min_changes": 1}),
    )
    .await;
    // The first pass imports the account: its events are no missed webhooks.
    let jobs = account.uuids(ObjectKind::Job);
    eventually("the first pass to import the jobs", || async {
        let page = app.manage_json("action=events&object_type=job&limit=500").await;
        (page["events"].as_array().unwrap().len() >= jobs.len()).then_some(())
    })
    .await;
    assert!(slack.requests().is_empty(), "an import is not a missed webhook");

    // ServiceM8 changes a job and posts nothing; the next pass finds it.
    account
        .update_record(ObjectKind::Job, &jobs[0], json!({"status": "Completed"}))
        .unwrap();
    let texts = wait_for_messages(&slack, 1, "the missed-webhooks alert's message").await;
    assert!(texts[0].starts_with("Firing: Missed webhooks"), "{texts:?}");
    assert!(
        texts[0].contains("reconciliation found 1 change that no webhook announced"),
        "{texts:?}"
    );
    assert_eq!(transitions(&app, "missed_webhooks").await, ["fired"]);
}

#[tokio::test]
async fn a_relay_failing_on_a_node_fires_the_relay_alert_until_the_node_recovers() {
    let app = on_sqlite(|_| {}).await;
    let slack = Receiver::answering(200).await;
    alert_to_slack(&app, &slack, "relay_down", json!({"after_seconds": 1})).await;
    let store = store_of(&app).await;
    let now = now_millis();
    // Another node reports its relay failing for a minute, and keeps reporting it.
    store
        .raise_node_signal(
            "node-b",
            "relay_down",
            "connection refused",
            now - 60_000,
            now + 3_600_000,
        )
        .await
        .unwrap();
    let texts = wait_for_messages(&slack, 1, "the relay alert's message").await;
    assert!(
        texts[0].contains("the realtime relay cannot publish on node-b"),
        "{texts:?}"
    );
    assert!(texts[0].contains("connection refused"), "{texts:?}");
    store.clear_node_signal("node-b", "relay_down").await.unwrap();
    let texts = wait_for_messages(&slack, 2, "the relay alert's resolution").await;
    assert!(texts[1].starts_with("Resolved: Realtime relay down"), "{texts:?}");
}

#[tokio::test]
async fn an_acknowledged_alert_leaves_the_banner_and_a_silenced_one_notifies_nobody() {
    let app = on_sqlite(|args| args.processor.workers = 0).await;
    let slack = Receiver::answering(200).await;
    let id = alert_to_slack(&app, &slack, "queue_age", json!({"max_seconds": 60})).await;
    // Silenced first: the alert fires, is recorded, and nobody is told.
    let silenced = app
        .changed(json!({"action": "silence_alert", "id": id, "minutes": 60}))
        .await;
    assert!(silenced["silenced_until"].is_string(), "{silenced}");
    let store = store_of(&app).await;
    store
        .insert_events(&[queued_event("job", "job-stuck", now_millis() - 10 * 60_000)])
        .await
        .unwrap();
    eventually("the queue-age alert to fire", || async {
        (alert(&app, "queue_age").await["state"] == "firing").then_some(())
    })
    .await;
    let fired = history(&app)
        .await
        .into_iter()
        .find(|line| line["transition"] == "fired")
        .unwrap();
    assert_eq!(fired["notified"], false, "{fired}");
    assert!(
        fired["summary"]
            .as_str()
            .unwrap()
            .contains("the oldest queued event has waited 10 min"),
        "{fired}"
    );

    let acknowledged = app.changed(json!({"action": "acknowledge_alert", "id": id})).await;
    assert_eq!(acknowledged["acknowledged_by"], "admin_token");
    assert_eq!(acknowledged["state"], "firing", "acknowledging does not resolve");
    let again = app
        .change(&json!({"action": "acknowledge_alert", "id": "no-such-alert"}))
        .await;
    assert_eq!(again.0, 404, "{again:?}");
    app.changed(json!({"action": "silence_alert", "id": id, "minutes": 0}))
        .await;
    assert_eq!(
        transitions(&app, "queue_age").await,
        ["silenced", "fired", "acknowledged", "unsilenced"]
    );
    assert!(slack.requests().is_empty(), "{:?}", slack_texts(&slack));
}

#[tokio::test]
async fn wrong_alert_settings_are_refused_with_the_field_they_are_about() {
    let app = on_sqlite(|_| {}).await;
    let id = alert(&app, "failure_rate").await["id"].as_str().unwrap().to_owned();
    let refused = |body: Value| {
        let app = &app;
        async move { app.change(&body).await }
    };
    let (status, answer) = refused(json!({"action": "update_alert", "id": id, "enabled": true,
        "settings": {"percent": 150}, "renotifyMinutes": 60}))
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("settings.percent"),
        "{answer}"
    );
    let (status, answer) = refused(json!({"action": "update_alert", "id": id, "enabled": true,
        "destinationIds": ["nowhere"], "renotifyMinutes": 60}))
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("no destination nowhere"),
        "{answer}"
    );
    let (status, _) = refused(json!({"action": "silence_alert", "id": id, "minutes": -5})).await;
    assert_eq!(status, 400);
    let (status, _) = refused(json!({"action": "acknowledge_alert", "id": id})).await;
    assert_eq!(status, 409, "an alert at rest cannot be acknowledged");
}

#[tokio::test]
async fn a_destination_whose_circuit_opens_fires_the_circuit_alert_to_another_destination() {
    let app = on_sqlite(|args| {
        args.deliveries.delivery_retry_schedule = "0s,20ms,20ms".parse().unwrap();
        args.deliveries.delivery_circuit_failures = 3;
        args.deliveries.delivery_circuit_cool_down_seconds = 3_600;
    })
    .await;
    let slack = Receiver::answering(200).await;
    alert_to_slack(&app, &slack, "circuit_open", json!({})).await;
    let down = Receiver::answering(503).await;
    app.changed(json!({"action": "create_destination", "name": "erp", "kind": "webhook",
        "settings": {"url": down.url("/erp")}}))
        .await;
    app.changed(json!({"action": "create_rule", "definition": {"name": "Every job",
        "when": {"stage": "processed", "object_types": ["job"]}, "actions": [{"type": "deliver", "destinations": ["erp"]}]}}))
    .await;
    post_jobs(&app, &["job-for-erp".to_owned()]).await;
    let texts = wait_for_messages(&slack, 1, "the circuit alert's message").await;
    assert!(texts[0].starts_with("Firing: Destination circuit open"), "{texts:?}");
    assert!(
        texts[0].contains("circuit open: erp (after 3 failures in a row)"),
        "{texts:?}"
    );
    assert!(
        texts[0].contains("/admin/destinations"),
        "the message links to the destinations: {texts:?}"
    );
}

#[tokio::test]
async fn spending_most_of_the_minutes_api_budget_fires_the_budget_alert() {
    let account = quiet_account().await;
    let app = on_sqlite(|args| {
        reaching(args, &account);
        args.servicem8.servicem8_requests_per_minute = 10;
        args.servicem8.servicem8_budget_margin_percent = 0;
    })
    .await;
    let slack = Receiver::answering(200).await;
    alert_to_slack(&app, &slack, "api_budget", json!({"percent": 80})).await;
    let jobs = account.uuids(ObjectKind::Job);
    post_jobs(&app, &jobs[..9]).await;
    let texts = wait_for_messages(&slack, 1, "the budget alert's message").await;
    assert!(texts[0].starts_with("Firing: API budget"), "{texts:?}");
    assert!(texts[0].contains("the API budget of the minute is"), "{texts:?}");
    assert!(texts[0].contains("of 10 requests"), "{texts:?}");
}
