//! Durable storage behind one `Store` trait: webhook events, mirrored records, the processing queue, settings,
//! (through `Directory`) accounts, users, sessions and the audit log, and (through `Outbound`) rules, destinations
//! and deliveries, and (through `Analytics`) the rollups that outlive events.
//!
//! SQLite (embedded, the default) and PostgreSQL (scale-out) share one implementation (`shared.rs`), each engine
//! supplying only what differs (`engine.rs`), and pass the same conformance suite
//! (`crates/sm8-webhooks/tests/integration/store_conformance/`). Timestamps are unix milliseconds in both engines
//! so that both answer identically.

pub mod alerts;
mod alerts_sql;
pub mod analytics;
mod analytics_sql;
mod analytics_window;
mod batch;
mod budget;
mod budget_ledger;
mod delivery_queue;
pub mod directory;
mod directory_sql;
mod engine;
pub mod insight;
pub mod mirror;
pub mod outbound;
mod outbound_sql;
mod placeholders;
pub mod portal;
mod postgres;
pub mod queue;
mod shared;
mod sqlite;
mod wal;

use std::sync::Arc;

use app::model::{EventPage, EventQuery, EventStatus, EventSummary, MinuteBucket, PageCursor, PipelineHealth, Stats};
use async_trait::async_trait;

pub use alerts::Alerts;
pub use analytics::Analytics;
pub use budget::{BudgetGrant, BudgetLimits};
pub use directory::Directory;
pub use directory_sql::account_secrets_context;
pub use insight::EventRecord;
pub use mirror::{object_spec, row_columns, MirrorRecord, MirrorWrite, ObjectSpec, StoredRecord, OBJECTS};
pub use outbound::{destination_secrets_context, Outbound};
pub use postgres::PostgresStore;
pub use queue::{AttemptRecord, Claim, ClaimedEvent, Completion, Release, Whose};
pub use sqlite::{backup_sqlite, Backup, SqliteStore};

/// Which database to use: every command that touches storage takes it.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// Database to use: sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/sm8.db")]
    pub database_url: String,
}

/// What can go wrong in storage. Callers turn it into an opaque, logged 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    #[error("the event writer has stopped")]
    WriterStopped,
    /// More deliveries wait for the writer than it queues: refused, not stored, for the sender to retry.
    #[error("the event writer is saturated")]
    Saturated,
    #[error("backup failed: {0}")]
    Backup(String),
}

/// What arrived in one request, stored once for all the events it holds.
#[derive(Debug, PartialEq)]
pub struct ReceivedBody {
    pub id: uuid::Uuid,
    /// The request body exactly as received.
    pub raw_body: Vec<u8>,
    /// The request's headers as a JSON object (credentials left out).
    pub headers: serde_json::Value,
    pub received_at: i64,
}

impl ReceivedBody {
    pub fn new(raw_body: Vec<u8>, headers: serde_json::Value, received_at: i64) -> Arc<ReceivedBody> {
        Arc::new(ReceivedBody {
            id: uuid::Uuid::now_v7(),
            raw_body,
            headers,
            received_at,
        })
    }
}

/// An event as the receiver hands it over for storage.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: uuid::Uuid,
    /// The account it belongs to.
    pub account: String,
    /// Identifies a delivery of the same change within the account; a second insert with the same key is a
    /// duplicate.
    pub dedup_key: String,
    pub format: String,
    pub object_type: String,
    pub object_uuid: String,
    pub event_type: String,
    pub occurred_at: Option<i64>,
    pub changes: serde_json::Value,
    /// The delivery it came in, shared with the delivery's other events.
    pub body: Arc<ReceivedBody>,
    pub verification: String,
    pub received_at: i64,
}

/// The outcome of storing one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insertion {
    Stored(uuid::Uuid),
    /// The event was already stored under this id.
    Duplicate(uuid::Uuid),
}

impl Insertion {
    pub fn event_id(&self) -> uuid::Uuid {
        match self {
            Insertion::Stored(id) | Insertion::Duplicate(id) => *id,
        }
    }
}

/// The store: the pipeline's tables here, the directory's (accounts, users, tokens, audit) through `Directory`,
/// and rules, destinations and deliveries through `Outbound`.
#[async_trait]
pub trait Store: Directory + Outbound + Alerts + Analytics + Send + Sync + 'static {
    /// Whether the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// The size on disk of a write-ahead log this process keeps (SQLite's `-wal` file); none where the database
    /// server keeps its own.
    fn log_bytes(&self) -> Option<u64> {
        None
    }

    /// Stores the events of one delivery (or of several) in one transaction, committed before this returns; each
    /// distinct body once, and only if one of its events is new.
    async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<Insertion>, StoreError>;

    /// Every method below that takes an `account` answers about, or changes, that account's rows only.
    async fn stats(&self, account: &str) -> Result<Stats, StoreError>;

    /// A page of events newest first, filtered by `query`.
    async fn list_events(&self, account: &str, query: &EventQuery) -> Result<EventPage, StoreError>;

    /// Every stored column of one event.
    async fn event_record(&self, account: &str, event_id: &str) -> Result<Option<EventRecord>, StoreError>;

    /// Queue depth, processing times and API budget use at `now`.
    async fn pipeline_health(
        &self,
        account: &str,
        now: i64,
        limits: BudgetLimits,
    ) -> Result<PipelineHealth, StoreError>;

    /// Received, succeeded and failed events and mean latency per minute from `since` to `now`.
    async fn minute_buckets(&self, account: &str, since: i64, now: i64) -> Result<Vec<MinuteBucket>, StoreError>;

    /// Returns the stored value of `key`, storing `value` first if there is none.
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError>;

    /// Claims every due event of up to `claim.objects` objects, those whose events have waited longest, under a
    /// lease until `claim.lease_until`: queued events whose time has come, of objects with no event in flight (at
    /// most `MAX_CLAIMED_EVENTS` in all). Empty when nothing is due. Claims whose lease ran out come back through
    /// `release_claims`.
    async fn claim_due_objects(&self, claim: &Claim<'_>) -> Result<Vec<ClaimedEvent>, StoreError>;

    /// When the next queued event that is not yet due at `now` falls due (unix ms). (Those already due wait for
    /// an object in flight, whose worker claims them next.)
    async fn next_due_after(&self, now: i64) -> Result<Option<i64>, StoreError>;

    /// Gives up the claims `release` names: each attempt is recorded as interrupted, and its events are queued
    /// again at once, or failed when that was their last allowed attempt. Returns how many events it released.
    async fn release_claims(&self, release: &Release<'_>) -> Result<u64, StoreError>;

    /// Extends the lease on one object's claimed events to `lease_until`, provided they still carry `held_until`;
    /// returns how many it extended (none: the lease was lost to another worker).
    async fn renew_lease(
        &self,
        account: &str,
        object_type: &str,
        object_uuid: &str,
        held_until: i64,
        lease_until: i64,
    ) -> Result<u64, StoreError>;

    /// Ends the attempt at claimed events and records it; returns how many it ended. Events whose lease was lost
    /// meanwhile are left alone.
    async fn finish_events(
        &self,
        events: &[ClaimedEvent],
        completion: &Completion,
        attempt: &AttemptTiming,
    ) -> Result<u64, StoreError> {
        self.finish_events_delivering(events, completion, attempt, &[]).await
    }

    /// `finish_events`, queueing in the same transaction the deliveries the events' rules made (as
    /// `Outbound::enqueue_deliveries` does), unless no event was finished: one commit for both.
    async fn finish_events_delivering(
        &self,
        events: &[ClaimedEvent],
        completion: &Completion,
        attempt: &AttemptTiming,
        deliveries: &[outbound::NewDelivery],
    ) -> Result<u64, StoreError>;

    /// The attempts at an event (of whichever account: look the event up by account first), oldest first.
    async fn event_attempts(&self, event_id: &str) -> Result<Vec<AttemptRecord>, StoreError>;

    /// Puts a failed or skipped event back in the queue.
    async fn retry_event(&self, account: &str, event_id: &str, now: i64) -> Result<RetryOutcome, StoreError>;

    /// Puts every failed event back in the queue (or only counts them when `dry_run`); returns how many.
    async fn retry_failed_events(&self, account: &str, now: i64, dry_run: bool) -> Result<u64, StoreError>;

    /// Deletes finished (success, skipped, failed) events received before `cutoff`, and the bodies no event refers
    /// to any more; returns how many events. The account's finished deliveries created before `cutoff` go too
    /// (`Outbound::delete_finished_deliveries_before`).
    async fn delete_finished_events_before(&self, account: &str, cutoff: i64) -> Result<u64, StoreError>;

    /// Writes the record (in its account) unless the stored one has a newer edit_date, saying what it replaced.
    async fn upsert_mirror(&self, record: &MirrorRecord, now: i64) -> Result<MirrorWrite, StoreError>;

    /// The mirrored record, if any.
    async fn mirror_record(
        &self,
        account: &str,
        object_type: &str,
        uuid: &str,
    ) -> Result<Option<serde_json::Value>, StoreError>;

    /// The company of a mirrored job.
    async fn job_company(&self, account: &str, job_uuid: &str) -> Result<Option<String>, StoreError>;

    /// Counts one ServiceM8 API request against the account's budget, which every node shares: no more than
    /// `limits.per_minute` in any 60 s and `limits.per_day` in a day, and none while ServiceM8 asked for a pause.
    async fn take_api_budget(&self, account: &str, now: i64, limits: BudgetLimits) -> Result<BudgetGrant, StoreError>;

    /// Pauses every node's ServiceM8 requests for the account until `until` (after a 429); a later pause already
    /// set stands.
    async fn pause_api_budget(&self, account: &str, until: i64) -> Result<(), StoreError>;

    /// Writes API budget counts this process keeps in memory (SQLite's), so that other processes and the next
    /// start see them; they are also written once a second. A process that fetched calls it before it exits.
    async fn save_api_budget(&self) -> Result<(), StoreError>;

    /// The newest edit_date reconciliation has seen for `object_type`.
    async fn sync_watermark(&self, account: &str, object_type: &str) -> Result<Option<String>, StoreError>;

    async fn set_sync_watermark(
        &self,
        account: &str,
        object_type: &str,
        edit_date: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    /// The active mirrored jobs of a company, newest edit first.
    async fn company_jobs(&self, account: &str, company_uuid: &str) -> Result<Vec<serde_json::Value>, StoreError>;

    /// The active records of type `child` under a job (its activities, its attachments); none for a type that
    /// belongs to no job.
    async fn job_children(
        &self,
        account: &str,
        child: &ObjectSpec,
        job_uuid: &str,
    ) -> Result<Vec<serde_json::Value>, StoreError>;

    async fn create_portal_link(
        &self,
        token_hash: &str,
        company: &CompanyOf,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// Uses up a portal link: its account and company if the link was unused and unexpired, once.
    async fn redeem_portal_link(&self, token_hash: &str, now: i64) -> Result<Option<CompanyOf>, StoreError>;

    async fn create_portal_session(
        &self,
        token_hash: &str,
        company: &CompanyOf,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// The account and company of an active portal session.
    async fn portal_session_company(&self, token_hash: &str, now: i64) -> Result<Option<CompanyOf>, StoreError>;

    async fn delete_portal_session(&self, token_hash: &str) -> Result<(), StoreError>;
}

/// Splits the extra row a page query fetches off into the next-page cursor.
fn into_page(rows: Vec<EventRow>, query: &EventQuery) -> Result<EventPage, StoreError> {
    let limit = query.effective_limit() as usize;
    let more = rows.len() > limit;
    let rows: Vec<EventRow> = rows.into_iter().take(limit).collect();
    let next_cursor = if more {
        rows.last().map(|row| PageCursor::encode(row.received_at, &row.id))
    } else {
        None
    };
    let events = rows.into_iter().map(EventSummary::try_from).collect::<Result<_, _>>()?;
    Ok(EventPage { events, next_cursor })
}

/// A company of one account: what a portal link or session opens.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CompanyOf {
    pub account: String,
    pub company_uuid: String,
}

/// Start, end and HTTP status of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptTiming {
    pub started_at: i64,
    pub finished_at: i64,
    pub http_status: Option<i32>,
}

/// What a manual retry of one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    Requeued,
    NotFound,
    /// Queued or processing events are already on their way.
    NotRetryable(EventStatus),
}

/// The columns `event_attempts` selects, in `AttemptRecord` order.
const ATTEMPT_COLUMNS: &str = "event_id, attempt, started_at, finished_at, outcome, http_status, error";

/// Most events one claim takes; the rest of an object's due events wait for the next claim.
pub const MAX_CLAIMED_EVENTS: u32 = 500;

/// The columns `claim_due_objects` returns, in `ClaimedRow` order.
const CLAIMED_COLUMNS: &str = "id, account, format, object_type, object_uuid, event_type, occurred_at, changes, \
     attempts, received_at, locked_until";

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: String,
    account: String,
    format: String,
    object_type: String,
    object_uuid: String,
    event_type: String,
    occurred_at: Option<i64>,
    changes: serde_json::Value,
    attempts: i32,
    received_at: i64,
    locked_until: Option<i64>,
}

impl From<ClaimedRow> for ClaimedEvent {
    fn from(row: ClaimedRow) -> Self {
        ClaimedEvent {
            id: row.id,
            account: row.account,
            format: row.format,
            object_type: row.object_type,
            object_uuid: row.object_uuid,
            event_type: row.event_type,
            occurred_at: row.occurred_at,
            changes: row.changes,
            attempts: row.attempts,
            received_at: row.received_at,
            lease_until: row.locked_until.unwrap_or_default(),
        }
    }
}

/// Claimed events in the order their changes happened.
fn in_change_order(rows: Vec<ClaimedRow>) -> Vec<ClaimedEvent> {
    let mut events: Vec<ClaimedEvent> = rows.into_iter().map(ClaimedEvent::from).collect();
    events.sort_by_key(|event| (event.occurred_at.unwrap_or(event.received_at), event.received_at));
    events
}

/// The column values `finish_events` writes for a completion: status, last_error, skip_reason, next_attempt_at,
/// attempts refunded, processed_at.
struct FinishValues<'a> {
    status: &'static str,
    last_error: Option<&'a str>,
    skip_reason: Option<&'a str>,
    next_attempt_at: Option<i64>,
    refund: i32,
    processed_at: Option<i64>,
}

impl<'a> FinishValues<'a> {
    fn new(completion: &'a Completion, finished_at: i64) -> Self {
        let (next_attempt_at, refund) = match completion {
            Completion::Retry { next_attempt_at, .. } => (Some(*next_attempt_at), 0),
            Completion::Postponed(_) => (None, 1),
            _ => (None, 0),
        };
        let skip_reason = match completion {
            Completion::Skipped(reason) => Some(reason.as_str()),
            _ => None,
        };
        let finished = !matches!(completion, Completion::Retry { .. } | Completion::Postponed(_));
        FinishValues {
            status: completion.status().as_str(),
            last_error: completion.error(),
            skip_reason,
            next_attempt_at,
            refund,
            processed_at: finished.then_some(finished_at),
        }
    }
}

/// Opens (creating if needed) and migrates the database named by `url`.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// The account of a deployment configured by its environment alone, and of everything stored before accounts.
pub const DEFAULT_ACCOUNT: &str = "default";

/// Milliseconds since the unix epoch, the unit of every stored timestamp.
pub fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Renders stored milliseconds as RFC 3339 for the API and the UI.
pub fn millis_to_rfc3339(millis: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

pub(crate) fn parse_status(value: &str) -> Result<EventStatus, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown event status {value:?}")))
}

/// Builds `Stats` from `(status, count)`, `(object_type, count)` rows and the newest `received_at`.
fn assemble_stats(
    by_status: Vec<(String, i64)>,
    by_object_type: Vec<(String, i64)>,
    last_received_at: Option<i64>,
) -> Result<Stats, StoreError> {
    let mut stats = Stats {
        last_received_at: last_received_at.map(millis_to_rfc3339),
        by_status: EventStatus::ALL.into_iter().map(|status| (status, 0)).collect(),
        ..Stats::default()
    };
    for (status, count) in by_status {
        stats.by_status.insert(parse_status(&status)?, count);
        stats.total += count;
    }
    stats.by_object_type = by_object_type.into_iter().collect();
    Ok(stats)
}

/// The columns every `list_events` query selects, in `EventRow` order.
const EVENT_SUMMARY_COLUMNS: &str =
    "id, object_type, object_uuid, event_type, status, attempts, received_at, last_error";

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    object_type: String,
    object_uuid: String,
    event_type: String,
    status: String,
    attempts: i32,
    received_at: i64,
    last_error: Option<String>,
}

impl TryFrom<EventRow> for EventSummary {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(EventSummary {
            status: parse_status(&row.status)?,
            id: row.id,
            object_type: row.object_type,
            object_uuid: row.object_uuid,
            event_type: row.event_type,
            attempts: row.attempts,
            received_at: millis_to_rfc3339(row.received_at),
            last_error: row.last_error,
        })
    }
}

/// Claims for a unit test, as node `test-node`.
#[cfg(test)]
pub(crate) async fn test_claim(store: &dyn Store, now: i64, lease_until: i64, objects: u32) -> Vec<ClaimedEvent> {
    let claim = Claim {
        now,
        lease_until,
        objects,
        node: "test-node",
    };
    store.claim_due_objects(&claim).await.unwrap()
}

/// A queued `job` event keyed `key`, for tests that only need rows.
#[cfg(test)]
pub(crate) fn test_event(key: &str) -> NewEvent {
    NewEvent {
        id: uuid::Uuid::now_v7(),
        account: DEFAULT_ACCOUNT.into(),
        dedup_key: key.into(),
        format: "seed".into(),
        object_type: "job".into(),
        object_uuid: key.into(),
        event_type: "updated".into(),
        occurred_at: None,
        changes: serde_json::json!({}),
        body: ReceivedBody::new(Vec::new(), serde_json::json!({}), now_millis()),
        verification: "unsigned".into(),
        received_at: now_millis(),
    }
}
