//! Connecting an account to ServiceM8 through OAuth: the authorization started (a single-use `state`, the
//! scopes) and finished (the `state` checked, the code exchanged, the tokens sealed into the account).

use app::access::{Access, Actor, Role};
use app::error::AppError;
use serde_json::json;

use super::audit::{AuditLine, Outcome};
use super::{unavailable, ServerBackend};
use crate::auth::{random_token, token_hash};
use crate::store::directory::OAuthStateRow;
use crate::store::now_millis;

/// How long an OAuth authorization may take before its `state` expires.
const OAUTH_STATE_TTL_MS: i64 = 15 * 60 * 1000;

impl ServerBackend {
    /// Where ServiceM8 sends the browser back after an OAuth authorization.
    pub fn oauth_redirect_uri(&self) -> String {
        format!("{}/oauth/servicem8/callback", self.settings.public_url)
    }

    /// Starts an OAuth connection of the caller's account (owners): a fresh `state`, stored, and the
    /// authorization URL to send the browser to.
    pub(super) async fn begin_oauth(&self, access: &Access, scopes: &str) -> Result<String, AppError> {
        self.require(access, Role::Owner, "start_oauth").await?;
        let app = self
            .accounts
            .oauth_app()
            .ok_or_else(|| AppError::NotFound("no ServiceM8 OAuth application is configured".into()))?;
        let scopes = match scopes.split_whitespace().collect::<Vec<_>>() {
            chosen if chosen.is_empty() => self.default_scopes().to_owned(),
            chosen => chosen.join(" "),
        };
        if !scopes
            .split(' ')
            .all(|scope| scope.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        {
            return Err(AppError::InvalidInput(
                "scopes are words of a-z and _, separated by spaces".into(),
            ));
        }
        let state = random_token();
        let now = now_millis();
        self.store
            .insert_oauth_state(&OAuthStateRow {
                state_hash: token_hash(&state),
                account: access.account.clone(),
                user_id: access.actor.user_id().map(str::to_owned),
                scopes: scopes.clone(),
                created_at: now,
                expires_at: now + OAUTH_STATE_TTL_MS,
            })
            .await
            .map_err(unavailable)?;
        Ok(app.authorize_url(&state, &scopes, &self.oauth_redirect_uri()))
    }

    /// Completes an OAuth connection: checks `state`, exchanges `code`, stores the tokens; returns the account.
    pub async fn finish_oauth(&self, state: &str, code: &str, client: Option<String>) -> Result<String, AppError> {
        let app = self
            .accounts
            .oauth_app()
            .ok_or_else(|| AppError::NotFound("no ServiceM8 OAuth application is configured".into()))?;
        let issued = self
            .store
            .take_oauth_state(&token_hash(state), now_millis())
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                AppError::InvalidInput("unknown or expired OAuth state: start the connection again".into())
            })?;
        let actor = match issued.user_id.as_deref() {
            Some(user_id) => match self.store.user(user_id).await.map_err(unavailable)? {
                Some(user) => Actor::User {
                    id: user.id,
                    email: user.email,
                },
                None => Actor::Anonymous,
            },
            None => Actor::Anonymous,
        };
        let connected = match app.exchange_code(code, &self.oauth_redirect_uri()).await {
            Ok(tokens) => self
                .accounts
                .store_oauth_tokens(&issued.account, &tokens)
                .await
                .map_err(|error| AppError::Unavailable(error.to_string())),
            Err(error) => Err(AppError::InvalidInput(error.to_string())),
        };
        self.audit_line(AuditLine {
            actor: &actor,
            account: Some(&issued.account),
            action: "connect_oauth",
            target: Some(&issued.account),
            outcome: Outcome::of(&connected),
            client_address: client.as_deref(),
            detail: Some(json!({ "scopes": issued.scopes })),
        })
        .await;
        connected.map(|()| issued.account)
    }
}
