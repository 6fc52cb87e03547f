//! SQLite's API budget: counted in memory (`BudgetLedger`), seeded from the database the first time an account
//! takes from it, and saved once a second in one transaction that also reads back what other processes on the
//! same file counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::store::budget::{day_window, API_PAUSE_SQL, FORGET_ENDED_WINDOWS_SQL, FORGET_OLD_REQUESTS_SQL};
use crate::store::budget_ledger::{BudgetLedger, StoredBudget, UnsavedBudget};
use crate::store::engine::Engine;
use crate::store::now_millis;
use crate::store::placeholders::{for_engine, value_rows};
use crate::store::queue::MINUTE_MS;
use crate::store::SqliteStore;

/// How often counted requests are written, and how soon other processes' requests are seen.
const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// Request times written per statement (two parameters each).
const ROWS_PER_STATEMENT: usize = 500;

const RECENT_TIMES_SQL: &str = "SELECT at FROM api_requests WHERE account = $1 AND at > $2 ORDER BY at DESC LIMIT $3";
const RECENT_COUNT_SQL: &str = "SELECT COUNT(*) FROM api_requests WHERE account = $1 AND at > $2";
const DAY_USED_SQL: &str = "SELECT COALESCE(MAX(used), 0) FROM api_budget WHERE account = $1 AND window_key = $2";
/// Adds `$3` requests to the day window `$2` ending at `$4`.
const ADD_TO_DAY_SQL: &str = "INSERT INTO api_budget (account, window_key, used, expires_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (account, window_key) DO UPDATE SET used = api_budget.used + excluded.used";

/// What the database holds of `account`'s budget at `now`, for a ledger to start from.
pub async fn stored_budget(readers: &SqlitePool, account: &str, now: i64) -> Result<StoredBudget, sqlx::Error> {
    let mut connection = readers.acquire().await?;
    read_back(&mut connection, account, &day_window(now).0, now, None, i64::MAX).await
}

/// Writes what `ledger` counted since the last save, and hands each account back what the database now holds.
#[derive(Clone)]
pub struct BudgetSaver {
    pub ledger: Arc<BudgetLedger>,
    pub writer: SqlitePool,
    /// One save at a time: a save asked for (`Store::save_api_budget`) returns only once every request counted
    /// before it is written, even those a periodic save had already taken.
    pub saving: Arc<tokio::sync::Mutex<()>>,
}

impl BudgetSaver {
    /// Saves every `SAVE_INTERVAL`, and once more when the returned guard drops.
    pub fn spawn(self) -> DropGuard {
        let stop = CancellationToken::new();
        let guard = stop.clone().drop_guard();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(SAVE_INTERVAL);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                let stopping = tokio::select! {
                    _ = stop.cancelled() => true,
                    _ = interval.tick() => false,
                };
                if let Err(error) = self.save().await {
                    tracing::warn!(%error, "saving the API budget's counts failed; trying again");
                }
                if stopping {
                    break;
                }
            }
        });
        guard
    }

    pub async fn save(&self) -> Result<(), sqlx::Error> {
        let _one_at_a_time = self.saving.lock().await;
        let now = now_millis();
        let mut pending = self.ledger.take_unsaved(now).into_iter();
        while let Some(unsaved) = pending.next() {
            // An account with nothing new is only read back: the database is not written while idle.
            let saved = if unsaved.requests.is_empty() {
                self.read_account(&unsaved, now).await
            } else {
                self.save_account(&unsaved, now).await
            };
            match saved {
                Ok(stored) => self.ledger.saved(&unsaved.account, &unsaved.day_key, stored),
                Err(error) => {
                    // Counted all the same: they wait for the next save.
                    self.ledger.unsaved_again(&unsaved);
                    pending.for_each(|rest| self.ledger.unsaved_again(&rest));
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    async fn read_account(&self, unsaved: &UnsavedBudget, now: i64) -> Result<StoredBudget, sqlx::Error> {
        let mut writer = self.writer.acquire().await?;
        read_back_after(&mut writer, unsaved, now).await
    }

    async fn save_account(&self, unsaved: &UnsavedBudget, now: i64) -> Result<StoredBudget, sqlx::Error> {
        let mut writer = self.writer.acquire().await?;
        let mut transaction = sqlx::Connection::begin_with(&mut *writer, <SqliteStore as Engine>::BEGIN_WRITE).await?;
        sqlx::query(FORGET_OLD_REQUESTS_SQL)
            .bind(&unsaved.account)
            .bind(now - MINUTE_MS)
            .execute(&mut *transaction)
            .await?;
        for rows in unsaved.requests.chunks(ROWS_PER_STATEMENT) {
            let sql = for_engine::<Sqlite>(format!(
                "INSERT INTO api_requests (account, at) VALUES {}",
                value_rows(rows.len(), 2)
            ));
            let mut insert = sqlx::query(&sql);
            for &at in rows {
                insert = insert.bind(&unsaved.account).bind(at);
            }
            insert.execute(&mut *transaction).await?;
        }
        for ((key, end), count) in per_day(&unsaved.requests) {
            sqlx::query(ADD_TO_DAY_SQL)
                .bind(&unsaved.account)
                .bind(key)
                .bind(count)
                .bind(end)
                .execute(&mut *transaction)
                .await?;
        }
        sqlx::query(FORGET_ENDED_WINDOWS_SQL)
            .bind(now)
            .execute(&mut *transaction)
            .await?;
        let stored = read_back_after(&mut transaction, unsaved, now).await?;
        transaction.commit().await?;
        Ok(stored)
    }
}

/// The requests' counts per day window (key, end).
fn per_day(requests: &[i64]) -> BTreeMap<(String, i64), i64> {
    let mut days = BTreeMap::new();
    for &at in requests {
        *days.entry(day_window(at)).or_insert(0) += 1;
    }
    days
}

/// What the database holds of `unsaved`'s account at `now`, once `unsaved` is written (or had nothing new).
async fn read_back_after(
    connection: &mut SqliteConnection,
    unsaved: &UnsavedBudget,
    now: i64,
) -> Result<StoredBudget, sqlx::Error> {
    read_back(
        connection,
        &unsaved.account,
        &unsaved.day_key,
        now,
        Some(unsaved.minute_count),
        unsaved.keep,
    )
    .await
}

/// `account`'s budget in the database at `now`: the rolling minute's newest `keep` request times unless the
/// minute holds `expected` requests (then the ledger has them all), the day window `day_key`'s count, the pause.
async fn read_back(
    connection: &mut SqliteConnection,
    account: &str,
    day_key: &str,
    now: i64,
    expected: Option<i64>,
    keep: i64,
) -> Result<StoredBudget, sqlx::Error> {
    let minute_start = now - MINUTE_MS;
    let count: i64 = sqlx::query_scalar(RECENT_COUNT_SQL)
        .bind(account)
        .bind(minute_start)
        .fetch_one(&mut *connection)
        .await?;
    let recent = if expected == Some(count) {
        None
    } else {
        Some(
            sqlx::query_scalar(RECENT_TIMES_SQL)
                .bind(account)
                .bind(minute_start)
                .bind(keep)
                .fetch_all(&mut *connection)
                .await?,
        )
    };
    let day_used = sqlx::query_scalar(DAY_USED_SQL)
        .bind(account)
        .bind(day_key)
        .fetch_one(&mut *connection)
        .await?;
    let paused_until = sqlx::query_scalar(API_PAUSE_SQL)
        .bind(account)
        .bind(now)
        .fetch_optional(&mut *connection)
        .await?;
    Ok(StoredBudget {
        recent,
        day_used,
        paused_until,
    })
}

#[cfg(test)]
mod tests {
    use crate::store::{BudgetGrant, BudgetLimits, SqliteStore, Store};

    const TWO_A_MINUTE: BudgetLimits = BudgetLimits {
        per_minute: 2,
        per_day: 100,
    };

    async fn open(folder: &tempfile::TempDir) -> SqliteStore {
        let url = format!("sqlite://{}", folder.path().join("sm8.db").display());
        SqliteStore::connect(&url).await.unwrap()
    }

    #[tokio::test]
    async fn a_process_on_the_same_file_sees_the_others_requests_once_both_saved() {
        let folder = tempfile::TempDir::new().unwrap();
        let (server, command) = (open(&folder).await, open(&folder).await);
        let now = crate::store::now_millis();
        assert_eq!(
            server.take_api_budget("a", now, TWO_A_MINUTE).await.unwrap(),
            BudgetGrant::Granted
        );
        server.save_api_budget().await.unwrap();

        assert_eq!(
            command.take_api_budget("a", now, TWO_A_MINUTE).await.unwrap(),
            BudgetGrant::Granted
        );
        assert!(
            matches!(
                command.take_api_budget("a", now, TWO_A_MINUTE).await.unwrap(),
                BudgetGrant::Exhausted { .. }
            ),
            "the second process started from the first one's saved request"
        );
        command.save_api_budget().await.unwrap();
        server.save_api_budget().await.unwrap();
        assert!(
            matches!(
                server.take_api_budget("a", now, TWO_A_MINUTE).await.unwrap(),
                BudgetGrant::Exhausted { .. }
            ),
            "the first process read back the second one's request"
        );
        let health = server.pipeline_health("a", now, TWO_A_MINUTE).await.unwrap();
        assert_eq!((health.api_budget.minute_used, health.api_budget.day_used), (2, 2));
    }

    #[tokio::test]
    async fn saved_requests_hold_after_a_restart_and_a_pause_is_written_at_once() {
        let folder = tempfile::TempDir::new().unwrap();
        let now = crate::store::now_millis();
        {
            let store = open(&folder).await;
            store.take_api_budget("a", now, TWO_A_MINUTE).await.unwrap();
            store.take_api_budget("a", now + 1, TWO_A_MINUTE).await.unwrap();
            store.pause_api_budget("b", now + 30_000).await.unwrap();
            store.save_api_budget().await.unwrap();
        }
        let store = open(&folder).await;
        assert_eq!(
            store.take_api_budget("a", now + 2, TWO_A_MINUTE).await.unwrap(),
            BudgetGrant::Exhausted { retry_at: now + 60_001 }
        );
        assert_eq!(
            store.take_api_budget("b", now, TWO_A_MINUTE).await.unwrap(),
            BudgetGrant::Exhausted { retry_at: now + 30_000 }
        );
        let health = store.pipeline_health("a", now + 2, TWO_A_MINUTE).await.unwrap();
        assert_eq!((health.api_budget.minute_used, health.api_budget.day_used), (2, 2));
    }
}
