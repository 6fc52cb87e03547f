//! Prometheus `GET /metrics`: what the pipeline counts as it runs (webhooks received, events finished, latencies,
//! open realtime connections) and what the store holds at scrape time (queue depth, oldest queued age, ServiceM8
//! API budget use).
//!
//! One recorder serves the whole process: the first server built installs it and every later one shares it. The
//! code elsewhere records through the small functions here, so metric names and labels live in this file alone;
//! `prometheus.rs` serves them.

use std::sync::OnceLock;
use std::time::Duration;

use app::model::PipelineHealth;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::analytics::tally::Tallies;
use crate::error::ApiError;
use crate::store::analytics::Dimension;
use crate::store::outbound::DeliveryOutcome;
use crate::store::{now_millis, Completion, Insertion};

const WEBHOOKS_RECEIVED: &str = "sm8_webhooks_received_total";
const EVENTS_FINISHED: &str = "sm8_events_finished_total";
const PROCESSING_DURATION: &str = "sm8_processing_duration_seconds";
const WEBHOOK_TO_BROADCAST: &str = "sm8_webhook_to_broadcast_seconds";
const QUEUE_DEPTH: &str = "sm8_queue_depth";
const OLDEST_QUEUED_AGE: &str = "sm8_oldest_queued_age_seconds";
const API_REQUESTS_USED: &str = "sm8_servicem8_api_requests_used";
const API_REQUESTS_LIMIT: &str = "sm8_servicem8_api_requests_limit";
const REALTIME_CONNECTIONS: &str = "sm8_realtime_connections";
const SQLITE_LOG_BYTES: &str = "sm8_sqlite_wal_bytes";
const REALTIME_DROPPED: &str = "sm8_realtime_updates_dropped_total";
const REALTIME_REFETCHES: &str = "sm8_realtime_refetches_total";
const REALTIME_RETAINED_BYTES: &str = "sm8_realtime_retained_bytes";
const REALTIME_RETAINED_BROADCASTS: &str = "sm8_realtime_retained_broadcasts";
const DELIVERY_ATTEMPTS: &str = "sm8_delivery_attempts_total";
const DELIVERY_DURATION: &str = "sm8_delivery_duration_seconds";
const DESTINATION_CIRCUIT_OPEN: &str = "sm8_destination_circuit_open";

/// Upper bounds of the latency histograms' buckets, in seconds: from a fast local batch to a retried one.
const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process's recorder, installed on first use.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = prometheus_builder().build_recorder();
            let handle = recorder.handle();
            if let Err(error) = metrics::set_global_recorder(recorder) {
                tracing::warn!(%error, "another metrics recorder is installed: /metrics will miss what it records");
            }
            describe_metrics();
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

fn prometheus_builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS_SECONDS)
        .expect("the latency buckets are not empty")
}

/// Histogram samples wait in the recorder until they are folded into buckets, which a scrape also does; without a
/// scraper they would pile up for the life of the process, which is also the recorder's.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start metrics upkeep: histograms are folded only when scraped");
    }
}

fn describe_metrics() {
    describe_counter!(
        WEBHOOKS_RECEIVED,
        Unit::Count,
        "Webhooks received, by outcome: each event of an accepted delivery is stored or a duplicate; a refused \
         delivery counts once as unauthorized (verification failed), bad_request or too_large"
    );
    describe_counter!(
        EVENTS_FINISHED,
        Unit::Count,
        "Processing attempts finished, by outcome: success, skipped, retry, failed, or interrupted (the worker \
         stopped, or held the events past their lease)"
    );
    describe_histogram!(
        PROCESSING_DURATION,
        Unit::Seconds,
        "Time from claiming a batch of events to recording their outcome"
    );
    describe_histogram!(
        WEBHOOK_TO_BROADCAST,
        Unit::Seconds,
        "Time from receiving an event's webhook to announcing its record update to realtime subscribers"
    );
    describe_gauge!(QUEUE_DEPTH, Unit::Count, "Events queued or processing");
    describe_gauge!(
        OLDEST_QUEUED_AGE,
        Unit::Seconds,
        "Age of the oldest queued event; 0 when none is queued"
    );
    describe_gauge!(
        API_REQUESTS_USED,
        Unit::Count,
        "ServiceM8 API requests made in the current window (minute or day), shared by every node"
    );
    describe_gauge!(
        API_REQUESTS_LIMIT,
        Unit::Count,
        "ServiceM8 API requests allowed per window (minute or day)"
    );
    describe_gauge!(
        REALTIME_CONNECTIONS,
        Unit::Count,
        "Open realtime websocket connections on this node"
    );
    describe_gauge!(
        SQLITE_LOG_BYTES,
        Unit::Bytes,
        "Size of the SQLite write-ahead log file (sm8.db-wal) on disk; absent on PostgreSQL"
    );
    describe_counter!(
        REALTIME_DROPPED,
        Unit::Count,
        "Realtime messages lost on their way, by where: relay_lag (the relay fell behind the pipeline) or \
         slow_connection (a client's queue was full); the clients concerned are told to refetch"
    );
    describe_counter!(
        REALTIME_REFETCHES,
        Unit::Count,
        "System refetch messages sent to realtime clients because updates of a topic they joined were lost"
    );
    describe_gauge!(
        REALTIME_RETAINED_BYTES,
        Unit::Bytes,
        "Updates kept in memory for resuming realtime clients, as JSON text, over all topics (capped by \
         REALTIME_RETENTION_MIB); absent on PostgreSQL, which keeps them in the database"
    );
    describe_gauge!(
        REALTIME_RETAINED_BROADCASTS,
        Unit::Count,
        "Updates kept in memory for resuming realtime clients, over all topics"
    );
    describe_counter!(
        DELIVERY_ATTEMPTS,
        Unit::Count,
        "Attempts to send rules' deliveries, by destination kind and outcome: delivered, retry or failed"
    );
    describe_histogram!(
        DELIVERY_DURATION,
        Unit::Seconds,
        "How long one attempt to send a delivery took, by destination kind"
    );
    describe_gauge!(
        DESTINATION_CIRCUIT_OPEN,
        Unit::Count,
        "1 while a destination's circuit is open (its deliveries wait after consecutive failures), else 0"
    );
}

/// Counts an attempt at a delivery to a destination of `kind` and how long it took.
pub fn record_delivery(kind: &'static str, outcome: &DeliveryOutcome, took: Duration) {
    counter!(DELIVERY_ATTEMPTS, "kind" => kind, "outcome" => outcome.attempt_outcome().as_str()).increment(1);
    histogram!(DELIVERY_DURATION, "kind" => kind).record(took.as_secs_f64());
}

/// Whether `destination`'s circuit is open.
pub fn set_circuit(account: &str, destination: &str, open: bool) {
    gauge!(DESTINATION_CIRCUIT_OPEN, "account" => account.to_owned(), "destination" => destination.to_owned())
        .set(if open { 1.0 } else { 0.0 });
}

/// Sets the gauges read from the store at scrape time.
pub fn set_store_gauges(account: &str, health: &PipelineHealth) {
    let account = account.to_owned();
    gauge!(QUEUE_DEPTH, "account" => account.clone()).set(health.queue_depth as f64);
    gauge!(OLDEST_QUEUED_AGE, "account" => account.clone()).set(health.oldest_queued_seconds.unwrap_or(0) as f64);
    let budget = &health.api_budget;
    for (window, used, limit) in [
        ("minute", budget.minute_used, budget.minute_limit),
        ("day", budget.day_used, budget.day_limit),
    ] {
        gauge!(API_REQUESTS_USED, "account" => account.clone(), "window" => window).set(used as f64);
        gauge!(API_REQUESTS_LIMIT, "account" => account.clone(), "window" => window).set(limit as f64);
    }
}

/// The size of the SQLite log, where this process keeps one.
pub fn set_log_bytes(log_bytes: Option<u64>) {
    if let Some(bytes) = log_bytes {
        gauge!(SQLITE_LOG_BYTES).set(bytes as f64);
    }
}

/// What became of a webhook delivery, or of one event of an accepted delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WebhookOutcome {
    Stored,
    Duplicate,
    /// Verification failed.
    Unauthorized,
    BadRequest,
    TooLarge,
}

impl WebhookOutcome {
    fn label(self) -> &'static str {
        match self {
            WebhookOutcome::Stored => "stored",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::Unauthorized => "unauthorized",
            WebhookOutcome::BadRequest => "bad_request",
            WebhookOutcome::TooLarge => "too_large",
        }
    }

    /// The outcome a refused delivery's error stands for; none for errors that say nothing of the delivery.
    fn of_refusal(error: &ApiError) -> Option<Self> {
        match error {
            ApiError::Unauthorized(_) => Some(WebhookOutcome::Unauthorized),
            ApiError::BadRequest(_) => Some(WebhookOutcome::BadRequest),
            ApiError::PayloadTooLarge(_) | ApiError::TooManyEvents(_) | ApiError::EventTooLarge(_) => {
                Some(WebhookOutcome::TooLarge)
            }
            ApiError::NotFound(_)
            | ApiError::Forbidden(_)
            | ApiError::Gone(_)
            | ApiError::Conflict(_)
            | ApiError::TooManyRequests(_)
            | ApiError::BadGateway(_)
            | ApiError::Unavailable(_) => None,
        }
    }
}

fn count_webhooks(outcome: WebhookOutcome, account: Option<&str>, count: usize) {
    match account {
        Some(account) => counter!(WEBHOOKS_RECEIVED, "outcome" => outcome.label(), "account" => account.to_owned())
            .increment(count as u64),
        None => counter!(WEBHOOKS_RECEIVED, "outcome" => outcome.label()).increment(count as u64),
    }
}

/// Counts a delivery the receiver refused with `error` (its account is unknown when the refusal came first).
pub fn count_refused_webhook(error: &ApiError) {
    if let Some(outcome) = WebhookOutcome::of_refusal(error) {
        count_webhooks(outcome, None, 1);
    }
}

/// Counts a delivery to `account` the receiver refused with `error`, for the metrics and in `tallies` for the
/// account's analytics.
pub fn count_refused_account_webhook(tallies: &Tallies, account: &str, error: &ApiError) {
    if let Some(outcome) = WebhookOutcome::of_refusal(error) {
        count_webhooks(outcome, None, 1);
        tallies.count(account, now_millis(), Dimension::Refused, outcome.label(), 1);
    }
}

/// Counts each event of an accepted delivery to `account` as stored or duplicate, the duplicates also in `tallies`
/// for the account's analytics.
pub fn count_stored_webhooks(tallies: &Tallies, account: &str, insertions: &[Insertion]) {
    let duplicates = insertions
        .iter()
        .filter(|insertion| matches!(insertion, Insertion::Duplicate(_)))
        .count();
    count_webhooks(WebhookOutcome::Stored, Some(account), insertions.len() - duplicates);
    count_webhooks(WebhookOutcome::Duplicate, Some(account), duplicates);
    tallies.count(account, now_millis(), Dimension::Duplicates, "", duplicates as i64);
}

/// Counts `events` of `account` finished with `completion` and records how long they took since they were
/// claimed.
pub fn record_finished(account: &str, completion: &Completion, events: usize, elapsed_ms: i64) {
    counter!(EVENTS_FINISHED, "outcome" => completion.outcome_name(), "account" => account.to_owned())
        .increment(events as u64);
    histogram!(PROCESSING_DURATION).record(seconds(elapsed_ms));
}

/// Counts attempts found interrupted (their worker stopped, or held the events past the lease).
pub fn record_interrupted(events: u64) {
    counter!(EVENTS_FINISHED, "outcome" => "interrupted").increment(events);
}

/// Records how long ago an event of `account` whose record update was just announced was received (unix ms), for
/// the metrics and in `tallies` for the account's analytics.
pub fn record_broadcast(tallies: &Tallies, account: &str, received_at: i64) {
    let now = now_millis();
    histogram!(WEBHOOK_TO_BROADCAST).record(seconds(now - received_at));
    tallies.record_browser_latency(account, now, now - received_at);
}

/// Milliseconds as seconds; a negative span (clocks of two nodes disagreeing) counts as none.
fn seconds(millis: i64) -> f64 {
    millis.max(0) as f64 / 1000.0
}

/// Counts realtime messages lost `where` (`relay_lag` or `slow_connection`).
pub fn count_dropped_realtime_updates(reason: &'static str, messages: u64) {
    counter!(REALTIME_DROPPED, "reason" => reason).increment(messages);
}

/// Counts one refetch message sent to a realtime client.
pub fn count_realtime_refetch() {
    counter!(REALTIME_REFETCHES).increment(1);
}

/// Records what the in-memory realtime history holds.
pub fn set_realtime_retained(bytes: usize, broadcasts: usize) {
    gauge!(REALTIME_RETAINED_BYTES).set(bytes as f64);
    gauge!(REALTIME_RETAINED_BROADCASTS).set(broadcasts as f64);
}

/// Counts a realtime connection as open until the returned guard drops, however the connection ends.
pub fn count_realtime_connection() -> OpenRealtimeConnection {
    gauge!(REALTIME_CONNECTIONS).increment(1.0);
    OpenRealtimeConnection(())
}

/// One open realtime connection in the gauge.
#[must_use = "the connection counts as open only while this lives"]
pub struct OpenRealtimeConnection(());

impl Drop for OpenRealtimeConnection {
    fn drop(&mut self) {
        gauge!(REALTIME_CONNECTIONS).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::ApiBudgetUse;
    use uuid::Uuid;

    /// Runs `record` against a recorder of its own (tests run in parallel, the global one is shared) and
    /// returns what `/metrics` would show.
    fn rendered(record: impl FnOnce(&PrometheusHandle)) -> String {
        let recorder = prometheus_builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe_metrics();
            record(&handle);
        });
        handle.render()
    }

    /// The value of one series (`name{labels}`) in rendered metrics.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn refused_deliveries_are_counted_under_the_reason_they_were_refused() {
        let text = rendered(|_| {
            count_refused_webhook(&ApiError::Unauthorized("bad signature".into()));
            count_refused_webhook(&ApiError::BadRequest("empty".into()));
            count_refused_webhook(&ApiError::PayloadTooLarge(10));
            count_refused_webhook(&ApiError::Unavailable("storage".into()));
        });
        for outcome in ["unauthorized", "bad_request", "too_large"] {
            let series = format!("{WEBHOOKS_RECEIVED}{{outcome=\"{outcome}\"}}");
            assert_eq!(sample(&text, &series), Some(1.0), "{outcome} in\n{text}");
        }
        assert!(!text.contains("unavailable"), "{text}");
    }

    #[test]
    fn each_event_of_an_accepted_delivery_counts_as_stored_or_duplicate() {
        let text = rendered(|_| {
            count_stored_webhooks(
                &Tallies::default(),
                "acme",
                &[
                    Insertion::Stored(Uuid::now_v7()),
                    Insertion::Duplicate(Uuid::now_v7()),
                    Insertion::Stored(Uuid::now_v7()),
                ],
            )
        });
        assert_eq!(
            sample(
                &text,
                "sm8_webhooks_received_total{outcome=\"stored\",account=\"acme\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                "sm8_webhooks_received_total{outcome=\"duplicate\",account=\"acme\"}"
            ),
            Some(1.0)
        );
    }

    #[test]
    fn finished_events_are_counted_by_outcome_and_timed_once_per_finish() {
        let retry = Completion::Retry {
            next_attempt_at: 0,
            error: "timeout".into(),
        };
        let text = rendered(|_| {
            record_finished("acme", &retry, 3, 1_500);
            record_finished("acme", &Completion::Success, 1, -20);
        });
        assert_eq!(
            sample(&text, "sm8_events_finished_total{outcome=\"retry\",account=\"acme\"}"),
            Some(3.0)
        );
        assert_eq!(
            sample(&text, "sm8_events_finished_total{outcome=\"success\",account=\"acme\"}"),
            Some(1.0)
        );
        assert_eq!(sample(&text, "sm8_processing_duration_seconds_count"), Some(2.0));
        assert_eq!(sample(&text, "sm8_processing_duration_seconds_sum"), Some(1.5));
        assert_eq!(
            sample(&text, "sm8_processing_duration_seconds_bucket{le=\"2.5\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "sm8_processing_duration_seconds_bucket{le=\"1\"}"),
            Some(1.0)
        );
    }

    #[test]
    fn broadcast_latency_runs_from_receipt_to_the_announcement() {
        let text = rendered(|_| record_broadcast(&Tallies::default(), "acme", now_millis() - 2_000));
        assert_eq!(sample(&text, "sm8_webhook_to_broadcast_seconds_count"), Some(1.0));
        let sum = sample(&text, "sm8_webhook_to_broadcast_seconds_sum").unwrap();
        assert!((2.0..3.0).contains(&sum), "{sum}");
    }

    #[test]
    fn an_open_realtime_connection_is_counted_until_its_guard_drops() {
        let text = rendered(|handle| {
            let first = count_realtime_connection();
            let second = count_realtime_connection();
            assert_eq!(sample(&handle.render(), REALTIME_CONNECTIONS), Some(2.0));
            drop(first);
            drop(second);
        });
        assert_eq!(sample(&text, REALTIME_CONNECTIONS), Some(0.0));
    }

    #[test]
    fn store_gauges_show_the_queue_and_each_budget_window() {
        let health = PipelineHealth {
            queue_depth: 7,
            oldest_queued_seconds: Some(42),
            api_budget: ApiBudgetUse {
                minute_used: 3,
                minute_limit: 180,
                day_used: 900,
                day_limit: 20_000,
            },
            ..PipelineHealth::default()
        };
        let text = rendered(|_| {
            set_store_gauges("acme", &health);
            set_log_bytes(Some(4096));
        });
        assert_eq!(sample(&text, "sm8_queue_depth{account=\"acme\"}"), Some(7.0));
        assert_eq!(
            sample(&text, "sm8_oldest_queued_age_seconds{account=\"acme\"}"),
            Some(42.0)
        );
        assert_eq!(sample(&text, SQLITE_LOG_BYTES), Some(4096.0));
        for (series, value) in [
            ("used{account=\"acme\",window=\"minute\"}", 3.0),
            ("limit{account=\"acme\",window=\"minute\"}", 180.0),
            ("used{account=\"acme\",window=\"day\"}", 900.0),
            ("limit{account=\"acme\",window=\"day\"}", 20_000.0),
        ] {
            let series = format!("sm8_servicem8_api_requests_{series}");
            assert_eq!(sample(&text, &series), Some(value), "{series} in\n{text}");
        }

        let idle = rendered(|_| {
            set_store_gauges("acme", &PipelineHealth::default());
            set_log_bytes(None);
        });
        assert_eq!(
            sample(&idle, "sm8_oldest_queued_age_seconds{account=\"acme\"}"),
            Some(0.0)
        );
        assert_eq!(sample(&idle, SQLITE_LOG_BYTES), None, "no log on PostgreSQL");
    }

    #[test]
    fn every_metric_is_exported_with_help_text_and_its_type() {
        let text = rendered(|_| {
            count_webhooks(WebhookOutcome::Stored, Some("acme"), 1);
            record_finished("acme", &Completion::Success, 1, 10);
            record_broadcast(&Tallies::default(), "acme", now_millis());
            set_store_gauges("acme", &PipelineHealth::default());
            set_log_bytes(Some(0));
            drop(count_realtime_connection());
            set_realtime_retained(10, 1);
            count_dropped_realtime_updates("relay_lag", 1);
            count_realtime_refetch();
            record_delivery("webhook", &DeliveryOutcome::Delivered, Duration::from_millis(3));
            set_circuit("acme", "ops", false);
        });
        for (name, kind) in [
            (WEBHOOKS_RECEIVED, "counter"),
            (EVENTS_FINISHED, "counter"),
            (PROCESSING_DURATION, "histogram"),
            (WEBHOOK_TO_BROADCAST, "histogram"),
            (QUEUE_DEPTH, "gauge"),
            (OLDEST_QUEUED_AGE, "gauge"),
            (API_REQUESTS_USED, "gauge"),
            (API_REQUESTS_LIMIT, "gauge"),
            (REALTIME_CONNECTIONS, "gauge"),
            (SQLITE_LOG_BYTES, "gauge"),
            (REALTIME_DROPPED, "counter"),
            (REALTIME_REFETCHES, "counter"),
            (REALTIME_RETAINED_BYTES, "gauge"),
            (REALTIME_RETAINED_BROADCASTS, "gauge"),
            (DELIVERY_ATTEMPTS, "counter"),
            (DELIVERY_DURATION, "histogram"),
            (DESTINATION_CIRCUIT_OPEN, "gauge"),
        ] {
            assert!(name.starts_with("sm8_"), "{name}");
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no help for {name} in\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} is not a {kind} in\n{text}"
            );
        }
    }
}
