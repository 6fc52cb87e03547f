//! Rules: what an account's rules cost the pipeline, how fast their deliveries go out, and how long a transform
//! takes. Three measurements, each against a local webhook receiver in this process (its own runtime) that answers
//! 200 at once:
//!
//! - **Processing with rules**: 10,000 events over 1,000 jobs are queued straight into the store and drained by the
//!   server's default workers against the simulated account, as in `processing`, twice on fresh databases: without
//!   rules (the baseline), then with the rules of [`rule_set`] (ten filters that rarely match and one JavaScript
//!   transform that shapes every event into a delivery to the receiver). Before each drain the server starts
//!   without workers, so that nothing is processed yet, and the webhook destination (and the rules) are created
//!   through its management API; it then restarts with its defaults for the measured drain. Reported: events/s of
//!   both and their ratio.
//! - **Deliveries**: 20,000 deliveries to the receiver are queued straight into the store while no delivery worker
//!   runs; then the server starts with its default delivery workers (the per-destination limits on concurrency
//!   and rate lifted: the workers are measured, not the limits). Reported: delivered per second until the last
//!   is delivered.
//! - **Transform**: the same transform called one call after another in the sandbox the pipeline uses (default
//!   limits) on a realistic job document. Reported: p50 and p99 per call, including the JSON in and out and the
//!   hand-off to the sandbox's threads.

mod rule_set;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::harness::{self, Databases, Hosted, ADMIN_TOKEN};
use super::measure::{per_second, ratio, Latencies};
use super::processing::{self, Drained};
use super::report::{Figure, ScenarioReport, Target};
use super::Settings;
use server::config::ServeArgs;
use server::rules::sandbox::{Sandbox, SandboxLimits, Transform};
use server::rules::MessageBody;
use server::store::outbound::NewDelivery;
use server::store::{self, now_millis, Store, DEFAULT_ACCOUNT};
use servicem8_mock::{MockHandle, ObjectKind};

const EVENTS: usize = 10_000;
/// 200 companies × 5 jobs: ten events per job, as in `processing`.
const COMPANIES: usize = 200;
const JOBS_PER_COMPANY: usize = 5;
const DELIVERIES: usize = 20_000;
/// Deliveries per enqueue transaction.
const ENQUEUE_BATCH: usize = 500;
/// The longest each drain, and the sending of the deliveries, may take: enough at a tenth of the targets' rates,
/// and short enough that the scenario stays within its bound.
const WAIT_BOUND: Duration = Duration::from_secs(20);
/// The longest the transform calls may take together; a sandbox slower than that is reported on fewer calls.
const TRANSFORM_BOUND: Duration = Duration::from_secs(10);
/// Uncounted calls first, so that every sandbox thread has the transform's runtime ready.
const TRANSFORM_WARM_UP: usize = 50;
const POLL: Duration = Duration::from_millis(100);
/// The path the receiver answers on.
const RECEIVER_PATH: &str = "/hooks/erp";

pub async fn run(settings: &Settings, databases: &Databases, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let account = harness::host_account(harness::unlimited_account(COMPANIES, JOBS_PER_COMPANY)).await?;
    let receiver = host_receiver().await?;
    let receiver_url = format!("http://{}{RECEIVER_PATH}", receiver.value.address);

    let message = measure_transform(settings, &account.value, report).await?;
    measure_processing(databases, &account.value, &receiver_url, report).await?;
    measure_deliveries(databases, &account.value, &receiver, &receiver_url, message, report).await?;

    receiver.stop_noting(report).await;
    account.stop_noting(report).await;
    Ok(())
}

/// Calls the transform in the sandbox on a job update, one call after another; returns the message it made.
async fn measure_transform(
    settings: &Settings,
    account: &MockHandle,
    report: &mut ScenarioReport,
) -> anyhow::Result<Value> {
    let job_uuid = account
        .uuids(ObjectKind::Job)
        .into_iter()
        .next()
        .context("the simulated account has no job")?;
    let job = account
        .record(ObjectKind::Job, &job_uuid)
        .context("the simulated account lost a job")?;
    let document = rule_set::job_update_document(Value::Object(job));
    let document = document.as_json();
    let sandbox = Sandbox::start(SandboxLimits::default()).context("starting the transform sandbox")?;
    let transform = Transform::compile(rule_set::TRANSFORM).map_err(|error| anyhow!("the bench transform: {error}"))?;
    let mut message = Value::Null;
    for _ in 0..TRANSFORM_WARM_UP {
        message = sandbox
            .run(&transform, document)
            .await?
            .into_iter()
            .next()
            .unwrap_or(Value::Null);
    }
    anyhow::ensure!(
        message.is_object(),
        "the bench transform made {message} of a job update"
    );
    let mut latencies = Latencies::default();
    let started = Instant::now();
    for _ in 0..settings.transform_calls() {
        let call = Instant::now();
        sandbox.run(&transform, document).await?;
        latencies.record(call.elapsed());
        if started.elapsed() > TRANSFORM_BOUND {
            break;
        }
    }
    let summary = latencies.summary();
    println!(
        "  transform: {} calls, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        summary.count, summary.p50_ms, summary.p99_ms, summary.max_ms
    );
    report.push(Figure::info("transform p50 (20-line script)", summary.p50_ms, "ms"));
    report.push(Figure::against(
        "transform p99 (20-line script)",
        summary.p99_ms,
        "ms",
        Target::Below(2.0),
    ));
    report.detail(
        "transform",
        json!({"lines": rule_set::TRANSFORM.lines().count(), "latency": summary}),
    );
    Ok(message)
}

/// Drains the same queue without rules and with them, each on a fresh database.
async fn measure_processing(
    databases: &Databases,
    account: &MockHandle,
    receiver_url: &str,
    report: &mut ScenarioReport,
) -> anyhow::Result<()> {
    let jobs = account.uuids(ObjectKind::Job);
    let rules = rule_set::definitions(rule_set::DESTINATION);
    let baseline = drain_queue(databases, account, &jobs, receiver_url, &[], report).await?;
    print_drain("without rules", &baseline.drained);
    let with_rules = drain_queue(databases, account, &jobs, receiver_url, &rules, report).await?;
    print_drain("with rules", &with_rules.drained);
    let without = baseline.drained.events_per_second();
    let with = with_rules.drained.events_per_second();
    report.push(Figure::info("events processed per second without rules", without, "/s"));
    report.push(Figure::info(
        "events processed per second with 10 filter rules and a transform",
        with,
        "/s",
    ));
    report.push(Figure::against(
        "ratio with rules ÷ without",
        ratio(with, without),
        "",
        Target::AtLeast(0.5),
    ));
    report.push(Figure::info(
        "deliveries queued by the rules per event",
        ratio(with_rules.deliveries_queued as f64, with_rules.drained.finished as f64),
        "",
    ));
    baseline.drained.note_unfinished(report, " without rules");
    with_rules.drained.note_unfinished(report, " with rules");
    report.detail(
        "processing",
        json!({
            "objects": jobs.len(),
            "rules": rules.len(),
            "without_rules": drain_detail(&baseline.drained),
            "with_rules": drain_detail(&with_rules.drained),
            "deliveries_queued_with_rules": with_rules.deliveries_queued,
        }),
    );
    Ok(())
}

/// A drain, and the deliveries the rules had queued by its end.
struct RulesDrain {
    drained: Drained,
    deliveries_queued: i64,
}

/// Queues [`EVENTS`] on a fresh database, creates the destination to `receiver_url` and `rules`, and drains the
/// queue with the server's default workers.
async fn drain_queue(
    databases: &Databases,
    account: &MockHandle,
    jobs: &[String],
    receiver_url: &str,
    rules: &[Value],
    report: &mut ScenarioReport,
) -> anyhow::Result<RulesDrain> {
    let database_url = databases.fresh("rules").await?;
    let store = store::connect(&database_url).await?;
    let queued = processing::queue_events(store.as_ref(), jobs, EVENTS).await?;
    configure(&database_url, receiver_url, rules).await?;
    let server = harness::host_server(default_server(&database_url, account)).await?;
    let drained = processing::drain(store.as_ref(), queued, WAIT_BOUND).await?;
    let deliveries_queued = delivery_total(store.as_ref()).await?;
    server.stop_noting(report).await;
    Ok(RulesDrain {
        drained,
        deliveries_queued,
    })
}

/// Queues [`DELIVERIES`] to the receiver while no delivery worker runs, then times the server's default delivery
/// workers sending them all.
async fn measure_deliveries(
    databases: &Databases,
    account: &MockHandle,
    receiver: &Hosted<Receiver>,
    receiver_url: &str,
    message: Value,
    report: &mut ScenarioReport,
) -> anyhow::Result<()> {
    let database_url = databases.fresh("rules").await?;
    let store = store::connect(&database_url).await?;
    let destination_id = configure(&database_url, receiver_url, &[]).await?;
    // Stored as the pipeline stores a transform's message.
    let body = serde_json::to_value(MessageBody::Json(message))?;
    let now = now_millis();
    let deliveries: Vec<NewDelivery> = (0..DELIVERIES)
        .map(|n| NewDelivery {
            id: uuid::Uuid::now_v7().to_string(),
            account: DEFAULT_ACCOUNT.into(),
            destination_id: destination_id.clone(),
            event_id: None,
            rule_id: None,
            rule_name: None,
            dedup_key: Some(format!("bench:{n}")),
            message: body.clone(),
            created_at: now,
            next_attempt_at: now,
            failed: None,
        })
        .collect();
    for batch in deliveries.chunks(ENQUEUE_BATCH) {
        store.enqueue_deliveries(batch).await?;
    }
    let queued = delivery_total(store.as_ref()).await?;
    // Closed before the server starts: the checkpoints of a second store on the file made the server's claims
    // fail now and then (`database is locked`), each idling a delivery worker until its next poll.
    drop(store);
    let received_before = receiver.value.received.load(Ordering::Relaxed);

    let mut args = default_server(&database_url, account);
    // The figure is what the workers carry to one receiver; the per-destination limits (4 sends at once and 100
    // a second unless configured) are what an operator sets for a real one, and would be all this measured.
    args.deliveries.delivery_rate_per_destination = 1_000_000;
    args.deliveries.delivery_concurrency_per_destination = 64;
    let workers = args.deliveries.delivery_workers;
    let server = harness::host_server(args).await?;
    let management = Management::of(server.value);
    let started = Instant::now();
    let (mut delivered, mut failed) = (0, 0);
    while started.elapsed() < WAIT_BOUND {
        (delivered, failed) = delivery_outcomes(&management).await?;
        if delivered + failed >= queued {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let elapsed = started.elapsed();
    server.stop_noting(report).await;
    let received = receiver.value.received.load(Ordering::Relaxed) - received_before;

    let delivered_per_second = per_second(delivered.max(0) as u64, elapsed);
    println!(
        "  deliveries: {delivered} of {queued} delivered ({failed} failed) in {:.1} s by {workers} workers: \
         {delivered_per_second:.0} /s; the receiver answered {received}",
        elapsed.as_secs_f64()
    );
    report.push(Figure::against(
        "deliveries to a local webhook per second",
        delivered_per_second,
        "/s",
        Target::AtLeast(2_000.0),
    ));
    if failed > 0 || delivered + failed < queued {
        report.push(Figure::info(
            "deliveries failed or left unsent at the time bound",
            (queued - delivered) as f64,
            "",
        ));
    }
    report.detail(
        "deliveries",
        json!({
            "queued": queued,
            "delivered": delivered,
            "failed": failed,
            "received": received,
            "workers": workers,
            "seconds": elapsed.as_secs_f64(),
        }),
    );
    Ok(())
}

fn print_drain(label: &str, drained: &Drained) {
    println!(
        "  {label}: {} of {} events finished in {:.1} s: {:.0} events/s",
        drained.finished,
        drained.queued,
        drained.elapsed.as_secs_f64(),
        drained.events_per_second()
    );
}

fn drain_detail(drained: &Drained) -> Value {
    json!({
        "queued": drained.queued,
        "finished": drained.finished,
        "seconds": drained.elapsed.as_secs_f64(),
        "by_status": drained.by_status,
    })
}

/// A bench server fetching from `account`, with its default processing and delivery workers.
fn default_server(database_url: &str, account: &MockHandle) -> ServeArgs {
    let mut args = harness::serve_args(database_url);
    harness::fetch_from(&mut args, account);
    args
}

/// Creates the webhook destination to `receiver_url`, then `rules`, through the management API of the server
/// started on the database without any worker, so that nothing is processed or sent before the measurement
/// starts; returns the destination's id.
async fn configure(database_url: &str, receiver_url: &str, rules: &[Value]) -> anyhow::Result<String> {
    let mut args = harness::serve_args(database_url);
    args.processor.workers = 0;
    args.deliveries.delivery_workers = 0;
    let server = harness::host_server(args).await?;
    let management = Management::of(server.value);
    let created = management
        .change(json!({
            "action": "create_destination",
            "name": rule_set::DESTINATION,
            "kind": "webhook",
            "settings": {"url": receiver_url},
        }))
        .await?;
    let destination_id = created["destination"]["id"]
        .as_str()
        .with_context(|| format!("create_destination answered {created}"))?
        .to_owned();
    for definition in rules {
        management
            .change(json!({"action": "create_rule", "definition": definition}))
            .await?;
    }
    server.stop().await?;
    Ok(destination_id)
}

/// The management API of a bench server, called as its admin.
struct Management {
    client: reqwest::Client,
    url: String,
}

impl Management {
    fn of(server: SocketAddr) -> Management {
        Management {
            client: reqwest::Client::new(),
            url: format!("http://{server}/api/webhooks/management"),
        }
    }

    /// Posts a change (`{"action": …}`); its answer, or an error with the status and body.
    async fn change(&self, action: Value) -> anyhow::Result<Value> {
        let name = action["action"].clone();
        answer(&name, self.client.post(&self.url).json(&action)).await
    }

    /// Reads `?action=<action>`.
    async fn read(&self, action: &str) -> anyhow::Result<Value> {
        answer(&json!(action), self.client.get(&self.url).query(&[("action", action)])).await
    }
}

async fn answer(action: &Value, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .with_context(|| format!("sending {action}"))?;
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .with_context(|| format!("reading the answer to {action}"))?;
    anyhow::ensure!(status.is_success(), "{action} answered {status}: {answer}");
    Ok(answer)
}

/// Every delivery the default account holds.
async fn delivery_total(store: &dyn Store) -> anyhow::Result<i64> {
    Ok(store
        .delivery_counts(DEFAULT_ACCOUNT)
        .await?
        .iter()
        .map(|count| count.count)
        .sum())
}

/// Deliveries delivered and failed so far, as the server counts them by destination.
async fn delivery_outcomes(management: &Management) -> anyhow::Result<(i64, i64)> {
    let answer = management.read("destinations").await?;
    let destinations = answer["destinations"]
        .as_array()
        .with_context(|| format!("the destinations answered {answer}"))?;
    let sum = |field: &str| {
        destinations
            .iter()
            .filter_map(|destination| destination[field].as_i64())
            .sum()
    };
    Ok((sum("delivered"), sum("failed")))
}

/// The webhook receiver: where it listens, and how many posts it has answered.
struct Receiver {
    address: SocketAddr,
    received: Arc<AtomicU64>,
}

/// Runs the receiver on a runtime of its own, as the remote service it stands for.
async fn host_receiver() -> anyhow::Result<Hosted<Receiver>> {
    harness::host("bench-receiver", |ready, shutdown| async move {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let received = Arc::new(AtomicU64::new(0));
        let receiver = Receiver {
            address: listener.local_addr()?,
            received: received.clone(),
        };
        if ready.send(receiver).is_err() {
            return Ok(());
        }
        let router = Router::new().route(RECEIVER_PATH, post(receive)).with_state(received);
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        Ok(())
    })
    .await
}

async fn receive(State(received): State<Arc<AtomicU64>>, _body: Bytes) -> StatusCode {
    received.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}
