//! ServiceM8: its REST API and webhook subscriptions. (A simulated account that speaks them, for demo mode and
//! tests, is the `servicem8-mock` crate.)

pub mod budget;
pub mod client;
pub mod oauth;
pub mod subscriptions;
pub mod sync;
