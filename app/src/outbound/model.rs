//! Rules, destinations and deliveries as the dashboard and the management API show them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::directory::model::ShownOnce;

/// A destination: where a rule's messages go. Its secrets are never shown, only which are set.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationView {
    pub id: String,
    /// Unique in the account: rules name their destinations by it.
    pub name: String,
    /// `webhook`, `slack`, `email` or `sms`.
    pub kind: String,
    /// The destination's settings without its secrets (URL, headers, SMTP host, recipients, …).
    pub settings: Value,
    /// Which secrets are set (`signing_secrets`, `webhook_url`, `password`, `auth_token`).
    pub secrets_set: Vec<String>,
    pub paused: bool,
    /// The circuit breaker holds deliveries after consecutive failures, until a probe succeeds.
    pub circuit_open: bool,
    pub consecutive_failures: i64,
    pub queued: i64,
    pub delivered: i64,
    pub failed: i64,
    /// RFC 3339.
    pub created_at: String,
}

/// A destination as created or edited. `secrets` holds the secrets to set (an object of the kind's secret
/// fields); a field left out keeps its current value.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationForm {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub settings: Value,
    #[serde(default)]
    pub secrets: Value,
}

/// A new destination, with any secret the server generated for it (a webhook's signing secret), shown this once.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedDestination {
    pub destination: DestinationView,
    pub shown_once: Option<ShownOnce>,
}

/// How sending a test message went.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSendReport {
    pub delivered: bool,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub response_excerpt: Option<String>,
}

/// A rule of the account, in its place in the account's order.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleView {
    pub id: String,
    /// 1 for the rule applied first.
    pub position: i64,
    pub enabled: bool,
    pub name: String,
    /// `received` or `processed`.
    pub stage: String,
    /// The rule as written: `name`, `when`, `filter`, `transform`, `actions`.
    pub definition: Value,
    /// RFC 3339.
    pub updated_at: String,
}

/// A rule as saved: its definition (refused with `400` and the place when it does not compile) and whether it
/// applies.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleForm {
    pub definition: Value,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// What a rule would do to a stored event, found without sending anything.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleTest {
    /// The stage the rule was tried at (its own).
    pub stage: String,
    pub matched: bool,
    /// One per action, in the rule's order, when it matched.
    pub actions: Vec<ActionPreview>,
    /// The document the rule read: `event`, `changes`, `record`, `previous`, `account`.
    pub document: Value,
}

/// What one action of a matching rule would do.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionPreview {
    /// `skip`, `deliver`, `dropped` (the transform returned nothing) or `failed` (the transform or template
    /// failed).
    pub outcome: String,
    pub destinations: Vec<String>,
    /// What each destination would be sent.
    pub messages: Vec<Value>,
    /// The skip's reason, or the error.
    pub detail: Option<String>,
}

/// One message to one destination and how it went.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryView {
    /// Also its `webhook-id` (`msg_<id>`), the same on every attempt.
    pub id: String,
    pub destination_id: String,
    pub destination_name: String,
    pub event_id: Option<String>,
    pub rule_name: Option<String>,
    /// `queued`, `delivering`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    /// RFC 3339.
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub finished_at: Option<String>,
}

/// Which deliveries to list, newest first.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryQuery {
    #[serde(default)]
    pub destination_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

/// One delivery with what it carries and every attempt at it.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryDetail {
    pub delivery: DeliveryView,
    pub message: Value,
    pub attempt_log: Vec<DeliveryAttemptView>,
}

/// One attempt at a delivery.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAttemptView {
    pub attempt: i64,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: i64,
    pub http_status: Option<i32>,
    /// At most 4 KiB of what the destination answered.
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    /// `delivered`, `retry` or `failed`.
    pub outcome: String,
}
