//! `Analytics` written once for both engines, with `$n` binds. Rollups are the workers' bookkeeping: they skip
//! `synced` (a power loss can only take the watermark back with the rows it added).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use sqlx::{Connection, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::analytics::{
    Analytics, AnalyticsCount, BucketLatency, Dimension, LatencyMetric, Period, Rolled, RollupPass, Sketch, DAY_MS,
};
use super::engine::{Engine, RowsAffected};
use super::StoreError;

/// Failing objects kept per hour and window, the most failures first: the page shows the top few.
const FAILING_OBJECTS_PER_HOUR: usize = 20;

/// The source under which processing latency (measured from the events table) is stored.
const EVENTS_SOURCE: &str = "events";

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

const ADD_COUNT_SQL: &str =
    "INSERT INTO analytics_counts (account, period, bucket_start, dimension, key, outcome, count)
     VALUES ($1, 'hour', $2, $3, $4, $5, $6)
     ON CONFLICT (account, period, bucket_start, dimension, key, outcome)
     DO UPDATE SET count = analytics_counts.count + excluded.count";

const SKETCH_SQL: &str = "SELECT histogram FROM analytics_latency
     WHERE account = $1 AND period = $2 AND bucket_start = $3 AND metric = $4 AND source = $5";

const PUT_SKETCH_SQL: &str = "INSERT INTO analytics_latency (account, period, bucket_start, metric, source, histogram)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (account, period, bucket_start, metric, source) DO UPDATE SET histogram = excluded.histogram";

#[derive(FromRow)]
struct OutcomeRow {
    hour: i64,
    object_type: String,
    event_type: String,
    status: String,
    n: i64,
}

#[derive(FromRow)]
struct LatencyRow {
    hour: i64,
    millis: i64,
    n: i64,
}

#[derive(FromRow)]
struct KeyedRow {
    hour: i64,
    key: String,
    outcome: String,
    n: i64,
}

#[derive(FromRow)]
struct SketchRow {
    bucket_start: i64,
    metric: String,
    histogram: Vec<u8>,
}

/// What a window of finished work adds: counts per `(hour, dimension, key, outcome)` and processing sketches.
#[derive(Default)]
struct Window {
    counts: Vec<(i64, Dimension, String, String, i64)>,
    processing: BTreeMap<i64, Sketch>,
}

impl Window {
    fn hours(&self) -> impl Iterator<Item = i64> + '_ {
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

#[async_trait]
impl<E> Analytics for E
where
    E: Engine,
    for<'c> &'c mut <E::Db as Database>::Connection: Executor<'c, Database = E::Db>,
    for<'q> <E::Db as Database>::Arguments<'q>: IntoArguments<'q, E::Db>,
    for<'q> &'q str: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q String: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> i64: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> Vec<u8>: Encode<'q, E::Db> + Type<E::Db>,
    for<'r> Vec<u8>: Decode<'r, E::Db> + Type<E::Db>,
    for<'r> (Option<i64>,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (Vec<u8>,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> OutcomeRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> LatencyRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> KeyedRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> SketchRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> AnalyticsCount: FromRow<'r, <E::Db as Database>::Row>,
{
    async fn roll_up(&self, pass: &RollupPass<'_>) -> Result<Rolled, StoreError> {
        let account = pass.account;
        let mut watermark: Option<i64> =
            sqlx::query_as("SELECT rolled_until FROM analytics_watermarks WHERE account = $1")
                .bind(account)
                .fetch_optional(self.readers())
                .await?
                .map(|(rolled_until,): (i64,)| rolled_until);
        let mut from = match watermark {
            Some(rolled_until) => rolled_until,
            None => {
                let (oldest,): (Option<i64>,) = sqlx::query_as(
                    "SELECT MIN(processed_at) FROM webhook_events
                     WHERE account = $1 AND status IN ('success', 'failed', 'skipped')",
                )
                .bind(account)
                .fetch_one(self.readers())
                .await?;
                oldest.map_or(pass.until, |oldest| Period::Hour.start_of(oldest).min(pass.until))
            }
        };
        let mut tallies = pass.tallies;
        loop {
            // A day at a time, so that catching up after a long stop holds the writer briefly each time.
            let until = pass.until.min(from + DAY_MS).max(from);
            let window = read_window(self, account, from, until).await?;
            let mut writer = self.writer().await?;
            let mut transaction = writer.begin().await?;
            // The watermark moves first: a second pass over the same window (another node's) waits here for this
            // one's commit, then finds the watermark moved and adds nothing.
            let moved = match watermark {
                Some(rolled_until) => sqlx::query(
                    "UPDATE analytics_watermarks SET rolled_until = $3 WHERE account = $1 AND rolled_until = $2",
                )
                .bind(account)
                .bind(rolled_until)
                .bind(until)
                .execute(&mut *transaction)
                .await?
                .rows_affected(),
                None => sqlx::query(
                    "INSERT INTO analytics_watermarks (account, rolled_until) VALUES ($1, $2)
                     ON CONFLICT (account) DO NOTHING",
                )
                .bind(account)
                .bind(until)
                .execute(&mut *transaction)
                .await?
                .rows_affected(),
            } == 1;
            let mut days = BTreeSet::new();
            if moved {
                for (hour, dimension, key, outcome, count) in &window.counts {
                    add_count::<E::Db>(&mut *transaction, account, *hour, *dimension, key, outcome, *count).await?;
                }
                for (hour, sketch) in &window.processing {
                    merge_sketch::<E::Db>(
                        &mut *transaction,
                        account,
                        *hour,
                        LatencyMetric::Processing,
                        EVENTS_SOURCE,
                        sketch,
                    )
                    .await?;
                }
                days.extend(window.hours().map(|hour| Period::Day.start_of(hour)));
            }
            for tally in tallies {
                for (dimension, key, count) in &tally.counts {
                    add_count::<E::Db>(&mut *transaction, account, tally.hour, *dimension, key, "", *count).await?;
                }
                if tally.browser.samples() > 0 {
                    merge_sketch::<E::Db>(
                        &mut *transaction,
                        account,
                        tally.hour,
                        LatencyMetric::Browser,
                        pass.node,
                        &tally.browser,
                    )
                    .await?;
                }
                days.insert(Period::Day.start_of(tally.hour));
            }
            tallies = &[];
            for day in days {
                recompute_day::<E::Db>(&mut *transaction, account, day).await?;
            }
            transaction.commit().await?;
            if !moved {
                return Ok(Rolled::AlreadyRolled);
            }
            if until >= pass.until {
                return Ok(Rolled::Added { rolled_until: until });
            }
            watermark = Some(until);
            from = until;
        }
    }

    async fn analytics_counts(
        &self,
        account: &str,
        period: Period,
        from: i64,
        to: i64,
    ) -> Result<Vec<AnalyticsCount>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT bucket_start, dimension, key, outcome, count FROM analytics_counts
             WHERE account = $1 AND period = $2 AND bucket_start >= $3 AND bucket_start < $4
             ORDER BY bucket_start, dimension, key, outcome",
        )
        .bind(account)
        .bind(period.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(self.readers())
        .await?)
    }

    async fn analytics_latency(
        &self,
        account: &str,
        period: Period,
        from: i64,
        to: i64,
    ) -> Result<Vec<BucketLatency>, StoreError> {
        let rows: Vec<SketchRow> = sqlx::query_as(
            "SELECT bucket_start, metric, histogram FROM analytics_latency
             WHERE account = $1 AND period = $2 AND bucket_start >= $3 AND bucket_start < $4",
        )
        .bind(account)
        .bind(period.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(self.readers())
        .await?;
        let mut merged: BTreeMap<(i64, LatencyMetric), Sketch> = BTreeMap::new();
        for row in rows {
            let metric = LatencyMetric::parse(&row.metric)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown latency metric {:?}", row.metric)))?;
            merged
                .entry((row.bucket_start, metric))
                .or_default()
                .merge(&Sketch::from_bytes(&row.histogram)?);
        }
        Ok(merged
            .into_iter()
            .map(|((bucket_start, metric), sketch)| BucketLatency {
                bucket_start,
                metric,
                sketch,
            })
            .collect())
    }

    async fn delete_analytics_before(&self, cutoff: i64) -> Result<u64, StoreError> {
        let mut writer = self.writer().await?;
        let mut deleted = 0;
        for table in ["analytics_counts", "analytics_latency"] {
            deleted += sqlx::query(&format!("DELETE FROM {table} WHERE bucket_start < $1"))
                .bind(cutoff)
                .execute(&mut *writer)
                .await?
                .rows_affected();
        }
        self.synced(writer).await?;
        Ok(deleted)
    }
}

/// What the account finished in `[from, to)`, read before the transaction that adds it.
async fn read_window<E>(engine: &E, account: &str, from: i64, to: i64) -> Result<Window, StoreError>
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

async fn add_count<DB>(
    connection: &mut DB::Connection,
    account: &str,
    hour: i64,
    dimension: Dimension,
    key: &str,
    outcome: &str,
    count: i64,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(ADD_COUNT_SQL)
        .bind(account)
        .bind(hour)
        .bind(dimension.as_str())
        .bind(key)
        .bind(outcome)
        .bind(count)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Merges `sketch` into the hour's row of `metric` from `source` (only this pass writes it: the watermark or
/// the node id keeps others out).
async fn merge_sketch<DB>(
    connection: &mut DB::Connection,
    account: &str,
    hour: i64,
    metric: LatencyMetric,
    source: &str,
    sketch: &Sketch,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'r> (Vec<u8>,): FromRow<'r, <DB as Database>::Row>,
{
    let stored: Option<(Vec<u8>,)> = sqlx::query_as(SKETCH_SQL)
        .bind(account)
        .bind(Period::Hour.as_str())
        .bind(hour)
        .bind(metric.as_str())
        .bind(source)
        .fetch_optional(&mut *connection)
        .await?;
    let mut merged = match stored {
        Some((bytes,)) => Sketch::from_bytes(&bytes)?,
        None => Sketch::default(),
    };
    merged.merge(sketch);
    put_sketch::<DB>(connection, account, Period::Hour, hour, metric, source, &merged).await
}

async fn put_sketch<DB>(
    connection: &mut DB::Connection,
    account: &str,
    period: Period,
    bucket_start: i64,
    metric: LatencyMetric,
    source: &str,
    sketch: &Sketch,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(PUT_SKETCH_SQL)
        .bind(account)
        .bind(period.as_str())
        .bind(bucket_start)
        .bind(metric.as_str())
        .bind(source)
        .bind(sketch.to_bytes())
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Replaces the day's rows with the sums and merged sketches of its hours.
async fn recompute_day<DB>(connection: &mut DB::Connection, account: &str, day: i64) -> Result<(), StoreError>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'r> SketchRow: FromRow<'r, <DB as Database>::Row>,
{
    for table in ["analytics_counts", "analytics_latency"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE account = $1 AND period = 'day' AND bucket_start = $2"
        ))
        .bind(account)
        .bind(day)
        .execute(&mut *connection)
        .await?;
    }
    sqlx::query(
        "INSERT INTO analytics_counts (account, period, bucket_start, dimension, key, outcome, count)
         SELECT account, 'day', $2, dimension, key, outcome, SUM(count) FROM analytics_counts
         WHERE account = $1 AND period = 'hour' AND bucket_start >= $2 AND bucket_start < $3
         GROUP BY account, dimension, key, outcome
         ON CONFLICT (account, period, bucket_start, dimension, key, outcome) DO UPDATE SET count = excluded.count",
    )
    .bind(account)
    .bind(day)
    .bind(day + DAY_MS)
    .execute(&mut *connection)
    .await?;
    let hours: Vec<SketchRow> = sqlx::query_as(
        "SELECT bucket_start, metric, histogram FROM analytics_latency
         WHERE account = $1 AND period = 'hour' AND bucket_start >= $2 AND bucket_start < $3",
    )
    .bind(account)
    .bind(day)
    .bind(day + DAY_MS)
    .fetch_all(&mut *connection)
    .await?;
    let mut merged: BTreeMap<LatencyMetric, Sketch> = BTreeMap::new();
    for hour in hours {
        let metric = LatencyMetric::parse(&hour.metric)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown latency metric {:?}", hour.metric)))?;
        merged
            .entry(metric)
            .or_default()
            .merge(&Sketch::from_bytes(&hour.histogram)?);
    }
    for (metric, sketch) in merged {
        put_sketch::<DB>(&mut *connection, account, Period::Day, day, metric, "", &sketch).await?;
    }
    Ok(())
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
