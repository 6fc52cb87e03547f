//! The state every handler and task of the simulated account shares, and the counters tests read.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::config::{CallbackFormat, MockConfig};
use super::generate::Generator;
use super::limits::{Faults, RateLimiter};
use super::oauth::Grants;
use super::records::{ObjectKind, Records};
use super::subscriptions::Subscription;
use server::secret::Secret;

pub(crate) struct MockState {
    pub api_key: Secret,
    pub page_size: usize,
    /// How long a request hit by a timeout fault hangs.
    pub hang: Duration,
    pub callback_format: CallbackFormat,
    /// `http://ADDR/api_1.0`, the prefix of `resource_url` in callbacks.
    pub base_url: String,
    pub records: Mutex<Records>,
    /// Makes the records added by the change task; locked before `records` when both are needed.
    pub generator: Mutex<Generator>,
    pub faults: Mutex<Faults>,
    pub limiter: Mutex<RateLimiter>,
    pub subscriptions: Mutex<Vec<Subscription>>,
    /// The OAuth application's codes and tokens.
    pub grants: Mutex<Grants>,
    /// URLs that receive every callback.
    pub targets: Mutex<Vec<String>>,
    pub counters: Counters,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
}

impl MockState {
    pub fn new(config: &MockConfig, base_url: String, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let mut generator = Generator::new(config.seed);
        let records = generator.account(config);
        Ok(MockState {
            api_key: config.api_key.clone(),
            page_size: config.page_size.max(1),
            hang: Duration::from_millis(config.hang_ms),
            callback_format: config.callback_format,
            base_url,
            records: Mutex::new(records),
            generator: Mutex::new(generator),
            faults: Mutex::new(Faults {
                error_rate: config.error_rate,
                rate_limit_rate: config.rate_limit_rate,
                latency_ms: config.latency_ms,
                timeout_rate: config.timeout_rate,
            }),
            limiter: Mutex::new(RateLimiter::new(config.per_minute, config.per_day)),
            subscriptions: Mutex::new(Vec::new()),
            grants: Mutex::new(Grants::new(config)),
            targets: Mutex::new(config.targets.clone()),
            counters: Counters::default(),
            http: reqwest::Client::builder()
                .user_agent("ServiceM8 simulated account")
                .build()
                .map_err(anyhow::Error::from)?,
            shutdown,
        })
    }
}

/// Locks `mutex`, carrying on after a panic elsewhere: every critical section leaves its data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    over_limit: AtomicU64,
    faults_injected: AtomicU64,
    callbacks_delivered: AtomicU64,
    callbacks_failed: AtomicU64,
    fetches: Mutex<HashMap<(ObjectKind, String), u64>>,
}

impl Counters {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// A 429 the account's limits caused (and so `rate_limited` too).
    pub fn over_limit(&self) {
        self.over_limit.fetch_add(1, Ordering::Relaxed);
        self.rate_limited();
    }

    pub fn fault(&self) {
        self.faults_injected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn callback(&self, delivered: bool) {
        let counter = if delivered {
            &self.callbacks_delivered
        } else {
            &self.callbacks_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fetch(&self, kind: ObjectKind, uuid: &str) {
        *lock(&self.fetches).entry((kind, uuid.to_owned())).or_default() += 1;
    }

    pub fn fetch_count(&self, kind: ObjectKind, uuid: &str) -> u64 {
        lock(&self.fetches).get(&(kind, uuid.to_owned())).copied().unwrap_or(0)
    }

    pub fn snapshot(&self) -> MockStats {
        let fetches = lock(&self.fetches);
        MockStats {
            requests: self.requests.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            over_limit: self.over_limit.load(Ordering::Relaxed),
            faults_injected: self.faults_injected.load(Ordering::Relaxed),
            callbacks_delivered: self.callbacks_delivered.load(Ordering::Relaxed),
            callbacks_failed: self.callbacks_failed.load(Ordering::Relaxed),
            fetches: fetches.values().sum(),
            fetches_by_record: fetches
                .iter()
                .map(|((kind, uuid), count)| (format!("{kind}/{uuid}"), *count))
                .collect(),
        }
    }
}

/// What the simulated account has served so far (`GET /_mock/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MockStats {
    /// Requests to the API and the subscription endpoints, whatever their answer.
    pub requests: u64,
    /// Requests answered 429, by the counters or by an injected fault.
    pub rate_limited: u64,
    /// Requests answered 429 by the counters: the client passed the account's limits.
    pub over_limit: u64,
    /// Requests answered with an injected 5xx or left hanging.
    pub faults_injected: u64,
    /// Callbacks answered 2xx by their target.
    pub callbacks_delivered: u64,
    /// Callbacks that failed or were answered otherwise.
    pub callbacks_failed: u64,
    /// Single-record fetches (`GET /api_1.0/{object}/{uuid}.json`) that reached the records.
    pub fetches: u64,
    /// The same, per `object/uuid`.
    pub fetches_by_record: BTreeMap<String, u64>,
}
