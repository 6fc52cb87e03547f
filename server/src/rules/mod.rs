//! The rules engine: what an account's rules decide about each event, as pure logic with no store and no HTTP.
//!
//! A [`Rule`] says **when** it applies (a stage, object types, event types), a **filter** over the event's
//! document ([`filter`] has the language's reference), an optional JavaScript **transform** ([`sandbox`]) and its
//! **actions**: `skip` the event, or `deliver` a message to destinations, as JSON or rendered from a
//! [`template`]. [`Rule::compile`] checks a rule on save and refuses a malformed one with an [`InvalidRule`]
//! naming the place (`at filter.record.status: unknown operator "$equals"`, `at transform line 2, column 15:
//! unexpected token in expression: ';'`, `at actions[0]: skip is only possible at stage received …`).
//! [`evaluate`] applies a compiled rule to a [`Document`] and says what should happen ([`RuleOutcome`]); storing
//! rules, ordering them per account and carrying out deliveries belong to their callers.
//!
//! # The document
//!
//! Every filter, transform and template reads one JSON document:
//!
//! | key | holds |
//! |---|---|
//! | `event` | the event: `id`, `format`, `object_type` (`job`, `company`, `jobactivity`, `staff`, …), `object_uuid`, `event_type` (`updated`, `status_changed`, `quote_accepted`, …), `occurred_at` and `received_at` (unix milliseconds) |
//! | `changes` | what the webhook said changed |
//! | `record` | the record as mirrored after this change; `null` at stage `received` |
//! | `previous` | the mirrored record before this change; `null` at `received` and for a record new to the mirror |
//! | `account` | the account's `slug` and `name` |
//!
//! # Stages and actions
//!
//! - **`received`**: before the record is fetched. `skip` finishes the event as skipped with the reason
//!   `filtered by rule "<name>"` and spends no API request: webhook filtering.
//! - **`processed`**: after the record is mirrored, so `record` and `previous` are there to compare.
//! - **`deliver`** sends, to each listed destination, the transform's output (each message of it), or the whole
//!   document when there is no transform, or with a `template` the message rendered from the document (and
//!   `message`, the transform's output). A transform that returns `null` drops the delivery; one that throws,
//!   loops or runs out of memory fails it with the error ([`ActionOutcome::Failed`]).
//!
//! # Examples
//!
//! Notify Slack when a job's status becomes Completed (`previous.status` is what it was before this change):
//!
//! ```json
//! {"name": "Slack: job completed",
//!  "when": {"stage": "processed", "object_types": ["job"]},
//!  "filter": {"record.status": "Completed", "previous.status": {"$neq": "Completed"}},
//!  "actions": [{"type": "deliver", "destinations": ["office-slack"],
//!               "template": {"text": "Job {{ record.generated_job_id }} at {{ record.job_address }} is completed."}}]}
//! ```
//!
//! Email the office when a quote is accepted:
//!
//! ```json
//! {"name": "Email: quote accepted",
//!  "when": {"stage": "processed", "object_types": ["job"], "event_types": ["quote_accepted"]},
//!  "actions": [{"type": "deliver", "destinations": ["office-email"],
//!               "template": {"subject": "Quote accepted: job {{ record.generated_job_id }}",
//!                            "text": "Accepted {{ event.received_at | datetime }}: {{ record.job_description }}",
//!                            "html": "<p>Accepted: <b>{{ record.job_description }}</b></p>"}}]}
//! ```
//!
//! Forward every job change, shaped by a transform, to a webhook:
//!
//! ```json
//! {"name": "Forward jobs",
//!  "when": {"stage": "processed", "object_types": ["job"]},
//!  "transform": "(input) => ({ job: input.record.uuid, status: input.record.status, changed: input.changes })",
//!  "actions": [{"type": "deliver", "destinations": ["erp-webhook"]}]}
//! ```
//!
//! Drop staff events before they cost an API request:
//!
//! ```json
//! {"name": "Drop staff events",
//!  "when": {"stage": "received", "object_types": ["staff"]},
//!  "actions": [{"type": "skip"}]}
//! ```

pub mod filter;
pub mod sandbox;
pub mod template;

mod evaluate;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use evaluate::{
    evaluate, evaluate_each, AccountFacts, ActionOutcome, Document, EventFacts, Message, MessageBody, MessageError,
    RuleOutcome,
};

use crate::ingest::payload::canonical_object_type;
use filter::Filter;
use sandbox::{Transform, TransformError};
use template::{CompiledTemplate, MessageTemplate};

/// The longest rule name.
const MAX_NAME_CHARS: usize = 200;
/// The most entries in each list of a rule: object types, event types, actions, destinations of an action.
const MAX_LIST_ENTRIES: usize = 50;
/// The longest object type, event type or destination.
const MAX_NAME_BYTES: usize = 128;

/// Where in the pipeline a rule looks at an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Before the record is fetched: `record` and `previous` are `null`.
    Received,
    /// After the record is mirrored.
    Processed,
}

/// A rule as an account saves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub when: When,
    /// A filter over the document; `{}` (the default) matches every event.
    #[serde(default = "every_event")]
    pub filter: Value,
    /// JavaScript whose last expression is a function `(input) => output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    pub actions: Vec<Action>,
}

fn every_event() -> Value {
    Value::Object(serde_json::Map::new())
}

/// When a rule applies; an empty list of types means every type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    pub stage: Stage,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub object_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Finish the event as skipped, without fetching the record (stage `received` only). A struct variant, so
    /// that fields beside `type` are refused as they are for `deliver`.
    Skip {},
    /// Send the message to each destination (the account's destinations, by id).
    Deliver {
        destinations: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<MessageTemplate>,
    },
}

/// Why a rule cannot be saved: the place (`filter.record.status`, `actions[0].template.text line 3`) and the
/// reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {at}: {reason}")]
pub struct InvalidRule {
    pub at: String,
    pub reason: String,
}

/// A rule checked and prepared for evaluation: filter compiled, transform's syntax checked, templates parsed.
#[derive(Debug)]
pub struct CompiledRule {
    name: String,
    stage: Stage,
    object_types: Vec<String>,
    event_types: Vec<String>,
    filter: Filter,
    transform: Option<Transform>,
    actions: Vec<CompiledAction>,
}

#[derive(Debug)]
enum CompiledAction {
    Skip,
    Deliver {
        destinations: Vec<String>,
        /// Boxed: a compiled template is large beside `Skip`.
        template: Option<Box<CompiledTemplate>>,
    },
}

impl Rule {
    /// Checks every part of the rule and prepares it for [`evaluate`].
    pub fn compile(&self) -> Result<CompiledRule, InvalidRule> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(invalid(
                "name",
                format!("expected a name of 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        let object_types = names("when.object_types", &self.when.object_types, |name| {
            let canonical = canonical_object_type(name);
            (canonical != name).then(|| format!("object types are written {canonical:?}"))
        })?;
        let event_types = names("when.event_types", &self.when.event_types, |name| {
            name.contains(char::is_whitespace)
                .then(|| "an event type has no spaces".to_owned())
        })?;
        let filter = Filter::compile(&self.filter).map_err(|error| InvalidRule {
            at: error.at,
            reason: error.reason,
        })?;
        let transform = self
            .transform
            .as_deref()
            .map(Transform::compile)
            .transpose()
            .map_err(|error| match error {
                TransformError::Syntax { line, column, message } => InvalidRule {
                    at: format!("transform line {line}, column {column}"),
                    reason: message,
                },
                other => invalid("transform", other.to_string()),
            })?;
        let actions = self.compile_actions()?;
        if transform.is_some()
            && !actions
                .iter()
                .any(|action| matches!(action, CompiledAction::Deliver { .. }))
        {
            return Err(invalid(
                "transform",
                "only deliver actions use a transform, and this rule has none",
            ));
        }
        Ok(CompiledRule {
            name: name.to_owned(),
            stage: self.when.stage,
            object_types,
            event_types,
            filter,
            transform,
            actions,
        })
    }

    fn compile_actions(&self) -> Result<Vec<CompiledAction>, InvalidRule> {
        if self.actions.is_empty() {
            return Err(invalid("actions", "a rule needs at least one action"));
        }
        if self.actions.len() > MAX_LIST_ENTRIES {
            return Err(invalid(
                "actions",
                format!("a rule has at most {MAX_LIST_ENTRIES} actions"),
            ));
        }
        let mut compiled = Vec::with_capacity(self.actions.len());
        for (index, action) in self.actions.iter().enumerate() {
            let at = format!("actions[{index}]");
            compiled.push(match action {
                Action::Skip {} if self.when.stage != Stage::Received => {
                    return Err(invalid(
                        &at,
                        "skip is only possible at stage received: once processed, the record has been fetched",
                    ));
                }
                Action::Skip {} if self.actions[..index].contains(&Action::Skip {}) => {
                    return Err(invalid(&at, "skip is listed twice"));
                }
                Action::Skip {} => CompiledAction::Skip,
                Action::Deliver { destinations, template } => {
                    let destinations = names(&format!("{at}.destinations"), destinations, |_| None)?;
                    if destinations.is_empty() {
                        return Err(invalid(
                            &format!("{at}.destinations"),
                            "expected at least one destination",
                        ));
                    }
                    let template = template
                        .as_ref()
                        .map(|template| template.compile().map(Box::new))
                        .transpose()
                        .map_err(|error| InvalidRule {
                            at: format!("{at}.{}", error.place()),
                            reason: error.reason,
                        })?;
                    CompiledAction::Deliver { destinations, template }
                }
            });
        }
        Ok(compiled)
    }
}

impl CompiledRule {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Whether the rule applies to the document: its stage and types, then its filter. Runs no transform.
    pub fn applies_to(&self, document: &Document) -> bool {
        self.stage == document.stage()
            && (self.object_types.is_empty() || self.object_types.iter().any(|name| name == document.object_type()))
            && (self.event_types.is_empty() || self.event_types.iter().any(|name| name == document.event_type()))
            && self.filter.matches(document.as_json())
    }
}

/// Checks a list of names: bounded, non-empty, unique, and whatever `refuse` says of each.
fn names(at: &str, names: &[String], refuse: impl Fn(&str) -> Option<String>) -> Result<Vec<String>, InvalidRule> {
    if names.len() > MAX_LIST_ENTRIES {
        return Err(invalid(at, format!("at most {MAX_LIST_ENTRIES} entries")));
    }
    for (index, name) in names.iter().enumerate() {
        let at = format!("{at}[{index}]");
        if name.is_empty() || name.len() > MAX_NAME_BYTES {
            return Err(invalid(&at, format!("expected 1 to {MAX_NAME_BYTES} bytes")));
        }
        if let Some(reason) = refuse(name) {
            return Err(invalid(&at, reason));
        }
        if names[..index].contains(name) {
            return Err(invalid(&at, format!("{name:?} is listed twice")));
        }
    }
    Ok(names.to_vec())
}

fn invalid(at: &str, reason: impl Into<String>) -> InvalidRule {
    InvalidRule {
        at: at.to_owned(),
        reason: reason.into(),
    }
}
