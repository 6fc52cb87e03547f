//! The bus carries every broadcast to the hub of every node: publish → bus → each node's hub → its sessions.
//! A node's own subscribers are reached the same way as another node's, so one node and many behave alike.
//!
//! Two engines, chosen by the database: `InProcessBus` (SQLite, one process; the retained record and presence are
//! in memory) and `PostgresBus` (several `serve` processes on one database; see `postgres_bus` and `pg_presence`).

use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::hub::{ConnectionId, Hub};
use super::outbox::{Replay, RetainedLog, Retention};
use super::protocol::{BroadcastPayload, Outgoing, Vsn, WireMessage};
use crate::store::now_millis;

/// A message for the subscribers of one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    /// Full topic in the hub, `realtime:...` with its account (`scope`).
    pub topic: String,
    pub event: String,
    pub payload: BroadcastPayload,
    /// The connection that pushed it, so that `self: false` subscribers are spared their own messages.
    pub sender: Option<ConnectionId>,
    /// Pushed as a binary (kind 3) frame; relayed as kind 4.
    pub binary: bool,
    /// The topic's offset, for retained broadcasts.
    pub offset: Option<i64>,
    /// The frame each serializer sends, rendered by the first subscriber that needs it and shared by the rest.
    rendered: Rendered,
}

/// One rendering per serializer. Not part of a broadcast's identity: equal broadcasts are equal rendered or not.
#[derive(Debug, Clone, Default)]
struct Rendered([OnceLock<WireMessage>; 2]);

impl PartialEq for Rendered {
    fn eq(&self, _: &Rendered) -> bool {
        true
    }
}

impl Broadcast {
    pub fn new(
        topic: impl Into<String>,
        event: impl Into<String>,
        payload: BroadcastPayload,
        sender: Option<ConnectionId>,
        binary: bool,
    ) -> Broadcast {
        Broadcast {
            topic: topic.into(),
            event: event.into(),
            payload,
            sender,
            binary,
            offset: None,
            rendered: Rendered::default(),
        }
    }

    /// Numbers the broadcast, and writes the number into a JSON object payload as `offset` so clients see it.
    pub fn set_offset(&mut self, offset: i64) {
        self.offset = Some(offset);
        self.rendered = Rendered::default();
        if let BroadcastPayload::Json(Value::Object(map)) = &mut self.payload {
            map.insert("offset".into(), offset.into());
        }
    }

    /// The frame for a client speaking `vsn`: 10,000 subscribers of a topic share one rendering, not 10,000.
    pub fn render(&self, vsn: Vsn) -> Outgoing {
        let slot = &self.rendered.0[vsn as usize];
        let message = slot.get_or_init(|| {
            vsn.encode(Outgoing::Broadcast {
                topic: super::scope::unscoped(&self.topic).to_owned(),
                event: self.event.clone(),
                payload: self.payload.clone(),
                binary: self.binary,
            })
        });
        Outgoing::Rendered(message.clone())
    }
}

/// A broadcast handed to the bus.
#[derive(Debug, Clone, PartialEq)]
pub enum Publication {
    /// Numbered with its topic's next offset and kept for resuming clients (pipeline updates).
    Retained(Broadcast),
    /// Delivered once and forgotten (clients' and the REST API's broadcasts, as upstream).
    Ephemeral(Broadcast),
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("realtime bus database error: {0}")]
    Database(#[from] sqlx::Error),
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Delivers the publications, in order, to the subscribers on every node.
    async fn publish(&self, publications: Vec<Publication>) -> Result<(), BusError>;

    /// What a client that last saw `after` on `topic` has missed.
    async fn replay(&self, topic: &str, after: i64) -> Result<Replay, BusError>;

    /// The latest `limit` retained broadcasts of `topic` made at or after `since` (unix ms), oldest first.
    async fn replay_since(&self, topic: &str, since: i64, limit: usize) -> Result<Vec<Broadcast>, BusError>;

    /// Tracks `meta` for `connection` under presence `key` on `topic`, replacing what it tracked there, and tells
    /// the topic's subscribers on every node.
    async fn track(
        &self,
        topic: &str,
        connection: ConnectionId,
        key: &str,
        meta: Map<String, Value>,
    ) -> Result<(), BusError>;

    /// Stops tracking `connection` on `topic`, telling the subscribers on every node if it was tracked.
    async fn untrack(&self, topic: &str, connection: ConnectionId) -> Result<(), BusError>;

    /// `{key: {metas: [...]}}` for everyone present on `topic`, on every node, as `presence_state` carries it.
    async fn presence_state(&self, topic: &str) -> Result<Value, BusError>;
}

/// The single-process bus: delivers straight to this node's hub, keeping retained broadcasts in memory.
pub struct InProcessBus {
    hub: Arc<Hub>,
    log: Mutex<RetainedLog>,
}

impl InProcessBus {
    pub fn new(hub: Arc<Hub>, retention: Retention) -> InProcessBus {
        InProcessBus {
            hub,
            log: Mutex::new(RetainedLog::new(retention)),
        }
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, publications: Vec<Publication>) -> Result<(), BusError> {
        // Delivering under the log's lock keeps each topic's deliveries in offset order across publishers.
        let mut log = self.log.lock().expect("retained log lock");
        let now = now_millis();
        for publication in publications {
            let broadcast = match publication {
                Publication::Retained(broadcast) => log.record(broadcast, now),
                Publication::Ephemeral(broadcast) => broadcast,
            };
            self.hub.deliver(Arc::new(broadcast));
        }
        let (bytes, broadcasts) = log.size();
        crate::metrics::set_realtime_retained(bytes, broadcasts);
        Ok(())
    }

    async fn replay(&self, topic: &str, after: i64) -> Result<Replay, BusError> {
        Ok(self
            .log
            .lock()
            .expect("retained log lock")
            .replay(topic, after, now_millis()))
    }

    async fn replay_since(&self, topic: &str, since: i64, limit: usize) -> Result<Vec<Broadcast>, BusError> {
        Ok(self
            .log
            .lock()
            .expect("retained log lock")
            .since(topic, since, limit, now_millis()))
    }

    async fn track(
        &self,
        topic: &str,
        connection: ConnectionId,
        key: &str,
        meta: Map<String, Value>,
    ) -> Result<(), BusError> {
        self.hub.track(topic, connection, key, meta);
        Ok(())
    }

    async fn untrack(&self, topic: &str, connection: ConnectionId) -> Result<(), BusError> {
        self.hub.untrack(topic, connection);
        Ok(())
    }

    async fn presence_state(&self, topic: &str) -> Result<Value, BusError> {
        Ok(self.hub.presence_state(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::hub::Push;
    use serde_json::json;
    use std::time::Duration;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn the_in_process_bus_numbers_retained_broadcasts_and_delivers_all_of_them() {
        let hub = Arc::new(Hub::new());
        let bus = InProcessBus::new(
            hub.clone(),
            Retention {
                max_messages: 10,
                max_age: Duration::from_secs(60),
                max_bytes: usize::MAX,
            },
        );
        let (queue, mut rx) = mpsc::channel(8);
        let outlet = crate::realtime::hub::Outlet {
            queue,
            overflowed: Arc::default(),
        };
        hub.subscribe("realtime:jobs", uuid::Uuid::new_v4(), false, outlet);
        let update = || {
            Broadcast::new(
                "realtime:jobs",
                "webhook_update",
                BroadcastPayload::Json(json!({})),
                None,
                false,
            )
        };
        bus.publish(vec![
            Publication::Retained(update()),
            Publication::Ephemeral(update()),
            Publication::Retained(update()),
        ])
        .await
        .unwrap();
        let mut seen = Vec::new();
        while let Ok(Push::Broadcast(broadcast)) = rx.try_recv() {
            seen.push(broadcast.offset);
        }
        assert_eq!(seen, vec![Some(1), None, Some(2)]);
        let Replay::Missed(missed) = bus.replay("realtime:jobs", 1).await.unwrap() else {
            panic!("expected a replay")
        };
        assert_eq!(missed.len(), 1);
        assert_eq!(missed[0].payload, BroadcastPayload::Json(json!({"offset": 2})));
    }
}
