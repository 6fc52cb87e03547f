//! This node's topics: which connections are subscribed to each, and who is present on it.
//!
//! Broadcasts reach the hub from the bus (so every node's hub sees every broadcast). Presence is kept here for a
//! single process; with several nodes the bus keeps it (`pg_presence`) and sends each diff as a broadcast to the
//! topic's presence channel (`presence_topic`), which the hub hands to the topic's subscribers as a diff.
//! Sessions get what concerns them through a bounded queue: a connection too slow to drain it loses messages
//! rather than slowing everyone else down, and the hub notes on which topics; once the session has caught up it
//! tells the client to refetch those (`Overflowed`). A broadcast to `EVERY_TOPIC` tells every subscriber of every
//! topic to refetch: the relay sends it when it fell behind the pipeline and some updates never reached the bus.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::bus::Broadcast;
use super::protocol::BroadcastPayload;

/// Identifies one websocket connection, across nodes.
pub type ConnectionId = Uuid;

/// How many pushes may wait for a slow connection.
pub const SESSION_QUEUE: usize = 1024;

/// The topic of a broadcast that tells every subscriber of every topic to refetch. No client can name it: every
/// topic a client joins or sends to starts with `realtime:`.
pub const EVERY_TOPIC: &str = "*";

/// The event of a presence diff on a presence channel.
pub const PRESENCE_DIFF: &str = "presence_diff";
/// Starts the name of a topic's presence channel; no hub topic starts so (`scope`: client topics start with
/// `realtime:` and account slugs have no `:`).
const PRESENCE_PREFIX: &str = "presence:";

/// The channel that carries `topic`'s presence diffs between nodes.
pub fn presence_topic(topic: &str) -> String {
    format!("{PRESENCE_PREFIX}{topic}")
}

/// The topics on which a connection's queue overflowed and messages were lost; its session tells the client to
/// refetch them once it has drained its queue.
#[derive(Debug, Default)]
pub struct Overflowed(Mutex<BTreeSet<String>>);

impl Overflowed {
    fn note(&self, topic: &str) {
        self.0.lock().expect("overflow lock").insert(topic.to_owned());
    }

    /// The topics noted since the last call.
    pub fn take(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.0.lock().expect("overflow lock"))
    }
}

/// What the hub sends a session.
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    Broadcast(Arc<Broadcast>),
    /// `{joins, leaves}` for `topic`.
    PresenceDiff {
        topic: String,
        diff: Value,
    },
    /// Updates of `topic` were lost on their way: the client should refetch what it shows.
    Refetch {
        topic: String,
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
    outlet: Outlet,
}

/// Where a connection's pushes go: its session's queue, and what overflowed it.
#[derive(Debug, Clone)]
pub struct Outlet {
    pub queue: mpsc::Sender<Push>,
    pub overflowed: Arc<Overflowed>,
}

impl Outlet {
    /// Queues `push` about `topic`; false when the session is gone and its subscription should be dropped.
    fn send(&self, topic: &str, push: Push, connection: ConnectionId) -> bool {
        match self.queue.try_send(push) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(%connection, topic, "realtime connection is too slow: a message was dropped");
                crate::metrics::count_dropped_realtime_updates("slow_connection", 1);
                self.overflowed.note(topic);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
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
    pub fn subscribe(&self, topic: &str, connection: ConnectionId, receive_own: bool, outlet: Outlet) {
        let mut topics = self.topics.lock().expect("hub lock");
        topics
            .entry(topic.to_owned())
            .or_default()
            .subscribers
            .insert(connection, Subscriber { receive_own, outlet });
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
        if broadcast.topic == EVERY_TOPIC {
            for (name, topic) in topics.iter_mut() {
                topic.subscribers.retain(|connection, subscriber| {
                    let refetch = Push::Refetch { topic: name.clone() };
                    subscriber.outlet.send(name, refetch, *connection)
                });
            }
            return;
        }
        if let Some(name) = broadcast.topic.strip_prefix(PRESENCE_PREFIX) {
            if let (Some(topic), BroadcastPayload::Json(diff)) = (topics.get_mut(name), &broadcast.payload) {
                send_diff(name, topic, diff);
            }
            return;
        }
        let Some(topic) = topics.get_mut(&broadcast.topic) else {
            return;
        };
        topic.subscribers.retain(|connection, subscriber| {
            if broadcast.sender == Some(*connection) && !subscriber.receive_own {
                return true;
            }
            let push = Push::Broadcast(broadcast.clone());
            subscriber.outlet.send(&broadcast.topic, push, *connection)
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
    send_diff(topic, entry, &diff);
}

fn send_diff(topic: &str, entry: &mut Topic, diff: &Value) {
    entry.subscribers.retain(|connection, subscriber| {
        let push = Push::PresenceDiff {
            topic: topic.to_owned(),
            diff: diff.clone(),
        };
        subscriber.outlet.send(topic, push, *connection)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::bus::Broadcast;

    fn connection() -> (ConnectionId, Outlet, mpsc::Receiver<Push>) {
        connection_with_room(16)
    }

    fn connection_with_room(room: usize) -> (ConnectionId, Outlet, mpsc::Receiver<Push>) {
        let (queue, rx) = mpsc::channel(room);
        let outlet = Outlet {
            queue,
            overflowed: Arc::default(),
        };
        (Uuid::new_v4(), outlet, rx)
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

    #[test]
    fn a_diff_on_a_topics_presence_channel_reaches_every_subscriber_of_the_topic() {
        let hub = Hub::new();
        let (a, a_tx, mut a_rx) = connection();
        hub.subscribe("realtime:room", a, false, a_tx);
        let diff = json!({"joins": {"u1": {"metas": [{"phx_ref": "r1"}]}}, "leaves": {}});
        let payload = BroadcastPayload::Json(diff.clone());
        hub.deliver(Arc::new(Broadcast::new(
            presence_topic("realtime:room"),
            PRESENCE_DIFF,
            payload,
            Some(a),
            false,
        )));
        assert_eq!(
            a_rx.try_recv().unwrap(),
            Push::PresenceDiff {
                topic: "realtime:room".into(),
                diff
            }
        );
    }

    #[test]
    fn a_connection_too_slow_for_its_queue_has_the_topic_noted_for_a_refetch() {
        let hub = Hub::new();
        let (slow, outlet, mut rx) = connection_with_room(2);
        let overflowed = outlet.overflowed.clone();
        hub.subscribe("realtime:jobs", slow, false, outlet.clone());
        hub.subscribe("realtime:staff", slow, false, outlet);
        for _ in 0..3 {
            hub.deliver(broadcast("realtime:jobs", None));
        }
        assert_eq!(overflowed.take(), BTreeSet::from(["realtime:jobs".to_owned()]));
        assert!(overflowed.take().is_empty(), "taken once");
        assert!(matches!(rx.try_recv(), Ok(Push::Broadcast(_))));
        assert!(matches!(rx.try_recv(), Ok(Push::Broadcast(_))));
        assert!(rx.try_recv().is_err(), "the third was dropped");
    }

    #[test]
    fn a_broadcast_to_every_topic_asks_every_subscriber_to_refetch_each_of_its_topics() {
        let hub = Hub::new();
        let (a, a_outlet, mut a_rx) = connection();
        let (b, b_outlet, mut b_rx) = connection();
        hub.subscribe("realtime:jobs", a, false, a_outlet.clone());
        hub.subscribe("realtime:company:c1", a, false, a_outlet);
        hub.subscribe("realtime:jobs", b, false, b_outlet);
        hub.deliver(broadcast(EVERY_TOPIC, None));
        let mut a_topics = BTreeSet::new();
        while let Ok(push) = a_rx.try_recv() {
            let Push::Refetch { topic } = push else {
                panic!("expected a refetch, got {push:?}")
            };
            a_topics.insert(topic);
        }
        assert_eq!(
            a_topics,
            BTreeSet::from(["realtime:company:c1".to_owned(), "realtime:jobs".to_owned()])
        );
        assert!(matches!(b_rx.try_recv(), Ok(Push::Refetch { topic }) if topic == "realtime:jobs"));
    }
}
