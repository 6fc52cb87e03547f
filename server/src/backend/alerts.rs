//! `AlertsBackend` for the alerts page, the banner and the management API: viewers read, admins change, every
//! change is audited. Acknowledging and silencing are steps of the alert's state machine like the monitor's, so
//! they apply to the version they were computed from and are announced live.

use app::access::{Access, Role};
use app::alerts::api::AlertsBackend;
use app::alerts::model::{
    AlertForm, AlertHistoryEntry, AlertHistoryPage, AlertKind, AlertState, AlertTransition, AlertView,
};
use app::error::AppError;
use serde_json::json;

use super::{unavailable, ServerBackend};
use crate::alerts::{self, Condition};
use crate::store::alerts::{AlertHistoryRow, AlertRow, AlertSettingsUpdate, NewHistoryLine};
use crate::store::{millis_to_rfc3339, now_millis};

/// The longest silence, in minutes (30 days).
const MAX_SILENCE_MINUTES: i64 = 30 * 24 * 60;
/// The longest re-notify interval, in minutes (7 days).
const MAX_RENOTIFY_MINUTES: i64 = 7 * 24 * 60;

impl ServerBackend {
    async fn alert_row(&self, access: &Access, id: &str) -> Result<AlertRow, AppError> {
        self.store
            .alert(&access.account, id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| AppError::NotFound(format!("no alert {id}")))
    }

    fn alert_view(row: &AlertRow) -> Result<AlertView, AppError> {
        alerts::view(row).ok_or_else(|| AppError::Unavailable(format!("alert {} has an unknown kind", row.id)))
    }

    async fn checked_alert_update(&self, access: &Access, id: &str, form: AlertForm) -> Result<AlertView, AppError> {
        let row = self.alert_row(access, id).await?;
        let kind = AlertKind::parse(&row.kind).ok_or_else(|| AppError::NotFound(format!("no alert {id}")))?;
        let condition =
            Condition::parse(kind, &form.settings).map_err(|error| AppError::InvalidInput(error.to_string()))?;
        if !(0..=MAX_RENOTIFY_MINUTES).contains(&form.renotify_minutes) {
            return Err(AppError::InvalidInput(format!(
                "renotifyMinutes: must be from 0 (never) to {MAX_RENOTIFY_MINUTES}"
            )));
        }
        let destinations = self
            .store
            .list_destinations(&access.account)
            .await
            .map_err(unavailable)?;
        if let Some(unknown) = form
            .destination_ids
            .iter()
            .find(|wanted| !destinations.iter().any(|destination| &destination.id == *wanted))
        {
            return Err(AppError::InvalidInput(format!(
                "destinationIds: no destination {unknown} in this account"
            )));
        }
        let mut ids = form.destination_ids.clone();
        ids.dedup();
        let update = AlertSettingsUpdate {
            account: access.account.clone(),
            id: id.to_owned(),
            enabled: form.enabled,
            settings: condition.settings(),
            destination_ids: json!(ids),
            renotify_minutes: form.renotify_minutes,
            now: now_millis(),
        };
        match self.store.update_alert_settings(&update).await.map_err(unavailable)? {
            Some(row) => Self::alert_view(&row),
            None => Err(AppError::NotFound(format!("no alert {id}"))),
        }
    }

    /// Applies a user's change to where an alert stands, recorded in its history as `transition` by the caller.
    async fn user_step(
        &self,
        access: &Access,
        id: &str,
        transition: AlertTransition,
        change: impl Fn(&AlertRow, i64) -> Result<alerts::Standing, AppError>,
    ) -> Result<AlertView, AppError> {
        let actor = access.actor.label().unwrap_or_else(|| access.actor.kind().to_owned());
        // Another node's monitor may step the alert in between: read again and retry once.
        for _ in 0..2 {
            let row = self.alert_row(access, id).await?;
            let now = now_millis();
            let standing = change(&row, now)?;
            let summary = match transition {
                AlertTransition::Silenced => format!(
                    "silenced until {}",
                    millis_to_rfc3339(standing.silenced_until.unwrap_or(now))
                ),
                _ => row.summary.clone().unwrap_or_default(),
            };
            let line = NewHistoryLine {
                transition: transition.as_str(),
                summary,
                notified: false,
                actor: Some(actor.clone()),
            };
            let step = alerts::stored_step(&row, &standing, Some(actor.clone()), Some(line), Vec::new(), now);
            if self.store.apply_alert_step(&step).await.map_err(unavailable)? {
                alerts::announce(self.queue.updates(), &row, transition);
                return Self::alert_view(&self.alert_row(access, id).await?);
            }
        }
        Err(AppError::Conflict("the alert changed meanwhile; try again".into()))
    }
}

#[async_trait::async_trait]
impl AlertsBackend for ServerBackend {
    async fn alerts(&self, access: &Access) -> Result<Vec<AlertView>, AppError> {
        access.require(Role::Viewer)?;
        let rows = alerts::account_alerts(self.store.as_ref(), &access.account, now_millis())
            .await
            .map_err(unavailable)?;
        let mut views: Vec<AlertView> = rows.iter().filter_map(alerts::view).collect();
        views.sort_by_key(|view| AlertKind::ALL.iter().position(|kind| *kind == view.kind));
        Ok(views)
    }

    async fn update_alert(&self, access: &Access, id: &str, form: AlertForm) -> Result<AlertView, AppError> {
        self.require(access, Role::Admin, "update_alert").await?;
        let detail = json!({"enabled": form.enabled, "settings": form.settings, "destinationIds": form.destination_ids,
                            "renotifyMinutes": form.renotify_minutes});
        let result = self.checked_alert_update(access, id, form).await;
        self.audited(access, "update_alert", Some(id), Some(detail), result)
            .await
    }

    async fn acknowledge_alert(&self, access: &Access, id: &str) -> Result<AlertView, AppError> {
        self.require(access, Role::Admin, "acknowledge_alert").await?;
        let result = self
            .user_step(access, id, AlertTransition::Acknowledged, |row, now| {
                let standing = alerts::standing(row);
                if standing.state != AlertState::Firing {
                    return Err(AppError::Conflict("only a firing alert can be acknowledged".into()));
                }
                Ok(alerts::Standing {
                    acknowledged_at: Some(now),
                    ..standing
                })
            })
            .await;
        self.audited(access, "acknowledge_alert", Some(id), None, result).await
    }

    async fn silence_alert(&self, access: &Access, id: &str, minutes: i64) -> Result<AlertView, AppError> {
        self.require(access, Role::Admin, "silence_alert").await?;
        let result = if (0..=MAX_SILENCE_MINUTES).contains(&minutes) {
            let transition = if minutes == 0 {
                AlertTransition::Unsilenced
            } else {
                AlertTransition::Silenced
            };
            self.user_step(access, id, transition, |row, now| {
                Ok(alerts::Standing {
                    silenced_until: (minutes > 0).then_some(now + minutes * 60_000),
                    ..alerts::standing(row)
                })
            })
            .await
        } else {
            Err(AppError::InvalidInput(format!(
                "minutes: must be from 0 (lift the silence) to {MAX_SILENCE_MINUTES}"
            )))
        };
        self.audited(
            access,
            "silence_alert",
            Some(id),
            Some(json!({"minutes": minutes})),
            result,
        )
        .await
    }

    async fn alert_history(
        &self,
        access: &Access,
        before: Option<i64>,
        limit: u32,
    ) -> Result<AlertHistoryPage, AppError> {
        access.require(Role::Viewer)?;
        let limit = if limit == 0 { 50 } else { limit.min(500) };
        let rows = self
            .store
            .alert_history(&access.account, before, limit)
            .await
            .map_err(unavailable)?;
        let next = (rows.len() == limit as usize)
            .then(|| rows.last().map(|row| row.id))
            .flatten();
        Ok(AlertHistoryPage {
            entries: rows.iter().filter_map(history_entry).collect(),
            next,
        })
    }
}

fn history_entry(row: &AlertHistoryRow) -> Option<AlertHistoryEntry> {
    Some(AlertHistoryEntry {
        id: row.id,
        alert_id: row.alert_id.clone(),
        kind: AlertKind::parse(&row.kind)?,
        transition: AlertTransition::parse(&row.transition)?,
        summary: row.summary.clone(),
        notified: row.notified,
        actor: row.actor.clone(),
        at: millis_to_rfc3339(row.at),
    })
}
