//! A rule as the editor's fields hold it, and the `definition` JSON the server compiles: both ways, so that a
//! rule can be edited as fields or as JSON and switched between them.

use serde_json::{json, Map, Value};

/// The stages a rule applies at, with what the editor says of them.
pub(super) const STAGES: [(&str, &str); 2] = [
    ("processed", "processed: after the record is mirrored"),
    ("received", "received: before the record is fetched"),
];
/// The keys of a rule the fields show; a definition with others is edited as JSON.
const RULE_KEYS: [&str; 5] = ["name", "when", "filter", "transform", "actions"];

/// A rule's fields as typed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RuleFields {
    pub name: String,
    pub stage: String,
    /// None: every object type.
    pub object_types: Vec<String>,
    /// Separated by commas or spaces; empty: every event type.
    pub event_types: String,
    /// JSON.
    pub filter: String,
    /// JavaScript; empty: none.
    pub transform: String,
    pub actions: Vec<ActionFields>,
}

impl Default for RuleFields {
    fn default() -> Self {
        RuleFields {
            name: String::new(),
            stage: "processed".into(),
            object_types: Vec::new(),
            event_types: String::new(),
            filter: "{}".into(),
            transform: String::new(),
            actions: vec![ActionFields::default()],
        }
    }
}

/// One action's fields: `skip`, or `deliver` to destinations (by name) with an optional template.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ActionFields {
    pub kind: String,
    pub destinations: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Slack's Block Kit blocks: a template that renders to a JSON array.
    pub blocks: String,
}

impl Default for ActionFields {
    fn default() -> Self {
        ActionFields {
            kind: "deliver".into(),
            destinations: Vec::new(),
            subject: String::new(),
            text: String::new(),
            html: String::new(),
            blocks: String::new(),
        }
    }
}

fn text_of(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn strings_of(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

pub(super) fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

impl RuleFields {
    /// The fields of a rule's definition, or why the fields cannot show it (it is then edited as JSON).
    pub fn of(definition: &Value) -> Result<Self, String> {
        let Value::Object(rule) = definition else {
            return Err("A rule is a JSON object.".into());
        };
        if let Some(key) = rule.keys().find(|key| !RULE_KEYS.contains(&key.as_str())) {
            return Err(format!("The fields cannot show {key:?}: edit the rule as JSON."));
        }
        let when = rule.get("when");
        let actions = match rule.get("actions") {
            None => Vec::new(),
            Some(Value::Array(actions)) => actions
                .iter()
                .enumerate()
                .map(|(index, action)| ActionFields::of(index, action))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("The fields cannot show actions that are not a list: edit the rule as JSON.".into()),
        };
        let stage = text_of(when.and_then(|when| when.get("stage")));
        Ok(RuleFields {
            name: text_of(rule.get("name")),
            stage: if stage.is_empty() { "processed".into() } else { stage },
            object_types: strings_of(when.and_then(|when| when.get("object_types"))),
            event_types: strings_of(when.and_then(|when| when.get("event_types"))).join(", "),
            filter: rule.get("filter").map_or_else(|| "{}".into(), pretty),
            transform: text_of(rule.get("transform")),
            actions,
        })
    }

    /// The rule's definition, or what is wrong with the fields before the server sees them (only JSON syntax:
    /// the server checks the rest and names the place).
    pub fn definition(&self) -> Result<Value, String> {
        let filter: Value = if self.filter.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&self.filter).map_err(|error| format!("The filter is not valid JSON: {error}."))?
        };
        let mut when = Map::new();
        when.insert("stage".into(), Value::String(self.stage.clone()));
        if !self.object_types.is_empty() {
            when.insert("object_types".into(), json!(self.object_types));
        }
        let event_types: Vec<&str> = self
            .event_types
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .collect();
        if !event_types.is_empty() {
            when.insert("event_types".into(), json!(event_types));
        }
        let mut rule = Map::new();
        rule.insert("name".into(), Value::String(self.name.trim().to_owned()));
        rule.insert("when".into(), Value::Object(when));
        rule.insert("filter".into(), filter);
        if !self.transform.trim().is_empty() {
            rule.insert("transform".into(), Value::String(self.transform.clone()));
        }
        rule.insert(
            "actions".into(),
            Value::Array(self.actions.iter().map(ActionFields::definition).collect()),
        );
        Ok(Value::Object(rule))
    }
}

impl ActionFields {
    fn of(index: usize, action: &Value) -> Result<Self, String> {
        match action.get("type").and_then(Value::as_str) {
            Some("skip") => Ok(ActionFields {
                kind: "skip".into(),
                ..ActionFields::default()
            }),
            Some("deliver") => {
                let template = action.get("template");
                let part = |name: &str| text_of(template.and_then(|template| template.get(name)));
                Ok(ActionFields {
                    kind: "deliver".into(),
                    destinations: strings_of(action.get("destinations")),
                    subject: part("subject"),
                    text: part("text"),
                    html: part("html"),
                    blocks: part("blocks"),
                })
            }
            _ => Err(format!(
                "The fields cannot show actions[{index}]: edit the rule as JSON."
            )),
        }
    }

    fn definition(&self) -> Value {
        if self.kind == "skip" {
            return json!({"type": "skip"});
        }
        let mut action = json!({"type": "deliver", "destinations": self.destinations});
        let parts: Map<String, Value> = [
            ("subject", &self.subject),
            ("text", &self.text),
            ("html", &self.html),
            ("blocks", &self.blocks),
        ]
        .into_iter()
        .filter(|(_, source)| !source.trim().is_empty())
        .map(|(part, source)| (part.to_owned(), Value::String(source.clone())))
        .collect();
        if !parts.is_empty() {
            action["template"] = Value::Object(parts);
        }
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_make_a_definition_with_only_what_was_filled_in() {
        let fields = RuleFields {
            name: " Forward jobs ".into(),
            object_types: vec!["job".into()],
            event_types: "status_changed, quote_accepted".into(),
            filter: r#"{"record.status": "Completed"}"#.into(),
            actions: vec![ActionFields {
                destinations: vec!["erp".into()],
                ..ActionFields::default()
            }],
            ..RuleFields::default()
        };
        assert_eq!(
            fields.definition().unwrap(),
            json!({"name": "Forward jobs",
                   "when": {"stage": "processed", "object_types": ["job"],
                            "event_types": ["status_changed", "quote_accepted"]},
                   "filter": {"record.status": "Completed"},
                   "actions": [{"type": "deliver", "destinations": ["erp"]}]})
        );
    }

    #[test]
    fn a_template_and_a_transform_are_written_only_when_given() {
        let fields = RuleFields {
            name: "Slack".into(),
            filter: String::new(),
            transform: "(input) => input.record".into(),
            actions: vec![
                ActionFields {
                    destinations: vec!["office".into()],
                    text: "Job {{ record.uuid }}".into(),
                    ..ActionFields::default()
                },
                ActionFields {
                    kind: "skip".into(),
                    destinations: vec!["ignored".into()],
                    ..ActionFields::default()
                },
            ],
            ..RuleFields::default()
        };
        let definition = fields.definition().unwrap();
        assert_eq!(definition["filter"], json!({}));
        assert_eq!(definition["transform"], "(input) => input.record");
        assert_eq!(
            definition["actions"],
            json!([{"type": "deliver", "destinations": ["office"], "template": {"text": "Job {{ record.uuid }}"}},
                   {"type": "skip"}])
        );
    }

    #[test]
    fn a_filter_that_is_not_json_is_refused_before_it_is_sent() {
        let fields = RuleFields {
            filter: "{record.status: 1}".into(),
            ..RuleFields::default()
        };
        assert!(fields
            .definition()
            .unwrap_err()
            .starts_with("The filter is not valid JSON"));
    }

    #[test]
    fn a_saved_definition_comes_back_as_the_same_fields() {
        let definition = json!({
            "name": "Email: quote accepted",
            "when": {"stage": "received", "object_types": ["job", "company"], "event_types": ["quote_accepted"]},
            "filter": {"changes.status": {"$exist": true}},
            "actions": [{"type": "skip"},
                        {"type": "deliver", "destinations": ["office-email"],
                         "template": {"subject": "Quote {{ record.uuid }}", "html": "<p>Accepted</p>",
                                     "blocks": "[{\"type\": \"divider\"}]"}}]
        });
        let fields = RuleFields::of(&definition).unwrap();
        assert_eq!(fields.stage, "received");
        assert_eq!(fields.event_types, "quote_accepted");
        assert_eq!(fields.actions[1].subject, "Quote {{ record.uuid }}");
        assert_eq!(fields.definition().unwrap(), definition);
    }

    #[test]
    fn a_definition_the_fields_cannot_show_is_left_to_the_json_editor() {
        assert!(RuleFields::of(&json!({"name": "x", "priority": 1})).is_err());
        assert!(RuleFields::of(&json!({"name": "x", "actions": [{"type": "forward"}]})).is_err());
        assert!(RuleFields::of(&json!(["not", "a", "rule"])).is_err());
    }
}
