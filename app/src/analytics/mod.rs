//! Analytics in the dashboard: what the pipeline did over a range of hours or days, from rollups that outlive
//! the events. The data shapes (`model`) and the server function with the backend it reaches (`api`); the page
//! (`admin::pages::analytics`) builds on them.

pub mod api;
pub mod model;
