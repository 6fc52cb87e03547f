//! The embedded engine: one SQLite file in WAL mode, fully synchronous so an acknowledged event survives a crash.

mod backup;
mod batch;
mod checkpoints;
mod finishes;
mod queue;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use app::model::{EventPage, EventQuery, MinuteBucket, PipelineHealth, Stats};
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqlitePool};
use tokio_util::sync::DropGuard;

use super::insight::{
    assemble_buckets, assemble_health, budget_use, budget_use_binds, event_page_query, BindValue, EventRecord,
    BUDGET_USE_SQL, EVENT_RECORD_SQL, FINISHED_BY_STATUS_SQL, FINISHED_PER_MINUTE_SQL, OLDEST_QUEUED_SQL,
    PROCESSING_SAMPLE, PROCESSING_TIMES_SQL, QUEUE_DEPTH_SQL, RECEIVED_PER_MINUTE_SQL,
};
use super::portal::{
    JobChild, COMPANY_JOBS_SQL, CREATE_LINK_SQL, CREATE_SESSION_SQL, DELETE_SESSION_SQL, REDEEM_LINK_SQL,
    SESSION_COMPANY_SQL,
};
use super::queue::{Claim, Release, MINUTE_MS, NEXT_DUE_SQL, PAUSE_API_SQL, RENEW_LEASE_SQL};
use super::wal::WalSync;
use super::{
    assemble_stats, into_page, AttemptRecord, AttemptTiming, BudgetGrant, BudgetLimits, ClaimedEvent, Completion,
    EventRow, Insertion, MirrorRecord, MirrorWrite, NewEvent, RetryOutcome, Store, StoreError, ATTEMPT_COLUMNS,
    EVENT_SUMMARY_COLUMNS,
};
pub use backup::{backup_sqlite, Backup};
use checkpoints::{Checkpoints, LOG_FILE_LIMIT_BYTES, RESTART_ABOVE_BYTES, WRITER_BUSY_TIMEOUT};
use finishes::FinishQueue;

pub struct SqliteStore {
    /// Reads, several at once: in WAL mode they see the last commit and never wait for the writer.
    readers: SqlitePool,
    /// The one connection every write goes through. SQLite admits one writer at a time; queueing writers here, in
    /// order, replaces its busy handler, which backs off in sleeps of up to 100 ms while another connection writes.
    /// Its commits do not wait for the disk: a write that must be durable waits afterwards (`synced`).
    writer: SqlitePool,
    /// Syncs the log for durable writes; none for an in-memory database.
    log: Option<WalSync>,
    /// Finishes waiting for the writer, committed together by whoever gets it.
    finishes: FinishQueue,
    /// Stops the checkpoints when the store is dropped.
    _checkpoints: Option<DropGuard>,
    /// What keeps the log small, shared with the task that runs it; none for an in-memory database.
    checkpoints: Option<Checkpoints>,
}

impl SqliteStore {
    /// Stores a portal link or session (`sql` is the one or the other): a token hash for a company until
    /// `expires_at`.
    async fn insert_portal_token(
        &self,
        sql: &str,
        token_hash: &str,
        company_uuid: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut writer = self.write().await?;
        sqlx::query(sql)
            .bind(token_hash)
            .bind(company_uuid)
            .bind(super::now_millis())
            .bind(expires_at)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await
    }

    /// Opens the database at `url` (`sqlite://path` or `sqlite::memory:`), creating the file and its folder.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(WRITER_BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("journal_size_limit", LOG_FILE_LIMIT_BYTES.to_string());
        if let Some(folder) = options.get_filename().parent() {
            if !folder.as_os_str().is_empty() {
                std::fs::create_dir_all(folder).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
            }
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().pragma("wal_autocheckpoint", "0"))
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&writer).await?;
        if url.contains(":memory:") {
            // An in-memory database lives in its connections' shared cache and never reaches a disk.
            return Ok(SqliteStore {
                readers: writer.clone(),
                writer,
                log: None,
                finishes: FinishQueue::default(),
                _checkpoints: None,
                checkpoints: None,
            });
        }
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone().read_only(true))
            .await?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let log_file = wal_file(options.get_filename());
        let checkpoints = Checkpoints {
            checkpointer,
            writer: writer.clone(),
            log_file: log_file.clone(),
            restart_above_bytes: RESTART_ABOVE_BYTES,
        };
        Ok(SqliteStore {
            readers,
            writer,
            log: Some(WalSync::new(log_file)),
            finishes: FinishQueue::default(),
            _checkpoints: Some(checkpoints.clone().spawn()),
            checkpoints: Some(checkpoints),
        })
    }

    /// This store's checkpoints, restarting the log past `restart_above_bytes`, for tests that drive the rounds
    /// themselves.
    #[cfg(test)]
    fn checkpoints_for_test(&self, restart_above_bytes: u64) -> Checkpoints {
        Checkpoints {
            restart_above_bytes,
            ..self.checkpoints.clone().expect("a database file")
        }
    }

    #[cfg(test)]
    fn readers_for_test(&self) -> SqlitePool {
        self.readers.clone()
    }

    async fn write(&self) -> Result<PoolConnection<Sqlite>, StoreError> {
        Ok(self.writer.acquire().await?)
    }

    /// Hands the writer back, then returns once what it committed is on disk: for accepted events and whatever a
    /// user asked for. Writes that skip this are the workers' bookkeeping (claims, finishes, mirror rows, budget
    /// counts): they survive a crash of the process, go to disk with the next sync or checkpoint, and a power loss
    /// can only take them back to an earlier state that processing repeats (leases expire; fetches and
    /// edit_date-guarded mirror writes are idempotent).
    async fn synced(&self, writer: PoolConnection<Sqlite>) -> Result<(), StoreError> {
        drop(writer);
        if let Some(log) = &self.log {
            let commit = log.committed();
            log.sync(commit)
                .await
                .map_err(|error| StoreError::Database(sqlx::Error::Io(error)))?;
        }
        Ok(())
    }
}

/// The write-ahead log beside `database`: `<database>-wal`.
fn wal_file(database: &Path) -> PathBuf {
    let mut path = database.as_os_str().to_owned();
    path.push("-wal");
    path.into()
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    fn log_bytes(&self) -> Option<u64> {
        self.checkpoints.as_ref().map(Checkpoints::log_file_bytes)
    }

    async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<Insertion>, StoreError> {
        let mut writer = self.write().await?;
        let mut tx = writer.begin().await?;
        let insertions = batch::insert_events(&mut tx, events).await?;
        tx.commit().await?;
        self.synced(writer).await?;
        Ok(insertions)
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        let by_status = sqlx::query_as("SELECT status, COUNT(*) FROM webhook_events GROUP BY status")
            .fetch_all(&self.readers)
            .await?;
        let by_object_type = sqlx::query_as("SELECT object_type, COUNT(*) FROM webhook_events GROUP BY object_type")
            .fetch_all(&self.readers)
            .await?;
        let last_received_at = sqlx::query_scalar("SELECT MAX(received_at) FROM webhook_events")
            .fetch_one(&self.readers)
            .await?;
        assemble_stats(by_status, by_object_type, last_received_at)
    }

    async fn list_events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let built = event_page_query(query, EVENT_SUMMARY_COLUMNS);
        let mut select = sqlx::query_as::<_, EventRow>(&built.sql);
        for value in built.binds {
            select = match value {
                BindValue::Text(text) => select.bind(text),
                BindValue::Int(number) => select.bind(number),
            };
        }
        into_page(select.fetch_all(&self.readers).await?, query)
    }

    async fn event_record(&self, event_id: &str) -> Result<Option<EventRecord>, StoreError> {
        Ok(sqlx::query_as(EVENT_RECORD_SQL)
            .bind(event_id)
            .fetch_optional(&self.readers)
            .await?)
    }

    async fn pipeline_health(&self, now: i64, limits: BudgetLimits) -> Result<PipelineHealth, StoreError> {
        let hour_ago = now - 60 * MINUTE_MS;
        let queue_depth = sqlx::query_scalar(QUEUE_DEPTH_SQL).fetch_one(&self.readers).await?;
        let oldest_queued = sqlx::query_scalar(OLDEST_QUEUED_SQL).fetch_one(&self.readers).await?;
        let finished = sqlx::query_as(FINISHED_BY_STATUS_SQL)
            .bind(hour_ago)
            .fetch_all(&self.readers)
            .await?;
        let times = sqlx::query_scalar(PROCESSING_TIMES_SQL)
            .bind(hour_ago)
            .bind(PROCESSING_SAMPLE)
            .fetch_all(&self.readers)
            .await?;
        let (minute_start, day_key) = budget_use_binds(now);
        let budget = sqlx::query_as(BUDGET_USE_SQL)
            .bind(minute_start)
            .bind(day_key)
            .fetch_one(&self.readers)
            .await?;
        Ok(assemble_health(
            queue_depth,
            oldest_queued,
            finished,
            times,
            budget_use(budget, limits),
            now,
        ))
    }

    async fn minute_buckets(&self, since: i64, now: i64) -> Result<Vec<MinuteBucket>, StoreError> {
        let received = sqlx::query_as(RECEIVED_PER_MINUTE_SQL)
            .bind(since)
            .fetch_all(&self.readers)
            .await?;
        let finished = sqlx::query_as(FINISHED_PER_MINUTE_SQL)
            .bind(since)
            .fetch_all(&self.readers)
            .await?;
        Ok(assemble_buckets(since, now, received, finished))
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let mut writer = self.write().await?;
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *writer)
            .await?;
        let stored = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_one(&mut *writer)
            .await?;
        self.synced(writer).await?;
        Ok(stored)
    }

    async fn create_session(&self, token_hash: &str, expires_at: i64) -> Result<(), StoreError> {
        let mut writer = self.write().await?;
        sqlx::query("INSERT INTO admin_sessions (token_hash, created_at, expires_at) VALUES (?, ?, ?)")
            .bind(token_hash)
            .bind(super::now_millis())
            .bind(expires_at)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await
    }

    async fn session_is_active(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM admin_sessions WHERE token_hash = ? AND expires_at > ?")
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.readers)
                .await?;
        Ok(found.is_some())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let mut writer = self.write().await?;
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = ? OR expires_at <= ?")
            .bind(token_hash)
            .bind(super::now_millis())
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await
    }

    async fn claim_due_objects(&self, claim: &Claim<'_>) -> Result<Vec<ClaimedEvent>, StoreError> {
        let mut writer = self.write().await?;
        queue::claim_due_objects(&mut writer, claim).await
    }

    async fn next_due_after(&self, now: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(NEXT_DUE_SQL)
            .bind(now)
            .fetch_one(&self.readers)
            .await?)
    }

    async fn release_claims(&self, release: &Release<'_>) -> Result<u64, StoreError> {
        let mut writer = self.write().await?;
        queue::release_claims(&mut writer, release).await
    }

    async fn renew_lease(
        &self,
        object_type: &str,
        object_uuid: &str,
        held_until: i64,
        lease_until: i64,
    ) -> Result<u64, StoreError> {
        let mut writer = self.write().await?;
        let renewed = sqlx::query(RENEW_LEASE_SQL)
            .bind(lease_until)
            .bind(object_type)
            .bind(object_uuid)
            .bind(held_until)
            .execute(&mut *writer)
            .await?;
        Ok(renewed.rows_affected())
    }

    async fn finish_events(
        &self,
        events: &[ClaimedEvent],
        completion: &Completion,
        attempt: &AttemptTiming,
    ) -> Result<u64, StoreError> {
        let finished = self.finishes.enqueue(events, completion, attempt);
        let mut writer = self.write().await?;
        // Commits this finish and every other queued meanwhile, unless another caller already committed it.
        self.finishes.commit_queued(&mut writer).await;
        drop(writer);
        finished.await.map_err(|_| StoreError::WriterStopped)?
    }

    async fn event_attempts(&self, event_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM event_attempts WHERE event_id = ? ORDER BY id"
        ))
        .bind(event_id)
        .fetch_all(&self.readers)
        .await?)
    }

    async fn retry_event(&self, event_id: &str, now: i64) -> Result<RetryOutcome, StoreError> {
        let mut writer = self.write().await?;
        let updated = sqlx::query(
            "UPDATE webhook_events SET status = 'queued', attempts = 0, next_attempt_at = ?, updated_at = ?
             WHERE id = ? AND status IN ('failed', 'skipped', 'success')",
        )
        .bind(now)
        .bind(now)
        .bind(event_id)
        .execute(&mut *writer)
        .await?;
        self.synced(writer).await?;
        if updated.rows_affected() == 1 {
            return Ok(RetryOutcome::Requeued);
        }
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM webhook_events WHERE id = ?")
            .bind(event_id)
            .fetch_optional(&self.readers)
            .await?;
        Ok(match status {
            None => RetryOutcome::NotFound,
            Some(status) => RetryOutcome::NotRetryable(super::parse_status(&status)?),
        })
    }

    async fn retry_failed_events(&self, now: i64, dry_run: bool) -> Result<u64, StoreError> {
        if dry_run {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE status = 'failed'")
                .fetch_one(&self.readers)
                .await?;
            return Ok(count as u64);
        }
        let mut writer = self.write().await?;
        let updated = sqlx::query(
            "UPDATE webhook_events SET status = 'queued', attempts = 0, next_attempt_at = ?, updated_at = ?
             WHERE status = 'failed'",
        )
        .bind(now)
        .bind(now)
        .execute(&mut *writer)
        .await?;
        self.synced(writer).await?;
        Ok(updated.rows_affected())
    }

    async fn delete_finished_events_before(&self, cutoff: i64) -> Result<u64, StoreError> {
        let mut writer = self.write().await?;
        let deleted = sqlx::query(
            "DELETE FROM webhook_events WHERE status IN ('success', 'skipped', 'failed') AND received_at < ?",
        )
        .bind(cutoff)
        .execute(&mut *writer)
        .await?;
        self.synced(writer).await?;
        Ok(deleted.rows_affected())
    }

    async fn upsert_mirror(&self, record: &MirrorRecord, now: i64) -> Result<MirrorWrite, StoreError> {
        let mut writer = self.write().await?;
        let sql = record.upsert_sql();
        let mut query = sqlx::query(&sql).bind(&record.uuid);
        for value in record.key_values() {
            query = query.bind(value);
        }
        let written = query
            .bind(&record.edit_date)
            .bind(i32::from(record.active))
            .bind(&record.record)
            .bind(now)
            .execute(&mut *writer)
            .await?;
        Ok(if written.rows_affected() == 1 {
            MirrorWrite::Applied
        } else {
            MirrorWrite::Stale
        })
    }

    async fn mirror_record(&self, object_type: &str, uuid: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(table) = super::mirror_table(object_type) else {
            return Ok(None);
        };
        Ok(
            sqlx::query_scalar(&format!("SELECT record FROM {} WHERE uuid = ?", table.table))
                .bind(uuid)
                .fetch_optional(&self.readers)
                .await?,
        )
    }

    async fn job_company(&self, job_uuid: &str) -> Result<Option<String>, StoreError> {
        let company: Option<Option<String>> = sqlx::query_scalar("SELECT company_uuid FROM sm8_jobs WHERE uuid = ?")
            .bind(job_uuid)
            .fetch_optional(&self.readers)
            .await?;
        Ok(company.flatten())
    }

    async fn take_api_budget(&self, now: i64, limits: BudgetLimits) -> Result<BudgetGrant, StoreError> {
        let mut writer = self.write().await?;
        queue::take_api_budget(&mut writer, now, limits).await
    }

    async fn pause_api_budget(&self, until: i64) -> Result<(), StoreError> {
        let mut writer = self.write().await?;
        sqlx::query(PAUSE_API_SQL).bind(until).execute(&mut *writer).await?;
        Ok(())
    }

    async fn sync_watermark(&self, object_type: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT edit_date FROM sync_watermarks WHERE object_type = ?")
                .bind(object_type)
                .fetch_optional(&self.readers)
                .await?,
        )
    }

    async fn set_sync_watermark(&self, object_type: &str, edit_date: &str, now: i64) -> Result<(), StoreError> {
        let mut writer = self.write().await?;
        sqlx::query(
            "INSERT INTO sync_watermarks (object_type, edit_date, synced_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (object_type) DO UPDATE SET edit_date = MAX(sync_watermarks.edit_date, ?2), synced_at = ?3",
        )
        .bind(object_type)
        .bind(edit_date)
        .bind(now)
        .execute(&mut *writer)
        .await?;
        Ok(())
    }

    async fn company_jobs(&self, company_uuid: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(sqlx::query_scalar(COMPANY_JOBS_SQL)
            .bind(company_uuid)
            .fetch_all(&self.readers)
            .await?)
    }

    async fn job_children(&self, child: JobChild, job_uuid: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(sqlx::query_scalar(child.sql())
            .bind(job_uuid)
            .fetch_all(&self.readers)
            .await?)
    }

    async fn create_portal_link(
        &self,
        token_hash: &str,
        company_uuid: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.insert_portal_token(CREATE_LINK_SQL, token_hash, company_uuid, expires_at)
            .await
    }

    async fn redeem_portal_link(&self, token_hash: &str, now: i64) -> Result<Option<String>, StoreError> {
        let mut writer = self.write().await?;
        let company = sqlx::query_scalar(REDEEM_LINK_SQL)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut *writer)
            .await?;
        self.synced(writer).await?;
        Ok(company)
    }

    async fn create_portal_session(
        &self,
        token_hash: &str,
        company_uuid: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.insert_portal_token(CREATE_SESSION_SQL, token_hash, company_uuid, expires_at)
            .await
    }

    async fn portal_session_company(&self, token_hash: &str, now: i64) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(SESSION_COMPANY_SQL)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&self.readers)
            .await?)
    }

    async fn delete_portal_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let mut writer = self.write().await?;
        sqlx::query(DELETE_SESSION_SQL)
            .bind(token_hash)
            .bind(super::now_millis())
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await
    }
}
