//! The bodies of the fuzz targets in `fuzz/`: each reads the fuzzer's bytes, runs one decoder and asserts what
//! must hold whatever the input (a panic is a finding). They live here rather than in `fuzz/` so that
//! `tests/fuzz_regressions.rs` replays the saved inputs through exactly what the fuzzer ran, on stable Rust.
//!
//! Most targets read their input as a small message, which keeps the seed corpus readable: a head of
//! `name: value` lines, a blank line, then the body. An input without a blank line is all body.

mod delivery;
mod frames;
mod signatures;

pub use delivery::delivery_decoder;
pub use frames::realtime_frames;
pub use signatures::signature_checks;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ingest::form;

/// A fuzz target's body: takes the fuzzer's bytes and panics on a finding.
pub type Harness = fn(&[u8]);

/// Every fuzz target, by its name in `fuzz/`, with the function it runs.
pub const TARGETS: [(&str, Harness); 4] = [
    ("delivery_decoder", delivery_decoder),
    ("signature_checks", signature_checks),
    ("form_parser", form_parser),
    ("realtime_frames", realtime_frames),
];

/// The form parser: every input decodes to fields that a standard encoder writes back to the same fields.
pub fn form_parser(data: &[u8]) {
    let fields = form::parse(data);
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    assert_eq!(form::parse(encoded.as_bytes()), fields, "re-encoded as {encoded:?}");
}

/// A fuzz input as a head of `name: value` fields and a body.
struct Message<'a> {
    fields: Vec<(&'a [u8], &'a [u8])>,
    body: &'a [u8],
}

impl<'a> Message<'a> {
    fn read(data: &'a [u8]) -> Message<'a> {
        let Some(blank) = data.windows(2).position(|pair| pair == b"\n\n") else {
            return Message {
                fields: Vec::new(),
                body: data,
            };
        };
        let fields = data[..blank]
            .split(|&byte| byte == b'\n')
            .filter_map(|line| {
                let colon = line.iter().position(|&byte| byte == b':')?;
                let value = &line[colon + 1..];
                Some((&line[..colon], value.strip_prefix(b" ").unwrap_or(value)))
            })
            .collect();
        Message {
            fields,
            body: &data[blank + 2..],
        }
    }

    /// The value of the first field called `name`.
    fn field(&self, name: &str) -> Option<&'a [u8]> {
        self.fields
            .iter()
            .find(|(field, _)| *field == name.as_bytes())
            .map(|(_, value)| *value)
    }

    /// The value of the first field called `name`, as text (invalid UTF-8 becomes U+FFFD).
    fn text(&self, name: &str) -> Option<String> {
        self.field(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }
}

/// A compact HS256 JWT of `header` and `claims` (any bytes) signed with `secret`, as a sender that holds the
/// secret makes one.
fn sign_jwt(secret: &[u8], header: &[u8], claims: &[u8]) -> String {
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_its_fields_then_a_blank_line_then_its_body() {
        let message = Message::read(b"mode: hmac\nquery:token=a\nnot a field\n\n{\"a\":1}\n\nmore");
        assert_eq!(message.field("mode"), Some(&b"hmac"[..]));
        assert_eq!(message.text("query").as_deref(), Some("token=a"));
        assert_eq!(message.fields.len(), 2);
        assert_eq!(message.body, b"{\"a\":1}\n\nmore");
        let bare = Message::read(b"mode: hmac\n{}");
        assert!(bare.fields.is_empty());
        assert_eq!(bare.body, b"mode: hmac\n{}");
    }
}
