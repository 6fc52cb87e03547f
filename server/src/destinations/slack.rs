//! Slack destinations: an incoming webhook (<https://api.slack.com/messaging/webhooks>), posted
//! `{"text": …, "blocks": […]}`.

use serde_json::{json, Map, Value};

use super::report::{first_chars, http_reply, Reply};
use super::secrets::SlackSecrets;
use super::{json_as_text, ErrorClass, SERVICE_TIMEOUT};
use crate::rules::MessageBody;

pub(super) async fn send(client: &reqwest::Client, secrets: &SlackSecrets, body: &MessageBody) -> Reply {
    let payload = match payload(body) {
        Ok(payload) => payload,
        Err(reason) => return Reply::failed(ErrorClass::InvalidMessage, reason),
    };
    let request = client
        .post(secrets.webhook_url.expose())
        .timeout(SERVICE_TIMEOUT)
        .json(&payload);
    // Slack explains a refusal in a word or two of plain text: `invalid_blocks`, `no_text`, `channel_not_found`.
    http_reply(request.send().await, |answer| {
        Some(first_chars(answer.lines().next()?.trim(), 200).to_owned()).filter(|line| !line.is_empty())
    })
    .await
}

/// What Slack is sent for a message.
fn payload(body: &MessageBody) -> Result<Value, String> {
    match body {
        MessageBody::Json(Value::Object(object)) if object.contains_key("text") || object.contains_key("blocks") => {
            Ok(Value::Object(object.clone()))
        }
        MessageBody::Json(Value::String(text)) => Ok(json!({ "text": text })),
        MessageBody::Json(other) => Ok(json!({ "text": format!("```\n{}\n```", json_as_text(other)) })),
        MessageBody::Rendered(rendered) => {
            let mut payload = Map::new();
            if let Some(text) = &rendered.text {
                payload.insert("text".into(), Value::String(text.clone()));
            }
            if let Some(blocks) = &rendered.blocks {
                payload.insert("blocks".into(), blocks.clone());
            }
            if payload.is_empty() {
                return Err("a Slack message needs a text or a blocks part, and this one has neither".into());
            }
            Ok(Value::Object(payload))
        }
    }
}

#[cfg(test)]
mod tests;
