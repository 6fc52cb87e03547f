//! Ingest: signed webhooks acknowledged (and so durably stored) per second, and ack latency at fixed rates, for
//! the receiver and for a bare axum handler answering 200 `{}`. Both run the same way (their own runtime), are
//! driven by the same load generator over the same number of keep-alive connections with the same signed
//! bodies, one after the other in the same run.
//!
//! The receiver runs receive-only (no workers), so the figures are the receiver's own; the end-to-end scenario
//! measures it with processing on. After the run, the stored rows are counted: every 2xx must be a stored event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::harness::{self, Databases, Hosted};
use super::load::{self, Delivery, LoadPlan, LoadReport, Pace};
use super::measure::ratio;
use super::report::{Figure, ScenarioReport, Target};
use super::Settings;
use server::store::{self, DEFAULT_ACCOUNT};

/// Keep-alive connections of the load generator, for both receivers.
pub const CONNECTIONS: usize = 32;
const RATES: [f64; 2] = [500.0, 2_000.0];
const WARM_UP: Duration = Duration::from_secs(1);
/// Distinct job uuids the deliveries cycle through.
const JOBS: u64 = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Receiver {
    Product,
    Baseline,
}

impl Receiver {
    fn name(self) -> &'static str {
        match self {
            Receiver::Product => "receiver",
            Receiver::Baseline => "baseline",
        }
    }
}

/// One receiver's measurements: the fixed-rate steps in `RATES` order, then saturation.
struct Measured {
    rates: Vec<LoadReport>,
    saturated: LoadReport,
    acknowledged: u64,
}

pub async fn run(settings: &Settings, databases: &Databases, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let database_url = databases.fresh("ingest").await?;
    let mut args = harness::serve_args(&database_url);
    args.processor.workers = 0;
    let server = harness::host_server(args).await?;
    let product = measure(Receiver::Product, server.value, settings).await;
    server.stop().await?;
    let product = product?;
    let baseline_server = host_baseline().await?;
    let baseline = measure(Receiver::Baseline, baseline_server.value, settings).await;
    baseline_server.stop().await?;
    let baseline = baseline?;

    let stored = store::connect(&database_url).await?.stats(DEFAULT_ACCOUNT).await?.total;
    report.detail("acknowledged", product.acknowledged);
    report.detail("stored", stored);
    report.detail("connections", CONNECTIONS);
    for (receiver, measured) in [(Receiver::Product, &product), (Receiver::Baseline, &baseline)] {
        let steps: Vec<Value> = measured
            .rates
            .iter()
            .chain([&measured.saturated])
            .map(step_detail)
            .collect();
        report.detail(receiver.name(), steps);
    }

    let stored_per_second = product.saturated.ok_per_second();
    let baseline_per_second = baseline.saturated.ok_per_second();
    report.push(Figure::info("stored per second (saturated)", stored_per_second, "/s"));
    report.push(Figure::info(
        "baseline answers per second (saturated)",
        baseline_per_second,
        "/s",
    ));
    report.push(Figure::against(
        "ratio stored/s to baseline/s",
        ratio(stored_per_second, baseline_per_second),
        "",
        Target::AtLeast(0.6),
    ));
    for ((rate, ours), theirs) in RATES.iter().zip(&product.rates).zip(&baseline.rates) {
        let (ours_latency, theirs_latency) = (ours.latency.summary(), theirs.latency.summary());
        report.push(Figure::info(
            format!("stored per second at {rate} req/s"),
            ours.ok_per_second(),
            "/s",
        ));
        report.push(Figure::info(
            format!("ack p50 at {rate} req/s"),
            ours_latency.p50_ms,
            "ms",
        ));
        let p99 = format!("ack p99 at {rate} req/s");
        report.push(if *rate >= 2_000.0 {
            Figure::against(p99, ours_latency.p99_ms, "ms", Target::Below(5.0))
        } else {
            Figure::info(p99, ours_latency.p99_ms, "ms")
        });
        report.push(Figure::info(
            format!("baseline p50 at {rate} req/s"),
            theirs_latency.p50_ms,
            "ms",
        ));
        report.push(Figure::info(
            format!("baseline p99 at {rate} req/s"),
            theirs_latency.p99_ms,
            "ms",
        ));
    }
    let failed: u64 = product
        .rates
        .iter()
        .chain([&product.saturated])
        .map(|step| step.failed)
        .sum();
    if failed > 0 {
        report.push(Figure::info("receiver answers other than 2xx", failed as f64, ""));
    }
    let overdue: u64 = product.rates.iter().map(|step| step.overdue).sum();
    if overdue > 0 {
        report.push(Figure::info(
            "posts given up unsent, over 5 s overdue",
            overdue as f64,
            "",
        ));
    }
    // Every acknowledged delivery is one new event (the bodies are unique), so the two counts must agree.
    report.push(Figure::info(
        "acknowledged but not stored",
        product.acknowledged.saturating_sub(stored as u64) as f64,
        "",
    ));
    Ok(())
}

/// Warms up, runs each fixed rate, then saturates.
async fn measure(receiver: Receiver, target: SocketAddr, settings: &Settings) -> anyhow::Result<Measured> {
    let plan = |pace: Pace, duration: Duration| LoadPlan {
        target,
        path: "/api/webhooks/sm8".into(),
        connections: CONNECTIONS,
        pace,
        duration,
    };
    let warm_up = load::run(&plan(Pace::Fixed { rate: 500.0 }, WARM_UP), deliveries("warm-up")).await?;
    let mut acknowledged = warm_up.ok;
    let mut rates = Vec::new();
    for rate in RATES {
        let step = format!("rate-{rate}");
        let measured = load::run(&plan(Pace::Fixed { rate }, settings.step()), deliveries(&step)).await?;
        println!("  {:<8} {rate:>6} req/s: {}", receiver.name(), describe(&measured));
        acknowledged += measured.ok;
        rates.push(measured);
    }
    let saturated = load::run(&plan(Pace::Saturate, settings.step()), deliveries("saturate")).await?;
    println!("  {:<8} saturated:    {}", receiver.name(), describe(&saturated));
    acknowledged += saturated.ok;
    Ok(Measured {
        rates,
        saturated,
        acknowledged,
    })
}

/// Unique signed deliveries for one step, of jobs the account need not hold.
pub fn deliveries(step: &str) -> load::MakeDelivery {
    let step = step.to_owned();
    Arc::new(move |seq| {
        Delivery::seed_job_update(
            harness::WEBHOOK_SECRET,
            &format!("bench-job-{}", seq % JOBS),
            &step,
            seq,
        )
    })
}

fn describe(step: &LoadReport) -> String {
    let latency = step.latency.summary();
    format!(
        "{:.0}/s ok, p50 {:.2} ms, p99 {:.2} ms, {} failed, {} given up overdue",
        step.ok_per_second(),
        latency.p50_ms,
        latency.p99_ms,
        step.failed,
        step.overdue
    )
}

fn step_detail(step: &LoadReport) -> Value {
    json!({
        "offered_rate": step.schedule.map(|schedule| schedule.rate),
        "sent": step.sent,
        "ok": step.ok,
        "failed": step.failed,
        "overdue": step.overdue,
        "first_failure": step.first_failure,
        "seconds": step.elapsed.as_secs_f64(),
        "ok_per_second": step.ok_per_second(),
        "latency": step.latency.summary(),
    })
}

/// The baseline: a bare axum server that reads the body and answers 200 `{}`, on a runtime of its own.
pub async fn host_baseline() -> anyhow::Result<Hosted<SocketAddr>> {
    harness::host("bench-baseline", |ready, shutdown| async move {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        if ready.send(listener.local_addr()?).is_err() {
            return Ok(());
        }
        let router = Router::new().route("/api/webhooks/sm8", post(answer_ok));
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        Ok(())
    })
    .await
}

async fn answer_ok(_body: Bytes) -> Json<Value> {
    Json(json!({}))
}
