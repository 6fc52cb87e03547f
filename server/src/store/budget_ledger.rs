//! The API budget counted in memory, for an engine where one process does the fetching (SQLite).
//!
//! Counting each request in a write transaction put the budget on SQLite's one writer, between every fetch and the
//! events waiting to be stored: seven statements per request, and webhook → browser p99 went from 22 ms to over
//! 100 ms. Here a request is counted under a mutex; the store saves what was counted once a second, in one
//! transaction, and reads back what other processes on the same file (a `sync` from the command line) counted
//! meanwhile. Either side learns of the other's requests within a save, a second's worth at most, which the
//! budget's safety margin (5 % of a minute's 180 by default, 9 requests) covers.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::budget::{day_window, minute_refusal, BudgetGrant, BudgetLimits};
use super::queue::MINUTE_MS;

/// Every account's budget that this process counted since the store opened.
#[derive(Default)]
pub struct BudgetLedger {
    accounts: Mutex<HashMap<String, AccountLedger>>,
}

/// An account's budget as the database holds it: what a ledger starts from, and reads back after saving.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoredBudget {
    /// Times of the rolling minute's requests, newest first; `None` when unchanged since the last save.
    pub recent: Option<Vec<i64>>,
    /// Requests counted in the ledger's day window.
    pub day_used: i64,
    /// Until when ServiceM8 asked for a pause, if it did.
    pub paused_until: Option<i64>,
}

/// Requests an account's ledger counted since its last save, for the store to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsavedBudget {
    pub account: String,
    /// Their times, in the order they were counted.
    pub requests: Vec<i64>,
    /// The day window the ledger counts in (its key).
    pub day_key: String,
    /// Requests the ledger holds in the rolling minute at the time of the save: when the database holds another
    /// number once these are written, another process counted some as well.
    pub minute_count: i64,
    /// The most requests of the minute worth reading back (the last limit a request was counted under).
    pub keep: i64,
}

struct AccountLedger {
    /// The newest requests of the rolling minute, oldest first: at most `keep`, since a request is refused only
    /// while `keep` of them are less than a minute old.
    recent: VecDeque<i64>,
    keep: usize,
    /// Requests counted since the last save.
    unsaved: Vec<i64>,
    day_key: String,
    day_used: i64,
    paused_until: Option<i64>,
}

impl AccountLedger {
    /// A ledger starting from what the database held at `now` (nothing, for `StoredBudget::default()`).
    fn starting_from(stored: StoredBudget, now: i64) -> Self {
        let mut recent: Vec<i64> = stored.recent.unwrap_or_default();
        recent.sort_unstable();
        AccountLedger {
            recent: recent.into(),
            keep: usize::MAX,
            unsaved: Vec::new(),
            day_key: day_window(now).0,
            day_used: stored.day_used,
            paused_until: stored.paused_until,
        }
    }

    fn forget_before(&mut self, now: i64) {
        while self.recent.front().is_some_and(|&at| at <= now - MINUTE_MS) {
            self.recent.pop_front();
        }
        let (day_key, _) = day_window(now);
        if day_key != self.day_key {
            self.day_key = day_key;
            self.day_used = 0;
        }
    }

    fn trim(&mut self) {
        while self.recent.len() > self.keep {
            self.recent.pop_front();
        }
    }
}

impl BudgetLedger {
    /// Whether the account's budget is counted here yet (else it is first seeded from the database).
    pub fn knows(&self, account: &str) -> bool {
        self.accounts().contains_key(account)
    }

    /// Starts counting `account`'s budget from what the database held at `now`, unless it already is.
    pub fn seed(&self, account: &str, stored: StoredBudget, now: i64) {
        self.accounts()
            .entry(account.to_owned())
            .or_insert_with(|| AccountLedger::starting_from(stored, now));
    }

    /// Takes one request from `account`'s budget at `now`, or says when the next may be made. An account not
    /// seeded starts with nothing used.
    pub fn take(&self, account: &str, now: i64, limits: BudgetLimits) -> BudgetGrant {
        let mut accounts = self.accounts();
        let ledger = accounts
            .entry(account.to_owned())
            .or_insert_with(|| AccountLedger::starting_from(StoredBudget::default(), now));
        ledger.forget_before(now);
        ledger.keep = usize::try_from(limits.per_minute.max(1)).unwrap_or(usize::MAX);
        ledger.trim();
        let recent = (ledger.recent.len() as i64, ledger.recent.front().copied());
        if let Some(retry_at) = minute_refusal(now, limits, ledger.paused_until, recent) {
            return BudgetGrant::Exhausted { retry_at };
        }
        if limits.per_day <= 0 || ledger.day_used >= limits.per_day {
            return BudgetGrant::Exhausted {
                retry_at: day_window(now).1,
            };
        }
        // Callers read the clock before the lock, so times can arrive a little out of order; a request counted
        // a millisecond late only stays in the minute a millisecond longer.
        let at = ledger.recent.back().map_or(now, |&newest| newest.max(now));
        ledger.recent.push_back(at);
        ledger.trim();
        ledger.unsaved.push(at);
        ledger.day_used += 1;
        BudgetGrant::Granted
    }

    /// Holds `account`'s requests until `until` (a later pause already set stands).
    pub fn pause(&self, account: &str, until: i64) {
        if let Some(ledger) = self.accounts().get_mut(account) {
            ledger.paused_until = ledger.paused_until.max(Some(until));
        }
    }

    /// Requests of the rolling minute and of the day at `now`, if the account is counted here.
    pub fn used(&self, account: &str, now: i64) -> Option<(i64, i64)> {
        let mut accounts = self.accounts();
        let ledger = accounts.get_mut(account)?;
        ledger.forget_before(now);
        Some((ledger.recent.len() as i64, ledger.day_used))
    }

    /// Every account's requests counted since its last save, as of `now`; they are no longer unsaved after this.
    pub fn take_unsaved(&self, now: i64) -> Vec<UnsavedBudget> {
        let mut accounts = self.accounts();
        accounts
            .iter_mut()
            .map(|(account, ledger)| {
                ledger.forget_before(now);
                UnsavedBudget {
                    account: account.clone(),
                    requests: std::mem::take(&mut ledger.unsaved),
                    day_key: ledger.day_key.clone(),
                    minute_count: ledger.recent.len() as i64,
                    keep: i64::try_from(ledger.keep).unwrap_or(i64::MAX),
                }
            })
            .collect()
    }

    /// Requests a failed save did not write: they go with the next save.
    pub fn unsaved_again(&self, unsaved: &UnsavedBudget) {
        if let Some(ledger) = self.accounts().get_mut(&unsaved.account) {
            let newer = std::mem::replace(&mut ledger.unsaved, unsaved.requests.clone());
            ledger.unsaved.extend(newer);
        }
    }

    /// What the database held for `account` once a save wrote its requests: other processes' requests and pauses
    /// join the ledger, and requests counted during the save are kept.
    pub fn saved(&self, account: &str, day_key: &str, stored: StoredBudget) {
        let mut accounts = self.accounts();
        let Some(ledger) = accounts.get_mut(account) else {
            return;
        };
        if let Some(mut recent) = stored.recent {
            recent.extend(&ledger.unsaved);
            recent.sort_unstable();
            ledger.recent = recent.into();
            ledger.trim();
        }
        if ledger.day_key == day_key {
            ledger.day_used = stored.day_used + ledger.unsaved.len() as i64;
        }
        ledger.paused_until = ledger.paused_until.max(stored.paused_until);
    }

    fn accounts(&self) -> std::sync::MutexGuard<'_, HashMap<String, AccountLedger>> {
        // A panic while holding the lock leaves counts that are still counts: keep using them.
        self.accounts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BudgetLimits = BudgetLimits {
        per_minute: 2,
        per_day: 3,
    };
    /// Late in a clock minute, well inside a day.
    const START: i64 = 60_000 * 1_000_000 + 59_000;

    #[test]
    fn the_rolling_minute_and_the_day_hold_as_in_the_database() {
        let ledger = BudgetLedger::default();
        assert_eq!(ledger.take("a", START, LIMITS), BudgetGrant::Granted);
        assert_eq!(ledger.take("a", START + 500, LIMITS), BudgetGrant::Granted);
        assert_eq!(
            ledger.take("a", START + 1_500, LIMITS),
            BudgetGrant::Exhausted {
                retry_at: START + 60_001
            },
            "a new clock minute is not a new budget"
        );
        assert_eq!(
            ledger.take("b", START, LIMITS),
            BudgetGrant::Granted,
            "accounts are apart"
        );
        assert_eq!(ledger.take("a", START + 60_001, LIMITS), BudgetGrant::Granted);
        assert!(matches!(
            ledger.take("a", START + 130_000, LIMITS),
            BudgetGrant::Exhausted { .. }
        ));
        assert_eq!(ledger.used("a", START + 130_000), Some((0, 3)));
        assert_eq!(ledger.used("nobody", START), None);
    }

    #[test]
    fn a_pause_holds_requests_until_it_ends_and_a_later_one_stands() {
        let ledger = BudgetLedger::default();
        ledger.seed("a", StoredBudget::default(), START);
        ledger.pause("a", START + 2_000);
        ledger.pause("a", START + 1_000);
        assert_eq!(
            ledger.take("a", START, LIMITS),
            BudgetGrant::Exhausted {
                retry_at: START + 2_000
            }
        );
        assert_eq!(ledger.take("a", START + 2_000, LIMITS), BudgetGrant::Granted);
    }

    #[test]
    fn a_seed_from_the_database_counts_its_requests_and_a_second_seed_changes_nothing() {
        let ledger = BudgetLedger::default();
        let stored = StoredBudget {
            recent: Some(vec![START - 1_000, START - 2_000]),
            day_used: 2,
            paused_until: None,
        };
        ledger.seed("a", stored, START);
        ledger.seed("a", StoredBudget::default(), START);
        assert_eq!(ledger.used("a", START), Some((2, 2)));
        assert_eq!(
            ledger.take("a", START, LIMITS),
            BudgetGrant::Exhausted {
                retry_at: START - 2_000 + 60_001
            }
        );
    }

    #[test]
    fn a_save_hands_over_each_request_once_and_keeps_those_counted_meanwhile() {
        let ledger = BudgetLedger::default();
        let roomy = BudgetLimits {
            per_minute: 100,
            per_day: 100,
        };
        ledger.take("a", START, roomy);
        ledger.take("a", START + 1, roomy);
        let unsaved = ledger.take_unsaved(START + 2);
        assert_eq!(unsaved.len(), 1);
        assert_eq!(unsaved[0].requests, vec![START, START + 1]);
        assert_eq!((unsaved[0].minute_count, unsaved[0].keep), (2, 100));
        assert!(
            ledger.take_unsaved(START + 2)[0].requests.is_empty(),
            "nothing is saved twice"
        );

        // While the save ran, this process counted one more, and another process two of its own.
        ledger.take("a", START + 3, roomy);
        let stored = StoredBudget {
            recent: Some(vec![START + 1, START, START - 5, START - 6]),
            day_used: 4,
            paused_until: Some(START + 30_000),
        };
        ledger.saved("a", &unsaved[0].day_key, stored);
        assert_eq!(ledger.used("a", START + 3), Some((5, 5)));
        assert_eq!(
            ledger.take("a", START + 4, roomy),
            BudgetGrant::Exhausted {
                retry_at: START + 30_000
            },
            "another process's pause holds this one too"
        );
        assert_eq!(ledger.take_unsaved(START + 4)[0].requests, vec![START + 3]);
    }

    #[test]
    fn times_out_of_order_are_counted_in_order() {
        let ledger = BudgetLedger::default();
        let roomy = BudgetLimits {
            per_minute: 100,
            per_day: 100,
        };
        ledger.take("a", START + 10, roomy);
        ledger.take("a", START + 5, roomy);
        assert_eq!(
            ledger.take_unsaved(START + 10)[0].requests,
            vec![START + 10, START + 10]
        );
    }
}
