//! Analytics that outlive the events: the rollup pass (`roll_up`), which the processor runs every minute and
//! before each retention cleanup; what nodes count in memory between passes (`tally`); reports over the rollups
//! with their CSV export (`report`); and the daily or weekly digest sent to a destination (`digest`). The rollups themselves are the store's (`store::analytics`).

pub mod digest;
pub mod report;
pub mod tally;

use crate::store::analytics::{Rolled, RollupPass};
use crate::store::{Store, StoreError};
use tally::Tallies;

/// How long after they finish events wait for a pass: an event's finish time is taken a moment before its
/// transaction commits, and a pass must not move its watermark past a finish it cannot see yet.
pub const SETTLE_MS: i64 = 60_000;

/// Rolls up what `account` finished up to `now - SETTLE_MS`, with what this node (`node`) counted for it in
/// `counted` since its last pass. What was counted goes back to be stored by the next pass when this one fails.
pub async fn roll_up(
    store: &dyn Store,
    counted: &Tallies,
    account: &str,
    node: &str,
    now: i64,
) -> Result<Rolled, StoreError> {
    let tallies = counted.take(account);
    let rolled = store
        .roll_up(&RollupPass {
            account,
            until: now - SETTLE_MS,
            node,
            tallies: &tallies,
        })
        .await;
    if rolled.is_err() {
        counted.restore(account, tallies);
    }
    rolled
}
