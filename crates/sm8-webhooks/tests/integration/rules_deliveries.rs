//! Rules and destinations end to end: a rule of the account picks events, shapes them and forwards them to its
//! destinations, which the delivery workers reach over real HTTP with Standard Webhooks signatures; a rule at
//! stage `received` skips events before any API request; failures are retried on the schedule, then fail, and
//! open the destination's circuit; a transform that throws fails only its delivery.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use server::config::ServeArgs;
use server::secret::Secret;
use servicem8_mock::{self as mock, MockConfig};
use sha2::Sha256;

use crate::common::outbound::{Received, Receiver};
use crate::common::{
    eventually, fresh_postgres_database, serve_args, spawn_app_with, spawn_with, test_database_url, TestApp,
};

fn quick() -> ServeArgs {
    let mut args = serve_args("sqlite::memory:");
    args.processor.workers = 2;
    args.processor.poll_interval_ms = 20;
    args.processor.sync_interval_seconds = 0;
    args.deliveries.delivery_poll_interval_ms = 20;
    args
}

fn job_event(uuid: &str, status: &str, second: u32) -> String {
    json!({
        "object_type": "job",
        "object_uuid": uuid,
        "event_type": "updated",
        "timestamp": format!("2024-03-01T10:00:{second:02}Z"),
        "changes": { "status": status },
    })
    .to_string()
}

async fn post(app: &TestApp, body: &str) -> String {
    let response = app.post_signed(body).await;
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    receipt["event_ids"][0].as_str().unwrap().to_owned()
}

async fn event_status(app: &TestApp, id: &str) -> Value {
    app.manage_json(&format!("action=event&id={id}")).await["summary"].clone()
}

async fn finished(app: &TestApp, id: &str) -> Value {
    eventually(&format!("event {id} to finish"), || async {
        let summary = event_status(app, id).await;
        let status = summary["status"].as_str().unwrap_or_default().to_owned();
        (status != "queued" && status != "processing").then_some(summary)
    })
    .await
}

async fn deliveries(app: &TestApp, filter: &str) -> Vec<Value> {
    app.manage_json(&format!("action=deliveries{filter}")).await["deliveries"]
        .as_array()
        .unwrap()
        .clone()
}

/// Checks a Standard Webhooks signature the way a receiver would, from the specification: HMAC-SHA256 under
/// the base64 key after `whsec_`, of `{id}.{timestamp}.{body}`, base64, as one of the `v1,` signatures.
fn signature_is_valid(request: &Received, secret: &str) -> bool {
    let key = BASE64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let signed = format!(
        "{}.{}.{}",
        request.header("webhook-id"),
        request.header("webhook-timestamp"),
        String::from_utf8_lossy(&request.body)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    request
        .header("webhook-signature")
        .split(' ')
        .any(|signature| signature == expected)
}

#[tokio::test]
async fn a_processed_rule_forwards_a_jobs_completion_to_a_webhook_signed_with_standard_webhooks() {
    forwards_a_jobs_completion(spawn_app_with(quick()).await).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run make test-postgres"]
async fn on_postgresql_a_processed_rule_forwards_a_jobs_completion_to_a_signed_webhook() {
    let mut args = quick();
    args.database.database_url = fresh_postgres_database(&test_database_url()).await;
    forwards_a_jobs_completion(spawn_with(args, tempfile::TempDir::new().unwrap()).await).await;
}

async fn forwards_a_jobs_completion(app: TestApp) {
    let erp = Receiver::answering(200).await;
    let created = app.changed(json!({"action": "create_destination", "name": "erp", "kind": "webhook", "settings": {"url": erp.url("/hook")}}),
    )
    .await;
    let secret = created["shown_once"]["value"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    app.changed(json!({"action": "create_rule", "definition": {
        "name": "Forward completed jobs",
        "when": {"stage": "processed", "object_types": ["job"]},
        "filter": {"record.status": "Completed", "previous.status": {"$neq": "Completed"}},
        "transform": "(input) => ({ job: input.record.uuid, status: input.record.status })",
        "actions": [{"type": "deliver", "destinations": ["erp"]}]
    }}))
    .await;

    let quoted = post(&app, &job_event("job-1", "Quote", 1)).await;
    assert_eq!(finished(&app, &quoted).await["status"], "success");
    let completed = post(&app, &job_event("job-1", "Completed", 2)).await;
    assert_eq!(finished(&app, &completed).await["status"], "success");
    let again = post(&app, &job_event("job-1", "Completed", 3)).await;
    assert_eq!(finished(&app, &again).await["status"], "success");

    let delivered = eventually("the delivery to be delivered", || async {
        let listed = deliveries(&app, "").await;
        (listed.len() == 1 && listed[0]["status"] == "delivered").then(|| listed[0].clone())
    })
    .await;
    assert_eq!(
        delivered["event_id"],
        completed.as_str(),
        "only the change to Completed matched"
    );
    assert_eq!(delivered["rule_name"], "Forward completed jobs");
    let requests = erp.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/hook");
    assert_eq!(request.json(), json!({"job": "job-1", "status": "Completed"}));
    assert_eq!(
        request.header("webhook-id"),
        format!("msg_{}", delivered["id"].as_str().unwrap())
    );
    assert!(signature_is_valid(request, &secret), "{:?}", request.headers);

    let detail = app
        .manage_json(&format!("action=delivery&id={}", delivered["id"].as_str().unwrap()))
        .await;
    assert_eq!(detail["attempt_log"][0]["http_status"], 200);
    assert_eq!(detail["attempt_log"][0]["outcome"], "delivered");
}

#[tokio::test]
async fn a_received_rule_skips_staff_events_without_spending_an_api_request() {
    let account = mock::start(MockConfig {
        change_interval_ms: 0,
        ..MockConfig::on_free_port()
    })
    .await
    .unwrap();
    let mut args = quick();
    args.servicem8.servicem8_api_key = Some(Secret::new(account.api_key()));
    args.servicem8.servicem8_base_url = account.base_url();
    let app = spawn_app_with(args).await;
    app.changed(json!({"action": "create_rule", "definition": {
        "name": "Drop staff events",
        "when": {"stage": "received", "object_types": ["staff"]},
        "actions": [{"type": "skip"}]
    }}))
    .await;
    let before = account.request_count();
    let staff = json!({"object_type": "staff", "object_uuid": "staff-1", "event_type": "updated",
        "timestamp": "2024-03-01T10:00:00Z", "changes": {"first": "Ann"}})
    .to_string();
    let id = post(&app, &staff).await;
    let summary = finished(&app, &id).await;
    assert_eq!(summary["status"], "skipped");
    let detail = app.manage_json(&format!("action=event&id={id}")).await;
    assert_eq!(detail["skip_reason"], "filtered by rule \"Drop staff events\"");
    assert_eq!(account.request_count(), before, "no API request for a filtered event");
}

#[tokio::test]
async fn a_failing_destination_is_retried_on_the_schedule_then_failed_and_its_circuit_opens() {
    let down = Receiver::answering(500).await;
    let mut args = quick();
    args.deliveries.delivery_retry_schedule = "0s,50ms,50ms".parse().unwrap();
    args.deliveries.delivery_circuit_failures = 3;
    args.deliveries.delivery_circuit_cool_down_seconds = 3_600;
    let app = spawn_app_with(args).await;
    let created = app.changed(json!({"action": "create_destination", "name": "down", "kind": "webhook", "settings": {"url": down.url("/down")}}),
    )
    .await;
    let destination = created["destination"]["id"].as_str().unwrap().to_owned();
    app.changed(json!({"action": "create_rule", "definition": {
        "name": "Every job", "when": {"stage": "processed", "object_types": ["job"]},
        "actions": [{"type": "deliver", "destinations": ["down"]}]
    }}))
    .await;
    post(&app, &job_event("job-2", "Quote", 1)).await;
    let failed = eventually("the delivery to fail", || async {
        let listed = deliveries(&app, "&status=failed").await;
        listed.first().cloned()
    })
    .await;
    let detail = app
        .manage_json(&format!("action=delivery&id={}", failed["id"].as_str().unwrap()))
        .await;
    let attempts = detail["attempt_log"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{detail}");
    assert!(attempts.iter().all(|attempt| attempt["http_status"] == 500), "{detail}");
    assert_eq!(down.requests().len(), 3);
    assert!(failed["last_error"].as_str().unwrap().contains("500"), "{failed}");

    let destinations = app.manage_json("action=destinations").await;
    let down_view = &destinations["destinations"][0];
    assert_eq!(down_view["circuit_open"], true, "{down_view}");
    assert_eq!(down_view["failed"], 1);

    let retried = app
        .changed(json!({"action": "retry_destination_deliveries", "destinationId": destination}))
        .await;
    assert_eq!(retried["retried"], 1);
    let listed = deliveries(&app, "").await;
    assert_eq!(listed[0]["status"], "queued", "held while the circuit is open");
}

#[tokio::test]
async fn a_transform_that_throws_fails_its_delivery_with_the_error_and_other_rules_carry_on() {
    let hook = Receiver::answering(200).await;
    let slack = Receiver::answering(200).await;
    let app = spawn_app_with(quick()).await;
    app.changed(json!({"action": "create_destination", "name": "hook", "kind": "webhook", "settings": {"url": hook.url("/hook")}}),
    )
    .await;
    app.changed(
        json!({"action": "create_destination", "name": "office-slack", "kind": "slack",
            "secrets": {"webhook_url": slack.url("/services/T0/B0/x")}}),
    )
    .await;
    app.changed(json!({"action": "create_rule", "definition": {
        "name": "Broken transform", "when": {"stage": "processed", "object_types": ["job"]},
        "transform": "(input) => { throw new Error('boom') }",
        "actions": [{"type": "deliver", "destinations": ["hook"]}]
    }}))
    .await;
    app.changed(json!({"action": "create_rule", "definition": {
        "name": "Slack: job completed", "when": {"stage": "processed", "object_types": ["job"]},
        "filter": {"record.status": "Completed"},
        "actions": [{"type": "deliver", "destinations": ["office-slack"],
            "template": {"text": "Job {{ record.uuid }} is {{ record.status }}."}}]
    }}))
    .await;
    let id = post(&app, &job_event("job-3", "Completed", 1)).await;
    assert_eq!(finished(&app, &id).await["status"], "success");
    let slack_request = eventually("Slack to be sent the message", || async {
        slack.requests().first().cloned()
    })
    .await;
    assert_eq!(slack_request.json(), json!({"text": "Job job-3 is Completed."}));
    let listed = deliveries(&app, &format!("&event={id}")).await;
    let broken = listed
        .iter()
        .find(|delivery| delivery["rule_name"] == "Broken transform")
        .unwrap();
    assert_eq!(broken["status"], "failed");
    assert!(broken["last_error"].as_str().unwrap().contains("boom"), "{broken}");
    assert!(hook.requests().is_empty(), "nothing is sent for a failed transform");
}

#[tokio::test]
async fn a_rule_that_does_not_compile_or_names_an_unknown_destination_is_refused_with_the_place() {
    let app = spawn_app_with(quick()).await;
    let (status, answer) = app
        .change(&json!({"action": "create_rule", "definition": {
            "name": "Bad filter", "when": {"stage": "processed"},
            "filter": {"record.status": {"$equals": "Completed"}}, "actions": []
        }}))
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("filter.record.status"),
        "{answer}"
    );
    let (status, answer) = app
        .change(&json!({"action": "create_rule", "definition": {
            "name": "Nowhere", "when": {"stage": "processed"},
            "actions": [{"type": "deliver", "destinations": ["nowhere"]}]
        }}))
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("actions[0].destinations"),
        "{answer}"
    );
    let rules = app.manage_json("action=rules").await;
    assert_eq!(rules["rules"], json!([]));
}

#[tokio::test]
async fn a_rule_is_tried_against_a_stored_event_without_sending_anything() {
    let hook = Receiver::answering(200).await;
    let app = spawn_app_with(quick()).await;
    app.changed(json!({"action": "create_destination", "name": "hook", "kind": "webhook", "settings": {"url": hook.url("/hook")}}),
    )
    .await;
    let id = post(&app, &job_event("job-4", "Completed", 1)).await;
    assert_eq!(finished(&app, &id).await["status"], "success");
    let tried = app
        .changed(json!({"action": "test_rule", "eventId": id, "definition": {
            "name": "Try", "when": {"stage": "processed", "object_types": ["job"]},
            "filter": {"record.status": "Completed"},
            "transform": "(input) => [{ n: 1 }, { n: 2 }]",
            "actions": [{"type": "deliver", "destinations": ["hook"]}]
        }}))
        .await;
    assert_eq!(tried["matched"], true, "{tried}");
    assert_eq!(tried["actions"][0]["outcome"], "deliver");
    assert_eq!(
        tried["actions"][0]["messages"],
        json!([{"json": {"n": 1}}, {"json": {"n": 2}}])
    );
    assert_eq!(tried["document"]["record"]["status"], "Completed");
    assert!(deliveries(&app, "").await.is_empty());
    assert!(hook.requests().is_empty());
}
