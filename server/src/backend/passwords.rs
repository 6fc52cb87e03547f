//! Passwords and one-time links: sessions opened for a user, invitations and the first-run setup link used
//! (creating the user), passwords checked and stored, always hashed off the async workers.

use app::error::AppError;

use super::{unavailable, ServerBackend, SESSION_TTL_SECONDS};
use crate::auth::{hash_password, password_matches, random_token, token_hash, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
use crate::store::directory::UserRow;
use crate::store::now_millis;

impl ServerBackend {
    /// Opens a session for `user`; returns the cookie value.
    pub(super) async fn open_session(&self, user: &UserRow) -> Result<String, AppError> {
        let session = random_token();
        let expires_at = now_millis() + SESSION_TTL_SECONDS * 1000;
        self.store
            .create_session(&token_hash(&session), &user.id, expires_at)
            .await
            .map_err(unavailable)?;
        Ok(session)
    }

    /// Validates and uses a one-time link: the user (created, or an existing one whose password matches) and the
    /// account they joined.
    pub(super) async fn accept(
        &self,
        token: &str,
        email: &str,
        password: &str,
    ) -> Result<(UserRow, Option<String>), AppError> {
        let invite = self
            .store
            .invite(&token_hash(token), now_millis())
            .await
            .map_err(unavailable)?
            .ok_or_else(|| AppError::NotFound("this link is used up, expired or unknown".into()))?;
        let email = email.trim().to_lowercase();
        if !email.contains('@') || email.len() > 254 {
            return Err(AppError::InvalidInput("enter an email address".into()));
        }
        if invite.email.as_deref().is_some_and(|invited| invited != email) {
            return Err(AppError::InvalidInput(format!(
                "this invitation is for {}",
                invite.email.unwrap_or_default()
            )));
        }
        let existing = self.store.user_by_email(&email).await.map_err(unavailable)?;
        if let Some(user) = &existing {
            let matches = match user.password_hash.as_deref() {
                Some(stored) => check_password(password, stored).await,
                None => false,
            };
            if !matches {
                return Err(AppError::InvalidCredentials);
            }
        } else {
            check_new_password(password)?;
        }
        // Used up only now: a mistyped password does not waste the link.
        let invite = self
            .store
            .redeem_invite(&token_hash(token), now_millis())
            .await
            .map_err(unavailable)?
            .ok_or_else(|| AppError::NotFound("this link is used up, expired or unknown".into()))?;
        let user = match existing {
            Some(user) => user,
            None => {
                let now = now_millis();
                let hash = hashed(password).await?;
                let user = UserRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    email: email.clone(),
                    password_hash: Some(hash),
                    instance_owner: i64::from(invite.account.is_none()),
                    created_at: now,
                    updated_at: now,
                };
                if !self.store.insert_user(&user).await.map_err(unavailable)? {
                    return Err(AppError::Conflict(format!("a user {email} exists already")));
                }
                user
            }
        };
        if let Some(account) = &invite.account {
            self.store
                .set_membership(&user.id, account, &invite.role, now_millis())
                .await
                .map_err(unavailable)?;
        }
        Ok((user, invite.account))
    }

    /// Hashes and stores a new password for `user_id`, after checking it is acceptable.
    pub(super) async fn store_password(&self, user_id: &str, password: &str) -> Result<(), AppError> {
        check_new_password(password)?;
        let hash = hashed(password).await?;
        self.store
            .set_password(user_id, &hash, now_millis())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// The argon2id hash of `password`, computed off the async workers (it takes tens of milliseconds of CPU).
async fn hashed(password: &str) -> Result<String, AppError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| AppError::Unavailable("hashing the password failed".into()))
}

/// Whether `password` matches `stored`, checked off the async workers.
pub(super) async fn check_password(password: &str, stored: &str) -> bool {
    let (password, stored) = (password.to_owned(), stored.to_owned());
    tokio::task::spawn_blocking(move || password_matches(&password, &stored))
        .await
        .unwrap_or(false)
}

/// Why a password may not be chosen, if it may not.
pub fn check_new_password(password: &str) -> Result<(), AppError> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_CHARS {
        return Err(AppError::InvalidInput(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if length > MAX_PASSWORD_CHARS {
        return Err(AppError::InvalidInput(format!(
            "a password may have at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}
