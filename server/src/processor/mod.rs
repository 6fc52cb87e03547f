//! The processor: a pool of workers that claim due events under a lease, fetch what changed from ServiceM8,
//! mirror it, retry what fails, and announce every step.
//!
//! Workers wake at once when the receiver queues events and otherwise poll, so nothing waits on a lost
//! wake-up. Events of one object are claimed and fetched together (coalescing), and a worker claims several
//! objects in one statement and processes them side by side. No transaction is held across an HTTP call:
//! claiming commits before the fetch, finishing is a second transaction.

mod handler;
mod lease;
mod retry;
mod rules;

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::accounts::{Accounts, LiveAccount};
use crate::analytics;
use crate::analytics::digest::DigestOutcome;
use crate::servicem8::sync;
use crate::store::{now_millis, Claim, ClaimedEvent, Release, Store, StoreError, Whose};
use crate::updates::UpdateSender;
use lease::Lease;
pub use retry::RetryPolicy;
pub use rules::{AccountRules, Decision, RuleBook};

/// What rules know of events and accounts, for trying a rule outside the pipeline.
pub mod rules_facts {
    pub use super::rules::{account_facts, event_facts_of};
}

/// What the pipeline hands rules' deliveries to: the account's rules, and the workers to wake when they queue
/// deliveries.
#[derive(Clone)]
pub struct RuleHooks {
    pub book: Arc<RuleBook>,
    pub deliverer: Arc<crate::deliveries::Deliverer>,
}

#[derive(Debug, Clone, Args)]
pub struct ProcessorArgs {
    /// Number of concurrent workers processing events; 0 makes a receive-only node (others process).
    #[arg(long, env = "WORKERS", default_value_t = 4)]
    pub workers: usize,

    /// Objects a worker claims at once; their events are processed side by side and one claim covers them all.
    #[arg(long, env = "BATCH_OBJECTS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub batch_objects: u32,

    /// Automatic retries of a failed event before it is marked failed.
    #[arg(long, env = "MAX_RETRIES", default_value_t = 3)]
    pub max_retries: i32,

    /// Delay before the first retry, in milliseconds; it doubles with each retry (with ±25% jitter).
    #[arg(long, env = "RETRY_BASE_DELAY_MS", default_value_t = 10_000)]
    pub retry_base_delay_ms: u64,

    /// How long a worker holds an event before another may reclaim it, in milliseconds.
    #[arg(long, env = "LEASE_MS", default_value_t = 60_000)]
    pub lease_ms: i64,

    /// Names this node's claims, so that it releases them at once when it starts again after a crash; unique
    /// per node and the same across its restarts. Default: the host name and the port served on.
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,

    /// How often idle workers look for due events, in milliseconds (new events wake them at once).
    #[arg(long, env = "POLL_INTERVAL_MS", default_value_t = 1_000)]
    pub poll_interval_ms: u64,

    /// Finished events older than this many days are deleted hourly; 0 keeps them forever. The default
    /// account's, and where new accounts start.
    #[arg(long, env = "RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: i64,

    /// Seconds between reconciliation passes against the ServiceM8 API (the first runs at start); 0 turns them off.
    /// The default account's, and where new accounts start.
    #[arg(long, env = "SYNC_INTERVAL_SECONDS", default_value_t = 3_600)]
    pub sync_interval_seconds: u64,

    /// Days the audit log is kept, whatever the events' retention.
    #[arg(long, env = "AUDIT_RETENTION_DAYS", default_value_t = 365)]
    pub audit_retention_days: i64,

    /// Days the analytics' hourly and daily rollups are kept, whatever the events' retention; 0 keeps them forever.
    #[arg(long, env = "ANALYTICS_RETENTION_DAYS", default_value_t = 400)]
    pub analytics_retention_days: i64,
}

impl Default for ProcessorArgs {
    fn default() -> Self {
        crate::flags::defaults()
    }
}

impl ProcessorArgs {
    /// Refuses a lease shorter than one ServiceM8 request may take: a worker's events would be claimed again
    /// while it still waits for the answer.
    pub fn check_lease(&self, api_timeout_ms: u64) -> Result<(), String> {
        if self.workers > 0 && self.lease_ms < i64::try_from(api_timeout_ms).unwrap_or(i64::MAX) {
            return Err(format!(
                "LEASE_MS ({} ms) is shorter than SERVICEM8_TIMEOUT_MS ({api_timeout_ms} ms): a worker would lose \
                 its events to another while still waiting for ServiceM8. Set LEASE_MS to at least the timeout \
                 (the default is 60000).",
                self.lease_ms
            ));
        }
        Ok(())
    }

    /// This node's id: `NODE_ID`, or the host name and `port`.
    pub fn node(&self, port: u16) -> String {
        match self.node_id.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                let host = host.trim();
                format!("{}:{port}", if host.is_empty() { "localhost" } else { host })
            }
        }
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            base_delay: Duration::from_millis(self.retry_base_delay_ms),
        }
    }
}

/// What one step of a worker found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A batch of events was processed; look for more at once.
    Processed,
    QueueEmpty,
    /// The API budget is spent until this time (unix ms).
    BudgetSpent {
        until: i64,
    },
}

pub struct Processor {
    store: Arc<dyn Store>,
    /// Whose claims these workers make (`ProcessorArgs::node`).
    node: String,
    accounts: Arc<Accounts>,
    handler: handler::Handler,
    args: ProcessorArgs,
    wakeup: Arc<Notify>,
}

impl Processor {
    pub fn new(
        store: Arc<dyn Store>,
        accounts: Arc<Accounts>,
        updates: UpdateSender,
        args: ProcessorArgs,
        wakeup: Arc<Notify>,
        node: String,
        rules: Option<RuleHooks>,
    ) -> Arc<Processor> {
        let handler = handler::Handler::new(store.clone(), accounts.clone(), updates, args.retry_policy(), rules);
        Arc::new(Processor {
            store,
            node,
            accounts,
            handler,
            args,
            wakeup,
        })
    }

    /// Releases the claims of this node's previous run, then starts the workers, the release of expired claims,
    /// the retention task and the analytics' rollups; they stop after `shutdown`, finishing the batch in hand.
    /// (Releasing first matters: the node id is the same, so a release running beside the workers would take back
    /// their fresh claims.)
    pub async fn spawn(self: &Arc<Self>, shutdown: CancellationToken) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        if self.args.workers > 0 {
            match self.release_claims(Whose::Node(&self.node)).await {
                Ok(0) => {}
                Ok(released) => tracing::warn!(
                    released,
                    node = %self.node,
                    "released this node's claims of its previous run: their attempts were interrupted"
                ),
                Err(error) => tracing::error!(%error, "releasing this node's earlier claims failed"),
            }
            let processor = self.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move { processor.run_releases(shutdown).await });
        }
        for worker in 0..self.args.workers {
            let processor = self.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move { processor.run_worker(worker, shutdown).await });
        }
        let processor = self.clone();
        let retention_shutdown = shutdown.clone();
        tasks.spawn(async move { processor.run_retention(retention_shutdown).await });
        let processor = self.clone();
        let rollup_shutdown = shutdown.clone();
        tasks.spawn(async move { processor.run_rollups(rollup_shutdown).await });
        let processor = self.clone();
        tasks.spawn(async move { processor.run_syncs(shutdown).await });
        tasks
    }

    async fn run_worker(&self, worker: usize, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.args.poll_interval_ms.max(10));
        while !shutdown.is_cancelled() {
            // Registered before looking at the queue, so a wake-up that arrives meanwhile is not lost.
            let notified = self.wakeup.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let pause = match self.step().await {
                Ok(Step::Processed) => continue,
                Ok(Step::QueueEmpty) => self.until_next_due(poll).await,
                Ok(Step::BudgetSpent { until }) => {
                    tracing::info!(worker, "ServiceM8 request budget spent; waiting for the next window");
                    // Nothing can be fetched before then: waking for new events would only claim them and put
                    // them back.
                    let wait = Duration::from_millis((until - now_millis()).max(10) as u64);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    continue;
                }
                Err(error) => {
                    tracing::error!(worker, %error, "processing step failed");
                    poll
                }
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// How long an idle worker waits: until the next queued event (a retry) falls due, at most `poll`.
    async fn until_next_due(&self, poll: Duration) -> Duration {
        let now = now_millis();
        match self.store.next_due_after(now).await {
            Ok(Some(due)) => Duration::from_millis((due - now).clamp(1, poll.as_millis() as i64) as u64),
            Ok(None) => poll,
            Err(error) => {
                tracing::warn!(%error, "reading when the next event is due failed");
                poll
            }
        }
    }

    /// Claims the due events of the next objects (up to `batch_objects`) and processes each object's events.
    pub async fn step(&self) -> Result<Step, StoreError> {
        let now = now_millis();
        let claimed = self
            .store
            .claim_due_objects(&Claim {
                now,
                lease_until: now + self.args.lease_ms,
                objects: self.args.batch_objects,
                node: &self.node,
            })
            .await?;
        if claimed.is_empty() {
            return Ok(Step::QueueEmpty);
        }
        let outcomes = join_all(by_object(claimed).into_iter().map(|events| self.process_leased(events))).await;
        let mut step = Step::Processed;
        for outcome in outcomes {
            if let Step::BudgetSpent { until } = outcome? {
                step = Step::BudgetSpent { until };
            }
        }
        Ok(step)
    }

    /// Processes one object's claimed events, renewing their lease meanwhile.
    async fn process_leased(&self, events: Vec<ClaimedEvent>) -> Result<Step, StoreError> {
        let lease = Lease::of(self.store.clone(), &events, self.args.lease_ms);
        let work = self.handler.process(&events, &lease);
        tokio::pin!(work);
        let mut heartbeat = tokio::time::interval(lease.heartbeat());
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                outcome = &mut work => return outcome,
                _ = heartbeat.tick() => match lease.renew().await {
                    Ok(true) => {}
                    // The work finds out when it next writes, and stops there.
                    Ok(false) => {}
                    Err(error) => tracing::warn!(%error, "renewing a lease failed; trying again"),
                },
            }
        }
    }

    /// Gives up the claims `whose` names (see `Store::release_claims`), waking the workers for what it queued.
    pub async fn release_claims(&self, whose: Whose<'_>) -> Result<u64, StoreError> {
        let released = self
            .store
            .release_claims(&Release {
                now: now_millis(),
                max_attempts: self.args.max_retries.max(0) + 1,
                whose,
            })
            .await?;
        if released > 0 {
            crate::metrics::record_interrupted(released);
            self.wakeup.notify_waiters();
        }
        Ok(released)
    }

    /// Releases every claim whose lease ran out, every quarter of the lease (at most 5 s apart).
    async fn run_releases(&self, shutdown: CancellationToken) {
        let interval = Duration::from_millis((self.args.lease_ms / 4).clamp(100, 5_000) as u64);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.cancelled() => return,
            }
            match self.release_claims(Whose::Expired).await {
                Ok(0) => {}
                Ok(released) => tracing::warn!(released, "released claims whose lease ran out"),
                Err(error) => tracing::error!(%error, "releasing expired claims failed"),
            }
        }
    }

    /// Processes until nothing is due; for the CLI and tests.
    pub async fn drain(&self) -> Result<usize, StoreError> {
        let mut batches = 0;
        while self.step().await? == Step::Processed {
            batches += 1;
        }
        Ok(batches)
    }

    /// Reconciles each account with credentials on start and then every `sync_interval_seconds` of its own,
    /// queueing what webhooks missed. A pass that fails (ServiceM8 erring or out of budget) is tried again after
    /// the retry delay, doubling up to the interval, so a hiccup at start does not leave the mirror incomplete
    /// until the next interval. Accounts added, changed or connected later are picked up within `SYNC_TICK`.
    async fn run_syncs(&self, shutdown: CancellationToken) {
        let mut schedule = sync::Schedule::default();
        loop {
            let now = tokio::time::Instant::now();
            for account in self.accounts.all() {
                let (Some(client), false, interval) = (
                    account.client.clone(),
                    account.disabled,
                    Duration::from_secs(account.sync_interval_seconds),
                ) else {
                    continue;
                };
                if interval.is_zero() || !schedule.is_due(&account.slug, now) {
                    continue;
                }
                let wait = match sync::reconcile(&self.store, &account.slug, &client, None).await {
                    Ok(reports) => {
                        let queued: usize = reports.iter().map(|report| report.queued).sum();
                        tracing::info!(account = %account.slug, queued, "reconciliation pass finished");
                        if queued > 0 {
                            self.wakeup.notify_waiters();
                        }
                        schedule.succeeded(&account.slug);
                        interval
                    }
                    Err(error) => {
                        let failures = schedule.failed(&account.slug);
                        let retry = self.sync_retry_delay(failures, interval);
                        tracing::warn!(
                            account = %account.slug, %error, retry_in_ms = retry.as_millis() as u64,
                            "reconciliation pass failed"
                        );
                        retry
                    }
                };
                schedule.next_at(&account.slug, now + wait);
            }
            tokio::select! {
                _ = tokio::time::sleep(sync::SYNC_TICK.min(schedule.until_next(now))) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// How long after `failures` failed passes in a row the next is tried: the retry delay, doubling, at most the
    /// interval.
    fn sync_retry_delay(&self, failures: i32, interval: Duration) -> Duration {
        let retries = RetryPolicy {
            max_retries: i32::MAX,
            base_delay: Duration::from_millis(self.args.retry_base_delay_ms),
        };
        retries.delay_after(failures).unwrap_or(interval).min(interval)
    }

    /// Every minute: rolls each account's finished work up into the analytics (`analytics::roll_up`), then queues
    /// its digest when a day or week is over.
    async fn run_rollups(&self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(ROLLUP_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            for account in self.accounts.all() {
                if self.roll_up(&account.slug).await {
                    self.queue_digest(&account.slug).await;
                }
            }
        }
    }

    /// Queues the account's digest of its last day or week, if it has one and it is not queued yet.
    async fn queue_digest(&self, account: &str) {
        match analytics::digest::queue_due(self.store.as_ref(), account, now_millis()).await {
            Ok(DigestOutcome::Queued) => tracing::info!(account, "analytics digest queued"),
            Ok(DigestOutcome::DestinationGone) => {
                tracing::warn!(
                    account,
                    "the analytics digest names a destination the account no longer has"
                )
            }
            Ok(DigestOutcome::AlreadyQueued | DigestOutcome::NotSet) => {}
            Err(error) => tracing::error!(account, %error, "queueing the analytics digest failed"),
        }
    }

    /// One rollup pass over `account`; whether it succeeded.
    async fn roll_up(&self, account: &str) -> bool {
        let tallies = self.accounts.tallies();
        match analytics::roll_up(self.store.as_ref(), tallies, account, &self.node, now_millis()).await {
            Ok(_) => true,
            Err(error) => {
                tracing::error!(account, %error, "analytics rollup failed");
                false
            }
        }
    }

    /// Hourly: deletes each account's finished events older than its retention, analytics older than
    /// `ANALYTICS_RETENTION_DAYS`, and audit lines older than `AUDIT_RETENTION_DAYS`.
    async fn run_retention(&self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            for account in self.accounts.all() {
                self.apply_retention(&account).await;
            }
            if self.args.analytics_retention_days > 0 {
                let cutoff = now_millis() - self.args.analytics_retention_days * DAY_MS;
                match self.store.delete_analytics_before(cutoff).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "retention: deleted old analytics"),
                    Err(error) => tracing::error!(%error, "analytics retention failed"),
                }
            }
            if self.args.audit_retention_days > 0 {
                let cutoff = now_millis() - self.args.audit_retention_days * DAY_MS;
                match self.store.delete_audit_before(cutoff).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "retention: deleted old audit lines"),
                    Err(error) => tracing::error!(%error, "audit retention failed"),
                }
            }
        }
    }

    async fn apply_retention(&self, account: &LiveAccount) {
        if account.retention_days <= 0 {
            return;
        }
        // Events are deleted only once the analytics hold them: the pass rolls up all but the last minute.
        if !self.roll_up(&account.slug).await {
            return;
        }
        let cutoff = now_millis() - account.retention_days * DAY_MS;
        match self.store.delete_finished_events_before(&account.slug, cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(
                account = %account.slug,
                deleted,
                days = account.retention_days,
                "retention: deleted old events"
            ),
            Err(error) => tracing::error!(account = %account.slug, %error, "retention cleanup failed"),
        }
    }
}

const DAY_MS: i64 = 24 * 3600 * 1000;

/// How often finished work is rolled up into the analytics.
const ROLLUP_INTERVAL: Duration = Duration::from_secs(60);

/// Claimed events split by object, each object's in the order they were claimed (change order).
fn by_object(claimed: Vec<ClaimedEvent>) -> Vec<Vec<ClaimedEvent>> {
    let mut objects: Vec<Vec<ClaimedEvent>> = Vec::new();
    for event in claimed {
        let same_object = |events: &&mut Vec<ClaimedEvent>| {
            events[0].account == event.account
                && events[0].object_type == event.object_type
                && events[0].object_uuid == event.object_uuid
        };
        match objects.iter_mut().find(same_object) {
            Some(events) => events.push(event),
            None => objects.push(vec![event]),
        }
    }
    objects
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(id: &str, object_uuid: &str) -> ClaimedEvent {
        ClaimedEvent {
            id: id.into(),
            account: "default".into(),
            format: "seed".into(),
            object_type: "job".into(),
            object_uuid: object_uuid.into(),
            event_type: "updated".into(),
            occurred_at: None,
            changes: serde_json::json!({}),
            attempts: 1,
            received_at: 0,
            lease_until: 0,
        }
    }

    #[test]
    fn a_lease_shorter_than_the_api_timeout_is_refused_unless_nothing_is_processed() {
        let args = |workers, lease_ms| ProcessorArgs {
            workers,
            lease_ms,
            ..ProcessorArgs::default()
        };
        let refused = args(4, 2_000).check_lease(3_000).unwrap_err();
        assert!(
            refused.contains("LEASE_MS (2000 ms)") && refused.contains("3000 ms"),
            "{refused}"
        );
        assert_eq!(args(4, 3_000).check_lease(3_000), Ok(()));
        assert_eq!(
            args(0, 2_000).check_lease(3_000),
            Ok(()),
            "a receive-only node holds no leases"
        );
        assert_eq!(ProcessorArgs::default().check_lease(10_000), Ok(()));
    }

    #[test]
    fn claimed_events_are_split_by_object_each_in_claim_order() {
        let events = vec![
            claimed("1", "a"),
            claimed("2", "b"),
            claimed("3", "a"),
            claimed("4", "c"),
            claimed("5", "b"),
        ];
        let ids: Vec<Vec<String>> = by_object(events)
            .into_iter()
            .map(|object| object.into_iter().map(|event| event.id).collect())
            .collect();
        assert_eq!(ids, [vec!["1", "3"], vec!["2", "5"], vec!["4"]]);
    }
}
