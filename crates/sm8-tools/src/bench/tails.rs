//! Tails: the receiver's latency tail and CPU cost under closed-loop load. The receiver runs receive-only
//! (`WORKERS=0`, as in ingest) and every keep-alive connection posts its next unique signed webhook as soon as the
//! last is answered, at 16 and then 64 connections, each for one step after a 1 s warm-up; then the bare axum
//! handler of ingest the same way at 64 connections, for comparison.
//!
//! Server CPU is read from `/proc/self/task` just before and just after each measured step, summing utime and
//! stime of the threads the hosted server owns: its runtime's (workers, blocking pool and the thread that drives
//! it, all named `bench-server` by the harness), SQLite's connection threads (`sqlx-sqlite-worker-N`: the bench
//! opens no database of its own until the steps are over, and one left idle by an earlier scenario adds nothing to
//! a difference), its rule sandbox's
//! `transform-N` (idle here, as no rule is set) and the metrics recorder's `metrics-upkeep`, which folds the
//! latencies the server records. The load generator runs on the bench's own runtime (`tokio-rt-worker`) and is not
//! counted. `/proc` counts in 10 ms ticks, each thread's cut short by less than one: with the few busy threads here,
//! a 10 s step's reading is good to about 1 %.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::harness::{self, Databases};
use super::ingest;
use super::load::{self, LoadPlan, LoadReport};
use super::measure::{ratio, ThreadCpu};
use super::report::{Figure, ScenarioReport, Target};
use super::Settings;
use server::store::{self, DEFAULT_ACCOUNT};

/// Keep-alive connections, in the order measured; the targets apply to the last.
const CONNECTIONS: [usize; 2] = [16, 64];
const WARM_UP: Duration = Duration::from_secs(1);
/// An answer slower than this is a stall.
const STALL: Duration = Duration::from_millis(50);
/// Name prefixes of the hosted server's threads (see the module comment); `comm` keeps 15 bytes of a name.
const SERVER_THREADS: [&str; 4] = ["bench-server", "sqlx-sqlite-wor", "transform-", "metrics-upkeep"];
const BASELINE_THREADS: [&str; 1] = ["bench-baseline"];

/// One measured step: what the load generator saw and the CPU the counted threads used meanwhile.
struct Step {
    connections: usize,
    load: LoadReport,
    cpu: Duration,
    /// Threads counted at the end of the step, and those counted at its start that had ended by then.
    threads: usize,
    threads_ended: usize,
    /// Answered 2xx in the step and its warm-up.
    acknowledged: u64,
}

impl Step {
    /// CPU per 2xx answer, in µs.
    fn cpu_per_answer_us(&self) -> f64 {
        ratio(self.cpu.as_secs_f64() * 1e6, self.load.ok as f64)
    }

    fn stalls(&self) -> u64 {
        self.load.latency.count_over(STALL)
    }
}

pub async fn run(settings: &Settings, databases: &Databases, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let database_url = databases.fresh("tails").await?;
    let mut args = harness::serve_args(&database_url);
    args.processor.workers = 0;
    let server = harness::host_server(args).await?;
    let mut receiver = Vec::new();
    for connections in CONNECTIONS {
        match measure("receiver", server.value, connections, &SERVER_THREADS, settings).await {
            Ok(step) => receiver.push(step),
            Err(error) => {
                server.stop_noting(report).await;
                return Err(error);
            }
        }
    }
    server.stop().await?;
    let connections = CONNECTIONS[CONNECTIONS.len() - 1];
    let baseline_server = ingest::host_baseline().await?;
    let baseline = measure(
        "baseline",
        baseline_server.value,
        connections,
        &BASELINE_THREADS,
        settings,
    )
    .await;
    baseline_server.stop().await?;
    let baseline = baseline?;

    let stored = store::connect(&database_url).await?.stats(DEFAULT_ACCOUNT).await?.total;
    let acknowledged: u64 = receiver.iter().map(|step| step.acknowledged).sum();
    report.detail("acknowledged", acknowledged);
    report.detail("stored", stored);
    report.detail("receiver", receiver.iter().map(step_detail).collect::<Vec<_>>());
    report.detail("baseline", step_detail(&baseline));

    let stored_target = if databases.is_postgres() { 15_000.0 } else { 30_000.0 };
    for step in &receiver {
        push_receiver_figures(report, step, step.connections == connections, stored_target);
    }
    let latency = baseline.load.latency.summary();
    let at = format!("{connections} connections");
    report.push(Figure::info(
        format!("baseline answers per second, {at}"),
        baseline.load.ok_per_second(),
        "/s",
    ));
    report.push(Figure::info(format!("baseline p99, {at}"), latency.p99_ms, "ms"));
    report.push(Figure::info(format!("baseline p99.9, {at}"), latency.p999_ms, "ms"));
    report.push(Figure::info(format!("baseline max, {at}"), latency.max_ms, "ms"));
    report.push(Figure::info(
        format!("baseline CPU per answer, {at}"),
        baseline.cpu_per_answer_us(),
        "µs",
    ));
    let failed: u64 = receiver.iter().map(|step| step.load.failed).sum();
    if failed > 0 {
        report.push(Figure::info("receiver answers other than 2xx", failed as f64, ""));
    }
    // Every acknowledged delivery is one new event (the bodies are unique), so the two counts must agree.
    report.push(Figure::info(
        "acknowledged but not stored",
        acknowledged.saturating_sub(stored as u64) as f64,
        "",
    ));
    Ok(())
}

/// The receiver's figures at one connection count, against the targets when `targeted`; `stored_target` is the
/// engine's (30,000/s on SQLite, 15,000/s on PostgreSQL).
fn push_receiver_figures(report: &mut ScenarioReport, step: &Step, targeted: bool, stored_target: f64) {
    let figure = |metric: &str, value: f64, unit: &'static str, target: Target| {
        let metric = format!("{metric}, {} connections", step.connections);
        if targeted {
            Figure::against(metric, value, unit, target)
        } else {
            Figure::info(metric, value, unit)
        }
    };
    let latency = step.load.latency.summary();
    report.push(figure(
        "stored per second",
        step.load.ok_per_second(),
        "/s",
        Target::AtLeast(stored_target),
    ));
    report.push(Figure::info(
        format!("p50, {} connections", step.connections),
        latency.p50_ms,
        "ms",
    ));
    report.push(figure("p99", latency.p99_ms, "ms", Target::AtMost(10.0)));
    report.push(figure("p99.9", latency.p999_ms, "ms", Target::AtMost(25.0)));
    report.push(Figure::info(
        format!("max, {} connections", step.connections),
        latency.max_ms,
        "ms",
    ));
    report.push(figure(
        "stalls over 50 ms",
        step.stalls() as f64,
        "",
        Target::AtMost(0.0),
    ));
    report.push(figure(
        "server CPU per stored webhook",
        step.cpu_per_answer_us(),
        "µs",
        Target::AtMost(25.0),
    ));
}

/// Warms up, then runs one closed-loop step with `connections`, reading the CPU of the `threads` around it.
async fn measure(
    receiver: &str,
    target: SocketAddr,
    connections: usize,
    threads: &[&str],
    settings: &Settings,
) -> anyhow::Result<Step> {
    let name = format!("{receiver}-{connections}");
    let warm_up = load::run(
        &LoadPlan::closed_loop(target, connections, WARM_UP),
        ingest::deliveries(&format!("{name}-warm-up")),
    )
    .await?;
    let before = ThreadCpu::read(threads);
    let started = Instant::now();
    let load = load::run(
        &LoadPlan::closed_loop(target, connections, settings.step()),
        ingest::deliveries(&name),
    )
    .await?;
    let after = ThreadCpu::read(threads);
    let step = Step {
        connections,
        cpu: after.since(&before),
        threads: after.threads(),
        threads_ended: after.ended_since(&before),
        acknowledged: warm_up.ok + load.ok,
        load,
    };
    let latency = step.load.latency.summary();
    println!(
        "  {receiver:<8} {connections:>2} connections: {:.0}/s ok, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, \
         max {:.1} ms, {} over 50 ms, {} failed; {:.1} µs CPU per answer \
         ({:.2} s CPU over {:.2} s, {} threads, {} ended)",
        step.load.ok_per_second(),
        latency.p50_ms,
        latency.p99_ms,
        latency.p999_ms,
        latency.max_ms,
        step.stalls(),
        step.load.failed,
        step.cpu_per_answer_us(),
        step.cpu.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        step.threads,
        step.threads_ended,
    );
    Ok(step)
}

fn step_detail(step: &Step) -> Value {
    json!({
        "connections": step.connections,
        "sent": step.load.sent,
        "ok": step.load.ok,
        "failed": step.load.failed,
        "first_failure": step.load.first_failure,
        "seconds": step.load.elapsed.as_secs_f64(),
        "ok_per_second": step.load.ok_per_second(),
        "latency": step.load.latency.summary(),
        "stalls_over_50_ms": step.stalls(),
        "cpu_seconds": step.cpu.as_secs_f64(),
        "cpu_threads": step.threads,
        "cpu_threads_ended": step.threads_ended,
        "cpu_per_answer_us": step.cpu_per_answer_us(),
    })
}
