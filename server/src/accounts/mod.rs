//! Accounts: the ServiceM8 accounts this deployment serves. Each has a URL-safe slug (its receiver is
//! `/api/webhooks/sm8/{slug}`), credentials (an API key or OAuth tokens), webhook secrets, an API budget, and sync
//! and retention settings. Secrets are stored sealed (`sealing.rs`) and opened here, in `Accounts`, the live
//! registry every part of the server asks. A deployment configured by environment variables alone has one
//! account, `default`, completed from them at every start.

mod registry;

use clap::Args;
use serde::{Deserialize, Serialize};

pub use registry::{AccountError, Accounts, DefaultAccount, LiveAccount, NewAccount, OAuthStatus};

use crate::ingest::DeliverySecrets;
use crate::secret::Secret;

/// What accounts, users and the audit log need configured.
#[derive(Debug, Clone, Args)]
pub struct AccountArgs {
    /// The master key secrets are sealed with: 32 bytes as base64 or hex. Without it, a key file is used (and
    /// generated on first start).
    #[arg(long, env = "SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<Secret>,

    /// Where the generated master key is kept (default: `sm8.key` beside the SQLite database, or `data/sm8.key`).
    #[arg(long, env = "SECRET_KEY_FILE")]
    pub secret_key_file: Option<std::path::PathBuf>,

    /// The ServiceM8 account UUID of the default account: add-on callbacks whose JWT names it are its.
    #[arg(long, env = "SERVICEM8_ACCOUNT_UUID")]
    pub servicem8_account_uuid: Option<String>,
}

impl AccountArgs {
    /// The key file: `SECRET_KEY_FILE`, else `sm8.key` beside the SQLite database, else `data/sm8.key`. `None` for
    /// an in-memory database, whose secrets live no longer than its process.
    pub fn key_file(&self, database_url: &str) -> Option<std::path::PathBuf> {
        if let Some(file) = &self.secret_key_file {
            return Some(file.clone());
        }
        if database_url.contains(":memory:") {
            return None;
        }
        let beside_database = database_url
            .strip_prefix("sqlite://")
            .or_else(|| database_url.strip_prefix("sqlite:"))
            .map(|path| path.split('?').next().unwrap_or(path))
            .and_then(|path| std::path::Path::new(path).parent().map(|folder| folder.join("sm8.key")));
        Some(beside_database.unwrap_or_else(|| std::path::PathBuf::from("data/sm8.key")))
    }
}

impl Default for AccountArgs {
    fn default() -> Self {
        crate::flags::defaults()
    }
}

/// Where an account's processed records come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingMode {
    /// Each record is fetched from the ServiceM8 API.
    Fetch,
    /// No credentials: what the payload itself carries (the seed format's `changes`) is applied, nothing fetched.
    PayloadOnly,
}

/// How an account reaches the ServiceM8 API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// None yet: events are applied from their payloads.
    None,
    ApiKey,
    OAuth,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::None => "none",
            CredentialKind::ApiKey => "api_key",
            CredentialKind::OAuth => "oauth",
        }
    }

    pub fn parse(value: &str) -> CredentialKind {
        match value {
            "api_key" => CredentialKind::ApiKey,
            "oauth" => CredentialKind::OAuth,
            _ => CredentialKind::None,
        }
    }
}

/// Everything secret about an account, sealed together as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSecrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standard_webhook_secrets: Vec<String>,
}

impl AccountSecrets {
    /// The secrets deliveries to the account are verified with.
    pub fn delivery(&self) -> DeliverySecrets {
        let secret = |value: &Option<String>| value.clone().filter(|v| !v.is_empty()).map(Secret::new);
        DeliverySecrets {
            webhook_secret: secret(&self.webhook_secret),
            webhook_url_token: secret(&self.url_token),
            servicem8_app_secret: secret(&self.app_secret),
            standard_webhook_secrets: self.standard_webhook_secrets.iter().cloned().map(Secret::new).collect(),
        }
    }
}

/// Which secret of an account a change names (never its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretName {
    ApiKey,
    WebhookSecret,
    UrlToken,
    AppSecret,
    StandardWebhookSecret,
}

impl SecretName {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretName::ApiKey => "api_key",
            SecretName::WebhookSecret => "webhook_secret",
            SecretName::UrlToken => "url_token",
            SecretName::AppSecret => "app_secret",
            SecretName::StandardWebhookSecret => "standard_webhook_secret",
        }
    }
}

/// Why a slug cannot name an account, if it cannot: 2–40 characters of `a-z`, `0-9` and `-`, starting with a
/// letter, not ending with `-`.
pub fn slug_problem(slug: &str) -> Option<String> {
    let valid_characters = slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let starts_with_letter = slug.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if !(2..=40).contains(&slug.len()) || !valid_characters || !starts_with_letter || slug.ends_with('-') {
        return Some(format!(
            "{slug:?} cannot name an account: use 2 to 40 characters of a-z, 0-9 and '-', starting with a letter"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_lowercase_and_url_safe() {
        for good in ["default", "acme", "acme-plumbing", "a1"] {
            assert_eq!(slug_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "a",
            "Acme",
            "acme_1",
            "1acme",
            "acme-",
            "acme/x",
            "ac me",
            &"a".repeat(41),
        ] {
            assert!(slug_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn empty_secrets_are_not_configured_and_values_never_show_in_debug_of_delivery_secrets() {
        let secrets = AccountSecrets {
            webhook_secret: Some(String::new()),
            url_token: Some("u-7f3e9a".into()),
            standard_webhook_secrets: vec!["whsec_a".into()],
            ..AccountSecrets::default()
        };
        let delivery = secrets.delivery();
        assert!(delivery.webhook_secret.is_none());
        assert_eq!(
            delivery.webhook_url_token.as_ref().map(Secret::expose),
            Some("u-7f3e9a")
        );
        assert!(!format!("{delivery:?}").contains("u-7f3e9a"));
        let sealed_form = serde_json::to_string(&AccountSecrets::default()).unwrap();
        assert_eq!(sealed_form, "{}");
    }
}
