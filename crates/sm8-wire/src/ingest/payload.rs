//! Normalised events, what every format shares, and parsing of the seed format.
//!
//! The seed format is JSON `{object_type, object_uuid, event_type, timestamp, changes}`; a JSON array of such
//! objects is one delivery of several events.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// At most this many events in one delivery.
pub const MAX_EVENTS_PER_DELIVERY: usize = 1_000;
/// Longest accepted object type, uuid or event type.
const MAX_FIELD_LEN: usize = 128;

/// One change to one ServiceM8 object, as extracted from a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEvent {
    /// Canonical lowercase name: job, company, jobactivity, attachment, staff, ...
    pub object_type: String,
    pub object_uuid: String,
    pub event_type: String,
    /// Unix milliseconds.
    pub occurred_at: Option<i64>,
    pub changes: Value,
}

impl ParsedEvent {
    /// A key equal for every delivery of the same change, different for any other change.
    pub fn dedup_key(&self, format: &str) -> String {
        let identity = serde_json::json!([
            format,
            self.object_type,
            self.object_uuid,
            self.event_type,
            self.occurred_at,
            self.changes,
        ]);
        hex::encode(Sha256::digest(identity.to_string().as_bytes()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is empty")]
    Empty,
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("expected a JSON object or an array of objects")]
    NotAnObject,
    #[error("delivery holds no events")]
    NoEvents,
    #[error("delivery holds more than {MAX_EVENTS_PER_DELIVERY} events")]
    TooManyEvents,
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` {reason}")]
    InvalidField { field: &'static str, reason: &'static str },
    #[error(
        "unrecognised payload: expected the seed format (`object_type`, `object_uuid`, `event_type`, `timestamp`), \
         a ServiceM8 object callback (`object`, `entry`), an add-on callback (a JWT) or a ServiceM8 event webhook \
         (`event`: job.created, ...)"
    )]
    Unrecognised,
}

#[derive(Deserialize)]
struct SeedEvent {
    object_type: Option<Value>,
    object_uuid: Option<Value>,
    event_type: Option<Value>,
    timestamp: Option<Value>,
    changes: Option<Value>,
}

/// Parses a seed-format delivery.
pub fn parse_seed(body: &[u8]) -> Result<Vec<ParsedEvent>, PayloadError> {
    parse_json(body).and_then(parse_seed_value)
}

/// Parses a body as JSON, naming what is wrong with it.
pub fn parse_json(body: &[u8]) -> Result<Value, PayloadError> {
    if body.trim_ascii().is_empty() {
        return Err(PayloadError::Empty);
    }
    super::json::parse_without_repeated_keys(body).map_err(|e| PayloadError::NotJson(e.to_string()))
}

/// Whether `key` is one of the seed format's fields.
pub fn is_seed_field(key: &str) -> bool {
    matches!(
        key,
        "object_type" | "object_uuid" | "event_type" | "timestamp" | "changes"
    )
}

/// Parses a seed-format delivery that is already JSON.
pub fn parse_seed_value(value: Value) -> Result<Vec<ParsedEvent>, PayloadError> {
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => return Err(PayloadError::NotAnObject),
    };
    if items.is_empty() {
        return Err(PayloadError::NoEvents);
    }
    if items.len() > MAX_EVENTS_PER_DELIVERY {
        return Err(PayloadError::TooManyEvents);
    }
    items.into_iter().map(parse_seed_event).collect()
}

fn parse_seed_event(item: Value) -> Result<ParsedEvent, PayloadError> {
    if !item.is_object() {
        return Err(PayloadError::NotAnObject);
    }
    let event: SeedEvent = serde_json::from_value(item).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let object_type = required_object_type("object_type", event.object_type)?;
    let timestamp = required_text("timestamp", event.timestamp)?;
    let changes = match event.changes {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(changes @ Value::Object(_)) => changes,
        Some(_) => {
            return Err(PayloadError::InvalidField {
                field: "changes",
                reason: "must be an object",
            })
        }
    };
    Ok(ParsedEvent {
        object_type,
        object_uuid: required_text("object_uuid", event.object_uuid)?,
        event_type: required_text("event_type", event.event_type)?.to_ascii_lowercase(),
        occurred_at: Some(parse_timestamp(&timestamp).ok_or(PayloadError::InvalidField {
            field: "timestamp",
            reason: "is not a date and time",
        })?),
        changes,
    })
}

/// A non-empty string of at most `MAX_FIELD_LEN` characters, trimmed.
pub(crate) fn required_text(field: &'static str, value: Option<Value>) -> Result<String, PayloadError> {
    match value {
        None | Some(Value::Null) => Err(PayloadError::MissingField(field)),
        Some(Value::String(text)) => {
            let text = text.trim();
            if text.is_empty() {
                Err(PayloadError::InvalidField {
                    field,
                    reason: "is empty",
                })
            } else if text.len() > MAX_FIELD_LEN {
                Err(PayloadError::InvalidField {
                    field,
                    reason: "is too long",
                })
            } else {
                Ok(text.to_owned())
            }
        }
        Some(_) => Err(PayloadError::InvalidField {
            field,
            reason: "must be a string",
        }),
    }
}

/// The canonical object type a required field names; refused when nothing is left of it once canonical (`"_"`),
/// so that no event is stored against an empty type.
pub(crate) fn required_object_type(field: &'static str, value: Option<Value>) -> Result<String, PayloadError> {
    let object_type = canonical_object_type(&required_text(field, value)?);
    if object_type.is_empty() {
        return Err(PayloadError::InvalidField {
            field,
            reason: "names no object type",
        });
    }
    Ok(object_type)
}

/// `Job`, `JobActivity`, `job_activity` and `Job Activity` all name `jobactivity`.
pub fn canonical_object_type(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | ' ' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Parses RFC 3339 or ServiceM8's `YYYY-MM-DD HH:MM:SS` (taken as UTC) into unix milliseconds.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
        PrimitiveDateTime::parse(
            text,
            format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        )
        .ok()
        .map(PrimitiveDateTime::assume_utc)
    })?;
    Some((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_EXAMPLE: &str = r#"{
        "object_type": "Job",
        "object_uuid": "job-uuid",
        "event_type": "updated",
        "timestamp": "2024-01-01T00:00:00Z",
        "changes": {"status": "Work Order"}
    }"#;

    #[test]
    fn the_seed_example_parses_into_one_normalised_event() {
        let events = parse_seed(SEED_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.object_type, "job");
        assert_eq!(event.object_uuid, "job-uuid");
        assert_eq!(event.event_type, "updated");
        assert_eq!(event.occurred_at, Some(1_704_067_200_000));
        assert_eq!(event.changes["status"], "Work Order");
    }

    #[test]
    fn an_array_is_a_delivery_of_several_events() {
        let body = format!("[{SEED_EXAMPLE},{SEED_EXAMPLE}]");
        assert_eq!(parse_seed(body.as_bytes()).unwrap().len(), 2);
    }

    #[test]
    fn missing_and_malformed_fields_are_named_in_the_error() {
        assert_eq!(parse_seed(b""), Err(PayloadError::Empty));
        assert!(matches!(parse_seed(b"{not json"), Err(PayloadError::NotJson(_))));
        assert_eq!(parse_seed(b"42"), Err(PayloadError::NotAnObject));
        assert_eq!(parse_seed(b"[]"), Err(PayloadError::NoEvents));
        assert_eq!(
            parse_seed(br#"{"object_uuid":"u","event_type":"created","timestamp":"2024-01-01T00:00:00Z"}"#),
            Err(PayloadError::MissingField("object_type"))
        );
        assert_eq!(
            parse_seed(
                br#"{"object_type":"Job","object_uuid":7,"event_type":"created","timestamp":"2024-01-01 00:00:00"}"#
            ),
            Err(PayloadError::InvalidField {
                field: "object_uuid",
                reason: "must be a string"
            })
        );
        assert_eq!(
            parse_seed(br#"{"object_type":"Job","object_uuid":"u","event_type":"created","timestamp":"yesterday"}"#),
            Err(PayloadError::InvalidField {
                field: "timestamp",
                reason: "is not a date and time"
            })
        );
        assert_eq!(
            parse_seed(br#"{"object_type":"Job","object_uuid":"u","event_type":"x","timestamp":"2024-01-01 00:00:00","changes":[1]}"#),
            Err(PayloadError::InvalidField { field: "changes", reason: "must be an object" })
        );
    }

    #[test]
    fn object_type_names_are_canonicalised() {
        assert_eq!(canonical_object_type("JobActivity"), "jobactivity");
        assert_eq!(canonical_object_type("job_activity"), "jobactivity");
        assert_eq!(canonical_object_type("Attachment"), "attachment");
        assert_eq!(
            parse_seed(
                br#"{"object_type":"_-_","object_uuid":"u","event_type":"x","timestamp":"2024-01-01 00:00:00"}"#
            ),
            Err(PayloadError::InvalidField {
                field: "object_type",
                reason: "names no object type"
            })
        );
    }

    #[test]
    fn servicem8_and_rfc3339_timestamps_agree() {
        assert_eq!(
            parse_timestamp("2017-01-01 12:21:12"),
            parse_timestamp("2017-01-01T12:21:12Z")
        );
        assert_eq!(
            parse_timestamp("2017-01-01T22:21:12+10:00"),
            parse_timestamp("2017-01-01T12:21:12Z")
        );
    }

    #[test]
    fn the_dedup_key_is_stable_and_distinguishes_changes() {
        let event = parse_seed(SEED_EXAMPLE.as_bytes()).unwrap().remove(0);
        assert_eq!(event.dedup_key("seed"), event.clone().dedup_key("seed"));
        let mut other = event.clone();
        other.changes = serde_json::json!({"status": "Completed"});
        assert_ne!(event.dedup_key("seed"), other.dedup_key("seed"));
    }
}
