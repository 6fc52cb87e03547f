//! `ServerBackend`: the one implementation behind the dashboard's server functions and the REST management API
//! (here), the portal's (`portal.rs`) and the realtime credentials (`realtime.rs`). Each is provided to the pages
//! as its own trait object, so a portal server function cannot reach an admin method.

mod portal;
mod portal_views;
mod realtime;

use std::sync::Arc;

use app::api::DashboardBackend;
use app::error::AppError;
use app::model::{
    AttemptView, EventDetail, EventPage, EventQuery, EventSummary, MinuteBucket, PageCursor, PipelineHealth, Stats,
    TestEvent,
};
use serde_json::json;

use crate::auth::{random_token, secrets_match, token_hash};
use crate::ingest::decode::Delivery;
use crate::ingest::payload::{canonical_object_type, ParsedEvent};
use crate::ingest::signature::Verification;
use crate::processor::ProcessingMode;
use crate::queue::EventQueue;
use crate::realtime::TokenKeys;
use crate::secret::Secret;
use crate::store::queue::MINUTE_MS;
use crate::store::{millis_to_rfc3339, now_millis, BudgetLimits, EventRecord, RetryOutcome, Store, StoreError};
use crate::updates::{PipelineEvent, PipelineStage, PipelineUpdate};

/// How long a dashboard session lasts.
const SESSION_TTL_SECONDS: i64 = 12 * 60 * 60;

/// What the backend needs to know of the server's configuration.
#[derive(Debug, Clone, Copy)]
pub struct BackendSettings {
    /// Cookies carry `Secure` (the public URL is https).
    pub secure_cookies: bool,
    pub processing_mode: ProcessingMode,
    pub budget_limits: BudgetLimits,
}

pub struct ServerBackend {
    store: Arc<dyn Store>,
    queue: EventQueue,
    admin_token: Secret,
    settings: BackendSettings,
    /// Set when the realtime relay runs: browsers get their access tokens here.
    realtime: Option<RealtimeKeys>,
}

/// What minting realtime access tokens takes: the relay's signing keys and its public anon key.
#[derive(Clone)]
pub struct RealtimeKeys {
    pub keys: TokenKeys,
    pub anon_key: Secret,
}

/// How long an access token handed to a browser lasts; the client fetches the next one a minute before.
const REALTIME_TOKEN_TTL_SECONDS: i64 = 60 * 60;

impl ServerBackend {
    pub fn new(store: Arc<dyn Store>, queue: EventQueue, admin_token: Secret, settings: BackendSettings) -> Self {
        ServerBackend {
            store,
            queue,
            admin_token,
            settings,
            realtime: None,
        }
    }

    /// Lets the backend hand out realtime access tokens signed with `keys`.
    pub fn with_realtime(mut self, keys: RealtimeKeys) -> Self {
        self.realtime = Some(keys);
        self
    }

    /// The store's write-ahead log on disk, where this process keeps one.
    pub fn store_log_bytes(&self) -> Option<u64> {
        self.store.log_bytes()
    }

    pub fn admin_token_matches(&self, candidate: &str) -> bool {
        !candidate.is_empty() && secrets_match(candidate, self.admin_token.expose())
    }
}

fn unavailable(error: StoreError) -> AppError {
    tracing::error!(%error, "storage error");
    AppError::Unavailable("storage unavailable".into())
}

#[async_trait::async_trait]
impl DashboardBackend for ServerBackend {
    async fn stats(&self) -> Result<Stats, AppError> {
        let mut stats = self.store.stats().await.map_err(unavailable)?;
        if self.settings.processing_mode == ProcessingMode::PayloadOnly {
            stats.notice = Some(
                "No ServiceM8 credentials: events are applied from their own payloads, nothing is fetched. \
                 Set SERVICEM8_API_KEY to fetch each record."
                    .into(),
            );
        }
        Ok(stats)
    }

    async fn list_events(&self, query: EventQuery) -> Result<EventPage, AppError> {
        if let Some(cursor) = query.cursor.as_deref() {
            if PageCursor::decode(cursor).is_none() {
                return Err(AppError::InvalidInput(format!(
                    "cursor {cursor:?} is not a page cursor: pass next_cursor from the previous page"
                )));
            }
        }
        self.store.list_events(&query).await.map_err(unavailable)
    }

    async fn event_detail(&self, event_id: &str) -> Result<EventDetail, AppError> {
        let record = self.store.event_record(event_id).await.map_err(unavailable)?;
        let record = record.ok_or_else(|| AppError::NotFound(format!("no event {event_id}")))?;
        let attempts = self.store.event_attempts(event_id).await.map_err(unavailable)?;
        let mirrored = self
            .store
            .mirror_record(&record.object_type, &record.object_uuid)
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

    async fn pipeline_health(&self) -> Result<PipelineHealth, AppError> {
        self.store
            .pipeline_health(now_millis(), self.settings.budget_limits)
            .await
            .map_err(unavailable)
    }

    async fn minute_buckets(&self) -> Result<Vec<MinuteBucket>, AppError> {
        let now = now_millis();
        self.store
            .minute_buckets(now - 59 * MINUTE_MS, now)
            .await
            .map_err(unavailable)
    }

    async fn send_test_event(&self, event: TestEvent) -> Result<String, AppError> {
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
        let events = crate::ingest::new_events(delivery, json!({ "x-sent-from": "dashboard" }), &body, received_at);
        let insertions = self.queue.enqueue(&events).await.map_err(unavailable)?;
        Ok(insertions.first().map(|i| i.event_id().to_string()).unwrap_or_default())
    }

    async fn retry_event(&self, event_id: &str) -> Result<(), AppError> {
        let now = now_millis();
        match self.store.retry_event(event_id, now).await.map_err(unavailable)? {
            RetryOutcome::Requeued => {
                let _ = self.queue.updates().send(PipelineUpdate::Lifecycle(PipelineEvent {
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

    async fn retry_failed_events(&self, dry_run: bool) -> Result<u64, AppError> {
        let count = self
            .store
            .retry_failed_events(now_millis(), dry_run)
            .await
            .map_err(unavailable)?;
        if !dry_run && count > 0 {
            tracing::info!(count, "failed events put back in the queue");
            self.queue.wake_workers();
        }
        Ok(count)
    }

    async fn cleanup(&self, older_than_days: i64) -> Result<u64, AppError> {
        if older_than_days < 0 {
            return Err(AppError::InvalidInput("olderThanDays must be 0 or more".into()));
        }
        let cutoff = now_millis() - older_than_days.saturating_mul(24 * 3600 * 1000);
        let deleted = self
            .store
            .delete_finished_events_before(cutoff)
            .await
            .map_err(unavailable)?;
        tracing::info!(deleted, older_than_days, "cleanup deleted finished events");
        Ok(deleted)
    }

    async fn sign_in(&self, admin_token: &str) -> Result<String, AppError> {
        if !self.admin_token_matches(admin_token) {
            tracing::warn!("dashboard sign-in refused: wrong admin token");
            return Err(AppError::InvalidAdminToken);
        }
        let session = random_token();
        let expires_at = now_millis() + SESSION_TTL_SECONDS * 1000;
        self.store
            .create_session(&token_hash(&session), expires_at)
            .await
            .map_err(unavailable)?;
        Ok(session)
    }

    async fn session_is_active(&self, session: &str) -> Result<bool, AppError> {
        self.store
            .session_is_active(&token_hash(session), now_millis())
            .await
            .map_err(unavailable)
    }

    async fn sign_out(&self, session: &str) -> Result<(), AppError> {
        self.store
            .delete_session(&token_hash(session))
            .await
            .map_err(unavailable)
    }

    fn session_ttl_seconds(&self) -> i64 {
        SESSION_TTL_SECONDS
    }

    fn secure_cookies(&self) -> bool {
        self.settings.secure_cookies
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
