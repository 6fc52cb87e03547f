//! ServiceM8 event webhooks (`job.created`, `job.status_changed`, ... 25 names).
//!
//! Their body is undocumented, so the raw body is stored whole (as the event's `changes` too), what can be
//! recognised is extracted, and an authenticated event is never refused for its shape: one whose object cannot
//! be found is stored against the object `unknown`, which the processor skips with a reason.

use serde_json::{json, Value};

use crate::ingest::payload::{canonical_object_type, parse_timestamp, ParsedEvent};

/// Header that may name the event when the body does not.
pub const EVENT_HEADER: &str = "x-servicem8-event";
/// Stands in for an object type or uuid that the body does not reveal.
pub const UNKNOWN: &str = "unknown";

/// Every event a ServiceM8 event subscription can deliver.
pub const EVENT_NAMES: [&str; 25] = [
    "job.created",
    "job.updated",
    "job.status_changed",
    "job.completed",
    "job.queued",
    "job.checked_in",
    "job.checked_out",
    "job.badge_added",
    "job.badge_removed",
    "job.note_added",
    "job.photo_added",
    "job.video_added",
    "job.quote_sent",
    "job.quote_accepted",
    "job.invoice_sent",
    "job.invoice_paid",
    "job.review_received",
    "company.created",
    "company.updated",
    "form.response_created",
    "inbox.message_received",
    "proposal.sent",
    "proposal.viewed",
    "staff.clocked_on",
    "staff.clocked_off",
];

/// Body fields that may carry the event name, in the order they are trusted.
const NAME_FIELDS: [&str; 4] = ["event", "eventName", "event_name", "type"];
/// Fields of the envelope that may carry when the event happened; nested records are not searched, since
/// their dates (a job's `date`, a record's `created_at`) say something else.
const TIME_FIELDS: [&str; 4] = ["timestamp", "time", "occurred_at", "created_at"];
/// Longest accepted uuid or event type, as in the seed format.
const MAX_FIELD_LEN: usize = 128;

/// The event's canonical name when `name` is one of `EVENT_NAMES`, in any casing.
pub fn known_name(name: &str) -> Option<&'static str> {
    let name = name.trim();
    EVENT_NAMES
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(name))
}

/// The known event named by the body's name fields or, failing those, by the `x-servicem8-event` header.
pub fn name_in(body: &Value, header: Option<&str>) -> Option<&'static str> {
    NAME_FIELDS
        .iter()
        .filter_map(|field| body.get(field)?.as_str())
        .chain(header)
        .find_map(known_name)
}

/// The event `name` (one of `EVENT_NAMES`) with what its body reveals, received at `received_at` (unix ms).
pub fn parse_event(name: &'static str, body: Value, received_at: i64) -> ParsedEvent {
    let (object, action) = name.split_once('.').unwrap_or((name, name));
    ParsedEvent {
        object_type: canonical_object_type(object),
        object_uuid: find_uuid(&body, object).unwrap_or_else(|| UNKNOWN.to_owned()),
        event_type: action.to_owned(),
        occurred_at: Some(find_time(&body).unwrap_or(received_at)),
        changes: as_changes(body),
    }
}

/// An authenticated delivery whose shape nothing recognises: kept whole for an operator to look at.
pub fn parse_unrecognised(body: Value, received_at: i64) -> ParsedEvent {
    let event_type = NAME_FIELDS
        .iter()
        .filter_map(|field| body.get(field)?.as_str())
        .map(str::trim)
        .find(|name| !name.is_empty() && name.len() <= MAX_FIELD_LEN)
        .map_or_else(|| UNKNOWN.to_owned(), str::to_ascii_lowercase);
    ParsedEvent {
        object_type: UNKNOWN.to_owned(),
        object_uuid: UNKNOWN.to_owned(),
        event_type,
        occurred_at: Some(find_time(&body).unwrap_or(received_at)),
        changes: as_changes(body),
    }
}

/// The uuid of the `object` the event is about, looked for where senders usually put it.
fn find_uuid(body: &Value, object: &str) -> Option<String> {
    let own_key = format!("{object}_uuid");
    let keys = [own_key.as_str(), "object_uuid", "uuid"];
    containers(body, object)
        .into_iter()
        .flat_map(|container| keys.iter().filter_map(move |key| container.get(key)?.as_str()))
        .map(str::trim)
        .find(|uuid| !uuid.is_empty() && uuid.len() <= MAX_FIELD_LEN)
        .map(str::to_owned)
}

/// When the event happened, in unix milliseconds, from a date string or a unix time in seconds or milliseconds.
fn find_time(body: &Value) -> Option<i64> {
    // Anything below this is taken as seconds: it is in 1973 as milliseconds, in 5138 as seconds.
    const SECONDS_BELOW: i64 = 100_000_000_000;
    TIME_FIELDS
        .iter()
        .filter_map(|field| body.get(field))
        .find_map(|value| match value {
            Value::String(text) => parse_timestamp(text.trim()),
            Value::Number(number) => {
                number.as_i64().filter(|&time| time > 0).map(
                    |time| {
                        if time < SECONDS_BELOW {
                            time * 1000
                        } else {
                            time
                        }
                    },
                )
            }
            _ => None,
        })
}

/// The body itself, then the objects nested under the usual envelope keys (and their `object` member).
fn containers<'a>(body: &'a Value, object: &str) -> Vec<&'a Value> {
    let mut found = vec![body];
    for key in [object, "data", "object", "payload", "eventArgs"] {
        if let Some(envelope) = body.get(key) {
            found.push(envelope);
            found.extend(envelope.get(object));
        }
    }
    found.retain(|value| value.is_object());
    found
}

fn as_changes(body: Value) -> Value {
    if body.is_object() {
        body
    } else {
        json!({ "body": body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVED_AT: i64 = 1_800_000_000_000;

    #[test]
    fn all_25_names_are_known_in_any_casing() {
        assert_eq!(EVENT_NAMES.len(), 25);
        assert_eq!(known_name("Job.Status_Changed"), Some("job.status_changed"));
        assert_eq!(known_name(" staff.clocked_off "), Some("staff.clocked_off"));
        assert_eq!(known_name("job.deleted"), None);
        assert_eq!(known_name("webhook_subscription"), None);
    }

    #[test]
    fn the_name_comes_from_the_body_or_else_the_header() {
        assert_eq!(name_in(&json!({"event": "job.created"}), None), Some("job.created"));
        assert_eq!(
            name_in(&json!({"eventName": "company.updated"}), None),
            Some("company.updated")
        );
        assert_eq!(
            name_in(&json!({"event_name": "proposal.sent"}), None),
            Some("proposal.sent")
        );
        assert_eq!(
            name_in(&json!({"type": "job.invoice_paid"}), None),
            Some("job.invoice_paid")
        );
        assert_eq!(
            name_in(&json!({"event": {"name": "x"}}), Some("job.queued")),
            Some("job.queued")
        );
        assert_eq!(name_in(&json!({"type": "payment"}), Some("nothing")), None);
        assert_eq!(name_in(&json!([1]), None), None);
    }

    #[test]
    fn an_event_maps_to_its_object_and_action() {
        let body = json!({"event": "job.status_changed", "data": {"uuid": "job-1", "status": "Completed"},
                          "timestamp": "2024-05-01T10:00:00Z"});
        let event = parse_event("job.status_changed", body.clone(), RECEIVED_AT);
        assert_eq!(event.object_type, "job");
        assert_eq!(event.object_uuid, "job-1");
        assert_eq!(event.event_type, "status_changed");
        assert_eq!(event.occurred_at, parse_timestamp("2024-05-01T10:00:00Z"));
        assert_eq!(event.changes, body);
    }

    #[test]
    fn the_object_uuid_is_found_where_senders_put_it() {
        let cases = [
            json!({"uuid": "a"}),
            json!({"object_uuid": "a"}),
            json!({"job_uuid": "a", "uuid": "note-1"}),
            json!({"data": {"uuid": "a"}}),
            json!({"job": {"uuid": "a"}}),
            json!({"object": {"uuid": "a"}}),
            json!({"data": {"job": {"uuid": "a"}}}),
            json!({"payload": {"job_uuid": "a"}}),
        ];
        for body in cases {
            assert_eq!(
                parse_event("job.note_added", body.clone(), RECEIVED_AT).object_uuid,
                "a",
                "{body}"
            );
        }
        assert_eq!(
            parse_event("staff.clocked_on", json!({"staff_uuid": "s"}), RECEIVED_AT).object_uuid,
            "s"
        );
    }

    #[test]
    fn an_event_of_unknown_shape_is_kept_whole() {
        let body = json!({"something": ["else"]});
        let event = parse_event("form.response_created", body.clone(), RECEIVED_AT);
        assert_eq!(
            (event.object_type.as_str(), event.object_uuid.as_str()),
            ("form", UNKNOWN)
        );
        assert_eq!(event.event_type, "response_created");
        assert_eq!(event.occurred_at, Some(RECEIVED_AT));
        assert_eq!(event.changes, body);
        assert_eq!(
            parse_event("job.created", json!([1, 2]), RECEIVED_AT).changes,
            json!({"body": [1, 2]})
        );
    }

    #[test]
    fn dates_inside_the_record_are_not_taken_for_the_event_time() {
        let event = parse_event(
            "job.updated",
            json!({"data": {"uuid": "j", "date": "2020-01-01 00:00:00"}}),
            RECEIVED_AT,
        );
        assert_eq!(event.occurred_at, Some(RECEIVED_AT));
    }

    #[test]
    fn unix_times_in_seconds_or_milliseconds_are_understood() {
        let seconds = parse_event("job.created", json!({"timestamp": 1_700_000_000}), RECEIVED_AT);
        let millis = parse_event("job.created", json!({"time": 1_700_000_000_000_i64}), RECEIVED_AT);
        assert_eq!(seconds.occurred_at, Some(1_700_000_000_000));
        assert_eq!(millis.occurred_at, Some(1_700_000_000_000));
    }

    #[test]
    fn an_unrecognised_delivery_keeps_its_name_when_it_has_one() {
        let named = parse_unrecognised(json!({"type": "Invoice.Paid", "id": 3}), RECEIVED_AT);
        assert_eq!(
            (named.object_type.as_str(), named.event_type.as_str()),
            (UNKNOWN, "invoice.paid")
        );
        assert_eq!(parse_unrecognised(json!(42), RECEIVED_AT).event_type, UNKNOWN);
        assert_eq!(parse_unrecognised(json!(42), RECEIVED_AT).changes, json!({"body": 42}));
    }
}
