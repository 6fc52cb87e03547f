//! The `delivery_decoder` target: `decode` over any headers, query and body, under fixed secrets. A fuzzer cannot
//! forge a signature, so the input may name a mode in which the harness signs the body itself, as a sender holding
//! the secret would, and the parsers past authentication are reached too.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

use super::{sign_jwt, Message};
use crate::ingest::decode::{decode_at, Decoded, Delivery};
use crate::ingest::formats;
use crate::ingest::payload::MAX_EVENTS_PER_DELIVERY;
use crate::ingest::signature::{self, Verification};
use crate::ingest::{standard, DeliverySecrets, SIGNATURE_HEADER};
use crate::secret::Secret;

const NOW_MILLIS: i64 = 1_700_000_000_000;
const WEBHOOK_SECRET: &str = "fuzz-hmac-secret";
const URL_TOKEN: &str = "fuzz-url-token";
const APP_SECRET: &str = "fuzz-app-secret";
const STANDARD_SECRET: &str = "whsec_ZnV6eiBzdGFuZGFyZCBzZWNyZXQ=";
const JWT_HEADER: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;

/// Who signs the fuzzed delivery, named by the input's `mode` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every secret is configured and the delivery is sent as the input wrote it (the default).
    AsWritten,
    /// The harness signs the body with `x-servicem8-signature`.
    Hmac,
    /// The harness signs the body with Standard Webhooks headers.
    Standard,
    /// Only the URL token is configured for documents, and the harness puts it in the query.
    UrlToken,
    /// No secret is configured.
    Unsigned,
    /// The body is taken as a JWT's claims, which the harness signs with the App Secret.
    AddonJwt,
}

impl Mode {
    fn named(name: Option<&[u8]>) -> Mode {
        match name {
            Some(b"hmac") => Mode::Hmac,
            Some(b"standard") => Mode::Standard,
            Some(b"url-token") => Mode::UrlToken,
            Some(b"unsigned") => Mode::Unsigned,
            Some(b"addon-jwt") => Mode::AddonJwt,
            _ => Mode::AsWritten,
        }
    }

    fn secrets(self) -> DeliverySecrets {
        let every = DeliverySecrets {
            webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
            webhook_url_token: Some(Secret::new(URL_TOKEN)),
            servicem8_app_secret: Some(Secret::new(APP_SECRET)),
            standard_webhook_secrets: vec![Secret::new(STANDARD_SECRET)],
        };
        match self {
            Mode::AsWritten | Mode::Standard | Mode::AddonJwt => every,
            Mode::Hmac => DeliverySecrets {
                webhook_url_token: None,
                ..every
            },
            Mode::UrlToken => DeliverySecrets {
                webhook_secret: None,
                ..every
            },
            Mode::Unsigned => DeliverySecrets::default(),
        }
    }

    /// How a delivery accepted in this mode must have been verified, when the mode decides it.
    fn verification(self) -> Option<Verification> {
        match self {
            Mode::AsWritten => None,
            Mode::Hmac => Some(Verification::HmacSha256),
            Mode::Standard => Some(Verification::StandardWebhooks),
            Mode::UrlToken => Some(Verification::UrlToken),
            Mode::Unsigned => Some(Verification::Unsigned),
            Mode::AddonJwt => Some(Verification::AddonJwt),
        }
    }
}

/// Decodes one fuzzed delivery: it must never panic, and what it accepts must hold together.
pub fn delivery_decoder(data: &[u8]) {
    let message = Message::read(data);
    let mode = Mode::named(message.field("mode"));
    let mut query = message.text("query");
    let mut headers = HeaderMap::new();
    for (name, value) in &message.fields {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    let mut body = message.body.to_vec();
    match mode {
        Mode::AsWritten | Mode::Unsigned => {}
        Mode::Hmac => {
            headers.remove(standard::SIGNATURE_HEADER);
            let signed = signature::sign(WEBHOOK_SECRET.as_bytes(), &body);
            headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signed).expect("hex"));
        }
        Mode::Standard => {
            let id = standard::message_id(&headers).unwrap_or_else(|| "msg_fuzz".into());
            let sent_at = NOW_MILLIS / 1000;
            let signed = standard::sign(STANDARD_SECRET, &id, sent_at, &body);
            headers.insert(standard::TIMESTAMP_HEADER, HeaderValue::from(sent_at));
            headers.insert(
                standard::SIGNATURE_HEADER,
                HeaderValue::from_str(&signed).expect("base64"),
            );
            if !headers.contains_key(standard::ID_HEADER) {
                headers.insert(standard::ID_HEADER, HeaderValue::from_str(&id).expect("ascii"));
            }
        }
        Mode::UrlToken => {
            headers.remove(SIGNATURE_HEADER);
            headers.remove(standard::SIGNATURE_HEADER);
            // The first `token` field is the one read.
            query = Some(format!("token={URL_TOKEN}&{}", query.unwrap_or_default()));
        }
        Mode::AddonJwt => body = sign_jwt(APP_SECRET.as_bytes(), JWT_HEADER, &body).into_bytes(),
    }
    let secrets = mode.secrets();
    match decode_at(&secrets, &headers, query.as_deref(), &body, NOW_MILLIS) {
        Ok(Decoded::Handshake { challenge }) => assert!(!challenge.is_empty(), "a handshake without a challenge"),
        Ok(Decoded::Delivery(delivery)) => check_delivery(mode, &delivery),
        Err(error) => assert!(!error.to_string().is_empty(), "a refusal without a reason"),
    }
}

/// What every accepted delivery promises the store.
fn check_delivery(mode: Mode, delivery: &Delivery) {
    let verification = &delivery.verification;
    assert!(
        !matches!(verification, Verification::Rejected(_) | Verification::AdminSession),
        "accepted as {verification:?}"
    );
    // With a URL token configured nothing is taken unsigned.
    if mode.secrets().webhook_url_token.is_some() {
        assert_ne!(*verification, Verification::Unsigned);
    }
    if let Some(expected) = mode.verification() {
        // The harness signs one way only (an add-on JWT cannot be forged, so no other check can pass).
        assert_eq!(*verification, expected, "in mode {mode:?}");
    }
    assert!(
        formats::format_names().contains(&delivery.format),
        "unknown format {}",
        delivery.format
    );
    if delivery.delivery_id.is_some() {
        assert_eq!(
            *verification,
            Verification::StandardWebhooks,
            "only Standard Webhooks name a delivery"
        );
    }
    assert!(!delivery.events.is_empty(), "a delivery without events");
    assert!(delivery.events.len() <= MAX_EVENTS_PER_DELIVERY);
    for parsed in &delivery.events {
        assert!(!parsed.object_type.is_empty(), "no object type in {parsed:?}");
        assert!(!parsed.object_uuid.is_empty(), "no object uuid in {parsed:?}");
        assert!(!parsed.event_type.is_empty(), "no event type in {parsed:?}");
        assert!(parsed.occurred_at.is_some(), "undated: {parsed:?}");
        assert!(parsed.changes.is_object(), "changes are not an object: {parsed:?}");
        assert_eq!(parsed.dedup_key(delivery.format).len(), 64);
    }
}
