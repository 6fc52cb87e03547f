//! Destinations: where a rule's messages go.
//!
//! A destination has a name, [`DestinationSettings`] (stored as JSON) and [`DestinationSecrets`] (sealed by the
//! store), both tagged by `kind`: `webhook`, `slack`, `email` or `sms`. Each is read and checked on save, and an
//! error names the field that is wrong ([`InvalidDestination`]).

mod secrets;
mod settings;

pub use secrets::{DestinationSecrets, EmailSecrets, SigningSecret, SlackSecrets, SmsSecrets, WebhookSecrets};
pub use settings::{
    DestinationKind, DestinationSettings, EmailSettings, InvalidDestination, SlackSettings, SmsSettings, SmtpSecurity,
    WebhookSettings, DEFAULT_SMS_BASE_URL, DEFAULT_WEBHOOK_TIMEOUT_MS, MAX_WEBHOOK_TIMEOUT_MS,
};
