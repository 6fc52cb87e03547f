//! The dashboard's server functions and the backend they reach.
//!
//! The functions run on the server and call a [`DashboardBackend`] found in the Leptos context; the server
//! crate implements it over its store, so the REST management API and these functions share one implementation.

use leptos::prelude::*;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

use crate::model::{EventDetail, EventPage, EventQuery, MinuteBucket, PipelineHealth, Stats};

/// Name of the HttpOnly cookie that carries an admin session.
pub const SESSION_COOKIE: &str = "sm8_admin_session";

/// Why a dashboard request failed, as the browser sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("Sign in to continue.")]
    NotSignedIn,
    #[error("That admin token is not valid.")]
    InvalidAdminToken,
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("The server cannot answer right now: {0}")]
    Unavailable(String),
    #[error("Request failed: {0}")]
    Request(ServerFnErrorErr),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Request(value)
    }
}

#[cfg(feature = "ssr")]
pub use backend::DashboardBackend;

#[cfg(feature = "ssr")]
mod backend {
    use std::sync::Arc;

    use super::AppError;
    use crate::model::{EventDetail, EventPage, EventQuery, MinuteBucket, PipelineHealth, Stats, TestEvent};

    /// What the dashboard needs from the server. Provided as `Arc<dyn DashboardBackend>` in the Leptos context.
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

        // Realtime and client portal (app/src/realtime, app/src/portal).
        /// Socket key and an access token for `audience`.
        fn realtime_credentials(
            &self,
            audience: crate::realtime::RealtimeAudience,
        ) -> Result<crate::realtime::RealtimeCredentials, AppError>;
        /// The company of an active portal session (the cookie value), if any.
        async fn portal_session_company(&self, session: &str) -> Result<Option<String>, AppError>;
        async fn portal_sign_out(&self, session: &str) -> Result<(), AppError>;
        async fn portal_overview(&self, company_uuid: &str) -> Result<crate::portal::model::PortalOverview, AppError>;
        /// One job of `company_uuid`: `NotFound` when it is missing or belongs to another company.
        async fn portal_job(
            &self,
            company_uuid: &str,
            job_uuid: &str,
        ) -> Result<crate::portal::model::PortalJobDetail, AppError>;
    }

    pub(super) fn backend() -> Result<Arc<dyn DashboardBackend>, AppError> {
        leptos::prelude::use_context::<Arc<dyn DashboardBackend>>()
            .ok_or_else(|| AppError::Unavailable("no backend in context".into()))
    }
}

/// The value of the session cookie among `headers`, if any.
#[cfg(feature = "ssr")]
pub fn session_from_headers(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// Reads the session cookie of the current request, if any.
#[cfg(feature = "ssr")]
async fn session_cookie() -> Result<Option<String>, AppError> {
    let headers: http::HeaderMap = leptos_axum::extract().await.map_err(AppError::Request)?;
    Ok(session_from_headers(&headers).map(str::to_owned))
}

#[cfg(feature = "ssr")]
async fn require_session() -> Result<std::sync::Arc<dyn DashboardBackend>, AppError> {
    let backend = backend::backend()?;
    match session_cookie().await? {
        Some(session) if backend.session_is_active(&session).await? => Ok(backend),
        _ => Err(AppError::NotSignedIn),
    }
}

#[cfg(feature = "ssr")]
fn set_session_cookie(value: &str, max_age: i64, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    if let (Some(response), Ok(cookie)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        http::HeaderValue::from_str(&cookie),
    ) {
        response.append_header(http::header::SET_COOKIE, cookie);
    }
}

/// Whether the visitor holds an active admin session.
#[server]
pub async fn session_status() -> Result<bool, AppError> {
    let backend = backend::backend()?;
    match session_cookie().await? {
        Some(session) => backend.session_is_active(&session).await,
        None => Ok(false),
    }
}

/// Exchanges the admin token for an HttpOnly session cookie.
#[server]
pub async fn sign_in(admin_token: String) -> Result<(), AppError> {
    let backend = backend::backend()?;
    let session = backend.sign_in(admin_token.trim()).await?;
    set_session_cookie(&session, backend.session_ttl_seconds(), backend.secure_cookies());
    Ok(())
}

/// Ends the session and clears its cookie.
#[server]
pub async fn sign_out() -> Result<(), AppError> {
    let backend = backend::backend()?;
    if let Some(session) = session_cookie().await? {
        backend.sign_out(&session).await?;
    }
    set_session_cookie("", 0, backend.secure_cookies());
    Ok(())
}

#[server]
pub async fn get_stats() -> Result<Stats, AppError> {
    require_session().await?.stats().await
}

/// A page of events, newest first.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn list_events(query: EventQuery) -> Result<EventPage, AppError> {
    require_session().await?.list_events(query).await
}

#[server(input = leptos::server_fn::codec::Json)]
pub async fn get_event_detail(event_id: String) -> Result<EventDetail, AppError> {
    require_session().await?.event_detail(&event_id).await
}

#[server]
pub async fn get_pipeline_health() -> Result<PipelineHealth, AppError> {
    require_session().await?.pipeline_health().await
}

#[server]
pub async fn get_minute_buckets() -> Result<Vec<MinuteBucket>, AppError> {
    require_session().await?.minute_buckets().await
}

#[server(input = leptos::server_fn::codec::Json)]
pub async fn retry_event(event_id: String) -> Result<(), AppError> {
    require_session().await?.retry_event(&event_id).await
}

/// Retries every failed event, or only counts them when `dry_run`.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn retry_failed_events(dry_run: bool) -> Result<u64, AppError> {
    require_session().await?.retry_failed_events(dry_run).await
}

#[server(input = leptos::server_fn::codec::Json)]
pub async fn cleanup_events(older_than_days: i64) -> Result<u64, AppError> {
    require_session().await?.cleanup(older_than_days).await
}

#[server(input = leptos::server_fn::codec::Json)]
pub async fn send_test_event(event: crate::model::TestEvent) -> Result<String, AppError> {
    require_session().await?.send_test_event(event).await
}
