//! What every route's handlers share: the store, the receiver's settings, the backend, the queue and the
//! pipeline's announcements.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::accounts::Accounts;
use crate::backend::ServerBackend;
use crate::ingest::IngestArgs;
use crate::queue::EventQueue;
use crate::store::Store;
use crate::throttle::Throttles;
use crate::updates::UpdateSender;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub ingest: Arc<IngestArgs>,
    pub backend: Arc<ServerBackend>,
    /// Announces pipeline progress to the realtime relay and other listeners.
    pub updates: UpdateSender,
    /// Woken whenever new events are queued, so idle workers start at once.
    pub queue_wakeup: Arc<Notify>,
    /// The way new events enter the pipeline.
    pub queue: EventQueue,
    /// Every account, with its secrets and ServiceM8 client.
    pub accounts: Arc<Accounts>,
    /// Limits on guessing: sign-ins, portal links, bearer tokens.
    pub throttles: Arc<Throttles>,
}
