//! Who is asking, and what they may do in which account: `Access` from a dashboard session, from the instance's
//! `ADMIN_TOKEN`, or from a personal API token. An account a caller may not open answers `Forbidden`; an account
//! that does not exist, `NotFound`.

use app::access::{Access, Actor, Role};
use app::error::AppError;

use super::{unavailable, ServerBackend};
use crate::auth::{secrets_match, token_hash};
use crate::store::directory::UserRow;
use crate::store::{now_millis, DEFAULT_ACCOUNT};

/// The prefix of personal API tokens, so that they are recognisable (and never taken for `ADMIN_TOKEN`).
pub const API_TOKEN_PREFIX: &str = "sm8_pat_";

/// Who a request comes from, before an account is chosen.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A dashboard session's cookie value.
    Session(String),
    /// A bearer token: `ADMIN_TOKEN` or a personal API token.
    Bearer(String),
}

impl ServerBackend {
    /// The caller's access to `account` (for a session without one: its chosen, else first, account; for
    /// `ADMIN_TOKEN`: the default account; for a personal token: its own).
    pub async fn access_for(
        &self,
        caller: &Caller,
        account: Option<&str>,
        client_address: Option<String>,
    ) -> Result<Access, AppError> {
        match caller {
            Caller::Session(session) => self.session_access(session, account, client_address).await,
            Caller::Bearer(token) => self.bearer_access(token, account, client_address).await,
        }
    }

    /// Whether `candidate` is the instance's `ADMIN_TOKEN`.
    pub fn admin_token_matches(&self, candidate: &str) -> bool {
        !candidate.is_empty() && secrets_match(candidate, self.admin_token.expose())
    }

    pub(super) async fn session_user(&self, session: &str) -> Result<Option<UserRow>, AppError> {
        let Some(user_id) = self
            .store
            .session_user(&token_hash(session), now_millis())
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        self.store.user(&user_id).await.map_err(unavailable)
    }

    pub(super) async fn session_access(
        &self,
        session: &str,
        account: Option<&str>,
        client_address: Option<String>,
    ) -> Result<Access, AppError> {
        let user = self.session_user(session).await?.ok_or(AppError::NotSignedIn)?;
        let choices = self.choices_of(&user).await?;
        let chosen = account
            .and_then(|wanted| choices.iter().find(|(slug, _)| slug == wanted))
            .or_else(|| choices.first())
            .cloned();
        let (account, role) = chosen.ok_or_else(|| {
            AppError::Forbidden("you belong to no account yet: ask an owner of one to invite you".into())
        })?;
        Ok(Access {
            account,
            role,
            actor: Actor::User {
                id: user.id,
                email: user.email,
            },
            instance_owner: user.instance_owner != 0,
            client_address,
        })
    }

    /// The accounts a user may open and their role in each: every account, as owner, for an instance owner.
    pub(super) async fn choices_of(&self, user: &UserRow) -> Result<Vec<(String, Role)>, AppError> {
        if user.instance_owner != 0 {
            return Ok(self
                .accounts
                .all()
                .into_iter()
                .map(|account| (account.slug.clone(), Role::Owner))
                .collect());
        }
        let memberships = self.store.memberships_of(&user.id).await.map_err(unavailable)?;
        Ok(memberships
            .into_iter()
            .filter(|membership| self.accounts.get(&membership.account).is_some())
            .filter_map(|membership| Some((membership.account, membership.role.parse().ok()?)))
            .collect())
    }

    async fn bearer_access(
        &self,
        token: &str,
        account: Option<&str>,
        client_address: Option<String>,
    ) -> Result<Access, AppError> {
        if self.admin_token_matches(token) {
            let account = account.unwrap_or(DEFAULT_ACCOUNT);
            if self.accounts.get(account).is_none() {
                return Err(AppError::NotFound(format!("no account {account}")));
            }
            return Ok(Access {
                account: account.to_owned(),
                role: Role::Owner,
                actor: Actor::AdminToken,
                instance_owner: true,
                client_address,
            });
        }
        let invalid = || AppError::InvalidAdminToken;
        if !token.starts_with(API_TOKEN_PREFIX) {
            return Err(invalid());
        }
        let now = now_millis();
        let row = self
            .store
            .api_token_by_hash(&token_hash(token))
            .await
            .map_err(unavailable)?
            .filter(|row| row.revoked_at.is_none() && row.expires_at.is_none_or(|expires| expires > now))
            .ok_or_else(invalid)?;
        if account.is_some_and(|wanted| wanted != row.account) {
            return Err(AppError::Forbidden(format!(
                "this token is for account {}, not {}",
                row.account,
                account.unwrap_or_default()
            )));
        }
        // A token never does more than its user may do now: a lowered role or a removed membership counts.
        let user = self
            .store
            .user(&row.user_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(invalid)?;
        let held = self
            .choices_of(&user)
            .await?
            .into_iter()
            .find(|(slug, _)| *slug == row.account)
            .map(|(_, role)| role)
            .ok_or_else(invalid)?;
        let granted: Role = row.role.parse().map_err(|_| invalid())?;
        if let Err(error) = self.store.touch_api_token(&row.id, now).await {
            tracing::warn!(%error, "could not record a token's use");
        }
        Ok(Access {
            account: row.account,
            role: granted.min(held),
            actor: Actor::ApiToken {
                id: row.id,
                name: row.name,
                user_email: row.user_email,
            },
            instance_owner: false,
            client_address,
        })
    }
}
