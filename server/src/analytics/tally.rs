//! What this node counts in memory for the analytics between two rollup passes: ServiceM8 requests made,
//! duplicates received, deliveries refused, and webhook-to-browser latency. None of it is in a table the rollup
//! could read (the request log keeps one minute, duplicates and refusals are never stored, broadcasts are not
//! recorded), so each node keeps it per account and hour until its next pass adds it to the hour's rows.
//!
//! A crash loses what was counted since the last pass (at most a minute's worth): these are statistics, and
//! writing them on the hot path would slow every request for them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::store::analytics::{Dimension, HourTally, Period, Sketch};

/// The most account-hours held at once; beyond it new ones are dropped, so memory stays bounded when rollups
/// stop (the store is down) while traffic goes on.
const MAX_OPEN_HOURS: usize = 4_096;

#[derive(Default)]
struct Open {
    counts: BTreeMap<(Dimension, String), i64>,
    browser: Sketch,
}

/// One node's counts, per account and hour, until its rollup pass takes them. Clones share the counts: the
/// receiver, the budgets and the relay count into the node's one `Tallies`, which the accounts registry owns.
#[derive(Clone, Default)]
pub struct Tallies(Arc<Mutex<BTreeMap<(String, i64), Open>>>);

impl Tallies {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, i64), Open>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_open(&self, account: &str, at: i64, change: impl FnOnce(&mut Open)) {
        let hour = Period::Hour.start_of(at);
        let mut tallies = self.lock();
        let key = (account.to_owned(), hour);
        if !tallies.contains_key(&key) && tallies.len() >= MAX_OPEN_HOURS {
            return;
        }
        change(tallies.entry(key).or_default());
    }

    /// Counts `count` of `dimension` (under `key`) for `account` in the hour of `at`.
    pub fn count(&self, account: &str, at: i64, dimension: Dimension, key: &str, count: i64) {
        if count == 0 {
            return;
        }
        self.with_open(account, at, |open| {
            *open.counts.entry((dimension, key.to_owned())).or_default() += count;
        });
    }

    /// Records how long after its arrival an update of `account` went out to browsers.
    pub fn record_browser_latency(&self, account: &str, at: i64, millis: i64) {
        self.with_open(account, at, |open| open.browser.record(millis, 1));
    }

    /// Takes what was counted for `account`, oldest hour first.
    pub fn take(&self, account: &str) -> Vec<HourTally> {
        let mut tallies = self.lock();
        let hours: Vec<(String, i64)> = tallies.keys().filter(|(owner, _)| owner == account).cloned().collect();
        hours
            .into_iter()
            .filter_map(|key| {
                let open = tallies.remove(&key)?;
                Some(HourTally {
                    hour: key.1,
                    counts: open
                        .counts
                        .into_iter()
                        .map(|((dimension, key), count)| (dimension, key, count))
                        .collect(),
                    browser: open.browser,
                })
            })
            .collect()
    }

    /// Puts back what `take` returned, when the pass that was to store it failed.
    pub fn restore(&self, account: &str, taken: Vec<HourTally>) {
        for tally in taken {
            self.with_open(account, tally.hour, |open| {
                for (dimension, key, count) in tally.counts {
                    *open.counts.entry((dimension, key)).or_default() += count;
                }
                open.browser.merge(&tally.browser);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_per_account_and_hour_until_taken_and_restored_whole() {
        let tallies = Tallies::default();
        let account = "an-account";
        let hour = 1_704_067_200_000;
        tallies.count(account, hour + 5, Dimension::Duplicates, "", 2);
        tallies.count(account, hour + 6, Dimension::Duplicates, "", 1);
        tallies.count(account, hour + 3_600_000, Dimension::ApiRequests, "", 4);
        tallies.record_browser_latency(account, hour + 7, 250);
        tallies.count("another-account", hour, Dimension::Refused, "unauthorized", 1);

        let taken = tallies.take(account);
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].hour, hour);
        assert_eq!(taken[0].counts, [(Dimension::Duplicates, String::new(), 3)]);
        assert_eq!(taken[0].browser.samples(), 1);
        assert_eq!(taken[1].counts, [(Dimension::ApiRequests, String::new(), 4)]);
        assert!(tallies.take(account).is_empty(), "taken once");

        tallies.restore(account, taken);
        let again = tallies.take(account);
        assert_eq!(again.len(), 2);
        assert_eq!(again[0].counts, [(Dimension::Duplicates, String::new(), 3)]);
        assert_eq!(tallies.take("another-account").len(), 1);
    }
}
