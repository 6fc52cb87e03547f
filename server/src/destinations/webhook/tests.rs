use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::signature;
use crate::destinations::receivers::{
    attempt, client, failure, plain_text_https_url, refusing_address, silent_url, Received, Receiver, DELIVERY_ID,
    SENT_AT,
};
use crate::destinations::{
    send, AttemptOutcome, Destination, DestinationSecrets, DestinationSettings, ErrorClass, SigningSecret,
    WebhookSecrets, WebhookSettings,
};
use crate::rules::template::RenderedMessage;
use crate::rules::MessageBody;

/// The example of the Standard Webhooks specification's test suite.
const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn destination(url: String, headers: &[(&str, &str)], secrets: WebhookSecrets, timeout_ms: u64) -> Destination {
    let settings = WebhookSettings {
        url,
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect::<BTreeMap<_, _>>(),
        timeout_ms,
    };
    Destination::new(
        "erp-webhook",
        DestinationSettings::Webhook(settings),
        DestinationSecrets::Webhook(secrets),
    )
    .unwrap()
}

fn spec_secrets() -> WebhookSecrets {
    WebhookSecrets {
        signing_secrets: vec![SigningSecret::parse(SPEC_SECRET).unwrap()],
    }
}

/// The `v1` signatures a receiver following the specification computes for each secret, written here from the
/// specification rather than with the sender's code: HMAC-SHA256 keyed with the base64 after `whsec_`.
fn expected_signatures(secrets: &[String], request: &Received) -> Vec<String> {
    let signed = [
        request.header("webhook-id").as_bytes(),
        b".",
        request.header("webhook-timestamp").as_bytes(),
        b".",
        &request.body,
    ]
    .concat();
    secrets
        .iter()
        .map(|secret| {
            let key = BASE64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(&signed);
            format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
        })
        .collect()
}

#[test]
fn the_signature_matches_the_specifications_example() {
    let secrets = spec_secrets();
    let body = br#"{"test": 2432232314}"#;
    assert_eq!(
        signature(
            &secrets.signing_secrets,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[tokio::test]
async fn a_json_message_is_posted_as_it_is_with_the_standard_webhooks_headers_and_signature() {
    let receiver = Receiver::answering(StatusCode::OK, "thanks").await;
    let destination = destination(
        receiver.url("/hooks/sm8"),
        &[("x-api-key", "k-123")],
        spec_secrets(),
        10_000,
    );
    let payload = json!({"job": "1042", "status": "Completed", "note": "Fix <leak> & \"check\""});
    let body = MessageBody::Json(payload.clone());

    let report = send(&client(), &destination, &attempt(&body)).await;

    assert_eq!(report.outcome, AttemptOutcome::Delivered, "{report:?}");
    assert_eq!(report.status, Some(200));
    assert_eq!(report.response_excerpt.as_deref(), Some("thanks"));
    let request = receiver.only_request();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/hooks/sm8");
    assert_eq!(request.header("webhook-id"), format!("msg_{DELIVERY_ID}"));
    assert_eq!(
        request.header("webhook-timestamp"),
        SENT_AT.unix_timestamp().to_string()
    );
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("x-api-key"), "k-123");
    assert_eq!(request.body, serde_json::to_vec(&payload).unwrap());
    assert_eq!(
        request.header("webhook-signature"),
        expected_signatures(&[SPEC_SECRET.into()], &request).join(" ")
    );
}

#[tokio::test]
async fn during_a_rotation_each_delivery_is_signed_with_the_new_secret_and_the_previous_one() {
    let receiver = Receiver::answering(StatusCode::NO_CONTENT, "").await;
    let mut secrets = spec_secrets();
    let new_secret = secrets.rotate().encode().expose().to_owned();
    assert_eq!(secrets.signing_secrets.len(), 2);
    let destination = destination(receiver.url("/hook"), &[], secrets, 10_000);
    let body = MessageBody::Json(json!({"job": "1042"}));

    let report = send(&client(), &destination, &attempt(&body)).await;

    assert_eq!(report.outcome, AttemptOutcome::Delivered, "{report:?}");
    assert_eq!(report.response_excerpt, None);
    let request = receiver.only_request();
    let expected = expected_signatures(&[new_secret, SPEC_SECRET.into()], &request);
    assert_ne!(expected[0], expected[1]);
    assert_eq!(request.header("webhook-signature"), expected.join(" "));
}

#[tokio::test]
async fn a_rendered_message_is_posted_as_an_object_of_the_parts_it_has() {
    let receiver = Receiver::answering(StatusCode::ACCEPTED, "").await;
    let destination = destination(receiver.url("/hook"), &[], WebhookSecrets::generate(), 10_000);
    let body = MessageBody::Rendered(RenderedMessage {
        subject: Some("Job 1042".into()),
        text: Some("Job 1042 is completed.".into()),
        html: None,
        blocks: None,
    });

    let report = send(&client(), &destination, &attempt(&body)).await;

    assert_eq!((report.outcome, report.status), (AttemptOutcome::Delivered, Some(202)));
    let request = receiver.only_request();
    assert_eq!(
        serde_json::from_slice::<Value>(&request.body).unwrap(),
        json!({"subject": "Job 1042", "text": "Job 1042 is completed."})
    );
}

#[tokio::test]
async fn an_answer_of_500_fails_the_attempt_with_the_status_and_the_start_of_the_answer() {
    let receiver = Receiver::answering(StatusCode::INTERNAL_SERVER_ERROR, "database is down").await;
    let destination = destination(receiver.url("/hook"), &[], WebhookSecrets::generate(), 10_000);
    let body = MessageBody::Json(json!({}));

    let report = send(&client(), &destination, &attempt(&body)).await;

    assert_eq!(
        failure(&report),
        (ErrorClass::HttpStatus, "HTTP 500 Internal Server Error")
    );
    assert_eq!(report.status, Some(500));
    assert_eq!(report.response_excerpt.as_deref(), Some("database is down"));
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out_after_the_destinations_timeout() {
    let destination = destination(silent_url().await, &[], WebhookSecrets::generate(), 300);
    let body = MessageBody::Json(json!({}));

    let report = send(&client(), &destination, &attempt(&body)).await;

    assert_eq!(failure(&report).0, ErrorClass::Timeout, "{report:?}");
    assert_eq!(report.status, None);
    assert!(
        report.duration >= Duration::from_millis(300) && report.duration < Duration::from_secs(5),
        "{report:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_network_failure() {
    let url = format!("http://{}/hook", refusing_address().await);
    let destination = destination(url, &[], WebhookSecrets::generate(), 10_000);
    let body = MessageBody::Json(json!({}));

    let report = send(&client(), &destination, &attempt(&body)).await;

    let (class, message) = failure(&report);
    assert_eq!(class, ErrorClass::Network, "{report:?}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(
        !message.contains("127.0.0.1"),
        "the message leaves the URL out: {message}"
    );
}

#[tokio::test]
async fn an_https_url_answered_without_tls_is_a_tls_failure() {
    let destination = destination(plain_text_https_url().await, &[], WebhookSecrets::generate(), 10_000);
    let body = MessageBody::Json(json!({}));

    let report = send(&client(), &destination, &attempt(&body)).await;

    assert_eq!(failure(&report).0, ErrorClass::Tls, "{report:?}");
}
