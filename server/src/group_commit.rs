//! Group commit: concurrent deliveries share one transaction, so one fsync acknowledges many events.
//!
//! Each `insert` hands its events to a single writer task and waits for the commit. The writer takes whatever has
//! queued up meanwhile (up to `MAX_EVENTS_PER_COMMIT`), stores it in one transaction, and answers every
//! delivery with its own insertions. Nothing is acknowledged before its transaction commits. When a shared
//! transaction fails, each delivery is retried alone, so one bad delivery cannot fail its neighbours.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::{Insertion, NewEvent, Store, StoreError};

/// Most events written in one transaction.
const MAX_EVENTS_PER_COMMIT: usize = 2_000;
/// Most deliveries waiting for the writer. Past it a delivery is refused (`StoreError::Saturated`, which the
/// receiver answers 503 with Retry-After, and ServiceM8 retries) rather than held in memory, unacknowledged,
/// behind thousands of others.
pub const QUEUE_DEPTH: usize = 4_096;

type Reply = oneshot::Sender<Result<Vec<Insertion>, StoreError>>;

struct Request {
    events: Vec<NewEvent>,
    reply: Reply,
}

/// A handle to the writer task; cloning it shares the writer.
#[derive(Clone)]
pub struct GroupCommit {
    requests: mpsc::Sender<Request>,
}

impl GroupCommit {
    /// Starts the writer; it stops when the last handle is dropped.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (requests, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(write_batches(store, receiver));
        GroupCommit { requests }
    }

    /// Stores `events` (in one transaction, possibly shared with other deliveries); returns once committed.
    pub async fn insert(&self, events: Vec<NewEvent>) -> Result<Vec<Insertion>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .try_send(Request { events, reply })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => StoreError::Saturated,
                mpsc::error::TrySendError::Closed(_) => StoreError::WriterStopped,
            })?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn write_batches(store: Arc<dyn Store>, mut receiver: mpsc::Receiver<Request>) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        let mut events = batch[0].events.len();
        while events < MAX_EVENTS_PER_COMMIT {
            match receiver.try_recv() {
                Ok(request) => {
                    events += request.events.len();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        commit(store.as_ref(), batch).await;
    }
}

async fn commit(store: &dyn Store, batch: Vec<Request>) {
    if batch.len() == 1 {
        let request = batch.into_iter().next().expect("one request");
        let result = store.insert_events(&request.events).await;
        let _ = request.reply.send(result);
        return;
    }
    let all: Vec<NewEvent> = batch
        .iter()
        .flat_map(|request| request.events.iter().cloned())
        .collect();
    match store.insert_events(&all).await {
        Ok(insertions) => {
            let mut insertions = insertions.into_iter();
            for request in batch {
                let own: Vec<Insertion> = insertions.by_ref().take(request.events.len()).collect();
                let _ = request.reply.send(Ok(own));
            }
        }
        Err(error) => {
            tracing::warn!(%error, deliveries = batch.len(), "shared commit failed; storing each delivery alone");
            for request in batch {
                let result = store.insert_events(&request.events).await;
                let _ = request.reply.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{self, test_event as event};

    #[tokio::test]
    async fn concurrent_deliveries_each_get_their_own_insertions() {
        let data = tempfile::TempDir::new().unwrap();
        let url = format!("sqlite://{}", data.path().join("sm8.db").display());
        let store = store::connect(&url).await.unwrap();
        let writer = GroupCommit::start(store.clone());
        let deliveries: Vec<_> = (0..50)
            .map(|n| {
                let writer = writer.clone();
                // Every fifth delivery repeats the one before it: a redelivery racing its original.
                let key = format!("k{}", if n % 5 == 4 { n - 1 } else { n });
                tokio::spawn(async move {
                    (
                        key.clone(),
                        writer.insert(vec![event(&key), event(&format!("{key}-b"))]).await,
                    )
                })
            })
            .collect();
        let mut stored = 0;
        for delivery in deliveries {
            let (_, insertions) = delivery.await.unwrap();
            let insertions = insertions.unwrap();
            assert_eq!(insertions.len(), 2);
            stored += insertions.iter().filter(|i| matches!(i, Insertion::Stored(_))).count();
        }
        assert_eq!(stored, 80, "40 distinct deliveries of two events each");
        assert_eq!(store.stats("default").await.unwrap().total, 80);
    }

    #[tokio::test]
    async fn a_delivery_past_the_queue_depth_is_refused_not_held() {
        // A writer that never writes, with room for one delivery.
        let (requests, mut waiting) = mpsc::channel(1);
        let writer = GroupCommit { requests };
        let first = tokio::spawn({
            let writer = writer.clone();
            async move { writer.insert(vec![event("k1")]).await }
        });
        while waiting.is_empty() {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            writer.insert(vec![event("k2")]).await,
            Err(StoreError::Saturated)
        ));
        // The queued one is still answered once the writer gets to it.
        let queued = waiting.recv().await.unwrap();
        queued
            .reply
            .send(Ok(vec![Insertion::Stored(queued.events[0].id)]))
            .unwrap();
        assert!(first.await.unwrap().is_ok());
    }
}
