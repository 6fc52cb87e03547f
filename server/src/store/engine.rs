//! What the two engines do differently. Everything they do alike — every statement both run — is written once,
//! in `shared.rs`, for any `Engine`; an engine supplies its connections and the few statements that only it can
//! run well (claiming, releasing, finishing, and how nodes take turns at the API budget).

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgQueryResult;
use sqlx::sqlite::SqliteQueryResult;
use sqlx::{Database, Pool};

use super::budget_ledger::BudgetLedger;
use super::outbound::NewDelivery;
use super::{AttemptTiming, BudgetGrant, BudgetLimits, Claim, ClaimedEvent, Completion, Release, StoreError};

#[async_trait]
pub trait Engine: Send + Sync + 'static {
    type Db: Database<QueryResult: RowsAffected>;

    /// How a write transaction begins. On SQLite `BEGIN IMMEDIATE`, which takes the write lock at once, waiting in
    /// the busy handler while another process on the file (a command-line tool) writes: a deferred transaction that
    /// read first fails at its first write with "database is locked" if that process committed meanwhile. Within
    /// the server the one writer connection already takes turns, so it costs nothing there.
    const BEGIN_WRITE: &'static str;

    /// Where reads go: in SQLite's WAL mode they see the last commit and never wait for the writer.
    fn readers(&self) -> &Pool<Self::Db>;

    /// A connection to write on: SQLite's one writer, in turn; any pooled connection on PostgreSQL.
    async fn writer(&self) -> Result<PoolConnection<Self::Db>, StoreError>;

    /// Hands `writer` back, then returns once what it committed is durable: for accepted events and whatever a
    /// user asked for. Writes that skip this are the workers' bookkeeping (claims, finishes, mirror rows, budget
    /// counts, watermarks): they survive a crash of the process, and a power loss can only take them back to an
    /// earlier state that processing repeats (leases expire; fetches and edit_date-guarded writes are idempotent).
    /// SQLite's budget counts are saved once a second, so a crash forgets a second of them at most.
    async fn synced(&self, writer: PoolConnection<Self::Db>) -> Result<(), StoreError>;

    /// See `Store::log_bytes`.
    fn log_bytes(&self) -> Option<u64> {
        None
    }

    /// See `Store::take_api_budget`: on PostgreSQL in a transaction that locks the account's budget on every
    /// node; on SQLite in this process's `BudgetLedger`.
    async fn take_api_budget(&self, account: &str, now: i64, limits: BudgetLimits) -> Result<BudgetGrant, StoreError>;

    /// Where this process counts the API budget in memory, if it does: the counts to read and pause there.
    fn budget_ledger(&self) -> Option<&BudgetLedger> {
        None
    }

    /// See `Store::save_api_budget`.
    async fn save_api_budget(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// What ends a claim's `SELECT` of the rows it takes (`table`: their table's name in the query) so that
    /// concurrent claims, on any node, skip each other's rows instead of waiting for them or taking them twice.
    fn skip_locked(&self, table: &str) -> String;

    /// See `Store::claim_due_objects`.
    async fn claim_due_objects(&self, claim: &Claim<'_>) -> Result<Vec<ClaimedEvent>, StoreError>;

    /// See `Store::release_claims`.
    async fn release_claims(&self, release: &Release<'_>) -> Result<u64, StoreError>;

    /// See `Store::finish_events_delivering`.
    async fn finish_events(
        &self,
        events: &[ClaimedEvent],
        completion: &Completion,
        attempt: &AttemptTiming,
        deliveries: &[NewDelivery],
    ) -> Result<u64, StoreError>;
}

/// How many rows a statement changed: each sqlx driver answers it, but no sqlx trait does.
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for PgQueryResult {
    fn rows_affected(&self) -> u64 {
        PgQueryResult::rows_affected(self)
    }
}
