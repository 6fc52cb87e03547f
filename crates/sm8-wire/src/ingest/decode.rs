//! Recognises the format of a delivery, authenticates it and extracts its events.
//!
//! The body is read in a fixed order so that none can be taken two ways: the subscribe handshake, then a JWT
//! (an add-on callback, which authenticates itself), then a JSON document or form whose shape names its format.
//! A document is authenticated by the first rule that applies: a Standard Webhooks signature header; the seed
//! HMAC, checked whenever its header is present and required for anything but a ServiceM8 callback when
//! `WEBHOOK_SECRET` is set; the URL token when `WEBHOOK_URL_TOKEN` is set; else it is accepted unsigned and the
//! processor validates it by fetching the object. A signature that is present and wrong is refused with 401 and
//! never falls back to a weaker check.

use http::{HeaderMap, HeaderValue};

use super::formats::{self, addon, event, Body, Shape};
use super::payload::{ParsedEvent, PayloadError};
use super::signature::{self, Rejection, Verification};
use super::{form, standard, DeliverySecrets, SIGNATURE_HEADER};
use crate::secret::Secret;

/// What a delivery turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// ServiceM8 checking the callback URL: answer the challenge, store nothing.
    Handshake {
        challenge: String,
    },
    Delivery(Delivery),
}

/// An authenticated delivery and its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Stored with each event: `seed`, `object` (ServiceM8 object callback), `addon` or `event`.
    pub format: &'static str,
    pub verification: Verification,
    /// An id the sender gives the delivery (used for deduplication when present).
    pub delivery_id: Option<String>,
    pub events: Vec<ParsedEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// 401: the delivery is not authentic. Never falls back to a weaker check.
    #[error("{0}")]
    Unauthorized(String),
    /// 400: the delivery cannot be understood.
    #[error("{0}")]
    BadRequest(String),
}

impl From<Rejection> for IngestError {
    fn from(rejection: Rejection) -> Self {
        IngestError::Unauthorized(rejection.to_string())
    }
}

impl From<PayloadError> for IngestError {
    fn from(error: PayloadError) -> Self {
        IngestError::BadRequest(error.to_string())
    }
}

/// Decodes one delivery. `query` is the request's raw query string.
pub fn decode(
    secrets: &DeliverySecrets,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Decoded, IngestError> {
    decode_at(secrets, headers, query, body, now_millis())
}

/// `decode` for a delivery received at `now` (unix milliseconds): what the tests and the fuzzer call, so that a
/// Standard Webhooks timestamp means the same on every run.
pub fn decode_at(
    secrets: &DeliverySecrets,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<Decoded, IngestError> {
    let query = form::parse(query.unwrap_or_default().as_bytes());
    let url_token = form::field(&query, "token");
    match formats::read(body) {
        Body::Handshake { challenge } => {
            accept(signature::check_url_token(
                configured(&secrets.webhook_url_token),
                url_token,
            ))?;
            let challenge =
                challenge.ok_or_else(|| IngestError::BadRequest("subscribe handshake without a challenge".into()))?;
            Ok(Decoded::Handshake { challenge })
        }
        Body::Jwt(token) => {
            let claims = addon::verify(configured(&secrets.servicem8_app_secret), &token).map_err(Rejection::from)?;
            Ok(Decoded::Delivery(Delivery {
                format: formats::ADDON,
                verification: Verification::AddonJwt,
                delivery_id: None,
                events: addon::events(claims, now)?,
            }))
        }
        Body::Document(document) => {
            let event_header = headers.get(event::EVENT_HEADER).and_then(|value| value.to_str().ok());
            let shape = Shape::of(document, event_header);
            // A body that is not JSON at all is answered as what it is, whoever sent it: there is nothing in it
            // to authenticate, and a sender with a valid URL token deserves to learn that, not to be told it
            // lacks a signature.
            if let Shape::Unreadable(error) = shape {
                return Err(error.into());
            }
            let verification = accept(authenticate(secrets, headers, url_token, body, &shape, now))?;
            decode_document(headers, shape, verification, now).map(Decoded::Delivery)
        }
    }
}

/// How a document delivery is authenticated; see the module documentation for the order of the rules.
fn authenticate(
    secrets: &DeliverySecrets,
    headers: &HeaderMap,
    url_token: Option<&str>,
    body: &[u8],
    shape: &Shape,
    now: i64,
) -> Verification {
    if standard::is_signed(headers) {
        return standard::verify(&secrets.standard_webhook_secrets, headers, body, now.div_euclid(1000));
    }
    let hmac_header = headers.get(SIGNATURE_HEADER).map(HeaderValue::as_bytes);
    match configured(&secrets.webhook_secret) {
        // The seed format is ours, so with a secret set it must be signed, as it always had to be; ServiceM8's own
        // callbacks come unsigned and are protected by the URL token and by fetching.
        Some(secret) if hmac_header.is_some() || !shape.is_servicem8_callback() => {
            signature::verify(Some(secret.as_bytes()), body, hmac_header)
        }
        _ => signature::check_url_token(configured(&secrets.webhook_url_token), url_token),
    }
}

/// The events of an authenticated document.
fn decode_document(
    headers: &HeaderMap,
    shape: Shape,
    verification: Verification,
    now: i64,
) -> Result<Delivery, IngestError> {
    let format = shape.format();
    let event_header = headers.get(event::EVENT_HEADER).and_then(|value| value.to_str().ok());
    let events = match shape {
        Shape::Known { format, document } => (format.parse)(document, event_header, now)?,
        // An authenticated sender is taken at its word for a shape nothing here knows: ServiceM8 documents no
        // body for its event webhooks, so such a delivery is kept raw, named by its event field when it has one,
        // for rules to route. Unsigned, a body of no known shape says nothing worth keeping.
        Shape::Unrecognised(document) if verification.is_authenticated() => {
            vec![event::parse_unrecognised(document, now)]
        }
        Shape::Unrecognised(_) => return Err(PayloadError::Unrecognised.into()),
        Shape::Unreadable(error) => return Err(error.into()),
    };
    let delivery_id = match verification {
        Verification::StandardWebhooks => standard::message_id(headers),
        _ => None,
    };
    Ok(Delivery {
        format,
        verification,
        delivery_id,
        events,
    })
}

/// Turns a rejected verification into the 401 it stands for.
fn accept(verification: Verification) -> Result<Verification, IngestError> {
    match verification {
        Verification::Rejected(rejection) => Err(rejection.into()),
        accepted => Ok(accepted),
    }
}

/// The current time in unix milliseconds, as the server stamps what it receives.
fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A secret's value, treating an empty value as not configured.
pub fn configured(secret: &Option<Secret>) -> Option<&str> {
    secret.as_ref().map(Secret::expose).filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::{json, Value};

    const WEBHOOK_SECRET: &str = "hmac-secret";
    const URL_TOKEN: &str = "url-token-value";
    const APP_SECRET: &str = "add-on-secret";
    const STANDARD_SECRET: &str = "whsec_c3RhbmRhcmQgd2ViaG9va3Mgc2VjcmV0";
    const NOW: i64 = 1_700_000_000_000;
    const SEED: &str =
        r#"{"object_type":"Job","object_uuid":"job-1","event_type":"updated","timestamp":"2024-01-01T00:00:00Z"}"#;
    const CALLBACK: &str = r#"{"object":"Job","entry":[{"uuid":"job-1","changed_fields":["status"],"time":"2024-01-01 00:00:00"}],"resource_url":"https://api.servicem8.com/api_1.0/Job/job-1.json"}"#;
    const EVENT: &str = r#"{"event":"job.status_changed","data":{"uuid":"job-1"}}"#;

    fn secrets() -> DeliverySecrets {
        DeliverySecrets {
            webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
            servicem8_app_secret: Some(Secret::new(APP_SECRET)),
            standard_webhook_secrets: vec![Secret::new(STANDARD_SECRET)],
            ..DeliverySecrets::default()
        }
    }

    fn with_token() -> DeliverySecrets {
        DeliverySecrets {
            webhook_url_token: Some(Secret::new(URL_TOKEN)),
            ..secrets()
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn hmac(body: &str) -> HeaderMap {
        headers(&[(
            SIGNATURE_HEADER,
            &signature::sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes()),
        )])
    }

    fn standard_signed(id: &str, body: &str) -> HeaderMap {
        let sent_at = NOW / 1000;
        let signature = standard::sign(STANDARD_SECRET, id, sent_at, body.as_bytes());
        headers(&[
            (standard::ID_HEADER, id),
            (standard::TIMESTAMP_HEADER, &sent_at.to_string()),
            (standard::SIGNATURE_HEADER, &signature),
        ])
    }

    fn run(
        secrets: &DeliverySecrets,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &str,
    ) -> Result<Decoded, IngestError> {
        decode_at(secrets, headers, query, body.as_bytes(), NOW)
    }

    fn accepted(secrets: &DeliverySecrets, headers: &HeaderMap, query: Option<&str>, body: &str) -> Delivery {
        match run(secrets, headers, query, body) {
            Ok(Decoded::Delivery(delivery)) => delivery,
            other => panic!("expected a delivery, got {other:?}"),
        }
    }

    fn refusal(secrets: &DeliverySecrets, headers: &HeaderMap, query: Option<&str>, body: &str) -> String {
        match run(secrets, headers, query, body) {
            Err(IngestError::Unauthorized(reason)) => reason,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    fn jwt(secret: &str, claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn addon_claims() -> Value {
        json!({"eventVersion": "1.0", "eventName": "webhook_subscription",
               "auth": {"accountUUID": "a", "staffUUID": "s", "accessToken": "t", "accessTokenExpiry": 1},
               "eventArgs": serde_json::from_str::<Value>(CALLBACK).unwrap()})
    }

    #[test]
    fn a_signed_seed_delivery_is_verified_by_hmac() {
        let delivery = accepted(&secrets(), &hmac(SEED), None, SEED);
        assert_eq!(
            (delivery.format, delivery.verification.as_str()),
            ("seed", "hmac-sha256")
        );
        assert_eq!(delivery.delivery_id, None);
        assert_eq!(delivery.events[0].object_uuid, "job-1");
    }

    #[test]
    fn the_seed_format_still_needs_its_signature_when_a_secret_is_set() {
        assert!(refusal(&secrets(), &HeaderMap::new(), None, SEED).contains("signature"));
        // Not even the URL token stands in for it.
        assert!(refusal(
            &with_token(),
            &HeaderMap::new(),
            Some(&format!("token={URL_TOKEN}")),
            SEED
        )
        .contains("signature"));
    }

    #[test]
    fn without_any_secret_a_seed_delivery_is_unsigned_or_needs_the_url_token() {
        let open = DeliverySecrets::default();
        assert_eq!(
            accepted(&open, &HeaderMap::new(), None, SEED).verification,
            Verification::Unsigned
        );
        let token_only = DeliverySecrets {
            webhook_url_token: Some(Secret::new(URL_TOKEN)),
            ..DeliverySecrets::default()
        };
        assert!(refusal(&token_only, &HeaderMap::new(), None, SEED).contains("token"));
        let query = format!("token={URL_TOKEN}");
        assert_eq!(
            accepted(&token_only, &HeaderMap::new(), Some(&query), SEED).verification,
            Verification::UrlToken
        );
    }

    #[test]
    fn an_unsigned_object_callback_is_accepted_and_left_to_the_processor_to_validate() {
        let delivery = accepted(&secrets(), &HeaderMap::new(), None, CALLBACK);
        assert_eq!(
            (delivery.format, delivery.verification.as_str()),
            ("object", "unsigned")
        );
        assert_eq!(delivery.events[0].changes, json!({"status": null}));
    }

    #[test]
    fn a_configured_url_token_is_required_of_unsigned_callbacks() {
        assert!(refusal(&with_token(), &HeaderMap::new(), None, CALLBACK).contains("token"));
        assert!(refusal(&with_token(), &HeaderMap::new(), Some("token=wrong"), CALLBACK).contains("token"));
        assert!(refusal(&with_token(), &HeaderMap::new(), Some("token="), EVENT).contains("token"));
        let query = format!("a=1&token={URL_TOKEN}");
        let delivery = accepted(&with_token(), &HeaderMap::new(), Some(&query), CALLBACK);
        assert_eq!(
            (delivery.format, delivery.verification.as_str()),
            ("object", "url-token")
        );
    }

    #[test]
    fn a_wrong_hmac_on_a_callback_is_refused_even_with_the_url_token() {
        let query = format!("token={URL_TOKEN}");
        let wrong = headers(&[(SIGNATURE_HEADER, &signature::sign(b"other", CALLBACK.as_bytes()))]);
        assert!(refusal(&with_token(), &wrong, Some(&query), CALLBACK).contains("signature"));
        assert_eq!(
            accepted(&with_token(), &hmac(CALLBACK), None, CALLBACK)
                .verification
                .as_str(),
            "hmac-sha256"
        );
    }

    #[test]
    fn a_form_encoded_callback_decodes_like_the_json_one() {
        let form = "object=JOB&entry=%5B%7B%22uuid%22%3A%22job-1%22%2C%22changed_fields%22%3A%5B%22status%22%5D%2C\
                    %22time%22%3A%222024-01-01+00%3A00%3A00%22%7D%5D";
        let from_form = accepted(&secrets(), &HeaderMap::new(), None, form);
        let from_json = accepted(&secrets(), &HeaderMap::new(), None, CALLBACK);
        assert_eq!(from_form.format, "object");
        assert_eq!(from_form.events, from_json.events);
    }

    #[test]
    fn the_handshake_is_answered_and_guarded_by_the_url_token() {
        let body = "mode=subscribe&challenge=c-123";
        let answer = Ok(Decoded::Handshake {
            challenge: "c-123".into(),
        });
        assert_eq!(run(&secrets(), &HeaderMap::new(), None, body), answer);
        assert!(refusal(&with_token(), &HeaderMap::new(), None, body).contains("token"));
        assert_eq!(
            run(
                &with_token(),
                &HeaderMap::new(),
                Some(&format!("token={URL_TOKEN}")),
                body
            ),
            answer
        );
        assert!(matches!(
            run(&secrets(), &HeaderMap::new(), None, "mode=subscribe"),
            Err(IngestError::BadRequest(_))
        ));
    }

    #[test]
    fn an_addon_callback_is_verified_with_the_app_secret() {
        let token = jwt(APP_SECRET, &addon_claims());
        let delivery = accepted(&secrets(), &HeaderMap::new(), None, &token);
        assert_eq!(
            (delivery.format, delivery.verification.as_str()),
            ("addon", "addon-jwt")
        );
        assert_eq!(delivery.events[0].object_uuid, "job-1");
        assert_eq!(
            accepted(&secrets(), &HeaderMap::new(), None, &format!("jwt={token}")).format,
            "addon"
        );

        assert!(refusal(&secrets(), &HeaderMap::new(), None, &jwt("wrong", &addon_claims())).contains("JWT"));
        let no_app_secret = DeliverySecrets {
            servicem8_app_secret: None,
            ..secrets()
        };
        assert_eq!(
            refusal(&no_app_secret, &HeaderMap::new(), None, &token),
            "add-on callbacks need SERVICEM8_APP_SECRET"
        );
    }

    #[test]
    fn an_event_webhook_maps_to_its_object_and_action() {
        let delivery = accepted(&secrets(), &hmac(EVENT), None, EVENT);
        assert_eq!(
            (delivery.format, delivery.verification.as_str()),
            ("event", "hmac-sha256")
        );
        let event = &delivery.events[0];
        assert_eq!(
            (
                event.object_type.as_str(),
                event.object_uuid.as_str(),
                event.event_type.as_str()
            ),
            ("job", "job-1", "status_changed")
        );
        let by_header = headers(&[(event::EVENT_HEADER, "company.created")]);
        let delivery = accepted(&secrets(), &by_header, None, r#"{"company_uuid":"co-1"}"#);
        assert_eq!(
            (
                delivery.events[0].object_type.as_str(),
                delivery.events[0].object_uuid.as_str()
            ),
            ("company", "co-1")
        );
    }

    #[test]
    fn a_standard_webhooks_delivery_keeps_its_body_format_and_id() {
        let delivery = accepted(&secrets(), &standard_signed("msg_1", CALLBACK), None, CALLBACK);
        assert_eq!(
            (delivery.format, delivery.verification.as_str()),
            ("object", "standard-webhooks")
        );
        assert_eq!(delivery.delivery_id.as_deref(), Some("msg_1"));
        let event = accepted(&secrets(), &standard_signed("msg_2", EVENT), None, EVENT);
        assert_eq!((event.format, event.delivery_id.as_deref()), ("event", Some("msg_2")));
    }

    #[test]
    fn a_standard_webhooks_delivery_of_unknown_shape_is_kept() {
        let body = r#"{"type":"something.new","data":{"id":7}}"#;
        let delivery = accepted(&secrets(), &standard_signed("msg_1", body), None, body);
        assert_eq!(
            (delivery.format, delivery.verification.as_str()),
            ("event", "standard-webhooks")
        );
        assert_eq!(delivery.events[0].object_type, "unknown");
        assert_eq!(delivery.events[0].changes, serde_json::from_str::<Value>(body).unwrap());
    }

    #[test]
    fn a_bad_standard_signature_never_falls_back_to_the_hmac() {
        let mut signed = standard_signed("msg_1", SEED);
        signed.insert(standard::SIGNATURE_HEADER, HeaderValue::from_static("v1,"));
        signed.extend(hmac(SEED));
        assert!(refusal(&secrets(), &signed, None, SEED).contains("Standard Webhooks"));
        let unconfigured = DeliverySecrets {
            standard_webhook_secrets: Vec::new(),
            ..secrets()
        };
        assert!(
            refusal(&unconfigured, &standard_signed("msg_1", SEED), None, SEED).contains("STANDARD_WEBHOOK_SECRETS")
        );
    }

    #[test]
    fn an_unknown_shape_under_the_seed_hmac_or_the_url_token_is_kept_as_an_event_named_by_its_field() {
        let body = r#"{"eventName":"Invoice.Paid","payload":{"x":1}}"#;
        let signed = accepted(&secrets(), &hmac(body), None, body);
        assert_eq!((signed.format, signed.verification.as_str()), ("event", "hmac-sha256"));
        assert_eq!(signed.events[0].event_type, "invoice.paid");
        assert_eq!(signed.events[0].object_type, "unknown");
        assert_eq!(signed.events[0].changes, serde_json::from_str::<Value>(body).unwrap());

        let token_only = DeliverySecrets {
            webhook_secret: None,
            webhook_url_token: Some(Secret::new("url-token")),
            ..secrets()
        };
        let by_token = accepted(&token_only, &HeaderMap::new(), Some("token=url-token"), body);
        assert_eq!(by_token.verification, Verification::UrlToken);
        // Unsigned, the same body is refused before anything is said about its shape.
        assert!(refusal(&secrets(), &HeaderMap::new(), None, body).contains("signature"));
    }

    #[test]
    fn an_unknown_shape_with_nothing_to_authenticate_it_is_a_bad_request_naming_the_formats() {
        let body = r#"{"hello":"world"}"#;
        let nothing = DeliverySecrets::default();
        match run(&nothing, &HeaderMap::new(), None, body) {
            Err(IngestError::BadRequest(reason)) => {
                assert!(
                    reason.contains("seed") && reason.contains("object callback") && reason.contains("event webhook"),
                    "{reason}"
                )
            }
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn malformed_callbacks_are_bad_requests() {
        for body in [
            r#"{"object":"job","entry":[]}"#,
            r#"{"object":"job","entry":[{"time":"2024-01-01 00:00:00"}]}"#,
        ] {
            assert!(
                matches!(
                    run(&secrets(), &HeaderMap::new(), None, body),
                    Err(IngestError::BadRequest(_))
                ),
                "{body}"
            );
        }
    }
}
