//! Rules and destinations in the dashboard: what an account's rules send where, and how each delivery went.
//! The data shapes (`model`) and the server functions with the backend they reach (`api`); the pages build on
//! them.

pub mod api;
pub mod model;
