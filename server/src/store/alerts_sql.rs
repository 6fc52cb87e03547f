//! `Alerts` written once for both engines, with `$n` binds. A user's edit ends with `synced`; the monitor's steps
//! and the nodes' signals are bookkeeping that an evaluation repeats.

use async_trait::async_trait;
use sqlx::{Connection, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::alerts::{
    AlertHistoryRow, AlertRow, AlertSettingsUpdate, AlertStep, Alerts, AttemptTally, FailedEvents, NewAlert,
    NodeSignal, ALERT_COLUMNS,
};
use super::batch::insert_deliveries;
use super::engine::{Engine, RowsAffected};
use super::StoreError;

/// The most history lines one page holds.
const MAX_HISTORY_PAGE: u32 = 500;

#[async_trait]
impl<E> Alerts for E
where
    E: Engine,
    for<'c> &'c mut <E::Db as Database>::Connection: Executor<'c, Database = E::Db>,
    for<'q> <E::Db as Database>::Arguments<'q>: IntoArguments<'q, E::Db>,
    for<'q> &'q str: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q String: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> i64: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> bool: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> Option<i64>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q Option<String>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q serde_json::Value: Encode<'q, E::Db> + Type<E::Db>,
    for<'r> i64: Decode<'r, E::Db> + Type<E::Db>,
    for<'r> (String,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (Option<i64>,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (i64, i64): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (String, String, String): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> AlertRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> AlertHistoryRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> NodeSignal: FromRow<'r, <E::Db as Database>::Row>,
{
    async fn ensure_alerts(&self, alerts: &[NewAlert]) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        let mut transaction = writer.begin_with(Self::BEGIN_WRITE).await?;
        for alert in alerts {
            sqlx::query(
                "INSERT INTO alerts (id, account, kind, settings, renotify_minutes, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account, kind) DO NOTHING",
            )
            .bind(&alert.id)
            .bind(&alert.account)
            .bind(&alert.kind)
            .bind(&alert.settings)
            .bind(alert.renotify_minutes)
            .bind(alert.created_at)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn list_alerts(&self, account: &str) -> Result<Vec<AlertRow>, StoreError> {
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE account = $1 ORDER BY kind");
        Ok(sqlx::query_as(&sql).bind(account).fetch_all(self.readers()).await?)
    }

    async fn alert(&self, account: &str, id: &str) -> Result<Option<AlertRow>, StoreError> {
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE account = $1 AND id = $2");
        Ok(sqlx::query_as(&sql)
            .bind(account)
            .bind(id)
            .fetch_optional(self.readers())
            .await?)
    }

    async fn update_alert_settings(&self, update: &AlertSettingsUpdate) -> Result<Option<AlertRow>, StoreError> {
        let sql = format!(
            "UPDATE alerts SET enabled = $3, settings = $4, destination_ids = $5, renotify_minutes = $6,
                 version = version + 1, updated_at = $7
             WHERE account = $1 AND id = $2 RETURNING {ALERT_COLUMNS}"
        );
        let mut writer = self.writer().await?;
        let row = sqlx::query_as(&sql)
            .bind(&update.account)
            .bind(&update.id)
            .bind(update.enabled)
            .bind(&update.settings)
            .bind(&update.destination_ids)
            .bind(update.renotify_minutes)
            .bind(update.now)
            .fetch_optional(&mut *writer)
            .await?;
        self.synced(writer).await?;
        Ok(row)
    }

    async fn apply_alert_step(&self, step: &AlertStep) -> Result<bool, StoreError> {
        let standing = &step.standing;
        let mut writer = self.writer().await?;
        let mut transaction = writer.begin_with(Self::BEGIN_WRITE).await?;
        let updated = sqlx::query(
            "UPDATE alerts SET state = $4, summary = $5, firing_since = $6, last_notified_at = $7,
                 acknowledged_at = $8, acknowledged_by = $9, silenced_until = $10, version = version + 1,
                 updated_at = $11
             WHERE account = $1 AND id = $2 AND version = $3",
        )
        .bind(&step.account)
        .bind(&step.id)
        .bind(step.version)
        .bind(standing.state)
        .bind(&standing.summary)
        .bind(standing.firing_since)
        .bind(standing.last_notified_at)
        .bind(standing.acknowledged_at)
        .bind(&standing.acknowledged_by)
        .bind(standing.silenced_until)
        .bind(step.now)
        .execute(&mut *transaction)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(line) = &step.history {
            sqlx::query(
                "INSERT INTO alert_history (alert_id, account, kind, transition, summary, notified, actor, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&step.id)
            .bind(&step.account)
            .bind(&step.kind)
            .bind(line.transition)
            .bind(&line.summary)
            .bind(line.notified)
            .bind(&line.actor)
            .bind(step.now)
            .execute(&mut *transaction)
            .await?;
        }
        insert_deliveries::<E::Db>(&mut transaction, &step.deliveries).await?;
        transaction.commit().await?;
        self.synced(writer).await?;
        Ok(true)
    }

    async fn alert_history(
        &self,
        account: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AlertHistoryRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, alert_id, account, kind, transition, summary, notified, actor, at FROM alert_history
             WHERE account = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(account)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit.clamp(1, MAX_HISTORY_PAGE)))
        .fetch_all(self.readers())
        .await?)
    }

    async fn delete_alert_history_before(&self, cutoff: i64) -> Result<u64, StoreError> {
        let mut writer = self.writer().await?;
        let deleted = sqlx::query("DELETE FROM alert_history WHERE at < $1")
            .bind(cutoff)
            .execute(&mut *writer)
            .await?;
        Ok(deleted.rows_affected())
    }

    async fn failed_events_since(&self, account: &str, since: i64, sample: u32) -> Result<FailedEvents, StoreError> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM webhook_events WHERE processed_at >= $2 AND account = $1 AND status = 'failed'",
        )
        .bind(account)
        .bind(since)
        .fetch_one(self.readers())
        .await?;
        let newest = sqlx::query_as(
            "SELECT id, object_type, object_uuid FROM webhook_events
             WHERE processed_at >= $2 AND account = $1 AND status = 'failed'
             ORDER BY processed_at DESC, id DESC LIMIT $3",
        )
        .bind(account)
        .bind(since)
        .bind(i64::from(sample))
        .fetch_all(self.readers())
        .await?;
        Ok(FailedEvents { count, newest })
    }

    async fn attempts_since(&self, account: &str, since: i64) -> Result<AttemptTally, StoreError> {
        let (total, failed): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN a.outcome IN ('retry', 'failed') THEN 1 ELSE 0 END), 0)
             FROM event_attempts a JOIN webhook_events e ON e.id = a.event_id
             WHERE a.finished_at >= $2 AND e.account = $1 AND a.outcome IN ('success', 'retry', 'failed')",
        )
        .bind(account)
        .bind(since)
        .fetch_one(self.readers())
        .await?;
        Ok(AttemptTally { total, failed })
    }

    async fn last_webhook_at(&self, account: &str) -> Result<Option<i64>, StoreError> {
        let (at,): (Option<i64>,) = sqlx::query_as(
            "SELECT MAX(received_at) FROM (SELECT received_at FROM webhook_events
                 WHERE account = $1 AND format NOT IN ('sync', 'test') ORDER BY received_at DESC LIMIT 1) newest",
        )
        .bind(account)
        .fetch_one(self.readers())
        .await?;
        Ok(at)
    }

    async fn reconciled_since(&self, account: &str, since: i64) -> Result<i64, StoreError> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM webhook_events
             WHERE account = $1 AND received_at >= $2 AND format = 'sync' AND verification = 'reconciliation'",
        )
        .bind(account)
        .bind(since)
        .fetch_one(self.readers())
        .await?;
        Ok(count)
    }

    async fn raise_node_signal(
        &self,
        node: &str,
        signal: &str,
        detail: &str,
        since: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        sqlx::query(
            "INSERT INTO node_signals (node, signal, since, seen_at, detail) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (node, signal) DO UPDATE SET seen_at = excluded.seen_at, detail = excluded.detail",
        )
        .bind(node)
        .bind(signal)
        .bind(since)
        .bind(now)
        .bind(detail)
        .execute(&mut *writer)
        .await?;
        Ok(())
    }

    async fn clear_node_signal(&self, node: &str, signal: &str) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        sqlx::query("DELETE FROM node_signals WHERE node = $1 AND signal = $2")
            .bind(node)
            .bind(signal)
            .execute(&mut *writer)
            .await?;
        Ok(())
    }

    async fn node_signals(&self, signal: &str, seen_after: i64) -> Result<Vec<NodeSignal>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT node, signal, since, seen_at, detail FROM node_signals
             WHERE signal = $1 AND seen_at >= $2 ORDER BY node",
        )
        .bind(signal)
        .bind(seen_after)
        .fetch_all(self.readers())
        .await?)
    }
}
