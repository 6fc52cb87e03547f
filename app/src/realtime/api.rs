//! `realtime_credentials`: what the browser needs to open the relay's socket and join its topics.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// The socket's public key and an access token for the signed-in visitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealtimeCredentials {
    /// The relay's public `apikey` (like Supabase's anon key): it only opens the socket.
    pub apikey: String,
    /// HS256 JWT for one account: role `admin` or `viewer` (every topic of the account) or `portal` with the
    /// company it may watch.
    pub access_token: String,
    /// When the token expires, unix seconds; the client fetches a new one before then.
    pub expires_at: i64,
}

/// The session cookies a visitor sent, which decide whom their realtime token is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VisitorSessions<'a> {
    pub admin: Option<&'a str>,
    /// The account the dashboard shows (its cookie), for an admin session.
    pub account: Option<&'a str>,
    pub portal: Option<&'a str>,
}

#[cfg(feature = "ssr")]
pub use backend::RealtimeBackend;

#[cfg(feature = "ssr")]
mod backend {
    use super::{RealtimeCredentials, VisitorSessions};
    use crate::error::AppError;

    /// What the realtime client needs from the server: credentials, and nothing else. Provided as
    /// `Arc<dyn RealtimeBackend>` in the Leptos context.
    #[async_trait::async_trait]
    pub trait RealtimeBackend: Send + Sync + 'static {
        /// Credentials for an active admin session (every topic of the account it shows), or else for an active
        /// portal session (its company's topics); `NotSignedIn` without either.
        async fn realtime_credentials(&self, sessions: VisitorSessions<'_>) -> Result<RealtimeCredentials, AppError>;
    }
}

/// Credentials for the visitor's session, admin or portal; `NotSignedIn` without either.
#[server(
    name = FetchRealtimeCredentials,
    prefix = "/api/realtime",
    endpoint = "credentials",
    input = leptos::server_fn::codec::Json
)]
pub async fn realtime_credentials() -> Result<RealtimeCredentials, AppError> {
    use std::sync::Arc;

    use crate::session::{request_headers, SessionCookie};

    let backend = use_context::<Arc<dyn RealtimeBackend>>()
        .ok_or_else(|| AppError::Unavailable("no realtime backend in context".into()))?;
    let headers = request_headers().await?;
    let sessions = VisitorSessions {
        admin: SessionCookie::Admin.value_in(&headers),
        account: SessionCookie::Account.value_in(&headers),
        portal: SessionCookie::Portal.value_in(&headers),
    };
    backend.realtime_credentials(sessions).await
}
