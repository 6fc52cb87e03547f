//! `Outbound` written once for both engines, with `$n` binds. What a user does (destinations, rules, retries,
//! retention) ends with `synced`; the workers' bookkeeping (enqueueing, claims, finishes, circuits) does not.

use async_trait::async_trait;
use sqlx::{Connection, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::batch::insert_deliveries;
use super::delivery_queue::{
    into_page, page_query, pick_due_sql, record_interrupted_sql, retry_destination_sql, retry_one_sql, take_sql, Bind,
    ATTEMPTS_SQL, COUNTS_SQL, DELIVERY_COLUMNS, FINISH_SQL, INTERRUPTED_REASON, POSTPONE_SQL, RECORD_ATTEMPT_SQL,
    RETRY_REFUSAL_SQL,
};
use super::engine::{Engine, RowsAffected};
use super::outbound::{
    capped_excerpt, Circuit, ClaimedDelivery, DeliveryAttemptRow, DeliveryClaim, DeliveryCount, DeliveryFinish,
    DeliveryOutcome, DeliveryPage, DeliveryQuery, DeliveryRetry, DeliveryRow, DeliveryStatus, DestinationRow,
    DestinationSave, NewDelivery, NewRule, Outbound, RuleOrder, RuleRow, DESTINATION_DELETED,
};
use super::StoreError;

const DESTINATION_COLUMNS: &str = "id, account, name, kind, settings, sealed_secrets, paused_at, \
     consecutive_failures, circuit_opened_at, created_at, updated_at";
const RULE_COLUMNS: &str = "id, account, position, enabled, definition, created_at, updated_at";

#[async_trait]
impl<E> Outbound for E
where
    E: Engine,
    for<'c> &'c mut <E::Db as Database>::Connection: Executor<'c, Database = E::Db>,
    for<'q> <E::Db as Database>::Arguments<'q>: IntoArguments<'q, E::Db>,
    for<'q> &'q str: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q String: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> i64: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> bool: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> Option<i32>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> Option<i64>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> Option<&'q str>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q Option<String>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q serde_json::Value: Encode<'q, E::Db> + Type<E::Db>,
    for<'r> String: Decode<'r, E::Db> + Type<E::Db>,
    for<'r> i64: Decode<'r, E::Db> + Type<E::Db>,
    for<'r> (String,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (String, Option<String>): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> DestinationRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> RuleRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> DeliveryRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> ClaimedDelivery: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> DeliveryAttemptRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> DeliveryCount: FromRow<'r, <E::Db as Database>::Row>,
{
    async fn insert_destination(&self, destination: &DestinationRow) -> Result<DestinationSave, StoreError> {
        let sql = format!(
            "INSERT INTO destinations ({DESTINATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (account, name) DO NOTHING"
        );
        let mut writer = self.writer().await?;
        let inserted = sqlx::query(&sql)
            .bind(&destination.id)
            .bind(&destination.account)
            .bind(&destination.name)
            .bind(destination.kind.as_str())
            .bind(&destination.settings)
            .bind(&destination.sealed_secrets)
            .bind(destination.paused_at)
            .bind(destination.consecutive_failures)
            .bind(destination.circuit_opened_at)
            .bind(destination.created_at)
            .bind(destination.updated_at)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await?;
        Ok(match inserted.rows_affected() {
            1 => DestinationSave::Saved,
            _ => DestinationSave::NameTaken,
        })
    }

    async fn update_destination(&self, destination: &DestinationRow) -> Result<DestinationSave, StoreError> {
        let mut writer = self.writer().await?;
        let updated = sqlx::query(
            "UPDATE destinations SET name = $3, settings = $4, sealed_secrets = $5, updated_at = $6
             WHERE account = $1 AND id = $2",
        )
        .bind(&destination.account)
        .bind(&destination.id)
        .bind(&destination.name)
        .bind(&destination.settings)
        .bind(&destination.sealed_secrets)
        .bind(destination.updated_at)
        .execute(&mut *writer)
        .await;
        let saved = match updated {
            Ok(updated) if updated.rows_affected() == 1 => DestinationSave::Saved,
            Ok(_) => DestinationSave::NotFound,
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => DestinationSave::NameTaken,
            Err(error) => return Err(error.into()),
        };
        self.synced(writer).await?;
        Ok(saved)
    }

    async fn delete_destination(&self, account: &str, id: &str, now: i64) -> Result<Option<u64>, StoreError> {
        let mut writer = self.writer().await?;
        let mut transaction = writer.begin_with(Self::BEGIN_WRITE).await?;
        let failed = sqlx::query(
            "UPDATE deliveries SET status = 'failed', last_error = $3, finished_at = $4, lease_owner = NULL,
                 lease_until = NULL, claimed_at = NULL
             WHERE account = $1 AND destination_id = $2 AND status IN ('queued', 'delivering')",
        )
        .bind(account)
        .bind(id)
        .bind(DESTINATION_DELETED)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        let deleted = sqlx::query("DELETE FROM destinations WHERE account = $1 AND id = $2")
            .bind(account)
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        if deleted.rows_affected() == 0 {
            return Ok(None);
        }
        transaction.commit().await?;
        self.synced(writer).await?;
        Ok(Some(failed.rows_affected()))
    }

    async fn list_destinations(&self, account: &str) -> Result<Vec<DestinationRow>, StoreError> {
        let sql = format!("SELECT {DESTINATION_COLUMNS} FROM destinations WHERE account = $1 ORDER BY name");
        Ok(sqlx::query_as(&sql).bind(account).fetch_all(self.readers()).await?)
    }

    async fn destination(&self, account: &str, id: &str) -> Result<Option<DestinationRow>, StoreError> {
        let sql = format!("SELECT {DESTINATION_COLUMNS} FROM destinations WHERE account = $1 AND id = $2");
        Ok(sqlx::query_as(&sql)
            .bind(account)
            .bind(id)
            .fetch_optional(self.readers())
            .await?)
    }

    async fn destination_by_name(&self, account: &str, name: &str) -> Result<Option<DestinationRow>, StoreError> {
        let sql = format!("SELECT {DESTINATION_COLUMNS} FROM destinations WHERE account = $1 AND name = $2");
        Ok(sqlx::query_as(&sql)
            .bind(account)
            .bind(name)
            .fetch_optional(self.readers())
            .await?)
    }

    async fn pause_destination(&self, account: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        set_paused(
            self,
            "UPDATE destinations SET paused_at = COALESCE(paused_at, $3), updated_at = $3
             WHERE account = $1 AND id = $2",
            account,
            id,
            now,
        )
        .await
    }

    async fn resume_destination(&self, account: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        set_paused(
            self,
            "UPDATE destinations SET paused_at = NULL, updated_at = $3 WHERE account = $1 AND id = $2",
            account,
            id,
            now,
        )
        .await
    }

    async fn record_circuit(
        &self,
        account: &str,
        id: &str,
        read: Circuit,
        circuit: Circuit,
    ) -> Result<bool, StoreError> {
        let mut writer = self.writer().await?;
        // Times are never negative: -1 stands for a closed circuit in the comparison.
        let recorded = sqlx::query(
            "UPDATE destinations SET consecutive_failures = $3, circuit_opened_at = $4
             WHERE account = $1 AND id = $2 AND consecutive_failures = $5
               AND COALESCE(circuit_opened_at, -1) = COALESCE($6, -1)",
        )
        .bind(account)
        .bind(id)
        .bind(circuit.consecutive_failures)
        .bind(circuit.opened_at)
        .bind(read.consecutive_failures)
        .bind(read.opened_at)
        .execute(&mut *writer)
        .await?;
        Ok(recorded.rows_affected() == 1)
    }

    async fn insert_rule(&self, rule: &NewRule) -> Result<RuleRow, StoreError> {
        let mut writer = self.writer().await?;
        // Two rules created at once on two nodes may share a position; they then apply in creation order.
        let position: i64 = sqlx::query_scalar(
            "INSERT INTO rules (id, account, position, enabled, definition, created_at, updated_at)
             SELECT $1, $2, COALESCE(MAX(position), 0) + 1, $3, $4, $5, $5 FROM rules WHERE account = $2
             RETURNING position",
        )
        .bind(&rule.id)
        .bind(&rule.account)
        .bind(rule.enabled)
        .bind(&rule.definition)
        .bind(rule.created_at)
        .fetch_one(&mut *writer)
        .await?;
        self.synced(writer).await?;
        Ok(RuleRow {
            id: rule.id.clone(),
            account: rule.account.clone(),
            position,
            enabled: rule.enabled,
            definition: rule.definition.clone(),
            created_at: rule.created_at,
            updated_at: rule.created_at,
        })
    }

    async fn update_rule(
        &self,
        account: &str,
        id: &str,
        definition: &serde_json::Value,
        enabled: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut writer = self.writer().await?;
        let updated = sqlx::query(
            "UPDATE rules SET definition = $3, enabled = $4, updated_at = $5 WHERE account = $1 AND id = $2",
        )
        .bind(account)
        .bind(id)
        .bind(definition)
        .bind(enabled)
        .bind(now)
        .execute(&mut *writer)
        .await?;
        self.synced(writer).await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn delete_rule(&self, account: &str, id: &str) -> Result<bool, StoreError> {
        let mut writer = self.writer().await?;
        let mut transaction = writer.begin_with(Self::BEGIN_WRITE).await?;
        let position: Option<i64> =
            sqlx::query_scalar("DELETE FROM rules WHERE account = $1 AND id = $2 RETURNING position")
                .bind(account)
                .bind(id)
                .fetch_optional(&mut *transaction)
                .await?;
        let Some(position) = position else {
            return Ok(false);
        };
        sqlx::query("UPDATE rules SET position = position - 1 WHERE account = $1 AND position > $2")
            .bind(account)
            .bind(position)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        self.synced(writer).await?;
        Ok(true)
    }

    async fn list_rules(&self, account: &str) -> Result<Vec<RuleRow>, StoreError> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM rules WHERE account = $1 ORDER BY position, created_at, id");
        Ok(sqlx::query_as(&sql).bind(account).fetch_all(self.readers()).await?)
    }

    async fn rule(&self, account: &str, id: &str) -> Result<Option<RuleRow>, StoreError> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM rules WHERE account = $1 AND id = $2");
        Ok(sqlx::query_as(&sql)
            .bind(account)
            .bind(id)
            .fetch_optional(self.readers())
            .await?)
    }

    async fn reorder_rules(&self, account: &str, ids: &[String], now: i64) -> Result<RuleOrder, StoreError> {
        let mut writer = self.writer().await?;
        let mut transaction = writer.begin_with(Self::BEGIN_WRITE).await?;
        let mut stored: Vec<String> = sqlx::query_scalar("SELECT id FROM rules WHERE account = $1")
            .bind(account)
            .fetch_all(&mut *transaction)
            .await?;
        let mut wanted = ids.to_vec();
        stored.sort();
        wanted.sort();
        if stored != wanted {
            return Ok(RuleOrder::NotAPermutation);
        }
        for (position, id) in (1_i64..).zip(ids) {
            sqlx::query("UPDATE rules SET position = $3, updated_at = $4 WHERE account = $1 AND id = $2")
                .bind(account)
                .bind(id)
                .bind(position)
                .bind(now)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        self.synced(writer).await?;
        Ok(RuleOrder::Reordered)
    }

    async fn enqueue_deliveries(&self, deliveries: &[NewDelivery]) -> Result<u64, StoreError> {
        let mut writer = self.writer().await?;
        let mut transaction = writer.begin_with(Self::BEGIN_WRITE).await?;
        let stored = insert_deliveries::<E::Db>(&mut transaction, deliveries).await?;
        transaction.commit().await?;
        Ok(stored)
    }

    async fn claim_deliveries(&self, claim: &DeliveryClaim<'_>) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let mut writer = self.writer().await?;
        let mut transaction = writer.begin_with(Self::BEGIN_WRITE).await?;
        // The rows picked stay locked (PostgreSQL) or out of any other claim's sight (SQLite's one writer) until
        // the transaction ends, so the statements after it take exactly these.
        let ids: Vec<String> = sqlx::query_scalar(&pick_due_sql(&self.skip_locked("d")))
            .bind(claim.now)
            .bind(claim.now - claim.circuit_cooldown_ms)
            .bind(i64::from(claim.limit))
            .fetch_all(&mut *transaction)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let record_sql = record_interrupted_sql(ids.len());
        let mut record = sqlx::query(&record_sql).bind(INTERRUPTED_REASON);
        let take_sql = take_sql(ids.len());
        let mut take = sqlx::query_as(&take_sql)
            .bind(claim.worker)
            .bind(claim.lease_until)
            .bind(claim.now);
        for id in &ids {
            record = record.bind(id);
            take = take.bind(id);
        }
        record.execute(&mut *transaction).await?;
        let claimed = take.fetch_all(&mut *transaction).await?;
        transaction.commit().await?;
        Ok(claimed)
    }

    async fn finish_deliveries(&self, finishes: &[DeliveryFinish]) -> Result<Vec<bool>, StoreError> {
        let mut writer = self.writer().await?;
        let mut transaction = writer.begin_with(Self::BEGIN_WRITE).await?;
        let mut held = Vec::with_capacity(finishes.len());
        for DeliveryFinish {
            delivery,
            report,
            outcome,
        } in finishes
        {
            let ended_at = report.started_at + report.duration_ms;
            let (next_attempt_at, finished_at) = match outcome {
                DeliveryOutcome::Retry { next_attempt_at, .. } => (Some(*next_attempt_at), None),
                DeliveryOutcome::Delivered | DeliveryOutcome::Failed(_) => (None, Some(ended_at)),
            };
            let ended = sqlx::query(FINISH_SQL)
                .bind(outcome.status().as_str())
                .bind(next_attempt_at)
                .bind(outcome.error())
                .bind(finished_at)
                .bind(&delivery.account)
                .bind(&delivery.id)
                .bind(&delivery.lease_owner)
                .bind(delivery.attempts)
                .execute(&mut *transaction)
                .await?;
            if ended.rows_affected() == 0 {
                held.push(false);
                continue;
            }
            sqlx::query(RECORD_ATTEMPT_SQL)
                .bind(&delivery.id)
                .bind(delivery.attempts)
                .bind(report.started_at)
                .bind(report.duration_ms)
                .bind(report.http_status)
                .bind(report.response_excerpt.as_deref().map(capped_excerpt))
                .bind(outcome.error())
                .bind(outcome.attempt_outcome().as_str())
                .execute(&mut *transaction)
                .await?;
            held.push(true);
        }
        transaction.commit().await?;
        Ok(held)
    }

    async fn postpone_delivery(&self, delivery: &ClaimedDelivery, next_attempt_at: i64) -> Result<bool, StoreError> {
        let mut writer = self.writer().await?;
        let postponed = sqlx::query(POSTPONE_SQL)
            .bind(next_attempt_at)
            .bind(&delivery.account)
            .bind(&delivery.id)
            .bind(&delivery.lease_owner)
            .bind(delivery.attempts)
            .execute(&mut *writer)
            .await?;
        Ok(postponed.rows_affected() == 1)
    }

    async fn list_deliveries(&self, account: &str, query: &DeliveryQuery) -> Result<DeliveryPage, StoreError> {
        let page = page_query(account, query);
        let mut select = sqlx::query_as::<_, DeliveryRow>(&page.sql);
        for bind in page.binds {
            select = match bind {
                Bind::Text(text) => select.bind(text),
                Bind::Int(number) => select.bind(number),
            };
        }
        Ok(into_page(select.fetch_all(self.readers()).await?, page.size))
    }

    async fn delivery(&self, account: &str, id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE account = $1 AND id = $2");
        Ok(sqlx::query_as(&sql)
            .bind(account)
            .bind(id)
            .fetch_optional(self.readers())
            .await?)
    }

    async fn delivery_attempts(&self, account: &str, delivery_id: &str) -> Result<Vec<DeliveryAttemptRow>, StoreError> {
        Ok(sqlx::query_as(ATTEMPTS_SQL)
            .bind(account)
            .bind(delivery_id)
            .fetch_all(self.readers())
            .await?)
    }

    async fn retry_delivery(&self, account: &str, id: &str, now: i64) -> Result<DeliveryRetry, StoreError> {
        let sql = retry_one_sql();
        let mut writer = self.writer().await?;
        let requeued = sqlx::query(&sql)
            .bind(account)
            .bind(id)
            .bind(now)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await?;
        if requeued.rows_affected() == 1 {
            return Ok(DeliveryRetry::Requeued);
        }
        let found: Option<(String, Option<String>)> = sqlx::query_as(RETRY_REFUSAL_SQL)
            .bind(account)
            .bind(id)
            .fetch_optional(self.readers())
            .await?;
        Ok(match found {
            None => DeliveryRetry::NotFound,
            Some((status, destination)) => match DeliveryStatus::try_from(status)? {
                DeliveryStatus::Failed if destination.is_none() => DeliveryRetry::DestinationDeleted,
                status => DeliveryRetry::NotRetryable(status),
            },
        })
    }

    async fn retry_failed_deliveries(&self, account: &str, destination_id: &str, now: i64) -> Result<u64, StoreError> {
        let sql = retry_destination_sql();
        let mut writer = self.writer().await?;
        let requeued = sqlx::query(&sql)
            .bind(account)
            .bind(destination_id)
            .bind(now)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await?;
        Ok(requeued.rows_affected())
    }

    async fn delivery_counts(&self, account: &str) -> Result<Vec<DeliveryCount>, StoreError> {
        Ok(sqlx::query_as(COUNTS_SQL)
            .bind(account)
            .fetch_all(self.readers())
            .await?)
    }

    async fn delete_finished_deliveries_before(&self, account: &str, cutoff: i64) -> Result<u64, StoreError> {
        let mut writer = self.writer().await?;
        // Their attempts go with them (ON DELETE CASCADE).
        let deleted = sqlx::query(
            "DELETE FROM deliveries WHERE account = $1 AND status IN ('delivered', 'failed') AND created_at < $2",
        )
        .bind(account)
        .bind(cutoff)
        .execute(&mut *writer)
        .await?;
        self.synced(writer).await?;
        Ok(deleted.rows_affected())
    }
}

/// Pauses or resumes a destination (`sql` does the one or the other, with `$1` account, `$2` id, `$3` now).
async fn set_paused<E>(engine: &E, sql: &str, account: &str, id: &str, now: i64) -> Result<bool, StoreError>
where
    E: Engine,
    for<'c> &'c mut <E::Db as Database>::Connection: Executor<'c, Database = E::Db>,
    for<'q> <E::Db as Database>::Arguments<'q>: IntoArguments<'q, E::Db>,
    for<'q> &'q str: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> i64: Encode<'q, E::Db> + Type<E::Db>,
{
    let mut writer = engine.writer().await?;
    let updated = sqlx::query(sql)
        .bind(account)
        .bind(id)
        .bind(now)
        .execute(&mut *writer)
        .await?;
    engine.synced(writer).await?;
    Ok(updated.rows_affected() == 1)
}
