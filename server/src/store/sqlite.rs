//! The embedded engine: one SQLite file in WAL mode, fully synchronous so an acknowledged event survives a crash.

use std::str::FromStr;
use std::time::Duration;

use app::model::{EventQuery, EventSummary, Stats};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::{assemble_stats, EventRow, Insertion, NewEvent, Store, StoreError, EVENT_SUMMARY_COLUMNS};

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens the database at `url` (`sqlite://path` or `sqlite::memory:`), creating the file and its folder.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(folder) = options.get_filename().parent() {
            if !folder.as_os_str().is_empty() {
                std::fs::create_dir_all(folder).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
            }
        }
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<Insertion>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut insertions = Vec::with_capacity(events.len());
        for event in events {
            let inserted = sqlx::query(
                "INSERT INTO webhook_events (id, dedup_key, format, object_type, object_uuid, event_type,
                     occurred_at, changes, raw_body, headers, verification, next_attempt_at, received_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (dedup_key) DO NOTHING",
            )
            .bind(event.id.to_string())
            .bind(&event.dedup_key)
            .bind(&event.format)
            .bind(&event.object_type)
            .bind(&event.object_uuid)
            .bind(&event.event_type)
            .bind(event.occurred_at)
            .bind(&event.changes)
            .bind(&event.raw_body)
            .bind(&event.headers)
            .bind(&event.verification)
            .bind(event.received_at)
            .bind(event.received_at)
            .bind(event.received_at)
            .execute(&mut *tx)
            .await?;
            let insertion = if inserted.rows_affected() == 1 {
                Insertion::Stored(event.id)
            } else {
                let existing: String = sqlx::query_scalar("SELECT id FROM webhook_events WHERE dedup_key = ?")
                    .bind(&event.dedup_key)
                    .fetch_one(&mut *tx)
                    .await?;
                Insertion::Duplicate(existing.parse().map_err(|_| StoreError::Corrupt(existing))?)
            };
            insertions.push(insertion);
        }
        tx.commit().await?;
        Ok(insertions)
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        let by_status = sqlx::query_as("SELECT status, COUNT(*) FROM webhook_events GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        let by_object_type = sqlx::query_as("SELECT object_type, COUNT(*) FROM webhook_events GROUP BY object_type")
            .fetch_all(&self.pool)
            .await?;
        let last_received_at = sqlx::query_scalar("SELECT MAX(received_at) FROM webhook_events")
            .fetch_one(&self.pool)
            .await?;
        assemble_stats(by_status, by_object_type, last_received_at)
    }

    async fn list_events(&self, query: &EventQuery) -> Result<Vec<EventSummary>, StoreError> {
        let status = query.status.map(|s| s.as_str());
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {EVENT_SUMMARY_COLUMNS} FROM webhook_events
             WHERE (?1 IS NULL OR status = ?1)
             ORDER BY received_at DESC, id DESC LIMIT ?2"
        ))
        .bind(status)
        .bind(i64::from(query.effective_limit()))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventSummary::try_from).collect()
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn create_session(&self, token_hash: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO admin_sessions (token_hash, created_at, expires_at) VALUES (?, ?, ?)")
            .bind(token_hash)
            .bind(super::now_millis())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session_is_active(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM admin_sessions WHERE token_hash = ? AND expires_at > ?")
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = ? OR expires_at <= ?")
            .bind(token_hash)
            .bind(super::now_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
