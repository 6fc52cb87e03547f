//! The way into the pipeline: commits new events as `queued`, then announces them and wakes the workers.
//! The receiver, the dashboard's test events and reconciliation all enter here.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::group_commit::GroupCommit;
use crate::store::{Insertion, NewEvent, Store, StoreError};
use crate::updates::{PipelineEvent, PipelineStage, PipelineUpdate, UpdateSender};

#[derive(Clone)]
pub struct EventQueue {
    writer: GroupCommit,
    updates: UpdateSender,
    wakeup: Arc<Notify>,
}

impl EventQueue {
    /// Starts the group-commit writer on `store`.
    pub fn new(store: Arc<dyn Store>, updates: UpdateSender, wakeup: Arc<Notify>) -> Self {
        EventQueue {
            writer: GroupCommit::start(store),
            updates,
            wakeup,
        }
    }

    /// Stores the events in one transaction (committed on return, perhaps shared with concurrent deliveries)
    /// and announces the ones that were new.
    pub async fn enqueue(&self, events: &[NewEvent]) -> Result<Vec<Insertion>, StoreError> {
        let insertions = self.writer.insert(events.to_vec()).await?;
        let mut any_new = false;
        for (event, insertion) in events.iter().zip(&insertions) {
            if let Insertion::Stored(id) = insertion {
                any_new = true;
                let _ = self.updates.send(PipelineUpdate::Lifecycle(PipelineEvent {
                    account: event.account.clone(),
                    event_id: id.to_string(),
                    object_type: event.object_type.clone(),
                    object_uuid: event.object_uuid.clone(),
                    event_type: event.event_type.clone(),
                    stage: PipelineStage::Received,
                    attempts: 0,
                    error: None,
                    at: event.received_at,
                    offset: None,
                }));
            }
        }
        if any_new {
            self.wake_workers();
        }
        Ok(insertions)
    }

    /// Tells idle workers that events are due (after a retry, say).
    pub fn wake_workers(&self) {
        self.wakeup.notify_waiters();
    }

    pub fn updates(&self) -> &UpdateSender {
        &self.updates
    }
}
