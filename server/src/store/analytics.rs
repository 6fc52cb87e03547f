//! Analytics that outlive the events: hourly and daily rollups per account (`Analytics`, written once for both
//! engines in `analytics_sql.rs`). Counts are kept by dimension, key and outcome; latency distributions as
//! HdrHistogram sketches, which merge exactly, so a week's percentiles from seven daily sketches are those of one
//! histogram of every sample.
//!
//! A rollup pass adds each window of finished events, attempts and deliveries once: the account's watermark moves
//! by compare-and-set in the transaction that adds the window, so two nodes never add one twice. What a node
//! counts in memory (`HourTally`) is added beside it. Daily rows are recomputed from the hours they hold.

use async_trait::async_trait;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;

use super::outbound::stored_by_name;
use super::StoreError;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

stored_by_name! {
    /// The width of a bucket.
    Period("period") {
        Hour => "hour",
        Day => "day",
    }
}

impl Period {
    pub fn millis(self) -> i64 {
        match self {
            Period::Hour => HOUR_MS,
            Period::Day => DAY_MS,
        }
    }

    /// The start of the bucket holding `at` (UTC).
    pub fn start_of(self, at: i64) -> i64 {
        at - at.rem_euclid(self.millis())
    }
}

stored_by_name! {
    /// What a count counts (`analytics_counts.dimension`).
    Dimension("dimension") {
        /// Finished events by object type (key) and status (outcome).
        ObjectType => "object_type",
        /// Finished events by event type and status.
        EventType => "event_type",
        /// Failed attempts by class: `http_<status>`, `timeout`, `network`, `parse` or `other`.
        ErrorClass => "error_class",
        /// Finished deliveries by destination name and status.
        Destination => "destination",
        /// Events that failed for good, by `object_type:uuid`.
        FailingObject => "failing_object",
        /// ServiceM8 requests made (counted in memory by each node).
        ApiRequests => "api_requests",
        /// Events received again (counted in memory).
        Duplicates => "duplicates",
        /// Deliveries the receiver refused (counted in memory).
        Refused => "refused",
    }
}

stored_by_name! {
    /// Which latency a sketch measures (`analytics_latency.metric`).
    LatencyMetric("latency metric") {
        /// From an event's arrival to its finish.
        Processing => "processing",
        /// From an event's arrival to its record update's broadcast to browsers.
        Browser => "browser",
    }
}

stored_by_name! {
    /// How often an account's digest goes (`analytics_digests.cadence`).
    Cadence("digest cadence") {
        Daily => "daily",
        Weekly => "weekly",
    }
}

impl Cadence {
    /// The last whole period before `now`, `[from, to)`: the UTC day before today's, or the week (from Monday)
    /// before this one.
    pub fn last_period(self, now: i64) -> (i64, i64) {
        let today = Period::Day.start_of(now);
        match self {
            Cadence::Daily => (today - DAY_MS, today),
            Cadence::Weekly => {
                // 1970-01-01, day 0, was a Thursday.
                let monday = today - ((today / DAY_MS) + 3).rem_euclid(7) * DAY_MS;
                (monday - 7 * DAY_MS, monday)
            }
        }
    }
}

/// An account's digest: where it goes and how often.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DigestRow {
    pub account: String,
    pub destination_id: String,
    #[sqlx(try_from = "String")]
    pub cadence: Cadence,
    pub updated_at: i64,
}

/// A latency distribution in milliseconds (3 significant figures), mergeable without loss of its buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Sketch(Histogram<u64>);

impl Default for Sketch {
    fn default() -> Self {
        Sketch(Histogram::new(3).expect("3 significant figures are supported"))
    }
}

impl Sketch {
    /// Records `count` samples of `millis` (a negative span, from two nodes' clocks, as none).
    pub fn record(&mut self, millis: i64, count: u64) {
        // An auto-resizing histogram takes any u64.
        let _ = self.0.record_n(millis.max(0) as u64, count);
    }

    pub fn merge(&mut self, other: &Sketch) {
        // Both auto-resize, so adding never runs out of range.
        let _ = self.0.add(&other.0);
    }

    pub fn samples(&self) -> u64 {
        self.0.len()
    }

    /// The value at `quantile` (0.5 for the median); none without samples.
    pub fn quantile(&self, quantile: f64) -> Option<u64> {
        (!self.0.is_empty()).then(|| self.0.value_at_quantile(quantile))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&self.0, &mut bytes)
            .expect("a histogram serializes into memory");
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Sketch, StoreError> {
        let mut histogram: Histogram<u64> = Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|error| StoreError::Corrupt(format!("latency sketch: {error:?}")))?;
        histogram.auto(true);
        Ok(Sketch(histogram))
    }
}

/// One count as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AnalyticsCount {
    pub bucket_start: i64,
    pub dimension: String,
    pub key: String,
    /// The status for events and deliveries; empty for the other dimensions.
    pub outcome: String,
    pub count: i64,
}

/// One bucket's sketch of one metric, every source merged.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketLatency {
    pub bucket_start: i64,
    pub metric: LatencyMetric,
    pub sketch: Sketch,
}

/// What one node counted in memory during one hour, added to the hour's rows by a rollup pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourTally {
    pub hour: i64,
    /// `(dimension, key, count)`.
    pub counts: Vec<(Dimension, String, i64)>,
    pub browser: Sketch,
}

/// One rollup pass over an account.
#[derive(Debug)]
pub struct RollupPass<'a> {
    pub account: &'a str,
    /// Events finished before this are rolled up; later ones wait for a later pass.
    pub until: i64,
    /// This node's id: its in-memory sketches are stored under it.
    pub node: &'a str,
    /// What this node counted for the account since its last pass.
    pub tallies: &'a [HourTally],
}

/// What a rollup pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rolled {
    /// Windows of finished events added, up to `rolled_until`.
    Added { rolled_until: i64 },
    /// Another pass (of this node or another) had rolled the window up already; only the tallies were added.
    AlreadyRolled,
}

#[async_trait]
pub trait Analytics {
    /// Adds the account's events, attempts and deliveries finished since its watermark and before `pass.until`
    /// (a day at a time, each in its own transaction), and the node's tallies, then recomputes the days touched.
    /// The first pass of an account starts at its oldest finished event.
    async fn roll_up(&self, pass: &RollupPass<'_>) -> Result<Rolled, StoreError>;
    /// The account's counts in buckets of `period` starting in `[from, to)`.
    async fn analytics_counts(
        &self,
        account: &str,
        period: Period,
        from: i64,
        to: i64,
    ) -> Result<Vec<AnalyticsCount>, StoreError>;
    /// The account's latency sketches in buckets of `period` starting in `[from, to)`, oldest first.
    async fn analytics_latency(
        &self,
        account: &str,
        period: Period,
        from: i64,
        to: i64,
    ) -> Result<Vec<BucketLatency>, StoreError>;
    /// Deletes every account's rollups of buckets that started before `cutoff`; returns how many rows.
    async fn delete_analytics_before(&self, cutoff: i64) -> Result<u64, StoreError>;
    /// The account's digest, if it has one.
    async fn analytics_digest(&self, account: &str) -> Result<Option<DigestRow>, StoreError>;
    /// Replaces the account's digest, or removes it (`None`).
    async fn set_analytics_digest(
        &self,
        account: &str,
        digest: Option<(&str, Cadence)>,
        now: i64,
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sketch_reads_back_from_its_bytes_with_its_percentiles() {
        let mut sketch = Sketch::default();
        for millis in [3, 40, 40, 900, 12_000, 250_000] {
            sketch.record(millis, 1);
        }
        let read = Sketch::from_bytes(&sketch.to_bytes()).unwrap();
        assert_eq!(read.samples(), 6);
        assert_eq!(read.quantile(0.5), sketch.quantile(0.5));
        assert_eq!(read.quantile(0.99), sketch.quantile(0.99));
        assert!(Sketch::from_bytes(b"not a histogram").is_err());
        assert_eq!(Sketch::default().quantile(0.5), None);
    }

    #[test]
    fn buckets_start_at_the_utc_hour_and_day() {
        let at = 1_704_067_200_000 + 5 * HOUR_MS + 61_000;
        assert_eq!(Period::Hour.start_of(at), 1_704_067_200_000 + 5 * HOUR_MS);
        assert_eq!(Period::Day.start_of(at), 1_704_067_200_000);
        assert_eq!(
            Dimension::try_from("error_class".to_owned()).unwrap(),
            Dimension::ErrorClass
        );
        assert!(Dimension::try_from("nope".to_owned()).is_err());
    }

    #[test]
    fn a_digest_covers_the_day_or_the_monday_to_sunday_week_before_now() {
        // 2026-01-07 is a Wednesday.
        let wednesday = 1_767_744_000_000 + 13 * HOUR_MS;
        let midnight = Period::Day.start_of(wednesday);
        assert_eq!(Cadence::Daily.last_period(wednesday), (midnight - DAY_MS, midnight));
        let monday = midnight - 2 * DAY_MS;
        assert_eq!(Cadence::Weekly.last_period(wednesday), (monday - 7 * DAY_MS, monday));
        assert_eq!(Cadence::Weekly.last_period(monday), (monday - 7 * DAY_MS, monday));
        assert!(Cadence::try_from("hourly".to_owned()).is_err());
    }
}
