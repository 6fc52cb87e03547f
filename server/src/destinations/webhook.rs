//! Webhook destinations: the message as JSON, signed as Standard Webhooks (<https://www.standardwebhooks.com>)
//! specifies, so receivers can use any of its libraries to check it.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use sm8_wire::ingest::standard::{self, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

use super::report::{http_reply, Reply};
use super::secrets::{SigningSecret, WebhookSecrets};
use super::settings::WebhookSettings;
use super::{Attempt, ErrorClass};
use crate::rules::MessageBody;

pub(super) async fn send(
    client: &reqwest::Client,
    settings: &WebhookSettings,
    secrets: &WebhookSecrets,
    attempt: &Attempt<'_>,
) -> Reply {
    let body = match body(attempt.body) {
        Ok(body) => body,
        Err(error) => return Reply::failed(ErrorClass::InvalidMessage, error.to_string()),
    };
    let id = format!("msg_{}", attempt.delivery_id);
    let timestamp = attempt.at.unix_timestamp();
    let signature = signature(&secrets.signing_secrets, &id, timestamp, &body);
    let mut request = client
        .post(&settings.url)
        .timeout(Duration::from_millis(settings.timeout_ms));
    for (name, value) in &settings.headers {
        request = request.header(name, value);
    }
    let request = request
        .header(ID_HEADER, id)
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    http_reply(request.send().await, |_| None).await
}

/// A JSON body as it is; a rendered one as an object of the parts present.
fn body(message: &MessageBody) -> Result<Vec<u8>, serde_json::Error> {
    match message {
        MessageBody::Json(value) => serde_json::to_vec(value),
        MessageBody::Rendered(rendered) => serde_json::to_vec(rendered),
    }
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` for each secret, space-separated.
fn signature(secrets: &[SigningSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| standard::sign(secret.encode().expose(), id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
