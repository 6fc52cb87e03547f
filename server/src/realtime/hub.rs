//! This node's topics: which connections are subscribed to each, and who is present on it.
//!
//! Broadcasts reach the hub from the bus (so every node's hub sees every broadcast); presence is kept per node.
//! Sessions get what concerns them through a bounded queue: a connection too slow to drain it loses messages
//! (logged), and resumes from its last offset when it reconnects, rather than slowing everyone else down.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::bus::Broadcast;

/// Identifies one websocket connection, across nodes.
pub type ConnectionId = Uuid;

/// How many pushes may wait for a slow connection.
pub const SESSION_QUEUE: usize = 1024;

/// What the hub sends a session.
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    Broadcast(Arc<Broadcast>),
    /// `{joins, leaves}` for `topic`.
    PresenceDiff {
        topic: String,
        diff: Value,
    },
}

#[derive(Default)]
pub struct Hub {
    topics: Mutex<HashMap<String, Topic>>,
}

#[derive(Default)]
struct Topic {
    subscribers: HashMap<ConnectionId, Subscriber>,
    /// Presence key -> one entry per tracking connection.
    presences: BTreeMap<String, Vec<Presence>>,
}

struct Subscriber {
    /// `config.broadcast.self`: whether the connection gets its own broadcasts back.
    receive_own: bool,
    queue: mpsc::Sender<Push>,
}

#[derive(Clone)]
struct Presence {
    connection: ConnectionId,
    phx_ref: String,
    meta: Map<String, Value>,
}

impl Presence {
    fn as_meta(&self) -> Value {
        let mut meta = self.meta.clone();
        meta.insert("phx_ref".into(), Value::String(self.phx_ref.clone()));
        Value::Object(meta)
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    /// Subscribes `connection` to `topic`, replacing an earlier subscription of the same connection.
    pub fn subscribe(&self, topic: &str, connection: ConnectionId, receive_own: bool, queue: mpsc::Sender<Push>) {
        let mut topics = self.topics.lock().expect("hub lock");
        topics
            .entry(topic.to_owned())
            .or_default()
            .subscribers
            .insert(connection, Subscriber { receive_own, queue });
    }

    /// Ends `connection`'s subscription to `topic`, and its presence there.
    pub fn unsubscribe(&self, topic: &str, connection: ConnectionId) {
        let mut topics = self.topics.lock().expect("hub lock");
        if let Some(entry) = topics.get_mut(topic) {
            entry.subscribers.remove(&connection);
            untrack_locked(topic, entry, connection);
            if entry.subscribers.is_empty() && entry.presences.is_empty() {
                topics.remove(topic);
            }
        }
    }

    /// Ends every subscription of a closed connection.
    pub fn disconnect(&self, connection: ConnectionId) {
        let joined: Vec<String> = {
            let topics = self.topics.lock().expect("hub lock");
            topics
                .iter()
                .filter(|(_, t)| t.subscribers.contains_key(&connection))
                .map(|(n, _)| n.clone())
                .collect()
        };
        for topic in joined {
            self.unsubscribe(&topic, connection);
        }
    }

    /// Hands a broadcast to this node's subscribers of its topic, except its sender unless it asked for its own.
    pub fn deliver(&self, broadcast: Arc<Broadcast>) {
        let mut topics = self.topics.lock().expect("hub lock");
        let Some(topic) = topics.get_mut(&broadcast.topic) else {
            return;
        };
        topic.subscribers.retain(|connection, subscriber| {
            if broadcast.sender == Some(*connection) && !subscriber.receive_own {
                return true;
            }
            send(&subscriber.queue, Push::Broadcast(broadcast.clone()), *connection)
        });
    }

    /// Tracks `meta` for `connection` under presence `key`, replacing what it tracked before, and tells every
    /// subscriber of the topic.
    pub fn track(&self, topic: &str, connection: ConnectionId, key: &str, meta: Map<String, Value>) {
        let mut topics = self.topics.lock().expect("hub lock");
        let entry = topics.entry(topic.to_owned()).or_default();
        let leaves = remove_presences(entry, connection);
        let presence = Presence {
            connection,
            phx_ref: Uuid::new_v4().simple().to_string(),
            meta,
        };
        let joins = BTreeMap::from([(key.to_owned(), vec![presence.clone()])]);
        entry.presences.entry(key.to_owned()).or_default().push(presence);
        broadcast_diff(topic, entry, &joins, &leaves);
    }

    /// Stops tracking `connection` on `topic`, telling every subscriber if it was tracked.
    pub fn untrack(&self, topic: &str, connection: ConnectionId) {
        let mut topics = self.topics.lock().expect("hub lock");
        if let Some(entry) = topics.get_mut(topic) {
            untrack_locked(topic, entry, connection);
        }
    }

    /// `{key: {metas: [...]}}` for everyone present on `topic`, as `presence_state` carries it.
    pub fn presence_state(&self, topic: &str) -> Value {
        let topics = self.topics.lock().expect("hub lock");
        topics
            .get(topic)
            .map_or_else(|| json!({}), |entry| presence_map(&entry.presences))
    }
}

fn untrack_locked(topic: &str, entry: &mut Topic, connection: ConnectionId) {
    let leaves = remove_presences(entry, connection);
    if !leaves.is_empty() {
        broadcast_diff(topic, entry, &BTreeMap::new(), &leaves);
    }
}

/// Removes what `connection` tracks on a topic, returning it by key.
fn remove_presences(entry: &mut Topic, connection: ConnectionId) -> BTreeMap<String, Vec<Presence>> {
    let mut removed: BTreeMap<String, Vec<Presence>> = BTreeMap::new();
    entry.presences.retain(|key, presences| {
        let (gone, kept): (Vec<Presence>, Vec<Presence>) = presences
            .drain(..)
            .partition(|presence| presence.connection == connection);
        if !gone.is_empty() {
            removed.insert(key.clone(), gone);
        }
        *presences = kept;
        !presences.is_empty()
    });
    removed
}

fn presence_map(presences: &BTreeMap<String, Vec<Presence>>) -> Value {
    let map = presences
        .iter()
        .map(|(key, list)| {
            (
                key.clone(),
                json!({ "metas": list.iter().map(Presence::as_meta).collect::<Vec<_>>() }),
            )
        })
        .collect();
    Value::Object(map)
}

/// Sends a `presence_diff` to every subscriber of the topic, the one who changed included.
fn broadcast_diff(
    topic: &str,
    entry: &mut Topic,
    joins: &BTreeMap<String, Vec<Presence>>,
    leaves: &BTreeMap<String, Vec<Presence>>,
) {
    let diff = json!({ "joins": presence_map(joins), "leaves": presence_map(leaves) });
    entry.subscribers.retain(|connection, subscriber| {
        send(
            &subscriber.queue,
            Push::PresenceDiff {
                topic: topic.to_owned(),
                diff: diff.clone(),
            },
            *connection,
        )
    });
}

/// Queues `push` for a session; false when the session is gone and its subscription should be dropped.
fn send(queue: &mpsc::Sender<Push>, push: Push, connection: ConnectionId) -> bool {
    match queue.try_send(push) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(%connection, "realtime connection is too slow: a message was dropped");
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::bus::Broadcast;
    use crate::realtime::protocol::BroadcastPayload;

    fn connection() -> (ConnectionId, mpsc::Sender<Push>, mpsc::Receiver<Push>) {
        let (tx, rx) = mpsc::channel(16);
        (Uuid::new_v4(), tx, rx)
    }

    fn broadcast(topic: &str, sender: Option<ConnectionId>) -> Arc<Broadcast> {
        Arc::new(Broadcast::new(
            topic,
            "e",
            BroadcastPayload::Json(json!({})),
            sender,
            false,
        ))
    }

    #[test]
    fn a_broadcast_reaches_subscribers_of_its_topic_but_not_its_sender_unless_asked() {
        let hub = Hub::new();
        let (a, a_tx, mut a_rx) = connection();
        let (b, b_tx, mut b_rx) = connection();
        let (c, c_tx, mut c_rx) = connection();
        hub.subscribe("realtime:room", a, false, a_tx);
        hub.subscribe("realtime:room", b, true, b_tx);
        hub.subscribe("realtime:other", c, true, c_tx);
        hub.deliver(broadcast("realtime:room", Some(a)));
        hub.deliver(broadcast("realtime:room", Some(b)));
        assert!(matches!(a_rx.try_recv(), Ok(Push::Broadcast(m)) if m.sender == Some(b)));
        assert!(a_rx.try_recv().is_err());
        assert!(matches!(b_rx.try_recv(), Ok(Push::Broadcast(m)) if m.sender == Some(a)));
        assert!(matches!(b_rx.try_recv(), Ok(Push::Broadcast(m)) if m.sender == Some(b)));
        assert!(c_rx.try_recv().is_err());
        let _ = c;
    }

    #[test]
    fn tracking_and_untracking_send_diffs_to_everyone_and_update_the_state() {
        let hub = Hub::new();
        let (a, a_tx, mut a_rx) = connection();
        let (b, b_tx, mut b_rx) = connection();
        hub.subscribe("realtime:room", a, false, a_tx);
        hub.subscribe("realtime:room", b, false, b_tx);
        let meta = json!({"name": "x"}).as_object().unwrap().clone();
        hub.track("realtime:room", a, "u1", meta);
        for rx in [&mut a_rx, &mut b_rx] {
            let Ok(Push::PresenceDiff { diff, .. }) = rx.try_recv() else {
                panic!("no diff")
            };
            assert_eq!(diff["joins"]["u1"]["metas"][0]["name"], "x");
            assert_eq!(diff["leaves"], json!({}));
        }
        assert_eq!(
            hub.presence_state("realtime:room")["u1"]["metas"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        hub.untrack("realtime:room", a);
        let Ok(Push::PresenceDiff { diff, .. }) = b_rx.try_recv() else {
            panic!("no diff")
        };
        assert_eq!(diff["leaves"]["u1"]["metas"][0]["name"], "x");
        assert_eq!(hub.presence_state("realtime:room"), json!({}));
    }

    #[test]
    fn a_disconnect_leaves_every_topic_and_tells_the_others() {
        let hub = Hub::new();
        let (a, a_tx, _a_rx) = connection();
        let (b, b_tx, mut b_rx) = connection();
        hub.subscribe("realtime:room", a, false, a_tx);
        hub.subscribe("realtime:room", b, false, b_tx);
        hub.track("realtime:room", a, "u1", Map::new());
        let _join = b_rx.try_recv();
        hub.disconnect(a);
        let Ok(Push::PresenceDiff { diff, .. }) = b_rx.try_recv() else {
            panic!("no leave diff")
        };
        assert!(diff["leaves"].get("u1").is_some());
        hub.deliver(broadcast("realtime:room", Some(b)));
        assert!(b_rx.try_recv().is_err(), "b does not receive its own broadcast");
    }
}
