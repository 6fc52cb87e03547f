use serde_json::{json, Value};

use super::sandbox::{Sandbox, SandboxLimits, TransformError};
use super::template::RenderedMessage;
use super::{
    evaluate, evaluate_each, AccountFacts, ActionOutcome, CompiledRule, Document, EventFacts, InvalidRule, Message,
    MessageBody, MessageError, Rule, RuleOutcome, Stage,
};

fn event(object_type: &str, event_type: &str) -> EventFacts {
    EventFacts {
        id: "0190a1b2".into(),
        format: "event".into(),
        object_type: object_type.into(),
        object_uuid: "job-1".into(),
        event_type: event_type.into(),
        occurred_at: Some(1_714_572_300_000),
        received_at: 1_714_572_301_000,
    }
}

fn account() -> AccountFacts {
    AccountFacts {
        slug: "default".into(),
        name: "Acme Plumbing".into(),
    }
}

fn job(status: &str) -> Value {
    json!({"uuid": "job-1", "generated_job_id": "1042", "status": status, "job_address": "12 Main St",
           "job_description": "Fix <leak>"})
}

fn processed_job(event_type: &str, status: &str, previous_status: Option<&str>) -> Document {
    Document::processed(
        &event("job", event_type),
        json!({"status": status}),
        job(status),
        previous_status.map(job),
        &account(),
    )
}

fn compile(rule: Value) -> CompiledRule {
    let rule: Rule = serde_json::from_value(rule).unwrap();
    rule.compile().unwrap_or_else(|error| panic!("{error}"))
}

fn refused(rule: Value) -> String {
    let rule: Rule = serde_json::from_value(rule).unwrap();
    rule.compile().map(|_| ()).unwrap_err().to_string()
}

fn sandbox() -> Sandbox {
    Sandbox::start(SandboxLimits {
        workers: 1,
        ..SandboxLimits::default()
    })
    .unwrap()
}

fn slack_when_completed() -> Value {
    json!({
        "name": "Slack: job completed",
        "when": {"stage": "processed", "object_types": ["job"]},
        "filter": {"record.status": "Completed", "previous.status": {"$neq": "Completed"}},
        "actions": [{"type": "deliver", "destinations": ["office-slack"],
                     "template": {"text": "Job {{ record.generated_job_id }} at {{ record.job_address }} is completed."}}]
    })
}

#[tokio::test]
async fn slack_hears_when_a_job_becomes_completed_and_not_again() {
    let rule = compile(slack_when_completed());
    let sandbox = sandbox();
    let outcome = evaluate(
        &rule,
        &processed_job("updated", "Completed", Some("Work Order")),
        &sandbox,
    )
    .await;
    let text = "Job 1042 at 12 Main St is completed.";
    let rendered = RenderedMessage {
        subject: None,
        text: Some(text.into()),
        html: None,
        blocks: None,
    };
    assert_eq!(
        outcome,
        RuleOutcome::Matched(vec![ActionOutcome::Deliver(vec![Message {
            destination: "office-slack".into(),
            body: MessageBody::Rendered(rendered),
        }])])
    );
    let new_record = processed_job("created", "Completed", None);
    assert!(matches!(
        evaluate(&rule, &new_record, &sandbox).await,
        RuleOutcome::Matched(_)
    ));
    let unchanged = processed_job("updated", "Completed", Some("Completed"));
    assert_eq!(evaluate(&rule, &unchanged, &sandbox).await, RuleOutcome::NotMatched);
    let other_status = processed_job("updated", "Quote", Some("Work Order"));
    assert_eq!(evaluate(&rule, &other_status, &sandbox).await, RuleOutcome::NotMatched);
}

#[tokio::test]
async fn the_office_gets_an_email_when_a_quote_is_accepted() {
    let rule = compile(json!({
        "name": "Email: quote accepted",
        "when": {"stage": "processed", "object_types": ["job"], "event_types": ["quote_accepted"]},
        "actions": [{"type": "deliver", "destinations": ["office-email"],
                     "template": {"subject": "Quote accepted: job {{ record.generated_job_id }}",
                                  "text": "Accepted {{ event.received_at | datetime }}: {{ record.job_description }}",
                                  "html": "<p>Accepted: <b>{{ record.job_description }}</b></p>"}}]
    }));
    let sandbox = sandbox();
    let accepted = processed_job("quote_accepted", "Work Order", Some("Quote"));
    let RuleOutcome::Matched(outcomes) = evaluate(&rule, &accepted, &sandbox).await else {
        panic!("not matched")
    };
    let [ActionOutcome::Deliver(messages)] = outcomes.as_slice() else {
        panic!("{outcomes:?}")
    };
    assert_eq!(
        messages[0].body,
        MessageBody::Rendered(RenderedMessage {
            subject: Some("Quote accepted: job 1042".into()),
            text: Some("Accepted 1 May 2024 14:05: Fix <leak>".into()),
            html: Some("<p>Accepted: <b>Fix &lt;leak&gt;</b></p>".into()),
            blocks: None,
        })
    );
    let updated = processed_job("updated", "Work Order", Some("Quote"));
    assert_eq!(evaluate(&rule, &updated, &sandbox).await, RuleOutcome::NotMatched);
}

#[tokio::test]
async fn every_job_change_is_forwarded_as_the_transform_shapes_it() {
    let rule = compile(json!({
        "name": "Forward jobs",
        "when": {"stage": "processed", "object_types": ["job"]},
        "transform": "(input) => ({ job: input.record.uuid, status: input.record.status, changed: Object.keys(input.changes) })",
        "actions": [{"type": "deliver", "destinations": ["erp-webhook", "archive"]}]
    }));
    let outcome = evaluate(&rule, &processed_job("updated", "Quote", None), &sandbox()).await;
    let body = MessageBody::Json(json!({"job": "job-1", "status": "Quote", "changed": ["status"]}));
    assert_eq!(
        outcome,
        RuleOutcome::Matched(vec![ActionOutcome::Deliver(vec![
            Message {
                destination: "erp-webhook".into(),
                body: body.clone()
            },
            Message {
                destination: "archive".into(),
                body
            },
        ])])
    );
}

#[tokio::test]
async fn without_a_transform_the_whole_document_is_delivered() {
    let rule = compile(json!({
        "name": "Forward", "when": {"stage": "processed"},
        "actions": [{"type": "deliver", "destinations": ["hook"]}]
    }));
    let document = processed_job("updated", "Quote", None);
    let outcome = evaluate(&rule, &document, &sandbox()).await;
    let expected = Message {
        destination: "hook".into(),
        body: MessageBody::Json(document.as_json().clone()),
    };
    assert_eq!(
        outcome,
        RuleOutcome::Matched(vec![ActionOutcome::Deliver(vec![expected])])
    );
    assert_eq!(
        document.as_json()["account"],
        json!({"slug": "default", "name": "Acme Plumbing"})
    );
    assert_eq!(document.as_json()["event"]["event_type"], json!("updated"));
}

#[tokio::test]
async fn staff_events_are_skipped_before_any_fetch() {
    let rule = compile(json!({
        "name": "Drop staff events",
        "when": {"stage": "received", "object_types": ["staff"]},
        "actions": [{"type": "skip"}]
    }));
    let sandbox = sandbox();
    let staff = Document::received(&event("staff", "clocked_on"), json!({}), &account());
    assert_eq!(staff.as_json()["record"], Value::Null);
    assert_eq!(
        evaluate(&rule, &staff, &sandbox).await,
        RuleOutcome::Matched(vec![ActionOutcome::Skip {
            reason: "filtered by rule \"Drop staff events\"".into()
        }])
    );
    let job = Document::received(&event("job", "updated"), json!({}), &account());
    assert_eq!(evaluate(&rule, &job, &sandbox).await, RuleOutcome::NotMatched);
    let processed_staff = Document::processed(&event("staff", "updated"), json!({}), json!({}), None, &account());
    assert_eq!(
        evaluate(&rule, &processed_staff, &sandbox).await,
        RuleOutcome::NotMatched
    );
}

#[tokio::test]
async fn a_transform_that_returns_an_array_sends_each_message_and_one_that_returns_null_drops_them() {
    let fan_out = compile(json!({
        "name": "Fan out", "when": {"stage": "processed"},
        "transform": "(input) => input.record.status === 'Quote' ? null : [{ n: 1 }, { n: 2 }]",
        "actions": [{"type": "deliver", "destinations": ["a"], "template": {"text": "n={{ message.n }} {{ record.status }}"}}]
    }));
    let sandbox = sandbox();
    let RuleOutcome::Matched(outcomes) =
        evaluate(&fan_out, &processed_job("updated", "Completed", None), &sandbox).await
    else {
        panic!("not matched")
    };
    let [ActionOutcome::Deliver(messages)] = outcomes.as_slice() else {
        panic!("{outcomes:?}")
    };
    let texts: Vec<_> = messages
        .iter()
        .map(|message| match &message.body {
            MessageBody::Rendered(rendered) => rendered.text.clone().unwrap(),
            MessageBody::Json(json) => panic!("{json}"),
        })
        .collect();
    assert_eq!(texts, ["n=1 Completed", "n=2 Completed"]);
    assert_eq!(
        evaluate(&fan_out, &processed_job("updated", "Quote", None), &sandbox).await,
        RuleOutcome::Matched(vec![ActionOutcome::Dropped {
            destinations: vec!["a".into()]
        }])
    );
}

#[tokio::test]
async fn a_batch_gets_each_documents_outcome_in_order_with_the_transform_run_only_where_the_rule_matches() {
    let rule = compile(json!({
        "name": "Completed jobs", "when": {"stage": "processed"},
        "filter": {"record.status": "Completed"},
        "transform": "(input) => ({ job: input.record.status, seen: input.event.event_type })",
        "actions": [{"type": "deliver", "destinations": ["erp"]}]
    }));
    let completed = processed_job("updated", "Completed", None);
    let quote = processed_job("updated", "Quote", None);
    let created = processed_job("created", "Completed", None);
    let outcomes = evaluate_each(&rule, &[&completed, &quote, &created], &sandbox()).await;
    let delivered = |event_type: &str| {
        RuleOutcome::Matched(vec![ActionOutcome::Deliver(vec![Message {
            destination: "erp".into(),
            body: MessageBody::Json(json!({"job": "Completed", "seen": event_type})),
        }])])
    };
    assert_eq!(
        outcomes,
        vec![delivered("updated"), RuleOutcome::NotMatched, delivered("created")]
    );
}

#[tokio::test]
async fn a_failing_transform_fails_each_delivery_with_its_error_and_skip_still_applies() {
    let rule = compile(json!({
        "name": "Broken", "when": {"stage": "received"},
        "transform": "(input) => { throw new Error('bad data'); }",
        "actions": [{"type": "deliver", "destinations": ["a", "b"]}, {"type": "skip"},
                    {"type": "deliver", "destinations": ["c"]}]
    }));
    let document = Document::received(&event("job", "updated"), json!({}), &account());
    let error = MessageError::Transform(TransformError::Thrown {
        message: "Error: bad data at line 1, column 24".into(),
    });
    assert_eq!(
        evaluate(&rule, &document, &sandbox()).await,
        RuleOutcome::Matched(vec![
            ActionOutcome::Failed {
                destinations: vec!["a".into(), "b".into()],
                error: error.clone()
            },
            ActionOutcome::Skip {
                reason: "filtered by rule \"Broken\"".into()
            },
            ActionOutcome::Failed {
                destinations: vec!["c".into()],
                error
            },
        ])
    );
}

#[test]
fn a_rule_round_trips_through_json_and_reports_what_it_applies_to() {
    let rule: Rule = serde_json::from_value(slack_when_completed()).unwrap();
    assert_eq!(serde_json::to_value(&rule).unwrap(), slack_when_completed());
    let compiled = rule.compile().unwrap();
    assert_eq!(
        (compiled.name(), compiled.stage()),
        ("Slack: job completed", Stage::Processed)
    );
    assert!(compiled.applies_to(&processed_job("updated", "Completed", None)));
    assert!(!compiled.applies_to(&Document::received(&event("job", "updated"), json!({}), &account())));
}

#[test]
fn unknown_fields_and_actions_are_refused_when_reading_a_rule() {
    let mut rule = slack_when_completed();
    rule["when"]["stages"] = json!(["received"]);
    assert!(serde_json::from_value::<Rule>(rule).is_err());
    let mut rule = slack_when_completed();
    rule["actions"] = json!([{"type": "email"}]);
    assert!(serde_json::from_value::<Rule>(rule).is_err());
    let mut rule = slack_when_completed();
    rule["actions"] = json!([{"type": "skip", "reason": "x"}]);
    assert!(serde_json::from_value::<Rule>(rule).is_err());
}

fn with(changes: &[(&str, Value)]) -> Value {
    let mut rule = slack_when_completed();
    for (key, value) in changes {
        rule[*key] = value.clone();
    }
    rule
}

#[test]
fn a_malformed_filter_is_refused_at_its_place() {
    assert_eq!(
        refused(with(&[("filter", json!({"$or": {"record.status": "Completed"}}))])),
        "at filter.$or: expected an array of filters"
    );
}

#[test]
fn a_transform_with_a_syntax_error_is_refused_at_its_line_and_column() {
    let error = refused(with(&[("transform", json!("(input) => {\n  let total = ;\n}"))]));
    assert!(error.starts_with("at transform line 2, column 15: "), "{error}");
}

#[test]
fn a_template_with_a_syntax_error_is_refused_at_its_action_part_and_line() {
    let actions =
        json!([{"type": "deliver", "destinations": ["a"], "template": {"text": "ok\n{{ record.status | }}"}}]);
    let error = refused(with(&[("actions", actions)]));
    assert!(
        error.starts_with("at actions[0].template.text line 2: syntax error"),
        "{error}"
    );
}

#[test]
fn skip_is_refused_after_processing_and_a_rule_needs_an_action() {
    assert_eq!(
        refused(with(&[("actions", json!([{"type": "skip"}]))])),
        "at actions[0]: skip is only possible at stage received: once processed, the record has been fetched"
    );
    assert_eq!(
        refused(with(&[("actions", json!([]))])),
        "at actions: a rule needs at least one action"
    );
    let twice = json!({"name": "x", "when": {"stage": "received"}, "actions": [{"type": "skip"}, {"type": "skip"}]});
    assert_eq!(refused(twice), "at actions[1]: skip is listed twice");
}

#[test]
fn a_transform_without_a_deliver_action_is_refused() {
    let rule = json!({"name": "x", "when": {"stage": "received"}, "transform": "(input) => input",
                      "actions": [{"type": "skip"}]});
    assert_eq!(
        refused(rule),
        "at transform: only deliver actions use a transform, and this rule has none"
    );
}

#[test]
fn names_types_and_destinations_are_checked() {
    assert_eq!(
        refused(with(&[("name", json!("  "))])),
        "at name: expected a name of 1 to 200 characters"
    );
    let when = json!({"stage": "processed", "object_types": ["job", "JobActivity"]});
    assert_eq!(
        refused(with(&[("when", when)])),
        "at when.object_types[1]: object types are written \"jobactivity\""
    );
    let when = json!({"stage": "processed", "event_types": ["status changed"]});
    assert_eq!(
        refused(with(&[("when", when)])),
        "at when.event_types[0]: an event type has no spaces"
    );
    let when = json!({"stage": "processed", "object_types": ["job", "job"]});
    assert_eq!(
        refused(with(&[("when", when)])),
        "at when.object_types[1]: \"job\" is listed twice"
    );
    let actions = json!([{"type": "deliver", "destinations": []}]);
    assert_eq!(
        refused(with(&[("actions", actions)])),
        "at actions[0].destinations: expected at least one destination"
    );
    let actions = json!([{"type": "deliver", "destinations": [""]}]);
    assert_eq!(
        refused(with(&[("actions", actions)])),
        "at actions[0].destinations[0]: expected 1 to 128 bytes"
    );
}

#[test]
fn the_error_carries_its_place_apart_from_its_reason() {
    let rule: Rule = serde_json::from_value(with(&[("filter", json!({"a": {"$exist": 1}}))])).unwrap();
    let InvalidRule { at, reason } = rule.compile().unwrap_err();
    assert_eq!(
        (at.as_str(), reason.as_str()),
        ("filter.a.$exist", "expected true or false")
    );
}
