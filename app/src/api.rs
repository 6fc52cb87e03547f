//! The admin dashboard's server functions and the backend they reach.
//!
//! The functions run on the server and call a [`DashboardBackend`] found in the Leptos context; the server
//! crate implements it over its store, so the REST management API and these functions share one implementation.
//! Every function takes JSON (`input = Json`): a request a plain HTML form or a `no-cors` fetch can make is never
//! JSON, and the server refuses any other state-changing request (`server/src/csrf.rs`).

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use crate::error::AppError;
use crate::model::{EventDetail, EventPage, EventQuery, MinuteBucket, PipelineHealth, Stats};

#[cfg(feature = "ssr")]
use crate::session::{set_on_response, SessionCookie};
#[cfg(feature = "ssr")]
pub use backend::DashboardBackend;

#[cfg(feature = "ssr")]
mod backend {
    use std::sync::Arc;

    use super::AppError;
    use crate::model::{EventDetail, EventPage, EventQuery, MinuteBucket, PipelineHealth, Stats, TestEvent};

    /// What the admin dashboard needs from the server. Provided as `Arc<dyn DashboardBackend>` in the Leptos
    /// context, apart from the portal's and the realtime credentials' backends.
    #[async_trait::async_trait]
    pub trait DashboardBackend: Send + Sync + 'static {
        async fn stats(&self) -> Result<Stats, AppError>;
        async fn list_events(&self, query: EventQuery) -> Result<EventPage, AppError>;
        async fn event_detail(&self, event_id: &str) -> Result<EventDetail, AppError>;
        async fn pipeline_health(&self) -> Result<PipelineHealth, AppError>;
        /// Per-minute throughput, errors and latency over the last hour.
        async fn minute_buckets(&self) -> Result<Vec<MinuteBucket>, AppError>;
        /// Queues a test event as if it had been received; returns its id.
        async fn send_test_event(&self, event: TestEvent) -> Result<String, AppError>;
        /// Puts one failed (or finished) event back in the queue.
        async fn retry_event(&self, event_id: &str) -> Result<(), AppError>;
        /// Puts every failed event back in the queue, or only counts them when `dry_run`.
        async fn retry_failed_events(&self, dry_run: bool) -> Result<u64, AppError>;
        /// Deletes finished events older than `older_than_days`; returns how many.
        async fn cleanup(&self, older_than_days: i64) -> Result<u64, AppError>;
        /// Checks the admin token and opens a session; returns the session's cookie value.
        async fn sign_in(&self, admin_token: &str) -> Result<String, AppError>;
        async fn session_is_active(&self, session: &str) -> Result<bool, AppError>;
        async fn sign_out(&self, session: &str) -> Result<(), AppError>;
        /// How long a session lasts, for the cookie's Max-Age.
        fn session_ttl_seconds(&self) -> i64;
        /// Whether cookies must carry `Secure` (the public URL is https).
        fn secure_cookies(&self) -> bool;
    }

    pub(super) fn backend() -> Result<Arc<dyn DashboardBackend>, AppError> {
        leptos::prelude::use_context::<Arc<dyn DashboardBackend>>()
            .ok_or_else(|| AppError::Unavailable("no backend in context".into()))
    }
}

#[cfg(feature = "ssr")]
async fn require_session() -> Result<std::sync::Arc<dyn DashboardBackend>, AppError> {
    let backend = backend::backend()?;
    match crate::session::current(SessionCookie::Admin).await? {
        Some(session) if backend.session_is_active(&session).await? => Ok(backend),
        _ => Err(AppError::NotSignedIn),
    }
}

/// Whether the visitor holds an active admin session.
#[server(input = Json)]
pub async fn session_status() -> Result<bool, AppError> {
    let backend = backend::backend()?;
    match crate::session::current(SessionCookie::Admin).await? {
        Some(session) => backend.session_is_active(&session).await,
        None => Ok(false),
    }
}

/// Exchanges the admin token for an HttpOnly session cookie.
#[server(input = Json)]
pub async fn sign_in(admin_token: String) -> Result<(), AppError> {
    let backend = backend::backend()?;
    let session = backend.sign_in(admin_token.trim()).await?;
    set_on_response(
        SessionCookie::Admin,
        &session,
        backend.session_ttl_seconds(),
        backend.secure_cookies(),
    );
    Ok(())
}

/// Ends the session and clears its cookie.
#[server(input = Json)]
pub async fn sign_out() -> Result<(), AppError> {
    let backend = backend::backend()?;
    if let Some(session) = crate::session::current(SessionCookie::Admin).await? {
        backend.sign_out(&session).await?;
    }
    set_on_response(SessionCookie::Admin, "", 0, backend.secure_cookies());
    Ok(())
}

#[server(input = Json)]
pub async fn get_stats() -> Result<Stats, AppError> {
    require_session().await?.stats().await
}

/// A page of events, newest first.
#[server(input = Json)]
pub async fn list_events(query: EventQuery) -> Result<EventPage, AppError> {
    require_session().await?.list_events(query).await
}

#[server(input = Json)]
pub async fn get_event_detail(event_id: String) -> Result<EventDetail, AppError> {
    require_session().await?.event_detail(&event_id).await
}

#[server(input = Json)]
pub async fn get_pipeline_health() -> Result<PipelineHealth, AppError> {
    require_session().await?.pipeline_health().await
}

#[server(input = Json)]
pub async fn get_minute_buckets() -> Result<Vec<MinuteBucket>, AppError> {
    require_session().await?.minute_buckets().await
}

#[server(input = Json)]
pub async fn retry_event(event_id: String) -> Result<(), AppError> {
    require_session().await?.retry_event(&event_id).await
}

/// Retries every failed event, or only counts them when `dry_run`.
#[server(input = Json)]
pub async fn retry_failed_events(dry_run: bool) -> Result<u64, AppError> {
    require_session().await?.retry_failed_events(dry_run).await
}

#[server(input = Json)]
pub async fn cleanup_events(older_than_days: i64) -> Result<u64, AppError> {
    require_session().await?.cleanup(older_than_days).await
}

#[server(input = Json)]
pub async fn send_test_event(event: crate::model::TestEvent) -> Result<String, AppError> {
    require_session().await?.send_test_event(event).await
}
