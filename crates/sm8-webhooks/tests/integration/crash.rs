//! Crashes: the `sm8-webhooks serve` binary, fetching from a simulated account with its workers on, is killed
//! with SIGKILL in the middle of a load, several times, and started again on the same database. No acknowledged
//! event may be lost, and once the node runs again every event ends, well before the claims it held when it
//! died would have expired (it releases them at start).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::model::EventStatus;
use serde_json::{json, Value};
use server::store;
use servicem8_mock::{self as mock, MockConfig, MockHandle, ObjectKind};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::common::ACCOUNT;
use crate::common::{fresh_postgres_database, signed_delivery, test_database_url, WEBHOOK_SECRET};

/// Far longer than the test may wait: only the release at start can free the dead node's claims in time.
const LEASE_MS: &str = "600000";
const KILLS: usize = 3;
const POSTERS: usize = 8;
/// Acknowledged deliveries to wait for before each kill.
const ACKS_PER_RUN: usize = 60;

/// The binary, serving on a free port, with its workers on and a ServiceM8 that answers slowly enough for the
/// kill to find fetches in flight.
async fn start_node(database_url: &str, account: &MockHandle) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sm8-webhooks"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", database_url)
        .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("ADMIN_TOKEN", "crash-admin-token")
        .env("SERVICEM8_API_KEY", account.api_key())
        .env("SERVICEM8_BASE_URL", account.base_url())
        .env("SERVICEM8_REQUESTS_PER_MINUTE", "100000")
        .env("SERVICEM8_REQUESTS_PER_DAY", "10000000")
        .env("WORKERS", "4")
        .env("LEASE_MS", LEASE_MS)
        .env("NODE_ID", "crash-node")
        .env("POLL_INTERVAL_MS", "50")
        .env("SYNC_INTERVAL_SECONDS", "0")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the sm8-webhooks binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((_, address)) = line.split_once("serving on http://") {
                return address.trim().to_owned();
            }
        }
        panic!("sm8-webhooks exited before serving")
    })
    .await
    .expect("serving within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{address}/api/webhooks/sm8"))
}

/// Posts unique job updates from `POSTERS` tasks until `acks` hold `until` ids (or the node dies); every id a 200
/// acknowledged is kept.
async fn post_until(url: &str, jobs: &Arc<Vec<String>>, acks: &Arc<Mutex<Vec<String>>>, until: usize, run: usize) {
    let client = reqwest::Client::new();
    let posters = (0..POSTERS).map(|poster| {
        let (client, url, jobs, acks) = (client.clone(), url.to_owned(), jobs.clone(), acks.clone());
        tokio::spawn(async move {
            for n in 0.. {
                if acks.lock().await.len() >= until {
                    return;
                }
                let body = json!({
                    "object_type": "Job",
                    "object_uuid": jobs[(poster * 7 + n) % jobs.len()],
                    "event_type": "updated",
                    "timestamp": "2024-01-01T00:00:00Z",
                    "changes": {"status": "Work Order", "run": run, "poster": poster, "n": n},
                })
                .to_string();
                let answer = signed_delivery(&client, &url, body).send().await;
                let Ok(answer) = answer else { return };
                if answer.status() != 200 {
                    return;
                }
                let Ok(receipt) = answer.json::<Value>().await else {
                    return;
                };
                let ids = receipt["event_ids"].as_array().cloned().unwrap_or_default();
                acks.lock()
                    .await
                    .extend(ids.iter().filter_map(|id| id.as_str().map(str::to_owned)));
            }
        })
    });
    for poster in posters.collect::<Vec<_>>() {
        poster.await.unwrap();
    }
}

async fn survives_kills_mid_load(database_url: String) {
    let account = mock::start(MockConfig {
        change_interval_ms: 0,
        companies: 10,
        jobs_per_company: 5,
        latency_ms: 20,
        per_minute: u32::MAX / 2,
        per_day: u32::MAX / 2,
        ..MockConfig::on_free_port()
    })
    .await
    .unwrap();
    let jobs = Arc::new(account.uuids(ObjectKind::Job));
    let acks: Arc<Mutex<Vec<String>>> = Arc::default();
    for run in 0..KILLS {
        let (mut node, url) = start_node(&database_url, &account).await;
        let target = (run + 1) * ACKS_PER_RUN;
        post_until(&url, &jobs, &acks, target, run).await;
        // Killed with deliveries and fetches in flight.
        let still_posting = tokio::spawn({
            let (url, jobs, acks) = (url.clone(), jobs.clone(), acks.clone());
            async move { post_until(&url, &jobs, &acks, usize::MAX, run).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        node.start_kill().unwrap();
        node.wait().await.unwrap();
        still_posting.await.unwrap();
    }

    let (_node, _url) = start_node(&database_url, &account).await;
    let store = store::connect(&database_url).await.unwrap();
    let acknowledged = acks.lock().await.clone();
    assert!(acknowledged.len() >= KILLS * ACKS_PER_RUN);
    for id in &acknowledged {
        assert!(
            store.event_record(ACCOUNT, id).await.unwrap().is_some(),
            "acknowledged event {id} was lost"
        );
    }
    let started = Instant::now();
    loop {
        let stats = store.stats(ACCOUNT).await.unwrap();
        let count = |status| stats.by_status.get(&status).copied().unwrap_or(0);
        let open = count(EventStatus::Queued) + count(EventStatus::Processing);
        if open == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{open} events still open 90 s after the restart: {:?}",
            stats.by_status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = store.stats(ACCOUNT).await.unwrap();
    assert_eq!(
        stats.by_status.get(&EventStatus::Failed).copied().unwrap_or(0),
        0,
        "an interrupted attempt is retried, not failed: {:?}",
        stats.by_status
    );
}

#[tokio::test]
async fn sqlite_loses_no_acknowledged_event_to_sigkill_and_recovers_at_once() {
    let data = tempfile::TempDir::new().unwrap();
    survives_kills_mid_load(format!("sqlite://{}", data.path().join("sm8.db").display())).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run `make test-postgres`"]
async fn postgres_loses_no_acknowledged_event_to_sigkill_and_recovers_at_once() {
    survives_kills_mid_load(fresh_postgres_database(&test_database_url()).await).await;
}
