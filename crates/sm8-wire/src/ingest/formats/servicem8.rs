//! ServiceM8 object callbacks: `{"object":"job","entry":[{"uuid","changed_fields","time"}],"resource_url"}`,
//! posted as JSON or as a form whose `entry` field holds the JSON list.
//!
//! A callback names the fields that changed but carries none of their values: each entry becomes one `updated`
//! event whose `changes` map every changed field to null, for the processor to fill from the fetched record.

use serde_json::{Map, Value};

use crate::ingest::payload::{
    parse_timestamp, required_object_type, required_text, ParsedEvent, PayloadError, MAX_EVENTS_PER_DELIVERY,
};

/// Whether a JSON object has the shape of an object callback.
pub fn is_object_callback(document: &Map<String, Value>) -> bool {
    document.contains_key("object") && document.contains_key("entry")
}

/// One event per entry of an object callback received at `received_at` (unix milliseconds).
pub fn parse_object_callback(document: Value, received_at: i64) -> Result<Vec<ParsedEvent>, PayloadError> {
    let Value::Object(mut document) = document else {
        return Err(PayloadError::NotAnObject);
    };
    let object_type = required_object_type("object", document.remove("object"))?;
    let entries = match document.remove("entry") {
        None | Some(Value::Null) => return Err(PayloadError::MissingField("entry")),
        Some(Value::Array(entries)) => entries,
        Some(entry @ Value::Object(_)) => vec![entry],
        // The form-encoded variant carries the list as JSON text.
        Some(Value::String(text)) => match serde_json::from_str(&text) {
            Ok(Value::Array(entries)) => entries,
            Ok(entry @ Value::Object(_)) => vec![entry],
            _ => return Err(NOT_A_LIST),
        },
        Some(_) => return Err(NOT_A_LIST),
    };
    if entries.is_empty() {
        return Err(PayloadError::NoEvents);
    }
    if entries.len() > MAX_EVENTS_PER_DELIVERY {
        return Err(PayloadError::TooManyEvents);
    }
    entries
        .into_iter()
        .map(|entry| parse_entry(&object_type, entry, received_at))
        .collect()
}

const NOT_A_LIST: PayloadError = PayloadError::InvalidField {
    field: "entry",
    reason: "must be a list of changes",
};

fn parse_entry(object_type: &str, entry: Value, received_at: i64) -> Result<ParsedEvent, PayloadError> {
    let Value::Object(mut entry) = entry else {
        return Err(PayloadError::InvalidField {
            field: "entry",
            reason: "must hold objects",
        });
    };
    let object_uuid = required_text("entry.uuid", entry.remove("uuid"))?;
    let occurred_at = match entry.remove("time") {
        // Dated on receipt rather than left undated: two undated changes to the same fields would otherwise
        // share a dedup key, and the second would be dropped as a duplicate.
        None | Some(Value::Null) => received_at,
        Some(Value::String(time)) => parse_timestamp(time.trim()).ok_or(PayloadError::InvalidField {
            field: "entry.time",
            reason: "is not a date and time",
        })?,
        Some(_) => {
            return Err(PayloadError::InvalidField {
                field: "entry.time",
                reason: "must be a string",
            })
        }
    };
    Ok(ParsedEvent {
        object_type: object_type.to_owned(),
        object_uuid,
        // Callbacks do not say whether the object is new; the fetched record tells the processor.
        event_type: "updated".into(),
        occurred_at: Some(occurred_at),
        changes: changed_fields(entry.remove("changed_fields"))?,
    })
}

/// `{"status": null, ...}` for the listed fields, sorted so the dedup key ignores the order they came in.
fn changed_fields(value: Option<Value>) -> Result<Value, PayloadError> {
    const NOT_NAMES: PayloadError = PayloadError::InvalidField {
        field: "entry.changed_fields",
        reason: "must be a list of field names",
    };
    let mut names: Vec<String> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(name) => Ok(name),
                _ => Err(NOT_NAMES),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::String(names)) => names.split(',').map(str::to_owned).collect(),
        Some(_) => return Err(NOT_NAMES),
    };
    names.iter_mut().for_each(|name| *name = name.trim().to_owned());
    names.retain(|name| !name.is_empty());
    names.sort();
    names.dedup();
    Ok(Value::Object(
        names.into_iter().map(|name| (name, Value::Null)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RECEIVED_AT: i64 = 1_800_000_000_000;

    fn callback(object: &str, entry: Value) -> Value {
        json!({"object": object, "entry": entry, "resource_url": "https://api.servicem8.com/api_1.0/Job/u.json"})
    }

    #[test]
    fn the_documented_example_becomes_one_updated_event() {
        let document = callback(
            "job",
            json!([{"uuid": "job-1", "changed_fields": ["status"], "time": "2017-01-01 12:21:12"}]),
        );
        let events = parse_object_callback(document, RECEIVED_AT).unwrap();
        assert_eq!(
            events,
            [ParsedEvent {
                object_type: "job".into(),
                object_uuid: "job-1".into(),
                event_type: "updated".into(),
                occurred_at: parse_timestamp("2017-01-01 12:21:12"),
                changes: json!({"status": null}),
            }]
        );
    }

    #[test]
    fn each_entry_is_an_event_and_object_names_are_canonical_in_any_casing() {
        for (name, canonical) in [
            ("Job", "job"),
            ("JOB", "job"),
            ("JobActivity", "jobactivity"),
            ("job_activity", "jobactivity"),
        ] {
            let entries =
                json!([{"uuid": "a", "time": "2024-01-01 00:00:00"}, {"uuid": "b", "time": "2024-01-01 00:00:01"}]);
            let events = parse_object_callback(callback(name, entries), RECEIVED_AT).unwrap();
            assert_eq!(events.len(), 2);
            assert!(events.iter().all(|event| event.object_type == canonical), "{name}");
            assert_eq!(events[1].object_uuid, "b");
        }
    }

    #[test]
    fn the_form_variant_carries_the_entries_as_json_text() {
        let entries =
            r#"[{"uuid":"att-1","changed_fields":["attachment_name","active"],"time":"2024-01-01 00:00:00"}]"#;
        let events = parse_object_callback(callback("Attachment", json!(entries)), RECEIVED_AT).unwrap();
        assert_eq!(events[0].object_type, "attachment");
        assert_eq!(events[0].changes, json!({"active": null, "attachment_name": null}));
    }

    #[test]
    fn changed_fields_are_sorted_trimmed_and_deduplicated() {
        assert_eq!(
            changed_fields(Some(json!(["status", " date", "status"]))).unwrap(),
            changed_fields(Some(json!("date,status"))).unwrap()
        );
        assert_eq!(changed_fields(None).unwrap(), json!({}));
    }

    #[test]
    fn an_entry_without_a_time_is_dated_on_receipt() {
        let events = parse_object_callback(callback("job", json!([{"uuid": "job-1"}])), RECEIVED_AT).unwrap();
        assert_eq!(events[0].occurred_at, Some(RECEIVED_AT));
    }

    #[test]
    fn malformed_callbacks_are_refused_with_the_reason() {
        let cases = [
            (callback("job", json!([])), PayloadError::NoEvents),
            (callback("job", json!("[]")), PayloadError::NoEvents),
            (
                callback("job", json!([{"changed_fields": ["status"]}])),
                PayloadError::MissingField("entry.uuid"),
            ),
            (
                callback("job", json!([{"uuid": ""}])),
                PayloadError::InvalidField {
                    field: "entry.uuid",
                    reason: "is empty",
                },
            ),
            (callback("job", json!("not json")), NOT_A_LIST),
            (callback("job", json!(7)), NOT_A_LIST),
            (
                callback("", json!([{"uuid": "u"}])),
                PayloadError::InvalidField {
                    field: "object",
                    reason: "is empty",
                },
            ),
            (
                callback("_", json!([{"uuid": "u"}])),
                PayloadError::InvalidField {
                    field: "object",
                    reason: "names no object type",
                },
            ),
            (
                callback("job", json!([{"uuid": "u", "time": "noon"}])),
                PayloadError::InvalidField {
                    field: "entry.time",
                    reason: "is not a date and time",
                },
            ),
            (
                callback("job", json!([{"uuid": "u", "changed_fields": [1]}])),
                PayloadError::InvalidField {
                    field: "entry.changed_fields",
                    reason: "must be a list of field names",
                },
            ),
            (
                callback("job", json!(["u"])),
                PayloadError::InvalidField {
                    field: "entry",
                    reason: "must hold objects",
                },
            ),
        ];
        for (document, expected) in cases {
            assert_eq!(
                parse_object_callback(document.clone(), RECEIVED_AT),
                Err(expected),
                "{document}"
            );
        }
    }
}
