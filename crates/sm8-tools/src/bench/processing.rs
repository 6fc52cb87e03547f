//! Processing: 20,000 events over 2,000 jobs are queued straight into the store while no worker runs, then the
//! server starts with its default worker pool against the simulated account (no added latency, no limits) and the
//! queue is drained. Reported: events finished per second, and API requests per event (coalescing fetches one
//! record for all the queued events of an object).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use app::model::{EventStatus, Stats};
use serde_json::json;
use uuid::Uuid;

use super::harness::{self, Databases};
use super::measure::{per_second, ratio};
use super::report::{Figure, ScenarioReport, Target};
use super::Settings;
use server::store::{self, now_millis, NewEvent, ReceivedBody, Store, DEFAULT_ACCOUNT};
use servicem8_mock::ObjectKind;

pub const EVENTS: usize = 20_000;
/// 400 companies × 5 jobs.
const COMPANIES: usize = 400;
const JOBS_PER_COMPANY: usize = 5;
/// Events per insert transaction while queueing.
const INSERT_BATCH: usize = 500;
const POLL: Duration = Duration::from_millis(100);
/// How often progress is printed while the queue drains.
const PROGRESS: Duration = Duration::from_secs(10);

pub async fn run(settings: &Settings, databases: &Databases, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let account = harness::host_account(harness::unlimited_account(COMPANIES, JOBS_PER_COMPANY)).await?;
    let jobs = account.value.uuids(ObjectKind::Job);
    let database_url = databases.fresh("processing").await?;
    let store = store::connect(&database_url).await?;
    let queued = queue_events(store.as_ref(), &jobs, EVENTS).await?;

    let mut args = harness::serve_args(&database_url);
    harness::fetch_from(&mut args, &account.value);
    let workers = args.processor.workers;
    let requests_before = account.value.request_count();
    let server = harness::host_server(args).await?;
    let drained = drain(store.as_ref(), queued, settings.drain_bound()).await?;
    let requests = account.value.request_count() - requests_before;

    let events_per_second = drained.events_per_second();
    let requests_per_event = ratio(requests as f64, drained.finished as f64);
    println!(
        "  {} of {queued} events finished in {:.1} s by {workers} workers: {events_per_second:.0} events/s, \
         {requests_per_event:.3} API requests per event",
        drained.finished,
        drained.elapsed.as_secs_f64()
    );
    report.push(Figure::against(
        "events processed per second",
        events_per_second,
        "/s",
        Target::AtLeast(if databases.is_postgres() { 10_000.0 } else { 20_000.0 }),
    ));
    report.push(Figure::info("API requests per event", requests_per_event, ""));
    drained.note_unfinished(report, "");
    report.detail(
        "run",
        json!({
            "queued": queued,
            "finished": drained.finished,
            "objects": jobs.len(),
            "workers": workers,
            "seconds": drained.elapsed.as_secs_f64(),
            "api_requests": requests,
            "by_status": drained.by_status,
        }),
    );
    server.stop_noting(report).await;
    account.stop_noting(report).await;
    Ok(())
}

/// Queues `count` verified updates of `jobs` (each job in turn), due now, straight into the store; returns how
/// many events the account then holds.
pub async fn queue_events(store: &dyn Store, jobs: &[String], count: usize) -> anyhow::Result<i64> {
    let now = now_millis();
    let events: Vec<NewEvent> = (0..count)
        .map(|n| queued_event(&jobs[n % jobs.len()], n, now))
        .collect();
    for batch in events.chunks(INSERT_BATCH) {
        store.insert_events(batch).await?;
    }
    Ok(store.stats(DEFAULT_ACCOUNT).await?.total)
}

/// How far a drain got.
pub struct Drained {
    pub queued: i64,
    pub finished: i64,
    pub elapsed: Duration,
    /// The account's events by status when the drain ended.
    pub by_status: BTreeMap<&'static str, i64>,
}

impl Drained {
    pub fn events_per_second(&self) -> f64 {
        per_second(self.finished.max(0) as u64, self.elapsed)
    }

    /// Adds a figure for the events the drain's bound left unfinished, if any; `label` tells drains apart.
    pub fn note_unfinished(&self, report: &mut ScenarioReport, label: &str) {
        if self.finished < self.queued {
            report.push(Figure::info(
                format!("events left unfinished at the time bound{label}"),
                (self.queued - self.finished) as f64,
                "",
            ));
        }
    }
}

/// Waits, from now, until the account's `queued` events are all finished or `bound` has passed.
pub async fn drain(store: &dyn Store, queued: i64, bound: Duration) -> anyhow::Result<Drained> {
    let started = Instant::now();
    let deadline = started + bound;
    let mut finished = 0;
    let mut stats = store.stats(DEFAULT_ACCOUNT).await?;
    let mut next_progress = started + PROGRESS;
    while Instant::now() < deadline {
        stats = store.stats(DEFAULT_ACCOUNT).await?;
        finished = stats.total - waiting(&stats);
        if finished >= queued {
            break;
        }
        if Instant::now() >= next_progress {
            println!(
                "  {finished} of {queued} finished after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            next_progress += PROGRESS;
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(Drained {
        queued,
        finished,
        elapsed: started.elapsed(),
        by_status: stats
            .by_status
            .iter()
            .map(|(status, n)| (status.as_str(), *n))
            .collect(),
    })
}

/// The account's events not finished yet: queued or being processed.
pub fn waiting(stats: &Stats) -> i64 {
    stats
        .by_status
        .iter()
        .filter(|(status, _)| matches!(status, EventStatus::Queued | EventStatus::Processing))
        .map(|(_, n)| n)
        .sum()
}

/// A verified seed-format update of `job_uuid`, queued and due now.
fn queued_event(job_uuid: &str, n: usize, now: i64) -> NewEvent {
    let changes = json!({"status": "Work Order", "bench_seq": n});
    let body = json!({
        "object_type": "job",
        "object_uuid": job_uuid,
        "event_type": "updated",
        "timestamp": "2026-01-01T00:00:00Z",
        "changes": changes,
    });
    NewEvent {
        id: Uuid::now_v7(),
        account: DEFAULT_ACCOUNT.into(),
        dedup_key: format!("bench:{n}"),
        format: "seed".into(),
        object_type: "job".into(),
        object_uuid: job_uuid.to_owned(),
        event_type: "updated".into(),
        occurred_at: Some(now + n as i64),
        changes,
        body: ReceivedBody::new(
            body.to_string().into_bytes(),
            json!({"content-type": "application/json"}),
            now,
        ),
        verification: "hmac-sha256".into(),
        received_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_events_are_unique_and_in_change_order() {
        let (first, second) = (queued_event("job-1", 0, 1_000), queued_event("job-1", 1, 1_000));
        assert_ne!(first.dedup_key, second.dedup_key);
        assert!(first.occurred_at < second.occurred_at);
        let body: serde_json::Value = serde_json::from_slice(&first.body.raw_body).unwrap();
        assert_eq!(body["object_uuid"], "job-1");
    }
}
