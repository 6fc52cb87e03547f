//! Alerts as stored: one per kind per account with its settings and where it stands, the history of its
//! transitions, the signals nodes raise about themselves, and the facts the alert conditions read from the
//! pipeline's tables. `Alerts` is part of every `Store` (`alerts_sql.rs` writes it once for both engines).
//!
//! Every change to an alert's standing goes through `apply_alert_step`, which applies only to the version it was
//! computed from: when two nodes evaluate the same alert, one step applies and the other is dropped, so a
//! transition is recorded and notified once.

use async_trait::async_trait;

use super::outbound::NewDelivery;
use super::StoreError;

/// The columns of `AlertRow`.
pub(super) const ALERT_COLUMNS: &str = "id, account, kind, enabled, settings, destination_ids, renotify_minutes, \
     state, summary, firing_since, last_notified_at, acknowledged_at, acknowledged_by, silenced_until, version, \
     updated_at";

/// An alert as stored. `kind`, `state` and the JSON columns are read by the alerts module.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AlertRow {
    pub id: String,
    pub account: String,
    pub kind: String,
    pub enabled: bool,
    pub settings: serde_json::Value,
    pub destination_ids: serde_json::Value,
    pub renotify_minutes: i64,
    pub state: String,
    pub summary: Option<String>,
    pub firing_since: Option<i64>,
    pub last_notified_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub silenced_until: Option<i64>,
    pub version: i64,
    pub updated_at: i64,
}

/// An alert to create where the account has none of its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub id: String,
    pub account: String,
    pub kind: String,
    pub settings: serde_json::Value,
    pub renotify_minutes: i64,
    pub created_at: i64,
}

/// A user's edit of an alert's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettingsUpdate {
    pub account: String,
    pub id: String,
    pub enabled: bool,
    pub settings: serde_json::Value,
    pub destination_ids: serde_json::Value,
    pub renotify_minutes: i64,
    pub now: i64,
}

/// Where an alert stands after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertStanding {
    pub state: &'static str,
    pub summary: Option<String>,
    pub firing_since: Option<i64>,
    pub last_notified_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub silenced_until: Option<i64>,
}

/// A line of history to record with a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHistoryLine {
    pub transition: &'static str,
    pub summary: String,
    pub notified: bool,
    pub actor: Option<String>,
}

/// A change to one alert, computed from its row at `version`: the standing after it, the history line and the
/// messages it calls for, applied together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertStep {
    pub account: String,
    pub id: String,
    pub kind: String,
    pub version: i64,
    pub standing: AlertStanding,
    pub history: Option<NewHistoryLine>,
    pub deliveries: Vec<NewDelivery>,
    pub now: i64,
}

/// A line of an account's alert history as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AlertHistoryRow {
    pub id: i64,
    pub alert_id: String,
    pub account: String,
    pub kind: String,
    pub transition: String,
    pub summary: String,
    pub notified: bool,
    pub actor: Option<String>,
    pub at: i64,
}

/// Events that failed for good in a window: how many, and the newest few.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedEvents {
    pub count: i64,
    /// `(event id, object type, object uuid)`, newest first.
    pub newest: Vec<(String, String, String)>,
}

/// Processing attempts that ended in a window: how many, and how many of them failed (to be retried or for good).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptTally {
    pub total: i64,
    pub failed: i64,
}

/// A condition a node reports about itself, such as its realtime relay failing.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NodeSignal {
    pub node: String,
    pub signal: String,
    pub since: i64,
    pub seen_at: i64,
    pub detail: String,
}

#[async_trait]
pub trait Alerts: Send + Sync {
    /// Creates each of `alerts` whose account has no alert of its kind yet.
    async fn ensure_alerts(&self, alerts: &[NewAlert]) -> Result<(), StoreError>;
    async fn list_alerts(&self, account: &str) -> Result<Vec<AlertRow>, StoreError>;
    async fn alert(&self, account: &str, id: &str) -> Result<Option<AlertRow>, StoreError>;
    /// Saves a user's settings; the alert as it now is, `None` when there is no such alert.
    async fn update_alert_settings(&self, update: &AlertSettingsUpdate) -> Result<Option<AlertRow>, StoreError>;
    /// Applies `step` if the alert is still at `step.version`, with its history line and deliveries, in one
    /// transaction; whether it applied.
    async fn apply_alert_step(&self, step: &AlertStep) -> Result<bool, StoreError>;
    /// The account's history, newest first: at most `limit` lines with ids below `before`.
    async fn alert_history(
        &self,
        account: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AlertHistoryRow>, StoreError>;
    /// Deletes history lines older than `cutoff`; how many.
    async fn delete_alert_history_before(&self, cutoff: i64) -> Result<u64, StoreError>;

    /// Events of `account` that failed for good since `since`, with the newest `sample`.
    async fn failed_events_since(&self, account: &str, since: i64, sample: u32) -> Result<FailedEvents, StoreError>;
    /// Processing attempts of `account`'s events that ended since `since`.
    async fn attempts_since(&self, account: &str, since: i64) -> Result<AttemptTally, StoreError>;
    /// When the last webhook from ServiceM8 arrived (neither reconciliation nor a test event).
    async fn last_webhook_at(&self, account: &str) -> Result<Option<i64>, StoreError>;
    /// Events a reconciliation pass queued since `since`: changes no webhook announced (not those of a first
    /// pass, which imports the account).
    async fn reconciled_since(&self, account: &str, since: i64) -> Result<i64, StoreError>;

    /// Raises `signal` for `node`, or refreshes it (keeping when it started).
    async fn raise_node_signal(
        &self,
        node: &str,
        signal: &str,
        detail: &str,
        since: i64,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn clear_node_signal(&self, node: &str, signal: &str) -> Result<(), StoreError>;
    /// The nodes raising `signal` that refreshed it at or after `seen_after`.
    async fn node_signals(&self, signal: &str, seen_after: i64) -> Result<Vec<NodeSignal>, StoreError>;
}
