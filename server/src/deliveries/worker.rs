//! Delivery workers: each claims due deliveries under a lease, sends them (several at once, at most
//! `per_destination` to one destination at a time and `DELIVERY_RATE_PER_DESTINATION` a second), records every
//! attempt, schedules the next or gives up, and keeps each destination's circuit.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::finishing::Finishes;
use super::opened::{open_destination, DestinationUnusable};
use super::policy::{CircuitBreaker, RetrySchedule};
use super::DeliveryArgs;
use crate::destinations::{self, Attempt};
use crate::metrics;
use crate::rules::MessageBody;
use crate::sealing::Sealer;
use crate::store::outbound::{
    AttemptReport, ClaimedDelivery, DeliveryClaim, DeliveryFinish, DeliveryOutcome, DestinationRow,
};
use crate::store::{now_millis, Store, StoreError};
use crate::updates::{DeliveryNotice, PipelineUpdate, UpdateSender};

/// How long a claim holds a delivery: longer than the slowest send (an SMTP conversation's 60 s).
const LEASE_MS: i64 = 120_000;
/// How long a delivery waits when its destination was paused, or its circuit opened, after it was claimed.
const HOLD_BACK_MS: i64 = 1_000;

/// The delivery workers of one node.
pub struct Deliverer {
    store: Arc<dyn Store>,
    sealer: Sealer,
    client: reqwest::Client,
    schedule: RetrySchedule,
    breaker: CircuitBreaker,
    node: String,
    claim_limit: u32,
    per_destination: usize,
    poll: Duration,
    wake: Notify,
    sending: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Sends per second to each destination.
    pace: DefaultKeyedRateLimiter<String>,
    /// Where each attempt's end is announced, for the dashboards' delivery logs.
    updates: UpdateSender,
    finishes: Finishes,
}

impl Deliverer {
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Sealer,
        args: &DeliveryArgs,
        node: String,
        updates: UpdateSender,
    ) -> Arc<Deliverer> {
        Arc::new(Deliverer {
            store,
            sealer,
            client: destinations::http_client(),
            schedule: args.delivery_retry_schedule.clone(),
            breaker: CircuitBreaker {
                failure_threshold: args.delivery_circuit_failures,
                cool_down: Duration::from_secs(args.delivery_circuit_cool_down_seconds),
            },
            node,
            claim_limit: args.delivery_batch,
            per_destination: args.delivery_concurrency_per_destination.max(1),
            poll: Duration::from_millis(args.delivery_poll_interval_ms.max(10)),
            wake: Notify::new(),
            sending: Mutex::new(HashMap::new()),
            pace: RateLimiter::keyed(Quota::per_second(
                NonZeroU32::new(args.delivery_rate_per_destination).unwrap_or(NonZeroU32::MIN),
            )),
            updates,
            finishes: Finishes::default(),
        })
    }

    /// Tells the workers new deliveries are due.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Runs `workers` workers until `shutdown`.
    pub fn spawn(self: &Arc<Self>, workers: usize, shutdown: CancellationToken) -> tokio::task::JoinSet<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..workers {
            let deliverer = self.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move { deliverer.run(worker, shutdown).await });
        }
        tasks
    }

    async fn run(&self, worker: usize, shutdown: CancellationToken) {
        let name = format!("{}/deliveries-{worker}", self.node);
        while !shutdown.is_cancelled() {
            let woken = self.wake.notified();
            let handled = match self.step(&name).await {
                Ok(handled) => handled,
                Err(error) => {
                    // SQLite's writer can be busy with another process's write: a skipped round, not a fault.
                    tracing::warn!(%error, "claiming deliveries failed; trying again");
                    0
                }
            };
            if handled == 0 {
                tokio::select! {
                    () = woken => {}
                    () = tokio::time::sleep(self.poll) => {}
                    () = shutdown.cancelled() => {}
                }
            }
        }
    }

    /// Claims due deliveries as `worker` and carries them out; how many it claimed.
    pub async fn step(&self, worker: &str) -> Result<usize, StoreError> {
        let now = now_millis();
        let claimed = self
            .store
            .claim_deliveries(&DeliveryClaim {
                now,
                lease_until: now + LEASE_MS,
                limit: self.claim_limit,
                worker,
                circuit_cooldown_ms: self.breaker.cool_down.as_millis() as i64,
            })
            .await?;
        let count = claimed.len();
        let mut destinations: HashMap<String, Option<DestinationRow>> = HashMap::new();
        for delivery in &claimed {
            if !destinations.contains_key(&delivery.destination_id) {
                let row = self
                    .store
                    .destination(&delivery.account, &delivery.destination_id)
                    .await?;
                destinations.insert(delivery.destination_id.clone(), row);
            }
        }
        // A destination whose circuit is open is due for a probe: one delivery goes, the rest wait for its
        // outcome.
        let mut probing = std::collections::HashSet::new();
        let mut work = Vec::with_capacity(count);
        for delivery in claimed {
            let row = destinations.get(&delivery.destination_id).cloned().flatten();
            let held_back = match &row {
                Some(row) if row.paused_at.is_some() => true,
                Some(row) if row.circuit_opened_at.is_some() => !probing.insert(row.id.clone()),
                _ => false,
            };
            if held_back {
                self.store.postpone_delivery(&delivery, now + HOLD_BACK_MS).await?;
            } else {
                work.push((delivery, row));
            }
        }
        futures_util::stream::iter(work)
            .for_each_concurrent(None, |(delivery, row)| async move {
                if let Err(error) = self.deliver(&delivery, row).await {
                    tracing::warn!(%error, delivery = %delivery.id, "recording a delivery failed; its lease will bring it back");
                }
            })
            .await;
        Ok(count)
    }

    async fn deliver(&self, delivery: &ClaimedDelivery, row: Option<DestinationRow>) -> Result<(), StoreError> {
        let started_at = now_millis();
        let Some(row) = row else {
            // Deleted since the claim: the store has failed the delivery already.
            return Ok(());
        };
        if delivery.attempts as usize > self.schedule.attempts() {
            let reason = format!("gave up after {} attempts", self.schedule.attempts());
            return self
                .finish(
                    delivery,
                    &row,
                    unsent(started_at),
                    DeliveryOutcome::Failed(reason),
                    None,
                )
                .await;
        }
        let destination = match open_destination(&row, &self.sealer) {
            Ok(destination) => destination,
            Err(DestinationUnusable(reason)) => {
                let outcome = DeliveryOutcome::Failed(format!("the destination cannot be used: {reason}"));
                return self.finish(delivery, &row, unsent(started_at), outcome, None).await;
            }
        };
        let body: MessageBody = match serde_json::from_value(delivery.message.clone()) {
            Ok(body) => body,
            Err(error) => {
                let outcome = DeliveryOutcome::Failed(format!("the stored message cannot be read: {error}"));
                return self.finish(delivery, &row, unsent(started_at), outcome, None).await;
            }
        };
        let lane = self.lane(&row.id);
        let _turn = lane.acquire().await.expect("lanes are never closed");
        self.pace.until_key_ready(&row.id).await;
        let report = destinations::send(
            &self.client,
            &destination,
            &Attempt {
                delivery_id: &delivery.id,
                body: &body,
                at: time::OffsetDateTime::now_utc(),
                subject: None,
            },
        )
        .await;
        let attempt = AttemptReport {
            started_at,
            duration_ms: report.duration.as_millis() as i64,
            http_status: report.status.map(i32::from),
            response_excerpt: report.response_excerpt.clone(),
        };
        let delivered = report.is_delivered();
        let outcome = match report.error() {
            None => DeliveryOutcome::Delivered,
            Some(error) => match self.schedule.delay_after(delivery.attempts as u32) {
                Some(delay) => DeliveryOutcome::Retry {
                    next_attempt_at: now_millis() + delay.as_millis() as i64,
                    error: error.to_string(),
                },
                None => DeliveryOutcome::Failed(error.to_string()),
            },
        };
        metrics::record_delivery(row.kind.as_str(), &outcome, report.duration);
        self.finish(delivery, &row, attempt, outcome, Some(delivered)).await
    }

    /// Records the attempt and, for one that reached the destination or failed to, its circuit.
    async fn finish(
        &self,
        delivery: &ClaimedDelivery,
        row: &DestinationRow,
        attempt: AttemptReport,
        outcome: DeliveryOutcome,
        delivered: Option<bool>,
    ) -> Result<(), StoreError> {
        if let DeliveryOutcome::Failed(reason) = &outcome {
            tracing::warn!(delivery = %delivery.id, destination = %row.name, %reason, "delivery failed");
        }
        let finish = DeliveryFinish {
            delivery: delivery.clone(),
            report: attempt,
            outcome: outcome.clone(),
        };
        if !self.finishes.record(&self.store, finish).await? {
            tracing::warn!(delivery = %delivery.id, "lease lost: another worker has the delivery; nothing recorded");
            return Ok(());
        }
        let _ = self.updates.send(PipelineUpdate::Delivery(DeliveryNotice {
            account: delivery.account.clone(),
            delivery_id: delivery.id.clone(),
            destination_id: delivery.destination_id.clone(),
            event_id: delivery.event_id.clone(),
            status: outcome.status().as_str().to_owned(),
        }));
        if let Some(delivered) = delivered {
            self.record_circuit(row, delivered).await?;
        }
        Ok(())
    }

    /// Moves the destination's circuit by one attempt, reading it again when another worker moved it meanwhile.
    async fn record_circuit(&self, row: &DestinationRow, delivered: bool) -> Result<(), StoreError> {
        let mut read = row.circuit();
        for _ in 0..5 {
            let change = self.breaker.after_attempt(read, delivered, now_millis());
            if change.state == read {
                return Ok(());
            }
            if self
                .store
                .record_circuit(&row.account, &row.id, read, change.state)
                .await?
            {
                if change.opened {
                    tracing::warn!(account = %row.account, destination = %row.name, failures = change.state.consecutive_failures,
                        "destination circuit opened: its deliveries wait for the cool-down, then a probe");
                }
                if change.closed {
                    tracing::info!(account = %row.account, destination = %row.name, "destination circuit closed");
                }
                metrics::set_circuit(&row.account, &row.name, change.state.opened_at.is_some());
                return Ok(());
            }
            match self.store.destination(&row.account, &row.id).await? {
                Some(current) => read = current.circuit(),
                None => return Ok(()),
            }
        }
        Ok(())
    }

    /// The semaphore that lets at most `per_destination` sends to one destination run at once.
    fn lane(&self, destination: &str) -> Arc<Semaphore> {
        self.sending
            .lock()
            .expect("lanes lock")
            .entry(destination.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_destination)))
            .clone()
    }
}

/// The record of an attempt that sent nothing.
fn unsent(started_at: i64) -> AttemptReport {
    AttemptReport {
        started_at,
        duration_ms: 0,
        http_status: None,
        response_excerpt: None,
    }
}
