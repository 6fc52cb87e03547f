//! Alerts on the pipeline's health. Each account has one alert of each [`AlertKind`] (created with defaults on
//! first use, editable), each a state machine (`machine`) over a condition read from the store (`conditions`,
//! thresholds in `settings`). The [`AlertMonitor`] reads every enabled alert of every account at an interval,
//! steps its machine, and stores the step with its history line and the messages for the alert's destinations
//! (`message`), which the delivery workers send like any rule's. A transition is announced on the pipeline's
//! update channel, so that dashboards show and clear the banner live.

mod conditions;
mod machine;
mod message;
mod settings;

use std::sync::Arc;
use std::time::Duration;

use app::alerts::model::{AlertKind, AlertState, AlertTransition, AlertView};
use tokio_util::sync::CancellationToken;

pub use conditions::RELAY_DOWN;
pub use machine::{Reading, Standing, Step};
pub use settings::{Condition, InvalidSettings};

use crate::accounts::Accounts;
use crate::deliveries::Deliverer;
use crate::realtime::RelayHealth;
use crate::store::alerts::{AlertRow, AlertStanding, AlertStep, NewAlert, NewHistoryLine};
use crate::store::outbound::NewDelivery;
use crate::store::{millis_to_rfc3339, now_millis, Store, StoreError};
use crate::updates::{AlertNotice, PipelineUpdate, UpdateSender};
use conditions::Probe;

/// Re-notify interval of new alerts, in minutes.
const DEFAULT_RENOTIFY_MINUTES: i64 = 60;

/// How the monitor runs.
#[derive(Debug, Clone, clap::Args)]
pub struct AlertArgs {
    /// Milliseconds between evaluations of every account's alerts; 0 turns alerting off on this node.
    #[arg(long, env = "ALERT_INTERVAL_MS", default_value_t = 30_000)]
    pub alert_interval_ms: u64,
    /// Days the alert history is kept.
    #[arg(long, env = "ALERT_HISTORY_DAYS", default_value_t = 400)]
    pub alert_history_days: i64,
}

impl Default for AlertArgs {
    fn default() -> Self {
        AlertArgs {
            alert_interval_ms: 30_000,
            alert_history_days: 400,
        }
    }
}

/// The alerts of `account`, created with their default settings where a kind is missing (a new account, or a
/// kind this version adds). Only then is anything written: the monitor and every admin page read this.
pub async fn account_alerts(store: &dyn Store, account: &str, now: i64) -> Result<Vec<AlertRow>, StoreError> {
    let rows = store.list_alerts(account).await?;
    let missing = AlertKind::ALL
        .into_iter()
        .filter(|kind| !rows.iter().any(|row| row.kind == kind.as_str()));
    let alerts: Vec<NewAlert> = missing
        .map(|kind| NewAlert {
            id: uuid::Uuid::now_v7().to_string(),
            account: account.to_owned(),
            kind: kind.as_str().to_owned(),
            settings: Condition::default_for(kind).settings(),
            renotify_minutes: DEFAULT_RENOTIFY_MINUTES,
            created_at: now,
        })
        .collect();
    if alerts.is_empty() {
        return Ok(rows);
    }
    store.ensure_alerts(&alerts).await?;
    store.list_alerts(account).await
}

/// An alert row as the dashboard shows it; `None` for a kind this version does not know.
pub fn view(row: &AlertRow) -> Option<AlertView> {
    let kind = AlertKind::parse(&row.kind)?;
    Some(AlertView {
        id: row.id.clone(),
        kind,
        title: kind.title().to_owned(),
        enabled: row.enabled,
        settings: row.settings.clone(),
        destination_ids: destination_ids(row),
        renotify_minutes: row.renotify_minutes,
        state: state_of(row),
        summary: row.summary.clone(),
        firing_since: row.firing_since.map(millis_to_rfc3339),
        last_notified_at: row.last_notified_at.map(millis_to_rfc3339),
        acknowledged_at: row.acknowledged_at.map(millis_to_rfc3339),
        acknowledged_by: row.acknowledged_by.clone(),
        silenced_until: row.silenced_until.map(millis_to_rfc3339),
    })
}

fn state_of(row: &AlertRow) -> AlertState {
    if row.state == AlertState::Firing.as_str() {
        AlertState::Firing
    } else {
        AlertState::Ok
    }
}

fn destination_ids(row: &AlertRow) -> Vec<String> {
    serde_json::from_value(row.destination_ids.clone()).unwrap_or_default()
}

/// Where a stored alert stands.
pub fn standing(row: &AlertRow) -> Standing {
    Standing {
        state: state_of(row),
        summary: row.summary.clone(),
        firing_since: row.firing_since,
        last_notified_at: row.last_notified_at,
        acknowledged_at: row.acknowledged_at,
        silenced_until: row.silenced_until,
    }
}

/// The step that stores `standing` for `row`, with its history line (`transition` by `actor`, when there is
/// one) and the messages to send.
pub fn stored_step(
    row: &AlertRow,
    standing: &Standing,
    acknowledged_by: Option<String>,
    history: Option<NewHistoryLine>,
    deliveries: Vec<NewDelivery>,
    now: i64,
) -> AlertStep {
    AlertStep {
        account: row.account.clone(),
        id: row.id.clone(),
        kind: row.kind.clone(),
        version: row.version,
        standing: AlertStanding {
            state: standing.state.as_str(),
            summary: standing.summary.clone(),
            firing_since: standing.firing_since,
            last_notified_at: standing.last_notified_at,
            acknowledged_at: standing.acknowledged_at,
            acknowledged_by: standing.acknowledged_at.and(acknowledged_by),
            silenced_until: standing.silenced_until,
        },
        history,
        deliveries,
        now,
    }
}

/// Announces a change of an alert to the account's dashboards.
pub fn announce(updates: &UpdateSender, row: &AlertRow, transition: AlertTransition) {
    let _ = updates.send(PipelineUpdate::Alert(AlertNotice {
        account: row.account.clone(),
        alert_id: row.id.clone(),
        kind: row.kind.clone(),
        transition: transition.as_str().to_owned(),
    }));
}

/// Evaluates every account's alerts at an interval and tells their destinations of transitions.
pub struct AlertMonitor {
    pub store: Arc<dyn Store>,
    pub accounts: Arc<Accounts>,
    pub relay: RelayHealth,
    pub deliverer: Arc<Deliverer>,
    pub updates: UpdateSender,
    pub node: String,
    pub public_url: String,
    pub args: AlertArgs,
}

impl AlertMonitor {
    /// Runs until `shutdown`; nothing when the interval is 0.
    pub fn spawn(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if self.args.alert_interval_ms == 0 {
                return;
            }
            let interval = Duration::from_millis(self.args.alert_interval_ms);
            let mut relay_signalled = true; // a row left by this node's previous run is cleared on the first pass
            let mut last_cleanup = 0;
            loop {
                let now = now_millis();
                relay_signalled = self.report_relay(relay_signalled, now).await;
                for account in self.accounts.all() {
                    if account.disabled {
                        continue;
                    }
                    if let Err(error) = self
                        .evaluate(
                            &account.slug,
                            account.requests_per_minute,
                            account.requests_per_day,
                            now,
                        )
                        .await
                    {
                        tracing::warn!(account = %account.slug, %error, "evaluating alerts failed");
                    }
                }
                if now - last_cleanup >= 3_600_000 {
                    last_cleanup = now;
                    self.remove_old_history(now).await;
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        })
    }

    /// Raises or clears this node's `relay_down` signal; whether it is raised now.
    async fn report_relay(&self, signalled: bool, now: i64) -> bool {
        let result = match self.relay.down_since() {
            Some((since, detail)) => self
                .store
                .raise_node_signal(&self.node, RELAY_DOWN, &detail, since, now)
                .await
                .map(|()| true),
            None if signalled => self
                .store
                .clear_node_signal(&self.node, RELAY_DOWN)
                .await
                .map(|()| false),
            None => Ok(false),
        };
        result.unwrap_or_else(|error| {
            tracing::warn!(%error, "recording the realtime relay's state failed");
            signalled
        })
    }

    async fn remove_old_history(&self, now: i64) {
        if self.args.alert_history_days <= 0 {
            return;
        }
        let cutoff = now - self.args.alert_history_days * 86_400_000;
        match self.store.delete_alert_history_before(cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention: deleted old alert history"),
            Err(error) => tracing::warn!(%error, "alert history retention failed"),
        }
    }

    /// Reads and steps every alert of `account` once.
    pub async fn evaluate(&self, account: &str, per_minute: i64, per_day: i64, now: i64) -> Result<(), StoreError> {
        let probe = Probe {
            store: self.store.as_ref(),
            account,
            limits: self.accounts.limits(per_minute, per_day),
            now,
            signal_lifetime_ms: 3 * self.args.alert_interval_ms as i64,
            health: Default::default(),
        };
        for row in account_alerts(self.store.as_ref(), account, now).await? {
            let Some(kind) = AlertKind::parse(&row.kind) else {
                continue;
            };
            let condition = Condition::parse(kind, &row.settings).unwrap_or_else(|error| {
                tracing::warn!(alert = %row.id, %error, "stored alert settings are invalid; using the defaults");
                Condition::default_for(kind)
            });
            let reading = if row.enabled {
                Some(condition.read(&probe).await?)
            } else {
                None
            };
            let Some(step) = machine::step(&standing(&row), reading.as_ref(), row.renotify_minutes * 60_000, now)
            else {
                continue;
            };
            let summary = step.standing.summary.clone().unwrap_or_default();
            let links = reading.map(|reading| reading.links).unwrap_or_default();
            let deliveries = match (step.notify, step.transition) {
                (true, Some(transition)) => self.messages(&row, kind, transition, &summary, &links, now),
                _ => Vec::new(),
            };
            let history = step.transition.map(|transition| NewHistoryLine {
                transition: transition.as_str(),
                summary: summary.clone(),
                notified: step.notify && !deliveries.is_empty(),
                actor: None,
            });
            let sending = !deliveries.is_empty();
            let stored = stored_step(
                &row,
                &step.standing,
                row.acknowledged_by.clone(),
                history,
                deliveries,
                now,
            );
            if self.store.apply_alert_step(&stored).await? {
                if let Some(transition) = step.transition {
                    tracing::info!(account, alert = kind.as_str(), transition = transition.as_str(), %summary, "alert");
                    announce(&self.updates, &row, transition);
                }
                if sending {
                    self.deliverer.wake();
                }
            }
        }
        Ok(())
    }

    /// One message per destination of the alert, each deduplicated by alert, transition and time.
    fn messages(
        &self,
        row: &AlertRow,
        kind: AlertKind,
        transition: AlertTransition,
        summary: &str,
        links: &[(String, String)],
        now: i64,
    ) -> Vec<NewDelivery> {
        let rendered = message::render(kind, transition, &row.account, summary, links, &self.public_url);
        let body = serde_json::to_value(crate::rules::MessageBody::Rendered(rendered)).expect("a message serialises");
        destination_ids(row)
            .into_iter()
            .map(|destination_id| NewDelivery {
                id: uuid::Uuid::now_v7().to_string(),
                account: row.account.clone(),
                dedup_key: Some(format!(
                    "alert:{}:{}:{now}:{destination_id}",
                    row.id,
                    transition.as_str()
                )),
                destination_id,
                event_id: None,
                rule_id: None,
                rule_name: Some(format!("alert: {}", kind.title())),
                message: body.clone(),
                created_at: now,
                next_attempt_at: now,
                failed: None,
            })
            .collect()
    }
}
