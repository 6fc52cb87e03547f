//! Alerts as the dashboard and the management API show them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an alert watches. Each account has one alert of each kind.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Events failed for good (their retries exhausted), grouped into one message per burst.
    ExhaustedRetries,
    /// The share of processing attempts that failed, over a window, with a minimum volume.
    FailureRate,
    /// The oldest queued event has waited too long.
    QueueAge,
    /// The ServiceM8 API budget of the minute or the day is nearly spent.
    ApiBudget,
    /// No webhook from ServiceM8 for a while within working hours (ServiceM8 deactivates a subscription after
    /// repeated failures).
    Silence,
    /// A reconciliation pass found changes that no webhook announced.
    MissedWebhooks,
    /// A destination's circuit breaker opened after consecutive failures.
    CircuitOpen,
    /// A node's realtime relay cannot publish to browsers.
    RelayDown,
}

impl AlertKind {
    pub const ALL: [AlertKind; 8] = [
        AlertKind::ExhaustedRetries,
        AlertKind::FailureRate,
        AlertKind::QueueAge,
        AlertKind::ApiBudget,
        AlertKind::Silence,
        AlertKind::MissedWebhooks,
        AlertKind::CircuitOpen,
        AlertKind::RelayDown,
    ];

    /// The name stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ExhaustedRetries => "exhausted_retries",
            AlertKind::FailureRate => "failure_rate",
            AlertKind::QueueAge => "queue_age",
            AlertKind::ApiBudget => "api_budget",
            AlertKind::Silence => "silence",
            AlertKind::MissedWebhooks => "missed_webhooks",
            AlertKind::CircuitOpen => "circuit_open",
            AlertKind::RelayDown => "relay_down",
        }
    }

    pub fn parse(name: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// What the dashboard calls it.
    pub fn title(self) -> &'static str {
        match self {
            AlertKind::ExhaustedRetries => "Events failed",
            AlertKind::FailureRate => "Failure rate",
            AlertKind::QueueAge => "Queue age",
            AlertKind::ApiBudget => "API budget",
            AlertKind::Silence => "Webhooks stopped",
            AlertKind::MissedWebhooks => "Missed webhooks",
            AlertKind::CircuitOpen => "Destination circuit open",
            AlertKind::RelayDown => "Realtime relay down",
        }
    }
}

/// Whether an alert's condition holds.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Ok,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Ok => "ok",
            AlertState::Firing => "firing",
        }
    }
}

/// An alert with its settings and the state it stands in. Times are RFC 3339.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    pub id: String,
    pub kind: AlertKind,
    pub title: String,
    pub enabled: bool,
    /// The kind's thresholds (see README: Alerts).
    pub settings: Value,
    /// Where its transitions are sent.
    pub destination_ids: Vec<String>,
    /// While firing and not acknowledged, notify again after this many minutes; 0: never.
    pub renotify_minutes: i64,
    pub state: AlertState,
    /// What the last reading found, in a sentence.
    pub summary: Option<String>,
    pub firing_since: Option<String>,
    pub last_notified_at: Option<String>,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    /// No notification is sent before then.
    pub silenced_until: Option<String>,
}

impl AlertView {
    /// Firing and nobody has acknowledged it: the dashboard shows it in its banner.
    pub fn needs_attention(&self) -> bool {
        self.state == AlertState::Firing && self.acknowledged_at.is_none()
    }
}

/// An alert's settings as edited. `settings` holds the kind's thresholds; fields left out take their defaults.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertForm {
    pub enabled: bool,
    #[serde(default)]
    pub settings: Value,
    #[serde(default, rename = "destinationIds", alias = "destination_ids")]
    pub destination_ids: Vec<String>,
    #[serde(rename = "renotifyMinutes", alias = "renotify_minutes")]
    pub renotify_minutes: i64,
}

/// What happened to an alert.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertTransition {
    Fired,
    /// Still firing, notified again.
    Renotified,
    Resolved,
    Acknowledged,
    Silenced,
    Unsilenced,
}

impl AlertTransition {
    pub const ALL: [AlertTransition; 6] = [
        AlertTransition::Fired,
        AlertTransition::Renotified,
        AlertTransition::Resolved,
        AlertTransition::Acknowledged,
        AlertTransition::Silenced,
        AlertTransition::Unsilenced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertTransition::Fired => "fired",
            AlertTransition::Renotified => "renotified",
            AlertTransition::Resolved => "resolved",
            AlertTransition::Acknowledged => "acknowledged",
            AlertTransition::Silenced => "silenced",
            AlertTransition::Unsilenced => "unsilenced",
        }
    }

    pub fn parse(name: &str) -> Option<AlertTransition> {
        AlertTransition::ALL
            .into_iter()
            .find(|transition| transition.as_str() == name)
    }
}

/// One line of an account's alert history.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertHistoryEntry {
    pub id: i64,
    pub alert_id: String,
    pub kind: AlertKind,
    pub transition: AlertTransition,
    pub summary: String,
    /// Whether a message went to the alert's destinations.
    pub notified: bool,
    /// Who acknowledged or silenced it.
    pub actor: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// A page of history, newest first; `next` is the `before` of the next page.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertHistoryPage {
    pub entries: Vec<AlertHistoryEntry>,
    pub next: Option<i64>,
}
