//! Analytics rollups (`Analytics`) on both engines: finished work rolled up by hour and day once, surviving the
//! events' retention, sketches that merge across buckets, node tallies, the rollups' own retention, and the
//! account's digest setting.

use std::sync::Arc;

use server::store::analytics::{
    AnalyticsCount, Cadence, DigestRow, Dimension, HourTally, LatencyMetric, Period, Rolled, RollupPass, Sketch,
    DAY_MS, HOUR_MS,
};
use server::store::{now_millis, AttemptTiming, Completion, Store};

use super::event;
use crate::common::{claim, ACCOUNT};

/// Stores one event of its own object received at `received_at`, and finishes it `latency` ms later.
async fn finish_one(store: &dyn Store, key: &str, received_at: i64, latency: i64, completion: &Completion) {
    store.insert_events(&[event(key, key, received_at)]).await.unwrap();
    let claimed = claim(store, received_at, received_at + 60_000, 1).await;
    assert_eq!(claimed.len(), 1, "{key} claimed");
    let timing = AttemptTiming {
        started_at: received_at,
        finished_at: received_at + latency,
        http_status: None,
    };
    assert_eq!(store.finish_events(&claimed, completion, &timing).await.unwrap(), 1);
}

async fn roll(store: &dyn Store, until: i64, node: &str, tallies: &[HourTally]) -> Rolled {
    store
        .roll_up(&RollupPass {
            account: ACCOUNT,
            until,
            node,
            tallies,
        })
        .await
        .unwrap()
}

/// `(bucket_start, dimension, key, outcome, count)` of the account's rows of `period` in `[from, to)`.
async fn counts(store: &dyn Store, period: Period, from: i64, to: i64) -> Vec<(i64, String, String, String, i64)> {
    store
        .analytics_counts(ACCOUNT, period, from, to)
        .await
        .unwrap()
        .into_iter()
        .map(
            |AnalyticsCount {
                 bucket_start,
                 dimension,
                 key,
                 outcome,
                 count,
             }| { (bucket_start, dimension, key, outcome, count) },
        )
        .collect()
}

fn row(
    bucket_start: i64,
    dimension: Dimension,
    key: &str,
    outcome: &str,
    count: i64,
) -> (i64, String, String, String, i64) {
    (
        bucket_start,
        dimension.as_str().into(),
        key.into(),
        outcome.into(),
        count,
    )
}

/// A day three days back, so that every hour of it is over.
fn past_day() -> i64 {
    Period::Day.start_of(now_millis()) - 3 * DAY_MS
}

pub(super) async fn finished_events_are_rolled_up_by_hour_and_day_once_and_outlive_their_deletion(
    store: Arc<dyn Store>,
) {
    let day = past_day();
    let hour = day + HOUR_MS;
    finish_one(store.as_ref(), "a", hour + 10, 100, &Completion::Success).await;
    finish_one(store.as_ref(), "b", hour + 20, 300, &Completion::Success).await;
    let timeout = Completion::Failed("ServiceM8 did not answer in time".into());
    finish_one(store.as_ref(), "c", hour + 30, 200, &timeout).await;

    let now = now_millis();
    assert_eq!(
        roll(store.as_ref(), now, "node-a", &[]).await,
        Rolled::Added { rolled_until: now }
    );
    let hourly = counts(store.as_ref(), Period::Hour, day, day + DAY_MS).await;
    let expected = |bucket: i64| {
        vec![
            row(bucket, Dimension::ErrorClass, "timeout", "", 1),
            row(bucket, Dimension::EventType, "updated", "failed", 1),
            row(bucket, Dimension::EventType, "updated", "success", 2),
            row(bucket, Dimension::FailingObject, "job:c", "", 1),
            row(bucket, Dimension::ObjectType, "job", "failed", 1),
            row(bucket, Dimension::ObjectType, "job", "success", 2),
        ]
    };
    assert_eq!(hourly, expected(hour));
    assert_eq!(
        counts(store.as_ref(), Period::Day, day, day + DAY_MS).await,
        expected(day)
    );
    let latency = store
        .analytics_latency(ACCOUNT, Period::Day, day, day + DAY_MS)
        .await
        .unwrap();
    assert_eq!(latency.len(), 1);
    assert_eq!(
        (latency[0].metric, latency[0].sketch.samples()),
        (LatencyMetric::Processing, 3)
    );
    assert_eq!(latency[0].sketch.quantile(0.5), Some(200));

    let later = now_millis();
    roll(store.as_ref(), later, "node-b", &[]).await;
    assert_eq!(
        counts(store.as_ref(), Period::Day, day, day + DAY_MS).await,
        expected(day),
        "a second pass adds nothing already rolled up"
    );

    assert_eq!(store.delete_finished_events_before(ACCOUNT, later).await.unwrap(), 3);
    roll(store.as_ref(), now_millis(), "node-a", &[]).await;
    assert_eq!(
        counts(store.as_ref(), Period::Hour, day, day + DAY_MS).await,
        expected(hour)
    );
    assert_eq!(
        counts(store.as_ref(), Period::Day, day, day + DAY_MS).await,
        expected(day)
    );
    let latency = store
        .analytics_latency(ACCOUNT, Period::Hour, day, day + DAY_MS)
        .await
        .unwrap();
    assert_eq!(latency[0].sketch.samples(), 3, "the sketch outlives its events");
}

pub(super) async fn seven_daily_sketches_merge_into_the_percentiles_of_every_sample(store: Arc<dyn Store>) {
    let first = past_day() - 4 * DAY_MS;
    let mut all = Sketch::default();
    for day in 0..7 {
        for n in 0..30_i64 {
            // Spread unevenly, each day its own shape, from milliseconds to minutes.
            let latency = 1 + (day * 7_919 + n * n * n * 13) % 180_000;
            let received_at = first + day * DAY_MS + 2 * HOUR_MS + n * 1_000;
            finish_one(
                store.as_ref(),
                &format!("d{day}-{n}"),
                received_at,
                latency,
                &Completion::Success,
            )
            .await;
            all.record(latency, 1);
        }
    }
    roll(store.as_ref(), now_millis(), "node-a", &[]).await;

    let daily = store
        .analytics_latency(ACCOUNT, Period::Day, first, first + 7 * DAY_MS)
        .await
        .unwrap();
    assert_eq!(daily.len(), 7);
    let mut merged = Sketch::default();
    for bucket in &daily {
        assert_eq!(bucket.sketch.samples(), 30);
        merged.merge(&bucket.sketch);
    }
    assert_eq!(merged.samples(), 210);
    for quantile in [0.5, 0.95, 0.99] {
        assert_eq!(
            merged.quantile(quantile),
            all.quantile(quantile),
            "p{}",
            quantile * 100.0
        );
    }
    assert_ne!(
        merged.quantile(0.5),
        daily[0].sketch.quantile(0.5),
        "the week's median is not one day's"
    );
}

fn tally(hour: i64, duplicates: i64, browser_ms: &[i64]) -> HourTally {
    let mut browser = Sketch::default();
    for millis in browser_ms {
        browser.record(*millis, 1);
    }
    HourTally {
        hour,
        counts: vec![
            (Dimension::Duplicates, String::new(), duplicates),
            (Dimension::Refused, "unauthorized".into(), 1),
        ],
        browser,
    }
}

pub(super) async fn what_nodes_count_in_memory_adds_to_its_hour_from_every_node(store: Arc<dyn Store>) {
    let day = past_day();
    let hour = day + 5 * HOUR_MS;
    let now = now_millis();
    roll(store.as_ref(), now, "node-a", &[tally(hour, 2, &[100, 200])]).await;
    assert_eq!(
        roll(store.as_ref(), now, "node-b", &[tally(hour, 3, &[300])]).await,
        Rolled::Added { rolled_until: now },
    );
    roll(store.as_ref(), now, "node-a", &[tally(hour, 1, &[400])]).await;

    let expected = |bucket: i64| {
        vec![
            row(bucket, Dimension::Duplicates, "", "", 6),
            row(bucket, Dimension::Refused, "unauthorized", "", 3),
        ]
    };
    assert_eq!(
        counts(store.as_ref(), Period::Hour, day, day + DAY_MS).await,
        expected(hour)
    );
    assert_eq!(
        counts(store.as_ref(), Period::Day, day, day + DAY_MS).await,
        expected(day)
    );
    for period in [Period::Hour, Period::Day] {
        let latency = store
            .analytics_latency(ACCOUNT, period, day, day + DAY_MS)
            .await
            .unwrap();
        assert_eq!(
            latency.len(),
            1,
            "{period:?}: both nodes' sketches merged into one bucket"
        );
        assert_eq!(
            (latency[0].metric, latency[0].sketch.samples()),
            (LatencyMetric::Browser, 4)
        );
        assert_eq!(latency[0].sketch.quantile(1.0), Some(400));
    }
}

pub(super) async fn two_passes_at_once_add_a_window_once(store: Arc<dyn Store>) {
    let day = past_day();
    for n in 0..20 {
        finish_one(
            store.as_ref(),
            &format!("e{n}"),
            day + HOUR_MS + n,
            50,
            &Completion::Success,
        )
        .await;
    }
    let now = now_millis();
    let (first, second) = tokio::join!(
        roll(store.as_ref(), now, "node-a", &[]),
        roll(store.as_ref(), now, "node-b", &[])
    );
    let mut outcomes = [first, second];
    outcomes.sort_by_key(|rolled| matches!(rolled, Rolled::Added { .. }));
    assert_eq!(outcomes, [Rolled::AlreadyRolled, Rolled::Added { rolled_until: now }]);
    let day_rows = counts(store.as_ref(), Period::Day, day, day + DAY_MS).await;
    assert!(
        day_rows.contains(&row(day, Dimension::ObjectType, "job", "success", 20)),
        "{day_rows:?}"
    );
}

pub(super) async fn rollups_of_buckets_before_the_cutoff_are_deleted(store: Arc<dyn Store>) {
    let day = past_day();
    let now = now_millis();
    roll(
        store.as_ref(),
        now,
        "node-a",
        &[tally(day - DAY_MS, 1, &[5]), tally(day, 2, &[6])],
    )
    .await;
    assert!(store.delete_analytics_before(day).await.unwrap() >= 4);
    let left = counts(store.as_ref(), Period::Hour, 0, now).await;
    assert_eq!(left.iter().map(|row| row.0).min(), Some(day));
    assert_eq!(counts(store.as_ref(), Period::Day, 0, now).await.len(), 2);
    let latency = store.analytics_latency(ACCOUNT, Period::Hour, 0, now).await.unwrap();
    assert_eq!(latency.len(), 1);
}

pub(super) async fn an_accounts_digest_is_set_replaced_and_removed(store: Arc<dyn Store>) {
    assert_eq!(store.analytics_digest(ACCOUNT).await.unwrap(), None);
    store
        .set_analytics_digest(ACCOUNT, Some(("dest-1", Cadence::Daily)), 10)
        .await
        .unwrap();
    store
        .set_analytics_digest(ACCOUNT, Some(("dest-2", Cadence::Weekly)), 20)
        .await
        .unwrap();
    store
        .set_analytics_digest("another", Some(("dest-3", Cadence::Daily)), 30)
        .await
        .unwrap();
    assert_eq!(
        store.analytics_digest(ACCOUNT).await.unwrap(),
        Some(DigestRow {
            account: ACCOUNT.into(),
            destination_id: "dest-2".into(),
            cadence: Cadence::Weekly,
            updated_at: 20,
        })
    );
    store.set_analytics_digest(ACCOUNT, None, 40).await.unwrap();
    assert_eq!(store.analytics_digest(ACCOUNT).await.unwrap(), None);
    assert!(store.analytics_digest("another").await.unwrap().is_some());
}
