//! The admin dashboard's server functions and the backend they reach.
//!
//! The functions run on the server and call a [`DashboardBackend`] found in the Leptos context; the server
//! crate implements it over its store, so the REST management API and these functions share one implementation.
//! Each function first establishes the visitor's [`Access`] to the account they chose (the session cookie and
//! the account cookie, `require_access`); the backend checks the role each action needs.
//! Every function takes JSON (`input = Json`): a request a plain HTML form or a `no-cors` fetch can make is never
//! JSON, and the server refuses any other state-changing request (`server/src/csrf.rs`).

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use crate::error::AppError;
use crate::model::{EventDetail, EventPage, EventQuery, MinuteBucket, PipelineHealth, Stats};

#[cfg(feature = "ssr")]
pub use backend::{require_access, DashboardBackend};

#[cfg(feature = "ssr")]
mod backend {
    use std::sync::Arc;

    use super::AppError;
    use crate::access::{Access, ClientAddress};
    use crate::model::{EventDetail, EventPage, EventQuery, MinuteBucket, PipelineHealth, Stats, TestEvent};
    use crate::session::SessionCookie;

    /// What the admin dashboard needs from the server. Provided as `Arc<dyn DashboardBackend>` in the Leptos
    /// context, apart from the portal's, the directory's and the realtime credentials' backends.
    #[async_trait::async_trait]
    pub trait DashboardBackend: Send + Sync + 'static {
        /// The signed-in user's access to `account` (their chosen one; without a choice, their first):
        /// `NotSignedIn` without an active session, `Forbidden` for an account they are no member of.
        async fn access(
            &self,
            session: &str,
            account: Option<&str>,
            client_address: Option<String>,
        ) -> Result<Access, AppError>;
        async fn stats(&self, access: &Access) -> Result<Stats, AppError>;
        async fn list_events(&self, access: &Access, query: EventQuery) -> Result<EventPage, AppError>;
        async fn event_detail(&self, access: &Access, event_id: &str) -> Result<EventDetail, AppError>;
        async fn pipeline_health(&self, access: &Access) -> Result<PipelineHealth, AppError>;
        /// Per-minute throughput, errors and latency over the last hour.
        async fn minute_buckets(&self, access: &Access) -> Result<Vec<MinuteBucket>, AppError>;
        /// Queues a test event as if it had been received; returns its id. Needs the admin role.
        async fn send_test_event(&self, access: &Access, event: TestEvent) -> Result<String, AppError>;
        /// Puts one failed (or finished) event back in the queue. Needs the admin role.
        async fn retry_event(&self, access: &Access, event_id: &str) -> Result<(), AppError>;
        /// Puts every failed event back in the queue, or only counts them when `dry_run`. Retrying needs the
        /// admin role.
        async fn retry_failed_events(&self, access: &Access, dry_run: bool) -> Result<u64, AppError>;
        /// Deletes finished events older than `older_than_days`; returns how many. Needs the admin role.
        async fn cleanup(&self, access: &Access, older_than_days: i64) -> Result<u64, AppError>;
    }

    pub(super) fn backend() -> Result<Arc<dyn DashboardBackend>, AppError> {
        leptos::prelude::use_context::<Arc<dyn DashboardBackend>>()
            .ok_or_else(|| AppError::Unavailable("no backend in context".into()))
    }

    /// The backend and the visitor's access to their chosen account, from the request's cookies.
    pub async fn require_access() -> Result<(Arc<dyn DashboardBackend>, Access), AppError> {
        let backend = backend()?;
        let headers = crate::session::request_headers().await?;
        let session = SessionCookie::Admin
            .value_in(&headers)
            .ok_or(AppError::NotSignedIn)?
            .to_owned();
        let account = SessionCookie::Account.value_in(&headers).map(str::to_owned);
        let client_address = leptos::prelude::use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<ClientAddress>().map(|address| address.0.clone()));
        let access = backend.access(&session, account.as_deref(), client_address).await?;
        Ok((backend, access))
    }
}

#[server(input = Json)]
pub async fn get_stats() -> Result<Stats, AppError> {
    let (backend, access) = require_access().await?;
    backend.stats(&access).await
}

/// A page of events, newest first.
#[server(input = Json)]
pub async fn list_events(query: EventQuery) -> Result<EventPage, AppError> {
    let (backend, access) = require_access().await?;
    backend.list_events(&access, query).await
}

#[server(input = Json)]
pub async fn get_event_detail(event_id: String) -> Result<EventDetail, AppError> {
    let (backend, access) = require_access().await?;
    backend.event_detail(&access, &event_id).await
}

#[server(input = Json)]
pub async fn get_pipeline_health() -> Result<PipelineHealth, AppError> {
    let (backend, access) = require_access().await?;
    backend.pipeline_health(&access).await
}

#[server(input = Json)]
pub async fn get_minute_buckets() -> Result<Vec<MinuteBucket>, AppError> {
    let (backend, access) = require_access().await?;
    backend.minute_buckets(&access).await
}

#[server(input = Json)]
pub async fn retry_event(event_id: String) -> Result<(), AppError> {
    let (backend, access) = require_access().await?;
    backend.retry_event(&access, &event_id).await
}

/// Retries every failed event, or only counts them when `dry_run`.
#[server(input = Json)]
pub async fn retry_failed_events(dry_run: bool) -> Result<u64, AppError> {
    let (backend, access) = require_access().await?;
    backend.retry_failed_events(&access, dry_run).await
}

#[server(input = Json)]
pub async fn cleanup_events(older_than_days: i64) -> Result<u64, AppError> {
    let (backend, access) = require_access().await?;
    backend.cleanup(&access, older_than_days).await
}

#[server(input = Json)]
pub async fn send_test_event(event: crate::model::TestEvent) -> Result<String, AppError> {
    let (backend, access) = require_access().await?;
    backend.send_test_event(&access, event).await
}
