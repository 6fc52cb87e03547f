//! Resume: the retained record of each topic's offset-numbered broadcasts, and the decision of what a rejoining
//! client gets.
//!
//! Offsets are per topic, start at 1 and grow by one with each retained broadcast. A client rejoining with the
//! offset it last saw gets every later broadcast again, in order, when all of them are still retained (the last
//! `retention.max_messages` per topic, no older than `retention.max_age`, and in memory at most
//! `retention.max_bytes` over all topics, oldest first). When some are gone, or the offset is
//! one the server never gave out, it gets instead a `system` frame telling it to refetch (see `realtime::session`).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use super::bus::Broadcast;
use super::protocol::BroadcastPayload;

/// How much of each topic is kept for resuming clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_messages: usize,
    pub max_age: Duration,
    /// Over all topics, counted as the broadcasts' JSON text; kept in memory by the single-process engine.
    pub max_bytes: usize,
}

impl Retention {
    /// The oldest `created_at` (unix ms) still retained at `now`.
    pub fn cutoff(&self, now: i64) -> i64 {
        now - self.max_age.as_millis() as i64
    }
}

/// What a client resuming after `offset` is owed.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// Every broadcast it missed, oldest first (none when it is up to date).
    Missed(Vec<Broadcast>),
    /// Some are no longer retained: it must refetch, then follow on from `latest`.
    Refetch { latest: i64 },
}

/// Decides a replay from the topic's latest offset and the retained broadcasts after `after`, oldest first.
pub fn plan_replay(after: i64, latest: i64, retained_after: Vec<Broadcast>, retention: &Retention) -> Replay {
    if after == latest {
        return Replay::Missed(Vec::new());
    }
    let complete = after < latest
        && retained_after.first().and_then(|b| b.offset) == Some(after + 1)
        && retained_after.len() as i64 == latest - after
        && retained_after.len() <= retention.max_messages;
    if complete {
        Replay::Missed(retained_after)
    } else {
        Replay::Refetch { latest }
    }
}

/// The in-memory record used by the single-process engine (SQLite).
pub struct RetainedLog {
    retention: Retention,
    topics: HashMap<String, TopicLog>,
    /// Each topic's oldest retained broadcast, by its number over all topics: the first is the oldest overall.
    oldest: BTreeSet<(u64, String)>,
    next_number: u64,
    bytes: usize,
    messages: usize,
}

#[derive(Default)]
struct TopicLog {
    latest: i64,
    /// Oldest first.
    retained: VecDeque<Retained>,
}

/// A broadcast as kept: its JSON payload as text, which takes a fraction of the memory of the parsed value and
/// is what `Retention::max_bytes` counts. Replays, which are rare, parse it again.
struct Retained {
    /// Counts up over all topics.
    number: u64,
    created_at: i64,
    bytes: usize,
    /// The broadcast without its payload.
    broadcast: Broadcast,
    payload: KeptPayload,
}

enum KeptPayload {
    Json(Box<str>),
    Raw(Box<[u8]>),
}

impl Retained {
    fn new(number: u64, created_at: i64, broadcast: &Broadcast) -> Retained {
        let payload = match &broadcast.payload {
            BroadcastPayload::Json(value) => KeptPayload::Json(value.to_string().into_boxed_str()),
            BroadcastPayload::Raw(bytes) => KeptPayload::Raw(bytes.clone().into_boxed_slice()),
        };
        let payload_bytes = match &payload {
            KeptPayload::Json(text) => text.len(),
            KeptPayload::Raw(bytes) => bytes.len(),
        };
        let mut bare = broadcast.clone();
        bare.payload = BroadcastPayload::Raw(Vec::new());
        Retained {
            number,
            created_at,
            bytes: payload_bytes + broadcast.topic.len() + broadcast.event.len(),
            broadcast: bare,
            payload,
        }
    }

    fn restore(&self) -> Broadcast {
        let mut broadcast = self.broadcast.clone();
        broadcast.payload = match &self.payload {
            KeptPayload::Json(text) => BroadcastPayload::Json(serde_json::from_str(text).unwrap_or_default()),
            KeptPayload::Raw(bytes) => BroadcastPayload::Raw(bytes.to_vec()),
        };
        broadcast
    }
}

impl RetainedLog {
    pub fn new(retention: Retention) -> RetainedLog {
        RetainedLog {
            retention,
            topics: HashMap::new(),
            oldest: BTreeSet::new(),
            next_number: 0,
            bytes: 0,
            messages: 0,
        }
    }

    /// Gives `broadcast` its topic's next offset and keeps it; returns it numbered.
    pub fn record(&mut self, mut broadcast: Broadcast, now: i64) -> Broadcast {
        let topic = broadcast.topic.clone();
        let log = self.topics.entry(topic.clone()).or_default();
        log.latest += 1;
        broadcast.set_offset(log.latest);
        let number = self.next_number;
        self.next_number += 1;
        if log.retained.is_empty() {
            self.oldest.insert((number, topic.clone()));
        }
        let retained = Retained::new(number, now, &broadcast);
        self.bytes += retained.bytes;
        log.retained.push_back(retained);
        self.messages += 1;
        let cutoff = self.retention.cutoff(now);
        while self.topics[&topic].retained.len() > self.retention.max_messages
            || self.topics[&topic]
                .retained
                .front()
                .is_some_and(|oldest| oldest.created_at < cutoff)
        {
            self.forget_oldest_of(&topic);
        }
        while self.bytes > self.retention.max_bytes {
            let Some((_, topic)) = self.oldest.first().cloned() else {
                break;
            };
            self.forget_oldest_of(&topic);
        }
        broadcast
    }

    fn forget_oldest_of(&mut self, topic: &str) {
        let Some(log) = self.topics.get_mut(topic) else {
            return;
        };
        let Some(oldest) = log.retained.pop_front() else {
            return;
        };
        self.oldest.remove(&(oldest.number, topic.to_owned()));
        if let Some(next) = log.retained.front() {
            self.oldest.insert((next.number, topic.to_owned()));
        }
        self.bytes -= oldest.bytes;
        self.messages -= 1;
    }

    /// What is retained now: (bytes, broadcasts).
    pub fn size(&self) -> (usize, usize) {
        (self.bytes, self.messages)
    }

    pub fn replay(&self, topic: &str, after: i64, now: i64) -> Replay {
        let Some(log) = self.topics.get(topic) else {
            return plan_replay(after, 0, Vec::new(), &self.retention);
        };
        let cutoff = self.retention.cutoff(now);
        let retained_after = log
            .retained
            .iter()
            .filter(|retained| retained.created_at >= cutoff && retained.broadcast.offset > Some(after))
            .map(Retained::restore)
            .collect();
        plan_replay(after, log.latest, retained_after, &self.retention)
    }

    /// The latest `limit` broadcasts of `topic` retained at `now` and made at or after `since`, oldest first.
    pub fn since(&self, topic: &str, since: i64, limit: usize, now: i64) -> Vec<Broadcast> {
        let Some(log) = self.topics.get(topic) else {
            return Vec::new();
        };
        let from = since.max(self.retention.cutoff(now));
        let kept: Vec<&Retained> = log
            .retained
            .iter()
            .filter(|retained| retained.created_at >= from)
            .collect();
        kept[kept.len().saturating_sub(limit)..]
            .iter()
            .map(|retained| retained.restore())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000_000;

    fn retention(max_messages: usize) -> Retention {
        Retention {
            max_messages,
            max_age: Duration::from_secs(3600),
            max_bytes: usize::MAX,
        }
    }

    fn update(topic: &str) -> Broadcast {
        Broadcast::new(
            topic,
            "webhook_update",
            BroadcastPayload::Json(json!({"type": "job_update"})),
            None,
            false,
        )
    }

    fn offsets(replay: Replay) -> Vec<i64> {
        match replay {
            Replay::Missed(broadcasts) => broadcasts.iter().map(|b| b.offset.unwrap()).collect(),
            Replay::Refetch { latest } => panic!("expected a replay, got refetch at {latest}"),
        }
    }

    #[test]
    fn a_replay_since_a_time_gets_the_latest_of_what_was_made_since_oldest_first() {
        let mut log = RetainedLog::new(retention(10));
        for at in [NOW - 3_000, NOW - 2_000, NOW - 1_000, NOW] {
            log.record(update("realtime:jobs"), at);
        }
        let offsets = |since, limit| -> Vec<i64> {
            log.since("realtime:jobs", since, limit, NOW)
                .iter()
                .map(|b| b.offset.unwrap())
                .collect()
        };
        assert_eq!(offsets(NOW - 2_000, 25), [2, 3, 4]);
        assert_eq!(offsets(NOW - 2_000, 2), [3, 4]);
        assert_eq!(offsets(NOW + 1, 25), Vec::<i64>::new());
        assert!(log.since("realtime:staff", 0, 25, NOW).is_empty());
    }

    #[test]
    fn offsets_count_up_per_topic_and_appear_in_the_payload() {
        let mut log = RetainedLog::new(retention(10));
        assert_eq!(log.record(update("realtime:jobs"), NOW).offset, Some(1));
        assert_eq!(log.record(update("realtime:staff"), NOW).offset, Some(1));
        let second = log.record(update("realtime:jobs"), NOW);
        assert_eq!(second.offset, Some(2));
        assert_eq!(
            second.payload,
            BroadcastPayload::Json(json!({"type": "job_update", "offset": 2}))
        );
    }

    #[test]
    fn a_client_behind_by_retained_messages_gets_them_in_order() {
        let mut log = RetainedLog::new(retention(10));
        for _ in 0..5 {
            log.record(update("realtime:jobs"), NOW);
        }
        assert_eq!(offsets(log.replay("realtime:jobs", 2, NOW)), vec![3, 4, 5]);
        assert_eq!(offsets(log.replay("realtime:jobs", 5, NOW)), Vec::<i64>::new());
        assert_eq!(offsets(log.replay("realtime:never", 0, NOW)), Vec::<i64>::new());
    }

    #[test]
    fn a_client_behind_what_is_retained_or_ahead_of_the_topic_must_refetch() {
        let mut log = RetainedLog::new(retention(3));
        for _ in 0..5 {
            log.record(update("realtime:jobs"), NOW);
        }
        assert_eq!(log.replay("realtime:jobs", 1, NOW), Replay::Refetch { latest: 5 });
        assert_eq!(offsets(log.replay("realtime:jobs", 2, NOW)), vec![3, 4, 5]);
        assert_eq!(log.replay("realtime:jobs", 9, NOW), Replay::Refetch { latest: 5 });
    }

    #[test]
    fn broadcasts_older_than_the_retention_age_are_not_replayed() {
        let mut log = RetainedLog::new(retention(10));
        log.record(update("realtime:jobs"), NOW - 2 * 3_600_000);
        log.record(update("realtime:jobs"), NOW);
        assert_eq!(log.replay("realtime:jobs", 0, NOW), Replay::Refetch { latest: 2 });
        assert_eq!(offsets(log.replay("realtime:jobs", 1, NOW)), vec![2]);
    }

    #[test]
    fn the_oldest_broadcasts_of_any_topic_go_first_once_the_byte_cap_is_reached() {
        // What one numbered broadcast counts for (every offset here has one digit and the topics one length).
        let one = {
            let mut scratch = RetainedLog::new(retention(10));
            scratch.record(update("realtime:jobs"), NOW);
            scratch.size().0
        };
        let mut log = RetainedLog::new(Retention {
            max_bytes: 3 * one,
            ..retention(10)
        });
        log.record(update("realtime:jobs"), NOW);
        log.record(update("realtime:abcd"), NOW);
        log.record(update("realtime:jobs"), NOW);
        assert_eq!(log.size().1, 3);
        // The fourth pushes out the oldest of all, the first on realtime:jobs.
        log.record(update("realtime:abcd"), NOW);
        let (bytes, messages) = log.size();
        assert_eq!(bytes, 3 * one);
        assert_eq!(messages, 3);
        assert_eq!(log.replay("realtime:jobs", 0, NOW), Replay::Refetch { latest: 2 });
        assert_eq!(offsets(log.replay("realtime:jobs", 1, NOW)), vec![2]);
        assert_eq!(offsets(log.replay("realtime:abcd", 0, NOW)), vec![1, 2]);
    }

    #[test]
    fn the_byte_count_follows_every_eviction() {
        let mut log = RetainedLog::new(retention(2));
        for n in 0..50 {
            log.record(update(&format!("realtime:job:{}", n % 5)), NOW + n);
        }
        let (bytes, messages) = log.size();
        assert_eq!(messages, 10, "two per topic");
        let counted: usize = log
            .topics
            .values()
            .flat_map(|topic| topic.retained.iter().map(|retained| retained.bytes))
            .sum();
        assert_eq!(bytes, counted);
        assert_eq!(log.oldest.len(), 5, "one oldest per topic");
    }

    #[test]
    fn a_replayed_broadcast_is_the_one_recorded() {
        let mut log = RetainedLog::new(retention(10));
        let recorded = log.record(update("realtime:jobs"), NOW);
        let raw = log.record(
            Broadcast::new(
                "realtime:jobs",
                "blob",
                BroadcastPayload::Raw(vec![1, 2, 3]),
                None,
                true,
            ),
            NOW,
        );
        match log.replay("realtime:jobs", 0, NOW) {
            Replay::Missed(replayed) => assert_eq!(replayed, [recorded, raw]),
            other => panic!("expected a replay, got {other:?}"),
        }
    }
}
