//! The directory's server functions (sign-in, invitations, accounts, members, API tokens, the audit log) and
//! `DirectoryBackend`, which the server implements. Every function takes JSON (`server/src/csrf.rs`).

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use super::model::{
    AccountOverview, AccountSecretKind, AccountSettings, AccountView, AuditFilter, AuditPage, CreatedAccount,
    CreatedToken, InviteInfo, MemberView, NewAccountForm, OneTimeLink, ShownOnce, SubscriptionView, TokenView, Visitor,
};
use crate::access::Role;
use crate::error::AppError;

#[cfg(feature = "ssr")]
pub use backend::DirectoryBackend;

#[cfg(feature = "ssr")]
mod backend {
    use std::sync::Arc;

    use super::*;
    use crate::access::{Access, ClientAddress};

    /// What the directory's pages need from the server. Provided as `Arc<dyn DirectoryBackend>` in the Leptos
    /// context.
    #[async_trait::async_trait]
    pub trait DirectoryBackend: Send + Sync + 'static {
        /// Checks an email and password and opens a session; returns the session's cookie value. Limited per
        /// address and per email; every failure is audited.
        async fn sign_in(&self, email: &str, password: &str, client: Option<String>) -> Result<String, AppError>;
        async fn sign_out(&self, session: &str, client_address: Option<String>) -> Result<(), AppError>;
        /// The signed-in user and their accounts (`None` without an active session); `account` is the one they
        /// chose, if any.
        async fn visitor(&self, session: &str, account: Option<&str>) -> Result<Option<Visitor>, AppError>;
        /// Whether the account may be chosen by the session's user.
        async fn may_choose(&self, session: &str, account: &str) -> Result<bool, AppError>;
        /// What a one-time link is for; `NotFound` when it is used up, expired or unknown.
        async fn invite_info(&self, token: &str) -> Result<InviteInfo, AppError>;
        /// Uses a one-time link: creates the user (or checks an existing user's password) and the membership, and
        /// opens a session; returns the session's cookie value.
        async fn accept_invite(
            &self,
            token: &str,
            email: &str,
            password: &str,
            client: Option<String>,
        ) -> Result<String, AppError>;
        /// Changes the signed-in user's own password (checking the current one).
        async fn change_password(&self, access: &Access, current: &str, new_password: &str) -> Result<(), AppError>;
        fn session_ttl_seconds(&self) -> i64;
        fn secure_cookies(&self) -> bool;

        /// Every account an instance owner sees, or the accounts the user belongs to, with their health.
        async fn accounts_overview(&self, access: &Access) -> Result<Vec<AccountOverview>, AppError>;
        async fn account(&self, access: &Access) -> Result<AccountView, AppError>;
        /// Creates an account (instance owners only) with a fresh URL token, shown once.
        async fn create_account(&self, access: &Access, form: NewAccountForm) -> Result<CreatedAccount, AppError>;
        async fn update_account(&self, access: &Access, settings: AccountSettings) -> Result<AccountView, AppError>;
        /// Sets or (with `None`) clears one secret of the account.
        async fn set_account_secret(
            &self,
            access: &Access,
            kind: AccountSecretKind,
            value: Option<String>,
        ) -> Result<AccountView, AppError>;
        /// Generates a secret of the account (a new URL token, a new Standard Webhooks secret): shown once.
        async fn generate_account_secret(
            &self,
            access: &Access,
            kind: AccountSecretKind,
        ) -> Result<ShownOnce, AppError>;
        async fn set_account_disabled(&self, access: &Access, disabled: bool) -> Result<AccountView, AppError>;
        /// Where to send the browser to connect the account to ServiceM8 through OAuth, asking for `scopes`.
        async fn start_oauth(&self, access: &Access, scopes: &str) -> Result<String, AppError>;

        async fn subscriptions(&self, access: &Access) -> Result<Vec<SubscriptionView>, AppError>;
        /// Subscribes the account's receiver to an object (its fields merged with those already subscribed) or an
        /// event.
        async fn subscribe(
            &self,
            access: &Access,
            kind: &str,
            name: &str,
            fields: Vec<String>,
        ) -> Result<Vec<SubscriptionView>, AppError>;
        async fn unsubscribe(&self, access: &Access, kind: &str, name: &str)
            -> Result<Vec<SubscriptionView>, AppError>;

        async fn members(&self, access: &Access) -> Result<Vec<MemberView>, AppError>;
        /// A one-time link inviting `email` (or whoever holds it) into the account with `role`.
        async fn invite(&self, access: &Access, email: Option<String>, role: Role) -> Result<OneTimeLink, AppError>;
        async fn set_role(&self, access: &Access, user_id: &str, role: Role) -> Result<(), AppError>;
        async fn remove_member(&self, access: &Access, user_id: &str) -> Result<(), AppError>;

        /// The user's own tokens, or every token of the account for its owners.
        async fn tokens(&self, access: &Access) -> Result<Vec<TokenView>, AppError>;
        async fn create_token(
            &self,
            access: &Access,
            name: &str,
            role: Role,
            expires_in_days: Option<u32>,
        ) -> Result<CreatedToken, AppError>;
        async fn revoke_token(&self, access: &Access, id: &str) -> Result<(), AppError>;

        async fn audit(&self, access: &Access, filter: AuditFilter) -> Result<AuditPage, AppError>;

        /// A one-time link into the client portal for a company of the account, valid `ttl_days`.
        async fn create_portal_link(
            &self,
            access: &Access,
            company_uuid: &str,
            ttl_days: u32,
        ) -> Result<OneTimeLink, AppError>;
    }

    pub(super) fn backend() -> Result<Arc<dyn DirectoryBackend>, AppError> {
        leptos::prelude::use_context::<Arc<dyn DirectoryBackend>>()
            .ok_or_else(|| AppError::Unavailable("no directory backend in context".into()))
    }

    pub(super) fn client_address() -> Option<String> {
        leptos::prelude::use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<ClientAddress>().map(|address| address.0.clone()))
    }

    /// The directory backend and the visitor's access to their chosen account.
    pub(super) async fn require_access() -> Result<(Arc<dyn DirectoryBackend>, Access), AppError> {
        let (_, access) = crate::api::require_access().await?;
        Ok((backend()?, access))
    }
}

#[cfg(feature = "ssr")]
use crate::session::{set_on_response, SessionCookie};

/// The signed-in visitor and their accounts; `None` without a session.
#[server(input = Json)]
pub async fn current_visitor() -> Result<Option<Visitor>, AppError> {
    let backend = backend::backend()?;
    let headers = crate::session::request_headers().await?;
    let Some(session) = SessionCookie::Admin.value_in(&headers) else {
        return Ok(None);
    };
    backend
        .visitor(session, SessionCookie::Account.value_in(&headers))
        .await
}

/// Checks an email and password and sets the session cookie.
#[server(input = Json)]
pub async fn sign_in(email: String, password: String) -> Result<(), AppError> {
    let backend = backend::backend()?;
    let session = backend
        .sign_in(email.trim(), &password, backend::client_address())
        .await?;
    set_on_response(
        SessionCookie::Admin,
        &session,
        backend.session_ttl_seconds(),
        backend.secure_cookies(),
    );
    Ok(())
}

/// Ends the session and clears its cookie.
#[server(input = Json)]
pub async fn sign_out() -> Result<(), AppError> {
    let backend = backend::backend()?;
    if let Some(session) = crate::session::current(SessionCookie::Admin).await? {
        backend.sign_out(&session, backend::client_address()).await?;
    }
    set_on_response(SessionCookie::Admin, "", 0, backend.secure_cookies());
    Ok(())
}

/// Shows `account` in the dashboard from now on (remembered in a cookie).
#[server(input = Json)]
pub async fn choose_account(account: String) -> Result<(), AppError> {
    let backend = backend::backend()?;
    let session = crate::session::current(SessionCookie::Admin)
        .await?
        .ok_or(AppError::NotSignedIn)?;
    if !backend.may_choose(&session, &account).await? {
        return Err(AppError::Forbidden(format!("you are no member of account {account}")));
    }
    set_on_response(
        SessionCookie::Account,
        &account,
        400 * 24 * 3600,
        backend.secure_cookies(),
    );
    Ok(())
}

#[server(input = Json)]
pub async fn get_invite_info(token: String) -> Result<InviteInfo, AppError> {
    backend::backend()?.invite_info(token.trim()).await
}

/// Uses a one-time link (an invitation, or the first-run setup) and signs in.
#[server(input = Json)]
pub async fn accept_invite(token: String, email: String, password: String) -> Result<(), AppError> {
    let backend = backend::backend()?;
    let session = backend
        .accept_invite(token.trim(), email.trim(), &password, backend::client_address())
        .await?;
    set_on_response(
        SessionCookie::Admin,
        &session,
        backend.session_ttl_seconds(),
        backend.secure_cookies(),
    );
    Ok(())
}

#[server(input = Json)]
pub async fn change_password(current: String, new_password: String) -> Result<(), AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.change_password(&access, &current, &new_password).await
}

#[server(input = Json)]
pub async fn accounts_overview() -> Result<Vec<AccountOverview>, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.accounts_overview(&access).await
}

#[server(input = Json)]
pub async fn get_account() -> Result<AccountView, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.account(&access).await
}

#[server(input = Json)]
pub async fn create_account(form: NewAccountForm) -> Result<CreatedAccount, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.create_account(&access, form).await
}

#[server(input = Json)]
pub async fn update_account(settings: AccountSettings) -> Result<AccountView, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.update_account(&access, settings).await
}

#[server(input = Json)]
pub async fn set_account_secret(kind: AccountSecretKind, value: Option<String>) -> Result<AccountView, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.set_account_secret(&access, kind, value).await
}

#[server(input = Json)]
pub async fn generate_account_secret(kind: AccountSecretKind) -> Result<ShownOnce, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.generate_account_secret(&access, kind).await
}

#[server(input = Json)]
pub async fn set_account_disabled(disabled: bool) -> Result<AccountView, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.set_account_disabled(&access, disabled).await
}

/// Where to send the browser to connect the account to ServiceM8.
#[server(input = Json)]
pub async fn start_oauth(scopes: String) -> Result<String, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.start_oauth(&access, &scopes).await
}

#[server(input = Json)]
pub async fn list_subscriptions() -> Result<Vec<SubscriptionView>, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.subscriptions(&access).await
}

#[server(input = Json)]
pub async fn subscribe(kind: String, name: String, fields: Vec<String>) -> Result<Vec<SubscriptionView>, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.subscribe(&access, &kind, &name, fields).await
}

#[server(input = Json)]
pub async fn unsubscribe(kind: String, name: String) -> Result<Vec<SubscriptionView>, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.unsubscribe(&access, &kind, &name).await
}

#[server(input = Json)]
pub async fn list_members() -> Result<Vec<MemberView>, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.members(&access).await
}

#[server(input = Json)]
pub async fn invite_member(email: Option<String>, role: Role) -> Result<OneTimeLink, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.invite(&access, email, role).await
}

#[server(input = Json)]
pub async fn set_member_role(user_id: String, role: Role) -> Result<(), AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.set_role(&access, &user_id, role).await
}

#[server(input = Json)]
pub async fn remove_member(user_id: String) -> Result<(), AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.remove_member(&access, &user_id).await
}

#[server(input = Json)]
pub async fn list_tokens() -> Result<Vec<TokenView>, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.tokens(&access).await
}

#[server(input = Json)]
pub async fn create_token(name: String, role: Role, expires_in_days: Option<u32>) -> Result<CreatedToken, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.create_token(&access, &name, role, expires_in_days).await
}

#[server(input = Json)]
pub async fn revoke_token(id: String) -> Result<(), AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.revoke_token(&access, &id).await
}

/// A one-time client portal link for `company_uuid` of the visitor's account, valid `ttl_days` (default 7).
#[server(input = Json)]
pub async fn create_portal_link(company_uuid: String, ttl_days: Option<u32>) -> Result<OneTimeLink, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend
        .create_portal_link(&access, &company_uuid, ttl_days.unwrap_or(DEFAULT_PORTAL_LINK_DAYS))
        .await
}

/// How long a portal link made from the dashboard stays usable unless the maker chooses.
pub const DEFAULT_PORTAL_LINK_DAYS: u32 = 7;

#[server(input = Json)]
pub async fn get_audit(filter: AuditFilter) -> Result<AuditPage, AppError> {
    let (backend, access) = backend::require_access().await?;
    backend.audit(&access, filter).await
}
