//! Leases under a slow ServiceM8 and interrupted workers: a lease is renewed while its worker waits, a claim never
//! goes past the allowed attempts, and a node will not start with a lease shorter than one API request.

use std::sync::Arc;

use serde_json::json;
use server::config::Secret;
use server::processor::{Processor, ProcessorArgs, Step};
use server::servicem8::client::{ServiceM8Args, ServiceM8Client};
use server::servicem8::mock::{self, MockConfig, MockHandle, ObjectKind};
use server::startup::Server;
use server::store::{self, now_millis, NewEvent, Store};
use server::updates::{self, PipelineUpdate};
use tokio::sync::Notify;

use crate::common::serve_args;

const LEASE_MS: i64 = 300;

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

/// An update of `job` received at `now` (unix ms), due at once.
fn job_update(job: &str, now: i64) -> NewEvent {
    NewEvent {
        id: uuid::Uuid::now_v7(),
        dedup_key: format!("lease:{job}:{}", uuid::Uuid::now_v7()),
        format: "seed".into(),
        object_type: "job".into(),
        object_uuid: job.into(),
        event_type: "updated".into(),
        occurred_at: Some(now),
        changes: json!({}),
        raw_body: b"{}".to_vec(),
        headers: json!({}),
        verification: "unsigned".into(),
        received_at: now,
    }
}

/// A processor with a lease of `LEASE_MS` fetching from `account`, and what it announces.
fn processor(
    store: &Arc<dyn Store>,
    account: &MockHandle,
) -> (Arc<Processor>, tokio::sync::broadcast::Receiver<PipelineUpdate>) {
    let args = ServiceM8Args {
        servicem8_api_key: Some(Secret::new(account.api_key())),
        servicem8_base_url: account.base_url(),
        servicem8_timeout_ms: 5_000,
        ..ServiceM8Args::default()
    };
    let client = ServiceM8Client::from_args(&args, store.clone()).unwrap().map(Arc::new);
    let updates = updates::channel();
    let announced = updates.subscribe();
    let processor_args = ProcessorArgs {
        workers: 1,
        lease_ms: LEASE_MS,
        max_retries: 3,
        ..ProcessorArgs::default()
    };
    let processor = Processor::new(store.clone(), client, updates, processor_args, Arc::new(Notify::new()));
    (processor, announced)
}

#[tokio::test]
async fn a_lease_is_renewed_while_the_worker_waits_so_nobody_claims_its_events_again() {
    // Each request takes four leases' time.
    let account = slow_account(4 * LEASE_MS as u64).await;
    let job = account.uuids(ObjectKind::Job)[0].clone();
    let store = store::connect("sqlite::memory:").await.unwrap();
    store.insert_events(&[job_update(&job, now_millis())]).await.unwrap();
    let (processor, _announced) = processor(&store, &account);
    let id = store.list_events(&Default::default()).await.unwrap().events[0]
        .id
        .clone();

    let working = tokio::spawn({
        let processor = processor.clone();
        async move { processor.step().await.unwrap() }
    });
    while store.event_record(&id).await.unwrap().unwrap().status != "processing" {
        tokio::task::yield_now().await;
    }
    // Another worker keeps trying to claim while the first waits for ServiceM8.
    let mut stolen = 0;
    while !working.is_finished() {
        let now = now_millis();
        stolen += store.claim_due_objects(now, now + LEASE_MS, 8).await.unwrap().len();
        tokio::time::sleep(std::time::Duration::from_millis(LEASE_MS as u64 / 3)).await;
    }
    assert_eq!(working.await.unwrap(), Step::Processed);

    assert_eq!(stolen, 0, "the renewed lease kept the event from a second claim");
    let events = store.list_events(&Default::default()).await.unwrap().events;
    assert_eq!(events.len(), 1);
    let record = store.event_record(&events[0].id).await.unwrap().unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("success", 1));
    assert_eq!(account.request_count(), 1, "fetched once");
}

#[tokio::test]
async fn a_worker_whose_events_were_claimed_again_writes_and_announces_nothing() {
    let account = slow_account(4 * LEASE_MS as u64).await;
    let job = account.uuids(ObjectKind::Job)[0].clone();
    let store = store::connect("sqlite::memory:").await.unwrap();
    store.insert_events(&[job_update(&job, now_millis())]).await.unwrap();
    let (processor, mut announced) = processor(&store, &account);
    let id = store.list_events(&Default::default()).await.unwrap().events[0]
        .id
        .clone();

    let working = tokio::spawn({
        let processor = processor.clone();
        async move { processor.step().await.unwrap() }
    });
    while store.event_record(&id).await.unwrap().unwrap().status != "processing" {
        tokio::task::yield_now().await;
    }
    // While the worker waits for ServiceM8, a node whose clock runs far ahead sees the lease as expired and
    // claims the event: the worker's next heartbeat finds its lease gone.
    let ahead = now_millis() + 100 * LEASE_MS;
    assert_eq!(
        store.claim_due_objects(ahead, ahead + 60_000, 8).await.unwrap().len(),
        1
    );
    assert_eq!(working.await.unwrap(), Step::Processed);

    assert!(
        store.mirror_record("job", &job).await.unwrap().is_none(),
        "no mirror write"
    );
    let record = store.event_record(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.status.as_str(), record.attempts),
        ("processing", 2),
        "the other claim stands"
    );
    assert!(
        store.event_attempts(&id).await.unwrap().is_empty(),
        "no attempt recorded"
    );
    let mut stages = Vec::new();
    while let Ok(update) = announced.try_recv() {
        match update {
            PipelineUpdate::Lifecycle(update) => stages.push(update.stage),
            PipelineUpdate::Record(_) => panic!("a record update was announced"),
        }
    }
    assert_eq!(stages, [updates::Stage::Processing], "only the start of the attempt");
}

#[tokio::test]
async fn an_event_whose_last_attempt_was_interrupted_fails_without_another_attempt() {
    let account = slow_account(0).await;
    let job = account.uuids(ObjectKind::Job)[0].clone();
    let store = store::connect("sqlite::memory:").await.unwrap();
    let long_ago = now_millis() - 60_000;
    store.insert_events(&[job_update(&job, long_ago)]).await.unwrap();
    // Four claims (MAX_RETRIES 3 + 1), each by a worker that died: every lease ran out.
    for claim in 0..4 {
        let at = long_ago + claim * 1_000;
        assert_eq!(store.claim_due_objects(at, at + 1, 8).await.unwrap().len(), 1);
    }
    let (processor, mut announced) = processor(&store, &account);
    assert_eq!(processor.step().await.unwrap(), Step::Processed);

    let id = store.list_events(&Default::default()).await.unwrap().events[0]
        .id
        .clone();
    let record = store.event_record(&id).await.unwrap().unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("failed", 4));
    let reason = record.last_error.unwrap_or_default();
    assert!(reason.contains("gave up after 4 attempts"), "{reason}");
    let attempts = store.event_attempts(&id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!((attempts[0].attempt, attempts[0].outcome.as_str()), (4, "interrupted"));
    assert_eq!(account.request_count(), 0, "nothing fetched for it");
    let mut stages = Vec::new();
    while let Ok(PipelineUpdate::Lifecycle(update)) = announced.try_recv() {
        stages.push(update.stage);
    }
    assert_eq!(stages, [updates::Stage::Failed]);
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
