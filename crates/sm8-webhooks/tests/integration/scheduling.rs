//! When workers look at the queue: a retry is attempted when it falls due, not at the next idle poll.

use std::sync::Arc;
use std::time::Duration;

use server::processor::{Processor, ProcessorArgs};
use server::secret::Secret;
use server::servicem8::client::ServiceM8Args;
use server::store::{self, now_millis, AttemptTiming, Completion, Store};
use servicem8_mock::{self as mock, MockConfig, ObjectKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::common::{claim, queued_event, TEST_NODE};

/// Longer than the test may take: a worker that waited for its next poll would fail it.
const POLL_MS: u64 = 30_000;

#[tokio::test]
async fn a_retry_is_attempted_when_it_falls_due_not_at_the_next_poll() {
    let account = mock::start(MockConfig {
        change_interval_ms: 0,
        companies: 1,
        jobs_per_company: 1,
        ..MockConfig::on_free_port()
    })
    .await
    .unwrap();
    let job = account.uuids(ObjectKind::Job)[0].clone();
    let store = store::connect("sqlite::memory:").await.unwrap();
    let now = now_millis();
    store.insert_events(&[queued_event("job", &job, now)]).await.unwrap();
    // The first attempt failed; the retry falls due in 300 ms.
    let claimed = claim(store.as_ref(), now, now + 60_000, 1).await;
    let due = now_millis() + 300;
    let retry = Completion::Retry {
        next_attempt_at: due,
        error: "503".into(),
    };
    let timing = AttemptTiming {
        started_at: now,
        finished_at: now_millis(),
        http_status: Some(503),
    };
    store.finish_events(&claimed, &retry, &timing).await.unwrap();

    let processor = idle_processor(&store, &account).await;
    let shutdown = CancellationToken::new();
    let mut workers = processor.spawn(shutdown.clone()).await;
    let id = claimed[0].id.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(POLL_MS / 2);
    let attempts = loop {
        let attempts = store.event_attempts(&id).await.unwrap();
        if attempts.len() == 2 {
            break attempts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retry waited for the idle poll"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    shutdown.cancel();
    while workers.join_next().await.is_some() {}
    assert_eq!(attempts[1].outcome, "success");
    let late = attempts[1].started_at - due;
    assert!((0..5_000).contains(&late), "attempted {late} ms after it fell due");
}

#[tokio::test]
async fn the_next_due_time_skips_what_is_already_due() {
    let store = store::connect("sqlite::memory:").await.unwrap();
    assert_eq!(store.next_due_after(0).await.unwrap(), None);
    let now = now_millis();
    let events: Vec<_> = [now - 10, now + 500, now + 900]
        .into_iter()
        .enumerate()
        .map(|(n, at)| queued_event("job", &format!("job-{n}"), at))
        .collect();
    store.insert_events(&events).await.unwrap();
    assert_eq!(store.next_due_after(now).await.unwrap(), Some(now + 500));
    assert_eq!(store.next_due_after(now + 500).await.unwrap(), Some(now + 900));
    assert_eq!(store.next_due_after(now + 900).await.unwrap(), None);
}

/// One worker that polls only every `POLL_MS` when idle.
async fn idle_processor(store: &Arc<dyn Store>, account: &mock::MockHandle) -> Arc<Processor> {
    let args = ServiceM8Args {
        servicem8_api_key: Some(Secret::new(account.api_key())),
        servicem8_base_url: account.base_url(),
        ..ServiceM8Args::default()
    };
    let accounts = crate::common::accounts_with(store.clone(), &args).await;
    let processor_args = ProcessorArgs {
        workers: 1,
        poll_interval_ms: POLL_MS,
        sync_interval_seconds: 0,
        retention_days: 0,
        ..ProcessorArgs::default()
    };
    Processor::new(
        store.clone(),
        accounts,
        server::updates::channel(),
        processor_args,
        Arc::new(Notify::new()),
        TEST_NODE.to_owned(),
        None,
    )
}
