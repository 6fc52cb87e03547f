//! The portal's server functions and its session cookie.
//!
//! A portal session is opened by `GET /portal/enter?token=` on the server (one-time link) and carried by the
//! HttpOnly cookie [`PORTAL_SESSION_COOKIE`]. Every function here answers only about the session's company: a job
//! of another company is `NotFound`, exactly like a job that does not exist. Over HTTP they live under
//! `/api/portal/` and answer errors with a matching status (401 without a session, 404 for another's job).

use leptos::prelude::*;

use super::model::{PortalJobDetail, PortalOverview};
use crate::api::AppError;

/// Name of the HttpOnly cookie that carries a portal session.
pub const PORTAL_SESSION_COOKIE: &str = "sm8_portal_session";
/// How long a portal session lasts: 30 days.
pub const PORTAL_SESSION_TTL_SECONDS: i64 = 30 * 24 * 60 * 60;

/// The `Set-Cookie` value for a portal session (an empty value with `max_age` 0 ends it). SameSite=Lax, so the
/// session survives arriving from a link in an email.
pub fn portal_session_cookie(value: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{PORTAL_SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// The jobs of the session's company.
#[server(name = FetchPortalJobs, prefix = "/api/portal", endpoint = "jobs")]
pub async fn portal_jobs() -> Result<PortalOverview, AppError> {
    with_status(
        async {
            let (backend, company_uuid) = portal_company().await?;
            backend.portal_overview(&company_uuid).await
        }
        .await,
    )
}

/// One job of the session's company, with its activities and attachments; `NotFound` for any other job.
#[server(name = FetchPortalJob, prefix = "/api/portal", endpoint = "job", input = leptos::server_fn::codec::Json)]
pub async fn portal_job(job_uuid: String) -> Result<PortalJobDetail, AppError> {
    with_status(
        async {
            let (backend, company_uuid) = portal_company().await?;
            backend.portal_job(&company_uuid, job_uuid.trim()).await
        }
        .await,
    )
}

/// Ends the portal session and clears its cookie.
#[server(name = PortalSignOut, prefix = "/api/portal", endpoint = "sign_out")]
pub async fn portal_sign_out() -> Result<(), AppError> {
    let backend = backend()?;
    let headers = request_headers().await?;
    if let Some(session) = cookie_value(&headers, PORTAL_SESSION_COOKIE) {
        backend.portal_sign_out(session).await?;
    }
    if let (Some(response), Ok(cookie)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        http::HeaderValue::from_str(&portal_session_cookie("", 0, backend.secure_cookies())),
    ) {
        response.append_header(http::header::SET_COOKIE, cookie);
    }
    Ok(())
}

#[cfg(feature = "ssr")]
pub use server_side::cookie_value;
#[cfg(feature = "ssr")]
use server_side::portal_company;
#[cfg(feature = "ssr")]
pub(crate) use server_side::{backend, request_headers, with_status};

#[cfg(feature = "ssr")]
mod server_side {
    use std::sync::Arc;

    use super::PORTAL_SESSION_COOKIE;
    use crate::api::{AppError, DashboardBackend};

    pub(crate) fn backend() -> Result<Arc<dyn DashboardBackend>, AppError> {
        leptos::prelude::use_context::<Arc<dyn DashboardBackend>>()
            .ok_or_else(|| AppError::Unavailable("no backend in context".into()))
    }

    pub(crate) async fn request_headers() -> Result<http::HeaderMap, AppError> {
        leptos_axum::extract().await.map_err(AppError::Request)
    }

    /// The value of cookie `name` among `headers`.
    pub fn cookie_value<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(cookie, value)| *cookie == name && !value.is_empty())
            .map(|(_, value)| value)
    }

    /// The backend and the company of the request's portal session; `NotSignedIn` without an active one.
    pub(super) async fn portal_company() -> Result<(Arc<dyn DashboardBackend>, String), AppError> {
        let backend = backend()?;
        let headers = request_headers().await?;
        let session = cookie_value(&headers, PORTAL_SESSION_COOKIE).ok_or(AppError::NotSignedIn)?;
        let company_uuid = backend
            .portal_session_company(session)
            .await?
            .ok_or(AppError::NotSignedIn)?;
        Ok((backend, company_uuid))
    }

    /// Gives an HTTP caller the status that matches the error (the body stays the JSON-encoded `AppError`).
    pub(crate) fn with_status<T>(result: Result<T, AppError>) -> Result<T, AppError> {
        if let Err(error) = &result {
            let status = match error {
                AppError::NotSignedIn => http::StatusCode::UNAUTHORIZED,
                AppError::NotFound(_) => http::StatusCode::NOT_FOUND,
                AppError::InvalidInput(_) => http::StatusCode::BAD_REQUEST,
                AppError::Unavailable(_) => http::StatusCode::SERVICE_UNAVAILABLE,
                _ => http::StatusCode::INTERNAL_SERVER_ERROR,
            };
            if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(status);
            }
        }
        result
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_named_cookie_is_found_among_others() {
            let mut headers = http::HeaderMap::new();
            headers.append(http::header::COOKIE, "a=1; sm8_portal_session=abc".parse().unwrap());
            headers.append(http::header::COOKIE, "sm8_admin_session=zzz".parse().unwrap());
            assert_eq!(cookie_value(&headers, PORTAL_SESSION_COOKIE), Some("abc"));
            assert_eq!(cookie_value(&headers, "sm8_admin_session"), Some("zzz"));
            assert_eq!(cookie_value(&headers, "missing"), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_http_only_lax_and_secure_only_over_https() {
        let cookie = portal_session_cookie("abc", 60, false);
        assert_eq!(
            cookie,
            "sm8_portal_session=abc; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"
        );
        assert!(portal_session_cookie("abc", 60, true).ends_with("; Secure"));
    }
}
