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
use super::payload::{self, PayloadError};

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

/// The kind of delivery a JSON document is.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Seed(Value),
    ObjectCallback(Value),
    Event {
        name: &'static str,
        body: Value,
    },
    Unrecognised(Value),
    /// The body is not a JSON document.
    Unreadable(PayloadError),
}

impl Shape {
    /// Classifies a document; `event_header` is the `x-servicem8-event` header, if any.
    pub fn of(document: Result<Value, PayloadError>, event_header: Option<&str>) -> Shape {
        let document = match document {
            Ok(document) => document,
            Err(error) => return Shape::Unreadable(error),
        };
        if let Some(fields) = document.as_object() {
            if fields.contains_key("object_type") && fields.contains_key("event_type") {
                return Shape::Seed(document);
            }
            if servicem8::is_object_callback(fields) {
                return Shape::ObjectCallback(document);
            }
        }
        if let Some(name) = event::name_in(&document, event_header) {
            return Shape::Event { name, body: document };
        }
        // Partial seed documents go to the seed parser, which names the missing field.
        let seed_like = match &document {
            Value::Array(_) => true,
            Value::Object(fields) => fields.keys().any(|key| payload::is_seed_field(key)),
            _ => false,
        };
        if seed_like {
            Shape::Seed(document)
        } else {
            Shape::Unrecognised(document)
        }
    }

    /// Whether ServiceM8 itself sends this kind unsigned, so that it may be accepted without the seed HMAC.
    pub fn is_servicem8_callback(&self) -> bool {
        matches!(self, Shape::ObjectCallback(_) | Shape::Event { .. })
    }

    /// The format name stored with the events.
    pub fn format(&self) -> &'static str {
        match self {
            Shape::Seed(_) | Shape::Unreadable(_) => "seed",
            Shape::ObjectCallback(_) => "object",
            Shape::Event { .. } | Shape::Unrecognised(_) => "event",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let seed = json!({"object_type": "Job", "event_type": "updated", "event": "job.created"});
        assert_eq!(shape(seed.clone()), Shape::Seed(seed));
        let callback = json!({"object": "job", "entry": [], "event": "job.created"});
        assert_eq!(shape(callback.clone()), Shape::ObjectCallback(callback));
        let event = json!({"event": "job.created", "object_type": "job", "timestamp": "x"});
        assert_eq!(
            shape(event.clone()),
            Shape::Event {
                name: "job.created",
                body: event
            }
        );
        let partial_seed = json!({"object_uuid": "u"});
        assert_eq!(shape(partial_seed.clone()), Shape::Seed(partial_seed));
        assert_eq!(shape(json!([1])), Shape::Seed(json!([1])));
        assert_eq!(shape(json!({"hello": 1})), Shape::Unrecognised(json!({"hello": 1})));
        assert_eq!(
            Shape::of(Err(PayloadError::Empty), None),
            Shape::Unreadable(PayloadError::Empty)
        );
    }

    #[test]
    fn the_event_header_names_an_event_whose_body_does_not() {
        let body = json!({"uuid": "job-1"});
        assert_eq!(
            Shape::of(Ok(body.clone()), Some("job.checked_in")),
            Shape::Event {
                name: "job.checked_in",
                body
            }
        );
    }
}
