//! Delivery on a node of the scale-out bus: every row of `realtime_outbox`, read in id order from the last one
//! delivered, handed to this node's hub. A NOTIFY only wakes the reader; what it reads is decided by position, so
//! a node that falls behind (a burst, a slow hub, a lost connection) reads what it has not yet delivered rather
//! than losing it.
//!
//! Row ids come from a sequence as rows are inserted, but transactions commit in any order: a row with a lower id
//! can become visible after a higher one was read. The ids skipped so are remembered as gaps and looked for again
//! for `GAP_PATIENCE`; one still missing by then belonged to a transaction that rolled back. Per topic the order
//! holds regardless: publishers lock a topic's offset row before inserting its rows, so one topic's rows commit
//! in id order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgListener, PgPool};
use tokio_util::sync::CancellationToken;

use super::bus::Broadcast;
use super::hub::Hub;
use super::outbox::Retention;
use super::protocol::BroadcastPayload;
use crate::store::now_millis;

pub(super) const OUTBOX_COLUMNS: &str = "id, topic, event, payload, payload_raw, topic_offset, sender, binary_origin";
/// Ephemeral rows are only needed until every node has read them.
const EPHEMERAL_ROW_MILLIS: i64 = 60_000;
const CLEANUP_INTERVAL: Duration = Duration::from_secs(60);
/// Rows read per query.
const PAGE: i64 = 1_000;
/// How long a skipped id is looked for again.
const GAP_PATIENCE: Duration = Duration::from_secs(10);
/// Gaps remembered at most; the oldest are forgotten first.
const MAX_GAPS: usize = 10_000;
/// How often gaps are looked for when no NOTIFY arrives.
const GAP_INTERVAL: Duration = Duration::from_millis(250);

/// The listening side: reads the outbox by position and hands its rows to this node's hub.
pub(super) struct Deliverer {
    pool: PgPool,
    hub: Arc<Hub>,
    retention: Retention,
    /// The highest row id delivered.
    last_seen: i64,
    /// Ids below `last_seen` not delivered yet, and since when they are missed.
    gaps: BTreeMap<i64, Instant>,
}

impl Deliverer {
    /// A deliverer that starts after row `last_seen`.
    pub(super) fn new(pool: PgPool, hub: Arc<Hub>, retention: Retention, last_seen: i64) -> Deliverer {
        Deliverer {
            pool,
            hub,
            retention,
            last_seen,
            gaps: BTreeMap::new(),
        }
    }

    pub(super) async fn run(mut self, mut listener: PgListener, stop: CancellationToken) {
        let mut cleanup = tokio::time::interval(CLEANUP_INTERVAL);
        let mut gap_check = tokio::time::interval(GAP_INTERVAL);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = cleanup.tick() => self.remove_expired_rows().await,
                _ = gap_check.tick(), if !self.gaps.is_empty() => self.deliver_gaps().await,
                received = listener.try_recv() => match received {
                    Ok(Some(_)) => self.deliver_new().await,
                    // The listener has reconnected and listens again; rows committed meanwhile were not notified.
                    Ok(None) => {
                        tracing::warn!("realtime listener lost its connection; catching up");
                        self.deliver_new().await;
                    }
                    Err(error) => {
                        tracing::error!(%error, "realtime listener failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
            }
        }
    }

    /// Delivers every row after `last_seen`, noting the ids skipped on the way as gaps.
    async fn deliver_new(&mut self) {
        self.deliver_gaps().await;
        loop {
            let query = format!("SELECT {OUTBOX_COLUMNS} FROM realtime_outbox WHERE id > $1 ORDER BY id LIMIT $2");
            let rows = match sqlx::query_as::<_, OutboxRow>(&query)
                .bind(self.last_seen)
                .bind(PAGE)
                .fetch_all(&self.pool)
                .await
            {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::error!(%error, "reading the realtime outbox failed");
                    return;
                }
            };
            let full_page = rows.len() as i64 == PAGE;
            for row in rows {
                let now = Instant::now();
                for missing in (self.last_seen + 1..row.id).take(MAX_GAPS) {
                    self.gaps.insert(missing, now);
                }
                self.last_seen = row.id;
                self.hub.deliver(Arc::new(row.into_broadcast()));
            }
            while self.gaps.len() > MAX_GAPS {
                self.gaps.pop_first();
            }
            if !full_page {
                return;
            }
        }
    }

    /// Delivers the rows of gaps that have become visible; forgets gaps older than `GAP_PATIENCE`.
    async fn deliver_gaps(&mut self) {
        self.gaps.retain(|_, since| since.elapsed() < GAP_PATIENCE);
        if self.gaps.is_empty() {
            return;
        }
        let ids: Vec<i64> = self.gaps.keys().copied().collect();
        let query = format!("SELECT {OUTBOX_COLUMNS} FROM realtime_outbox WHERE id = ANY($1) ORDER BY id");
        match sqlx::query_as::<_, OutboxRow>(&query)
            .bind(ids)
            .fetch_all(&self.pool)
            .await
        {
            Ok(rows) => {
                for row in rows {
                    self.gaps.remove(&row.id);
                    self.hub.deliver(Arc::new(row.into_broadcast()));
                }
            }
            Err(error) => tracing::error!(%error, "reading the realtime outbox failed"),
        }
    }

    async fn remove_expired_rows(&self) {
        let now = now_millis();
        let removed = sqlx::query(
            "DELETE FROM realtime_outbox WHERE created_at < $1 OR (topic_offset IS NULL AND created_at < $2)",
        )
        .bind(self.retention.cutoff(now))
        .bind(now - EPHEMERAL_ROW_MILLIS)
        .execute(&self.pool)
        .await;
        if let Err(error) = removed {
            tracing::warn!(%error, "removing expired realtime outbox rows failed");
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct OutboxRow {
    id: i64,
    topic: String,
    event: String,
    payload: Option<serde_json::Value>,
    payload_raw: Option<Vec<u8>>,
    topic_offset: Option<i64>,
    sender: Option<String>,
    binary_origin: bool,
}

impl OutboxRow {
    pub(super) fn into_broadcast(self) -> Broadcast {
        let payload = match self.payload_raw {
            Some(bytes) => BroadcastPayload::Raw(bytes),
            None => BroadcastPayload::Json(self.payload.unwrap_or_default()),
        };
        let sender = self.sender.and_then(|sender| sender.parse().ok());
        let mut broadcast = Broadcast::new(self.topic, self.event, payload, sender, self.binary_origin);
        broadcast.offset = self.topic_offset;
        broadcast
    }
}
