use serde_json::json;

use super::{Destination, DestinationKind, DestinationSecrets, DestinationSettings, EmailSecrets, WebhookSecrets};
use crate::rules::MessageBody;
use crate::secret::Secret;

fn destination(settings: serde_json::Value, secrets: DestinationSecrets) -> Destination {
    Destination::new("office", DestinationSettings::from_value(settings).unwrap(), secrets).unwrap()
}

#[test]
fn a_test_message_names_the_destination_as_json_for_a_webhook_and_as_text_for_the_others() {
    let webhook = destination(
        json!({"kind": "webhook", "url": "https://e.example/h"}),
        DestinationSecrets::Webhook(WebhookSecrets::generate()),
    );
    assert_eq!(
        webhook.test_message(),
        MessageBody::Json(json!({"type": "test", "destination": "office",
                                 "text": "Test message from SM8 Webhooks for destination office"}))
    );
    let sms = destination(
        json!({"kind": "sms", "account_sid": "AC1", "from": "+61400000001", "to": "+61400000000"}),
        DestinationSecrets::from_value(json!({"kind": "sms", "auth_token": "t"})).unwrap(),
    );
    let MessageBody::Rendered(rendered) = sms.test_message() else {
        panic!("not rendered")
    };
    assert_eq!(
        rendered.text.as_deref(),
        Some("Test message from SM8 Webhooks for destination office")
    );
    assert_eq!(
        rendered.subject.as_deref(),
        Some("SM8 Webhooks: test message for office")
    );
}

#[test]
fn a_destination_needs_settings_and_secrets_of_one_kind_and_a_password_for_a_username() {
    let webhook = DestinationSettings::from_value(json!({"kind": "webhook", "url": "https://e.example/h"})).unwrap();
    let sms = DestinationSecrets::from_value(json!({"kind": "sms", "auth_token": "t"})).unwrap();
    let error = Destination::new("x", webhook.clone(), sms).unwrap_err();
    assert_eq!(
        error.to_string(),
        "secrets.kind: are for a sms destination, the settings for a webhook one"
    );
    let destination = Destination::new("x", webhook, DestinationSecrets::Webhook(WebhookSecrets::generate())).unwrap();
    assert_eq!(
        (destination.name(), destination.kind()),
        ("x", DestinationKind::Webhook)
    );
    let email = DestinationSettings::from_value(json!({"kind": "email", "host": "smtp.example.com", "port": 587,
        "username": "office", "from": "a@example.com", "to": ["b@example.com"]}))
    .unwrap();
    let error = Destination::new(
        "x",
        email.clone(),
        DestinationSecrets::Email(EmailSecrets { password: None }),
    )
    .unwrap_err();
    assert_eq!(error.field, "secrets.password");
    let password = EmailSecrets {
        password: Some(Secret::new("pw")),
    };
    assert!(Destination::new("x", email, DestinationSecrets::Email(password)).is_ok());
}
