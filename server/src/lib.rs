//! SM8 Webhooks server: receives ServiceM8 webhooks, stores them durably and serves the dashboard.

pub mod auth;
pub mod backend;
pub mod config;
pub mod error;
pub mod health;
pub mod ingest;
pub mod manage;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod web;
