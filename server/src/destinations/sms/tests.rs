use axum::http::{Method, StatusCode};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::json;

use super::MAX_SMS_CHARS;
use crate::destinations::receivers::{attempt, client, failure, Received, Receiver};
use crate::destinations::{
    send, AttemptOutcome, Destination, DestinationSecrets, DestinationSettings, ErrorClass, SmsSecrets, SmsSettings,
};
use crate::rules::template::RenderedMessage;
use crate::rules::MessageBody;
use crate::secret::Secret;

const TWILIO_CREATED: &str = r#"{"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}"#;
const TWILIO_REFUSED: &str = r#"{"code": 21211, "message": "The 'To' number +61400000000 is not a valid phone number.",
    "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;

fn destination(receiver: &Receiver) -> Destination {
    let settings = SmsSettings {
        base_url: receiver.url("/"),
        account_sid: "ACxxx".into(),
        from: "+61400000001".into(),
        to: "+61400000000".into(),
    };
    let secrets = SmsSecrets {
        auth_token: Secret::new("token-123"),
    };
    Destination::new(
        "on-call-sms",
        DestinationSettings::Sms(settings),
        DestinationSecrets::Sms(secrets),
    )
    .unwrap()
}

fn text(text: &str) -> MessageBody {
    MessageBody::Rendered(RenderedMessage {
        subject: None,
        text: Some(text.into()),
        html: None,
        blocks: None,
    })
}

fn form(request: &Received) -> Vec<(String, String)> {
    form_urlencoded::parse(&request.body).into_owned().collect()
}

#[tokio::test]
async fn an_sms_is_posted_to_twilios_messages_api_with_basic_auth_and_form_fields() {
    let receiver = Receiver::answering(StatusCode::CREATED, TWILIO_CREATED).await;

    let report = send(
        &client(),
        &destination(&receiver),
        &attempt(&text("Job 1042 is completed.")),
    )
    .await;

    assert_eq!((report.outcome, report.status), (AttemptOutcome::Delivered, Some(201)));
    assert_eq!(report.response_excerpt.as_deref(), Some(TWILIO_CREATED));
    let request = receiver.only_request();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/2010-04-01/Accounts/ACxxx/Messages.json");
    assert_eq!(
        request.header("authorization"),
        format!("Basic {}", BASE64.encode("ACxxx:token-123"))
    );
    assert_eq!(request.header("content-type"), "application/x-www-form-urlencoded");
    let expected = [
        ("To", "+61400000000"),
        ("From", "+61400000001"),
        ("Body", "Job 1042 is completed."),
    ];
    assert_eq!(
        form(&request),
        expected.map(|(name, value)| (name.to_owned(), value.to_owned()))
    );
}

#[tokio::test]
async fn a_long_text_is_cut_at_1600_characters_on_a_character_boundary() {
    let receiver = Receiver::answering(StatusCode::CREATED, TWILIO_CREATED).await;
    let long = format!("a{}", "é🔧".repeat(1000));

    let report = send(&client(), &destination(&receiver), &attempt(&text(&long))).await;

    assert!(report.is_delivered(), "{report:?}");
    let (_, body) = form(&receiver.only_request()).remove(2);
    assert_eq!(body.chars().count(), MAX_SMS_CHARS);
    assert_eq!(body, long.chars().take(MAX_SMS_CHARS).collect::<String>());
}

#[tokio::test]
async fn a_json_message_is_sent_as_its_text() {
    let receiver = Receiver::answering(StatusCode::CREATED, TWILIO_CREATED).await;
    let body = MessageBody::Json(json!("Job 1042 is completed."));

    send(&client(), &destination(&receiver), &attempt(&body)).await;

    assert_eq!(form(&receiver.only_request())[2].1, "Job 1042 is completed.");
}

#[tokio::test]
async fn twilios_error_message_is_the_failures_message() {
    let receiver = Receiver::answering(StatusCode::BAD_REQUEST, TWILIO_REFUSED).await;

    let report = send(&client(), &destination(&receiver), &attempt(&text("hello"))).await;

    assert_eq!(
        failure(&report),
        (
            ErrorClass::HttpStatus,
            "HTTP 400 Bad Request: The 'To' number +61400000000 is not a valid phone number."
        )
    );
    assert_eq!(report.status, Some(400));
    assert_eq!(report.response_excerpt.as_deref(), Some(TWILIO_REFUSED));
}

#[tokio::test]
async fn a_message_without_text_is_refused_without_a_request() {
    let receiver = Receiver::answering(StatusCode::CREATED, TWILIO_CREATED).await;
    let body = MessageBody::Rendered(RenderedMessage {
        subject: Some("subject only".into()),
        text: None,
        html: Some("<p>html</p>".into()),
        blocks: None,
    });

    let report = send(&client(), &destination(&receiver), &attempt(&body)).await;

    assert_eq!(failure(&report).0, ErrorClass::InvalidMessage);
    assert!(receiver.received().is_empty());
}
