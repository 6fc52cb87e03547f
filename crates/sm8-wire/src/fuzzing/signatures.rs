//! The `signature_checks` target: the seed HMAC, the URL token, Standard Webhooks and the add-on JWT, each with
//! secrets, headers and body from the input. Each check must accept exactly what a sender holding the secret
//! produces, and nothing the input could forge.
//!
//! Fields: `secret` (every check's; Standard Webhooks takes each `secret` line as one of several), `signature`
//! (the seed HMAC header), `expected` and `token` (the URL token check), `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` (Standard Webhooks headers), `header` (the JWT's header, JSON) and `token` again as a whole
//! JWT to verify; the body is what is signed, and the JWT's claims.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use serde_json::Value;

use super::{sign_jwt, Message};
use crate::ingest::formats::addon::{self, JwtError};
use crate::ingest::signature::{self, Rejection, TokenError, Verification};
use crate::ingest::standard;
use crate::secret::Secret;

const NOW_SECONDS: i64 = 1_700_000_000;
const JWT_HEADER: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;

/// Runs every check on one fuzzed input.
pub fn signature_checks(data: &[u8]) {
    let message = Message::read(data);
    seed_hmac(&message);
    url_token(&message);
    standard_webhooks(&message);
    addon_jwt(&message);
}

fn seed_hmac(message: &Message) {
    let secret = message.field("secret");
    let header = message.field("signature");
    let verification = signature::verify(secret, message.body, header);
    let Some(secret) = secret else {
        assert_eq!(verification, Verification::Unsigned);
        return;
    };
    let expected = signature::sign(secret, message.body);
    if verification == Verification::HmacSha256 {
        let given = header.expect("a verified delivery has a signature").trim_ascii();
        let digest = match given.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case(b"sha256=") => &given[7..],
            _ => given,
        };
        assert_eq!(
            digest.to_ascii_lowercase(),
            expected.as_bytes(),
            "accepted another digest"
        );
    } else {
        assert!(
            matches!(verification, Verification::Rejected(Rejection::Hmac(_))),
            "{verification:?}"
        );
    }
    assert_eq!(
        signature::verify(Some(secret), message.body, Some(expected.as_bytes())),
        Verification::HmacSha256
    );
}

fn url_token(message: &Message) {
    let expected = message.text("expected");
    let token = message.text("token");
    let verification = signature::check_url_token(expected.as_deref(), token.as_deref());
    let specified = match (&expected, &token) {
        (None, _) => Verification::Unsigned,
        (Some(_), None) => Verification::Rejected(TokenError::Missing.into()),
        (Some(_), Some(token)) if token.is_empty() => Verification::Rejected(TokenError::Missing.into()),
        (Some(expected), Some(token)) if expected == token => Verification::UrlToken,
        (Some(_), Some(_)) => Verification::Rejected(TokenError::Mismatch.into()),
    };
    assert_eq!(verification, specified);
}

fn standard_webhooks(message: &Message) {
    let secrets: Vec<Secret> = message
        .fields
        .iter()
        .filter(|(name, _)| *name == b"secret")
        .map(|(_, value)| Secret::new(String::from_utf8_lossy(value)))
        .collect();
    let mut headers = HeaderMap::new();
    for (name, value) in &message.fields {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    let verification = standard::verify(&secrets, &headers, message.body, NOW_SECONDS);
    match &verification {
        Verification::StandardWebhooks => assert!(standard::message_id(&headers).is_some()),
        Verification::Rejected(Rejection::Standard(_)) => {}
        other => panic!("Standard Webhooks answered {other:?}"),
    }

    // Signed now by a sender holding the first secret: accepted whenever that secret and the id can be used,
    // whichever other secrets are configured beside it. (An unusable first secret proves nothing either way: HMAC
    // pads keys with zeros, so the empty key it signs with equals a configured key of zero bytes.)
    let Some(first) = secrets.first() else {
        return;
    };
    let id = standard::message_id(&headers).unwrap_or_else(|| "msg_fuzz".into());
    if standard::secret_key(first.expose()).is_none() || id.len() > standard::MAX_ID_LEN {
        return;
    }
    let mut signed = HeaderMap::new();
    signed.insert(
        standard::ID_HEADER,
        HeaderValue::from_str(&id).expect("read from a header"),
    );
    signed.insert(standard::TIMESTAMP_HEADER, HeaderValue::from(NOW_SECONDS));
    let signature = standard::sign(first.expose(), &id, NOW_SECONDS, message.body);
    signed.insert(
        standard::SIGNATURE_HEADER,
        HeaderValue::from_str(&signature).expect("base64"),
    );
    assert_eq!(
        standard::verify(&secrets, &signed, message.body, NOW_SECONDS),
        Verification::StandardWebhooks,
        "for id {id:?}"
    );
}

fn addon_jwt(message: &Message) {
    let secret = message.text("secret").unwrap_or_default();
    let header = message.field("header").unwrap_or(JWT_HEADER);
    let token = sign_jwt(secret.as_bytes(), header, message.body);
    match addon::verify(Some(&secret), &token) {
        Ok(claims) => {
            let header: Value = serde_json::from_slice(header).expect("a verified token has a JSON header");
            assert_eq!(header["alg"], "HS256", "accepted a token signed with another algorithm");
            assert_eq!(
                serde_json::from_slice::<Value>(message.body).ok(),
                Some(claims),
                "the claims are not the body"
            );
            assert!(addon::looks_like_jwt(&token));
        }
        Err(error) => assert!(matches!(error, JwtError::Invalid(_)), "{error:?}"),
    }
    assert!(
        addon::verify(Some(&format!("{secret}!")), &token).is_err(),
        "verified under another secret"
    );
    assert_eq!(addon::verify(None, &token), Err(JwtError::NotConfigured));
    addon::claimed_account_uuid(&token);
    if let Some(written) = message.text("token") {
        let _ = addon::verify(Some(&secret), &written);
        addon::claimed_account_uuid(&written);
        addon::looks_like_jwt(&written);
    }
}
