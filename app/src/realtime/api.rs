//! `realtime_credentials`: what the browser needs to open the relay's socket and join its topics.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::AppError;

/// The socket's public key and an access token for the signed-in visitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealtimeCredentials {
    /// The relay's public `apikey` (like Supabase's anon key): it only opens the socket.
    pub apikey: String,
    /// HS256 JWT: role `admin` (every topic) or `portal` with the company it may watch.
    pub access_token: String,
    /// When the token expires, unix seconds; the client fetches a new one before then.
    pub expires_at: i64,
}

/// Whom a realtime token is for, as the server decides from the visitor's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RealtimeAudience {
    Admin,
    Portal { company_uuid: String },
}

/// Credentials for an admin session (an admin token) or else a portal session (a portal token for its company);
/// `NotSignedIn` without either.
#[server(name = FetchRealtimeCredentials, prefix = "/api/realtime", endpoint = "credentials")]
pub async fn realtime_credentials() -> Result<RealtimeCredentials, AppError> {
    use crate::portal::api::{backend, cookie_value, request_headers, with_status, PORTAL_SESSION_COOKIE};

    with_status(
        async {
            let backend = backend()?;
            let headers = request_headers().await?;
            if let Some(session) = crate::api::session_from_headers(&headers) {
                if backend.session_is_active(session).await? {
                    return backend.realtime_credentials(RealtimeAudience::Admin);
                }
            }
            if let Some(session) = cookie_value(&headers, PORTAL_SESSION_COOKIE) {
                if let Some(company_uuid) = backend.portal_session_company(session).await? {
                    return backend.realtime_credentials(RealtimeAudience::Portal { company_uuid });
                }
            }
            Err(AppError::NotSignedIn)
        }
        .await,
    )
}
