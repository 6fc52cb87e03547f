//! The integration suites, linked into one test binary: each module starts real servers on port 0 with fresh
//! databases and talks to them over HTTP and websockets. The PostgreSQL suites are `#[ignore]`d here and run by
//! `make test-postgres` with `--ignored`.

mod common;

mod accounts;
mod alerts;
mod analytics;
mod api;
mod api_faults;
mod attachments;
mod audit_trail;
mod backup;
mod clean_errors;
mod cluster;
mod connections;
mod crash;
mod hostile_pages;
mod ingest_formats;
mod leases;
mod metrics;
mod mock_servicem8;
mod oauth;
mod openapi;
mod portal;
mod processing;
mod proxies;
mod realtime;
mod realtime_accounts;
mod realtime_changes;
mod realtime_postgres;
mod realtime_presence_postgres;
mod realtime_updates;
mod role_matrix;
mod rules_deliveries;
mod scheduling;
mod secret_logs;
mod server_function_roles;
mod simulate;
mod static_assets;
mod store_conformance;
mod stored_bodies;
mod throttles;
mod tls;
mod two_accounts;
