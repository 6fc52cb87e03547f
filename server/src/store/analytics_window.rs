//! What one rollup window adds, read from the tables the pipeline writes: finished events by object type, event
//! type and outcome, their processing latency, the objects that failed for good, failed attempts by error class,
//! and finished deliveries by destination. Read outside the transaction that adds it (`analytics_sql.rs`).

use std::collections::{BTreeMap, HashMap};

use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::analytics::{Dimension, Sketch};
use super::engine::Engine;
use super::StoreError;

/// Failing objects kept per hour and window, the most failures first: the page shows the top few.
const FAILING_OBJECTS_PER_HOUR: usize = 20;

/// The hour an SQL timestamp column falls in.
macro_rules! hour_of {
    ($column:literal) => {
        concat!($column, " - ", $column, " % 3600000")
    };
}

const OUTCOMES_SQL: &str = concat!(
    "SELECT ",
    hour_of!("processed_at"),
    " AS hour, object_type, event_type, status, COUNT(*) AS n FROM webhook_events
     WHERE account = $1 AND processed_at >= $2 AND processed_at < $3 AND status IN ('success', 'failed', 'skipped')
     GROUP BY 1, 2, 3, 4"
);

const LATENCY_SQL: &str = concat!(
    "SELECT ",
    hour_of!("processed_at"),
    " AS hour, processed_at - received_at AS millis, COUNT(*) AS n FROM webhook_events
     WHERE account = $1 AND processed_at >= $2 AND processed_at < $3 AND status IN ('success', 'failed', 'skipped')
     GROUP BY 1, 2"
);

const FAILING_SQL: &str = concat!(
    "SELECT ",
    hour_of!("processed_at"),
    " AS hour, object_type || ':' || object_uuid AS key, '' AS outcome, COUNT(*) AS n FROM webhook_events
     WHERE account = $1 AND processed_at >= $2 AND processed_at < $3 AND status = 'failed'
     GROUP BY 1, 2"
);

/// Failed attempts by class, read from what the processor stored (`ApiCallError`'s messages).
const ERROR_CLASSES_SQL: &str = concat!(
    "SELECT ",
    hour_of!("a.finished_at"),
    " AS hour,
         CASE WHEN a.http_status IS NOT NULL THEN 'http_' || CAST(a.http_status AS TEXT)
              WHEN a.error LIKE '%did not answer in time%' THEN 'timeout'
              WHEN a.error LIKE '%could not reach%' THEN 'network'
              WHEN a.error LIKE '%unexpected answer%' THEN 'parse'
              ELSE 'other' END AS key,
         '' AS outcome, COUNT(*) AS n
     FROM event_attempts a JOIN webhook_events e ON e.id = a.event_id
     WHERE e.account = $1 AND a.finished_at >= $2 AND a.finished_at < $3 AND a.outcome IN ('retry', 'failed')
     GROUP BY 1, 2"
);

const DELIVERIES_SQL: &str = concat!(
    "SELECT ",
    hour_of!("d.finished_at"),
    " AS hour, COALESCE(t.name, d.destination_id) AS key, d.status AS outcome, COUNT(*) AS n
     FROM deliveries d LEFT JOIN destinations t ON t.id = d.destination_id
     WHERE d.account = $1 AND d.finished_at >= $2 AND d.finished_at < $3 AND d.status IN ('delivered', 'failed')
     GROUP BY 1, 2, 3"
);

#[derive(FromRow)]
pub(super) struct OutcomeRow {
    hour: i64,
    object_type: String,
    event_type: String,
    status: String,
    n: i64,
}

#[derive(FromRow)]
pub(super) struct LatencyRow {
    hour: i64,
    millis: i64,
    n: i64,
}

#[derive(FromRow)]
pub(super) struct KeyedRow {
    hour: i64,
    key: String,
    outcome: String,
    n: i64,
}

#[derive(Default)]
pub(super) struct Window {
    pub(super) counts: Vec<(i64, Dimension, String, String, i64)>,
    pub(super) processing: BTreeMap<i64, Sketch>,
}

impl Window {
    pub(super) fn hours(&self) -> impl Iterator<Item = i64> + '_ {
        self.counts
            .iter()
            .map(|(hour, ..)| *hour)
            .chain(self.processing.keys().copied())
    }
}

/// Keeps the `FAILING_OBJECTS_PER_HOUR` objects of each hour that failed most.
fn top_failing(mut rows: Vec<KeyedRow>) -> Vec<KeyedRow> {
    rows.sort_by(|a, b| (a.hour, b.n, &a.key).cmp(&(b.hour, a.n, &b.key)));
    let mut per_hour: HashMap<i64, usize> = HashMap::new();
    rows.retain(|row| {
        let kept = per_hour.entry(row.hour).or_default();
        *kept += 1;
        *kept <= FAILING_OBJECTS_PER_HOUR
    });
    rows
}

/// What the account finished in `[from, to)`, read before the transaction that adds it.
pub(super) async fn read_window<E>(engine: &E, account: &str, from: i64, to: i64) -> Result<Window, StoreError>
where
    E: Engine,
    for<'c> &'c mut <E::Db as Database>::Connection: Executor<'c, Database = E::Db>,
    for<'q> <E::Db as Database>::Arguments<'q>: IntoArguments<'q, E::Db>,
    for<'q> &'q str: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> i64: Encode<'q, E::Db> + Type<E::Db>,
    for<'r> OutcomeRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> LatencyRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> KeyedRow: FromRow<'r, <E::Db as Database>::Row>,
{
    let mut window = Window::default();
    if from >= to {
        return Ok(window);
    }
    let outcomes: Vec<OutcomeRow> = sqlx::query_as(OUTCOMES_SQL)
        .bind(account)
        .bind(from)
        .bind(to)
        .fetch_all(engine.readers())
        .await?;
    let mut by_type: BTreeMap<(i64, Dimension, String, String), i64> = BTreeMap::new();
    for row in outcomes {
        *by_type
            .entry((row.hour, Dimension::ObjectType, row.object_type, row.status.clone()))
            .or_default() += row.n;
        *by_type
            .entry((row.hour, Dimension::EventType, row.event_type, row.status))
            .or_default() += row.n;
    }
    window.counts.extend(
        by_type
            .into_iter()
            .map(|((hour, dimension, key, outcome), n)| (hour, dimension, key, outcome, n)),
    );
    let latencies: Vec<LatencyRow> = sqlx::query_as(LATENCY_SQL)
        .bind(account)
        .bind(from)
        .bind(to)
        .fetch_all(engine.readers())
        .await?;
    for row in latencies {
        window
            .processing
            .entry(row.hour)
            .or_default()
            .record(row.millis, row.n.max(0) as u64);
    }
    for (sql, dimension) in [
        (FAILING_SQL, Dimension::FailingObject),
        (ERROR_CLASSES_SQL, Dimension::ErrorClass),
        (DELIVERIES_SQL, Dimension::Destination),
    ] {
        let rows: Vec<KeyedRow> = sqlx::query_as(sql)
            .bind(account)
            .bind(from)
            .bind(to)
            .fetch_all(engine.readers())
            .await?;
        let rows = if dimension == Dimension::FailingObject {
            top_failing(rows)
        } else {
            rows
        };
        window.counts.extend(
            rows.into_iter()
                .map(|row| (row.hour, dimension, row.key, row.outcome, row.n)),
        );
    }
    Ok(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_objects_that_failed_most_are_kept_per_hour() {
        let rows = (0..30)
            .map(|n| KeyedRow {
                hour: (n % 2) * 3_600_000,
                key: format!("job:{n}"),
                outcome: String::new(),
                n,
            })
            .collect();
        let kept = top_failing(rows);
        assert_eq!(kept.len(), 30, "fifteen an hour is under the cap");
        let many = (0..50)
            .map(|n| KeyedRow {
                hour: 0,
                key: format!("job:{n}"),
                outcome: String::new(),
                n,
            })
            .collect();
        let kept = top_failing(many);
        assert_eq!(kept.len(), FAILING_OBJECTS_PER_HOUR);
        assert_eq!(kept[0].key, "job:49");
    }
}
