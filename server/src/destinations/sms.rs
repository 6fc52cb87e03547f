//! SMS destinations: Twilio's Messages API (<https://www.twilio.com/docs/messaging/api/message-resource>), or
//! any service with its shape at another base URL.

use serde_json::Value;

use super::report::{first_chars, http_reply, Reply};
use super::secrets::SmsSecrets;
use super::settings::SmsSettings;
use super::{json_as_text, ErrorClass, SERVICE_TIMEOUT};
use crate::rules::MessageBody;

/// The longest SMS body Twilio takes; a longer text is cut to it.
pub const MAX_SMS_CHARS: usize = 1600;

pub(super) async fn send(
    client: &reqwest::Client,
    settings: &SmsSettings,
    secrets: &SmsSecrets,
    body: &MessageBody,
) -> Reply {
    let text = match body {
        MessageBody::Json(value) => json_as_text(value),
        MessageBody::Rendered(rendered) => match &rendered.text {
            Some(text) => text.clone(),
            None => {
                return Reply::failed(
                    ErrorClass::InvalidMessage,
                    "an SMS needs a text part, and this message has none",
                )
            }
        },
    };
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        settings.base_url.trim_end_matches('/'),
        settings.account_sid
    );
    let form = [
        ("To", settings.to.as_str()),
        ("From", settings.from.as_str()),
        ("Body", first_chars(&text, MAX_SMS_CHARS)),
    ];
    let request = client
        .post(url)
        .timeout(SERVICE_TIMEOUT)
        .basic_auth(&settings.account_sid, Some(secrets.auth_token.expose()))
        .form(&form);
    http_reply(request.send().await, twilio_message).await
}

/// Twilio explains a refusal in the `message` of a JSON answer.
fn twilio_message(answer: &str) -> Option<String> {
    let answer: Value = serde_json::from_str(answer).ok()?;
    Some(answer.get("message")?.as_str()?.to_owned())
}

#[cfg(test)]
mod tests;
