//! `Analytics` written once for both engines, with `$n` binds. Rollups are the workers' bookkeeping: they skip
//! `synced` (a power loss can only take the watermark back with the rows it added).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use sqlx::{Connection, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::analytics::{
    Analytics, AnalyticsCount, BucketLatency, Cadence, DigestRow, Dimension, LatencyMetric, Period, Rolled, RollupPass,
    Sketch, DAY_MS,
};
use super::analytics_window::{read_window, KeyedRow, LatencyRow, OutcomeRow};
use super::engine::{Engine, RowsAffected};
use super::StoreError;

/// The source under which processing latency (measured from the events table) is stored.
const EVENTS_SOURCE: &str = "events";

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
struct SketchRow {
    bucket_start: i64,
    metric: String,
    histogram: Vec<u8>,
}

/// What a window of finished work adds: counts per `(hour, dimension, key, outcome)` and processing sketches.
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
    for<'r> DigestRow: FromRow<'r, <E::Db as Database>::Row>,
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
            let mut transaction = writer.begin_with(Self::BEGIN_WRITE).await?;
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
            let metric = LatencyMetric::try_from(row.metric)?;
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

    async fn analytics_digest(&self, account: &str) -> Result<Option<DigestRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT account, destination_id, cadence, updated_at FROM analytics_digests WHERE account = $1",
        )
        .bind(account)
        .fetch_optional(self.readers())
        .await?)
    }

    async fn set_analytics_digest(
        &self,
        account: &str,
        digest: Option<(&str, Cadence)>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        match digest {
            Some((destination_id, cadence)) => sqlx::query(
                "INSERT INTO analytics_digests (account, destination_id, cadence, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account) DO UPDATE SET destination_id = excluded.destination_id,
                     cadence = excluded.cadence, updated_at = excluded.updated_at",
            )
            .bind(account)
            .bind(destination_id)
            .bind(cadence.as_str())
            .bind(now),
            None => sqlx::query("DELETE FROM analytics_digests WHERE account = $1").bind(account),
        }
        .execute(&mut *writer)
        .await?;
        self.synced(writer).await?;
        Ok(())
    }
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
        let metric = LatencyMetric::try_from(hour.metric)?;
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
