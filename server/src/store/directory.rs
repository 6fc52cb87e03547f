//! The directory: who may do what, and what they did. Accounts (with their sealed secrets), users, their roles in
//! accounts, personal API tokens, one-time invitations, dashboard sessions, OAuth authorizations in progress, and
//! the audit log. `Directory` is part of every `Store` (`directory_sql.rs` writes it once for both engines).

use async_trait::async_trait;

use super::StoreError;

/// An account as stored. Its secrets stay sealed here; `accounts::Accounts` opens them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRow {
    pub slug: String,
    pub name: String,
    pub servicem8_account_uuid: Option<String>,
    pub disabled_at: Option<i64>,
    /// `none`, `api_key` or `oauth`.
    pub credential_kind: String,
    pub sealed_secrets: Option<String>,
    pub oauth_scopes: Option<String>,
    pub oauth_expires_at: Option<i64>,
    pub oauth_error: Option<String>,
    pub requests_per_minute: i64,
    pub requests_per_day: i64,
    pub sync_interval_seconds: i64,
    pub retention_days: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    /// Lower case.
    pub email: String,
    /// The argon2id PHC string; `None` until the user sets a password.
    pub password_hash: Option<String>,
    /// 1 for an instance owner.
    pub instance_owner: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user's role in an account, with the user's email.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MembershipRow {
    pub user_id: String,
    pub email: String,
    pub account: String,
    /// `owner`, `admin` or `viewer`.
    pub role: String,
    pub created_at: i64,
}

/// A personal API token as stored (its SHA-256, never the token), with its owner's email.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiTokenRow {
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    pub user_email: String,
    pub account: String,
    pub role: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A one-time link: an invitation to an account, or (without an account) the setup of an instance owner.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InviteRow {
    pub token_hash: String,
    pub account: Option<String>,
    pub role: String,
    pub email: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// An OAuth authorization in progress: what `state` (stored as its SHA-256) was issued for.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OAuthStateRow {
    pub state_hash: String,
    pub account: String,
    pub user_id: Option<String>,
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// One line of the audit log, to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub at: i64,
    pub account: Option<String>,
    pub actor_kind: String,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub client_address: Option<String>,
    pub detail: Option<serde_json::Value>,
}

/// One line of the audit log, as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub account: Option<String>,
    pub actor_kind: String,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub client_address: Option<String>,
    pub detail: Option<serde_json::Value>,
}

/// Which audit lines to read, newest first: every filter optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// One account's lines (`None`: every line, for an instance owner).
    pub account: Option<String>,
    /// With `account`, also the lines of no account (sign-ins, users): what an instance owner sees.
    pub with_instance_lines: bool,
    pub action: Option<String>,
    /// Part of the actor's label.
    pub actor: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Lines older than this id.
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// A sealed value somewhere in the database, for re-sealing under a new key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    /// Where it lives, as the sealing context names it (e.g. `accounts:acme:secrets`).
    pub context: String,
    pub sealed: String,
}

#[async_trait]
pub trait Directory: Send + Sync {
    async fn list_accounts(&self) -> Result<Vec<AccountRow>, StoreError>;
    async fn account(&self, slug: &str) -> Result<Option<AccountRow>, StoreError>;
    /// Whether anything changed since `(newest updated_at, count)` was read: one cheap query for the cache.
    async fn accounts_version(&self) -> Result<(i64, i64), StoreError>;
    /// Stores a new account; false when the slug is taken.
    async fn insert_account(&self, account: &AccountRow) -> Result<bool, StoreError>;
    /// Replaces every column of the account named by `account.slug`; false when there is none.
    async fn update_account(&self, account: &AccountRow) -> Result<bool, StoreError>;

    async fn user(&self, id: &str) -> Result<Option<UserRow>, StoreError>;
    async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError>;
    async fn list_users(&self) -> Result<Vec<UserRow>, StoreError>;
    async fn count_users(&self) -> Result<i64, StoreError>;
    /// Stores a new user; false when the email is taken.
    async fn insert_user(&self, user: &UserRow) -> Result<bool, StoreError>;
    async fn set_password(&self, user_id: &str, password_hash: &str, now: i64) -> Result<bool, StoreError>;
    /// Deletes the user with their memberships, tokens and sessions.
    async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError>;

    async fn memberships_of(&self, user_id: &str) -> Result<Vec<MembershipRow>, StoreError>;
    async fn members(&self, account: &str) -> Result<Vec<MembershipRow>, StoreError>;
    /// Gives the user `role` in the account, replacing any role they had.
    async fn set_membership(&self, user_id: &str, account: &str, role: &str, now: i64) -> Result<(), StoreError>;
    async fn remove_membership(&self, user_id: &str, account: &str) -> Result<bool, StoreError>;

    async fn insert_api_token(&self, token: &ApiTokenRow) -> Result<(), StoreError>;
    /// The token with this hash, revoked or not.
    async fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<ApiTokenRow>, StoreError>;
    /// Every token of a user, or of everyone (`None`).
    async fn list_api_tokens(&self, user_id: Option<&str>) -> Result<Vec<ApiTokenRow>, StoreError>;
    async fn revoke_api_token(&self, id: &str, now: i64) -> Result<bool, StoreError>;
    async fn touch_api_token(&self, id: &str, now: i64) -> Result<(), StoreError>;

    async fn insert_invite(&self, invite: &InviteRow) -> Result<(), StoreError>;
    /// The unused, unexpired invitation with this hash, without using it up.
    async fn invite(&self, token_hash: &str, now: i64) -> Result<Option<InviteRow>, StoreError>;
    /// Uses up an invitation: the row if it was unused and unexpired, once.
    async fn redeem_invite(&self, token_hash: &str, now: i64) -> Result<Option<InviteRow>, StoreError>;

    async fn create_session(&self, token_hash: &str, user_id: &str, expires_at: i64) -> Result<(), StoreError>;
    /// The user of an unexpired session.
    async fn session_user(&self, token_hash: &str, now: i64) -> Result<Option<String>, StoreError>;
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;

    async fn insert_oauth_state(&self, state: &OAuthStateRow) -> Result<(), StoreError>;
    /// Uses up an OAuth state: its row if it was issued and has not expired, once.
    async fn take_oauth_state(&self, state_hash: &str, now: i64) -> Result<Option<OAuthStateRow>, StoreError>;

    async fn record_audit(&self, entry: &NewAuditEntry) -> Result<(), StoreError>;
    /// A page of the audit log, newest first (one row more than `limit` when another page follows).
    async fn audit_page(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError>;
    /// Deletes audit lines older than `cutoff`; returns how many.
    async fn delete_audit_before(&self, cutoff: i64) -> Result<u64, StoreError>;

    /// Every sealed value the database holds.
    async fn sealed_values(&self) -> Result<Vec<SealedValue>, StoreError>;
    /// Replaces sealed values (each found by its context; `sealing::CHECK_CONTEXT` is the master key's check
    /// value) in one transaction.
    async fn replace_sealed_values(&self, values: &[SealedValue]) -> Result<(), StoreError>;
}
