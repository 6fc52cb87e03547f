//! The scale-out engine: several `serve` processes share one PostgreSQL database. Only what differs from SQLite
//! is here; the statements both run are in `shared.rs`.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

use super::batch::insert_deliveries;
use super::budget::{take_api_budget_on, BudgetGrant, BudgetLimits};
use super::engine::Engine;
use super::outbound::NewDelivery;
use super::queue::{Claim, Release, Whose, INTERRUPTED_ATTEMPT_COLUMNS, INTERRUPTED_REASON, RELEASE_SET};
use super::{
    batch, in_change_order, AttemptTiming, ClaimedEvent, ClaimedRow, Completion, StoreError, CLAIMED_COLUMNS,
    MAX_CLAIMED_EVENTS,
};

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
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
impl Engine for PostgresStore {
    type Db = Postgres;
    const BEGIN_WRITE: &'static str = "BEGIN";

    fn readers(&self) -> &PgPool {
        &self.pool
    }

    async fn writer(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    /// A commit on PostgreSQL is durable when it returns.
    async fn synced(&self, writer: PoolConnection<Postgres>) -> Result<(), StoreError> {
        drop(writer);
        Ok(())
    }

    /// The transaction locks the account's budget on every node, so that two nodes never both see room for the
    /// last request.
    async fn take_api_budget(&self, account: &str, now: i64, limits: BudgetLimits) -> Result<BudgetGrant, StoreError> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('sm8_api_budget:' || $1, 0))")
            .bind(account)
            .execute(&mut *transaction)
            .await?;
        let grant = take_api_budget_on(&mut transaction, account, now, limits).await?;
        if grant == BudgetGrant::Granted {
            transaction.commit().await?;
        } else {
            transaction.rollback().await?;
        }
        Ok(grant)
    }

    fn skip_locked(&self, table: &str) -> String {
        format!("FOR UPDATE OF {table} SKIP LOCKED")
    }

    async fn claim_due_objects(&self, claim: &Claim<'_>) -> Result<Vec<ClaimedEvent>, StoreError> {
        // Every row lock is taken with SKIP LOCKED, so concurrent workers (on any node) never wait on each other
        // and never deadlock; each event is claimed by exactly one of them. Objects with an event in flight are
        // passed over, and an advisory lock per object (held until the claim commits) keeps two concurrent
        // claims from taking different events of one object: one object is worked on by one worker at a time.
        let rows: Vec<ClaimedRow> = sqlx::query_as(&format!(
            "WITH due AS (
                 SELECT account, object_type, object_uuid FROM webhook_events q
                 WHERE status = 'queued' AND next_attempt_at <= $1
                   AND NOT EXISTS (
                       SELECT 1 FROM webhook_events p
                       WHERE p.account = q.account AND p.object_type = q.object_type
                         AND p.object_uuid = q.object_uuid AND p.status = 'processing')
                   AND pg_try_advisory_xact_lock(
                       hashtextextended(account || '/' || object_type || ':' || object_uuid, 0))
                 ORDER BY next_attempt_at LIMIT $3
                 FOR UPDATE SKIP LOCKED
             ), claimable AS (
                 SELECT e.id FROM webhook_events e
                 WHERE (e.account, e.object_type, e.object_uuid) IN (SELECT account, object_type, object_uuid FROM due)
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

    async fn finish_events(
        &self,
        events: &[ClaimedEvent],
        completion: &Completion,
        attempt: &AttemptTiming,
        deliveries: &[NewDelivery],
    ) -> Result<u64, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let finished = batch::finish_events::<Postgres>(&mut transaction, events, completion, attempt).await?;
        if finished > 0 {
            insert_deliveries::<Postgres>(&mut transaction, deliveries).await?;
        }
        transaction.commit().await?;
        Ok(finished)
    }
}
