//! The load generator: signed webhook posts over a fixed pool of keep-alive HTTP/1.1 connections (hyper), either
//! open-loop at a fixed rate or closed-loop as fast as the pool allows (saturation).
//!
//! Open loop means the send times are fixed in advance (`Schedule`) and a latency is measured from the time a
//! request was *due*, not from when a connection got round to sending it: a server that stalls is charged for
//! every request that queued behind the stall (no coordinated omission). A dedicated OS thread paces the sends
//! with `std::thread::sleep`, whose precision (tens of µs) is finer than tokio's 1 ms timer wheel, and hands due
//! request numbers to the connections over a channel.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::measure::{per_second, Latencies};
use server::ingest::signature::sign;
use server::ingest::SIGNATURE_HEADER;

/// A request still unsent this long after it fell due is given up: the receiver cannot keep up, and sending the
/// backlog would stretch the step far past its duration.
pub const MAX_OVERDUE: Duration = Duration::from_secs(5);
/// How long a connection waits for one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Fixed send times: request `i` is due at `start + i × interval`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub start: Instant,
    pub rate: f64,
}

impl Schedule {
    pub fn at(&self, index: u64) -> Instant {
        // Computed from the start each time rather than by adding intervals, so rounding never accumulates.
        self.start + Duration::from_secs_f64(index as f64 / self.rate)
    }

    /// How many requests fall due within `duration` of the start.
    pub fn count_within(&self, duration: Duration) -> u64 {
        (duration.as_secs_f64() * self.rate).floor() as u64
    }
}

/// One webhook delivery: its body and the `x-servicem8-signature` of it.
pub struct Delivery {
    pub body: Bytes,
    pub signature: String,
}

impl Delivery {
    /// A seed-format job update signed with `secret`, unique by `step` and `seq`, which come back in the
    /// broadcast's `changes` (as `bench_step`, `bench_seq`) so that a subscriber can tell which post it was.
    pub fn seed_job_update(secret: &str, job_uuid: &str, step: &str, seq: u64) -> Delivery {
        let body = serde_json::json!({
            "object_type": "job",
            "object_uuid": job_uuid,
            "event_type": "updated",
            "timestamp": "2026-01-01T00:00:00Z",
            "changes": {"status": "Work Order", "bench_step": step, "bench_seq": seq},
        })
        .to_string();
        Delivery {
            signature: sign(secret.as_bytes(), body.as_bytes()),
            body: Bytes::from(body),
        }
    }
}

/// Makes delivery number `i`; called on the connection's task just before sending.
pub type MakeDelivery = Arc<dyn Fn(u64) -> Delivery + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Open loop at this many requests per second.
    Fixed { rate: f64 },
    /// Closed loop: every connection sends its next request as soon as the last is answered.
    Saturate,
}

#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub target: SocketAddr,
    pub path: String,
    pub connections: usize,
    pub pace: Pace,
    pub duration: Duration,
}

impl LoadPlan {
    /// Closed loop on the receiver's webhook path.
    pub fn closed_loop(target: SocketAddr, connections: usize, duration: Duration) -> LoadPlan {
        LoadPlan {
            target,
            path: "/api/webhooks/sm8".into(),
            connections,
            pace: Pace::Saturate,
            duration,
        }
    }
}

/// What one run of the load generator saw.
pub struct LoadReport {
    pub sent: u64,
    /// Answered 2xx.
    pub ok: u64,
    /// Answered otherwise, or not at all.
    pub failed: u64,
    /// Given up unsent, more than `MAX_OVERDUE` late; their lateness is in `latency` as a lower bound.
    pub overdue: u64,
    pub first_failure: Option<String>,
    /// From the first due time to the last answer.
    pub elapsed: Duration,
    /// Due time to answer (fixed rate) or send to answer (saturation), of 2xx answers and of overdue requests.
    pub latency: Latencies,
    /// The send times, when the pace was fixed.
    pub schedule: Option<Schedule>,
}

impl LoadReport {
    /// 2xx answers per second.
    pub fn ok_per_second(&self) -> f64 {
        per_second(self.ok, self.elapsed)
    }
}

/// Where the connections take their next request from.
enum Source {
    Paced {
        due: flume::Receiver<u64>,
        schedule: Schedule,
    },
    Saturating {
        next: AtomicU64,
        deadline: Instant,
    },
}

impl Source {
    /// The next request number and the time from which its latency counts; `None` when the run is over.
    async fn next(&self) -> Option<(u64, Option<Instant>)> {
        match self {
            Source::Paced { due, schedule } => {
                let index = due.recv_async().await.ok()?;
                Some((index, Some(schedule.at(index))))
            }
            Source::Saturating { next, deadline } => {
                (Instant::now() < *deadline).then(|| (next.fetch_add(1, Ordering::Relaxed), None))
            }
        }
    }
}

/// The tally of one connection.
#[derive(Default)]
struct Tally {
    sent: u64,
    ok: u64,
    failed: u64,
    overdue: u64,
    first_failure: Option<String>,
    latency: Latencies,
    last_answer: Option<Instant>,
}

impl Tally {
    fn fail(&mut self, why: String) {
        self.failed += 1;
        self.first_failure.get_or_insert(why);
    }

    fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.failed += other.failed;
        self.overdue += other.overdue;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
        self.latency.add(&other.latency);
        self.last_answer = self.last_answer.max(other.last_answer);
    }
}

/// Opens the connections, then sends as `plan` says and waits for every answer.
pub async fn run(plan: &LoadPlan, make: MakeDelivery) -> anyhow::Result<LoadReport> {
    let mut connections = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections.max(1) {
        connections.push(Connection::open(plan.target).await?);
    }
    // A short lead so that every connection task is waiting before the first request is due.
    let start = Instant::now() + Duration::from_millis(20);
    let (source, schedule) = match plan.pace {
        Pace::Fixed { rate } => {
            let schedule = Schedule { start, rate };
            let (sender, due) = flume::unbounded();
            let total = schedule.count_within(plan.duration);
            std::thread::Builder::new()
                .name("bench-pacer".into())
                .spawn(move || pace(schedule, total, sender))
                .context("starting the pacing thread")?;
            (Source::Paced { due, schedule }, Some(schedule))
        }
        Pace::Saturate => {
            tokio::time::sleep_until(start.into()).await;
            (
                Source::Saturating {
                    next: AtomicU64::new(0),
                    deadline: start + plan.duration,
                },
                None,
            )
        }
    };
    let source = Arc::new(source);
    let mut tasks = tokio::task::JoinSet::new();
    for connection in connections {
        let (source, make, path) = (source.clone(), make.clone(), plan.path.clone());
        tasks.spawn(async move { drive(connection, &source, &make, &path).await });
    }
    let mut total = Tally::default();
    while let Some(tally) = tasks.join_next().await {
        total.merge(tally.context("a load connection panicked")?);
    }
    let end = total.last_answer.unwrap_or(start).max(start);
    Ok(LoadReport {
        sent: total.sent,
        overdue: total.overdue,
        ok: total.ok,
        failed: total.failed,
        first_failure: total.first_failure,
        elapsed: end - start,
        latency: total.latency,
        schedule,
    })
}

/// Hands out request numbers as they fall due; runs on its own thread.
fn pace(schedule: Schedule, total: u64, due: flume::Sender<u64>) {
    for index in 0..total {
        let at = schedule.at(index);
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        if due.send(index).is_err() {
            return;
        }
    }
}

/// One connection's loop: take the next request, send it, tally the answer; reconnect after a failure.
async fn drive(mut connection: Connection, source: &Source, make: &MakeDelivery, path: &str) -> Tally {
    let mut tally = Tally::default();
    while let Some((index, due)) = source.next().await {
        let late = due.map(|due| due.elapsed()).unwrap_or_default();
        if late > MAX_OVERDUE {
            tally.overdue += 1;
            tally.latency.record(late);
            continue;
        }
        let delivery = make(index);
        let sent_at = Instant::now();
        tally.sent += 1;
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, connection.post(path, delivery))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {} s", ANSWER_TIMEOUT.as_secs())));
        match answer {
            Ok(status) if status.is_success() => {
                let answered = Instant::now();
                tally.ok += 1;
                tally.latency.record(answered - due.unwrap_or(sent_at));
                tally.last_answer = Some(answered);
            }
            Ok(status) => {
                tally.last_answer = Some(Instant::now());
                tally.fail(format!("HTTP {status}"));
            }
            Err(error) => {
                tally.fail(format!("{error:#}"));
                match Connection::open(connection.target).await {
                    Ok(fresh) => connection = fresh,
                    Err(_) => break,
                }
            }
        }
    }
    tally
}

struct Connection {
    target: SocketAddr,
    host: String,
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    async fn open(target: SocketAddr) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(target)
            .await
            .with_context(|| format!("connecting to {target}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes; either way the run has its answer.
            let _ = connection.await;
        });
        Ok(Connection {
            target,
            host: target.to_string(),
            sender,
        })
    }

    /// Posts the delivery and reads the whole answer.
    async fn post(&mut self, path: &str, delivery: Delivery) -> anyhow::Result<hyper::StatusCode> {
        self.sender.ready().await?;
        let request = Request::post(path)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, delivery.signature)
            .body(Full::new(delivery.body))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_times_are_evenly_spaced_from_the_start() {
        let start = Instant::now();
        let schedule = Schedule { start, rate: 2_000.0 };
        assert_eq!(schedule.at(0), start);
        assert_eq!(schedule.at(1) - start, Duration::from_micros(500));
        assert_eq!(schedule.at(2_000) - start, Duration::from_secs(1));
        // No drift: the millionth send is exactly 500 s in.
        assert_eq!(schedule.at(1_000_000) - start, Duration::from_secs(500));
    }

    #[test]
    fn a_duration_holds_rate_times_seconds_sends() {
        let schedule = Schedule {
            start: Instant::now(),
            rate: 500.0,
        };
        assert_eq!(schedule.count_within(Duration::from_secs(10)), 5_000);
        assert_eq!(schedule.count_within(Duration::from_millis(2_999)), 1_499);
    }

    #[test]
    fn seed_deliveries_are_signed_and_carry_their_number() {
        let delivery = Delivery::seed_job_update("s3cret", "job-1", "rate-500", 42);
        assert_eq!(delivery.signature, sign(b"s3cret", &delivery.body));
        let body: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(body["object_uuid"], "job-1");
        assert_eq!(body["changes"]["bench_seq"], 42);
        assert_eq!(body["changes"]["bench_step"], "rate-500");
    }

    #[test]
    fn tallies_merge_and_keep_the_first_failure() {
        let mut total = Tally::default();
        let mut one = Tally {
            sent: 3,
            ok: 2,
            ..Tally::default()
        };
        one.fail("HTTP 503".into());
        let mut two = Tally {
            sent: 1,
            overdue: 2,
            ..Tally::default()
        };
        two.fail("connection reset".into());
        total.merge(one);
        total.merge(two);
        assert_eq!((total.sent, total.ok, total.failed, total.overdue), (4, 2, 2, 2));
        assert_eq!(total.first_failure.as_deref(), Some("HTTP 503"));
    }
}
