//! The account's destinations and their deliveries, for the rules and destinations pages and the management
//! API: viewers read, admins change, and every change is audited (the secrets never: a line names the
//! destination, and a generated signing secret is shown once to whoever made it).

use std::collections::HashMap;

use app::access::{Access, Role};
use app::directory::model::ShownOnce;
use app::error::AppError;
use app::outbound::model::{
    CreatedDestination, DeliveryAttemptView, DeliveryDetail, DeliveryPage, DeliveryQuery, DeliveryView,
    DestinationForm, DestinationView, TestSendReport,
};
use serde_json::{json, Value};

use super::{unavailable, ServerBackend};
use crate::deliveries::{open_destination, open_secrets};
use crate::destinations::{
    self, Attempt, Destination, DestinationKind, DestinationSecrets, DestinationSettings, WebhookSecrets,
};
use crate::store::outbound::{
    destination_secrets_context, DeliveryAttemptRow, DeliveryCount, DeliveryCursor, DeliveryQuery as StoredQuery,
    DeliveryRetry, DeliveryRow, DeliveryStatus, DestinationRow, DestinationSave,
};
use crate::store::{millis_to_rfc3339, now_millis};

/// The longest destination name.
const MAX_NAME_CHARS: usize = 128;

impl ServerBackend {
    pub(super) async fn destination_views(&self, access: &Access) -> Result<Vec<DestinationView>, AppError> {
        access.require(Role::Viewer)?;
        let rows = self
            .store
            .list_destinations(&access.account)
            .await
            .map_err(unavailable)?;
        let counts = self.store.delivery_counts(&access.account).await.map_err(unavailable)?;
        Ok(rows.iter().map(|row| self.destination_view(row, &counts)).collect())
    }

    fn destination_view(&self, row: &DestinationRow, counts: &[DeliveryCount]) -> DestinationView {
        let count = |statuses: &[DeliveryStatus]| {
            counts
                .iter()
                .filter(|count| count.destination_id == row.id && statuses.contains(&count.status))
                .map(|count| count.count)
                .sum()
        };
        DestinationView {
            id: row.id.clone(),
            name: row.name.clone(),
            kind: row.kind.as_str().to_owned(),
            settings: row.settings.clone(),
            secrets_set: open_secrets(row, self.accounts.sealer())
                .map(|secrets| secrets.names_set().into_iter().map(str::to_owned).collect())
                .unwrap_or_default(),
            paused: row.paused_at.is_some(),
            circuit_open: row.circuit_opened_at.is_some(),
            consecutive_failures: row.consecutive_failures,
            queued: count(&[DeliveryStatus::Queued, DeliveryStatus::Delivering]),
            delivered: count(&[DeliveryStatus::Delivered]),
            failed: count(&[DeliveryStatus::Failed]),
            created_at: millis_to_rfc3339(row.created_at),
        }
    }

    async fn destination_row(&self, access: &Access, id: &str) -> Result<DestinationRow, AppError> {
        self.store
            .destination(&access.account, id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| AppError::NotFound(format!("no destination {id}")))
    }

    async fn one_destination_view(&self, access: &Access, id: &str) -> Result<DestinationView, AppError> {
        let row = self.destination_row(access, id).await?;
        let counts = self.store.delivery_counts(&access.account).await.map_err(unavailable)?;
        Ok(self.destination_view(&row, &counts))
    }

    pub(super) async fn add_destination(
        &self,
        access: &Access,
        form: DestinationForm,
    ) -> Result<CreatedDestination, AppError> {
        self.require(access, Role::Admin, "create_destination").await?;
        let name = form.name.trim().to_owned();
        let created = self.new_destination(access, &name, form).await;
        let detail = created
            .as_ref()
            .ok()
            .map(|created| json!({ "kind": created.destination.kind }));
        self.forget_rules(&access.account);
        self.audited(access, "create_destination", Some(&name), detail, created)
            .await
    }

    async fn new_destination(
        &self,
        access: &Access,
        name: &str,
        form: DestinationForm,
    ) -> Result<CreatedDestination, AppError> {
        check_name(name)?;
        let kind: DestinationKind = form.kind.trim().parse().map_err(invalid)?;
        let settings = DestinationSettings::of_kind(kind, fields(form.settings)).map_err(invalid)?;
        let given = fields(form.secrets);
        let (secrets, shown_once) = match kind {
            DestinationKind::Webhook if no_fields(&given) => {
                let secrets = WebhookSecrets::generate();
                let shown = signing_secret_shown(&secrets);
                (DestinationSecrets::Webhook(secrets), Some(shown))
            }
            _ => (DestinationSecrets::of_kind(kind, given).map_err(invalid)?, None),
        };
        Destination::new(name, settings.clone(), secrets.clone()).map_err(invalid)?;
        let now = now_millis();
        let id = uuid::Uuid::now_v7().to_string();
        let row = DestinationRow {
            sealed_secrets: Some(self.seal_secrets(&id, &secrets)),
            id,
            account: access.account.clone(),
            name: name.to_owned(),
            kind,
            settings: settings_json(&settings),
            paused_at: None,
            consecutive_failures: 0,
            circuit_opened_at: None,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_destination(&row).await.map_err(unavailable)? {
            DestinationSave::Saved => Ok(CreatedDestination {
                destination: self.destination_view(&row, &[]),
                shown_once,
            }),
            DestinationSave::NameTaken | DestinationSave::NotFound => Err(AppError::Conflict(format!(
                "the account has a destination named {name:?}"
            ))),
        }
    }

    pub(super) async fn change_destination(
        &self,
        access: &Access,
        id: &str,
        form: DestinationForm,
    ) -> Result<DestinationView, AppError> {
        self.require(access, Role::Admin, "update_destination").await?;
        let name = form.name.trim().to_owned();
        let changed = self.changed_destination(access, id, &name, form).await;
        self.forget_rules(&access.account);
        self.audited(access, "update_destination", Some(&name), None, changed)
            .await
    }

    async fn changed_destination(
        &self,
        access: &Access,
        id: &str,
        name: &str,
        form: DestinationForm,
    ) -> Result<DestinationView, AppError> {
        check_name(name)?;
        let mut row = self.destination_row(access, id).await?;
        if form.kind.trim() != row.kind.as_str() {
            return Err(AppError::InvalidInput(format!(
                "kind: a {} destination stays one; create another for {:?}",
                row.kind.as_str(),
                form.kind
            )));
        }
        let settings = DestinationSettings::of_kind(row.kind, fields(form.settings)).map_err(invalid)?;
        // Secret fields left out keep their values; a webhook's signing secrets change only by rotation.
        let current = open_secrets(&row, self.accounts.sealer()).map_err(|error| AppError::Conflict(error.0))?;
        let mut merged = serde_json::to_value(&current).unwrap_or_default();
        if let (Value::Object(merged), Value::Object(given)) = (&mut merged, fields(form.secrets)) {
            for (field, value) in given {
                let blank = value.is_null() || value.as_str().is_some_and(|text| text.trim().is_empty());
                if !blank && field != "signing_secrets" && field != "kind" {
                    merged.insert(field, value);
                }
            }
        }
        let secrets = DestinationSecrets::from_value(merged).map_err(invalid)?;
        Destination::new(name, settings.clone(), secrets.clone()).map_err(invalid)?;
        row.name = name.to_owned();
        row.settings = settings_json(&settings);
        row.sealed_secrets = Some(self.seal_secrets(&row.id, &secrets));
        row.updated_at = now_millis();
        match self.store.update_destination(&row).await.map_err(unavailable)? {
            DestinationSave::Saved => self.one_destination_view(access, id).await,
            DestinationSave::NameTaken => Err(AppError::Conflict(format!(
                "the account has a destination named {name:?}"
            ))),
            DestinationSave::NotFound => Err(AppError::NotFound(format!("no destination {id}"))),
        }
    }

    pub(super) async fn remove_destination(&self, access: &Access, id: &str) -> Result<(), AppError> {
        self.require(access, Role::Admin, "delete_destination").await?;
        let removed = match self.store.delete_destination(&access.account, id, now_millis()).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(AppError::NotFound(format!("no destination {id}"))),
            Err(error) => Err(unavailable(error)),
        };
        self.forget_rules(&access.account);
        self.audited(access, "delete_destination", Some(id), None, removed)
            .await
    }

    pub(super) async fn rotate_signing_secret(&self, access: &Access, id: &str) -> Result<ShownOnce, AppError> {
        self.require(access, Role::Admin, "rotate_destination_secret").await?;
        let rotated = self.rotated_signing_secret(access, id).await;
        self.audited(access, "rotate_destination_secret", Some(id), None, rotated)
            .await
    }

    async fn rotated_signing_secret(&self, access: &Access, id: &str) -> Result<ShownOnce, AppError> {
        let mut row = self.destination_row(access, id).await?;
        let current = open_secrets(&row, self.accounts.sealer()).map_err(|error| AppError::Conflict(error.0))?;
        let DestinationSecrets::Webhook(mut secrets) = current else {
            return Err(AppError::InvalidInput(format!(
                "only webhook destinations sign their messages; {} is a {} destination",
                row.name,
                row.kind.as_str()
            )));
        };
        secrets.rotate();
        let shown = signing_secret_shown(&secrets);
        row.sealed_secrets = Some(self.seal_secrets(&row.id, &DestinationSecrets::Webhook(secrets)));
        row.updated_at = now_millis();
        match self.store.update_destination(&row).await.map_err(unavailable)? {
            DestinationSave::Saved => Ok(shown),
            _ => Err(AppError::NotFound(format!("no destination {id}"))),
        }
    }

    pub(super) async fn pause_or_resume(
        &self,
        access: &Access,
        id: &str,
        paused: bool,
    ) -> Result<DestinationView, AppError> {
        let action = if paused {
            "pause_destination"
        } else {
            "resume_destination"
        };
        self.require(access, Role::Admin, action).await?;
        let now = now_millis();
        let changed = if paused {
            self.store.pause_destination(&access.account, id, now).await
        } else {
            self.store.resume_destination(&access.account, id, now).await
        };
        let result = match changed {
            Ok(true) => self.one_destination_view(access, id).await,
            Ok(false) => Err(AppError::NotFound(format!("no destination {id}"))),
            Err(error) => Err(unavailable(error)),
        };
        if !paused {
            self.wake_deliveries();
        }
        self.audited(access, action, Some(id), None, result).await
    }

    pub(super) async fn send_test(&self, access: &Access, id: &str) -> Result<TestSendReport, AppError> {
        self.require(access, Role::Admin, "send_test_message").await?;
        let sent = self.sent_test(access, id).await;
        let detail = sent
            .as_ref()
            .ok()
            .map(|report| json!({ "delivered": report.delivered }));
        self.audited(access, "send_test_message", Some(id), detail, sent).await
    }

    async fn sent_test(&self, access: &Access, id: &str) -> Result<TestSendReport, AppError> {
        let row = self.destination_row(access, id).await?;
        let destination =
            open_destination(&row, self.accounts.sealer()).map_err(|error| AppError::Conflict(error.0))?;
        let body = destination.test_message();
        let delivery_id = format!("test-{}", uuid::Uuid::now_v7());
        let attempt = Attempt {
            delivery_id: &delivery_id,
            body: &body,
            at: time::OffsetDateTime::now_utc(),
            subject: None,
        };
        let report = destinations::send(self.outbound()?.deliverer.client(), &destination, &attempt).await;
        Ok(TestSendReport {
            delivered: report.is_delivered(),
            http_status: report.status.map(i32::from),
            error: report.error().map(ToString::to_string),
            duration_ms: report.duration.as_millis() as i64,
            response_excerpt: report.response_excerpt,
        })
    }

    pub(super) async fn delivery_page(&self, access: &Access, query: DeliveryQuery) -> Result<DeliveryPage, AppError> {
        access.require(Role::Viewer)?;
        let status = match query.status.as_deref().map(str::trim) {
            None | Some("") | Some("all") => None,
            Some(name) => Some(DeliveryStatus::try_from(name.to_owned()).map_err(|_| {
                AppError::InvalidInput(format!(
                    "status must be queued, delivering, delivered or failed, not {name:?}"
                ))
            })?),
        };
        let before = match query.cursor.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(cursor) => Some(parse_cursor(cursor)?),
        };
        let stored = StoredQuery {
            destination_id: non_empty(query.destination_id),
            status,
            event_id: non_empty(query.event_id),
            before,
            limit: query.limit.unwrap_or(0),
        };
        let page = self
            .store
            .list_deliveries(&access.account, &stored)
            .await
            .map_err(unavailable)?;
        let names = self.destination_names(access).await?;
        Ok(DeliveryPage {
            deliveries: page.deliveries.iter().map(|row| delivery_view(row, &names)).collect(),
            next_cursor: page.next.map(|next| format!("{}:{}", next.created_at, next.id)),
        })
    }

    pub(super) async fn one_delivery(&self, access: &Access, id: &str) -> Result<DeliveryDetail, AppError> {
        access.require(Role::Viewer)?;
        let row = self
            .store
            .delivery(&access.account, id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| AppError::NotFound(format!("no delivery {id}")))?;
        let attempts = self
            .store
            .delivery_attempts(&access.account, id)
            .await
            .map_err(unavailable)?;
        let names = self.destination_names(access).await?;
        Ok(DeliveryDetail {
            delivery: delivery_view(&row, &names),
            message: row.message.clone(),
            attempt_log: attempts.iter().map(attempt_view).collect(),
        })
    }

    pub(super) async fn requeue_delivery(&self, access: &Access, id: &str) -> Result<(), AppError> {
        self.require(access, Role::Admin, "retry_delivery").await?;
        let retried = match self.store.retry_delivery(&access.account, id, now_millis()).await {
            Ok(DeliveryRetry::Requeued) => {
                self.wake_deliveries();
                Ok(())
            }
            Ok(DeliveryRetry::NotFound) => Err(AppError::NotFound(format!("no delivery {id}"))),
            Ok(DeliveryRetry::NotRetryable(status)) => Err(AppError::Conflict(format!(
                "only failed deliveries are retried; this one is {}",
                status.as_str()
            ))),
            Ok(DeliveryRetry::DestinationDeleted) => Err(AppError::Conflict(
                "its destination was deleted: there is nowhere to send it".into(),
            )),
            Err(error) => Err(unavailable(error)),
        };
        self.audited(access, "retry_delivery", Some(id), None, retried).await
    }

    pub(super) async fn requeue_failed_deliveries(
        &self,
        access: &Access,
        destination_id: &str,
    ) -> Result<u64, AppError> {
        self.require(access, Role::Admin, "retry_destination_deliveries")
            .await?;
        let retried = match self.destination_row(access, destination_id).await {
            Ok(_) => self
                .store
                .retry_failed_deliveries(&access.account, destination_id, now_millis())
                .await
                .map_err(unavailable),
            Err(error) => Err(error),
        };
        if matches!(retried, Ok(1..)) {
            self.wake_deliveries();
        }
        let detail = retried.as_ref().ok().map(|count| json!({ "retried": count }));
        self.audited(
            access,
            "retry_destination_deliveries",
            Some(destination_id),
            detail,
            retried,
        )
        .await
    }

    async fn destination_names(&self, access: &Access) -> Result<HashMap<String, String>, AppError> {
        Ok(self
            .store
            .list_destinations(&access.account)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|row| (row.id, row.name))
            .collect())
    }

    fn seal_secrets(&self, id: &str, secrets: &DestinationSecrets) -> String {
        self.accounts
            .sealer()
            .seal(secrets.to_json().expose().as_bytes(), &destination_secrets_context(id))
    }
}

fn delivery_view(row: &DeliveryRow, names: &HashMap<String, String>) -> DeliveryView {
    DeliveryView {
        id: row.id.clone(),
        destination_id: row.destination_id.clone(),
        destination_name: names
            .get(&row.destination_id)
            .cloned()
            .unwrap_or_else(|| "(deleted)".into()),
        event_id: row.event_id.clone(),
        rule_name: row.rule_name.clone(),
        status: row.status.as_str().to_owned(),
        attempts: row.attempts,
        next_attempt_at: (row.status == DeliveryStatus::Queued).then(|| millis_to_rfc3339(row.next_attempt_at)),
        last_error: row.last_error.clone(),
        created_at: millis_to_rfc3339(row.created_at),
        finished_at: row.finished_at.map(millis_to_rfc3339),
    }
}

fn attempt_view(row: &DeliveryAttemptRow) -> DeliveryAttemptView {
    DeliveryAttemptView {
        attempt: row.attempt,
        started_at: millis_to_rfc3339(row.started_at),
        duration_ms: row.duration_ms,
        http_status: row.http_status,
        response_excerpt: row.response_excerpt.clone(),
        error: row.error.clone(),
        outcome: row.outcome.as_str().to_owned(),
    }
}

/// A page cursor as `next_cursor` gave it: `<created_at>:<id>`.
fn parse_cursor(cursor: &str) -> Result<DeliveryCursor, AppError> {
    cursor
        .split_once(':')
        .and_then(|(created_at, id)| {
            Some(DeliveryCursor {
                created_at: created_at.parse().ok()?,
                id: id.to_owned(),
            })
        })
        .filter(|cursor| !cursor.id.is_empty())
        .ok_or_else(|| AppError::InvalidInput(format!("{cursor:?} is not a page cursor")))
}

fn check_name(name: &str) -> Result<(), AppError> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::InvalidInput(format!(
            "name: give the destination a name of 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

/// A form's settings or secrets: an object (none given: an empty one), without the `kind` beside them.
fn fields(value: Value) -> Value {
    match value {
        Value::Object(mut fields) => {
            fields.remove("kind");
            Value::Object(fields)
        }
        _ => Value::Object(Default::default()),
    }
}

fn no_fields(value: &Value) -> bool {
    value
        .as_object()
        .is_none_or(|fields| fields.values().all(Value::is_null))
}

fn settings_json(settings: &DestinationSettings) -> Value {
    serde_json::from_str(&settings.to_json()).unwrap_or_default()
}

fn signing_secret_shown(secrets: &WebhookSecrets) -> ShownOnce {
    ShownOnce {
        name: "signing secret".into(),
        value: secrets.signing_secrets[0].encode().expose().to_owned(),
        usage: Some("verify the webhook-signature header with it (any Standard Webhooks library does)".into()),
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.trim().is_empty())
}

fn invalid(error: impl std::fmt::Display) -> AppError {
    AppError::InvalidInput(error.to_string())
}
