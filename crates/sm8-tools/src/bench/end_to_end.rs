//! End to end: a signed webhook is posted, stored, processed against the simulated account (no added latency),
//! mirrored, and its `webhook_update` broadcast reaches a websocket subscriber of `realtime:jobs`. Latency runs
//! from the time each post was due (open loop at 500 events/s) to the time its broadcast arrived.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::harness::{self, Databases};
use super::ingest::CONNECTIONS;
use super::load::{self, Delivery, LoadPlan, Pace};
use super::measure::Latencies;
use super::report::{Figure, ScenarioReport, Target};
use super::subscriber::Subscriber;
use super::Settings;
use app::realtime::wire::RECORD_EVENT;
use servicem8_mock::ObjectKind;

const RATE: f64 = 500.0;
/// Jobs in the simulated account; at 500 events/s each is updated about once a second.
const COMPANIES: usize = 100;
const JOBS_PER_COMPANY: usize = 5;
/// How long broadcasts may trail the last post before the missing ones count as lost.
const DRAIN: Duration = Duration::from_secs(10);
const MEASURED_STEP: &str = "end-to-end";

/// Broadcasts received: (bench_seq, when).
type Arrivals = Arc<Mutex<Vec<(u64, Instant)>>>;

pub async fn run(settings: &Settings, databases: &Databases, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let account = harness::host_account(harness::unlimited_account(COMPANIES, JOBS_PER_COMPANY)).await?;
    let jobs: Arc<Vec<String>> = Arc::new(account.value.uuids(ObjectKind::Job));
    let mut args = harness::serve_args(&databases.fresh("end-to-end").await?);
    harness::fetch_from(&mut args, &account.value);
    let server = harness::host_server(args).await?;
    // PostgreSQL's path runs through LISTEN/NOTIFY.
    let p99_target = if databases.is_postgres() { 20.0 } else { 5.0 };
    let result = measure(settings, server.value, jobs, &account.value, p99_target, report).await;
    server.stop_noting(report).await;
    account.stop_noting(report).await;
    result
}

async fn measure(
    settings: &Settings,
    address: std::net::SocketAddr,
    jobs: Arc<Vec<String>>,
    account: &servicem8_mock::MockHandle,
    p99_target: f64,
    report: &mut ScenarioReport,
) -> anyhow::Result<()> {
    let subscriber = Subscriber::join(address, "realtime:jobs", &harness::admin_access_token()?).await?;
    let arrivals: Arrivals = Arc::default();
    let stop = CancellationToken::new();
    let listening = tokio::spawn({
        let (arrivals, stop) = (arrivals.clone(), stop.clone());
        subscriber.listen(stop, move |event, payload| {
            let changes = &payload["changes"];
            if event == RECORD_EVENT && changes["bench_step"] == MEASURED_STEP {
                if let Some(seq) = changes["bench_seq"].as_u64() {
                    arrivals
                        .lock()
                        .expect("arrivals are intact")
                        .push((seq, Instant::now()));
                }
            }
        })
    });
    let plan = |duration| LoadPlan {
        target: address,
        path: "/api/webhooks/sm8".into(),
        connections: CONNECTIONS,
        pace: Pace::Fixed { rate: RATE },
        duration,
    };
    // Warm-up: connections to the account and the database are opened, caches filled.
    load::run(&plan(Duration::from_secs(1)), deliveries(&jobs, "warm-up")).await?;
    let requests_before = account.request_count();
    let posted = load::run(&plan(settings.step()), deliveries(&jobs, MEASURED_STEP)).await?;
    let deadline = Instant::now() + DRAIN;
    while (arrivals.lock().expect("arrivals are intact").len() as u64) < posted.ok && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    listening.await?;

    let schedule = posted.schedule.expect("a fixed-rate run has a schedule");
    let mut latencies = Latencies::default();
    let arrivals = arrivals.lock().expect("arrivals are intact");
    for &(seq, at) in arrivals.iter() {
        latencies.record(at.saturating_duration_since(schedule.at(seq)));
    }
    let summary = latencies.summary();
    println!(
        "  {} posted at {RATE}/s, {} broadcasts received: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        posted.ok,
        arrivals.len(),
        summary.p50_ms,
        summary.p95_ms,
        summary.p99_ms
    );
    report.push(Figure::info("webhook to broadcast p50", summary.p50_ms, "ms"));
    report.push(Figure::info("webhook to broadcast p95", summary.p95_ms, "ms"));
    report.push(Figure::against(
        "webhook to broadcast p99",
        summary.p99_ms,
        "ms",
        Target::Below(p99_target),
    ));
    report.push(Figure::info(
        "broadcasts received of posted",
        arrivals.len() as f64 / posted.ok.max(1) as f64,
        "",
    ));
    report.detail(
        "run",
        json!({
            "rate": RATE,
            "jobs": jobs.len(),
            "posted_ok": posted.ok,
            "posted_failed": posted.failed,
            "posted_overdue": posted.overdue,
            "first_failure": posted.first_failure,
            "broadcasts_received": arrivals.len(),
            "api_requests": account.request_count() - requests_before,
            "ack_latency": posted.latency.summary(),
            "webhook_to_broadcast": summary,
        }),
    );
    Ok(())
}

/// Unique signed updates of the account's `jobs`, each in turn.
pub fn deliveries(jobs: &Arc<Vec<String>>, step: &'static str) -> load::MakeDelivery {
    let jobs = jobs.clone();
    Arc::new(move |seq| {
        let job = &jobs[(seq % jobs.len() as u64) as usize];
        Delivery::seed_job_update(harness::WEBHOOK_SECRET, job, step, seq)
    })
}
