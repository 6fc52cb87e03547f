//! Deliveries: the messages rules send to destinations, carried out by delivery workers (`worker`) with retries
//! on a schedule and a circuit breaker per destination (`policy`), their finishes committed together
//! (`finishing`).

mod finishing;
mod opened;
pub mod policy;
mod worker;

use clap::Args;

pub use opened::{open_destination, open_secrets, DestinationUnusable};
pub use worker::Deliverer;

use policy::RetrySchedule;

#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// Workers sending rules' deliveries to destinations; 0 leaves them to other nodes.
    #[arg(long, env = "DELIVERY_WORKERS", default_value_t = 2)]
    pub delivery_workers: usize,

    /// Deliveries a worker claims at once (and sends side by side).
    #[arg(long, env = "DELIVERY_BATCH", default_value_t = 32)]
    pub delivery_batch: u32,

    /// The delay before each attempt of a delivery, comma-separated; after the last the delivery fails.
    #[arg(long, env = "DELIVERY_RETRY_SCHEDULE", default_value = "0s,5s,5m,30m,2h,5h,10h")]
    pub delivery_retry_schedule: RetrySchedule,

    /// Consecutive failed sends after which a destination's circuit opens.
    #[arg(long, env = "DELIVERY_CIRCUIT_FAILURES", default_value_t = 5)]
    pub delivery_circuit_failures: i64,

    /// How long an open circuit holds a destination's deliveries before one goes as a probe, in seconds.
    #[arg(long, env = "DELIVERY_CIRCUIT_COOL_DOWN_SECONDS", default_value_t = 60)]
    pub delivery_circuit_cool_down_seconds: u64,

    /// Sends to one destination at once, per node.
    #[arg(long, env = "DELIVERY_CONCURRENCY_PER_DESTINATION", default_value_t = 4)]
    pub delivery_concurrency_per_destination: usize,

    /// Sends to one destination per second, per node (a burst of as many is allowed).
    #[arg(long, env = "DELIVERY_RATE_PER_DESTINATION", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub delivery_rate_per_destination: u32,

    /// How often idle delivery workers look for due deliveries, in milliseconds (new ones wake them at once).
    #[arg(long, env = "DELIVERY_POLL_INTERVAL_MS", default_value_t = 1_000)]
    pub delivery_poll_interval_ms: u64,
}

impl Default for DeliveryArgs {
    fn default() -> Self {
        crate::flags::defaults()
    }
}
