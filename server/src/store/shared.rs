//! The store, written once for both engines: every statement they both run, with `$n` binds (sqlx's SQLite
//! driver reads them as PostgreSQL does). An engine only supplies what differs (`Engine`), so a new table or
//! column is one change here, whichever engine runs it.

use app::model::{EventPage, EventQuery, MinuteBucket, PipelineHealth, Stats};
use async_trait::async_trait;
use sqlx::{Connection, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::budget::{budget_use_binds, BUDGET_USE_SQL, PAUSE_API_SQL};
use super::engine::{Engine, RowsAffected};
use super::insight::{
    assemble_buckets, assemble_health, budget_use, event_page_query, BindValue, EventRecord, EVENT_RECORD_SQL,
    FINISHED_BY_STATUS_SQL, FINISHED_PER_MINUTE_SQL, OLDEST_QUEUED_SQL, PROCESSING_SAMPLE, PROCESSING_TIMES_SQL,
    QUEUE_DEPTH_SQL, RECEIVED_PER_MINUTE_SQL,
};
use super::outbound::NewDelivery;
use super::portal::{
    job_children_sql, COMPANY_JOBS_SQL, CREATE_LINK_SQL, CREATE_SESSION_SQL, DELETE_SESSION_SQL, REDEEM_LINK_SQL,
    SESSION_COMPANY_SQL,
};
use super::queue::{Claim, Release, MINUTE_MS, NEXT_DUE_SQL, RENEW_LEASE_SQL};
use super::{
    assemble_stats, batch, into_page, now_millis, object_spec, parse_status, AttemptRecord, AttemptTiming, BudgetGrant,
    BudgetLimits, ClaimedEvent, CompanyOf, Completion, EventRow, Insertion, MirrorRecord, MirrorWrite, NewEvent,
    ObjectSpec, RetryOutcome, Store, StoreError, StoredRecord, ATTEMPT_COLUMNS, EVENT_SUMMARY_COLUMNS,
};

/// Puts a failed, skipped or succeeded event back in the queue (`$1` now, `$2` its account, `$3` its id).
const RETRY_EVENT_SQL: &str = "UPDATE webhook_events SET status = 'queued', attempts = 0, next_attempt_at = $1,
     updated_at = $1 WHERE account = $2 AND id = $3 AND status IN ('failed', 'skipped', 'success')";
const RETRY_FAILED_SQL: &str = "UPDATE webhook_events SET status = 'queued', attempts = 0, next_attempt_at = $1,
     updated_at = $1 WHERE account = $2 AND status = 'failed'";
/// Keeps the newest edit_date seen: text comparison, as ServiceM8's `YYYY-MM-DD HH:MM:SS` sorts.
const SET_WATERMARK_SQL: &str = "INSERT INTO sync_watermarks (account, object_type, edit_date, synced_at)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (account, object_type) DO UPDATE
     SET edit_date = CASE WHEN sync_watermarks.edit_date > $3 THEN sync_watermarks.edit_date ELSE $3 END,
         synced_at = $4";

#[async_trait]
impl<E> Store for E
where
    E: Engine + super::Directory + super::Outbound + super::Alerts + super::Analytics,
    for<'c> &'c mut <E::Db as Database>::Connection: Executor<'c, Database = E::Db>,
    for<'q> <E::Db as Database>::Arguments<'q>: IntoArguments<'q, E::Db>,
    for<'q> String: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q str: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q String: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> i32: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> i64: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> Option<i32>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> Option<i64>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> Option<&'q str>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> Option<String>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q serde_json::Value: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q Vec<u8>: Encode<'q, E::Db> + Type<E::Db>,
    for<'r> String: Decode<'r, E::Db> + Type<E::Db>,
    for<'r> i64: Decode<'r, E::Db> + Type<E::Db>,
    for<'r> serde_json::Value: Decode<'r, E::Db> + Type<E::Db>,
    for<'r> (i64,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (i64, Option<i64>): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (Option<i64>,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (String,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (Option<String>,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (serde_json::Value,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (serde_json::Value, i64, i64): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (String, i64): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (String, String): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (i64, i64): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (i64, String, i64, Option<f64>): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> EventRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> EventRecord: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> AttemptRecord: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> CompanyOf: FromRow<'r, <E::Db as Database>::Row>,
{
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.readers()).await?;
        Ok(())
    }

    fn log_bytes(&self) -> Option<u64> {
        Engine::log_bytes(self)
    }

    async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<Insertion>, StoreError> {
        let mut writer = self.writer().await?;
        let mut transaction = writer.begin_with(Self::BEGIN_WRITE).await?;
        let insertions = batch::insert_events::<E::Db>(&mut transaction, events).await?;
        transaction.commit().await?;
        self.synced(writer).await?;
        Ok(insertions)
    }

    async fn stats(&self, account: &str) -> Result<Stats, StoreError> {
        let readers = self.readers();
        let by_status =
            sqlx::query_as("SELECT status, COUNT(*) FROM webhook_events WHERE account = $1 GROUP BY status")
                .bind(account)
                .fetch_all(readers)
                .await?;
        let by_object_type =
            sqlx::query_as("SELECT object_type, COUNT(*) FROM webhook_events WHERE account = $1 GROUP BY object_type")
                .bind(account)
                .fetch_all(readers)
                .await?;
        let last_received_at = sqlx::query_scalar("SELECT MAX(received_at) FROM webhook_events WHERE account = $1")
            .bind(account)
            .fetch_one(readers)
            .await?;
        assemble_stats(by_status, by_object_type, last_received_at)
    }

    async fn list_events(&self, account: &str, query: &EventQuery) -> Result<EventPage, StoreError> {
        let built = event_page_query(account, query, EVENT_SUMMARY_COLUMNS);
        let mut select = sqlx::query_as::<_, EventRow>(&built.sql);
        for value in built.binds {
            select = match value {
                BindValue::Text(text) => select.bind(text),
                BindValue::Int(number) => select.bind(number),
            };
        }
        into_page(select.fetch_all(self.readers()).await?, query)
    }

    async fn event_record(&self, account: &str, event_id: &str) -> Result<Option<EventRecord>, StoreError> {
        Ok(sqlx::query_as(EVENT_RECORD_SQL)
            .bind(account)
            .bind(event_id)
            .fetch_optional(self.readers())
            .await?)
    }

    async fn pipeline_health(
        &self,
        account: &str,
        now: i64,
        limits: BudgetLimits,
    ) -> Result<PipelineHealth, StoreError> {
        let readers = self.readers();
        let hour_ago = now - 60 * MINUTE_MS;
        let queue_depth = sqlx::query_scalar(QUEUE_DEPTH_SQL)
            .bind(account)
            .fetch_one(readers)
            .await?;
        let oldest_queued = sqlx::query_scalar(OLDEST_QUEUED_SQL)
            .bind(account)
            .fetch_one(readers)
            .await?;
        let finished = sqlx::query_as(FINISHED_BY_STATUS_SQL)
            .bind(account)
            .bind(hour_ago)
            .fetch_all(readers)
            .await?;
        let times = sqlx::query_scalar(PROCESSING_TIMES_SQL)
            .bind(account)
            .bind(hour_ago)
            .bind(PROCESSING_SAMPLE)
            .fetch_all(readers)
            .await?;
        let budget = match self.budget_ledger().and_then(|ledger| ledger.used(account, now)) {
            Some(counted) => counted,
            None => {
                let (minute_start, day_key) = budget_use_binds(now);
                sqlx::query_as(BUDGET_USE_SQL)
                    .bind(account)
                    .bind(minute_start)
                    .bind(day_key)
                    .fetch_one(readers)
                    .await?
            }
        };
        Ok(assemble_health(
            queue_depth,
            oldest_queued,
            finished,
            times,
            budget_use(budget, limits),
            now,
        ))
    }

    async fn minute_buckets(&self, account: &str, since: i64, now: i64) -> Result<Vec<MinuteBucket>, StoreError> {
        let received = sqlx::query_as(RECEIVED_PER_MINUTE_SQL)
            .bind(account)
            .bind(since)
            .fetch_all(self.readers())
            .await?;
        let finished = sqlx::query_as(FINISHED_PER_MINUTE_SQL)
            .bind(account)
            .bind(since)
            .fetch_all(self.readers())
            .await?;
        Ok(assemble_buckets(since, now, received, finished))
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let mut writer = self.writer().await?;
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *writer)
            .await?;
        let stored = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&mut *writer)
            .await?;
        self.synced(writer).await?;
        Ok(stored)
    }

    async fn claim_due_objects(&self, claim: &Claim<'_>) -> Result<Vec<ClaimedEvent>, StoreError> {
        Engine::claim_due_objects(self, claim).await
    }

    async fn next_due_after(&self, now: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(NEXT_DUE_SQL)
            .bind(now)
            .fetch_one(self.readers())
            .await?)
    }

    async fn release_claims(&self, release: &Release<'_>) -> Result<u64, StoreError> {
        Engine::release_claims(self, release).await
    }

    async fn renew_lease(
        &self,
        account: &str,
        object_type: &str,
        object_uuid: &str,
        held_until: i64,
        lease_until: i64,
    ) -> Result<u64, StoreError> {
        let mut writer = self.writer().await?;
        let renewed = sqlx::query(RENEW_LEASE_SQL)
            .bind(lease_until)
            .bind(object_type)
            .bind(object_uuid)
            .bind(held_until)
            .bind(account)
            .execute(&mut *writer)
            .await?;
        Ok(renewed.rows_affected())
    }

    async fn finish_events_delivering(
        &self,
        events: &[ClaimedEvent],
        completion: &Completion,
        attempt: &AttemptTiming,
        deliveries: &[NewDelivery],
    ) -> Result<u64, StoreError> {
        Engine::finish_events(self, events, completion, attempt, deliveries).await
    }

    async fn event_attempts(&self, event_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM event_attempts WHERE event_id = $1 ORDER BY id"
        ))
        .bind(event_id)
        .fetch_all(self.readers())
        .await?)
    }

    async fn retry_event(&self, account: &str, event_id: &str, now: i64) -> Result<RetryOutcome, StoreError> {
        let mut writer = self.writer().await?;
        let updated = sqlx::query(RETRY_EVENT_SQL)
            .bind(now)
            .bind(account)
            .bind(event_id)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await?;
        if updated.rows_affected() == 1 {
            return Ok(RetryOutcome::Requeued);
        }
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM webhook_events WHERE account = $1 AND id = $2")
                .bind(account)
                .bind(event_id)
                .fetch_optional(self.readers())
                .await?;
        Ok(match status {
            None => RetryOutcome::NotFound,
            Some(status) => RetryOutcome::NotRetryable(parse_status(&status)?),
        })
    }

    async fn retry_failed_events(&self, account: &str, now: i64, dry_run: bool) -> Result<u64, StoreError> {
        if dry_run {
            let count: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE account = $1 AND status = 'failed'")
                    .bind(account)
                    .fetch_one(self.readers())
                    .await?;
            return Ok(count as u64);
        }
        let mut writer = self.writer().await?;
        let updated = sqlx::query(RETRY_FAILED_SQL)
            .bind(now)
            .bind(account)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await?;
        Ok(updated.rows_affected())
    }

    async fn delete_finished_events_before(&self, account: &str, cutoff: i64) -> Result<u64, StoreError> {
        let mut writer = self.writer().await?;
        let deleted = sqlx::query(
            "DELETE FROM webhook_events
             WHERE account = $2 AND status IN ('success', 'skipped', 'failed') AND received_at < $1",
        )
        .bind(cutoff)
        .bind(account)
        .execute(&mut *writer)
        .await?;
        // A body is as old as its events: only those received before the cutoff can have lost the last one.
        sqlx::query(
            "DELETE FROM webhook_bodies WHERE received_at < $1
             AND NOT EXISTS (SELECT 1 FROM webhook_events e WHERE e.body_id = webhook_bodies.id)",
        )
        .bind(cutoff)
        .execute(&mut *writer)
        .await?;
        self.synced(writer).await?;
        self.delete_finished_deliveries_before(account, cutoff).await?;
        Ok(deleted.rows_affected())
    }

    async fn upsert_mirror(&self, record: &MirrorRecord, now: i64) -> Result<MirrorWrite, StoreError> {
        let sql = record.upsert_sql();
        let mut query = sqlx::query(&sql).bind(&record.account).bind(&record.uuid);
        for value in record.key_values() {
            query = query.bind(value);
        }
        let mut writer = self.writer().await?;
        // The row as it was, read just before the write: SQLite has one writer, taken in turn, and on PostgreSQL
        // one worker holds an object's lease while it writes, so no other write of the record comes in between.
        let previous_sql = format!(
            "SELECT record, CAST(active AS BIGINT), mirrored_at FROM {} WHERE account = $1 AND uuid = $2",
            record.table.table
        );
        let previous: Option<(serde_json::Value, i64, i64)> = sqlx::query_as(&previous_sql)
            .bind(&record.account)
            .bind(&record.uuid)
            .fetch_optional(&mut *writer)
            .await?;
        let written = query
            .bind(&record.edit_date)
            .bind(i32::from(record.active))
            .bind(&record.record)
            .bind(now)
            .execute(&mut *writer)
            .await?;
        Ok(match previous {
            _ if written.rows_affected() != 1 => MirrorWrite::Stale,
            None => MirrorWrite::Inserted,
            Some((stored, active, mirrored_at)) => MirrorWrite::Updated {
                previous: StoredRecord::new(&record.account, record.table, stored, active != 0, mirrored_at),
            },
        })
    }

    async fn mirror_record(
        &self,
        account: &str,
        object_type: &str,
        uuid: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(table) = object_spec(object_type) else {
            return Ok(None);
        };
        let sql = format!("SELECT record FROM {} WHERE account = $1 AND uuid = $2", table.table);
        Ok(sqlx::query_scalar(&sql)
            .bind(account)
            .bind(uuid)
            .fetch_optional(self.readers())
            .await?)
    }

    async fn job_company(&self, account: &str, job_uuid: &str) -> Result<Option<String>, StoreError> {
        let company: Option<Option<String>> =
            sqlx::query_scalar("SELECT company_uuid FROM sm8_jobs WHERE account = $1 AND uuid = $2")
                .bind(account)
                .bind(job_uuid)
                .fetch_optional(self.readers())
                .await?;
        Ok(company.flatten())
    }

    async fn take_api_budget(&self, account: &str, now: i64, limits: BudgetLimits) -> Result<BudgetGrant, StoreError> {
        Engine::take_api_budget(self, account, now, limits).await
    }

    async fn pause_api_budget(&self, account: &str, until: i64) -> Result<(), StoreError> {
        if let Some(ledger) = self.budget_ledger() {
            ledger.pause(account, until);
        }
        let mut writer = self.writer().await?;
        sqlx::query(PAUSE_API_SQL)
            .bind(account)
            .bind(until)
            .execute(&mut *writer)
            .await?;
        Ok(())
    }

    async fn save_api_budget(&self) -> Result<(), StoreError> {
        Engine::save_api_budget(self).await
    }

    async fn sync_watermark(&self, account: &str, object_type: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT edit_date FROM sync_watermarks WHERE account = $1 AND object_type = $2")
                .bind(account)
                .bind(object_type)
                .fetch_optional(self.readers())
                .await?,
        )
    }

    async fn set_sync_watermark(
        &self,
        account: &str,
        object_type: &str,
        edit_date: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        sqlx::query(SET_WATERMARK_SQL)
            .bind(account)
            .bind(object_type)
            .bind(edit_date)
            .bind(now)
            .execute(&mut *writer)
            .await?;
        Ok(())
    }

    async fn company_jobs(&self, account: &str, company_uuid: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        Ok(sqlx::query_scalar(COMPANY_JOBS_SQL)
            .bind(account)
            .bind(company_uuid)
            .fetch_all(self.readers())
            .await?)
    }

    async fn job_children(
        &self,
        account: &str,
        child: &ObjectSpec,
        job_uuid: &str,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let Some(sql) = job_children_sql(child) else {
            return Ok(Vec::new());
        };
        Ok(sqlx::query_scalar(&sql)
            .bind(account)
            .bind(job_uuid)
            .fetch_all(self.readers())
            .await?)
    }

    async fn create_portal_link(
        &self,
        token_hash: &str,
        company: &CompanyOf,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        insert_portal_token(self, CREATE_LINK_SQL, token_hash, company, expires_at).await
    }

    async fn redeem_portal_link(&self, token_hash: &str, now: i64) -> Result<Option<CompanyOf>, StoreError> {
        let mut writer = self.writer().await?;
        let company = sqlx::query_as(REDEEM_LINK_SQL)
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
        company: &CompanyOf,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        insert_portal_token(self, CREATE_SESSION_SQL, token_hash, company, expires_at).await
    }

    async fn portal_session_company(&self, token_hash: &str, now: i64) -> Result<Option<CompanyOf>, StoreError> {
        Ok(sqlx::query_as(SESSION_COMPANY_SQL)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(self.readers())
            .await?)
    }

    async fn delete_portal_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        sqlx::query(DELETE_SESSION_SQL)
            .bind(token_hash)
            .bind(now_millis())
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await
    }
}

/// Stores a portal link or session (`sql` is the one or the other): a token hash for a company of an account
/// until `expires_at`.
async fn insert_portal_token<E>(
    engine: &E,
    sql: &str,
    token_hash: &str,
    company: &CompanyOf,
    expires_at: i64,
) -> Result<(), StoreError>
where
    E: Engine,
    for<'c> &'c mut <E::Db as Database>::Connection: Executor<'c, Database = E::Db>,
    for<'q> <E::Db as Database>::Arguments<'q>: IntoArguments<'q, E::Db>,
    for<'q> &'q str: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> i64: Encode<'q, E::Db> + Type<E::Db>,
{
    let mut writer = engine.writer().await?;
    sqlx::query(sql)
        .bind(token_hash)
        .bind(company.account.as_str())
        .bind(company.company_uuid.as_str())
        .bind(now_millis())
        .bind(expires_at)
        .execute(&mut *writer)
        .await?;
    engine.synced(writer).await
}
