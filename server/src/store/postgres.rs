//! The scale-out engine: several `serve` processes share one PostgreSQL database.

use std::time::Duration;

use app::model::{EventPage, EventQuery, MinuteBucket, PipelineHealth, Stats};
use async_trait::async_trait;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use super::insight::{
    assemble_buckets, assemble_health, budget_use, budget_use_binds, event_page_query, BindValue, EventRecord,
    BUDGET_USE_SQL, EVENT_RECORD_SQL, FINISHED_BY_STATUS_SQL, FINISHED_PER_MINUTE_SQL, OLDEST_QUEUED_SQL,
    PROCESSING_SAMPLE, PROCESSING_TIMES_SQL, QUEUE_DEPTH_SQL, RECEIVED_PER_MINUTE_SQL,
};
use super::portal::{
    JobChild, COMPANY_JOBS_SQL, CREATE_LINK_SQL, CREATE_SESSION_SQL, DELETE_SESSION_SQL, REDEEM_LINK_SQL,
    SESSION_COMPANY_SQL,
};
use super::queue::{
    take_api_budget_on, Claim, Release, Whose, INTERRUPTED_ATTEMPT_COLUMNS, INTERRUPTED_REASON, MINUTE_MS,
    NEXT_DUE_SQL, PAUSE_API_SQL, RELEASE_SET, RENEW_LEASE_SQL,
};
use super::{
    assemble_stats, in_change_order, into_page, AttemptRecord, AttemptTiming, BudgetGrant, BudgetLimits, ClaimedEvent,
    ClaimedRow, Completion, EventRow, FinishValues, Insertion, MirrorRecord, MirrorWrite, NewEvent, RetryOutcome,
    Store, StoreError, ATTEMPT_COLUMNS, CLAIMED_COLUMNS, EVENT_SUMMARY_COLUMNS, MAX_CLAIMED_EVENTS,
};

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Stores a portal link or session (`sql` is the one or the other): a token hash for a company until
    /// `expires_at`.
    async fn insert_portal_token(
        &self,
        sql: &str,
        token_hash: &str,
        company_uuid: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(sql)
            .bind(token_hash)
            .bind(company_uuid)
            .bind(super::now_millis())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { pool })
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<Insertion>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut insertions = Vec::with_capacity(events.len());
        for event in events {
            let stored: Option<String> = sqlx::query_scalar(
                "INSERT INTO webhook_events (id, dedup_key, format, object_type, object_uuid, event_type,
                     occurred_at, changes, raw_body, headers, verification, next_attempt_at, received_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $12)
                 ON CONFLICT (dedup_key) DO NOTHING
                 RETURNING id",
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
            .fetch_optional(&mut *tx)
            .await?;
            let insertion = match stored {
                Some(_) => Insertion::Stored(event.id),
                None => {
                    let existing: String = sqlx::query_scalar("SELECT id FROM webhook_events WHERE dedup_key = $1")
                        .bind(&event.dedup_key)
                        .fetch_one(&mut *tx)
                        .await?;
                    Insertion::Duplicate(existing.parse().map_err(|_| StoreError::Corrupt(existing))?)
                }
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

    async fn list_events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let built = event_page_query(query, EVENT_SUMMARY_COLUMNS);
        let mut select = sqlx::query_as::<_, EventRow>(&built.sql);
        for value in built.binds {
            select = match value {
                BindValue::Text(text) => select.bind(text),
                BindValue::Int(number) => select.bind(number),
            };
        }
        into_page(select.fetch_all(&self.pool).await?, query)
    }

    async fn event_record(&self, event_id: &str) -> Result<Option<EventRecord>, StoreError> {
        Ok(sqlx::query_as(EVENT_RECORD_SQL)
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn pipeline_health(&self, now: i64, limits: BudgetLimits) -> Result<PipelineHealth, StoreError> {
        let hour_ago = now - 60 * MINUTE_MS;
        let queue_depth = sqlx::query_scalar(QUEUE_DEPTH_SQL).fetch_one(&self.pool).await?;
        let oldest_queued = sqlx::query_scalar(OLDEST_QUEUED_SQL).fetch_one(&self.pool).await?;
        let finished = sqlx::query_as(FINISHED_BY_STATUS_SQL)
            .bind(hour_ago)
            .fetch_all(&self.pool)
            .await?;
        let times = sqlx::query_scalar(PROCESSING_TIMES_SQL)
            .bind(hour_ago)
            .bind(PROCESSING_SAMPLE)
            .fetch_all(&self.pool)
            .await?;
        let (minute_start, day_key) = budget_use_binds(now);
        let budget = sqlx::query_as(BUDGET_USE_SQL)
            .bind(minute_start)
            .bind(day_key)
            .fetch_one(&self.pool)
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
            .fetch_all(&self.pool)
            .await?;
        let finished = sqlx::query_as(FINISHED_PER_MINUTE_SQL)
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        Ok(assemble_buckets(since, now, received, finished))
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn create_session(&self, token_hash: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO admin_sessions (token_hash, created_at, expires_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(super::now_millis())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session_is_active(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM admin_sessions WHERE token_hash = $1 AND expires_at > $2")
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1 OR expires_at <= $2")
            .bind(token_hash)
            .bind(super::now_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn claim_due_objects(&self, claim: &Claim<'_>) -> Result<Vec<ClaimedEvent>, StoreError> {
        // Every row lock is taken with SKIP LOCKED, so concurrent workers (on any node) never wait on each other
        // and never deadlock; each event is claimed by exactly one of them. Objects with an event in flight are
        // passed over, and an advisory lock per object (held until the claim commits) keeps two concurrent
        // claims from taking different events of one object: one object is worked on by one worker at a time.
        let rows: Vec<ClaimedRow> = sqlx::query_as(&format!(
            "WITH due AS (
                 SELECT object_type, object_uuid FROM webhook_events q
                 WHERE status = 'queued' AND next_attempt_at <= $1
                   AND NOT EXISTS (
                       SELECT 1 FROM webhook_events p
                       WHERE p.object_type = q.object_type AND p.object_uuid = q.object_uuid
                         AND p.status = 'processing')
                   AND pg_try_advisory_xact_lock(hashtextextended(object_type || ':' || object_uuid, 0))
                 ORDER BY next_attempt_at LIMIT $3
                 FOR UPDATE SKIP LOCKED
             ), claimable AS (
                 SELECT e.id FROM webhook_events e
                 WHERE (e.object_type, e.object_uuid) IN (SELECT object_type, object_uuid FROM due)
                   AND e.status = 'queued' AND e.next_attempt_at <= $1
                 LIMIT {MAX_CLAIMED_EVENTS}
                 FOR UPDATE OF e SKIP LOCKED
             )
             UPDATE webhook_events
             SET status = 'processing', locked_until = $2, attempts = attempts + 1, updated_at = $1, claimed_by = $4
             WHERE id IN (SELECT id FROM claimable)
             RETURNING {CLAIMED_COLUMNS}"
        ))
        .bind(claim.now)
        .bind(claim.lease_until)
        .bind(i64::from(claim.objects))
        .bind(claim.node)
        .fetch_all(&self.pool)
        .await?;
        Ok(in_change_order(rows))
    }

    async fn next_due_after(&self, now: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(NEXT_DUE_SQL).bind(now).fetch_one(&self.pool).await?)
    }

    async fn release_claims(&self, release: &Release<'_>) -> Result<u64, StoreError> {
        // One statement: the claims are locked (a concurrent release skips them), released, and their attempts
        // recorded with the claim time the release overwrites.
        let condition = release.condition();
        let sql = format!(
            "WITH released AS (
                 UPDATE webhook_events e SET {RELEASE_SET}
                 FROM (SELECT id, updated_at AS claimed_at FROM webhook_events WHERE {condition}
                       FOR UPDATE SKIP LOCKED) claimed
                 WHERE e.id = claimed.id
                 RETURNING e.id, e.attempts, claimed.claimed_at)
             INSERT INTO {INTERRUPTED_ATTEMPT_COLUMNS}
             SELECT id, attempts, claimed_at, $1, 'interrupted', NULL, $4 FROM released"
        );
        let query = sqlx::query(&sql).bind(release.now).bind(release.max_attempts);
        let query = match release.whose {
            Whose::Expired => query.bind(release.now),
            Whose::Node(node) => query.bind(node.to_owned()),
        };
        let released = query.bind(INTERRUPTED_REASON).execute(&self.pool).await?;
        Ok(released.rows_affected())
    }

    async fn renew_lease(
        &self,
        object_type: &str,
        object_uuid: &str,
        held_until: i64,
        lease_until: i64,
    ) -> Result<u64, StoreError> {
        let renewed = sqlx::query(RENEW_LEASE_SQL)
            .bind(lease_until)
            .bind(object_type)
            .bind(object_uuid)
            .bind(held_until)
            .execute(&self.pool)
            .await?;
        Ok(renewed.rows_affected())
    }

    async fn finish_events(
        &self,
        events: &[ClaimedEvent],
        completion: &Completion,
        attempt: &AttemptTiming,
    ) -> Result<u64, StoreError> {
        let values = FinishValues::new(completion, attempt.finished_at);
        let mut tx = self.pool.begin().await?;
        let mut finished = 0;
        for event in events {
            let updated = sqlx::query(
                "UPDATE webhook_events
                 SET status = $1, last_error = COALESCE($2, last_error), skip_reason = $3, locked_until = NULL,
                     next_attempt_at = COALESCE($4, next_attempt_at), attempts = attempts - $5,
                     processed_at = COALESCE($6, processed_at), updated_at = $7
                 WHERE id = $8 AND status = 'processing' AND locked_until = $9",
            )
            .bind(values.status)
            .bind(values.last_error)
            .bind(values.skip_reason)
            .bind(values.next_attempt_at)
            .bind(values.refund)
            .bind(values.processed_at)
            .bind(attempt.finished_at)
            .bind(&event.id)
            .bind(event.lease_until)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                continue;
            }
            finished += 1;
            sqlx::query(
                "INSERT INTO event_attempts (event_id, attempt, started_at, finished_at, outcome, http_status, error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&event.id)
            .bind(event.attempts)
            .bind(attempt.started_at)
            .bind(attempt.finished_at)
            .bind(completion.outcome_name())
            .bind(attempt.http_status)
            .bind(completion.error().or(values.skip_reason))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(finished)
    }

    async fn event_attempts(&self, event_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM event_attempts WHERE event_id = $1 ORDER BY id"
        ))
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn retry_event(&self, event_id: &str, now: i64) -> Result<RetryOutcome, StoreError> {
        let updated = sqlx::query(
            "UPDATE webhook_events SET status = 'queued', attempts = 0, next_attempt_at = $1, updated_at = $1
             WHERE id = $2 AND status IN ('failed', 'skipped', 'success')",
        )
        .bind(now)
        .bind(event_id)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 1 {
            return Ok(RetryOutcome::Requeued);
        }
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM webhook_events WHERE id = $1")
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match status {
            None => RetryOutcome::NotFound,
            Some(status) => RetryOutcome::NotRetryable(super::parse_status(&status)?),
        })
    }

    async fn retry_failed_events(&self, now: i64, dry_run: bool) -> Result<u64, StoreError> {
        if dry_run {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE status = 'failed'")
                .fetch_one(&self.pool)
                .await?;
            return Ok(count as u64);
        }
        let updated = sqlx::query(
            "UPDATE webhook_events SET status = 'queued', attempts = 0, next_attempt_at = $1, updated_at = $1
             WHERE status = 'failed'",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected())
    }

    async fn delete_finished_events_before(&self, cutoff: i64) -> Result<u64, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM webhook_events WHERE status IN ('success', 'skipped', 'failed') AND received_at < $1",
        )
        .bind(cutoff)
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected())
    }

    async fn upsert_mirror(&self, record: &MirrorRecord, now: i64) -> Result<MirrorWrite, StoreError> {
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
            .execute(&self.pool)
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
            sqlx::query_scalar(&format!("SELECT record FROM {} WHERE uuid = $1", table.table))
                .bind(uuid)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn job_company(&self, job_uuid: &str) -> Result<Option<String>, StoreError> {
        let company: Option<Option<String>> = sqlx::query_scalar("SELECT company_uuid FROM sm8_jobs WHERE uuid = $1")
            .bind(job_uuid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(company.flatten())
    }

    async fn take_api_budget(&self, now: i64, limits: BudgetLimits) -> Result<BudgetGrant, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Nodes take requests one at a time, so two of them never both see room for the last one.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('sm8_api_budget', 0))")
            .execute(&mut *tx)
            .await?;
        let grant = take_api_budget_on::<sqlx::Postgres>(&mut tx, now, limits).await?;
        if grant == BudgetGrant::Granted {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(grant)
    }

    async fn pause_api_budget(&self, until: i64) -> Result<(), StoreError> {
        sqlx::query(PAUSE_API_SQL).bind(until).execute(&self.pool).await?;
        Ok(())
    }

    async fn sync_watermark(&self, object_type: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT edit_date FROM sync_watermarks WHERE object_type = $1")
                .bind(object_type)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_sync_watermark(&self, object_type: &str, edit_date: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sync_watermarks (object_type, edit_date, synced_at) VALUES ($1, $2, $3)
             ON CONFLICT (object_type) DO UPDATE
             SET edit_date = GREATEST(sync_watermarks.edit_date, $2), synced_at = $3",
        )
        .bind(object_type)
        .bind(edit_date)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn company_jobs(&self, company_uuid: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(sqlx::query_scalar(COMPANY_JOBS_SQL)
            .bind(company_uuid)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn job_children(&self, child: JobChild, job_uuid: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(sqlx::query_scalar(child.sql())
            .bind(job_uuid)
            .fetch_all(&self.pool)
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
        Ok(sqlx::query_scalar(REDEEM_LINK_SQL)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?)
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
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn delete_portal_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query(DELETE_SESSION_SQL)
            .bind(token_hash)
            .bind(super::now_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
