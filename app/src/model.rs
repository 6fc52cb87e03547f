//! Data shared by the server and the browser: what the API answers and the dashboard shows.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an event is in the pipeline.
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub total: i64,
    /// Every status appears, with 0 where no event has it.
    pub by_status: BTreeMap<EventStatus, i64>,
    pub by_object_type: BTreeMap<String, i64>,
    /// RFC 3339, UTC; absent when nothing was ever received.
    pub last_received_at: Option<String>,
}

impl Stats {
    pub fn count(&self, status: EventStatus) -> i64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventQuery {
    pub status: Option<EventStatus>,
    pub limit: Option<u32>,
}

impl EventQuery {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 500;

    /// The page size to use: the requested one within `1..=MAX_LIMIT`, or the default.
    pub fn effective_limit(&self) -> u32 {
        self.limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .clamp(1, Self::MAX_LIMIT)
    }
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
        let query = |limit| EventQuery { status: None, limit: Some(limit) };
        assert_eq!(query(0).effective_limit(), 1);
        assert_eq!(query(10_000).effective_limit(), 500);
    }

    #[test]
    fn stats_serialise_statuses_as_lowercase_keys() {
        let mut stats = Stats::default();
        stats.by_status.insert(EventStatus::Failed, 2);
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["by_status"]["failed"], 2);
    }
}
