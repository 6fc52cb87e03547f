//! The dashboard's and the management API's view of one account's pipeline: statistics, events, health, and the
//! admin actions on events (retry, cleanup, test events), each checked against the caller's role and audited.

use app::access::{Access, Role};
use app::api::DashboardBackend;
use app::error::AppError;
use app::model::{
    AttemptView, EventDetail, EventPage, EventQuery, EventSummary, MinuteBucket, PageCursor, PipelineHealth, Stats,
    TestEvent,
};
use serde_json::json;

use super::{unavailable, Caller, ServerBackend};
use crate::accounts::{LiveAccount, ProcessingMode};
use crate::ingest::decode::Delivery;
use crate::ingest::payload::{canonical_object_type, ParsedEvent};
use crate::ingest::signature::Verification;
use crate::store::queue::MINUTE_MS;
use crate::store::{millis_to_rfc3339, now_millis, EventRecord, RetryOutcome};
use crate::updates::{PipelineEvent, PipelineStage, PipelineUpdate};

impl ServerBackend {
    /// The account `access` names, as the registry holds it.
    pub(super) fn live_account(&self, access: &Access) -> Result<std::sync::Arc<LiveAccount>, AppError> {
        self.accounts
            .get(&access.account)
            .ok_or_else(|| AppError::NotFound(format!("no account {}", access.account)))
    }

    /// Every account's pipeline health, for the metrics' gauges.
    pub async fn health_by_account(&self) -> Result<Vec<(String, PipelineHealth)>, AppError> {
        let mut healths = Vec::new();
        for account in self.accounts.all() {
            let limits = self
                .accounts
                .limits(account.requests_per_minute, account.requests_per_day);
            let health = self
                .store
                .pipeline_health(&account.slug, now_millis(), limits)
                .await
                .map_err(unavailable)?;
            healths.push((account.slug.clone(), health));
        }
        Ok(healths)
    }

    /// Refuses, and audits the refusal of, an action that needs `role`.
    pub(super) async fn require(&self, access: &Access, role: Role, action: &str) -> Result<(), AppError> {
        match access.require(role) {
            Ok(()) => Ok(()),
            refused => self.audited(access, action, None, None, refused).await,
        }
    }
}

#[async_trait::async_trait]
impl DashboardBackend for ServerBackend {
    async fn access(
        &self,
        session: &str,
        account: Option<&str>,
        client_address: Option<String>,
    ) -> Result<Access, AppError> {
        self.access_for(&Caller::Session(session.to_owned()), account, client_address)
            .await
    }

    async fn stats(&self, access: &Access) -> Result<Stats, AppError> {
        let account = self.live_account(access)?;
        let mut stats = self.store.stats(&access.account).await.map_err(unavailable)?;
        if account.processing_mode() == ProcessingMode::PayloadOnly {
            stats.notice = Some(
                "No ServiceM8 credentials for this account: events are applied from their own payloads, nothing \
                 is fetched. Add an API key or connect ServiceM8 on the account page."
                    .into(),
            );
        }
        if account.disabled {
            stats.notice = Some("This account is disabled: its receiver refuses webhooks (410).".into());
        }
        Ok(stats)
    }

    async fn list_events(&self, access: &Access, query: EventQuery) -> Result<EventPage, AppError> {
        if let Some(cursor) = query.cursor.as_deref() {
            if PageCursor::decode(cursor).is_none() {
                return Err(AppError::InvalidInput(format!(
                    "cursor {cursor:?} is not a page cursor: pass next_cursor from the previous page"
                )));
            }
        }
        self.store
            .list_events(&access.account, &query)
            .await
            .map_err(unavailable)
    }

    async fn event_detail(&self, access: &Access, event_id: &str) -> Result<EventDetail, AppError> {
        let record = self
            .store
            .event_record(&access.account, event_id)
            .await
            .map_err(unavailable)?;
        let record = record.ok_or_else(|| AppError::NotFound(format!("no event {event_id}")))?;
        let attempts = self.store.event_attempts(event_id).await.map_err(unavailable)?;
        let mirrored = self
            .store
            .mirror_record(&access.account, &record.object_type, &record.object_uuid)
            .await
            .map_err(unavailable)?;
        let attempt_log = attempts
            .into_iter()
            .map(|attempt| AttemptView {
                attempt: attempt.attempt,
                started_at: millis_to_rfc3339(attempt.started_at),
                duration_ms: attempt.finished_at - attempt.started_at,
                outcome: attempt.outcome,
                http_status: attempt.http_status,
                error: attempt.error,
            })
            .collect();
        detail_of(record, attempt_log, mirrored)
    }

    async fn pipeline_health(&self, access: &Access) -> Result<PipelineHealth, AppError> {
        let account = self.live_account(access)?;
        let limits = self
            .accounts
            .limits(account.requests_per_minute, account.requests_per_day);
        self.store
            .pipeline_health(&access.account, now_millis(), limits)
            .await
            .map_err(unavailable)
    }

    async fn minute_buckets(&self, access: &Access) -> Result<Vec<MinuteBucket>, AppError> {
        let now = now_millis();
        self.store
            .minute_buckets(&access.account, now - 59 * MINUTE_MS, now)
            .await
            .map_err(unavailable)
    }

    async fn send_test_event(&self, access: &Access, event: TestEvent) -> Result<String, AppError> {
        self.require(access, Role::Admin, "send_test_event").await?;
        let target = format!("{} {}", event.object_type.trim(), event.object_uuid.trim());
        let sent = self.queue_test_event(access, event).await;
        self.audited(access, "send_test_event", Some(&target), None, sent).await
    }

    async fn retry_event(&self, access: &Access, event_id: &str) -> Result<(), AppError> {
        self.require(access, Role::Admin, "retry_event").await?;
        let retried = self.requeue(access, event_id).await;
        self.audited(access, "retry_event", Some(event_id), None, retried).await
    }

    async fn retry_failed_events(&self, access: &Access, dry_run: bool) -> Result<u64, AppError> {
        if dry_run {
            return self
                .store
                .retry_failed_events(&access.account, now_millis(), true)
                .await
                .map_err(unavailable);
        }
        self.require(access, Role::Admin, "retry_failed_events").await?;
        let retried = self
            .store
            .retry_failed_events(&access.account, now_millis(), false)
            .await
            .map_err(unavailable);
        if let Ok(count @ 1..) = &retried {
            tracing::info!(count, account = %access.account, "failed events put back in the queue");
            self.queue.wake_workers();
        }
        let detail = retried.as_ref().ok().map(|count| json!({ "retried": count }));
        self.audited(access, "retry_failed_events", None, detail, retried).await
    }

    async fn cleanup(&self, access: &Access, older_than_days: i64) -> Result<u64, AppError> {
        self.require(access, Role::Admin, "cleanup").await?;
        let deleted = if older_than_days < 0 {
            Err(AppError::InvalidInput("olderThanDays must be 0 or more".into()))
        } else {
            let cutoff = now_millis() - older_than_days.saturating_mul(24 * 3600 * 1000);
            self.store
                .delete_finished_events_before(&access.account, cutoff)
                .await
                .map_err(unavailable)
        };
        if let Ok(deleted) = &deleted {
            tracing::info!(deleted, older_than_days, account = %access.account, "cleanup deleted finished events");
        }
        let detail = json!({ "olderThanDays": older_than_days, "deleted": deleted.as_ref().ok() });
        self.audited(access, "cleanup", None, Some(detail), deleted).await
    }
}

impl ServerBackend {
    async fn queue_test_event(&self, access: &Access, event: TestEvent) -> Result<String, AppError> {
        let invalid = |reason: &str| Err(AppError::InvalidInput(reason.into()));
        let object_type = canonical_object_type(event.object_type.trim());
        let (object_uuid, event_type) = (event.object_uuid.trim(), event.event_type.trim().to_ascii_lowercase());
        if object_type.is_empty() || object_uuid.is_empty() || event_type.is_empty() {
            return invalid("object type, object uuid and event type are required");
        }
        if !event.changes.is_object() {
            return invalid("changes must be a JSON object");
        }
        let body = serde_json::to_vec(&event).unwrap_or_default();
        let received_at = now_millis();
        let delivery = Delivery {
            format: "test",
            verification: Verification::AdminSession,
            // Every test event is new, even one sent twice.
            delivery_id: Some(uuid::Uuid::new_v4().to_string()),
            events: vec![ParsedEvent {
                object_type,
                object_uuid: object_uuid.to_owned(),
                event_type,
                occurred_at: Some(received_at),
                changes: event.changes,
            }],
        };
        let events = crate::ingest::new_events(
            &access.account,
            delivery,
            json!({ "x-sent-from": "dashboard" }),
            &body,
            received_at,
        );
        let insertions = self.queue.enqueue(&events).await.map_err(unavailable)?;
        Ok(insertions.first().map(|i| i.event_id().to_string()).unwrap_or_default())
    }

    async fn requeue(&self, access: &Access, event_id: &str) -> Result<(), AppError> {
        let now = now_millis();
        match self
            .store
            .retry_event(&access.account, event_id, now)
            .await
            .map_err(unavailable)?
        {
            RetryOutcome::Requeued => {
                let _ = self.queue.updates().send(PipelineUpdate::Lifecycle(PipelineEvent {
                    account: access.account.clone(),
                    event_id: event_id.to_owned(),
                    object_type: String::new(),
                    object_uuid: String::new(),
                    event_type: String::new(),
                    stage: PipelineStage::Retried,
                    attempts: 0,
                    error: None,
                    at: now,
                    offset: None,
                }));
                self.queue.wake_workers();
                Ok(())
            }
            RetryOutcome::NotFound => Err(AppError::NotFound(format!("no event {event_id}"))),
            RetryOutcome::NotRetryable(status) => Err(AppError::Conflict(format!(
                "event {event_id} is {status}: it is already on its way"
            ))),
        }
    }
}

fn detail_of(
    record: EventRecord,
    attempt_log: Vec<AttemptView>,
    mirrored: Option<serde_json::Value>,
) -> Result<EventDetail, AppError> {
    let status = record
        .status
        .parse()
        .map_err(|_| AppError::Unavailable(format!("event has status {:?}", record.status)))?;
    Ok(EventDetail {
        summary: EventSummary {
            id: record.id,
            object_type: record.object_type,
            object_uuid: record.object_uuid,
            event_type: record.event_type,
            status,
            attempts: record.attempts,
            received_at: millis_to_rfc3339(record.received_at),
            last_error: record.last_error,
        },
        format: record.format,
        verification: record.verification,
        occurred_at: record.occurred_at.map(millis_to_rfc3339),
        changes: record.changes,
        raw_body: String::from_utf8_lossy(record.raw_body.as_deref().unwrap_or_default()).into_owned(),
        headers: record.headers.unwrap_or_else(|| json!({})),
        skip_reason: record.skip_reason,
        next_attempt_at: (record.status == "queued").then(|| millis_to_rfc3339(record.next_attempt_at)),
        processed_at: record.processed_at.map(millis_to_rfc3339),
        attempt_log,
        mirrored,
    })
}
