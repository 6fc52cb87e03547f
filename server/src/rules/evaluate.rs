//! Applying a compiled rule to one event's document: whether it matches, and what each of its actions asks for.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::sandbox::{Sandbox, TransformError};
use super::template::{CompiledTemplate, RenderedMessage, TemplateError};
use super::{CompiledAction, CompiledRule, Stage};

/// The event a document describes, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFacts {
    pub id: String,
    /// The delivery format it came in (`seed`, `servicem8`, `event`, …).
    pub format: String,
    pub object_type: String,
    pub object_uuid: String,
    pub event_type: String,
    /// Unix milliseconds.
    pub occurred_at: Option<i64>,
    /// Unix milliseconds.
    pub received_at: i64,
}

/// What a rule may know of the account: never its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountFacts {
    pub slug: String,
    pub name: String,
}

/// The one JSON document `{event, changes, record, previous, account}` that filters, transforms and templates
/// read, built once per event and stage and shared by every rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    stage: Stage,
    object_type: String,
    event_type: String,
    json: Value,
}

impl Document {
    /// The document of an event before its record is fetched: `record` and `previous` are `null`.
    pub fn received(event: &EventFacts, changes: Value, account: &AccountFacts) -> Document {
        Document::new(Stage::Received, event, changes, Value::Null, Value::Null, account)
    }

    /// The document of an event whose record is mirrored; `previous` is the mirror's record before this change,
    /// none for a record new to the mirror.
    pub fn processed(
        event: &EventFacts,
        changes: Value,
        record: Value,
        previous: Option<Value>,
        account: &AccountFacts,
    ) -> Document {
        Document::new(
            Stage::Processed,
            event,
            changes,
            record,
            previous.unwrap_or(Value::Null),
            account,
        )
    }

    fn new(
        stage: Stage,
        event: &EventFacts,
        changes: Value,
        record: Value,
        previous: Value,
        account: &AccountFacts,
    ) -> Document {
        Document {
            stage,
            object_type: event.object_type.clone(),
            event_type: event.event_type.clone(),
            json: json!({
                "event": event,
                "changes": changes,
                "record": record,
                "previous": previous,
                "account": account,
            }),
        }
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    pub fn object_type(&self) -> &str {
        &self.object_type
    }

    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The document itself, as filters, transforms and templates see it.
    pub fn as_json(&self) -> &Value {
        &self.json
    }
}

/// What one rule decides about one document.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleOutcome {
    /// The stage, a type or the filter did not match: the rule has nothing to say.
    NotMatched,
    /// The rule matched; one outcome per action, in the rule's order.
    Matched(Vec<ActionOutcome>),
}

/// What one action of a matching rule asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionOutcome {
    /// Finish the event as skipped, with this reason, without fetching its record.
    Skip { reason: String },
    /// Deliver these messages, each to its destination.
    Deliver(Vec<Message>),
    /// The transform dropped the document (`null` or an empty array): nothing goes to these destinations.
    Dropped { destinations: Vec<String> },
    /// The transform or the template failed: the delivery to each of these destinations fails with the error.
    Failed {
        destinations: Vec<String>,
        error: MessageError,
    },
}

/// One message for one destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub destination: String,
    pub body: MessageBody,
}

/// A message's content: JSON for webhooks, or the parts a template rendered for Slack, email and SMS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageBody {
    Json(Value),
    Rendered(RenderedMessage),
}

/// Why a matching rule produced no message for its destinations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Transform(#[from] TransformError),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// Applies a rule to a document. The transform, if any, runs once in the sandbox, and only when the rule
/// matches and has something to deliver.
pub async fn evaluate(rule: &CompiledRule, document: &Document, sandbox: &Sandbox) -> RuleOutcome {
    let mut outcomes = evaluate_each(rule, &[document], sandbox).await;
    outcomes.pop().unwrap_or(RuleOutcome::NotMatched)
}

/// Applies a rule to each of several documents (a batch's events), as [`evaluate`] does to one; the transform
/// runs for the matching documents in one hand-off to the sandbox. The outcomes are in the documents' order.
pub async fn evaluate_each(rule: &CompiledRule, documents: &[&Document], sandbox: &Sandbox) -> Vec<RuleOutcome> {
    let matched: Vec<bool> = documents.iter().map(|document| rule.applies_to(document)).collect();
    let delivers = rule
        .actions
        .iter()
        .any(|action| matches!(action, CompiledAction::Deliver { .. }));
    let mut transformed: Vec<Option<Result<Vec<Value>, TransformError>>> = vec![None; documents.len()];
    if let (Some(transform), true) = (&rule.transform, delivers) {
        let inputs: Vec<&Value> = documents
            .iter()
            .zip(&matched)
            .filter(|(_, matched)| **matched)
            .map(|(document, _)| document.as_json())
            .collect();
        let mut results = sandbox.run_each(transform, &inputs).await.into_iter();
        for (slot, _) in transformed.iter_mut().zip(&matched).filter(|(_, matched)| **matched) {
            *slot = Some(results.next().unwrap_or(Err(TransformError::Unavailable)));
        }
    }
    documents
        .iter()
        .zip(matched)
        .zip(transformed)
        .map(|((document, matched), transformed)| match matched {
            true => RuleOutcome::Matched(act(rule, document, transformed)),
            false => RuleOutcome::NotMatched,
        })
        .collect()
}

/// The outcome of each of a matching rule's actions, given what its transform made of the document (nothing
/// when the rule has no transform).
fn act(
    rule: &CompiledRule,
    document: &Document,
    transformed: Option<Result<Vec<Value>, TransformError>>,
) -> Vec<ActionOutcome> {
    rule.actions
        .iter()
        .map(|action| match action {
            CompiledAction::Skip => ActionOutcome::Skip {
                reason: format!("filtered by rule {:?}", rule.name),
            },
            CompiledAction::Deliver { destinations, template } => {
                let messages = match (&rule.transform, &transformed) {
                    (None, _) => Ok(None),
                    (Some(_), Some(done)) => done.clone().map(Some),
                    (Some(_), None) => Err(TransformError::Unavailable),
                };
                deliver(destinations, template.as_deref(), document, messages)
            }
        })
        .collect()
}

/// The outcome of one deliver action, given the transform's messages (none when the rule has no transform).
fn deliver(
    destinations: &[String],
    template: Option<&CompiledTemplate>,
    document: &Document,
    messages: Result<Option<Vec<Value>>, TransformError>,
) -> ActionOutcome {
    let bodies: Result<Vec<MessageBody>, MessageError> = match (messages, template) {
        (Err(error), _) => Err(error.into()),
        (Ok(Some(messages)), _) if messages.is_empty() => {
            return ActionOutcome::Dropped {
                destinations: destinations.to_vec(),
            };
        }
        (Ok(None), None) => Ok(vec![MessageBody::Json(document.as_json().clone())]),
        (Ok(Some(messages)), None) => Ok(messages.into_iter().map(MessageBody::Json).collect()),
        (Ok(None), Some(template)) => template
            .render(document.as_json(), None)
            .map(|rendered| vec![MessageBody::Rendered(rendered)])
            .map_err(Into::into),
        (Ok(Some(messages)), Some(template)) => messages
            .iter()
            .map(|message| {
                template
                    .render(document.as_json(), Some(message))
                    .map(MessageBody::Rendered)
            })
            .collect::<Result<_, _>>()
            .map_err(Into::into),
    };
    match bodies {
        Ok(bodies) => ActionOutcome::Deliver(
            bodies
                .iter()
                .flat_map(|body| {
                    destinations.iter().map(|destination| Message {
                        destination: destination.clone(),
                        body: body.clone(),
                    })
                })
                .collect(),
        ),
        Err(error) => ActionOutcome::Failed {
            destinations: destinations.to_vec(),
            error,
        },
    }
}
