//! The ServiceM8 API budget in the database: ServiceM8 allows so many requests a minute and a day per account,
//! and every node and process working for the account shares them. The rolling minute is the requests of the last
//! 60 s (`api_requests`); the day, and a pause after a 429, are rows of `api_budget`.
//!
//! On PostgreSQL each request is counted in a transaction that locks the account's budget on every node. On
//! SQLite one process does nearly all the work, so it counts in memory (`BudgetLedger`) and saves once a second.

use sqlx::PgConnection;

use super::queue::{DAY_MS, MINUTE_MS};

/// Whether the shared API budget allowed one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetGrant {
    Granted,
    /// The window is spent; the next request may be made at this time (unix ms).
    Exhausted {
        retry_at: i64,
    },
}

/// The limits of the ServiceM8 API budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimits {
    pub per_minute: i64,
    pub per_day: i64,
}

/// The day window a request at `now` counts against: its key and its end. (The minute is a rolling window: see
/// `api_requests`.)
pub fn day_window(now: i64) -> (String, i64) {
    let day = now.div_euclid(DAY_MS);
    (format!("day:{day}"), (day + 1) * DAY_MS)
}

/// When one more request may be made, if not now: while ServiceM8 asked all nodes to pause (`paused_until`), or
/// while the last minute holds `limits.per_minute` requests (`recent`: their count and the oldest one's time).
pub fn minute_refusal(
    now: i64,
    limits: BudgetLimits,
    paused_until: Option<i64>,
    recent: (i64, Option<i64>),
) -> Option<i64> {
    if let Some(until) = paused_until.filter(|&until| until > now) {
        return Some(until);
    }
    let (count, oldest) = recent;
    if limits.per_minute <= 0 {
        return Some(now + MINUTE_MS);
    }
    (count >= limits.per_minute).then(|| oldest.map_or(now, |oldest| oldest + MINUTE_MS).max(now) + 1)
}

/// Counts one request against `account`'s budget on `connection`, inside a transaction that holds the account's
/// lock on every node (see `PostgresStore::take_api_budget`). The caller commits on `Granted` and rolls back
/// otherwise.
pub async fn take_api_budget_on(
    connection: &mut PgConnection,
    account: &str,
    now: i64,
    limits: BudgetLimits,
) -> Result<BudgetGrant, sqlx::Error> {
    sqlx::query(FORGET_OLD_REQUESTS_SQL)
        .bind(account)
        .bind(now - MINUTE_MS)
        .execute(&mut *connection)
        .await?;
    let paused_until: Option<i64> = sqlx::query_scalar(API_PAUSE_SQL)
        .bind(account)
        .bind(now)
        .fetch_optional(&mut *connection)
        .await?;
    let recent: (i64, Option<i64>) = sqlx::query_as(RECENT_REQUESTS_SQL)
        .bind(account)
        .fetch_one(&mut *connection)
        .await?;
    if let Some(retry_at) = minute_refusal(now, limits, paused_until, recent) {
        return Ok(BudgetGrant::Exhausted { retry_at });
    }
    let (day_key, day_end) = day_window(now);
    let counted: Option<i64> = sqlx::query_scalar(COUNT_DAY_SQL)
        .bind(account)
        .bind(day_key)
        .bind(day_end)
        .bind(limits.per_day)
        .fetch_optional(&mut *connection)
        .await?;
    if counted.is_none() || limits.per_day <= 0 {
        return Ok(BudgetGrant::Exhausted { retry_at: day_end });
    }
    sqlx::query(RECORD_REQUEST_SQL)
        .bind(account)
        .bind(now)
        .execute(&mut *connection)
        .await?;
    sqlx::query(FORGET_ENDED_WINDOWS_SQL)
        .bind(now)
        .execute(&mut *connection)
        .await?;
    Ok(BudgetGrant::Granted)
}

// Every statement of the budget is one account's (`$1`): ServiceM8 counts requests per account.
/// Forgets requests that left the rolling minute (`$2`: a minute ago).
pub const FORGET_OLD_REQUESTS_SQL: &str = "DELETE FROM api_requests WHERE account = $1 AND at <= $2";
/// The requests of the rolling minute: their count and the oldest one's time.
const RECENT_REQUESTS_SQL: &str = "SELECT COUNT(*), MIN(at) FROM api_requests WHERE account = $1";
/// Until when ServiceM8 asked every node to pause (`$2`: now).
pub const API_PAUSE_SQL: &str =
    "SELECT expires_at FROM api_budget WHERE account = $1 AND window_key = 'paused' AND expires_at > $2";
/// Counts a request in its day window (`$2` key, `$3` window end) unless it holds `$4` already; returns a row
/// only when it counted.
const COUNT_DAY_SQL: &str = "INSERT INTO api_budget (account, window_key, used, expires_at) VALUES ($1, $2, 1, $3)
     ON CONFLICT (account, window_key) DO UPDATE SET used = api_budget.used + 1 WHERE api_budget.used < $4
     RETURNING used";
pub const RECORD_REQUEST_SQL: &str = "INSERT INTO api_requests (account, at) VALUES ($1, $2)";
pub const FORGET_ENDED_WINDOWS_SQL: &str = "DELETE FROM api_budget WHERE expires_at < $1";
/// Pauses every node's requests for account `$1` until `$2` (kept if a later pause is already set).
pub const PAUSE_API_SQL: &str = "INSERT INTO api_budget (account, window_key, used, expires_at)
     VALUES ($1, 'paused', 0, $2)
     ON CONFLICT (account, window_key) DO UPDATE
     SET expires_at = CASE WHEN api_budget.expires_at > $2 THEN api_budget.expires_at ELSE $2 END";

/// Requests in the rolling minute after `$2` and in the day window `$3`.
pub const BUDGET_USE_SQL: &str = "SELECT (SELECT COUNT(*) FROM api_requests WHERE account = $1 AND at > $2), \
     (SELECT COALESCE(MAX(used), 0) FROM api_budget WHERE account = $1 AND window_key = $3)";

/// What `BUDGET_USE_SQL` binds at `now`: the start of the rolling minute and the day window's key.
pub fn budget_use_binds(now: i64) -> (i64, String) {
    (now - MINUTE_MS, day_window(now).0)
}
