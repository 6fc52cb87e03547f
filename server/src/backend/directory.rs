//! Signing in and out, one-time links (the first-run setup and invitations), and accounts: their settings,
//! secrets (set, generated and shown once, never shown again), disabling, OAuth connection and webhook
//! subscriptions. Members, API tokens and the audit log are in `members.rs`; passwords and the use of one-time
//! links in `passwords.rs`.

use app::access::{Access, Actor, Role};
use app::directory::api::DirectoryBackend;
use app::directory::model::{
    AccountChoice, AccountOverview, AccountSecretKind, AccountSettings, AccountView, AuditFilter, AuditPage,
    CreatedAccount, CreatedToken, InviteInfo, MemberView, NewAccountForm, OneTimeLink, SecretsSet, ShownOnce,
    SubscriptionView, TokenView, Visitor,
};
use app::error::AppError;
use serde_json::json;

use super::audit::{AuditLine, Outcome};
use super::passwords::check_password;
use super::{unavailable, ServerBackend, SESSION_TTL_SECONDS};
use crate::accounts::{AccountSecrets, LiveAccount, NewAccount};
use crate::auth::{decoy_password_hash, password_matches, random_token, token_hash};
use crate::store::{millis_to_rfc3339, now_millis};

impl ServerBackend {
    pub(super) fn account_view(&self, account: &LiveAccount) -> AccountView {
        let secrets = account.secrets();
        let set = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
        AccountView {
            slug: account.slug.clone(),
            name: account.name.clone(),
            servicem8_account_uuid: account.servicem8_account_uuid.clone(),
            disabled: account.disabled,
            credential_kind: account.credential_kind.as_str().into(),
            oauth_scopes: account.oauth.scopes.clone(),
            oauth_expires_at: account.oauth.expires_at.map(millis_to_rfc3339),
            oauth_error: account.oauth.error.clone(),
            oauth_available: self.accounts.oauth_app().is_some(),
            secrets: SecretsSet {
                api_key: set(&secrets.api_key),
                webhook_secret: set(&secrets.webhook_secret),
                url_token: set(&secrets.url_token),
                app_secret: set(&secrets.app_secret),
                standard_webhook_secrets: secrets.standard_webhook_secrets.len(),
            },
            requests_per_minute: account.requests_per_minute,
            requests_per_day: account.requests_per_day,
            sync_interval_seconds: account.sync_interval_seconds,
            retention_days: account.retention_days,
            receiver_url: self.receiver_url(&account.slug),
            created_at: millis_to_rfc3339(account.created_at),
        }
    }

    /// The account's receiver, without its URL token.
    pub fn receiver_url(&self, slug: &str) -> String {
        format!("{}/api/webhooks/sm8/{slug}", self.settings.public_url)
    }

    /// Changes account `access.account` with `change` (owner only), auditing `action` with `detail`.
    async fn change_account<F>(
        &self,
        access: &Access,
        action: &str,
        detail: serde_json::Value,
        change: F,
    ) -> Result<AccountView, AppError>
    where
        F: FnOnce(&mut crate::store::directory::AccountRow, &mut AccountSecrets) -> Result<(), String> + Send,
    {
        self.require(access, Role::Owner, action).await?;
        let changed = match self.accounts.update(&access.account, change).await {
            Ok(Some(account)) => Ok(self.account_view(&account)),
            Ok(None) => Err(AppError::NotFound(format!("no account {}", access.account))),
            Err(crate::accounts::AccountError::Invalid(reason)) => Err(AppError::InvalidInput(reason)),
            Err(error) => {
                tracing::error!(%error, "changing an account failed");
                Err(AppError::Unavailable("the account could not be changed".into()))
            }
        };
        let target = access.account.clone();
        self.audited(access, action, Some(&target), Some(detail), changed).await
    }
}

#[async_trait::async_trait]
impl DirectoryBackend for ServerBackend {
    async fn sign_in(&self, email: &str, password: &str, client: Option<String>) -> Result<String, AppError> {
        let email = email.trim().to_lowercase();
        if let Err(wait) = self.sign_ins_by_email.admit(&email) {
            self.audit_line(AuditLine {
                actor: &Actor::Anonymous,
                account: None,
                action: "sign_in",
                target: Some(&email),
                outcome: Outcome::Denied,
                client_address: client.as_deref(),
                detail: Some(json!({ "reason": "too many failures for this email" })),
            })
            .await;
            return Err(AppError::RateLimited(wait.seconds()));
        }
        let user = self.store.user_by_email(&email).await.map_err(unavailable)?;
        let stored = user.as_ref().and_then(|user| user.password_hash.clone());
        let candidate = password.to_owned();
        // argon2 takes tens of milliseconds of CPU: off the async workers. An unknown email is checked against a
        // decoy hash, so it takes as long as a wrong password.
        let matched = tokio::task::spawn_blocking(move || {
            password_matches(&candidate, stored.as_deref().unwrap_or(decoy_password_hash()))
        })
        .await
        .unwrap_or(false);
        let user = user.filter(|user| matched && user.password_hash.is_some());
        let (actor, outcome) = match &user {
            Some(user) => (
                Actor::User {
                    id: user.id.clone(),
                    email: user.email.clone(),
                },
                Outcome::Success,
            ),
            None => (Actor::Anonymous, Outcome::Failure),
        };
        self.audit_line(AuditLine {
            actor: &actor,
            account: None,
            action: "sign_in",
            target: Some(&email),
            outcome,
            client_address: client.as_deref(),
            detail: None,
        })
        .await;
        match user {
            Some(user) => self.open_session(&user).await,
            None => {
                tracing::info!("dashboard sign-in refused: wrong email or password");
                match self.sign_ins_by_email.failed(&email) {
                    Ok(()) => Err(AppError::InvalidCredentials),
                    Err(wait) => Err(AppError::RateLimited(wait.seconds())),
                }
            }
        }
    }

    async fn sign_out(&self, session: &str, client_address: Option<String>) -> Result<(), AppError> {
        if let Some(user) = self.session_user(session).await? {
            self.audit_line(AuditLine {
                actor: &Actor::User {
                    id: user.id,
                    email: user.email,
                },
                account: None,
                action: "sign_out",
                target: None,
                outcome: Outcome::Success,
                client_address: client_address.as_deref(),
                detail: None,
            })
            .await;
        }
        self.store
            .delete_session(&token_hash(session))
            .await
            .map_err(unavailable)
    }

    async fn visitor(&self, session: &str, account: Option<&str>) -> Result<Option<Visitor>, AppError> {
        let Some(user) = self.session_user(session).await? else {
            return Ok(None);
        };
        let choices: Vec<AccountChoice> = self
            .choices_of(&user)
            .await?
            .into_iter()
            .filter_map(|(slug, role)| {
                let name = self.accounts.get(&slug)?.name.clone();
                Some(AccountChoice { slug, name, role })
            })
            .collect();
        let current = account
            .and_then(|wanted| choices.iter().find(|choice| choice.slug == wanted))
            .or_else(|| choices.first())
            .cloned();
        Ok(Some(Visitor {
            user_id: user.id,
            email: user.email,
            instance_owner: user.instance_owner != 0,
            accounts: choices,
            current,
        }))
    }

    async fn may_choose(&self, session: &str, account: &str) -> Result<bool, AppError> {
        let user = self.session_user(session).await?.ok_or(AppError::NotSignedIn)?;
        Ok(self.choices_of(&user).await?.iter().any(|(slug, _)| slug == account))
    }

    async fn invite_info(&self, token: &str) -> Result<InviteInfo, AppError> {
        let invite = self
            .store
            .invite(&token_hash(token), now_millis())
            .await
            .map_err(unavailable)?
            .ok_or_else(|| AppError::NotFound("this link is used up, expired or unknown".into()))?;
        let existing_user = match invite.email.as_deref() {
            Some(email) => self.store.user_by_email(email).await.map_err(unavailable)?.is_some(),
            None => false,
        };
        Ok(InviteInfo {
            account_name: invite
                .account
                .as_deref()
                .and_then(|slug| self.accounts.get(slug))
                .map(|account| account.name.clone()),
            account: invite.account,
            role: invite.role.parse().unwrap_or(Role::Viewer),
            email: invite.email,
            existing_user,
        })
    }

    async fn accept_invite(
        &self,
        token: &str,
        email: &str,
        password: &str,
        client: Option<String>,
    ) -> Result<String, AppError> {
        let accepted = self.accept(token, email, password).await;
        let (actor, target) = match &accepted {
            Ok((user, _)) => (
                Actor::User {
                    id: user.id.clone(),
                    email: user.email.clone(),
                },
                user.email.clone(),
            ),
            Err(_) => (Actor::Anonymous, email.trim().to_lowercase()),
        };
        let account = accepted.as_ref().ok().and_then(|(_, account)| account.clone());
        self.audit_line(AuditLine {
            actor: &actor,
            account: account.as_deref(),
            action: "accept_invite",
            target: Some(&target),
            outcome: Outcome::of(&accepted),
            client_address: client.as_deref(),
            detail: None,
        })
        .await;
        let (user, _) = accepted?;
        self.open_session(&user).await
    }

    async fn change_password(&self, access: &Access, current: &str, new_password: &str) -> Result<(), AppError> {
        let user_id = access
            .actor
            .user_id()
            .ok_or_else(|| AppError::Forbidden("only a signed-in user changes their password".into()))?;
        let user = self
            .store
            .user(user_id)
            .await
            .map_err(unavailable)?
            .ok_or(AppError::NotSignedIn)?;
        let changed = match user.password_hash.as_deref() {
            Some(stored) if check_password(current, stored).await => self.store_password(user_id, new_password).await,
            _ => Err(AppError::InvalidCredentials),
        };
        let target = user.email.clone();
        self.audited(access, "change_password", Some(&target), None, changed)
            .await
    }

    fn session_ttl_seconds(&self) -> i64 {
        SESSION_TTL_SECONDS
    }

    fn secure_cookies(&self) -> bool {
        self.settings.secure_cookies
    }

    async fn accounts_overview(&self, access: &Access) -> Result<Vec<AccountOverview>, AppError> {
        let accounts = if access.instance_owner {
            self.accounts.all()
        } else {
            let user_id = access.actor.user_id().unwrap_or_default();
            let user = self
                .store
                .user(user_id)
                .await
                .map_err(unavailable)?
                .ok_or(AppError::NotSignedIn)?;
            self.choices_of(&user)
                .await?
                .into_iter()
                .filter_map(|(slug, _)| self.accounts.get(&slug))
                .collect()
        };
        let mut overview = Vec::with_capacity(accounts.len());
        for account in accounts {
            let stats = self.store.stats(&account.slug).await.map_err(unavailable)?;
            let limits = self
                .accounts
                .limits(account.requests_per_minute, account.requests_per_day);
            let health = self
                .store
                .pipeline_health(&account.slug, now_millis(), limits)
                .await
                .map_err(unavailable)?;
            overview.push(AccountOverview {
                slug: account.slug.clone(),
                name: account.name.clone(),
                disabled: account.disabled,
                total_events: stats.total,
                failed_events: stats.count(app::model::EventStatus::Failed),
                queue_depth: health.queue_depth,
                success_rate: health.success_rate,
                last_received_at: stats.last_received_at,
            });
        }
        Ok(overview)
    }

    async fn account(&self, access: &Access) -> Result<AccountView, AppError> {
        let account = self.live_account(access)?;
        Ok(self.account_view(&account))
    }

    async fn create_account(&self, access: &Access, form: NewAccountForm) -> Result<CreatedAccount, AppError> {
        let slug = form.slug.trim().to_lowercase();
        if let Err(refused) = access.require_instance_owner() {
            return self
                .audited(access, "create_account", Some(&slug), None, Err(refused))
                .await;
        }
        let url_token = random_token();
        let secrets = AccountSecrets {
            api_key: form.api_key.clone().filter(|key| !key.trim().is_empty()),
            url_token: Some(url_token.clone()),
            ..AccountSecrets::default()
        };
        let new = NewAccount {
            slug: slug.clone(),
            name: form.name.clone(),
            servicem8_account_uuid: form.servicem8_account_uuid.clone(),
            secrets,
        };
        let created = match self.accounts.create(new, &self.settings.new_accounts).await {
            Ok(true) => match self.accounts.get(&slug) {
                Some(account) => Ok(CreatedAccount {
                    url_token: ShownOnce {
                        name: "url_token".into(),
                        usage: Some(format!("{}?token={url_token}", self.receiver_url(&slug))),
                        value: url_token,
                    },
                    account: self.account_view(&account),
                }),
                None => Err(AppError::Unavailable("the new account did not load".into())),
            },
            Ok(false) => Err(AppError::Conflict(format!("an account {slug} exists already"))),
            Err(crate::accounts::AccountError::Invalid(reason)) => Err(AppError::InvalidInput(reason)),
            Err(error) => {
                tracing::error!(%error, "creating an account failed");
                Err(AppError::Unavailable("the account could not be created".into()))
            }
        };
        let detail = json!({ "name": form.name, "api_key": form.api_key.is_some() });
        self.audit_line(AuditLine {
            actor: &access.actor,
            account: created.as_ref().ok().map(|_| slug.as_str()),
            action: "create_account",
            target: Some(&slug),
            outcome: Outcome::of(&created),
            client_address: access.client_address.as_deref(),
            detail: Some(detail),
        })
        .await;
        created
    }

    async fn update_account(&self, access: &Access, settings: AccountSettings) -> Result<AccountView, AppError> {
        let detail = json!({
            "name": settings.name,
            "servicem8_account_uuid": settings.servicem8_account_uuid,
            "requests_per_minute": settings.requests_per_minute,
            "requests_per_day": settings.requests_per_day,
            "sync_interval_seconds": settings.sync_interval_seconds,
            "retention_days": settings.retention_days,
        });
        self.change_account(access, "update_account", detail, move |row, _| {
            if settings.name.trim().is_empty() {
                return Err("an account needs a name".into());
            }
            if settings.requests_per_minute < 1 || settings.requests_per_day < 1 {
                return Err("the request budget must allow at least one request a minute and a day".into());
            }
            if settings.retention_days < 0 {
                return Err("retention days must be 0 (keep forever) or more".into());
            }
            row.name = settings.name.trim().to_owned();
            row.servicem8_account_uuid = settings.servicem8_account_uuid.filter(|uuid| !uuid.trim().is_empty());
            row.requests_per_minute = settings.requests_per_minute;
            row.requests_per_day = settings.requests_per_day;
            row.sync_interval_seconds = i64::try_from(settings.sync_interval_seconds).unwrap_or(i64::MAX);
            row.retention_days = settings.retention_days;
            Ok(())
        })
        .await
    }

    async fn set_account_secret(
        &self,
        access: &Access,
        kind: AccountSecretKind,
        value: Option<String>,
    ) -> Result<AccountView, AppError> {
        let value = value
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty());
        let detail = json!({ "secret": kind.as_str(), "set": value.is_some() });
        self.change_account(access, "set_account_secret", detail, move |row, secrets| {
            if kind == AccountSecretKind::StandardWebhookSecret
                && value.as_deref().is_some_and(|secret| !secret.starts_with("whsec_"))
            {
                return Err("a Standard Webhooks secret starts with whsec_".into());
            }
            apply_secret(secrets, kind, value);
            if kind == AccountSecretKind::ApiKey {
                row.oauth_error = None;
            }
            Ok(())
        })
        .await
    }

    async fn generate_account_secret(&self, access: &Access, kind: AccountSecretKind) -> Result<ShownOnce, AppError> {
        let (value, usage) = match kind {
            AccountSecretKind::UrlToken => {
                let token = random_token();
                let usage = format!("{}?token={token}", self.receiver_url(&access.account));
                (token, Some(usage))
            }
            AccountSecretKind::StandardWebhookSecret => {
                use base64::Engine;
                let bytes: [u8; 24] = rand::random();
                let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes));
                (secret, None)
            }
            AccountSecretKind::WebhookSecret => (random_token(), None),
            AccountSecretKind::ApiKey | AccountSecretKind::AppSecret => {
                return Err(AppError::InvalidInput(format!(
                    "a {} comes from ServiceM8: set it, it cannot be generated here",
                    kind.as_str()
                )));
            }
        };
        let detail = json!({ "secret": kind.as_str(), "generated": true });
        let generated = value.clone();
        self.change_account(access, "generate_account_secret", detail, move |_, secrets| {
            apply_secret(secrets, kind, Some(generated));
            Ok(())
        })
        .await?;
        Ok(ShownOnce {
            name: kind.as_str().into(),
            value,
            usage,
        })
    }

    async fn set_account_disabled(&self, access: &Access, disabled: bool) -> Result<AccountView, AppError> {
        let action = if disabled { "disable_account" } else { "enable_account" };
        self.change_account(access, action, json!({ "disabled": disabled }), move |row, _| {
            row.disabled_at = disabled.then(now_millis);
            Ok(())
        })
        .await
    }

    async fn start_oauth(&self, access: &Access, scopes: &str) -> Result<String, AppError> {
        self.begin_oauth(access, scopes).await
    }

    async fn subscriptions(&self, access: &Access) -> Result<Vec<SubscriptionView>, AppError> {
        self.list_subscriptions(access).await
    }

    async fn subscribe(
        &self,
        access: &Access,
        kind: &str,
        name: &str,
        fields: Vec<String>,
    ) -> Result<Vec<SubscriptionView>, AppError> {
        self.require(access, Role::Owner, "subscribe").await?;
        let subscribed = self.add_subscription(access, kind, name, fields).await;
        let target = format!("{kind} {name}");
        self.audited(access, "subscribe", Some(&target), None, subscribed).await
    }

    async fn unsubscribe(&self, access: &Access, kind: &str, name: &str) -> Result<Vec<SubscriptionView>, AppError> {
        self.require(access, Role::Owner, "unsubscribe").await?;
        let removed = self.remove_subscription(access, kind, name).await;
        let target = format!("{kind} {name}");
        self.audited(access, "unsubscribe", Some(&target), None, removed).await
    }

    async fn members(&self, access: &Access) -> Result<Vec<MemberView>, AppError> {
        self.list_members(access).await
    }

    async fn invite(&self, access: &Access, email: Option<String>, role: Role) -> Result<OneTimeLink, AppError> {
        self.invite_member(access, email, role).await
    }

    async fn set_role(&self, access: &Access, user_id: &str, role: Role) -> Result<(), AppError> {
        self.change_role(access, user_id, role).await
    }

    async fn remove_member(&self, access: &Access, user_id: &str) -> Result<(), AppError> {
        self.drop_member(access, user_id).await
    }

    async fn tokens(&self, access: &Access) -> Result<Vec<TokenView>, AppError> {
        self.list_tokens(access).await
    }

    async fn create_token(
        &self,
        access: &Access,
        name: &str,
        role: Role,
        expires_in_days: Option<u32>,
    ) -> Result<CreatedToken, AppError> {
        self.issue_token(access, name, role, expires_in_days).await
    }

    async fn revoke_token(&self, access: &Access, id: &str) -> Result<(), AppError> {
        self.withdraw_token(access, id).await
    }

    async fn create_portal_link(
        &self,
        access: &Access,
        company_uuid: &str,
        ttl_days: u32,
    ) -> Result<OneTimeLink, AppError> {
        self.mint_portal_link(access, company_uuid, ttl_days).await
    }

    async fn audit(&self, access: &Access, filter: AuditFilter) -> Result<AuditPage, AppError> {
        self.read_audit(access, filter).await
    }
}

/// Sets or clears one secret; a Standard Webhooks secret is added beside the others (rotation).
fn apply_secret(secrets: &mut AccountSecrets, kind: AccountSecretKind, value: Option<String>) {
    match kind {
        AccountSecretKind::ApiKey => {
            secrets.api_key = value;
            if secrets.api_key.is_some() {
                secrets.access_token = None;
                secrets.refresh_token = None;
            }
        }
        AccountSecretKind::WebhookSecret => secrets.webhook_secret = value,
        AccountSecretKind::UrlToken => secrets.url_token = value,
        AccountSecretKind::AppSecret => secrets.app_secret = value,
        AccountSecretKind::StandardWebhookSecret => match value {
            Some(secret) => secrets.standard_webhook_secrets.insert(0, secret),
            None => secrets.standard_webhook_secrets.clear(),
        },
    }
}
