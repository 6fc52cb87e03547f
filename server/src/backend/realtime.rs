//! The realtime side of `ServerBackend`: access tokens for the relay, minted for the visitor's session.

use app::error::AppError;
use app::portal::api::PortalBackend;
use app::realtime::{RealtimeBackend, RealtimeCredentials, VisitorSessions};

use super::{ServerBackend, REALTIME_TOKEN_TTL_SECONDS};
use crate::realtime::Role;
use crate::store::now_millis;

#[async_trait::async_trait]
impl RealtimeBackend for ServerBackend {
    async fn realtime_credentials(&self, sessions: VisitorSessions<'_>) -> Result<RealtimeCredentials, AppError> {
        if let Some(session) = sessions.admin {
            if self.session_user(session).await?.is_some() {
                let access = self.session_access(session, sessions.account, None).await?;
                // Broadcasting on an account's topics is acting in it; reading them is every member's.
                let role = if access.role >= app::access::Role::Admin {
                    Role::Admin
                } else {
                    Role::Viewer
                };
                return self.mint(role, &access.account, None);
            }
        }
        if let Some(session) = sessions.portal {
            if let Some(company) = PortalBackend::portal_session_company(self, session).await? {
                return self.mint(Role::Portal, &company.account, Some(&company.company_uuid));
            }
        }
        Err(AppError::NotSignedIn)
    }
}

impl ServerBackend {
    /// Credentials for `role` in `account` (and, for the portal, its company), valid for
    /// `REALTIME_TOKEN_TTL_SECONDS`.
    fn mint(&self, role: Role, account: &str, company_uuid: Option<&str>) -> Result<RealtimeCredentials, AppError> {
        let realtime = self
            .realtime
            .as_ref()
            .ok_or_else(|| AppError::Unavailable("realtime is not running".into()))?;
        let now = now_millis() / 1000;
        let access_token = realtime
            .keys
            .mint(role, account, company_uuid, REALTIME_TOKEN_TTL_SECONDS, now)
            .map_err(|error| {
                tracing::error!(%error, "minting a realtime access token failed");
                AppError::Unavailable("realtime access is unavailable".into())
            })?;
        Ok(RealtimeCredentials {
            apikey: realtime.anon_key.expose().to_owned(),
            access_token,
            expires_at: now + REALTIME_TOKEN_TTL_SECONDS,
        })
    }
}
