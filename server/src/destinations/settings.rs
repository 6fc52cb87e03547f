//! What an account configures for each kind of destination, apart from its secrets, and the checks made on save.

use std::collections::BTreeMap;
use std::str::FromStr;

use lettre::message::Mailbox;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a webhook may take to answer when its settings say nothing.
pub const DEFAULT_WEBHOOK_TIMEOUT_MS: u64 = 10_000;
/// The longest a webhook may be given to answer.
pub const MAX_WEBHOOK_TIMEOUT_MS: u64 = 60_000;
/// Twilio's API, where SMS go unless the settings name another base URL.
pub const DEFAULT_SMS_BASE_URL: &str = "https://api.twilio.com";
/// The most custom headers one webhook may send.
const MAX_CUSTOM_HEADERS: usize = 20;
/// The most recipients of one email destination.
const MAX_RECIPIENTS: usize = 50;
const MAX_URL_BYTES: usize = 2048;
const MAX_HEADER_VALUE_BYTES: usize = 4096;

/// Headers a webhook's settings may not set: those of the connection rather than the message, and those the
/// sender writes itself (the body's type and length, and the Standard Webhooks `webhook-*` headers).
const RESERVED_HEADERS: [&str; 12] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-type",
    "content-length",
];

/// A settings or secrets document that cannot be used, naming the field: `settings.url: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidDestination {
    /// `settings`, `settings.headers.x-api-key`, `secrets.signing_secrets`, …
    pub field: String,
    pub reason: String,
}

impl InvalidDestination {
    pub(super) fn new(field: impl Into<String>, reason: impl Into<String>) -> InvalidDestination {
        InvalidDestination {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The four kinds of destination, as the store names them.
pub use crate::store::outbound::DestinationKind;

impl std::str::FromStr for DestinationKind {
    type Err = InvalidDestination;

    fn from_str(kind: &str) -> Result<DestinationKind, InvalidDestination> {
        DestinationKind::ALL
            .into_iter()
            .find(|known| known.as_str() == kind)
            .ok_or_else(|| InvalidDestination::new("kind", "must be webhook, slack, email or sms"))
    }
}

/// A destination's settings as stored (JSON, tagged by `kind`); everything secret is in
/// [`DestinationSecrets`](super::DestinationSecrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DestinationSettings {
    Webhook(WebhookSettings),
    /// Slack's incoming-webhook URL is the whole of its configuration, and it is a secret.
    Slack(SlackSettings),
    Email(EmailSettings),
    Sms(SmsSettings),
}

/// An HTTPS (or HTTP) endpoint that receives each message as JSON, signed the Standard Webhooks way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    /// Sent with every request, after the checks of [`RESERVED_HEADERS`] and `webhook-*`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// How long one request may take, connection to the end of the answer.
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_webhook_timeout_ms() -> u64 {
    DEFAULT_WEBHOOK_TIMEOUT_MS
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {}

/// An SMTP server and the addresses each message goes from and to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub security: SmtpSecurity,
    /// Signs in with this name and the secret password; no AUTH when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `office@example.com` or `SM8 Webhooks <office@example.com>`.
    pub from: String,
    pub to: Vec<String>,
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which the server must offer (usually port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No encryption, password included: only for a relay on a trusted network.
    None,
}

/// Twilio's Messages API (or a service with its shape) and the numbers each SMS goes from and to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    #[serde(default = "default_sms_base_url")]
    pub base_url: String,
    /// `AC…`; with the secret auth token, the API's credentials.
    pub account_sid: String,
    /// A number in E.164 form (`+61400000000`) or an alphanumeric sender id of up to 11 characters.
    pub from: String,
    /// A number in E.164 form.
    pub to: String,
}

fn default_sms_base_url() -> String {
    DEFAULT_SMS_BASE_URL.into()
}

impl DestinationSettings {
    /// Reads and checks settings an admin sent or the store kept.
    pub fn from_value(value: Value) -> Result<DestinationSettings, InvalidDestination> {
        let settings: DestinationSettings =
            serde_json::from_value(value).map_err(|error| InvalidDestination::new("settings", error.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Reads and checks the fields of a `kind` given apart from them, as the dashboard's form sends them.
    pub fn of_kind(kind: DestinationKind, fields: Value) -> Result<DestinationSettings, InvalidDestination> {
        DestinationSettings::from_value(tagged("settings", kind, fields)?)
    }

    /// Reads and checks the JSON text the store keeps.
    pub fn from_json(json: &str) -> Result<DestinationSettings, InvalidDestination> {
        let value =
            serde_json::from_str(json).map_err(|error| InvalidDestination::new("settings", error.to_string()))?;
        DestinationSettings::from_value(value)
    }

    /// The JSON text the store keeps.
    pub fn to_json(&self) -> String {
        // Strings, numbers and maps keyed by strings: JSON represents each, so serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn kind(&self) -> DestinationKind {
        match self {
            DestinationSettings::Webhook(_) => DestinationKind::Webhook,
            DestinationSettings::Slack(_) => DestinationKind::Slack,
            DestinationSettings::Email(_) => DestinationKind::Email,
            DestinationSettings::Sms(_) => DestinationKind::Sms,
        }
    }

    /// Checks every field; the error names the first that is wrong.
    pub fn validate(&self) -> Result<(), InvalidDestination> {
        match self {
            DestinationSettings::Webhook(webhook) => webhook.validate(),
            DestinationSettings::Slack(_) => Ok(()),
            DestinationSettings::Email(email) => email.validate(),
            DestinationSettings::Sms(sms) => sms.validate(),
        }
    }
}

/// `fields` with the `kind` tag added; `null` stands for no fields.
pub(super) fn tagged(what: &str, kind: DestinationKind, fields: Value) -> Result<Value, InvalidDestination> {
    let mut object = match fields {
        Value::Object(object) => object,
        Value::Null => serde_json::Map::new(),
        _ => return Err(InvalidDestination::new(what, "must be an object")),
    };
    object.insert("kind".into(), Value::String(kind.as_str().into()));
    Ok(Value::Object(object))
}

impl WebhookSettings {
    fn validate(&self) -> Result<(), InvalidDestination> {
        check_http_url("settings.url", &self.url)?;
        if self.headers.len() > MAX_CUSTOM_HEADERS {
            let reason = format!("at most {MAX_CUSTOM_HEADERS} custom headers are allowed");
            return Err(InvalidDestination::new("settings.headers", reason));
        }
        for (name, value) in &self.headers {
            check_custom_header(name, value)?;
        }
        if !(1..=MAX_WEBHOOK_TIMEOUT_MS).contains(&self.timeout_ms) {
            let reason = format!("must be between 1 and {MAX_WEBHOOK_TIMEOUT_MS} milliseconds");
            return Err(InvalidDestination::new("settings.timeout_ms", reason));
        }
        Ok(())
    }
}

fn check_custom_header(name: &str, value: &str) -> Result<(), InvalidDestination> {
    let field = format!("settings.headers.{name}");
    let header = HeaderName::from_str(name).map_err(|_| InvalidDestination::new(&field, "is not a header name"))?;
    if RESERVED_HEADERS.contains(&header.as_str()) || header.as_str().starts_with("webhook-") {
        return Err(InvalidDestination::new(
            field,
            "is set by the sender and cannot be configured",
        ));
    }
    if value.len() > MAX_HEADER_VALUE_BYTES {
        let reason = format!("is longer than {MAX_HEADER_VALUE_BYTES} bytes");
        return Err(InvalidDestination::new(field, reason));
    }
    HeaderValue::from_str(value)
        .map_err(|_| InvalidDestination::new(field, "may hold only visible ASCII characters, spaces and tabs"))?;
    Ok(())
}

impl EmailSettings {
    fn validate(&self) -> Result<(), InvalidDestination> {
        let host = self.host.trim();
        if host.is_empty() || host.len() > 253 || host.contains(|c: char| c.is_whitespace() || c == '/' || c == ':') {
            return Err(InvalidDestination::new(
                "settings.host",
                "must be a host name or an IP address, without scheme or port",
            ));
        }
        if self.port == 0 {
            return Err(InvalidDestination::new("settings.port", "must be between 1 and 65535"));
        }
        if self
            .username
            .as_deref()
            .is_some_and(|username| username.trim().is_empty())
        {
            return Err(InvalidDestination::new(
                "settings.username",
                "must not be empty; leave it out for no AUTH",
            ));
        }
        check_mailbox("settings.from", &self.from)?;
        if self.to.is_empty() || self.to.len() > MAX_RECIPIENTS {
            let reason = format!("must list between 1 and {MAX_RECIPIENTS} addresses");
            return Err(InvalidDestination::new("settings.to", reason));
        }
        for (index, address) in self.to.iter().enumerate() {
            check_mailbox(&format!("settings.to[{index}]"), address)?;
        }
        Ok(())
    }
}

fn check_mailbox(field: &str, address: &str) -> Result<(), InvalidDestination> {
    Mailbox::from_str(address)
        .map(drop)
        .map_err(|error| InvalidDestination::new(field, format!("{address:?} is not an email address: {error}")))
}

impl SmsSettings {
    fn validate(&self) -> Result<(), InvalidDestination> {
        check_http_url("settings.base_url", &self.base_url)?;
        // The SID is a segment of the API's path.
        if self.account_sid.is_empty() || !self.account_sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(InvalidDestination::new(
                "settings.account_sid",
                "must be letters and digits (AC…)",
            ));
        }
        if !is_phone_number(&self.from) && !is_sender_id(&self.from) {
            return Err(InvalidDestination::new(
                "settings.from",
                "must be a number in E.164 form (+61400000000) or a sender id of up to 11 letters and digits",
            ));
        }
        if !is_phone_number(&self.to) {
            return Err(InvalidDestination::new(
                "settings.to",
                "must be a number in E.164 form (+61400000000)",
            ));
        }
        Ok(())
    }
}

/// E.164: a plus and up to 15 digits, the first not zero.
fn is_phone_number(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0')
    })
}

/// An alphanumeric sender id: 1 to 11 letters, digits and spaces, at least one a letter.
fn is_sender_id(text: &str) -> bool {
    (1..=11).contains(&text.len())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
        && text.chars().any(|c| c.is_ascii_alphabetic())
}

/// An absolute `http` or `https` URL with a host.
pub(super) fn check_http_url(field: &str, url: &str) -> Result<(), InvalidDestination> {
    if url.len() > MAX_URL_BYTES {
        let reason = format!("is longer than {MAX_URL_BYTES} bytes");
        return Err(InvalidDestination::new(field, reason));
    }
    let parsed = Url::parse(url).map_err(|error| InvalidDestination::new(field, format!("is not a URL: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        let reason = format!("must be an http or https URL, not {}", parsed.scheme());
        return Err(InvalidDestination::new(field, reason));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(InvalidDestination::new(field, "has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
