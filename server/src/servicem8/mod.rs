//! ServiceM8: its REST API and webhook subscriptions, and a simulated account that speaks them.

pub mod budget;
pub mod client;
pub mod mock;
pub mod subscriptions;
pub mod sync;
