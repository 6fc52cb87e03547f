//! Data shared by the server and the browser: what the API answers and the dashboard shows.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an event is in the pipeline.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Queued,
    Processing,
    Success,
    Failed,
    Skipped,
}

impl EventStatus {
    pub const ALL: [EventStatus; 5] = [
        EventStatus::Queued,
        EventStatus::Processing,
        EventStatus::Success,
        EventStatus::Failed,
        EventStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Queued => "queued",
            EventStatus::Processing => "processing",
            EventStatus::Success => "success",
            EventStatus::Failed => "failed",
            EventStatus::Skipped => "skipped",
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the five status names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}: expected queued, processing, success, failed or skipped")]
pub struct UnknownStatus(pub String);

impl FromStr for EventStatus {
    type Err = UnknownStatus;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        EventStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
            .ok_or_else(|| UnknownStatus(value.to_owned()))
    }
}

/// One stored webhook event as listed by the API and the dashboard.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSummary {
    pub id: String,
    pub object_type: String,
    pub object_uuid: String,
    pub event_type: String,
    pub status: EventStatus,
    pub attempts: i32,
    /// RFC 3339, UTC.
    pub received_at: String,
    pub last_error: Option<String>,
}

/// Counts over all stored events.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub total: i64,
    /// Every status appears, with 0 where no event has it.
    pub by_status: BTreeMap<EventStatus, i64>,
    pub by_object_type: BTreeMap<String, i64>,
    /// RFC 3339, UTC; absent when nothing was ever received.
    pub last_received_at: Option<String>,
    /// Something the operator should know about how events are processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

impl Stats {
    pub fn count(&self, status: EventStatus) -> i64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}

/// Which events to list: every filter is optional and they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventQuery {
    pub status: Option<EventStatus>,
    /// Canonical object type, e.g. `job`.
    pub object_type: Option<String>,
    pub event_type: Option<String>,
    /// Part of the object uuid, or an event id.
    pub search: Option<String>,
    /// Received at or after this time (unix ms).
    pub received_from: Option<i64>,
    /// Received before this time (unix ms).
    pub received_to: Option<i64>,
    /// Continue after this page cursor (from `EventPage::next_cursor`).
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// A page of events, newest first.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<EventSummary>,
    /// Present when older events match too.
    pub next_cursor: Option<String>,
}

/// A page cursor: the position of the last event of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor<'a> {
    pub received_at: i64,
    pub id: &'a str,
}

impl<'a> PageCursor<'a> {
    pub fn encode(received_at: i64, id: &str) -> String {
        format!("{received_at}_{id}")
    }

    pub fn decode(cursor: &'a str) -> Option<Self> {
        let (received_at, id) = cursor.split_once('_')?;
        Some(PageCursor {
            received_at: received_at.parse().ok()?,
            id,
        })
    }
}

impl EventQuery {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 500;

    /// The page size to use: the requested one within `1..=MAX_LIMIT`, or the default.
    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT).clamp(1, Self::MAX_LIMIT)
    }
}

/// Everything stored about one event, for the detail view.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDetail {
    pub summary: EventSummary,
    /// Delivery format: seed, object, addon, event, sync.
    pub format: String,
    /// How the delivery was authenticated.
    pub verification: String,
    /// RFC 3339, when ServiceM8 says the change happened.
    pub occurred_at: Option<String>,
    pub changes: serde_json::Value,
    /// The delivery as received (lossy UTF-8).
    pub raw_body: String,
    pub headers: serde_json::Value,
    pub skip_reason: Option<String>,
    /// RFC 3339; when a queued event is due.
    pub next_attempt_at: Option<String>,
    pub processed_at: Option<String>,
    pub attempt_log: Vec<AttemptView>,
    /// The mirrored record as it is now.
    pub mirrored: Option<serde_json::Value>,
}

/// One attempt in an event's timeline.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptView {
    pub attempt: i32,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: i64,
    pub outcome: String,
    pub http_status: Option<i32>,
    pub error: Option<String>,
}

/// An event an admin sends from the dashboard to try the pipeline.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestEvent {
    pub object_type: String,
    pub object_uuid: String,
    pub event_type: String,
    /// A JSON object of changed fields.
    pub changes: serde_json::Value,
}

/// How the pipeline is doing now.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineHealth {
    /// Events queued or processing.
    pub queue_depth: i64,
    /// Age of the oldest queued event, in seconds.
    pub oldest_queued_seconds: Option<i64>,
    /// Share of events finished in the last hour that succeeded (0..=1).
    pub success_rate: Option<f64>,
    /// Receipt-to-finish time of events finished in the last hour, in milliseconds.
    pub mean_processing_ms: Option<f64>,
    pub p95_processing_ms: Option<f64>,
    pub api_budget: ApiBudgetUse,
}

/// Requests made to the ServiceM8 API in the current windows.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiBudgetUse {
    pub minute_used: i64,
    pub minute_limit: i64,
    pub day_used: i64,
    pub day_limit: i64,
}

/// One minute of the last hour.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MinuteBucket {
    /// Start of the minute, unix ms.
    pub minute: i64,
    pub received: i64,
    pub succeeded: i64,
    pub failed: i64,
    /// Mean receipt-to-finish time of the events finished in this minute.
    pub mean_latency_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name() {
        for status in EventStatus::ALL {
            assert_eq!(status.as_str().parse::<EventStatus>(), Ok(status));
        }
        assert!("done".parse::<EventStatus>().is_err());
    }

    #[test]
    fn event_query_limit_is_clamped_to_the_allowed_range() {
        assert_eq!(EventQuery::default().effective_limit(), 50);
        let query = |limit| EventQuery {
            limit: Some(limit),
            ..EventQuery::default()
        };
        assert_eq!(query(0).effective_limit(), 1);
        assert_eq!(query(10_000).effective_limit(), 500);
    }

    #[test]
    fn a_page_cursor_round_trips() {
        let cursor = PageCursor::encode(1_700_000_000_000, "0190-abc");
        assert_eq!(
            PageCursor::decode(&cursor),
            Some(PageCursor {
                received_at: 1_700_000_000_000,
                id: "0190-abc"
            })
        );
        assert_eq!(PageCursor::decode("garbage"), None);
    }

    #[test]
    fn stats_serialise_statuses_as_lowercase_keys() {
        let mut stats = Stats::default();
        stats.by_status.insert(EventStatus::Failed, 2);
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["by_status"]["failed"], 2);
    }
}
