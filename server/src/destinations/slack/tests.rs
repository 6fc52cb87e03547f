use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::destinations::receivers::{attempt, client, failure, Receiver};
use crate::destinations::{
    send, AttemptOutcome, Destination, DestinationSecrets, DestinationSettings, ErrorClass, SlackSecrets, SlackSettings,
};
use crate::rules::template::RenderedMessage;
use crate::rules::MessageBody;
use crate::secret::Secret;

const HOOK_PATH: &str = "/services/T0000/B0000/XXXXXXXX";

fn destination(receiver: &Receiver) -> Destination {
    let secrets = SlackSecrets {
        webhook_url: Secret::new(receiver.url(HOOK_PATH)),
    };
    Destination::new(
        "office-slack",
        DestinationSettings::Slack(SlackSettings {}),
        DestinationSecrets::Slack(secrets),
    )
    .unwrap()
}

/// Sends `body` to a receiver answering as Slack does, and returns what Slack would have been posted.
async fn posted(body: MessageBody) -> Value {
    let receiver = Receiver::answering(StatusCode::OK, "ok").await;
    let report = send(&client(), &destination(&receiver), &attempt(&body)).await;
    assert_eq!(report.outcome, AttemptOutcome::Delivered, "{report:?}");
    assert_eq!(report.response_excerpt.as_deref(), Some("ok"));
    let request = receiver.only_request();
    assert_eq!((&request.method, request.path.as_str()), (&Method::POST, HOOK_PATH));
    assert_eq!(request.header("content-type"), "application/json");
    serde_json::from_slice(&request.body).unwrap()
}

#[tokio::test]
async fn a_rendered_message_is_posted_as_text_and_blocks() {
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*Job 1042* is completed"}}]);
    let body = MessageBody::Rendered(RenderedMessage {
        subject: Some("not for Slack".into()),
        text: Some("Job 1042 is completed".into()),
        html: Some("<p>not for Slack</p>".into()),
        blocks: Some(blocks.clone()),
    });
    assert_eq!(
        posted(body).await,
        json!({"text": "Job 1042 is completed", "blocks": blocks})
    );
}

#[tokio::test]
async fn a_rendered_text_alone_is_posted_without_blocks() {
    let body = MessageBody::Rendered(RenderedMessage {
        subject: None,
        text: Some("Job 1042 is completed".into()),
        html: None,
        blocks: None,
    });
    assert_eq!(posted(body).await, json!({"text": "Job 1042 is completed"}));
}

#[tokio::test]
async fn a_json_object_with_text_or_blocks_is_posted_as_slacks_own_payload() {
    let payload = json!({"text": "hi", "unfurl_links": false});
    assert_eq!(posted(MessageBody::Json(payload.clone())).await, payload);
    let payload = json!({"blocks": [{"type": "divider"}]});
    assert_eq!(posted(MessageBody::Json(payload.clone())).await, payload);
}

#[tokio::test]
async fn other_json_is_posted_pretty_printed_in_a_code_block() {
    let posted = posted(MessageBody::Json(json!({"job": "1042", "status": "Completed"}))).await;
    assert_eq!(
        posted,
        json!({"text": "```\n{\n  \"job\": \"1042\",\n  \"status\": \"Completed\"\n}\n```"})
    );
}

#[tokio::test]
async fn a_message_without_text_or_blocks_is_refused_without_a_request() {
    let receiver = Receiver::answering(StatusCode::OK, "ok").await;
    let body = MessageBody::Rendered(RenderedMessage {
        subject: None,
        text: None,
        html: Some("<p>email only</p>".into()),
        blocks: None,
    });

    let report = send(&client(), &destination(&receiver), &attempt(&body)).await;

    assert_eq!(failure(&report).0, ErrorClass::InvalidMessage);
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn slacks_refusal_is_the_failures_message() {
    let receiver = Receiver::answering(StatusCode::BAD_REQUEST, "invalid_blocks").await;
    let body = MessageBody::Json(json!({"blocks": "not a list"}));

    let report = send(&client(), &destination(&receiver), &attempt(&body)).await;

    assert_eq!(
        failure(&report),
        (ErrorClass::HttpStatus, "HTTP 400 Bad Request: invalid_blocks")
    );
    assert_eq!(report.status, Some(400));
}
