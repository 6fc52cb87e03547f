//! Email destinations: one message over SMTP (lettre, rustls), with STARTTLS, implicit TLS or neither, and AUTH
//! when the settings name a user.

use std::time::{Duration, SystemTime};

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::report::{caused_by_tls, describe, excerpt, Reply};
use super::secrets::EmailSecrets;
use super::settings::{EmailSettings, SmtpSecurity};
use super::{json_as_text, Attempt, AttemptOutcome, ErrorClass};
use crate::rules::MessageBody;

/// How long the server may take over one step of the conversation.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the whole conversation may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Carries the delivery's id, for the recipient's filters and for finding a delivery from a message.
const DELIVERY_HEADER: &str = "X-SM8-Delivery";

pub(super) async fn send(
    destination_name: &str,
    settings: &EmailSettings,
    secrets: &EmailSecrets,
    attempt: &Attempt<'_>,
) -> Reply {
    let message = match message(destination_name, settings, attempt) {
        Ok(message) => message,
        Err(reason) => return Reply::failed(ErrorClass::InvalidMessage, reason),
    };
    let transport = match transport(settings, secrets) {
        Ok(transport) => transport,
        Err(error) => return failure(&error),
    };
    match tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await {
        Err(_) => Reply::failed(
            ErrorClass::Timeout,
            format!(
                "the SMTP server did not take the message within {} seconds",
                SEND_TIMEOUT.as_secs()
            ),
        ),
        Ok(Err(error)) => failure(&error),
        Ok(Ok(response)) => {
            let reply = format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            );
            Reply {
                outcome: AttemptOutcome::Delivered,
                status: None,
                response_excerpt: Some(excerpt(reply.trim_end().as_bytes())),
            }
        }
    }
}

/// The email for one attempt: subject, From and To, the text and HTML parts (both as alternatives), and the
/// delivery's id as `Message-ID` and `X-SM8-Delivery`, so a retry is recognisably the same message.
fn message(destination_name: &str, settings: &EmailSettings, attempt: &Attempt<'_>) -> Result<Message, String> {
    let (subject, text, html) = match attempt.body {
        MessageBody::Json(value) => (None, Some(json_as_text(value)), None),
        MessageBody::Rendered(rendered) => (rendered.subject.clone(), rendered.text.clone(), rendered.html.clone()),
    };
    let subject = subject
        .or_else(|| attempt.subject.map(str::to_owned))
        .unwrap_or_else(|| format!("SM8 Webhooks: {destination_name}"));
    if attempt.delivery_id.is_empty() || attempt.delivery_id.contains(char::is_control) {
        return Err("the delivery id must be one line of text".into());
    }
    let from: Mailbox = settings
        .from
        .parse()
        .map_err(|error| format!("settings.from: {error}"))?;
    let message_id = format!("<{}@{}>", id_for_message_id(attempt.delivery_id), from.email.domain());
    let delivery_header = HeaderName::new_from_ascii(DELIVERY_HEADER.into()).map_err(|error| error.to_string())?;
    let mut builder = Message::builder()
        .from(from)
        .subject(subject)
        .message_id(Some(message_id))
        .date(SystemTime::from(attempt.at))
        .raw_header(HeaderValue::new(delivery_header, attempt.delivery_id.to_owned()));
    for (index, to) in settings.to.iter().enumerate() {
        builder = builder.to(to.parse().map_err(|error| format!("settings.to[{index}]: {error}"))?);
    }
    let built = match (text, html) {
        (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(text, html)),
        (Some(text), None) => builder.singlepart(SinglePart::plain(text)),
        (None, Some(html)) => builder.singlepart(SinglePart::html(html)),
        (None, None) => return Err("an email needs a text or an html part, and this message has neither".into()),
    };
    built.map_err(|error| error.to_string())
}

/// The delivery id as the left of a `Message-ID`, which allows letters, digits and a few marks.
fn id_for_message_id(delivery_id: &str) -> String {
    delivery_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn transport(
    settings: &EmailSettings,
    secrets: &EmailSecrets,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, SmtpError> {
    let tls = match settings.security {
        SmtpSecurity::Starttls => Tls::Required(TlsParameters::new(settings.host.clone())?),
        SmtpSecurity::Tls => Tls::Wrapper(TlsParameters::new(settings.host.clone())?),
        SmtpSecurity::None => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
        .port(settings.port)
        .tls(tls)
        .timeout(Some(COMMAND_TIMEOUT));
    if let (Some(username), Some(password)) = (&settings.username, &secrets.password) {
        builder = builder.credentials(Credentials::new(username.clone(), password.expose().to_owned()));
    }
    Ok(builder.build())
}

/// lettre reports a failed handshake as a connection error; its cause tells it from an unreachable server.
fn failure(error: &SmtpError) -> Reply {
    let class = if error.is_tls() || caused_by_tls(error) {
        ErrorClass::Tls
    } else if error.is_timeout() {
        ErrorClass::Timeout
    } else if error.is_transient() || error.is_permanent() || error.is_response() || error.is_client() {
        ErrorClass::Smtp
    } else {
        ErrorClass::Network
    };
    Reply::failed(class, describe(error))
}

#[cfg(test)]
mod tests;
