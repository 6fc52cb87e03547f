//! The lease on one object's claimed events while a worker works on them.
//!
//! A claim holds the events until `locked_until`; past it another worker (on any node) may claim them again. So a
//! worker renews the lease while it works (a heartbeat every third of `LEASE_MS`), and before it writes anything —
//! the mirrored record, the finish — it makes sure the lease is still its own: by the clock while the lease has
//! a quarter of its length left, otherwise by renewing it. A worker that finds its lease lost writes nothing and
//! announces nothing: the events belong to whoever claimed them next.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};

use crate::store::{now_millis, ClaimedEvent, Store, StoreError};

pub(super) struct Lease {
    store: Arc<dyn Store>,
    account: String,
    object_type: String,
    object_uuid: String,
    length_ms: i64,
    /// Until when the events are held; locked while renewing and while finishing, so a finish always names the
    /// lease the store holds.
    until: Mutex<i64>,
}

/// A lease confirmed as held, kept so until dropped.
pub(super) struct HeldLease<'a>(MutexGuard<'a, i64>);

impl HeldLease<'_> {
    /// `events` as holding this lease, as the store expects them when finishing.
    pub(super) fn stamp(&self, events: &[ClaimedEvent]) -> Vec<ClaimedEvent> {
        events
            .iter()
            .map(|event| ClaimedEvent {
                lease_until: *self.0,
                ..event.clone()
            })
            .collect()
    }
}

impl Lease {
    /// The lease of a claim of one object's events (which share it).
    pub(super) fn of(store: Arc<dyn Store>, events: &[ClaimedEvent], length_ms: i64) -> Lease {
        Lease {
            store,
            account: events[0].account.clone(),
            object_type: events[0].object_type.clone(),
            object_uuid: events[0].object_uuid.clone(),
            length_ms,
            until: Mutex::new(events[0].lease_until),
        }
    }

    /// How often the heartbeat renews.
    pub(super) fn heartbeat(&self) -> Duration {
        Duration::from_millis((self.length_ms / 3).max(10) as u64)
    }

    /// Extends the lease by its length from now; false when it was lost.
    pub(super) async fn renew(&self) -> Result<bool, StoreError> {
        let mut until = self.until.lock().await;
        self.renew_locked(&mut until).await
    }

    /// The lease, confirmed as still held, or none when it was lost.
    pub(super) async fn hold(&self) -> Result<Option<HeldLease<'_>>, StoreError> {
        let mut until = self.until.lock().await;
        let safe_until = until.saturating_sub(self.length_ms / 4);
        if now_millis() < safe_until || self.renew_locked(&mut until).await? {
            Ok(Some(HeldLease(until)))
        } else {
            Ok(None)
        }
    }

    async fn renew_locked(&self, until: &mut i64) -> Result<bool, StoreError> {
        let renewed_until = now_millis() + self.length_ms;
        let renewed = self
            .store
            .renew_lease(
                &self.account,
                &self.object_type,
                &self.object_uuid,
                *until,
                renewed_until,
            )
            .await?;
        if renewed == 0 {
            // Lost for good: from now on every check asks the store, which will not match.
            *until = i64::MIN;
            return Ok(false);
        }
        *until = renewed_until;
        Ok(true)
    }
}
