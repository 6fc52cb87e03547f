//! Soak: the release binary as a child process with its default workers, fetching every event from the simulated
//! account, fed 200 signed job updates a second for five minutes (30 s in quick mode). Once a second the size of
//! the SQLite log (`-wal`) and the server's resident memory are read; both must stay flat: the log under a bound,
//! memory at the end within 10 % of memory half-way. On PostgreSQL there is
//! no log file of ours and only memory is reported.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::harness::{self, ChildServer, Databases};
use super::load::{self, Delivery, LoadPlan, Pace};
use super::report::{Figure, ScenarioReport, Target};
use super::Settings;
use servicem8_mock::ObjectKind;

const RATE: f64 = 200.0;
const CONNECTIONS: usize = 16;
const COMPANIES: usize = 50;
const JOBS_PER_COMPANY: usize = 10;
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// The log may not pass this at any sample: what SQLite keeps after a restart plus a few seconds of writes.
const LOG_BOUND_MIB: f64 = 128.0;
/// Memory at the end over memory half-way: by then caches and the realtime history have reached their caps.
const RSS_GROWTH_BOUND: f64 = 1.1;

pub async fn run(settings: &Settings, databases: &Databases, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let account = harness::host_account(harness::unlimited_account(COMPANIES, JOBS_PER_COMPANY)).await?;
    let jobs: Arc<Vec<String>> = Arc::new(account.value.uuids(ObjectKind::Job));
    let database_url = databases.fresh("soak").await?;
    let server = ChildServer::start_with(
        &database_url,
        &[
            ("WORKERS", "4".to_owned()),
            ("SERVICEM8_API_KEY", account.value.api_key().to_owned()),
            ("SERVICEM8_BASE_URL", account.value.base_url()),
            ("SERVICEM8_REQUESTS_PER_MINUTE", u32::MAX.to_string()),
            ("SERVICEM8_REQUESTS_PER_DAY", u32::MAX.to_string()),
        ],
    )
    .await?;
    let result = measure(settings, &server, &database_url, jobs, report).await;
    server.stop().await;
    account.stop_noting(report).await;
    result
}

/// One reading of the server.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    seconds: f64,
    log_bytes: u64,
    rss_kib: u64,
}

async fn measure(
    settings: &Settings,
    server: &ChildServer,
    database_url: &str,
    jobs: Arc<Vec<String>>,
    report: &mut ScenarioReport,
) -> anyhow::Result<()> {
    let duration = settings.soak();
    let log_file = log_file_of(database_url);
    let stop = CancellationToken::new();
    let sampling = tokio::spawn({
        let (stop, log_file) = (stop.clone(), log_file.clone());
        let pid = server.pid().context("the server's process id")?;
        async move {
            let started = Instant::now();
            let mut samples = Vec::new();
            let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = interval.tick() => {}
                }
                samples.push(Sample {
                    seconds: started.elapsed().as_secs_f64(),
                    log_bytes: log_file
                        .as_ref()
                        .and_then(|file| std::fs::metadata(file).ok())
                        .map_or(0, |metadata| metadata.len()),
                    rss_kib: super::measure::resident_kib(pid).unwrap_or(0),
                });
            }
            samples
        }
    });
    let plan = LoadPlan {
        target: server.address,
        path: "/api/webhooks/sm8".into(),
        connections: CONNECTIONS,
        pace: Pace::Fixed { rate: RATE },
        duration,
    };
    let posted = load::run(&plan, deliveries(&jobs)).await?;
    stop.cancel();
    let samples = sampling.await?;

    let first = samples.first().copied().unwrap_or_default();
    let half_way = samples
        .iter()
        .find(|sample| sample.seconds >= duration.as_secs_f64() / 2.0)
        .copied()
        .unwrap_or(first);
    let last = samples.last().copied().unwrap_or_default();
    let largest_log = samples.iter().map(|sample| sample.log_bytes).max().unwrap_or(0);
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "  {} posted at {RATE}/s over {} s: log at most {:.1} MiB (last {:.1} MiB), RSS {:.1} MiB at the start, \
         {:.1} MiB half-way, {:.1} MiB at the end",
        posted.ok,
        duration.as_secs(),
        mib(largest_log),
        mib(last.log_bytes),
        first.rss_kib as f64 / 1024.0,
        half_way.rss_kib as f64 / 1024.0,
        last.rss_kib as f64 / 1024.0,
    );
    if log_file.is_some() {
        report.push(Figure::against(
            "soak: largest SQLite log",
            mib(largest_log),
            "MiB",
            Target::Below(LOG_BOUND_MIB),
        ));
    }
    report.push(Figure::info(
        "soak: RSS at the start",
        first.rss_kib as f64 / 1024.0,
        "MiB",
    ));
    report.push(Figure::info(
        "soak: RSS half-way",
        half_way.rss_kib as f64 / 1024.0,
        "MiB",
    ));
    report.push(Figure::info(
        "soak: RSS at the end",
        last.rss_kib as f64 / 1024.0,
        "MiB",
    ));
    report.push(Figure::against(
        "soak: RSS end / half-way",
        super::measure::ratio(last.rss_kib as f64, half_way.rss_kib as f64),
        "",
        Target::Below(RSS_GROWTH_BOUND),
    ));
    report.detail(
        "run",
        json!({
            "rate": RATE,
            "seconds": duration.as_secs(),
            "posted_ok": posted.ok,
            "posted_failed": posted.failed,
            "first_failure": posted.first_failure,
            "ack_latency": posted.latency.summary(),
            "samples": samples
                .iter()
                .map(|sample| json!([sample.seconds.round(), sample.log_bytes, sample.rss_kib]))
                .collect::<Vec<_>>(),
        }),
    );
    Ok(())
}

/// The `-wal` file beside a SQLite database; none for PostgreSQL.
fn log_file_of(database_url: &str) -> Option<PathBuf> {
    let path = database_url.strip_prefix("sqlite://")?;
    Some(PathBuf::from(format!("{path}-wal")))
}

fn deliveries(jobs: &Arc<Vec<String>>) -> load::MakeDelivery {
    let jobs = jobs.clone();
    Arc::new(move |seq| {
        let job = &jobs[(seq % jobs.len() as u64) as usize];
        Delivery::seed_job_update(harness::WEBHOOK_SECRET, job, "soak", seq)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_file_sits_beside_a_sqlite_database_only() {
        assert_eq!(
            log_file_of("sqlite:///tmp/bench/soak-0.db"),
            Some(PathBuf::from("/tmp/bench/soak-0.db-wal"))
        );
        assert_eq!(log_file_of("postgres://postgres@127.0.0.1/x"), None);
    }
}
