//! The SQL behind the dashboard's views, shared by both engines: bind parameters are `$n`, which SQLite reads as
//! well as PostgreSQL, and every query uses only syntax both understand.

use app::model::{ApiBudgetUse, EventQuery, MinuteBucket, PageCursor, PipelineHealth};

use super::budget::BudgetLimits;
use super::queue::MINUTE_MS;

/// A value bound to a query built here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindValue {
    Text(String),
    Int(i64),
}

/// A query and its binds, in placeholder order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltQuery {
    pub sql: String,
    pub binds: Vec<BindValue>,
}

/// `SELECT` of one page of `account`'s events matching `query`, newest first; it asks for one row more than the
/// page so the caller knows whether another page follows.
pub fn event_page_query(account: &str, query: &EventQuery, columns: &str) -> BuiltQuery {
    let mut conditions = Vec::new();
    let mut binds = Vec::new();
    let bind = |value: BindValue, binds: &mut Vec<BindValue>| {
        binds.push(value);
        format!("${}", binds.len())
    };
    conditions.push(format!(
        "account = {}",
        bind(BindValue::Text(account.into()), &mut binds)
    ));
    if let Some(status) = query.status {
        conditions.push(format!(
            "status = {}",
            bind(BindValue::Text(status.as_str().into()), &mut binds)
        ));
    }
    if let Some(object_type) = query.object_type.as_deref().filter(|t| !t.is_empty()) {
        conditions.push(format!(
            "object_type = {}",
            bind(BindValue::Text(object_type.into()), &mut binds)
        ));
    }
    if let Some(event_type) = query.event_type.as_deref().filter(|t| !t.is_empty()) {
        conditions.push(format!(
            "event_type = {}",
            bind(BindValue::Text(event_type.into()), &mut binds)
        ));
    }
    if let Some(search) = query.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let pattern = format!("%{}%", escape_like(&search.to_lowercase()));
        let id = bind(BindValue::Text(search.into()), &mut binds);
        let like = bind(BindValue::Text(pattern), &mut binds);
        conditions.push(format!("(id = {id} OR LOWER(object_uuid) LIKE {like} ESCAPE '\\')"));
    }
    if let Some(from) = query.received_from {
        conditions.push(format!("received_at >= {}", bind(BindValue::Int(from), &mut binds)));
    }
    if let Some(to) = query.received_to {
        conditions.push(format!("received_at < {}", bind(BindValue::Int(to), &mut binds)));
    }
    if let Some(cursor) = query.cursor.as_deref().and_then(PageCursor::decode) {
        let before = bind(BindValue::Int(cursor.received_at), &mut binds);
        let same = bind(BindValue::Int(cursor.received_at), &mut binds);
        let id = bind(BindValue::Text(cursor.id.into()), &mut binds);
        conditions.push(format!(
            "(received_at < {before} OR (received_at = {same} AND id < {id}))"
        ));
    }
    let limit = bind(BindValue::Int(i64::from(query.effective_limit()) + 1), &mut binds);
    let filter = format!("WHERE {}", conditions.join(" AND "));
    BuiltQuery {
        sql: format!("SELECT {columns} FROM webhook_events {filter} ORDER BY received_at DESC, id DESC LIMIT {limit}"),
        binds,
    }
}

/// Escapes LIKE's wildcards so a search matches them literally.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// The value at the 95th percentile of `values` (which it sorts).
pub fn p95(values: &mut [i64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((values.len() as f64) * 0.95).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1] as f64)
}

/// Events finished in the last hour considered for processing times: the newest this many.
pub const PROCESSING_SAMPLE: i64 = 10_000;

// The dashboard's fixed queries, with `$n` placeholders, which both engines read; `$1` is always the account.
pub const QUEUE_DEPTH_SQL: &str =
    "SELECT COUNT(*) FROM webhook_events WHERE account = $1 AND status IN ('queued', 'processing')";
pub const OLDEST_QUEUED_SQL: &str =
    "SELECT MIN(received_at) FROM webhook_events WHERE account = $1 AND status = 'queued'";
pub const FINISHED_BY_STATUS_SQL: &str =
    "SELECT status, COUNT(*) FROM webhook_events WHERE account = $1 AND processed_at >= $2 GROUP BY status";
pub const PROCESSING_TIMES_SQL: &str = "SELECT processed_at - received_at FROM webhook_events \
     WHERE account = $1 AND processed_at >= $2 ORDER BY processed_at DESC LIMIT $3";
pub const RECEIVED_PER_MINUTE_SQL: &str = "SELECT received_at / 60000, COUNT(*) FROM webhook_events \
     WHERE account = $1 AND received_at >= $2 GROUP BY received_at / 60000";
pub const FINISHED_PER_MINUTE_SQL: &str = "SELECT processed_at / 60000, status, COUNT(*), \
     CAST(AVG(processed_at - received_at) AS DOUBLE PRECISION) FROM webhook_events \
     WHERE account = $1 AND processed_at >= $2 GROUP BY processed_at / 60000, status";
pub const EVENT_RECORD_SQL: &str = "SELECT e.id, e.format, e.object_type, e.object_uuid, e.event_type, e.status, \
     e.attempts, e.occurred_at, e.changes, b.raw_body, b.headers, e.verification, e.last_error, e.skip_reason, \
     e.next_attempt_at, e.received_at, e.processed_at \
     FROM webhook_events e LEFT JOIN webhook_bodies b ON b.id = e.body_id WHERE e.account = $1 AND e.id = $2";

/// Builds the health view from the rows of the queries above.
pub fn assemble_health(
    queue_depth: i64,
    oldest_queued: Option<i64>,
    finished: Vec<(String, i64)>,
    mut processing_times: Vec<i64>,
    budget: ApiBudgetUse,
    now: i64,
) -> PipelineHealth {
    let finished_total: i64 = finished.iter().map(|(_, count)| count).sum();
    let succeeded: i64 = finished
        .iter()
        .filter(|(status, _)| status == "success")
        .map(|(_, count)| count)
        .sum();
    let mean = (!processing_times.is_empty())
        .then(|| processing_times.iter().sum::<i64>() as f64 / processing_times.len() as f64);
    PipelineHealth {
        queue_depth,
        oldest_queued_seconds: oldest_queued.map(|received_at| ((now - received_at) / 1000).max(0)),
        success_rate: (finished_total > 0).then(|| succeeded as f64 / finished_total as f64),
        mean_processing_ms: mean,
        p95_processing_ms: p95(&mut processing_times),
        api_budget: budget,
    }
}

/// The budget's use from the requests of the rolling minute and of the day.
pub fn budget_use((minute_used, day_used): (i64, i64), limits: BudgetLimits) -> ApiBudgetUse {
    ApiBudgetUse {
        minute_used,
        minute_limit: limits.per_minute,
        day_used,
        day_limit: limits.per_day,
    }
}

/// One bucket per minute from `since` to `now`, filled from `(minute, count)` and
/// `(minute, status, count, mean latency)` rows.
pub fn assemble_buckets(
    since: i64,
    now: i64,
    received: Vec<(i64, i64)>,
    finished: Vec<(i64, String, i64, Option<f64>)>,
) -> Vec<MinuteBucket> {
    let first = since.div_euclid(MINUTE_MS);
    let last = now.div_euclid(MINUTE_MS);
    let mut buckets: Vec<MinuteBucket> = (first..=last)
        .map(|minute| MinuteBucket {
            minute: minute * MINUTE_MS,
            ..MinuteBucket::default()
        })
        .collect();
    let mut latency: Vec<(f64, i64)> = vec![(0.0, 0); buckets.len()];
    let count = buckets.len();
    let index = move |minute: i64| usize::try_from(minute - first).ok().filter(|i| *i < count);
    for (minute, count) in received {
        if let Some(i) = index(minute) {
            buckets[i].received += count;
        }
    }
    for (minute, status, count, mean) in finished {
        let Some(i) = index(minute) else { continue };
        match status.as_str() {
            "success" => buckets[i].succeeded += count,
            "failed" => buckets[i].failed += count,
            _ => {}
        }
        if let Some(mean) = mean {
            latency[i].0 += mean * count as f64;
            latency[i].1 += count;
        }
    }
    for (bucket, (total, count)) in buckets.iter_mut().zip(latency) {
        bucket.mean_latency_ms = (count > 0).then(|| total / count as f64);
    }
    buckets
}

/// Every column of an event, for its detail view.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRecord {
    pub id: String,
    pub format: String,
    pub object_type: String,
    pub object_uuid: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub occurred_at: Option<i64>,
    pub changes: serde_json::Value,
    /// The delivery's body and headers (none if they are gone).
    pub raw_body: Option<Vec<u8>>,
    pub headers: Option<serde_json::Value>,
    pub verification: String,
    pub last_error: Option<String>,
    pub skip_reason: Option<String>,
    pub next_attempt_at: i64,
    pub received_at: i64,
    pub processed_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::EventStatus;

    #[test]
    fn no_filter_lists_everything_newest_first() {
        let built = event_page_query("acme", &EventQuery::default(), "id");
        assert_eq!(
            built.sql,
            "SELECT id FROM webhook_events WHERE account = $1 ORDER BY received_at DESC, id DESC LIMIT $2"
        );
        assert_eq!(built.binds, vec![BindValue::Text("acme".into()), BindValue::Int(51)]);
    }

    #[test]
    fn filters_combine_in_placeholder_order() {
        let query = EventQuery {
            status: Some(EventStatus::Failed),
            object_type: Some("job".into()),
            search: Some("AB_c".into()),
            cursor: Some(PageCursor::encode(5, "x")),
            limit: Some(10),
            ..EventQuery::default()
        };
        let built = event_page_query("acme", &query, "id");
        assert!(built
            .sql
            .contains("account = $1 AND status = $2 AND object_type = $3 AND (id = $4 OR LOWER(object_uuid) LIKE $5"));
        assert!(built
            .sql
            .contains("(received_at < $6 OR (received_at = $7 AND id < $8))"));
        assert!(built.sql.ends_with("LIMIT $9"));
        assert_eq!(built.binds[4], BindValue::Text("%ab\\_c%".into()));
        assert_eq!(built.binds[8], BindValue::Int(11));
    }

    #[test]
    fn buckets_cover_every_minute_and_weigh_latency_by_count() {
        let since = 10 * MINUTE_MS;
        let buckets = assemble_buckets(
            since,
            since + 2 * MINUTE_MS + 5,
            vec![(10, 3), (12, 1)],
            vec![
                (10, "success".into(), 2, Some(10.0)),
                (10, "failed".into(), 1, Some(40.0)),
                (99, "success".into(), 1, None),
            ],
        );
        assert_eq!(buckets.len(), 3);
        assert_eq!(
            (buckets[0].received, buckets[0].succeeded, buckets[0].failed),
            (3, 2, 1)
        );
        assert_eq!(buckets[0].mean_latency_ms, Some(20.0));
        assert_eq!(buckets[1].mean_latency_ms, None);
        assert_eq!(buckets[2].received, 1);
    }

    #[test]
    fn health_rates_count_only_finished_events() {
        let health = assemble_health(
            4,
            Some(1_000),
            vec![("success".into(), 3), ("failed".into(), 1)],
            vec![10, 30],
            ApiBudgetUse::default(),
            11_000,
        );
        assert_eq!(health.oldest_queued_seconds, Some(10));
        assert_eq!(health.success_rate, Some(0.75));
        assert_eq!(health.mean_processing_ms, Some(20.0));
        assert_eq!(
            assemble_health(0, None, vec![], vec![], ApiBudgetUse::default(), 0).success_rate,
            None
        );
    }

    #[test]
    fn the_95th_percentile_is_the_value_below_which_95_percent_fall() {
        let mut values: Vec<i64> = (1..=100).collect();
        assert_eq!(p95(&mut values), Some(95.0));
        assert_eq!(p95(&mut [7]), Some(7.0));
        assert_eq!(p95(&mut []), None);
    }
}
