//! What the pipeline announces as it works, for whoever listens (the realtime relay, metrics): an event's
//! lifecycle and the changes to mirrored ServiceM8 records. Sent on a `tokio::sync::broadcast` channel held in
//! `AppState`; a slow listener misses updates rather than slowing the pipeline.

pub use app::realtime::{PipelineEvent, PipelineStage};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Capacity of the in-process update channel.
pub const CHANNEL_CAPACITY: usize = 4096;

pub type UpdateSender = broadcast::Sender<PipelineUpdate>;

pub fn channel() -> UpdateSender {
    broadcast::channel(CHANNEL_CAPACITY).0
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PipelineUpdate {
    /// An event entered a new stage of the pipeline: the `pipeline` broadcast itself (the wire type browsers read).
    Lifecycle(PipelineEvent),
    /// A mirrored record changed because an event was processed.
    Record(RecordUpdate),
    /// An alert fired, resolved, or was acknowledged or silenced.
    Alert(AlertNotice),
    /// A delivery's attempt ended: delivered, queued again for a retry, or failed.
    Delivery(DeliveryNotice),
}

/// Where one delivery stands after an attempt, for the account's dashboards.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryNotice {
    pub account: String,
    pub delivery_id: String,
    pub destination_id: String,
    pub event_id: Option<String>,
    /// `delivered`, `queued` (a retry is due) or `failed`.
    pub status: String,
}

/// A change to one of an account's alerts: its dashboards fetch the alerts again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertNotice {
    pub account: String,
    pub alert_id: String,
    pub kind: String,
    pub transition: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordUpdate {
    /// The account whose record it is: only its subscribers hear of it.
    pub account: String,
    pub event_id: String,
    /// Canonical object type: job, company, jobactivity, attachment, staff.
    pub object_type: String,
    pub object_uuid: String,
    pub event_type: String,
    /// The fields that changed, with their new values where known.
    pub changes: serde_json::Value,
    /// The company the record belongs to, when known (a job's company, or the company itself).
    pub company_uuid: Option<String>,
    /// The job the record belongs to, when known (an activity's or attachment's job, or the job itself).
    pub job_uuid: Option<String>,
    /// When the webhook carrying the change was received, unix milliseconds (for end-to-end latency).
    pub received_at: i64,
    /// The mirror row as written and as it was, for `postgres_changes` subscribers: on the first update of a
    /// write only (several events may share one write), and `None` when the write changed no visible row.
    pub row: Option<RowChange>,
}

/// A write to a mirror table, as a table subscriber sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowChange {
    /// The mirror table: `sm8_jobs`, `sm8_companies`, ...
    pub table: String,
    pub kind: RowChangeKind,
    /// The row as written: its columns, the ServiceM8 record under `record`.
    pub new: serde_json::Value,
    /// The row as it was, for updates and deletes.
    pub old: Option<serde_json::Value>,
    /// When the write was made, unix milliseconds.
    pub committed_at: i64,
}

/// A record appearing (new, or active again), changing, or turning `active = 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RowChangeKind {
    Insert,
    Update,
    Delete,
}
