//! Fan-out: 1,000, 10,000 and then 50,000 websocket subscribers of one topic on the release binary (or as many
//! as the open file limit admits, the memory at 50,000 then projected), run as a child process so that its memory
//! is its own. At each level: the server's resident memory once the subscribers are
//! joined and idle (memory per idle connection = growth over the server's idle memory ÷ subscribers), then a few
//! REST broadcasts, each timed from the moment it was posted to the moment every subscriber had it. Subscribers
//! connect from several loopback addresses, as 50,000 would not fit in one address's ephemeral ports.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{stream, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::harness::{self, ChildServer, Databases};
use super::measure::Latencies;
use super::report::{Figure, ScenarioReport, Target};
use super::subscriber::Subscriber;
use super::Settings;

/// The levels measured in full, the second against the broadcast target.
const LEVELS: [usize; 2] = [1_000, 10_000];
/// Idle sockets one node should hold in under `MOST_IDLE_RSS_MIB` of memory: the last level, or as many as the
/// open file limit allows, the memory then projected to this many from the memory per connection measured.
const MOST_IDLE: usize = 50_000;
const MOST_IDLE_RSS_MIB: f64 = 1024.0;
/// Loopback addresses the subscribers connect from, in turn: 127.0.0.2 onwards.
const SOURCE_ADDRESSES: u8 = 4;
/// Broadcasts timed at the last level, where each takes longest.
const MOST_IDLE_BROADCASTS: usize = 3;
/// Descriptors kept for everything but the subscribers, in this process and the server.
const OTHER_OPEN_FILES: u64 = 1_000;
const TOPIC: &str = "realtime:jobs";
const EVENT: &str = "bench";
/// Joins in flight at once: enough to be quick, few enough not to overflow the listen backlog.
const CONCURRENT_JOINS: usize = 100;
/// How long one broadcast may take to reach everybody before the missing ones count as lost.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after the joins, so that the server's memory reflects idle connections rather than the join burst.
const SETTLE: Duration = Duration::from_secs(2);

/// Open files the largest level needs in each process: a descriptor per subscriber and a margin.
const OPEN_FILES_WANTED: u64 = 65_536;

/// File descriptors this process may hold, raised to the hard limit (the child inherits it); as root, the hard
/// limit is first raised to what the largest level needs.
pub fn raise_open_file_limit() -> u64 {
    if rlimit::Resource::NOFILE
        .get()
        .is_ok_and(|(_, hard)| hard < OPEN_FILES_WANTED)
    {
        // Refused unless privileged: then the hard limit stays, and levels beyond it are skipped and said so.
        let _ = rlimit::Resource::NOFILE.set(OPEN_FILES_WANTED, OPEN_FILES_WANTED);
    }
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

pub async fn run(settings: &Settings, databases: &Databases, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let server = ChildServer::start(&databases.fresh("fanout").await?).await?;
    let result = measure(settings, &server, report).await;
    server.stop().await;
    result
}

async fn measure(settings: &Settings, server: &ChildServer, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let open_files = raise_open_file_limit();
    report.detail("open_file_limit", open_files);
    tokio::time::sleep(SETTLE).await;
    let idle_kib = server.resident_kib().context("reading the server's memory")?;
    report.detail("server_idle_rss_kib", idle_kib);
    let token = harness::admin_access_token()?;
    let (receipts, mut arrivals) = mpsc::unbounded_channel::<(u64, Instant)>();
    let stop = CancellationToken::new();
    let mut listeners = JoinSet::new();
    let mut next_seq = 0u64;
    let mut levels = Vec::new();
    // A subscriber needs a descriptor here and one in the server, which inherits this process's limit.
    let room = usize::try_from(open_files.saturating_sub(OTHER_OPEN_FILES)).unwrap_or(usize::MAX) / 1_000 * 1_000;
    let most_idle = MOST_IDLE.min(room);
    if most_idle < MOST_IDLE {
        report.note(format!(
            "the open file limit ({open_files}, which this process may not raise) admits {most_idle} subscribers: \
             the server's memory at {MOST_IDLE} idle sockets is projected from its memory per connection there"
        ));
    }
    let idle_level = (most_idle > LEVELS[LEVELS.len() - 1]).then_some(most_idle);
    for level in LEVELS.into_iter().chain(idle_level) {
        if level > room {
            report.detail("skipped_level", level);
            println!("  {level} subscribers skipped: the open file limit is {open_files}");
            continue;
        }
        let joining = Instant::now();
        while listeners.len() < level {
            let missing = level - listeners.len();
            let joined = join_many(server.address, &token, listeners.len(), missing).await?;
            for subscriber in joined {
                let (receipts, stop) = (receipts.clone(), stop.clone());
                listeners.spawn(subscriber.listen(stop, move |event, payload| {
                    if let (EVENT, Some(seq)) = (event, payload["seq"].as_u64()) {
                        let _ = receipts.send((seq, Instant::now()));
                    }
                }));
            }
        }
        let join_seconds = joining.elapsed().as_secs_f64();
        tokio::time::sleep(SETTLE).await;
        let rss_kib = server.resident_kib().context("reading the server's memory")?;
        let per_connection_kib = rss_kib.saturating_sub(idle_kib) as f64 / level as f64;

        let mut latencies = Latencies::default();
        let mut all_received = Vec::new();
        let mut lost = 0;
        let client = reqwest::Client::new();
        let last = Some(level) == idle_level;
        let broadcasts = if last {
            settings.broadcasts().min(MOST_IDLE_BROADCASTS)
        } else {
            settings.broadcasts()
        };
        for _ in 0..broadcasts {
            next_seq += 1;
            let received = broadcast_once(&client, server.address, &token, next_seq, level, &mut arrivals).await?;
            for latency in &received {
                latencies.record(*latency);
            }
            all_received.push(received.iter().max().copied().unwrap_or_default());
            lost += level - received.len();
        }
        all_received.sort();
        let all_received_ms = all_received[all_received.len() / 2].as_secs_f64() * 1000.0;
        let summary = latencies.summary();
        println!(
            "  {level} subscribers: joined in {join_seconds:.1} s, server RSS {} MiB \
             ({per_connection_kib:.1} KiB each), \
             broadcast p50 {:.1} ms, p99 {:.1} ms, all received {all_received_ms:.1} ms, {lost} lost",
            rss_kib / 1024,
            summary.p50_ms,
            summary.p99_ms
        );
        let p99 = format!("{level} subscribers: broadcast p99");
        let per_connection = format!("{level} subscribers: memory per idle connection");
        report.push(Figure::info(
            format!("{level} subscribers: broadcast p50"),
            summary.p50_ms,
            "ms",
        ));
        // The level measured against the broadcast target; the last one, beyond it, is about idle memory.
        if level >= 10_000 && !last {
            report.push(Figure::against(p99, summary.p99_ms, "ms", Target::Below(50.0)));
            report.push(Figure::against(
                per_connection,
                per_connection_kib,
                "KiB",
                Target::Below(30.0),
            ));
        } else {
            report.push(Figure::info(p99, summary.p99_ms, "ms"));
            report.push(Figure::info(per_connection, per_connection_kib, "KiB"));
        }
        report.push(Figure::info(
            format!("{level} subscribers: all received (median)"),
            all_received_ms,
            "ms",
        ));
        let rss_mib = rss_kib as f64 / 1024.0;
        if last && level == MOST_IDLE {
            report.push(Figure::against(
                format!("{MOST_IDLE} idle sockets: server RSS"),
                rss_mib,
                "MiB",
                Target::Below(MOST_IDLE_RSS_MIB),
            ));
        } else {
            report.push(Figure::info(format!("{level} subscribers: server RSS"), rss_mib, "MiB"));
        }
        if last && level < MOST_IDLE {
            let projected_kib = idle_kib as f64 + per_connection_kib * MOST_IDLE as f64;
            report.push(Figure::against(
                format!("{MOST_IDLE} idle sockets: server RSS (projected from {level})"),
                projected_kib / 1024.0,
                "MiB",
                Target::Below(MOST_IDLE_RSS_MIB),
            ));
        }
        if lost > 0 {
            report.push(Figure::info(
                format!("{level} subscribers: deliveries lost"),
                lost as f64,
                "",
            ));
        }
        levels.push(json!({
            "subscribers": level,
            "join_seconds": join_seconds,
            "server_rss_kib": rss_kib,
            "per_idle_connection_kib": per_connection_kib,
            "broadcasts": broadcasts,
            "latency": summary,
            "all_received_ms": all_received.iter().map(|d| d.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
            "lost": lost,
        }));
    }
    report.detail("levels", levels);
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while listeners.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Opens and joins `count` subscribers (numbered from `first`, which picks their source address),
/// `CONCURRENT_JOINS` at a time.
async fn join_many(address: SocketAddr, token: &str, first: usize, count: usize) -> anyhow::Result<Vec<Subscriber>> {
    let joined: Vec<anyhow::Result<Subscriber>> = stream::iter(first..first + count)
        .map(|number| {
            let source = Ipv4Addr::new(127, 0, 0, 2 + (number % usize::from(SOURCE_ADDRESSES)) as u8);
            Subscriber::join_from(source, address, TOPIC, token)
        })
        .buffer_unordered(CONCURRENT_JOINS)
        .collect()
        .await;
    let failures = joined.iter().filter(|joined| joined.is_err()).count();
    if failures * 100 > count {
        let first = joined.into_iter().find_map(Result::err).expect("a failure was counted");
        bail!("{failures} of {count} subscribers could not join: {first:#}");
    }
    Ok(joined.into_iter().filter_map(Result::ok).collect())
}

/// Posts broadcast `seq` through the REST API and collects the receipts until all `subscribers` have it; returns
/// the time from the post to each receipt.
async fn broadcast_once(
    client: &reqwest::Client,
    address: SocketAddr,
    token: &str,
    seq: u64,
    subscribers: usize,
    arrivals: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
) -> anyhow::Result<Vec<Duration>> {
    // Whatever is left over from an earlier broadcast is stale now.
    while arrivals.try_recv().is_ok() {}
    let body = json!({"messages": [{"topic": TOPIC, "event": EVENT, "payload": {"seq": seq}}]});
    let posted = Instant::now();
    let answer = client
        .post(format!("http://{address}/realtime/v1/api/broadcast"))
        .header("apikey", harness::ANON_KEY)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    if !answer.status().is_success() {
        bail!("the REST broadcast was answered {}", answer.status());
    }
    let mut latencies = Vec::with_capacity(subscribers);
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    while latencies.len() < subscribers {
        match tokio::time::timeout_at(deadline, arrivals.recv()).await {
            Ok(Some((received_seq, at))) if received_seq == seq => latencies.push(at.saturating_duration_since(posted)),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    Ok(latencies)
}
