//! The relay's messages to browsers, defined once: the server's relay builds them and the browser client reads
//! them. Event names, topic names, and the payloads of `webhook_update` and `pipeline` broadcasts.

use serde::{Deserialize, Serialize};

/// Event name of record changes, as in the seed.
pub const RECORD_EVENT: &str = "webhook_update";
/// Event name of pipeline stages, on [`topic::ADMIN_WEBHOOKS`].
pub const LIFECYCLE_EVENT: &str = "pipeline";
/// Event name of an alert's changes (fired, resolved, acknowledged, silenced), on [`topic::ADMIN_WEBHOOKS`]; the
/// payload names the alert (`alert_id`, `kind`, `transition`).
pub const ALERT_EVENT: &str = "alert";
/// Event name of a delivery's attempt ending, on [`topic::ADMIN_WEBHOOKS`]; the payload is a [`DeliveryChange`].
pub const DELIVERY_EVENT: &str = "delivery";

/// The topics updates are broadcast on, with the `realtime:` prefix Supabase clients join them by.
pub mod topic {
    pub const PREFIX: &str = "realtime:";
    /// Every job's changes (admin).
    pub const JOBS: &str = "realtime:jobs";
    /// Every staff member's changes (admin).
    pub const STAFF: &str = "realtime:staff";
    /// Every event's pipeline stages (admin).
    pub const ADMIN_WEBHOOKS: &str = "realtime:admin:webhooks";

    /// One job's changes and those of its activities and attachments.
    pub fn job(job_uuid: &str) -> String {
        format!("{PREFIX}job:{job_uuid}")
    }

    /// One company's changes, and those of its jobs and their activities and attachments.
    pub fn company(company_uuid: &str) -> String {
        format!("{PREFIX}company:{company_uuid}")
    }
}

/// What kind of record a `webhook_update` is about (the seed's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateKind {
    JobUpdate,
    CompanyUpdate,
    ActivityUpdate,
    AttachmentUpdate,
    StaffUpdate,
    /// A type this client does not know yet.
    #[serde(other)]
    Other,
}

impl UpdateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateKind::JobUpdate => "job_update",
            UpdateKind::CompanyUpdate => "company_update",
            UpdateKind::ActivityUpdate => "activity_update",
            UpdateKind::AttachmentUpdate => "attachment_update",
            UpdateKind::StaffUpdate => "staff_update",
            UpdateKind::Other => "other",
        }
    }
}

/// One changed record, as broadcast by the relay (event [`RECORD_EVENT`]; the seed's payload plus the offset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookUpdate {
    #[serde(rename = "type")]
    pub kind: UpdateKind,
    pub object_uuid: String,
    /// `created`, `updated`, `status_changed`, ...
    pub event_type: String,
    /// The changed fields with their new values where known.
    #[serde(default)]
    pub changes: serde_json::Value,
    #[serde(default)]
    pub company_uuid: Option<String>,
    #[serde(default)]
    pub job_uuid: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
    /// Position on the topic it came from, for resuming; the relay sets it per topic as it retains the update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// Where an event is in the pipeline (the relay's `pipeline` broadcasts on `realtime:admin:webhooks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineStage {
    Received,
    Processing,
    Success,
    Skipped,
    /// Failed this attempt; another is scheduled.
    Retrying,
    /// Failed for good.
    Failed,
    /// Put back in the queue by an admin.
    Retried,
    #[serde(other)]
    Other,
}

/// A change to one of the account's alerts (event [`ALERT_EVENT`]): the dashboard fetches its alerts again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertChange {
    pub alert_id: String,
    #[serde(default)]
    pub kind: String,
    /// `fired`, `renotified`, `resolved`, `acknowledged`, `silenced` or `unsilenced`.
    #[serde(default)]
    pub transition: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// Where a delivery stands after an attempt (event [`DELIVERY_EVENT`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryChange {
    pub delivery_id: String,
    pub destination_id: String,
    #[serde(default)]
    pub event_id: Option<String>,
    /// `delivered`, `queued` (a retry is due) or `failed`.
    pub status: String,
}

/// An event entering a stage of the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineEvent {
    /// The account the event belongs to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
    pub event_id: String,
    #[serde(default)]
    pub object_type: String,
    #[serde(default)]
    pub object_uuid: String,
    #[serde(default)]
    pub event_type: String,
    pub stage: PipelineStage,
    #[serde(default)]
    pub attempts: i32,
    #[serde(default)]
    pub error: Option<String>,
    /// Unix milliseconds.
    #[serde(default)]
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}
