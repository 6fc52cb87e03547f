//! The scale-out bus: several `serve` processes on one PostgreSQL database each deliver every broadcast to their
//! own subscribers.
//!
//! `realtime_outbox` is the record (retained rows numbered per topic through `realtime_topic_offsets`); a
//! `NOTIFY realtime_outbox` carrying the new row ids, one per transaction of up to `MAX_BATCH` rows, is the
//! wake-up. NOTIFY serialises commits on a cluster-wide lock, so batching is what keeps it off the hot path.
//! Each node LISTENs, reads the notified rows and hands them to its hub. After a lost connection the listener
//! reconnects and reads the rows it may have missed (id above the last it saw): a broadcast may then arrive twice,
//! and sessions drop retained ones they already delivered by offset.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio_util::sync::CancellationToken;

use super::bus::{Broadcast, Bus, BusError, Publication};
use super::hub::{ConnectionId, Hub};
use super::outbox::{plan_replay, Replay, Retention};
use super::pg_delivery::{Deliverer, OutboxRow, OUTBOX_COLUMNS};
use super::pg_presence::SharedPresence;
use super::protocol::BroadcastPayload;
use crate::store::now_millis;

/// The NOTIFY channel.
pub(super) const CHANNEL: &str = "realtime_outbox";
/// Rows per transaction and NOTIFY; their ids stay well under NOTIFY's 8000-byte payload limit.
const MAX_BATCH: usize = 256;

#[derive(Clone)]
pub struct PostgresBus {
    pool: PgPool,
    retention: Retention,
    presence: SharedPresence,
}

impl PostgresBus {
    /// Connects, LISTENs, and spawns the task that hands notified rows to `hub` until `stop` is cancelled.
    /// Also keeps this node's presence entries alive (`pg_presence`). The migrations (`0003_realtime_outbox.sql`,
    /// `0010_realtime_presence.sql`) are the store's to run.
    pub async fn connect(
        url: &str,
        hub: Arc<Hub>,
        retention: Retention,
        stop: CancellationToken,
    ) -> Result<PostgresBus, BusError> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let last_seen: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM realtime_outbox")
            .fetch_one(&pool)
            .await?;
        let deliverer = Deliverer::new(pool.clone(), hub, retention, last_seen);
        tokio::spawn(deliverer.run(listener, stop.clone()));
        let bus = PostgresBus {
            presence: SharedPresence::new(pool.clone()),
            pool,
            retention,
        };
        let publisher = bus.clone();
        let publish = move |leaves| {
            let publisher = publisher.clone();
            async move { publisher.publish(leaves).await }
        };
        tokio::spawn(bus.presence.clone().run(publish, stop));
        Ok(bus)
    }
}

#[async_trait]
impl Bus for PostgresBus {
    async fn publish(&self, publications: Vec<Publication>) -> Result<(), BusError> {
        for batch in publications.chunks(MAX_BATCH) {
            self.publish_batch(batch).await?;
        }
        Ok(())
    }

    async fn replay(&self, topic: &str, after: i64) -> Result<Replay, BusError> {
        let latest: Option<i64> = sqlx::query_scalar("SELECT last FROM realtime_topic_offsets WHERE topic = $1")
            .bind(topic)
            .fetch_optional(&self.pool)
            .await?;
        let latest = latest.unwrap_or(0);
        if after >= latest {
            return Ok(plan_replay(after, latest, Vec::new(), &self.retention));
        }
        let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM realtime_outbox
             WHERE topic = $1 AND topic_offset > $2 AND topic_offset <= $3 AND created_at >= $4
             ORDER BY topic_offset LIMIT $5"
        ))
        .bind(topic)
        .bind(after)
        .bind(latest)
        .bind(self.retention.cutoff(now_millis()))
        .bind(self.retention.max_messages as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let retained_after = rows.into_iter().map(OutboxRow::into_broadcast).collect();
        Ok(plan_replay(after, latest, retained_after, &self.retention))
    }

    async fn replay_since(&self, topic: &str, since: i64, limit: usize) -> Result<Vec<Broadcast>, BusError> {
        let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM realtime_outbox
             WHERE topic = $1 AND topic_offset IS NOT NULL AND created_at >= $2
             ORDER BY topic_offset DESC LIMIT $3"
        ))
        .bind(topic)
        .bind(since.max(self.retention.cutoff(now_millis())))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().rev().map(OutboxRow::into_broadcast).collect())
    }

    async fn track(
        &self,
        topic: &str,
        connection: ConnectionId,
        key: &str,
        meta: Map<String, Value>,
    ) -> Result<(), BusError> {
        let diff = self.presence.track(topic, connection, key, meta).await?;
        self.publish(vec![diff]).await
    }

    async fn untrack(&self, topic: &str, connection: ConnectionId) -> Result<(), BusError> {
        match self.presence.untrack(topic, connection).await? {
            Some(diff) => self.publish(vec![diff]).await,
            None => Ok(()),
        }
    }

    async fn presence_state(&self, topic: &str) -> Result<Value, BusError> {
        self.presence.state(topic).await
    }
}

impl PostgresBus {
    async fn publish_batch(&self, batch: &[Publication]) -> Result<(), BusError> {
        let mut tx = self.pool.begin().await?;
        let mut next_offsets = allocate_offsets(&mut tx, batch).await?;
        let now = now_millis();
        let mut ids = Vec::with_capacity(batch.len());
        for publication in batch {
            let broadcast = match publication {
                Publication::Retained(broadcast) => {
                    let mut broadcast = broadcast.clone();
                    let next = next_offsets
                        .get_mut(&broadcast.topic)
                        .expect("an offset was allocated for each topic");
                    broadcast.set_offset(*next);
                    *next += 1;
                    broadcast
                }
                Publication::Ephemeral(broadcast) => broadcast.clone(),
            };
            let (payload, payload_raw) = match broadcast.payload {
                BroadcastPayload::Json(value) => (Some(value), None),
                BroadcastPayload::Raw(bytes) => (None, Some(bytes)),
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO realtime_outbox
                     (topic, event, payload, payload_raw, topic_offset, sender, binary_origin, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(&broadcast.topic)
            .bind(&broadcast.event)
            .bind(payload)
            .bind(payload_raw)
            .bind(broadcast.offset)
            .bind(broadcast.sender.map(|sender| sender.to_string()))
            .bind(broadcast.binary)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            ids.push(id.to_string());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(ids.join(","))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Reserves the offsets the batch's retained broadcasts need, returning each topic's first.
async fn allocate_offsets(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    batch: &[Publication],
) -> Result<BTreeMap<String, i64>, BusError> {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for publication in batch {
        if let Publication::Retained(broadcast) = publication {
            *counts.entry(broadcast.topic.clone()).or_default() += 1;
        }
    }
    // Topics are locked in sorted order (BTreeMap), so concurrent publishers on other nodes cannot deadlock.
    let mut first = BTreeMap::new();
    for (topic, count) in counts {
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO realtime_topic_offsets (topic, last) VALUES ($1, $2)
             ON CONFLICT (topic) DO UPDATE SET last = realtime_topic_offsets.last + EXCLUDED.last
             RETURNING last",
        )
        .bind(&topic)
        .bind(count)
        .fetch_one(&mut **tx)
        .await?;
        first.insert(topic, last - count + 1);
    }
    Ok(first)
}
