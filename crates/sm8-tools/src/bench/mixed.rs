//! Mixed: the shipped configuration under closed-loop load. The server runs with its default workers, fetching
//! every event's job from the simulated account (no added latency, no limits), while 64 keep-alive connections
//! each post their next unique signed update of one of the account's jobs as soon as the last is answered. Before
//! that, in the same run and on a database of its own, the same load against the server with workers off gives
//! the baseline: how much of the receiver's throughput processing alongside it leaves.
//!
//! Over the measured step, events processed (finished: succeeded, skipped or failed) are counted through the store,
//! and with workers on the queue depth (events queued or being processed) is read every 100 ms. Those readings
//! count every event of the account, so they cost more as events pile up: with workers off, where they would have
//! nothing to tell, they are not taken (they would load that point, the baseline, more than the other); their time
//! is in the JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::model::{EventStatus, Stats};
use serde_json::json;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::end_to_end;
use super::harness::{self, Databases};
use super::load::{self, LoadPlan, LoadReport};
use super::measure::{per_second, ratio};
use super::processing;
use super::report::{Figure, ScenarioReport, Target};
use super::Settings;
use server::store::{self, Store, DEFAULT_ACCOUNT};
use servicem8_mock::{MockHandle, ObjectKind};

const CONNECTIONS: usize = 64;
/// 400 companies × 5 jobs, as in processing.
const COMPANIES: usize = 400;
const JOBS_PER_COMPANY: usize = 5;
const WARM_UP: Duration = Duration::from_secs(1);
const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workers {
    Off,
    /// The server's default pool, as shipped.
    On,
}

impl Workers {
    fn name(self) -> &'static str {
        match self {
            Workers::Off => "workers off",
            Workers::On => "workers on",
        }
    }
}

/// The account's events at one reading: how many have finished and how many wait.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Progress {
    finished: i64,
    waiting: i64,
}

impl Progress {
    fn of(stats: &Stats) -> Progress {
        let waiting = processing::waiting(stats);
        Progress {
            finished: stats.total - waiting,
            waiting,
        }
    }

    async fn read(store: &dyn Store) -> anyhow::Result<Progress> {
        Ok(Progress::of(&store.stats(DEFAULT_ACCOUNT).await?))
    }
}

/// One point: the load generator's step, and the store read at its start, every 100 ms and at its end.
struct Point {
    workers: Workers,
    /// Worker tasks the server ran.
    worker_count: usize,
    load: LoadReport,
    start: Progress,
    end: Progress,
    /// From the reading at the start to the reading at the end.
    elapsed: Duration,
    /// Queue depths read while the step ran, with workers on.
    depths: Vec<i64>,
    /// Time spent in those readings: the measuring's own load on the machine.
    reading: Duration,
    failed_events: i64,
}

impl Point {
    fn processed_per_second(&self) -> f64 {
        per_second((self.end.finished - self.start.finished).max(0) as u64, self.elapsed)
    }

    /// The deepest the queue was, at a reading in the step or at its end.
    fn max_depth(&self) -> i64 {
        self.depths.iter().copied().chain([self.end.waiting]).max().unwrap_or(0)
    }
}

pub async fn run(settings: &Settings, databases: &Databases, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let account = harness::host_account(harness::unlimited_account(COMPANIES, JOBS_PER_COMPANY)).await?;
    let jobs = Arc::new(account.value.uuids(ObjectKind::Job));
    let points = async {
        let off = measure(Workers::Off, &account.value, &jobs, settings, databases, report).await?;
        let on = measure(Workers::On, &account.value, &jobs, settings, databases, report).await?;
        anyhow::Ok((off, on))
    }
    .await;
    account.stop_noting(report).await;
    let (off, on) = points?;

    let (stored_on, stored_off) = (on.load.ok_per_second(), off.load.ok_per_second());
    let latency = on.load.latency.summary();
    report.push(Figure::info("stored per second, workers on", stored_on, "/s"));
    report.push(Figure::info("stored per second, workers off", stored_off, "/s"));
    report.push(Figure::against(
        "ratio stored/s workers on to off",
        ratio(stored_on, stored_off),
        "",
        Target::AtLeast(0.8),
    ));
    report.push(Figure::info(
        "processed per second, workers on",
        on.processed_per_second(),
        "/s",
    ));
    report.push(Figure::info("queue depth at most", on.max_depth() as f64, ""));
    report.push(Figure::info("queue depth at the end", on.end.waiting as f64, ""));
    report.push(Figure::info("p99, workers on", latency.p99_ms, "ms"));
    if on.failed_events > 0 {
        report.push(Figure::info("events failed", on.failed_events as f64, ""));
    }
    let failed = on.load.failed + off.load.failed;
    if failed > 0 {
        report.push(Figure::info("answers other than 2xx", failed as f64, ""));
    }
    report.detail("connections", CONNECTIONS);
    report.detail("jobs", jobs.len());
    for point in [&off, &on] {
        report.detail(
            match point.workers {
                Workers::Off => "workers_off",
                Workers::On => "workers_on",
            },
            json!({
                "workers": point.worker_count,
                "sent": point.load.sent,
                "ok": point.load.ok,
                "failed": point.load.failed,
                "first_failure": point.load.first_failure,
                "ok_per_second": point.load.ok_per_second(),
                "latency": point.load.latency.summary(),
                "seconds_between_readings": point.elapsed.as_secs_f64(),
                "finished_at_start": point.start.finished,
                "finished_at_end": point.end.finished,
                "waiting_at_start": point.start.waiting,
                "waiting_at_end": point.end.waiting,
                "depth_readings": point.depths.len(),
                "depth_reading_seconds": point.reading.as_secs_f64(),
                "max_depth": point.max_depth(),
                "failed_events": point.failed_events,
            }),
        );
    }
    Ok(())
}

/// Starts a server with `workers` on a fresh database, warms it up, then measures one closed-loop step.
async fn measure(
    workers: Workers,
    account: &MockHandle,
    jobs: &Arc<Vec<String>>,
    settings: &Settings,
    databases: &Databases,
    report: &mut ScenarioReport,
) -> anyhow::Result<Point> {
    let database_url = databases.fresh("mixed").await?;
    let mut args = harness::serve_args(&database_url);
    harness::fetch_from(&mut args, account);
    if workers == Workers::Off {
        args.processor.workers = 0;
    }
    let worker_count = args.processor.workers;
    let server = harness::host_server(args).await?;
    let point = async {
        // Opened after the server, whose start has run the migrations.
        let store = store::connect(&database_url).await?;
        let plan = |duration| LoadPlan::closed_loop(server.value, CONNECTIONS, duration);
        load::run(&plan(WARM_UP), end_to_end::deliveries(jobs, "mixed-warm-up")).await?;
        // Both readings are timed from when they are asked for, so that the time between them is the step's.
        let started = Instant::now();
        let start = Progress::read(store.as_ref()).await?;
        let stop = CancellationToken::new();
        let sampling = (workers == Workers::On).then(|| tokio::spawn(read_depths(store.clone(), stop.clone())));
        let step = if workers == Workers::Off {
            "mixed-off"
        } else {
            "mixed-on"
        };
        let load = load::run(&plan(settings.step()), end_to_end::deliveries(jobs, step)).await;
        stop.cancel();
        let (depths, reading) = match sampling {
            Some(task) => task.await??,
            None => (Vec::new(), Duration::ZERO),
        };
        let load = load?;
        let elapsed = started.elapsed();
        let stats = store.stats(DEFAULT_ACCOUNT).await?;
        anyhow::Ok(Point {
            workers,
            worker_count,
            load,
            start,
            end: Progress::of(&stats),
            elapsed,
            depths,
            reading,
            failed_events: stats.by_status.get(&EventStatus::Failed).copied().unwrap_or(0),
        })
    }
    .await;
    server.stop_noting(report).await;
    let point = point?;
    println!(
        "  {:<11} ({worker_count} workers): {:.0}/s stored, p99 {:.2} ms, {:.0}/s processed, queue at most {} and \
         {} at the end ({} readings taking {:.2} s), {} failed",
        workers.name(),
        point.load.ok_per_second(),
        point.load.latency.summary().p99_ms,
        point.processed_per_second(),
        point.max_depth(),
        point.end.waiting,
        point.depths.len(),
        point.reading.as_secs_f64(),
        point.load.failed,
    );
    Ok(point)
}

/// Reads the queue depth every `SAMPLE_INTERVAL` until stopped; returns the depths and the time the readings
/// took. A reading that takes longer than the interval delays the next rather than bunching them up.
async fn read_depths(store: Arc<dyn Store>, stop: CancellationToken) -> anyhow::Result<(Vec<i64>, Duration)> {
    let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut depths, mut reading) = (Vec::new(), Duration::ZERO);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok((depths, reading)),
            _ = interval.tick() => {
                let began = Instant::now();
                depths.push(Progress::read(store.as_ref()).await?.waiting);
                reading += began.elapsed();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn queued_and_processing_events_wait_and_the_others_are_finished() {
        let stats = Stats {
            total: 100,
            by_status: BTreeMap::from([
                (EventStatus::Queued, 30),
                (EventStatus::Processing, 4),
                (EventStatus::Success, 60),
                (EventStatus::Skipped, 5),
                (EventStatus::Failed, 1),
            ]),
            by_object_type: BTreeMap::new(),
            last_received_at: None,
            notice: None,
        };
        assert_eq!(
            Progress::of(&stats),
            Progress {
                finished: 66,
                waiting: 34
            }
        );
    }
}
