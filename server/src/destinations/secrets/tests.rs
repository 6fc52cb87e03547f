use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::json;

use crate::destinations::{DestinationKind, DestinationSecrets, EmailSecrets, SigningSecret, WebhookSecrets};

#[test]
fn a_generated_signing_secret_is_whsec_and_32_random_bytes() {
    let secret = SigningSecret::generate();
    let text = secret.encode().expose().to_owned();
    let key = BASE64.decode(text.strip_prefix("whsec_").unwrap()).unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(SigningSecret::parse(&text).unwrap(), secret);
    assert_ne!(SigningSecret::generate(), secret);
}

#[test]
fn a_rotation_puts_a_new_secret_first_and_keeps_only_the_current_one_as_previous() {
    let mut secrets = WebhookSecrets::generate();
    let first = secrets.signing_secrets[0].clone();
    let second = secrets.rotate().clone();
    assert_eq!(secrets.signing_secrets, vec![second.clone(), first]);
    let third = secrets.rotate().clone();
    assert_eq!(secrets.signing_secrets, vec![third, second]);
}

#[test]
fn signing_secrets_are_refused_without_the_prefix_base64_or_a_fitting_length() {
    assert!(SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    assert!(SigningSecret::parse("whsec_not base64!").is_err());
    assert!(SigningSecret::parse(&format!("whsec_{}", BASE64.encode([7; 8]))).is_err());
    let error = DestinationSecrets::from_value(json!({"kind": "webhook", "signing_secrets": []})).unwrap_err();
    assert_eq!(error.field, "secrets.signing_secrets");
    let three = [(); 3].map(|_| SigningSecret::generate().encode().expose().to_owned());
    let error = DestinationSecrets::from_value(json!({"kind": "webhook", "signing_secrets": three})).unwrap_err();
    assert_eq!(error.field, "secrets.signing_secrets");
}

#[test]
fn secrets_round_trip_through_the_json_the_store_seals() {
    let all = [
        DestinationSecrets::Webhook(WebhookSecrets::generate()),
        DestinationSecrets::from_value(
            json!({"kind": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/x"}),
        )
        .unwrap(),
        DestinationSecrets::Email(EmailSecrets { password: None }),
        DestinationSecrets::from_value(json!({"kind": "email", "password": "pw"})).unwrap(),
        DestinationSecrets::from_value(json!({"kind": "sms", "auth_token": "token"})).unwrap(),
    ];
    for secrets in all {
        let sealed = secrets.to_json();
        assert_eq!(DestinationSecrets::from_json(sealed.expose()).unwrap(), secrets);
    }
}

#[test]
fn neither_debug_output_nor_errors_show_a_secret() {
    let secrets = DestinationSecrets::Webhook(WebhookSecrets::generate());
    let DestinationSecrets::Webhook(webhook) = &secrets else {
        unreachable!()
    };
    let text = webhook.signing_secrets[0].encode().expose().to_owned();
    assert!(!format!("{secrets:?}").contains(&text[6..]), "{secrets:?}");
    let slack =
        DestinationSecrets::from_value(json!({"kind": "slack", "webhook_url": "https://hooks.slack.com/T/B/sekrit"}))
            .unwrap();
    assert!(!format!("{slack:?}").contains("sekrit"), "{slack:?}");
    let error =
        DestinationSecrets::from_value(json!({"kind": "webhook", "signing_secrets": "whsec_sekrit"})).unwrap_err();
    assert!(!error.to_string().contains("sekrit"), "{error}");
    assert!(error.to_string().starts_with("secrets: invalid type"), "{error}");
    let error = DestinationSecrets::from_value(json!({"kind": "webhook", "signing_secrets": ["sekrit"]})).unwrap_err();
    assert!(!error.to_string().contains("sekrit"), "{error}");
}

#[test]
fn the_dashboard_is_told_which_secrets_are_set_and_never_their_values() {
    let sms = DestinationSecrets::of_kind(DestinationKind::Sms, json!({"auth_token": "t"})).unwrap();
    assert_eq!(sms.names_set(), ["auth_token"]);
    let email = DestinationSecrets::of_kind(DestinationKind::Email, serde_json::Value::Null).unwrap();
    assert!(email.names_set().is_empty());
    assert_eq!(
        DestinationSecrets::Webhook(WebhookSecrets::generate()).names_set(),
        ["signing_secrets"]
    );
}
