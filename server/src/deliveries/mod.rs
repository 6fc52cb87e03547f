//! Deliveries: the messages rules send to destinations, carried out by delivery workers with retries on a
//! schedule and a circuit breaker per destination.

pub mod policy;
