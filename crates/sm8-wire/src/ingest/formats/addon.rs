//! ServiceM8 add-on callbacks: the body is a compact JWT, HS256-signed with the add-on's App Secret, whose
//! payload is `{eventVersion, eventName, auth: {accountUUID, staffUUID, accessToken, accessTokenExpiry},
//! eventArgs}`; `eventArgs` has the shape of an object callback.
//!
//! `auth` carries a live access token: it stays inside the stored raw body, is never logged, and only
//! `eventArgs` reaches the events (whose `changes` are shown in the dashboard and sent to browsers).

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{event, servicem8};
use crate::ingest::payload::{ParsedEvent, PayloadError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("add-on callbacks need SERVICEM8_APP_SECRET")]
    NotConfigured,
    #[error("invalid add-on JWT: {0}")]
    Invalid(String),
}

/// Whether `text` has the form of a compact JWT: three base64url segments, the last (the signature) possibly
/// empty, so that an unsigned `alg: none` token is recognised, and refused, as one.
pub fn looks_like_jwt(text: &str) -> bool {
    let segments: Vec<&str> = text.split('.').collect();
    let is_base64url = |segment: &str| {
        segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    segments.len() == 3
        && !segments[0].is_empty()
        && !segments[1].is_empty()
        && segments.iter().all(|s| is_base64url(s))
}

/// Verifies an add-on callback's JWT under the App Secret and returns its payload.
pub fn verify(app_secret: Option<&str>, token: &str) -> Result<Value, JwtError> {
    let app_secret = app_secret.ok_or(JwtError::NotConfigured)?;
    // Only HS256 is accepted: `none` and every other algorithm named in the header fail.
    let mut validation = Validation::new(Algorithm::HS256);
    // ServiceM8 documents no expiry, audience or issuer for these tokens; an `exp` that is present still counts.
    validation.required_spec_claims.clear();
    validation.validate_aud = false;
    // Nor a `nbf`: one that is present counts.
    validation.validate_nbf = true;
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(app_secret.as_bytes()), &validation)
        .map(|data| data.claims)
        .map_err(|error| JwtError::Invalid(error.to_string()))
}

/// The ServiceM8 account a callback says it is for (`auth.accountUUID`), read before it is verified: it only
/// chooses whose App Secret verifies it, so a forged claim finds no secret that accepts it.
pub fn claimed_account_uuid(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("auth")?
        .get("accountUUID")?
        .as_str()
        .filter(|uuid| !uuid.is_empty())
        .map(str::to_owned)
}

/// The events of a verified callback received at `received_at` (unix milliseconds).
pub fn events(claims: Value, received_at: i64) -> Result<Vec<ParsedEvent>, PayloadError> {
    let Value::Object(mut claims) = claims else {
        return Err(PayloadError::NotAnObject);
    };
    let arguments = match claims.remove("eventArgs") {
        Some(arguments @ Value::Object(_)) => arguments,
        _ => return Err(PayloadError::MissingField("eventArgs")),
    };
    let event_name = claims
        .get("eventName")
        .and_then(Value::as_str)
        .and_then(event::known_name);
    match event_name {
        Some(name) if !arguments.as_object().is_some_and(servicem8::is_object_callback) => {
            Ok(vec![event::parse_event(name, arguments, received_at)])
        }
        // `webhook_subscription`, the documented name, and anything else carrying an object callback.
        _ => servicem8::parse_object_callback(arguments, received_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const APP_SECRET: &str = "add-on-app-secret";
    const RECEIVED_AT: i64 = 1_800_000_000_000;

    fn claims() -> Value {
        json!({
            "eventVersion": "1.0",
            "eventName": "webhook_subscription",
            "auth": {"accountUUID": "acc-1", "staffUUID": "staff-1", "accessToken": "live-token",
                     "accessTokenExpiry": 1_900_000_000},
            "eventArgs": {"object": "Job", "entry": [{"uuid": "job-1", "changed_fields": ["status"],
                          "time": "2024-01-01 00:00:00"}], "resource_url": "https://api.servicem8.com/api_1.0/Job/job-1.json"}
        })
    }

    fn token(algorithm: Algorithm, secret: &str, claims: &Value) -> String {
        encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn the_claimed_account_is_read_without_verifying_and_only_when_there() {
        let signed = token(Algorithm::HS256, "any secret", &claims());
        assert_eq!(claimed_account_uuid(&signed), Some("acc-1".into()));
        let without = token(Algorithm::HS256, "any secret", &json!({"eventArgs": {}}));
        assert_eq!(claimed_account_uuid(&without), None);
        assert_eq!(claimed_account_uuid("not.a.jwt"), None);
        assert_eq!(claimed_account_uuid("garbage"), None);
    }

    #[test]
    fn a_token_signed_with_the_app_secret_yields_the_entries_as_events() {
        let claims = verify(Some(APP_SECRET), &token(Algorithm::HS256, APP_SECRET, &claims())).unwrap();
        let events = events(claims, RECEIVED_AT).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].object_type.as_str(), events[0].object_uuid.as_str()),
            ("job", "job-1")
        );
        assert_eq!(events[0].changes, json!({"status": null}));
    }

    #[test]
    fn the_access_token_never_reaches_the_events() {
        let mut claims = claims();
        claims["eventName"] = json!("job.created");
        claims["eventArgs"] = json!({"uuid": "job-1"});
        let events = events(claims, RECEIVED_AT).unwrap();
        assert_eq!(events[0].event_type, "created");
        assert!(!events[0].changes.to_string().contains("live-token"));
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let mut claims = claims();
        claims["nbf"] = json!(4_000_000_000_i64);
        assert!(matches!(
            verify(Some(APP_SECRET), &token(Algorithm::HS256, APP_SECRET, &claims)),
            Err(JwtError::Invalid(_))
        ));
    }

    #[test]
    fn tokens_with_another_secret_or_algorithm_are_refused() {
        assert!(matches!(
            verify(Some(APP_SECRET), &token(Algorithm::HS256, "other", &claims())),
            Err(JwtError::Invalid(_))
        ));
        assert!(matches!(
            verify(Some(APP_SECRET), &token(Algorithm::HS512, APP_SECRET, &claims())),
            Err(JwtError::Invalid(_))
        ));
    }

    #[test]
    fn an_unsigned_none_token_is_recognised_and_refused() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        assert!(looks_like_jwt(&unsigned));
        assert!(matches!(verify(Some(APP_SECRET), &unsigned), Err(JwtError::Invalid(_))));
    }

    #[test]
    fn without_an_app_secret_every_token_is_refused() {
        let token = token(Algorithm::HS256, APP_SECRET, &claims());
        assert_eq!(verify(None, &token), Err(JwtError::NotConfigured));
    }

    #[test]
    fn an_expired_token_is_refused_but_exp_is_not_required() {
        let mut expired = claims();
        expired["exp"] = json!(1_000_000_000);
        assert!(verify(Some(APP_SECRET), &token(Algorithm::HS256, APP_SECRET, &expired)).is_err());
        assert!(verify(Some(APP_SECRET), &token(Algorithm::HS256, APP_SECRET, &claims())).is_ok());
    }

    #[test]
    fn jwt_shapes_are_told_apart_from_other_bodies() {
        assert!(looks_like_jwt("eyJh.eyJi.c2ln"));
        for other in [
            "",
            "a.b",
            "a.b.c.d",
            ".b.c",
            "a..c",
            r#"{"a":1}"#,
            "mode=subscribe",
            "a.b.c=",
        ] {
            assert!(!looks_like_jwt(other), "{other}");
        }
    }

    #[test]
    fn a_callback_without_event_arguments_is_malformed() {
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove("eventArgs");
        assert_eq!(
            events(claims, RECEIVED_AT),
            Err(PayloadError::MissingField("eventArgs"))
        );
    }
}
