//! The simulated ServiceM8 account over real HTTP on port 0.

use std::time::Duration;

use app::objects::OBJECTS;

use crate::common::receiver::{eventually, form_fields, Receiver, PATIENCE};
use serde_json::{json, Value};
use servicem8_mock::{self as mock, CallbackFormat, Faults, MockConfig, MockHandle, ObjectKind, NEXT_CURSOR_HEADER};

fn small_account() -> MockConfig {
    MockConfig {
        companies: 3,
        jobs_per_company: 4,
        activities_per_job: 1,
        attachments_per_job: 1,
        staff: 2,
        page_size: 5,
        ..MockConfig::on_free_port()
    }
}

async fn start(config: MockConfig) -> (MockHandle, reqwest::Client) {
    (
        mock::start(config).await.expect("the mock starts"),
        reqwest::Client::new(),
    )
}

async fn get(client: &reqwest::Client, mock: &MockHandle, path: &str) -> reqwest::Response {
    client
        .get(format!("{}{path}", mock.base_url()))
        .header("X-API-Key", mock.api_key())
        .send()
        .await
        .unwrap()
}

async fn get_query(
    client: &reqwest::Client,
    mock: &MockHandle,
    path: &str,
    query: &[(&str, &str)],
) -> reqwest::Response {
    client
        .get(format!("{}{path}", mock.base_url()))
        .header("X-API-Key", mock.api_key())
        .query(query)
        .send()
        .await
        .unwrap()
}

fn uuids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|record| record["uuid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_simulated_account_serves_every_registered_object_type_with_its_links() {
    assert_eq!(
        ObjectKind::ALL.len(),
        OBJECTS.len(),
        "one simulated kind per registered type"
    );
    let (mock, client) = start(MockConfig {
        page_size: 1_000,
        ..small_account()
    })
    .await;
    for spec in OBJECTS {
        let kind: ObjectKind = spec.object_type.parse().expect("the account serves the type");
        assert_eq!(kind.spec(), spec);
        let response = get(&client, &mock, &format!("/{}.json", spec.api_name)).await;
        assert_eq!(response.status(), 200, "{}", spec.object_type);
        let records: Vec<Value> = response.json().await.unwrap();
        assert!(!records.is_empty(), "{} has records", spec.object_type);
        let link_fields = spec.link_fields();
        for record in &records {
            for field in ["uuid", "edit_date", "active"].iter().chain(&link_fields) {
                assert!(
                    record.get(*field).is_some(),
                    "{} lacks {field}: {record}",
                    spec.object_type
                );
            }
        }
    }
    mock.shutdown().await;
}

#[tokio::test]
async fn records_are_listed_in_pages_linked_by_the_next_cursor_header() {
    let (mock, client) = start(small_account()).await;
    let everything: Vec<Value> = get(&client, &mock, "/job.json").await.json().await.unwrap();
    assert_eq!(everything.len(), 12, "without a cursor every record comes at once");

    let mut paged = Vec::new();
    let mut cursor = "-1".to_owned();
    let mut pages = 0;
    loop {
        let response = get_query(&client, &mock, "/Job.json", &[("cursor", &cursor)]).await;
        assert_eq!(response.status(), 200);
        let next = response
            .headers()
            .get(NEXT_CURSOR_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        let page: Vec<Value> = response.json().await.unwrap();
        assert!(page.len() <= 5);
        paged.extend(page);
        pages += 1;
        match next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(uuids(&paged), uuids(&everything));
    for job in &everything {
        assert!(["Quote", "Work Order", "Unsuccessful", "Completed"].contains(&job["status"].as_str().unwrap()));
        assert_eq!(job["active"], 1);
    }
}

#[tokio::test]
async fn the_filter_selects_records_by_edit_date() {
    let (mock, client) = start(small_account()).await;
    let jobs: Vec<Value> = get(&client, &mock, "/job.json").await.json().await.unwrap();
    let mut dates: Vec<&str> = jobs.iter().map(|job| job["edit_date"].as_str().unwrap()).collect();
    dates.sort();
    let middle = dates[dates.len() / 2];
    let count = |filter: String| {
        let (client, mock) = (&client, &mock);
        async move {
            let response = get_query(client, mock, "/job.json", &[("$filter", &filter)]).await;
            assert_eq!(response.status(), 200, "{filter}");
            response.json::<Vec<Value>>().await.unwrap().len()
        }
    };
    let later = count(format!("edit_date gt '{middle}'")).await;
    let earlier = count(format!("edit_date lt '{middle}'")).await;
    let same = count(format!("edit_date eq '{middle}'")).await;
    assert_eq!(later, dates.iter().filter(|d| **d > middle).count());
    assert_eq!(earlier, dates.iter().filter(|d| **d < middle).count());
    assert!(same >= 1);
    assert_eq!(later + earlier + same, 12);
    assert_eq!(count(format!("edit_date gt '{middle}' and active eq 1")).await, later);

    let refused = get_query(&client, &mock, "/job.json", &[("$filter", "edit_date after '2024'")]).await;
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["errorCode"], 400);
    assert!(error["message"].as_str().unwrap().contains("after"));
}

#[tokio::test]
async fn one_record_is_served_by_uuid_and_an_unknown_uuid_is_404() {
    let (mock, client) = start(small_account()).await;
    let uuid = mock.uuids(ObjectKind::Company).remove(0);
    let response = get(&client, &mock, &format!("/Company/{uuid}.json")).await;
    assert_eq!(response.status(), 200);
    let company: Value = response.json().await.unwrap();
    assert_eq!(company["uuid"], uuid.as_str());
    assert!(company["name"].is_string() && company["billing_address"].is_string());
    assert_eq!(mock.fetch_count(ObjectKind::Company, &uuid), 1);

    let missing = get(&client, &mock, "/company/00000000-0000-4000-8000-000000000000.json").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["errorCode"], 404);
    assert_eq!(get(&client, &mock, "/invoice.json").await.status(), 404);
}

#[tokio::test]
async fn requests_without_the_account_api_key_are_refused_with_401() {
    let (mock, client) = start(small_account()).await;
    let url = format!("{}/staff.json", mock.base_url());
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.json::<Value>().await.unwrap()["errorCode"], 401);
    assert_eq!(
        client
            .get(&url)
            .header("X-API-Key", "someone-else")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(mock.api_key())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(mock.request_count(), 3);
}

#[tokio::test]
async fn the_request_over_the_per_minute_limit_is_answered_429() {
    let (mock, client) = start(MockConfig {
        per_minute: 5,
        ..small_account()
    })
    .await;
    for _ in 0..5 {
        assert_eq!(get(&client, &mock, "/staff.json").await.status(), 200);
    }
    let refused = get(&client, &mock, "/staff.json").await;
    assert_eq!(refused.status(), 429);
    assert!(
        refused.headers().get("retry-after").is_none(),
        "ServiceM8 sends no Retry-After"
    );
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("Number of allowed API requests per minute exceeded"));
    assert_eq!(mock.rate_limited_count(), 1);
    assert_eq!(mock.request_count(), 6);
}

#[tokio::test]
async fn injected_faults_are_switched_on_and_off_at_run_time() {
    let (mock, client) = start(small_account()).await;
    mock.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::none()
    });
    for _ in 0..5 {
        assert!(get(&client, &mock, "/job.json").await.status().is_server_error());
    }
    mock.set_faults(Faults::none());
    assert_eq!(get(&client, &mock, "/job.json").await.status(), 200);

    // The same switch over HTTP.
    let faults_url = format!("{}/_mock/faults", mock.origin());
    let set = client
        .post(&faults_url)
        .json(&json!({"rate_limit_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(get(&client, &mock, "/job.json").await.status(), 429);
    client.post(&faults_url).json(&json!({})).send().await.unwrap();
    assert_eq!(get(&client, &mock, "/job.json").await.status(), 200);

    let stats: Value = client
        .get(format!("{}/_mock/stats", mock.origin()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (stats["requests"].as_u64(), stats["faults_injected"].as_u64()),
        (Some(8), Some(5))
    );
    assert_eq!(stats["rate_limited"], 1);
}

#[tokio::test]
async fn a_hanging_request_times_the_client_out_and_ends_at_shutdown() {
    let (mock, _) = start(MockConfig {
        timeout_rate: 1.0,
        hang_ms: 60_000,
        ..small_account()
    })
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let url = format!("{}/job.json", mock.base_url());
    let error = impatient
        .get(&url)
        .header("X-API-Key", mock.api_key())
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");

    let hanging = tokio::spawn({
        let key = mock.api_key().to_owned();
        async move { reqwest::Client::new().get(url).header("X-API-Key", key).send().await }
    });
    eventually(|| mock.request_count() == 2).await;
    tokio::time::timeout(PATIENCE, mock.shutdown())
        .await
        .expect("shutdown does not wait out the hang");
    let answer = tokio::time::timeout(PATIENCE, hanging).await.unwrap().unwrap();
    assert_eq!(answer.unwrap().status(), 503);
}

async fn subscribe(client: &reqwest::Client, mock: &MockHandle, form: &[(&str, &str)]) -> reqwest::Response {
    client
        .post(format!("{}/webhook_subscriptions/object", mock.origin()))
        .header("X-API-Key", mock.api_key())
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn subscribing_performs_the_handshake_and_replaces_the_earlier_subscription() {
    let (mock, client) = start(small_account()).await;
    let receiver = Receiver::start().await;
    let first = subscribe(
        &client,
        &mock,
        &[("object", "Job"), ("fields", "status"), ("callback_url", &receiver.url)],
    )
    .await;
    assert_eq!(first.status(), 200, "{}", first.text().await.unwrap());
    let second = subscribe(
        &client,
        &mock,
        &[
            ("object", "job"),
            ("fields", "active,edit_date"),
            ("callback_url", &receiver.url),
            ("unique_id", "sm8"),
        ],
    )
    .await;
    assert_eq!(second.status(), 200);
    let listed: Vec<Value> = client
        .get(format!("{}/webhook_subscriptions", mock.origin()))
        .header("X-API-Key", mock.api_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed.len(),
        1,
        "the second subscription replaced the first: {listed:?}"
    );
    assert_eq!(listed[0]["object"], "job");
    assert_eq!(
        listed[0]["fields"], "active,edit_date",
        "fields are replaced, not merged"
    );
    assert_eq!(listed[0]["unique_id"], "sm8");

    let removed = client
        .delete(format!("{}/webhook_subscriptions/object", mock.origin()))
        .header("X-API-Key", mock.api_key())
        .form(&[("object", "job"), ("callback_url", &receiver.url)])
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    assert!(mock.subscriptions().is_empty());
}

#[tokio::test]
async fn a_subscription_needs_a_form_body_and_a_callback_that_answers_the_challenge() {
    let (mock, client) = start(small_account()).await;
    let receiver = Receiver::start().await;
    let as_json = client
        .post(format!("{}/webhook_subscriptions/object", mock.origin()))
        .header("X-API-Key", mock.api_key())
        .json(&json!({"object": "job", "fields": "status", "callback_url": receiver.url}))
        .send()
        .await
        .unwrap();
    assert_eq!(as_json.status(), 400);
    assert_eq!(
        as_json.json::<Value>().await.unwrap()["message"],
        "Please specify an object for subscription"
    );

    let wrong_url = receiver.wrong_url.clone();
    let unverified = subscribe(
        &client,
        &mock,
        &[("object", "job"), ("fields", "status"), ("callback_url", &wrong_url)],
    )
    .await;
    assert_eq!(unverified.status(), 400);
    assert!(unverified.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("challenge"));

    let event = client
        .post(format!("{}/webhook_subscriptions/event", mock.origin()))
        .header("X-API-Key", mock.api_key())
        .form(&[("event", "job.completed"), ("callback_url", &receiver.url)])
        .send()
        .await
        .unwrap();
    assert_eq!(event.status(), 200);
    assert_eq!(
        mock.subscriptions().len(),
        1,
        "only the verified event subscription is stored"
    );
}

#[tokio::test]
async fn the_change_task_posts_a_real_object_callback_to_the_target() {
    let mut receiver = Receiver::start().await;
    let config = MockConfig {
        change_interval_ms: 20,
        targets: vec![receiver.url.clone()],
        ..small_account()
    };
    let (mock, client) = start(config).await;
    let callback = receiver.next().await;
    assert!(callback.content_type.starts_with("application/json"));
    let callback: Value = serde_json::from_str(&callback.body).unwrap();
    let object = callback["object"].as_str().unwrap();
    let kind: ObjectKind = object.parse().unwrap();
    let entry = &callback["entry"][0];
    let uuid = entry["uuid"].as_str().unwrap();
    assert!(!entry["changed_fields"].as_array().unwrap().is_empty());
    let time = entry["time"].as_str().unwrap();
    assert_eq!(time.len(), "2025-01-01 00:00:00".len());
    let resource_url = callback["resource_url"].as_str().unwrap();
    assert_eq!(resource_url, format!("{}/{object}/{uuid}.json", mock.base_url()));

    let record: Value = client
        .get(resource_url)
        .header("X-API-Key", mock.api_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(record["uuid"], uuid);
    assert!(
        record["edit_date"].as_str().unwrap() >= time,
        "the record is at least as new as the callback"
    );
    assert_eq!(mock.record(kind, uuid).unwrap()["uuid"], uuid);
}

#[tokio::test]
async fn callbacks_are_form_encoded_when_configured_and_go_to_matching_subscriptions() {
    let (mock, client) = start(MockConfig {
        callback_format: CallbackFormat::Form,
        ..small_account()
    })
    .await;
    let mut receiver = Receiver::start().await;
    assert_eq!(
        subscribe(
            &client,
            &mock,
            &[("object", "job"), ("fields", "status"), ("callback_url", &receiver.url)]
        )
        .await
        .status(),
        200
    );
    let uuid = mock.uuids(ObjectKind::Job).remove(0);

    let changed = mock
        .update_record(ObjectKind::Job, &uuid, json!({"job_description": "Fix the tap"}))
        .unwrap();
    assert_eq!(changed, ["job_description"]);
    let deliveries = mock
        .trigger_callback(ObjectKind::Job, &uuid, &["job_description"])
        .await
        .unwrap();
    assert!(deliveries.is_empty(), "the subscription wants status changes only");

    mock.update_record(ObjectKind::Job, &uuid, json!({"status": "Completed"}))
        .unwrap();
    let deliveries = mock
        .trigger_callback(ObjectKind::Job, &uuid, &["status"])
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 1);
    let callback = receiver.next().await;
    assert!(callback.content_type.starts_with("application/x-www-form-urlencoded"));
    let fields = form_fields(&callback.body);
    assert_eq!(fields["object"], "job");
    let entry: Value = serde_json::from_str(&fields["entry"]).unwrap();
    assert_eq!(entry[0]["uuid"], uuid.as_str());
    assert_eq!(entry[0]["changed_fields"], json!(["status"]));
    assert_eq!(
        entry[0]["time"],
        mock.record(ObjectKind::Job, &uuid).unwrap()["edit_date"]
    );
    assert!(receiver.nothing_more());

    mock.delete(ObjectKind::Job, &uuid).unwrap();
    assert_eq!(
        mock.record(ObjectKind::Job, &uuid).unwrap()["active"],
        0,
        "deletes are soft"
    );
}
