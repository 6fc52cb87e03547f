//! Two nodes: what a second node adds to processing on PostgreSQL. The queue of the processing scenario (20,000
//! events over 2,000 jobs) is drained twice, each time on a fresh database: by one server with its default workers,
//! then by two such servers on the same database, each with a node id of its own. Both fetch from the same
//! simulated account (no added latency, no limits). Reported: events/s of each, and their ratio.
//!
//! Every node and PostgreSQL itself share this machine's cores, so the ratio says what a second node costs the
//! first as much as what it adds; on separate machines each node would have the cores to itself.

use serde_json::json;

use super::harness::{self, Databases};
use super::measure::ratio;
use super::processing::{self, Drained, EVENTS};
use super::report::{Figure, Outcome, ScenarioReport, Target};
use super::Settings;
use server::store;
use servicem8_mock::{MockHandle, ObjectKind};

/// 400 companies × 5 jobs, as in processing.
const COMPANIES: usize = 400;
const JOBS_PER_COMPANY: usize = 5;

pub async fn run(settings: &Settings, databases: &Databases, report: &mut ScenarioReport) -> anyhow::Result<()> {
    if !databases.is_postgres() {
        report.outcome = Outcome::NotRun("two nodes share a PostgreSQL database; SQLite serves one node".into());
        return Ok(());
    }
    let account = harness::host_account(harness::unlimited_account(COMPANIES, JOBS_PER_COMPANY)).await?;
    let one = drain_by(settings, databases, &account.value, 1, report).await?;
    let two = drain_by(settings, databases, &account.value, 2, report).await?;
    account.stop_noting(report).await;
    let (one_rate, two_rate) = (one.events_per_second(), two.events_per_second());
    println!("  one node {one_rate:.0} events/s, two nodes {two_rate:.0} events/s");
    report.push(Figure::info("events processed per second, one node", one_rate, "/s"));
    report.push(Figure::info("events processed per second, two nodes", two_rate, "/s"));
    report.push(Figure::against(
        "ratio two nodes ÷ one",
        ratio(two_rate, one_rate),
        "",
        Target::AtLeast(1.6),
    ));
    one.note_unfinished(report, ", one node");
    two.note_unfinished(report, ", two nodes");
    report.detail(
        "drains",
        json!({
            "one_node": {"finished": one.finished, "seconds": one.elapsed.as_secs_f64(), "by_status": one.by_status},
            "two_nodes": {"finished": two.finished, "seconds": two.elapsed.as_secs_f64(), "by_status": two.by_status},
        }),
    );
    Ok(())
}

/// Queues the events on a fresh database and drains them with `nodes` servers.
async fn drain_by(
    settings: &Settings,
    databases: &Databases,
    account: &MockHandle,
    nodes: usize,
    report: &mut ScenarioReport,
) -> anyhow::Result<Drained> {
    let database_url = databases.fresh("two-nodes").await?;
    let store = store::connect(&database_url).await?;
    let queued = processing::queue_events(store.as_ref(), &account.uuids(ObjectKind::Job), EVENTS).await?;
    // Started side by side, so that neither drains alone for long before the clock starts.
    let servers = futures_util::future::try_join_all((1..=nodes).map(|node| {
        let mut args = harness::serve_args(&database_url);
        harness::fetch_from(&mut args, account);
        // Each node names its own claims; two of one name would release each other's when they start.
        args.processor.node_id = Some(format!("bench-node-{node}"));
        harness::host_server(args)
    }))
    .await?;
    let drained = processing::drain(store.as_ref(), queued, settings.drain_bound()).await;
    for server in servers {
        server.stop_noting(report).await;
    }
    drained
}
