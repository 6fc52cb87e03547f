//! Destinations: where a rule's messages go, and what one attempt at delivering one message there is.
//!
//! A destination has a name, [`DestinationSettings`] (stored as JSON) and [`DestinationSecrets`] (sealed by the
//! store), both tagged by `kind`; [`Destination::new`] checks that they agree and are complete. [`send`] makes one
//! attempt and always returns an [`AttemptReport`]: every failure, from a refused connection to a message the
//! kind cannot carry, is a report with an [`ErrorClass`], never an error or a panic. Retries, backoff and
//! circuit breaking belong to the delivery worker that calls it.
//!
//! | kind | one attempt | delivered when |
//! |---|---|---|
//! | `webhook` | `POST` of the JSON body, Standard Webhooks signature, custom headers, the settings' timeout | 2xx |
//! | `slack` | `POST` of `{"text", "blocks"}` to the incoming-webhook URL | 2xx (Slack says `ok`) |
//! | `email` | SMTP (STARTTLS, TLS or plain; AUTH with a username): subject, text and HTML parts | accepted |
//! | `sms` | `POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json`: `To`, `From`, `Body`; basic auth | 2xx |
//!
//! **Bodies.** A webhook sends a JSON body as it is and a rendered one as `{"subject", "text", "html",
//! "blocks"}` (the parts present). Slack, email and SMS send the rendered parts they carry; a JSON body becomes
//! text for them (a JSON string as it is, anything else pretty-printed), and Slack sends an object that has
//! `text` or `blocks` as it is, as Slack's own payload.

mod email;
mod report;
mod secrets;
mod settings;
mod slack;
mod sms;
mod webhook;

#[cfg(test)]
mod receivers;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::OffsetDateTime;

pub use report::{AttemptError, AttemptOutcome, AttemptReport, ErrorClass, MAX_EXCERPT_BYTES};
pub use secrets::{DestinationSecrets, EmailSecrets, SigningSecret, SlackSecrets, SmsSecrets, WebhookSecrets};
pub use settings::{
    DestinationKind, DestinationSettings, EmailSettings, InvalidDestination, SlackSettings, SmsSettings, SmtpSecurity,
    WebhookSettings, DEFAULT_SMS_BASE_URL, DEFAULT_WEBHOOK_TIMEOUT_MS, MAX_WEBHOOK_TIMEOUT_MS,
};
pub use sms::MAX_SMS_CHARS;

use crate::rules::template::RenderedMessage;
use crate::rules::MessageBody;
use report::Reply;

/// How long Slack and Twilio may take to answer.
const SERVICE_TIMEOUT: Duration = Duration::from_millis(DEFAULT_WEBHOOK_TIMEOUT_MS);

/// A destination ready to send to: its name, and settings and secrets of the same kind, both checked.
#[derive(Debug, Clone)]
pub struct Destination {
    name: String,
    target: Target,
}

/// Settings and secrets paired by kind, so a sender never meets a mismatch.
#[derive(Debug, Clone)]
enum Target {
    Webhook(WebhookSettings, WebhookSecrets),
    Slack(SlackSecrets),
    Email(EmailSettings, EmailSecrets),
    Sms(SmsSettings, SmsSecrets),
}

impl Destination {
    /// Checks settings and secrets, that they are of one kind, and what one needs of the other (an email
    /// username needs a password).
    pub fn new(
        name: impl Into<String>,
        settings: DestinationSettings,
        secrets: DestinationSecrets,
    ) -> Result<Destination, InvalidDestination> {
        settings.validate()?;
        secrets.validate()?;
        let target = match (settings, secrets) {
            (DestinationSettings::Webhook(settings), DestinationSecrets::Webhook(secrets)) => {
                Target::Webhook(settings, secrets)
            }
            (DestinationSettings::Slack(_), DestinationSecrets::Slack(secrets)) => Target::Slack(secrets),
            (DestinationSettings::Email(settings), DestinationSecrets::Email(secrets)) => {
                if settings.username.is_some() && secrets.password.is_none() {
                    return Err(InvalidDestination::new(
                        "secrets.password",
                        "is needed when settings.username is set",
                    ));
                }
                Target::Email(settings, secrets)
            }
            (DestinationSettings::Sms(settings), DestinationSecrets::Sms(secrets)) => Target::Sms(settings, secrets),
            (settings, secrets) => {
                let reason = format!(
                    "are for a {} destination, the settings for a {} one",
                    secrets.kind().as_str(),
                    settings.kind().as_str()
                );
                return Err(InvalidDestination::new("secrets.kind", reason));
            }
        };
        Ok(Destination {
            name: name.into(),
            target,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> DestinationKind {
        match self.target {
            Target::Webhook(..) => DestinationKind::Webhook,
            Target::Slack(_) => DestinationKind::Slack,
            Target::Email(..) => DestinationKind::Email,
            Target::Sms(..) => DestinationKind::Sms,
        }
    }

    /// What "send test" delivers: JSON for a webhook, a short text with a subject for the others.
    pub fn test_message(&self) -> MessageBody {
        let text = format!("Test message from SM8 Webhooks for destination {}", self.name);
        match self.target {
            Target::Webhook(..) => MessageBody::Json(json!({
                "type": "test",
                "destination": self.name,
                "text": text,
            })),
            _ => MessageBody::Rendered(RenderedMessage {
                subject: Some(format!("SM8 Webhooks: test message for {}", self.name)),
                text: Some(text),
                html: None,
                blocks: None,
            }),
        }
    }
}

/// The HTTP client every attempt shares. Redirects are not followed: a destination answers for itself, and a
/// redirect must not carry a signed message somewhere its owner did not name.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("sm8-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// One attempt at one delivery.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The delivery's id, the same on every retry: the webhook's `webhook-id` is `msg_<id>`, and the email's
    /// `Message-ID` and `X-SM8-Delivery` carry it, so receivers can tell a retry from a new message.
    pub delivery_id: &'a str,
    pub body: &'a MessageBody,
    /// When the attempt is made: the webhook's `webhook-timestamp` and the email's `Date`.
    pub at: OffsetDateTime,
    /// The subject of an email whose message has none; `SM8 Webhooks: <destination name>` when absent too.
    pub subject: Option<&'a str>,
}

/// Makes one attempt to deliver `attempt.body` to `destination`, through `client` for the HTTP kinds (one
/// client shared by every attempt, so connections are reused). Never fails: every failure is in the report.
pub async fn send(client: &reqwest::Client, destination: &Destination, attempt: &Attempt<'_>) -> AttemptReport {
    let started = Instant::now();
    let reply: Reply = match &destination.target {
        Target::Webhook(settings, secrets) => webhook::send(client, settings, secrets, attempt).await,
        Target::Slack(secrets) => slack::send(client, secrets, attempt.body).await,
        Target::Email(settings, secrets) => email::send(&destination.name, settings, secrets, attempt).await,
        Target::Sms(settings, secrets) => sms::send(client, settings, secrets, attempt.body).await,
    };
    reply.into_report(started.elapsed())
}

/// The text a JSON body becomes for Slack, email and SMS: a string as it is, anything else pretty-printed.
fn json_as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        // A `Value` always serialises.
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}
