//! SM8 Webhooks server: receives ServiceM8 webhooks, stores them durably and serves the dashboard.

pub mod attachments;
pub mod auth;
pub mod backend;
pub mod bench;
pub mod cli;
pub mod config;
pub mod error;
pub mod group_commit;
pub mod health;
pub mod ingest;
pub mod manage;
pub mod metrics;
pub mod portal;
pub mod processor;
pub mod prometheus;
pub mod queue;
pub mod realtime;
pub mod secret;
pub mod servicem8;
pub mod simulate;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod updates;
pub mod web;
