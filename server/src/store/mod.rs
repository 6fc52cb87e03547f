//! Durable storage behind one `Store` trait: webhook events, admin sessions and settings.
//!
//! SQLite (embedded, the default) and PostgreSQL (scale-out) implement the same trait and pass the same
//! conformance suite (`server/tests/store_conformance.rs`). Timestamps are unix milliseconds in both engines so
//! that both answer identically.

mod postgres;
mod sqlite;

use std::sync::Arc;

use app::model::{EventQuery, EventStatus, EventSummary, Stats};
use async_trait::async_trait;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

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
}

/// An event as the receiver hands it over for storage.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: uuid::Uuid,
    /// Identifies a delivery of the same change; a second insert with the same key is a duplicate.
    pub dedup_key: String,
    pub format: String,
    pub object_type: String,
    pub object_uuid: String,
    pub event_type: String,
    pub occurred_at: Option<i64>,
    pub changes: serde_json::Value,
    pub raw_body: Vec<u8>,
    pub headers: serde_json::Value,
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

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores the events of one delivery in one transaction, committed before this returns.
    async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<Insertion>, StoreError>;

    async fn stats(&self) -> Result<Stats, StoreError>;

    /// Events newest first, filtered by `query`.
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<EventSummary>, StoreError>;

    /// Returns the stored value of `key`, storing `value` first if there is none.
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError>;

    async fn create_session(&self, token_hash: &str, expires_at: i64) -> Result<(), StoreError>;

    /// Whether a session with this token hash exists and has not expired at `now`.
    async fn session_is_active(&self, token_hash: &str, now: i64) -> Result<bool, StoreError>;

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;
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

fn parse_status(value: &str) -> Result<EventStatus, StoreError> {
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
