//! The embedded engine: one SQLite file in WAL mode, fully synchronous so an acknowledged event survives a crash.

mod backup;
mod budget;
mod checkpoints;
mod finishes;
mod queue;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};
use tokio_util::sync::DropGuard;

use super::budget::{BudgetGrant, BudgetLimits};
use super::budget_ledger::BudgetLedger;
use super::engine::Engine;
use super::outbound::NewDelivery;
use super::queue::{Claim, Release};
use super::wal::WalSync;
use super::{AttemptTiming, ClaimedEvent, Completion, StoreError};
pub use backup::{backup_sqlite, Backup};
use budget::BudgetSaver;
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
    /// The API budget, counted in memory and saved by a task.
    budget: BudgetSaver,
    /// Stops the budget's saves (after a last one) when the store is dropped.
    _budget_saves: DropGuard,
    /// Stops the checkpoints when the store is dropped.
    _checkpoints: Option<DropGuard>,
    /// What keeps the log small, shared with the task that runs it; none for an in-memory database.
    checkpoints: Option<Checkpoints>,
}

impl SqliteStore {
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
        let budget = BudgetSaver {
            ledger: Arc::default(),
            writer: writer.clone(),
            saving: Arc::default(),
        };
        let budget_saves = budget.clone().spawn();
        if url.contains(":memory:") {
            // An in-memory database lives in its connections' shared cache and never reaches a disk.
            return Ok(SqliteStore {
                readers: writer.clone(),
                writer,
                log: None,
                finishes: FinishQueue::default(),
                budget,
                _budget_saves: budget_saves,
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
            budget,
            _budget_saves: budget_saves,
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
}

/// The write-ahead log beside `database`: `<database>-wal`.
fn wal_file(database: &Path) -> PathBuf {
    let mut path = database.as_os_str().to_owned();
    path.push("-wal");
    path.into()
}

#[async_trait]
impl Engine for SqliteStore {
    type Db = Sqlite;
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    fn readers(&self) -> &SqlitePool {
        &self.readers
    }

    async fn writer(&self) -> Result<PoolConnection<Sqlite>, StoreError> {
        Ok(self.writer.acquire().await?)
    }

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

    fn log_bytes(&self) -> Option<u64> {
        self.checkpoints.as_ref().map(Checkpoints::log_file_bytes)
    }

    /// Counted in memory: the first request of an account reads what the database holds.
    async fn take_api_budget(&self, account: &str, now: i64, limits: BudgetLimits) -> Result<BudgetGrant, StoreError> {
        if !self.budget.ledger.knows(account) {
            let stored = budget::stored_budget(&self.readers, account, now).await?;
            self.budget.ledger.seed(account, stored, now);
        }
        Ok(self.budget.ledger.take(account, now, limits))
    }

    fn budget_ledger(&self) -> Option<&BudgetLedger> {
        Some(&self.budget.ledger)
    }

    async fn save_api_budget(&self) -> Result<(), StoreError> {
        Ok(self.budget.save().await?)
    }

    /// Nothing: a claim runs on the one writer, so no other claim runs beside it.
    fn skip_locked(&self, _table: &str) -> String {
        String::new()
    }

    async fn claim_due_objects(&self, claim: &Claim<'_>) -> Result<Vec<ClaimedEvent>, StoreError> {
        let mut writer = self.writer().await?;
        queue::claim_due_objects(&mut writer, claim).await
    }

    async fn release_claims(&self, release: &Release<'_>) -> Result<u64, StoreError> {
        let mut writer = self.writer().await?;
        queue::release_claims(&mut writer, release).await
    }

    async fn finish_events(
        &self,
        events: &[ClaimedEvent],
        completion: &Completion,
        attempt: &AttemptTiming,
        deliveries: &[NewDelivery],
    ) -> Result<u64, StoreError> {
        let finished = self.finishes.enqueue(events, completion, attempt, deliveries);
        let mut writer = self.writer().await?;
        // Commits this finish and every other queued meanwhile, unless another caller already committed it.
        self.finishes.commit_queued(&mut writer).await;
        drop(writer);
        finished.await.map_err(|_| StoreError::WriterStopped)?
    }
}
