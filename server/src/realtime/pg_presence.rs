//! Presence shared by the nodes of one PostgreSQL database: who is present on a topic, whichever node holds
//! their connection.
//!
//! `realtime_presence` holds one row per tracking connection and topic; `presence_state` reads it. Every track
//! and untrack is also published on the bus as an ephemeral broadcast to the topic's presence channel
//! (`hub::presence_topic`), which each node's hub hands to its subscribers as a `presence_diff`. A node moves
//! its rows' `expires_at` forward every `REFRESH_INTERVAL`; rows of a node that stopped doing so (it died) are
//! removed by whichever node sweeps first, and their leaves published.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};
use sqlx::postgres::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::bus::{Broadcast, BusError, Publication};
use super::hub::{presence_topic, ConnectionId, PRESENCE_DIFF};
use super::protocol::BroadcastPayload;
use crate::store::now_millis;

/// How long a node's presence entries outlive its last refresh.
const ENTRY_TTL_MILLIS: i64 = 15_000;
/// How often a node refreshes its entries and sweeps expired ones.
const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// One presence entry: `(presence_key, phx_ref, meta)`.
type Entry = (String, String, Value);

/// This node's side of the shared presence.
#[derive(Clone)]
pub(super) struct SharedPresence {
    pool: PgPool,
    /// This node, as its rows name it.
    node: String,
}

impl SharedPresence {
    pub(super) fn new(pool: PgPool) -> SharedPresence {
        SharedPresence {
            pool,
            node: Uuid::new_v4().to_string(),
        }
    }

    /// Tracks `meta` under `key`, replacing what the connection tracked on the topic; the diff to publish.
    pub(super) async fn track(
        &self,
        topic: &str,
        connection: ConnectionId,
        key: &str,
        meta: Map<String, Value>,
    ) -> Result<Publication, BusError> {
        let mut tx = self.pool.begin().await?;
        let leaves = remove(&mut tx, topic, connection).await?;
        let phx_ref = Uuid::new_v4().simple().to_string();
        sqlx::query(
            "INSERT INTO realtime_presence (topic, connection, presence_key, phx_ref, meta, node, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(topic)
        .bind(connection.to_string())
        .bind(key)
        .bind(&phx_ref)
        .bind(Value::Object(meta.clone()))
        .bind(&self.node)
        .bind(now_millis() + ENTRY_TTL_MILLIS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let joins = vec![(key.to_owned(), phx_ref, Value::Object(meta))];
        Ok(diff(topic, &joins, &leaves))
    }

    /// Stops tracking the connection on `topic`; the diff to publish, if it was tracked.
    pub(super) async fn untrack(&self, topic: &str, connection: ConnectionId) -> Result<Option<Publication>, BusError> {
        let mut connection_db = self.pool.acquire().await?;
        let leaves = remove(&mut connection_db, topic, connection).await?;
        Ok((!leaves.is_empty()).then(|| diff(topic, &[], &leaves)))
    }

    /// `{key: {metas: [...]}}` for everyone present on `topic`, on every node.
    pub(super) async fn state(&self, topic: &str) -> Result<Value, BusError> {
        let entries: Vec<Entry> = sqlx::query_as(
            "SELECT presence_key, phx_ref, meta FROM realtime_presence
             WHERE topic = $1 AND expires_at > $2 ORDER BY id",
        )
        .bind(topic)
        .bind(now_millis())
        .fetch_all(&self.pool)
        .await?;
        Ok(presence_map(&entries))
    }

    /// Keeps this node's entries alive and removes those of nodes that died, handing their leaves to `publish`,
    /// until `stop`.
    pub(super) async fn run<F, Fut>(self, publish: F, stop: CancellationToken)
    where
        F: Fn(Vec<Publication>) -> Fut,
        Fut: std::future::Future<Output = Result<(), BusError>>,
    {
        let mut ticks = tokio::time::interval(REFRESH_INTERVAL);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticks.tick() => {
                    let swept = self.refresh_and_sweep().await;
                    let published = match swept {
                        Ok(leaves) if leaves.is_empty() => Ok(()),
                        Ok(leaves) => publish(leaves).await,
                        Err(error) => Err(error),
                    };
                    if let Err(error) = published {
                        tracing::warn!(%error, "keeping realtime presence failed");
                    }
                }
            }
        }
    }

    async fn refresh_and_sweep(&self) -> Result<Vec<Publication>, BusError> {
        let now = now_millis();
        sqlx::query("UPDATE realtime_presence SET expires_at = $1 WHERE node = $2")
            .bind(now + ENTRY_TTL_MILLIS)
            .bind(&self.node)
            .execute(&self.pool)
            .await?;
        let expired: Vec<(String, String, String, Value)> = sqlx::query_as(
            "DELETE FROM realtime_presence WHERE expires_at < $1 RETURNING topic, presence_key, phx_ref, meta",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut by_topic: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for (topic, key, phx_ref, meta) in expired {
            by_topic.entry(topic).or_default().push((key, phx_ref, meta));
        }
        Ok(by_topic
            .iter()
            .map(|(topic, leaves)| diff(topic, &[], leaves))
            .collect())
    }
}

async fn remove(
    connection_db: &mut sqlx::PgConnection,
    topic: &str,
    connection: ConnectionId,
) -> Result<Vec<Entry>, BusError> {
    Ok(sqlx::query_as(
        "DELETE FROM realtime_presence WHERE topic = $1 AND connection = $2
         RETURNING presence_key, phx_ref, meta",
    )
    .bind(topic)
    .bind(connection.to_string())
    .fetch_all(connection_db)
    .await?)
}

/// The broadcast that tells every node's subscribers of `topic` who joined and who left.
fn diff(topic: &str, joins: &[Entry], leaves: &[Entry]) -> Publication {
    let payload = json!({"joins": presence_map(joins), "leaves": presence_map(leaves)});
    Publication::Ephemeral(Broadcast::new(
        presence_topic(topic),
        PRESENCE_DIFF,
        BroadcastPayload::Json(payload),
        None,
        false,
    ))
}

fn presence_map(entries: &[Entry]) -> Value {
    let mut map: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (key, phx_ref, meta) in entries {
        let mut meta = meta.as_object().cloned().unwrap_or_default();
        meta.insert("phx_ref".into(), phx_ref.clone().into());
        map.entry(key).or_default().push(Value::Object(meta));
    }
    map.into_iter()
        .map(|(key, metas)| (key.to_owned(), json!({ "metas": metas })))
        .collect::<Map<String, Value>>()
        .into()
}
