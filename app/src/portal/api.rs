//! The portal's server functions and the backend they reach.
//!
//! A portal session is opened by `GET /portal/enter?token=` on the server (one-time link) and carried by the
//! HttpOnly cookie `SessionCookie::Portal`. Every function here answers only about the session's company: a job of
//! another company is `NotFound`, exactly like a job that does not exist. Over HTTP they live under
//! `/api/portal/` and answer errors with their status (401 without a session, 404 for another's job).

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use super::model::{PortalJobDetail, PortalOverview};
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::session::{set_on_response, SessionCookie};

#[cfg(feature = "ssr")]
pub use server_side::PortalBackend;

/// The jobs of the session's company.
#[server(name = FetchPortalJobs, prefix = "/api/portal", endpoint = "jobs", input = Json)]
pub async fn portal_jobs() -> Result<PortalOverview, AppError> {
    let (backend, company) = server_side::portal_company().await?;
    backend.portal_overview(&company).await
}

/// One job of the session's company, with its activities and attachments; `NotFound` for any other job.
#[server(name = FetchPortalJob, prefix = "/api/portal", endpoint = "job", input = Json)]
pub async fn portal_job(job_uuid: String) -> Result<PortalJobDetail, AppError> {
    let (backend, company) = server_side::portal_company().await?;
    backend.portal_job(&company, job_uuid.trim()).await
}

/// Ends the portal session and clears its cookie.
#[server(name = PortalSignOut, prefix = "/api/portal", endpoint = "sign_out", input = Json)]
pub async fn portal_sign_out() -> Result<(), AppError> {
    let backend = server_side::backend()?;
    if let Some(session) = crate::session::current(SessionCookie::Portal).await? {
        backend.portal_sign_out(&session).await?;
    }
    set_on_response(SessionCookie::Portal, "", 0, backend.secure_cookies());
    Ok(())
}

#[cfg(feature = "ssr")]
mod server_side {
    use std::sync::Arc;

    use crate::error::AppError;
    use crate::portal::model::{PortalCompany, PortalJobDetail, PortalOverview};
    use crate::session::SessionCookie;

    /// What the portal needs from the server, and nothing of the dashboard's. Provided as
    /// `Arc<dyn PortalBackend>` in the Leptos context.
    #[async_trait::async_trait]
    pub trait PortalBackend: Send + Sync + 'static {
        /// The account and company of an active portal session (the cookie value), if any.
        async fn portal_session_company(&self, session: &str) -> Result<Option<PortalCompany>, AppError>;
        async fn portal_sign_out(&self, session: &str) -> Result<(), AppError>;
        async fn portal_overview(&self, company: &PortalCompany) -> Result<PortalOverview, AppError>;
        /// One job of the company: `NotFound` when it is missing or belongs to another company.
        async fn portal_job(&self, company: &PortalCompany, job_uuid: &str) -> Result<PortalJobDetail, AppError>;
        /// Whether cookies must carry `Secure` (the public URL is https).
        fn secure_cookies(&self) -> bool;
    }

    pub(super) fn backend() -> Result<Arc<dyn PortalBackend>, AppError> {
        leptos::prelude::use_context::<Arc<dyn PortalBackend>>()
            .ok_or_else(|| AppError::Unavailable("no portal backend in context".into()))
    }

    /// The backend and the company of the request's portal session; `NotSignedIn` without an active one.
    pub(super) async fn portal_company() -> Result<(Arc<dyn PortalBackend>, PortalCompany), AppError> {
        let backend = backend()?;
        let session = crate::session::current(SessionCookie::Portal)
            .await?
            .ok_or(AppError::NotSignedIn)?;
        let company = backend
            .portal_session_company(&session)
            .await?
            .ok_or(AppError::NotSignedIn)?;
        Ok((backend, company))
    }
}
