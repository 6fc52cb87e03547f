//! What the directory's pages and API show and take: the signed-in visitor, accounts, members, invitations, API
//! tokens and the audit log. A secret appears in these types only in the answer that creates it (`ShownOnce`).

use serde::{Deserialize, Serialize};

use crate::access::Role;

/// The signed-in user, the accounts they may open, and the one the dashboard shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visitor {
    pub user_id: String,
    pub email: String,
    pub instance_owner: bool,
    pub accounts: Vec<AccountChoice>,
    /// The account the dashboard shows, and the visitor's role in it; none when they belong to no account yet.
    pub current: Option<AccountChoice>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountChoice {
    pub slug: String,
    pub name: String,
    pub role: Role,
}

/// What a one-time link is for, before it is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    /// `None`: the first-run setup of an instance owner.
    pub account: Option<String>,
    pub account_name: Option<String>,
    pub role: Role,
    /// The email the invitation was made for, if it names one.
    pub email: Option<String>,
    /// The email already has a user, who only signs in to accept.
    pub existing_user: bool,
}

/// An account as its page shows it: settings, which secrets are set (never their values), its connection.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub slug: String,
    pub name: String,
    pub servicem8_account_uuid: Option<String>,
    pub disabled: bool,
    /// `none`, `api_key` or `oauth`.
    pub credential_kind: String,
    pub oauth_scopes: Option<String>,
    /// RFC 3339.
    pub oauth_expires_at: Option<String>,
    /// The last refresh that failed.
    pub oauth_error: Option<String>,
    /// Whether "Connect ServiceM8" is offered (an OAuth application is configured).
    pub oauth_available: bool,
    pub secrets: SecretsSet,
    pub requests_per_minute: i64,
    pub requests_per_day: i64,
    pub sync_interval_seconds: u64,
    pub retention_days: i64,
    /// Where ServiceM8 posts this account's webhooks (without its URL token).
    pub receiver_url: String,
    pub created_at: String,
}

/// Which secrets an account holds.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretsSet {
    pub api_key: bool,
    pub webhook_secret: bool,
    pub url_token: bool,
    pub app_secret: bool,
    pub standard_webhook_secrets: usize,
}

/// The settings of an account that hold no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    pub name: String,
    pub servicem8_account_uuid: Option<String>,
    pub requests_per_minute: i64,
    pub requests_per_day: i64,
    pub sync_interval_seconds: u64,
    pub retention_days: i64,
}

/// A new account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccountForm {
    pub slug: String,
    pub name: String,
    pub servicem8_account_uuid: Option<String>,
    /// An API key to start with, if the account does not connect through OAuth.
    pub api_key: Option<String>,
}

/// The scopes "Connect ServiceM8" asks for unless the owner chooses others.
pub const DEFAULT_OAUTH_SCOPES: &str =
    "read_jobs read_customers read_staff read_job_attachments read_schedule manage_jobs";

/// A secret an account holds, to set, replace or clear.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountSecretKind {
    ApiKey,
    WebhookSecret,
    UrlToken,
    AppSecret,
    /// Added beside the ones there (rotation); clearing removes them all.
    StandardWebhookSecret,
}

impl AccountSecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountSecretKind::ApiKey => "api_key",
            AccountSecretKind::WebhookSecret => "webhook_secret",
            AccountSecretKind::UrlToken => "url_token",
            AccountSecretKind::AppSecret => "app_secret",
            AccountSecretKind::StandardWebhookSecret => "standard_webhook_secret",
        }
    }
}

/// A secret the server generated, shown in this answer and never again.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShownOnce {
    /// Which secret.
    pub name: String,
    pub value: String,
    /// Where it is used, e.g. the receiver URL with the token in it.
    pub usage: Option<String>,
}

/// A new account, with the URL token generated for it.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedAccount {
    pub account: AccountView,
    pub url_token: ShownOnce,
}

/// One account on the instance owners' overview.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountOverview {
    pub slug: String,
    pub name: String,
    pub disabled: bool,
    pub total_events: i64,
    pub failed_events: i64,
    pub queue_depth: i64,
    /// Share of the last hour's finished events that succeeded.
    pub success_rate: Option<f64>,
    /// RFC 3339.
    pub last_received_at: Option<String>,
}

/// A member of an account.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    /// Whether they have set a password (an invited user may not have yet).
    pub active: bool,
    pub instance_owner: bool,
}

/// A one-time link: an invitation into an account with a role, or a client portal link.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimeLink {
    pub url: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// A personal API token (never its value).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub account: String,
    pub role: Role,
    pub owner_email: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked: bool,
}

/// A token just created: its value, shown once.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token: TokenView,
    pub value: String,
}

/// Which audit lines to show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    pub action: Option<String>,
    /// Part of the actor's email or token name.
    pub actor: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
    /// RFC 3339 bounds.
    pub from: Option<String>,
    pub to: Option<String>,
    /// From `AuditPage::next_cursor`.
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// One audited action.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntryView {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    pub account: Option<String>,
    pub actor_kind: String,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub client_address: Option<String>,
    pub detail: Option<serde_json::Value>,
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntryView>,
    pub next_cursor: Option<String>,
}

/// A webhook subscription of the account at ServiceM8.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionView {
    /// `object` or `event`.
    pub kind: String,
    /// The object (`job`) or event (`job.completed`) name.
    pub name: String,
    pub fields: Vec<String>,
    pub callback_url: String,
    pub active: bool,
}
