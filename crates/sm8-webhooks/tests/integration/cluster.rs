//! Two `serve` nodes with their workers on one PostgreSQL database, fetching from one simulated account, under
//! contention: every event is claimed and attempted once, and every update reaches the subscribers on both nodes.
//! `#[ignore]`d like the other PostgreSQL suites; `make test-postgres` runs it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server::secret::Secret;
use server::store;
use servicem8_mock::{self as mock, MockConfig, ObjectKind};

use crate::common::realtime_client::{admin_token, with_realtime, RealtimeClient, ANON_KEY};
use crate::common::ACCOUNT;
use crate::common::{fresh_postgres_database, serve_args, signed_delivery, spawn_with, test_database_url, TestApp};

const EVENTS: usize = 300;

/// The event ids of the `webhook_update` broadcasts a client receives on `realtime:jobs`, until it has `count`.
async fn collect_updates(mut client: RealtimeClient, count: usize) -> HashSet<String> {
    let mut seen = HashSet::new();
    while seen.len() < count {
        let payload = client.broadcast_on("realtime:jobs", "webhook_update").await;
        if let Some(id) = payload["event_id"].as_str() {
            seen.insert(id.to_owned());
        }
    }
    seen
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run make test-postgres"]
async fn two_nodes_claim_each_event_once_and_both_deliver_every_update() {
    let account = mock::start(MockConfig {
        change_interval_ms: 0,
        companies: 5,
        jobs_per_company: 4,
        latency_ms: 2,
        per_minute: u32::MAX / 2,
        per_day: u32::MAX / 2,
        ..MockConfig::on_free_port()
    })
    .await
    .unwrap();
    let database_url = fresh_postgres_database(&test_database_url()).await;
    let node = |name: &str| {
        let mut args = with_realtime(serve_args(&database_url));
        args.processor.workers = 4;
        args.processor.poll_interval_ms = 20;
        args.processor.sync_interval_seconds = 0;
        args.processor.node_id = Some(name.to_owned());
        args.servicem8.servicem8_api_key = Some(Secret::new(account.api_key()));
        args.servicem8.servicem8_base_url = account.base_url();
        args.servicem8.servicem8_requests_per_minute = 1_000_000;
        args.servicem8.servicem8_requests_per_day = 100_000_000;
        args
    };
    let a = spawn_with(node("node-a"), tempfile::TempDir::new().unwrap()).await;
    let b = spawn_with(node("node-b"), tempfile::TempDir::new().unwrap()).await;
    let mut clients = Vec::new();
    for app in [&a, &b] {
        let mut client = RealtimeClient::try_connect(app.address, ANON_KEY, "2.0.0")
            .await
            .unwrap();
        client.join_ok("realtime:jobs", Some(&admin_token())).await;
        clients.push(client);
    }
    let listening: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(collect_updates(client, EVENTS)))
        .collect();

    // Twenty jobs updated over and over, posted to both nodes at once: their workers contend for the same objects.
    let jobs = account.uuids(ObjectKind::Job);
    let posting = |app: &TestApp, half: usize| {
        let (client, url, jobs) = (app.client.clone(), app.url("/api/webhooks/sm8"), jobs.clone());
        async move {
            let mut ids = Vec::new();
            for n in (half..EVENTS).step_by(2) {
                let body = json!({
                    "object_type": "Job",
                    "object_uuid": jobs[n % jobs.len()],
                    "event_type": "updated",
                    "timestamp": "2024-01-01T00:00:00Z",
                    "changes": {"status": "Work Order", "n": n},
                })
                .to_string();
                let receipt: Value = signed_delivery(&client, &url, body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                ids.push(receipt["event_ids"][0].as_str().unwrap().to_owned());
            }
            ids
        }
    };
    let (on_a, on_b) = tokio::join!(posting(&a, 0), posting(&b, 1));
    let posted: HashSet<String> = on_a.into_iter().chain(on_b).collect();
    assert_eq!(posted.len(), EVENTS);

    let store = store::connect(&database_url).await.unwrap();
    let started = Instant::now();
    for id in &posted {
        loop {
            let record = store.event_record(ACCOUNT, id).await.unwrap().unwrap();
            if record.status == "success" {
                assert_eq!(record.attempts, 1, "event {id} was claimed more than once");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "event {id} is still {}",
                record.status
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            store.event_attempts(id).await.unwrap().len(),
            1,
            "event {id} was attempted twice"
        );
    }
    for listener in listening {
        let seen = tokio::time::timeout(Duration::from_secs(30), listener)
            .await
            .expect("every update reaches each node's subscriber")
            .unwrap();
        assert_eq!(seen, posted, "a subscriber missed updates");
    }
}
