//! Reports over the rollups: a range resolved to buckets (`Span`), each bucket's counts of one dimension and
//! latency percentiles, the range's totals beside the previous period's, and the CSV of what a report shows.
//! Percentiles of a longer bucket or a whole range come from merged sketches, never from averaged percentiles.

use std::collections::BTreeMap;

use app::analytics::model::{
    AnalyticsBucket, AnalyticsDimension, AnalyticsQuery, AnalyticsRange, AnalyticsReport, AnalyticsTotals,
    DestinationTotals, FailingObject, Percentiles,
};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::store::analytics::{AnalyticsCount, BucketLatency, Dimension, LatencyMetric, Period, Sketch, DAY_MS};
use crate::store::{millis_to_rfc3339, Store, StoreError};

/// The longest custom range, as long as rollups are kept by default.
pub const MAX_RANGE_DAYS: i64 = 400;
/// Ranges up to this long are reported by hour, longer ones by day.
const HOURLY_UP_TO_MS: i64 = 7 * DAY_MS;
/// How many of the objects that failed most a report lists.
const TOP_FAILING: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The query names no range the report can cover; the reason is for the caller.
    #[error("{0}")]
    InvalidQuery(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The buckets a report covers: of `period`, starting in `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub period: Period,
    pub from: i64,
    pub to: i64,
}

impl Span {
    /// The span `query` asks for at `now`: a fixed range ends with the current hour (or day); a custom one covers
    /// the hours (or days) from `from` up to `to`, where a date `to` includes that day.
    pub fn of(query: &AnalyticsQuery, now: i64) -> Result<Span, String> {
        let last = |period: Period, length: i64| {
            let to = period.start_of(now) + period.millis();
            Span {
                period,
                from: to - length,
                to,
            }
        };
        Ok(match query.range {
            AnalyticsRange::Day => last(Period::Hour, DAY_MS),
            AnalyticsRange::Week => last(Period::Hour, 7 * DAY_MS),
            AnalyticsRange::Month => last(Period::Day, 30 * DAY_MS),
            AnalyticsRange::Quarter => last(Period::Day, 90 * DAY_MS),
            AnalyticsRange::Custom => {
                let from = parse_time(query.from.as_deref(), "from", false)?;
                let to = parse_time(query.to.as_deref(), "to", true)?;
                if to <= from {
                    return Err("`to` must be after `from`".into());
                }
                if to - from > MAX_RANGE_DAYS * DAY_MS {
                    return Err(format!("a range covers at most {MAX_RANGE_DAYS} days"));
                }
                let period = if to - from <= HOURLY_UP_TO_MS {
                    Period::Hour
                } else {
                    Period::Day
                };
                Span {
                    period,
                    from: period.start_of(from),
                    to: period.start_of(to - 1) + period.millis(),
                }
            }
        })
    }

    /// The span of the same length just before this one.
    pub fn previous(self) -> Span {
        Span {
            from: self.from - (self.to - self.from),
            to: self.from,
            ..self
        }
    }

    fn starts(self) -> impl Iterator<Item = i64> {
        (self.from..self.to).step_by(self.period.millis() as usize)
    }
}

/// A custom range's end: an RFC 3339 time, or a `YYYY-MM-DD` date (UTC) taken as its start, or as its end
/// when `end_of_date`.
fn parse_time(value: Option<&str>, name: &str, end_of_date: bool) -> Result<i64, String> {
    let value = value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| format!("a custom range needs `{name}`"))?;
    if let Ok(time) = OffsetDateTime::parse(value, &Rfc3339) {
        return Ok((time.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let date = Date::parse(value, format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("`{name}` must be an RFC 3339 time or a YYYY-MM-DD date, not {value:?}"))?;
    let start = date.midnight().assume_utc().unix_timestamp() * 1000;
    Ok(if end_of_date { start + DAY_MS } else { start })
}

/// The account's report for `query` at `now`.
pub async fn report(
    store: &dyn Store,
    account: &str,
    query: &AnalyticsQuery,
    now: i64,
) -> Result<AnalyticsReport, ReportError> {
    let span = Span::of(query, now).map_err(ReportError::InvalidQuery)?;
    Ok(report_over(store, account, span, query.range, query.dimension).await?)
}

/// The account's report over `span`, its buckets counting `dimension`.
pub async fn report_over(
    store: &dyn Store,
    account: &str,
    span: Span,
    range: AnalyticsRange,
    dimension: AnalyticsDimension,
) -> Result<AnalyticsReport, StoreError> {
    let previous = span.previous();
    let counts = store.analytics_counts(account, span.period, span.from, span.to).await?;
    let latency = store
        .analytics_latency(account, span.period, span.from, span.to)
        .await?;
    let previous_counts = store
        .analytics_counts(account, previous.period, previous.from, previous.to)
        .await?;
    let previous_latency = store
        .analytics_latency(account, previous.period, previous.from, previous.to)
        .await?;
    let buckets = span
        .starts()
        .map(|start| bucket(start, &counts, &latency, dimension))
        .collect();
    Ok(AnalyticsReport {
        range,
        dimension,
        from: millis_to_rfc3339(span.from),
        to: millis_to_rfc3339(span.to),
        bucket: span.period.as_str().into(),
        buckets,
        totals: totals(&counts, &latency, dimension),
        previous: totals(&previous_counts, &previous_latency, dimension),
    })
}

/// What `count` adds to `dimension`'s counts, under which key.
fn dimension_key(count: &AnalyticsCount, dimension: AnalyticsDimension) -> Option<String> {
    let stored = Dimension::try_from(count.dimension.clone()).ok()?;
    match (dimension, stored) {
        (AnalyticsDimension::Outcome, Dimension::ObjectType) => Some(count.outcome.clone()),
        (AnalyticsDimension::ObjectType, Dimension::ObjectType)
        | (AnalyticsDimension::EventType, Dimension::EventType)
        | (AnalyticsDimension::ErrorClass, Dimension::ErrorClass) => Some(count.key.clone()),
        (AnalyticsDimension::Destination, Dimension::Destination) => Some(format!("{}: {}", count.key, count.outcome)),
        _ => None,
    }
}

fn bucket(
    start: i64,
    counts: &[AnalyticsCount],
    latency: &[BucketLatency],
    dimension: AnalyticsDimension,
) -> AnalyticsBucket {
    let mut keyed = BTreeMap::new();
    for count in counts.iter().filter(|count| count.bucket_start == start) {
        if let Some(key) = dimension_key(count, dimension) {
            *keyed.entry(key).or_default() += count.count;
        }
    }
    let sketch_of = |metric: LatencyMetric| {
        latency
            .iter()
            .find(|bucket| bucket.bucket_start == start && bucket.metric == metric)
            .map(|bucket| percentiles(&bucket.sketch))
            .unwrap_or_default()
    };
    AnalyticsBucket {
        start: millis_to_rfc3339(start),
        counts: keyed,
        processing: sketch_of(LatencyMetric::Processing),
        browser: sketch_of(LatencyMetric::Browser),
    }
}

fn percentiles(sketch: &Sketch) -> Percentiles {
    Percentiles {
        samples: sketch.samples(),
        p50_ms: sketch.quantile(0.5),
        p95_ms: sketch.quantile(0.95),
        p99_ms: sketch.quantile(0.99),
    }
}

/// The sums of a period's counts and the percentiles of its merged sketches.
fn totals(counts: &[AnalyticsCount], latency: &[BucketLatency], dimension: AnalyticsDimension) -> AnalyticsTotals {
    let mut totals = AnalyticsTotals::default();
    let mut deliveries: BTreeMap<String, DestinationTotals> = BTreeMap::new();
    let mut failing: BTreeMap<String, i64> = BTreeMap::new();
    for count in counts {
        if let Some(key) = dimension_key(count, dimension) {
            *totals.by_key.entry(key).or_default() += count.count;
        }
        let key = count.key.clone();
        match Dimension::try_from(count.dimension.clone()).ok() {
            Some(Dimension::ObjectType) => {
                totals.events += count.count;
                *totals.by_outcome.entry(count.outcome.clone()).or_default() += count.count;
            }
            Some(Dimension::ErrorClass) => *totals.error_classes.entry(key).or_default() += count.count,
            Some(Dimension::Destination) => {
                let destination = deliveries.entry(key.clone()).or_insert_with(|| DestinationTotals {
                    destination: key,
                    ..DestinationTotals::default()
                });
                match count.outcome.as_str() {
                    "delivered" => destination.delivered += count.count,
                    _ => destination.failed += count.count,
                }
            }
            Some(Dimension::FailingObject) => *failing.entry(key).or_default() += count.count,
            Some(Dimension::ApiRequests) => totals.api_requests += count.count,
            Some(Dimension::Duplicates) => totals.duplicates += count.count,
            Some(Dimension::Refused) => *totals.refused.entry(key).or_default() += count.count,
            Some(Dimension::EventType) | None => {}
        }
    }
    totals.deliveries = deliveries.into_values().collect();
    let mut failing: Vec<FailingObject> = failing
        .into_iter()
        .map(|(object, failures)| FailingObject { object, failures })
        .collect();
    failing.sort_by(|a, b| b.failures.cmp(&a.failures).then_with(|| a.object.cmp(&b.object)));
    failing.truncate(TOP_FAILING);
    totals.top_failing_objects = failing;
    let merged = |metric: LatencyMetric| {
        let mut all = Sketch::default();
        for bucket in latency.iter().filter(|bucket| bucket.metric == metric) {
            all.merge(&bucket.sketch);
        }
        percentiles(&all)
    };
    totals.processing = merged(LatencyMetric::Processing);
    totals.browser = merged(LatencyMetric::Browser);
    totals
}

/// The report's buckets as CSV: a header row, then one row per bucket with the dimension's counts (a column per
/// key any bucket has) and the latency percentiles in milliseconds (empty without samples).
pub fn to_csv(report: &AnalyticsReport) -> String {
    let mut keys: Vec<&String> = report.buckets.iter().flat_map(|bucket| bucket.counts.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut header = vec!["bucket_start".to_owned()];
    header.extend(keys.iter().map(|key| csv_field(key)));
    for metric in ["processing", "browser"] {
        for percentile in ["p50", "p95", "p99"] {
            header.push(format!("{metric}_{percentile}_ms"));
        }
    }
    let mut csv = header.join(",") + "\r\n";
    for bucket in &report.buckets {
        let mut row = vec![bucket.start.clone()];
        row.extend(
            keys.iter()
                .map(|key| bucket.counts.get(*key).copied().unwrap_or(0).to_string()),
        );
        for latency in [&bucket.processing, &bucket.browser] {
            for value in [latency.p50_ms, latency.p95_ms, latency.p99_ms] {
                row.push(value.map(|ms| ms.to_string()).unwrap_or_default());
            }
        }
        csv += &row.join(",");
        csv += "\r\n";
    }
    csv
}

/// A field quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::analytics::HOUR_MS;

    const NOW: i64 = 1_767_225_600_000 + 10 * HOUR_MS + 123; // 2026-01-01T10:00:00.123Z

    fn custom(from: &str, to: &str) -> AnalyticsQuery {
        AnalyticsQuery {
            range: AnalyticsRange::Custom,
            from: Some(from.into()),
            to: Some(to.into()),
            ..AnalyticsQuery::default()
        }
    }

    #[test]
    fn fixed_ranges_end_with_the_current_bucket_and_compare_with_the_period_before() {
        let day = Span::of(&AnalyticsQuery::default(), NOW).unwrap();
        assert_eq!((day.period, day.to - day.from), (Period::Hour, DAY_MS));
        assert_eq!(day.to, Period::Hour.start_of(NOW) + HOUR_MS);
        assert_eq!(day.starts().count(), 24);
        assert_eq!(day.previous().to, day.from);
        let quarter = AnalyticsQuery {
            range: AnalyticsRange::Quarter,
            ..AnalyticsQuery::default()
        };
        let quarter = Span::of(&quarter, NOW).unwrap();
        assert_eq!((quarter.period, quarter.starts().count()), (Period::Day, 90));
    }

    #[test]
    fn a_custom_range_takes_dates_whole_and_goes_by_day_beyond_a_week() {
        let span = Span::of(&custom("2026-01-01", "2026-01-03"), NOW).unwrap();
        assert_eq!((span.period, span.starts().count()), (Period::Hour, 72));
        let span = Span::of(&custom("2026-01-01T10:30:00Z", "2026-02-01"), NOW).unwrap();
        assert_eq!(span.period, Period::Day);
        assert_eq!(span.starts().count(), 32);
        assert!(Span::of(&custom("2026-01-03", "2026-01-01"), NOW).is_err());
        assert!(Span::of(&custom("2024-01-01", "2026-01-01"), NOW)
            .unwrap_err()
            .contains("400"));
        assert!(Span::of(&custom("yesterday", "2026-01-01"), NOW)
            .unwrap_err()
            .contains("`from`"));
        let missing = AnalyticsQuery {
            range: AnalyticsRange::Custom,
            ..AnalyticsQuery::default()
        };
        assert!(Span::of(&missing, NOW).is_err());
    }

    fn count(bucket_start: i64, dimension: Dimension, key: &str, outcome: &str, count: i64) -> AnalyticsCount {
        AnalyticsCount {
            bucket_start,
            dimension: dimension.as_str().into(),
            key: key.into(),
            outcome: outcome.into(),
            count,
        }
    }

    #[test]
    fn totals_sum_every_dimension_and_rank_the_objects_that_failed_most() {
        let counts = [
            count(0, Dimension::ObjectType, "job", "success", 5),
            count(HOUR_MS, Dimension::ObjectType, "job", "failed", 2),
            count(HOUR_MS, Dimension::ObjectType, "company", "success", 1),
            count(0, Dimension::Destination, "ops", "delivered", 3),
            count(0, Dimension::Destination, "ops", "failed", 1),
            count(0, Dimension::FailingObject, "job:a", "", 1),
            count(HOUR_MS, Dimension::FailingObject, "job:b", "", 2),
            count(0, Dimension::ApiRequests, "", "", 9),
            count(0, Dimension::Refused, "unauthorized", "", 4),
        ];
        let totals = totals(&counts, &[], AnalyticsDimension::ObjectType);
        assert_eq!(totals.events, 8);
        assert_eq!(totals.by_outcome["success"], 6);
        assert_eq!(totals.by_key["job"], 7);
        assert_eq!(
            totals.deliveries,
            [DestinationTotals {
                destination: "ops".into(),
                delivered: 3,
                failed: 1
            }]
        );
        assert_eq!(totals.top_failing_objects[0].object, "job:b");
        assert_eq!((totals.api_requests, totals.refused["unauthorized"]), (9, 4));
        assert_eq!(totals.processing.samples, 0);
    }

    #[test]
    fn the_csv_has_a_header_and_a_row_per_bucket_with_keys_quoted_where_needed() {
        let mut report = AnalyticsReport::default();
        let mut first = AnalyticsBucket {
            start: "2026-01-01T00:00:00Z".into(),
            ..AnalyticsBucket::default()
        };
        first.counts.insert("success".into(), 3);
        first.counts.insert("a,b".into(), 1);
        first.processing = Percentiles {
            samples: 3,
            p50_ms: Some(10),
            p95_ms: Some(20),
            p99_ms: Some(30),
        };
        let second = AnalyticsBucket {
            start: "2026-01-01T01:00:00Z".into(),
            ..AnalyticsBucket::default()
        };
        report.buckets = vec![first, second];
        let csv = to_csv(&report);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "bucket_start,\"a,b\",success,processing_p50_ms,processing_p95_ms,processing_p99_ms,\
             browser_p50_ms,browser_p95_ms,browser_p99_ms"
        );
        assert_eq!(lines[1], "2026-01-01T00:00:00Z,1,3,10,20,30,,,");
        assert_eq!(lines[2], "2026-01-01T01:00:00Z,0,0,,,,,,");
        assert_eq!(lines[3], "");
    }
}
