//! The secret half of a destination, sealed at rest by the store: signing secrets, Slack's URL, passwords and
//! tokens. Every value is a [`Secret`] or a [`SigningSecret`], so `Debug` output never shows one.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;

use super::settings::{check_http_url, tagged, DestinationKind, InvalidDestination};
use crate::secret::Secret;

const SIGNING_SECRET_PREFIX: &str = "whsec_";
/// The length of a generated signing key; Standard Webhooks accepts keys of 24 to 64 bytes.
const SIGNING_KEY_BYTES: usize = 32;
const MIN_SIGNING_KEY_BYTES: usize = 24;
const MAX_SIGNING_KEY_BYTES: usize = 64;
/// The current signing secret and, while receivers move to it, the previous one.
const MAX_SIGNING_SECRETS: usize = 2;

/// A destination's secrets as sealed by the store (JSON, tagged by `kind` like the settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DestinationSecrets {
    Webhook(WebhookSecrets),
    Slack(SlackSecrets),
    Email(EmailSecrets),
    Sms(SmsSecrets),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSecrets {
    /// The first signs; a second is the previous one during a rotation, and signs too.
    pub signing_secrets: Vec<SigningSecret>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSecrets {
    /// The incoming-webhook URL: whoever has it can post to the channel.
    #[serde(with = "secret_text")]
    pub webhook_url: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSecrets {
    /// The SMTP password, needed when the settings have a username.
    #[serde(default, with = "optional_secret_text", skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSecrets {
    #[serde(with = "secret_text")]
    pub auth_token: Secret,
}

impl DestinationSecrets {
    /// Reads and checks secrets an admin sent or the store unsealed. The error never quotes a value.
    pub fn from_value(value: Value) -> Result<DestinationSecrets, InvalidDestination> {
        let secrets: DestinationSecrets = serde_json::from_value(value).map_err(shape_error)?;
        secrets.validate()?;
        Ok(secrets)
    }

    /// Reads and checks the secret fields of a `kind` given apart from them, as the dashboard's form sends them.
    pub fn of_kind(kind: DestinationKind, fields: Value) -> Result<DestinationSecrets, InvalidDestination> {
        DestinationSecrets::from_value(tagged("secrets", kind, fields)?)
    }

    /// Reads and checks the JSON text the store unsealed.
    pub fn from_json(json: &str) -> Result<DestinationSecrets, InvalidDestination> {
        let value = serde_json::from_str(json).map_err(shape_error)?;
        DestinationSecrets::from_value(value)
    }

    /// The JSON text for the store to seal.
    pub fn to_json(&self) -> Secret {
        // Strings and lists of strings: JSON represents each, so serialising cannot fail.
        Secret::new(serde_json::to_string(self).unwrap_or_default())
    }

    pub fn kind(&self) -> DestinationKind {
        match self {
            DestinationSecrets::Webhook(_) => DestinationKind::Webhook,
            DestinationSecrets::Slack(_) => DestinationKind::Slack,
            DestinationSecrets::Email(_) => DestinationKind::Email,
            DestinationSecrets::Sms(_) => DestinationKind::Sms,
        }
    }

    /// The names of the secrets that are set, which the dashboard shows instead of their values.
    pub fn names_set(&self) -> Vec<&'static str> {
        match self {
            DestinationSecrets::Webhook(_) => vec!["signing_secrets"],
            DestinationSecrets::Slack(_) => vec!["webhook_url"],
            DestinationSecrets::Email(email) if email.password.is_some() => vec!["password"],
            DestinationSecrets::Email(_) => Vec::new(),
            DestinationSecrets::Sms(_) => vec!["auth_token"],
        }
    }

    /// Checks every field; the error names the first that is wrong.
    pub fn validate(&self) -> Result<(), InvalidDestination> {
        match self {
            DestinationSecrets::Webhook(webhook) => {
                if !(1..=MAX_SIGNING_SECRETS).contains(&webhook.signing_secrets.len()) {
                    let reason = format!("must hold 1 to {MAX_SIGNING_SECRETS} secrets: the current one first");
                    return Err(InvalidDestination::new("secrets.signing_secrets", reason));
                }
                Ok(())
            }
            DestinationSecrets::Slack(slack) => check_http_url("secrets.webhook_url", slack.webhook_url.expose()),
            DestinationSecrets::Email(_) => Ok(()),
            DestinationSecrets::Sms(sms) if sms.auth_token.expose().is_empty() => {
                Err(InvalidDestination::new("secrets.auth_token", "must not be empty"))
            }
            DestinationSecrets::Sms(_) => Ok(()),
        }
    }
}

/// serde's message without the values it quotes (`invalid type: string "…"`), which could be secrets.
fn shape_error(error: serde_json::Error) -> InvalidDestination {
    let mut reason = String::new();
    let mut quoted = false;
    for c in error.to_string().chars() {
        match (c, quoted) {
            ('"', false) => {
                quoted = true;
                reason.push_str("\"***");
            }
            ('"', true) => {
                quoted = false;
                reason.push('"');
            }
            (_, true) => {}
            (c, false) => reason.push(c),
        }
    }
    InvalidDestination::new("secrets", reason)
}

impl WebhookSecrets {
    /// Secrets for a new webhook: one fresh signing secret.
    pub fn generate() -> WebhookSecrets {
        WebhookSecrets {
            signing_secrets: vec![SigningSecret::generate()],
        }
    }

    /// Starts a rotation: a fresh secret signs first, the current one stays as the previous (and an older
    /// previous one goes), so receivers that know either accept every delivery until they move.
    pub fn rotate(&mut self) -> &SigningSecret {
        self.signing_secrets.truncate(MAX_SIGNING_SECRETS - 1);
        self.signing_secrets.insert(0, SigningSecret::generate());
        &self.signing_secrets[0]
    }
}

/// A Standard Webhooks signing secret: `whsec_` and the base64 of the HMAC key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl SigningSecret {
    /// A secret of 32 random bytes.
    pub fn generate() -> SigningSecret {
        let mut key = vec![0; SIGNING_KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        SigningSecret { key }
    }

    /// Reads `whsec_<base64>`; the key must be 24 to 64 bytes long. The error never quotes the text.
    pub fn parse(text: &str) -> Result<SigningSecret, String> {
        let encoded = text
            .strip_prefix(SIGNING_SECRET_PREFIX)
            .ok_or_else(|| format!("a signing secret starts with {SIGNING_SECRET_PREFIX}"))?;
        let key = BASE64
            .decode(encoded)
            .map_err(|_| format!("a signing secret is {SIGNING_SECRET_PREFIX} and base64"))?;
        if !(MIN_SIGNING_KEY_BYTES..=MAX_SIGNING_KEY_BYTES).contains(&key.len()) {
            return Err(format!(
                "a signing secret's key is {MIN_SIGNING_KEY_BYTES} to {MAX_SIGNING_KEY_BYTES} bytes, not {}",
                key.len()
            ));
        }
        Ok(SigningSecret { key })
    }

    /// `whsec_<base64>`, to show once to whoever configures the receiver.
    pub fn encode(&self) -> Secret {
        Secret::new(format!("{SIGNING_SECRET_PREFIX}{}", BASE64.encode(&self.key)))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(***)")
    }
}

impl Serialize for SigningSecret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.encode().expose())
    }
}

impl<'de> Deserialize<'de> for SigningSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        SigningSecret::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A [`Secret`] as a JSON string.
mod secret_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::secret::Secret;

    pub fn serialize<S: Serializer>(secret: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(secret.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

/// An optional [`Secret`] as a JSON string or nothing.
mod optional_secret_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::secret::Secret;

    pub fn serialize<S: Serializer>(secret: &Option<Secret>, serializer: S) -> Result<S::Ok, S::Error> {
        match secret {
            Some(secret) => serializer.serialize_some(secret.expose()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
        Option::<String>::deserialize(deserializer).map(|secret| secret.map(Secret::new))
    }
}

#[cfg(test)]
mod tests;
