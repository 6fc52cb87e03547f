//! Finishes share commits. Delivery workers end their attempts side by side; whoever commits next records every
//! finish that waited meanwhile in one transaction, so that a busy queue costs a commit per batch of attempts
//! rather than one per attempt (SQLite has one writer; PostgreSQL one fsync per commit).

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::store::outbound::DeliveryFinish;
use crate::store::{Store, StoreError};

/// A finish waiting for a commit, and who waits for it.
struct Waiting {
    finish: DeliveryFinish,
    held: oneshot::Sender<Result<bool, StoreError>>,
}

#[derive(Default)]
pub(super) struct Finishes {
    waiting: Mutex<Vec<Waiting>>,
    /// Held while committing: finishes that arrive meanwhile go with the next commit.
    committing: tokio::sync::Mutex<()>,
}

impl Finishes {
    /// Records `finish` with whatever else waits; whether the delivery was still held.
    pub(super) async fn record(&self, store: &Arc<dyn Store>, finish: DeliveryFinish) -> Result<bool, StoreError> {
        let (held, answer) = oneshot::channel();
        self.waiting
            .lock()
            .expect("finishes lock")
            .push(Waiting { finish, held });
        {
            let _turn = self.committing.lock().await;
            let batch = std::mem::take(&mut *self.waiting.lock().expect("finishes lock"));
            if !batch.is_empty() {
                let finishes: Vec<DeliveryFinish> = batch.iter().map(|waiting| waiting.finish.clone()).collect();
                match store.finish_deliveries(&finishes).await {
                    Ok(held) => {
                        for (waiting, held) in batch.into_iter().zip(held) {
                            let _ = waiting.held.send(Ok(held));
                        }
                    }
                    Err(error) => {
                        // One bad finish must not fail its neighbours: each alone, with its own answer.
                        tracing::warn!(%error, finishes = batch.len(), "shared delivery finish failed; committing each alone");
                        for waiting in batch {
                            let alone = store.finish_deliveries(std::slice::from_ref(&waiting.finish)).await;
                            let _ = waiting.held.send(alone.map(|held| held[0]));
                        }
                    }
                }
            }
        }
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}
