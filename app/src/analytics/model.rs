//! Analytics as the dashboard and the management API show them: a range's buckets of one dimension, with the
//! range's totals and the previous period's beside them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The range a report covers, ending with the current hour (or day).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AnalyticsRange {
    /// The last 24 hours, by hour.
    #[default]
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days, by hour.
    #[serde(rename = "7d")]
    Week,
    /// The last 30 days, by day.
    #[serde(rename = "30d")]
    Month,
    /// The last 90 days, by day.
    #[serde(rename = "90d")]
    Quarter,
    /// `from` to `to`: by hour up to 7 days, by day beyond.
    #[serde(rename = "custom")]
    Custom,
}

impl AnalyticsRange {
    pub const ALL: [AnalyticsRange; 5] = [
        AnalyticsRange::Day,
        AnalyticsRange::Week,
        AnalyticsRange::Month,
        AnalyticsRange::Quarter,
        AnalyticsRange::Custom,
    ];

    /// Its name in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            AnalyticsRange::Day => "24h",
            AnalyticsRange::Week => "7d",
            AnalyticsRange::Month => "30d",
            AnalyticsRange::Quarter => "90d",
            AnalyticsRange::Custom => "custom",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AnalyticsRange::Day => "24 hours",
            AnalyticsRange::Week => "7 days",
            AnalyticsRange::Month => "30 days",
            AnalyticsRange::Quarter => "90 days",
            AnalyticsRange::Custom => "Custom",
        }
    }

    pub fn parse(name: &str) -> Option<AnalyticsRange> {
        Self::ALL.into_iter().find(|range| range.as_str() == name)
    }
}

/// What a report's buckets count.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalyticsDimension {
    /// Finished events by outcome: success, failed, skipped.
    #[default]
    Outcome,
    ObjectType,
    EventType,
    /// Failed attempts by class: `http_<status>`, `timeout`, `network`, `parse`, `other`.
    ErrorClass,
    /// Finished deliveries as `destination: outcome`.
    Destination,
}

impl AnalyticsDimension {
    pub const ALL: [AnalyticsDimension; 5] = [
        AnalyticsDimension::Outcome,
        AnalyticsDimension::ObjectType,
        AnalyticsDimension::EventType,
        AnalyticsDimension::ErrorClass,
        AnalyticsDimension::Destination,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AnalyticsDimension::Outcome => "outcome",
            AnalyticsDimension::ObjectType => "object_type",
            AnalyticsDimension::EventType => "event_type",
            AnalyticsDimension::ErrorClass => "error_class",
            AnalyticsDimension::Destination => "destination",
        }
    }

    pub fn parse(name: &str) -> Option<AnalyticsDimension> {
        Self::ALL.into_iter().find(|dimension| dimension.as_str() == name)
    }
}

/// What to report on. `from` and `to` (custom ranges only) are RFC 3339 times or `YYYY-MM-DD` dates (UTC).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AnalyticsQuery {
    #[serde(default)]
    pub range: AnalyticsRange,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub dimension: AnalyticsDimension,
}

impl AnalyticsQuery {
    /// The query string that asks for this report (without `?`), for links to it and its exports.
    pub fn to_query_string(&self) -> String {
        let mut pairs = vec![
            format!("range={}", self.range.as_str()),
            format!("dimension={}", self.dimension.as_str()),
        ];
        if self.range == AnalyticsRange::Custom {
            for (name, value) in [("from", &self.from), ("to", &self.to)] {
                if let Some(value) = value {
                    pairs.push(format!("{name}={}", encode_component(value)));
                }
            }
        }
        pairs.join("&")
    }
}

/// Percent-encodes what a date or time may hold beyond letters, digits, `-`, `.` and `_`.
fn encode_component(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// A latency distribution's percentiles, in milliseconds; none without samples.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub samples: u64,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

/// One hour or day of a report.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AnalyticsBucket {
    /// RFC 3339, the bucket's start.
    pub start: String,
    /// The dimension's counts in the bucket, by key.
    pub counts: BTreeMap<String, i64>,
    /// From arrival to finish.
    pub processing: Percentiles,
    /// From arrival to the record update's broadcast to browsers.
    pub browser: Percentiles,
}

/// An object whose events failed for good, and how many.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FailingObject {
    /// `object_type:uuid`.
    pub object: String,
    pub failures: i64,
}

/// A destination's finished deliveries.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DestinationTotals {
    pub destination: String,
    pub delivered: i64,
    pub failed: i64,
}

/// What a whole period holds.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AnalyticsTotals {
    /// Finished events.
    pub events: i64,
    pub by_outcome: BTreeMap<String, i64>,
    /// The report's dimension, by key.
    pub by_key: BTreeMap<String, i64>,
    pub error_classes: BTreeMap<String, i64>,
    pub deliveries: Vec<DestinationTotals>,
    /// The ten objects that failed most.
    pub top_failing_objects: Vec<FailingObject>,
    /// ServiceM8 requests made.
    pub api_requests: i64,
    /// Events received again and left out.
    pub duplicates: i64,
    /// Deliveries the receiver refused, by reason.
    pub refused: BTreeMap<String, i64>,
    pub processing: Percentiles,
    pub browser: Percentiles,
}

/// A report: the range's buckets of one dimension, its totals, and those of the period just before it.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AnalyticsReport {
    pub range: AnalyticsRange,
    pub dimension: AnalyticsDimension,
    /// RFC 3339, the first bucket's start.
    pub from: String,
    /// RFC 3339, the last bucket's end.
    pub to: String,
    /// `hour` or `day`.
    pub bucket: String,
    pub buckets: Vec<AnalyticsBucket>,
    pub totals: AnalyticsTotals,
    /// The period of the same length just before `from`.
    pub previous: AnalyticsTotals,
}

/// How often a digest goes: after each UTC day, or each week from Monday.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestCadence {
    #[default]
    Daily,
    Weekly,
}

impl DigestCadence {
    pub fn as_str(self) -> &'static str {
        match self {
            DigestCadence::Daily => "daily",
            DigestCadence::Weekly => "weekly",
        }
    }
}

/// An account's digest: a summary of the last day's or week's analytics, sent to one of its destinations.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyticsDigest {
    pub destination_id: String,
    pub cadence: DigestCadence,
}

/// The change from `previous` to `current` in percent; none when there was nothing before.
pub fn change_percent(current: i64, previous: i64) -> Option<f64> {
    (previous != 0).then(|| (current - previous) as f64 * 100.0 / previous as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_string_names_its_range_and_dimension_and_only_a_custom_range_its_dates() {
        let week = AnalyticsQuery {
            range: AnalyticsRange::Week,
            from: Some("2026-01-01".into()),
            ..AnalyticsQuery::default()
        };
        assert_eq!(week.to_query_string(), "range=7d&dimension=outcome");
        let custom = AnalyticsQuery {
            range: AnalyticsRange::Custom,
            from: Some("2026-01-01T00:00:00+01:00".into()),
            to: Some("2026-01-03".into()),
            dimension: AnalyticsDimension::ErrorClass,
        };
        assert_eq!(
            custom.to_query_string(),
            "range=custom&dimension=error_class&from=2026-01-01T00%3A00%3A00%2B01%3A00&to=2026-01-03"
        );
        assert_eq!(AnalyticsRange::parse("90d"), Some(AnalyticsRange::Quarter));
        assert_eq!(AnalyticsDimension::parse("nope"), None);
    }

    #[test]
    fn the_change_is_a_percentage_of_the_previous_period_and_none_from_nothing() {
        assert_eq!(change_percent(150, 100), Some(50.0));
        assert_eq!(change_percent(50, 100), Some(-50.0));
        assert_eq!(change_percent(5, 0), None);
    }
}
