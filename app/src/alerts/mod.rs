//! Alerts in the dashboard: the account's alerts with their state, what users did to them, and their history.
//! The data shapes (`model`) and the server functions with the backend they reach (`api`); the alerts page and
//! the banner build on them.

pub mod api;
pub mod model;
