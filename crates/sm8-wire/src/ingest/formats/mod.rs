//! Recognising what a delivery's body is, before anything in it is trusted.
//!
//! A body is read as one of: the subscribe handshake, a JWT (an add-on callback), or a JSON document, whether
//! posted as JSON or inside a form (an object callback's fields, a `data=`/`payload=` field, or a form whose one
//! field is the document). A document then has a shape: the seed format, an object callback, an event webhook,
//! or nothing recognisable.

pub mod addon;
pub mod event;
pub mod servicem8;

use serde_json::{Map, Value};

use super::form;
use super::payload::{self, ParsedEvent, PayloadError};

/// What a body holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `mode=subscribe`: ServiceM8 checking the callback URL. The challenge is `None` when missing or empty.
    Handshake { challenge: Option<String> },
    /// A compact JWT: an add-on callback.
    Jwt(String),
    /// A JSON document, or why the body is not one.
    Document(Result<Value, PayloadError>),
}

/// Reads a raw body.
pub fn read(body: &[u8]) -> Body {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Body::Document(Err(PayloadError::Empty));
    }
    if trimmed.starts_with(b"{") || trimmed.starts_with(b"[") {
        return from_json(payload::parse_json(trimmed));
    }
    match std::str::from_utf8(trimmed) {
        Ok(text) if addon::looks_like_jwt(text) => Body::Jwt(text.to_owned()),
        _ => from_form(trimmed),
    }
}

fn from_json(document: Result<Value, PayloadError>) -> Body {
    if let Ok(Value::Object(fields)) = &document {
        if fields.get("mode").and_then(Value::as_str).is_some_and(is_subscribe) {
            let challenge = fields.get("challenge").and_then(Value::as_str);
            return Body::Handshake {
                challenge: challenge.filter(|c| !c.is_empty()).map(str::to_owned),
            };
        }
    }
    Body::Document(document)
}

fn from_form(body: &[u8]) -> Body {
    let fields = form::parse(body);
    if form::field(&fields, "mode").is_some_and(is_subscribe) {
        let challenge = form::field(&fields, "challenge").filter(|c| !c.is_empty());
        return Body::Handshake {
            challenge: challenge.map(str::to_owned),
        };
    }
    if let Some(token) = form::field(&fields, "jwt") {
        return Body::Jwt(token.trim().to_owned());
    }
    if form::field(&fields, "object").is_some() || form::field(&fields, "entry").is_some() {
        return Body::Document(Ok(Value::Object(object_callback_fields(fields))));
    }
    let embedded = ["data", "payload"]
        .iter()
        .find_map(|name| form::field(&fields, name))
        .or(match fields.as_slice() {
            // A document posted as the form's only field, as its name or as its value.
            [(name, value)] if value.is_empty() => Some(name.as_str()),
            [(_, value)] => Some(value.as_str()),
            _ => None,
        });
    match embedded.map(str::trim) {
        Some(text) if addon::looks_like_jwt(text) => Body::Jwt(text.to_owned()),
        Some(text) if text.starts_with('{') || text.starts_with('[') => from_json(payload::parse_json(text.as_bytes())),
        // Neither JSON nor a form anything here understands: the JSON parser's complaint names the problem.
        _ => Body::Document(payload::parse_json(body)),
    }
}

/// A form-encoded object callback as the JSON document it stands for; `entry` is JSON text in the form.
fn object_callback_fields(fields: Vec<(String, String)>) -> Map<String, Value> {
    let mut document = Map::new();
    for (name, value) in fields {
        if document.contains_key(&name) {
            continue;
        }
        let value = match name.as_str() {
            // Left as text when it is not JSON, so the object callback parser can say what is wrong with it.
            "entry" => serde_json::from_str(&value).unwrap_or(Value::String(value)),
            _ => Value::String(value),
        };
        document.insert(name, value);
    }
    document
}

fn is_subscribe(mode: &str) -> bool {
    mode.trim().eq_ignore_ascii_case("subscribe")
}

/// A format a JSON document can be in: its name (stored with its events), how a document is recognised as one,
/// and how its events are read.
#[derive(Debug)]
pub struct DocumentFormat {
    pub name: &'static str,
    /// ServiceM8 itself sends it, unsigned, so that it may be accepted without the seed HMAC (the URL token and
    /// the fetch of every record protect it instead).
    pub servicem8_callback: bool,
    /// Whether `document` is of this format; `event_header` is the `x-servicem8-event` header, if any.
    pub detect: fn(document: &Value, event_header: Option<&str>) -> bool,
    /// Its events, received at `now` (unix milliseconds).
    pub parse: ParseDocument,
}

/// Reads the events of a document (`event_header`: the `x-servicem8-event` header) received at `now`.
pub type ParseDocument =
    fn(document: Value, event_header: Option<&str>, now: i64) -> Result<Vec<ParsedEvent>, PayloadError>;

/// The seed's `{object_type, object_uuid, event_type, timestamp, changes}` (or an array of them).
pub static SEED: DocumentFormat = DocumentFormat {
    name: "seed",
    servicem8_callback: false,
    detect: |document, _| {
        document
            .as_object()
            .is_some_and(|fields| fields.contains_key("object_type") && fields.contains_key("event_type"))
    },
    parse: |document, _, _| payload::parse_seed_value(document),
};

/// ServiceM8's object callback, `{object, entry, resource_url}`.
pub static OBJECT: DocumentFormat = DocumentFormat {
    name: "object",
    servicem8_callback: true,
    detect: |document, _| document.as_object().is_some_and(servicem8::is_object_callback),
    parse: |document, _, now| servicem8::parse_object_callback(document, now),
};

/// ServiceM8's event webhooks (`job.created`, `job.status_changed`, ...), named in the body or the header.
pub static EVENT: DocumentFormat = DocumentFormat {
    name: "event",
    servicem8_callback: true,
    detect: |document, event_header| event::name_in(document, event_header).is_some(),
    parse: |document, event_header, now| match event::name_in(&document, event_header) {
        Some(name) => Ok(vec![event::parse_event(name, document, now)]),
        None => Ok(vec![event::parse_unrecognised(document, now)]),
    },
};

/// The name of add-on callbacks (JWTs), recognised by `read` before any document format.
pub const ADDON: &str = "addon";

/// The document formats, in the order a document is tried against them: the first that recognises it wins.
pub static DOCUMENT_FORMATS: [&DocumentFormat; 3] = [&SEED, &OBJECT, &EVENT];

/// Every format the receiver accepts, by name, in the order a body is tried: an add-on JWT, then the documents.
pub fn format_names() -> Vec<&'static str> {
    std::iter::once(ADDON)
        .chain(DOCUMENT_FORMATS.iter().map(|format| format.name))
        .collect()
}

/// The kind of delivery a JSON document is.
#[derive(Debug, PartialEq)]
pub enum Shape {
    /// A document of a known format.
    Known {
        format: &'static DocumentFormat,
        document: Value,
    },
    /// A document no format recognises.
    Unrecognised(Value),
    /// The body is not a JSON document.
    Unreadable(PayloadError),
}

impl PartialEq for DocumentFormat {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Shape {
    /// Classifies a document by the first format that recognises it; `event_header` is the
    /// `x-servicem8-event` header, if any.
    pub fn of(document: Result<Value, PayloadError>, event_header: Option<&str>) -> Shape {
        let document = match document {
            Ok(document) => document,
            Err(error) => return Shape::Unreadable(error),
        };
        if let Some(format) = DOCUMENT_FORMATS
            .iter()
            .find(|format| (format.detect)(&document, event_header))
        {
            return Shape::Known { format, document };
        }
        // Partial seed documents go to the seed parser, which names the missing field.
        let seed_like = match &document {
            Value::Array(_) => true,
            Value::Object(fields) => fields.keys().any(|key| payload::is_seed_field(key)),
            _ => false,
        };
        if seed_like {
            Shape::Known {
                format: &SEED,
                document,
            }
        } else {
            Shape::Unrecognised(document)
        }
    }

    /// Whether ServiceM8 itself sends this kind unsigned, so that it may be accepted without the seed HMAC.
    pub fn is_servicem8_callback(&self) -> bool {
        matches!(self, Shape::Known { format, .. } if format.servicem8_callback)
    }

    /// The format name stored with the events: an unrecognised document is stored as an event webhook (only a
    /// Standard Webhooks sender is taken at its word for one), an unreadable body as the seed's.
    pub fn format(&self) -> &'static str {
        match self {
            Shape::Known { format, .. } => format.name,
            Shape::Unrecognised(_) => EVENT.name,
            Shape::Unreadable(_) => SEED.name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_are_named_once_in_the_order_a_body_is_tried() {
        assert_eq!(format_names(), ["addon", "seed", "object", "event"]);
    }

    fn document(body: &[u8]) -> Value {
        match read(body) {
            Body::Document(Ok(document)) => document,
            other => panic!("expected a document, got {other:?}"),
        }
    }

    #[test]
    fn the_handshake_is_recognised_as_a_form_or_as_json() {
        let expected = Body::Handshake {
            challenge: Some("abc 123".into()),
        };
        assert_eq!(read(b"mode=subscribe&challenge=abc+123"), expected);
        assert_eq!(read(b"challenge=abc%20123&mode=Subscribe\n"), expected);
        assert_eq!(read(br#"{"mode":"subscribe","challenge":"abc 123"}"#), expected);
        assert_eq!(read(b"mode=subscribe"), Body::Handshake { challenge: None });
        assert_eq!(read(b"mode=subscribe&challenge="), Body::Handshake { challenge: None });
    }

    #[test]
    fn jwt_bodies_are_recognised_raw_or_in_a_form() {
        assert_eq!(read(b"eyJh.eyJi.c2ln\n"), Body::Jwt("eyJh.eyJi.c2ln".into()));
        assert_eq!(read(b"jwt=eyJh.eyJi.c2ln"), Body::Jwt("eyJh.eyJi.c2ln".into()));
        assert_eq!(read(b"data=eyJh.eyJi.c2ln"), Body::Jwt("eyJh.eyJi.c2ln".into()));
    }

    #[test]
    fn a_form_encoded_object_callback_becomes_its_json_document() {
        let form = b"object=JobActivity&entry=%5B%7B%22uuid%22%3A%22a-1%22%7D%5D&resource_url=https%3A%2F%2Fx";
        assert_eq!(
            document(form),
            json!({"object": "JobActivity", "entry": [{"uuid": "a-1"}], "resource_url": "https://x"})
        );
        assert_eq!(document(b"object=job&entry=oops")["entry"], "oops");
    }

    #[test]
    fn a_json_document_inside_a_form_is_read() {
        let expected = json!({"object": "job", "entry": []});
        assert_eq!(
            document(b"data=%7B%22object%22%3A%22job%22%2C%22entry%22%3A%5B%5D%7D"),
            expected
        );
        assert_eq!(
            document(b"payload=%7B%22object%22%3A%22job%22%2C%22entry%22%3A%5B%5D%7D"),
            expected
        );
        assert_eq!(
            document(b"%7B%22object%22%3A%22job%22%2C%22entry%22%3A%5B%5D%7D"),
            expected
        );
        assert_eq!(
            document(b"anything=%7B%22object%22%3A%22job%22%2C%22entry%22%3A%5B%5D%7D"),
            expected
        );
    }

    #[test]
    fn bodies_that_are_neither_json_nor_a_known_form_report_the_json_error() {
        assert_eq!(read(b"  "), Body::Document(Err(PayloadError::Empty)));
        assert!(matches!(
            read(b"{not json"),
            Body::Document(Err(PayloadError::NotJson(_)))
        ));
        assert!(matches!(
            read(b"hello=world&x=y"),
            Body::Document(Err(PayloadError::NotJson(_)))
        ));
    }

    #[test]
    fn documents_are_classified_by_their_fields() {
        let shape = |value: Value| Shape::of(Ok(value), None);
        let known = |format: &'static DocumentFormat, document: Value| Shape::Known { format, document };
        let seed = json!({"object_type": "Job", "event_type": "updated", "event": "job.created"});
        assert_eq!(shape(seed.clone()), known(&SEED, seed));
        let callback = json!({"object": "job", "entry": [], "event": "job.created"});
        assert_eq!(shape(callback.clone()), known(&OBJECT, callback));
        let event = json!({"event": "job.created", "object_type": "job", "timestamp": "x"});
        assert_eq!(shape(event.clone()), known(&EVENT, event));
        let partial_seed = json!({"object_uuid": "u"});
        assert_eq!(shape(partial_seed.clone()), known(&SEED, partial_seed));
        assert_eq!(shape(json!([1])), known(&SEED, json!([1])));
        assert_eq!(shape(json!({"hello": 1})), Shape::Unrecognised(json!({"hello": 1})));
        assert_eq!(
            Shape::of(Err(PayloadError::Empty), None),
            Shape::Unreadable(PayloadError::Empty)
        );
    }

    #[test]
    fn the_event_header_names_an_event_whose_body_does_not() {
        let body = json!({"uuid": "job-1"});
        let shape = Shape::of(Ok(body.clone()), Some("job.checked_in"));
        assert_eq!(
            shape,
            Shape::Known {
                format: &EVENT,
                document: body.clone()
            }
        );
        let events = (EVENT.parse)(body, Some("job.checked_in"), 0).unwrap();
        assert_eq!(events[0].event_type, "checked_in");
    }
}
