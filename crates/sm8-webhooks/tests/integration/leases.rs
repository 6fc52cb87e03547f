//! Leases under a slow ServiceM8 and interrupted workers: a lease is renewed while its worker waits, a claim never
//! goes past the allowed attempts, and a node will not start with a lease shorter than one API request.

use std::sync::Arc;

use server::processor::{Processor, ProcessorArgs, Step};
use server::secret::Secret;
use server::servicem8::client::ServiceM8Args;
use server::startup::Server;
use server::store::{self, now_millis, Store};
use server::updates::{self, PipelineUpdate};
use servicem8_mock::{self as mock, MockConfig, MockHandle, ObjectKind};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::common::ACCOUNT;
use crate::common::{claim, queued_event, release_expired, serve_args, spawn_with, TEST_NODE};

/// Short, so that a lease would run out many times over during one slow request.
const LEASE_MS: i64 = 300;
/// For the renewal test: a renewal (every third of it) would have to stall for two thirds of a lease, 800 ms, for
/// another claim to find the lease expired.
const RENEWED_LEASE_MS: i64 = 1_200;

async fn slow_account(latency_ms: u64) -> MockHandle {
    mock::start(MockConfig {
        change_interval_ms: 0,
        companies: 1,
        jobs_per_company: 2,
        latency_ms,
        ..MockConfig::on_free_port()
    })
    .await
    .unwrap()
}

/// A processor with a lease of `lease_ms` fetching from `account`, and what it announces.
async fn processor(
    store: &Arc<dyn Store>,
    account: &MockHandle,
    lease_ms: i64,
) -> (Arc<Processor>, tokio::sync::broadcast::Receiver<PipelineUpdate>) {
    let args = ServiceM8Args {
        servicem8_api_key: Some(Secret::new(account.api_key())),
        servicem8_base_url: account.base_url(),
        servicem8_timeout_ms: 5_000,
        ..ServiceM8Args::default()
    };
    let accounts = crate::common::accounts_with(store.clone(), &args).await;
    let updates = updates::channel();
    let announced = updates.subscribe();
    let processor_args = ProcessorArgs {
        workers: 1,
        lease_ms,
        max_retries: 3,
        ..ProcessorArgs::default()
    };
    let processor = Processor::new(
        store.clone(),
        accounts,
        updates,
        processor_args,
        Arc::new(Notify::new()),
        TEST_NODE.to_owned(),
        None,
    );
    (processor, announced)
}

/// Runs one step of `processor` in the background, returning once it has claimed event `id`.
async fn start_working(processor: &Arc<Processor>, store: &Arc<dyn Store>, id: &str) -> JoinHandle<Step> {
    let working = tokio::spawn({
        let processor = processor.clone();
        async move { processor.step().await.unwrap() }
    });
    while store.event_record(ACCOUNT, id).await.unwrap().unwrap().status != "processing" {
        tokio::task::yield_now().await;
    }
    working
}

#[tokio::test]
async fn a_lease_is_renewed_while_the_worker_waits_so_nobody_claims_its_events_again() {
    // Each request takes two and a half leases' time.
    let account = slow_account(5 * RENEWED_LEASE_MS as u64 / 2).await;
    let job = account.uuids(ObjectKind::Job)[0].clone();
    let store = store::connect("sqlite::memory:").await.unwrap();
    store
        .insert_events(&[queued_event("job", &job, now_millis())])
        .await
        .unwrap();
    let (processor, _announced) = processor(&store, &account, RENEWED_LEASE_MS).await;
    let id = store.list_events(ACCOUNT, &Default::default()).await.unwrap().events[0]
        .id
        .clone();

    let working = start_working(&processor, &store, &id).await;
    // Another worker keeps trying to claim while the first waits for ServiceM8.
    let mut stolen = 0;
    while !working.is_finished() {
        let now = now_millis();
        // As another node does: release whatever claims ran out, then claim what is due.
        stolen += release_expired(store.as_ref(), now, 4).await as usize;
        stolen += claim(store.as_ref(), now, now + RENEWED_LEASE_MS, 8).await.len();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(working.await.unwrap(), Step::Processed);

    assert_eq!(stolen, 0, "the renewed lease kept the event from a second claim");
    let events = store.list_events(ACCOUNT, &Default::default()).await.unwrap().events;
    assert_eq!(events.len(), 1);
    let record = store.event_record(ACCOUNT, &events[0].id).await.unwrap().unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("success", 1));
    assert_eq!(account.request_count(), 1, "fetched once");
}

#[tokio::test]
async fn a_worker_whose_events_were_claimed_again_writes_and_announces_nothing() {
    let account = slow_account(4 * LEASE_MS as u64).await;
    let job = account.uuids(ObjectKind::Job)[0].clone();
    let store = store::connect("sqlite::memory:").await.unwrap();
    store
        .insert_events(&[queued_event("job", &job, now_millis())])
        .await
        .unwrap();
    let (processor, mut announced) = processor(&store, &account, LEASE_MS).await;
    let id = store.list_events(ACCOUNT, &Default::default()).await.unwrap().events[0]
        .id
        .clone();

    let working = start_working(&processor, &store, &id).await;
    // While the worker waits for ServiceM8, a node whose clock runs far ahead sees the lease as expired and
    // claims the event: the worker's next heartbeat finds its lease gone.
    let ahead = now_millis() + 100 * LEASE_MS;
    assert_eq!(release_expired(store.as_ref(), ahead, 4).await, 1);
    assert_eq!(claim(store.as_ref(), ahead, ahead + 60_000, 8).await.len(), 1);
    assert_eq!(working.await.unwrap(), Step::Processed);

    assert!(
        store.mirror_record(ACCOUNT, "job", &job).await.unwrap().is_none(),
        "no mirror write"
    );
    let record = store.event_record(ACCOUNT, &id).await.unwrap().unwrap();
    assert_eq!(
        (record.status.as_str(), record.attempts),
        ("processing", 2),
        "the other claim stands"
    );
    let timeline: Vec<_> = store
        .event_attempts(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(
        timeline,
        ["interrupted"],
        "only the release's record of the lost attempt"
    );
    let mut stages = Vec::new();
    while let Ok(update) = announced.try_recv() {
        match update {
            PipelineUpdate::Lifecycle(update) => stages.push(update.stage),
            PipelineUpdate::Record(_) => panic!("a record update was announced"),
            // Alerts and deliveries are not the lease's to announce.
            PipelineUpdate::Alert(_) | PipelineUpdate::Delivery(_) => {}
        }
    }
    assert_eq!(
        stages,
        [updates::PipelineStage::Processing],
        "only the start of the attempt"
    );
}

#[tokio::test]
async fn a_node_restarted_after_a_crash_takes_up_its_own_claims_at_once() {
    let account = slow_account(0).await;
    let job = account.uuids(ObjectKind::Job)[0].clone();
    let data = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}", data.path().join("sm8.db").display());
    let id = {
        // The node died mid-fetch: its claim holds the event for another minute.
        let store = store::connect(&url).await.unwrap();
        let now = now_millis();
        store.insert_events(&[queued_event("job", &job, now)]).await.unwrap();
        let claimed = store
            .claim_due_objects(&server::store::Claim {
                now,
                lease_until: now + 60_000,
                objects: 1,
                node: "node-a",
            })
            .await
            .unwrap();
        claimed[0].id.clone()
    };
    let mut args = serve_args(&url);
    args.processor.node_id = Some("node-a".into());
    args.processor.poll_interval_ms = 20;
    args.servicem8.servicem8_api_key = Some(Secret::new(account.api_key()));
    args.servicem8.servicem8_base_url = account.base_url();
    let started = std::time::Instant::now();
    let app = spawn_with(args, data).await;
    let store = store::connect(&app.database_url).await.unwrap();
    loop {
        let record = store.event_record(ACCOUNT, &id).await.unwrap().unwrap();
        if record.status == "success" {
            break;
        }
        assert!(started.elapsed().as_secs() < 30, "still {} after 30 s", record.status);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let timeline: Vec<(i32, String)> = store
        .event_attempts(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|attempt| (attempt.attempt, attempt.outcome))
        .collect();
    assert_eq!(timeline, [(1, "interrupted".to_owned()), (2, "success".to_owned())]);
}

#[tokio::test]
async fn a_node_refuses_to_start_with_a_lease_shorter_than_an_api_request() {
    let mut args = serve_args("sqlite::memory:");
    args.processor.lease_ms = 2_000;
    args.servicem8.servicem8_timeout_ms = 3_000;
    let refused = Server::build(&args)
        .await
        .err()
        .expect("the node does not start")
        .to_string();
    assert!(
        refused.contains("LEASE_MS (2000 ms) is shorter than SERVICEM8_TIMEOUT_MS (3000 ms)"),
        "{refused}"
    );
}
