//! The ServiceM8 request budget every worker and node shares, and what a 429 does to it.
//!
//! ServiceM8 allows 180 requests a minute and 20,000 a day per account, and answers 429 past them. The store
//! counts every request in a rolling minute and in the day (`Store::take_api_budget`), under limits a safety margin
//! below ServiceM8's own, so that the budget is never passed in any 60 s. A 429 all the same (another client of the
//! account, or ServiceM8 counting differently) pauses every node: for as long as its `Retry-After` says, else
//! briefly, doubling while 429s keep coming; the first request after a pause probes whether it is over.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::client::ApiCallError;
use crate::analytics::tally::Tallies;
use crate::store::analytics::Dimension;
use crate::store::{now_millis, BudgetGrant, BudgetLimits, Store};

/// The first pause after a 429 without `Retry-After`; it doubles with each 429 in a row.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause a 429 without `Retry-After` causes (ServiceM8's window is a minute).
const LONGEST_PAUSE: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured: beyond it a misconfigured proxy, not ServiceM8.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(600);

/// One account's share of ServiceM8's requests.
pub struct Budget {
    store: Arc<dyn Store>,
    account: String,
    limits: BudgetLimits,
    /// 429s in a row on this node, for the length of the next pause.
    refusals_in_a_row: AtomicU32,
    /// Where the requests made are counted for the account's analytics.
    tallies: Tallies,
}

impl Budget {
    pub fn new(store: Arc<dyn Store>, account: &str, limits: BudgetLimits, tallies: Tallies) -> Self {
        Budget {
            store,
            account: account.to_owned(),
            limits,
            refusals_in_a_row: AtomicU32::new(0),
            tallies,
        }
    }

    /// Takes one request from the budget, or says when the next one may be made.
    pub async fn take(&self) -> Result<(), ApiCallError> {
        match self
            .store
            .take_api_budget(&self.account, now_millis(), self.limits)
            .await?
        {
            BudgetGrant::Granted => {
                self.tallies
                    .count(&self.account, now_millis(), Dimension::ApiRequests, "", 1);
                Ok(())
            }
            BudgetGrant::Exhausted { retry_at } => Err(ApiCallError::BudgetExhausted { retry_at }),
        }
    }

    /// A request was answered without a 429.
    pub fn answered(&self) {
        self.refusals_in_a_row.store(0, Ordering::Relaxed);
    }

    /// ServiceM8 answered 429 with `headers`: pauses every node and returns until when (unix ms).
    pub async fn rate_limited(&self, headers: &HeaderMap) -> Result<i64, ApiCallError> {
        let in_a_row = self.refusals_in_a_row.fetch_add(1, Ordering::Relaxed);
        let pause = retry_after(headers, SystemTime::now()).unwrap_or_else(|| backoff(in_a_row));
        let until = now_millis() + pause.as_millis() as i64;
        self.store.pause_api_budget(&self.account, until).await?;
        Ok(until)
    }
}

/// The pause after `earlier` 429s in a row without `Retry-After`.
fn backoff(earlier: u32) -> Duration {
    FIRST_PAUSE
        .saturating_mul(2u32.saturating_pow(earlier.min(16)))
        .min(LONGEST_PAUSE)
}

/// How long `Retry-After` asks to wait (RFC 9110: delay seconds or an HTTP date), if it says anything usable.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or_default(),
    };
    Some(wait.min(LONGEST_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn with_retry_after(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after(&with_retry_after("7"), now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(12));
        let headers = {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
            headers
        };
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(12)));
        assert_eq!(retry_after(&with_retry_after("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
        assert_eq!(retry_after(&with_retry_after("86400"), now), Some(LONGEST_RETRY_AFTER));
    }

    #[test]
    fn without_retry_after_a_pause_starts_short_and_doubles_up_to_a_bound() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(10), LONGEST_PAUSE);
        assert_eq!(backoff(u32::MAX), LONGEST_PAUSE);
    }
}
