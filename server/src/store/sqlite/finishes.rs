//! Finishes share transactions. Workers finish the objects of a claim side by side, and whoever gets the writer
//! commits every finish waiting for it in one transaction: objects claimed together have their events on the same
//! table and index pages, which one commit writes to the log once instead of once per object.

use std::sync::Mutex;

use sqlx::{Connection, SqliteConnection};
use tokio::sync::oneshot;

use super::super::batch::insert_deliveries;
use super::super::engine::Engine;
use super::super::outbound::NewDelivery;
use super::super::{batch, AttemptTiming, ClaimedEvent, Completion, StoreError};
use super::SqliteStore;

/// A finish waiting for the writer, and who waits for it.
struct Finish {
    events: Vec<ClaimedEvent>,
    completion: Completion,
    attempt: AttemptTiming,
    /// Queued with the finish when any of its events was finished.
    deliveries: Vec<NewDelivery>,
    /// Told how many of the events were finished (those whose lease still held).
    done: oneshot::Sender<Result<u64, StoreError>>,
}

#[derive(Default)]
pub(super) struct FinishQueue(Mutex<Vec<Finish>>);

impl FinishQueue {
    /// Queues a finish; the receiver answers once a commit that holds it has ended.
    pub(super) fn enqueue(
        &self,
        events: &[ClaimedEvent],
        completion: &Completion,
        attempt: &AttemptTiming,
        deliveries: &[NewDelivery],
    ) -> oneshot::Receiver<Result<u64, StoreError>> {
        let (done, answer) = oneshot::channel();
        self.0.lock().expect("finish queue lock").push(Finish {
            events: events.to_vec(),
            completion: completion.clone(),
            attempt: *attempt,
            deliveries: deliveries.to_vec(),
            done,
        });
        answer
    }

    /// Commits every queued finish on `writer`, together; when the shared transaction fails, each alone, so one
    /// bad finish cannot fail its neighbours.
    pub(super) async fn commit_queued(&self, writer: &mut SqliteConnection) {
        let queued = std::mem::take(&mut *self.0.lock().expect("finish queue lock"));
        if queued.is_empty() {
            return;
        }
        match commit(writer, &queued).await {
            Ok(counts) => {
                for (finish, count) in queued.into_iter().zip(counts) {
                    let _ = finish.done.send(Ok(count));
                }
            }
            Err(error) => {
                tracing::warn!(%error, finishes = queued.len(), "shared finish failed; committing each alone");
                for finish in queued {
                    let result = commit(writer, std::slice::from_ref(&finish)).await;
                    let _ = finish.done.send(result.map(|counts| counts[0]));
                }
            }
        }
    }
}

/// Commits `finishes` in one transaction; how many events of each were finished.
async fn commit(writer: &mut SqliteConnection, finishes: &[Finish]) -> Result<Vec<u64>, StoreError> {
    let mut tx = writer.begin_with(<SqliteStore as Engine>::BEGIN_WRITE).await?;
    let mut counts = Vec::with_capacity(finishes.len());
    for finish in finishes {
        let count =
            batch::finish_events::<sqlx::Sqlite>(&mut tx, &finish.events, &finish.completion, &finish.attempt).await?;
        if count > 0 {
            insert_deliveries::<sqlx::Sqlite>(&mut tx, &finish.deliveries).await?;
        }
        counts.push(count);
    }
    tx.commit().await?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use futures_util::future::join_all;

    use app::model::EventStatus;

    use crate::store::{self, test_event, AttemptTiming, Completion, NewEvent};

    #[tokio::test]
    async fn concurrent_finishes_are_each_recorded_with_their_own_outcome() {
        let folder = tempfile::TempDir::new().unwrap();
        let store = store::connect(&format!("sqlite://{}", folder.path().join("sm8.db").display()))
            .await
            .unwrap();
        // Ten objects with two events each.
        let events: Vec<_> = (0..20)
            .map(|n| NewEvent {
                dedup_key: format!("k{n}"),
                ..test_event(&format!("job-{}", n % 10))
            })
            .collect();
        store.insert_events(&events).await.unwrap();
        let now = store::now_millis();
        let claimed = store::test_claim(store.as_ref(), now, now + 60_000, 10).await;
        assert_eq!(claimed.len(), 20);
        let attempt = AttemptTiming {
            started_at: now,
            finished_at: now + 1,
            http_status: Some(200),
        };
        let skipped = Completion::Skipped("gone".into());
        let finishing = claimed.chunks(2).enumerate().map(|(n, object)| {
            let completion = if n == 0 { skipped.clone() } else { Completion::Success };
            let store = store.clone();
            async move { store.finish_events(object, &completion, &attempt).await }
        });
        for finished in join_all(finishing).await {
            finished.unwrap();
        }
        let by_status = store.stats("default").await.unwrap().by_status;
        assert_eq!(
            (by_status[&EventStatus::Success], by_status[&EventStatus::Skipped]),
            (18, 2)
        );
        for event in &claimed {
            assert_eq!(store.event_attempts(&event.id).await.unwrap().len(), 1);
        }
    }
}
