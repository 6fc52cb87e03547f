//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` headers, HMAC-SHA256 over `{id}.{timestamp}.{body}`.
//!
//! The signature header lists space-separated `v1,<base64>` entries; a delivery is authentic when any entry
//! matches any configured secret, which lets a sender rotate secrets without losing deliveries. Secrets are
//! `whsec_<base64 key>`; a secret without the prefix is used as its bytes.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use super::signature::Verification;
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// How far a delivery's timestamp may be from now, either way, before it is refused as a replay.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;
/// The id becomes part of the stored dedup key, so it is bounded.
pub(crate) const MAX_ID_LEN: usize = 256;
const SECRET_PREFIX: &str = "whsec_";
/// Length in bytes of an HMAC-SHA256 digest.
const DIGEST_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StandardError {
    #[error("no STANDARD_WEBHOOK_SECRETS are configured")]
    NotConfigured,
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("webhook-id is longer than {MAX_ID_LEN} characters")]
    IdTooLong,
    #[error("webhook-timestamp is not a unix time in seconds")]
    InvalidTimestamp,
    #[error("webhook-timestamp is more than five minutes from now")]
    TimestampOutOfTolerance,
    #[error("no v1 signature matches")]
    NoMatch,
}

/// Whether the delivery claims a Standard Webhooks signature (and so must have a valid one).
pub fn is_signed(headers: &HeaderMap) -> bool {
    headers.contains_key(SIGNATURE_HEADER)
}

/// The sender's id for the delivery, the same on every retry of it.
pub fn message_id(headers: &HeaderMap) -> Option<String> {
    header_text(headers, ID_HEADER).map(str::to_owned)
}

/// Checks the Standard Webhooks headers of a delivery of `body` received at `now` (unix seconds).
pub fn verify(secrets: &[Secret], headers: &HeaderMap, body: &[u8], now: i64) -> Verification {
    match check(secrets, headers, body, now) {
        Ok(()) => Verification::StandardWebhooks,
        Err(error) => Verification::Rejected(error.into()),
    }
}

fn check(secrets: &[Secret], headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), StandardError> {
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|secret| secret_key(secret.expose()))
        .collect();
    if keys.is_empty() {
        return Err(StandardError::NotConfigured);
    }
    let id = header_text(headers, ID_HEADER).ok_or(StandardError::MissingHeader(ID_HEADER))?;
    if id.len() > MAX_ID_LEN {
        return Err(StandardError::IdTooLong);
    }
    let timestamp = header_text(headers, TIMESTAMP_HEADER).ok_or(StandardError::MissingHeader(TIMESTAMP_HEADER))?;
    let sent_at: i64 = timestamp.parse().map_err(|_| StandardError::InvalidTimestamp)?;
    if sent_at.abs_diff(now) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(StandardError::TimestampOutOfTolerance);
    }
    let signatures = header_text(headers, SIGNATURE_HEADER).ok_or(StandardError::MissingHeader(SIGNATURE_HEADER))?;
    let candidates: Vec<Vec<u8>> = signatures
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        // An empty or truncated signature never reaches the comparison.
        .filter(|signature| signature.len() == DIGEST_LEN)
        .collect();
    let matched = keys.iter().any(|key| {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        // `verify_slice` compares in constant time; every candidate is tried so timing does not tell which matched.
        candidates.iter().fold(false, |matched, candidate| {
            mac.clone().verify_slice(candidate).is_ok() | matched
        })
    });
    if matched {
        Ok(())
    } else {
        Err(StandardError::NoMatch)
    }
}

/// The signing key of a configured secret; `None` for one that cannot be used (empty, or bad base64).
pub(crate) fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let secret = secret.trim();
    let key = match secret.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => BASE64.decode(encoded).ok()?,
        None => secret.as_bytes().to_vec(),
    };
    (!key.is_empty()).then_some(key)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// The `webhook-signature` entry a sender computes for `body` (`v1,<base64>`).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = secret_key(secret).unwrap_or_default();
    let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC accepts keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OTHER_SECRET: &str = "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24=";
    const BODY: &[u8] = br#"{"type":"job.created","data":{"uuid":"job-1"}}"#;
    const NOW: i64 = 1_700_000_000;

    fn headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ID_HEADER, HeaderValue::from_str(id).unwrap());
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from_str(&timestamp.to_string()).unwrap());
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        headers
    }

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|value| Secret::new(*value)).collect()
    }

    fn rejected(error: StandardError) -> Verification {
        Verification::Rejected(error.into())
    }

    #[test]
    fn a_correct_signature_is_verified() {
        let signed = headers("msg_1", NOW, &sign(SECRET, "msg_1", NOW, BODY));
        assert_eq!(
            verify(&secrets(&[SECRET]), &signed, BODY, NOW),
            Verification::StandardWebhooks
        );
    }

    #[test]
    fn the_reference_example_verifies() {
        // The example from the Standard Webhooks reference libraries.
        let body = br#"{"test": 2432232314}"#;
        let signed = headers(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
        assert_eq!(
            verify(&secrets(&[SECRET]), &signed, body, 1614265330),
            Verification::StandardWebhooks
        );
    }

    #[test]
    fn any_configured_secret_may_match_during_rotation() {
        let signed = headers("msg_1", NOW, &sign(OTHER_SECRET, "msg_1", NOW, BODY));
        assert_eq!(
            verify(&secrets(&[SECRET, OTHER_SECRET]), &signed, BODY, NOW),
            Verification::StandardWebhooks
        );
        assert_eq!(
            verify(&secrets(&[SECRET]), &signed, BODY, NOW),
            rejected(StandardError::NoMatch)
        );
    }

    #[test]
    fn one_matching_entry_among_several_is_enough() {
        let good = sign(SECRET, "msg_1", NOW, BODY);
        let bad = sign(OTHER_SECRET, "msg_1", NOW, BODY);
        let signed = headers("msg_1", NOW, &format!("v1a,abc {bad} v2,{} {good}", &good[3..]));
        assert_eq!(
            verify(&secrets(&[SECRET]), &signed, BODY, NOW),
            Verification::StandardWebhooks
        );
    }

    #[test]
    fn empty_unknown_and_truncated_signatures_fail() {
        let good = sign(SECRET, "msg_1", NOW, BODY);
        for signature in ["v1,", "v1, v1,", "v1a,whatever", &good[..20], &good[3..], "v1,!!!"] {
            let signed = headers("msg_1", NOW, signature);
            assert_eq!(
                verify(&secrets(&[SECRET]), &signed, BODY, NOW),
                rejected(StandardError::NoMatch),
                "{signature}"
            );
        }
    }

    #[test]
    fn a_tampered_body_or_id_fails() {
        let signed = headers("msg_1", NOW, &sign(SECRET, "msg_1", NOW, BODY));
        assert_eq!(
            verify(&secrets(&[SECRET]), &signed, b"{}", NOW),
            rejected(StandardError::NoMatch)
        );
        let other_id = headers("msg_2", NOW, &sign(SECRET, "msg_1", NOW, BODY));
        assert_eq!(
            verify(&secrets(&[SECRET]), &other_id, BODY, NOW),
            rejected(StandardError::NoMatch)
        );
    }

    #[test]
    fn timestamps_more_than_five_minutes_away_are_refused() {
        for sent_at in [NOW - 301, NOW + 301] {
            let signed = headers("msg_1", sent_at, &sign(SECRET, "msg_1", sent_at, BODY));
            assert_eq!(
                verify(&secrets(&[SECRET]), &signed, BODY, NOW),
                rejected(StandardError::TimestampOutOfTolerance)
            );
        }
        let edge = headers("msg_1", NOW - 300, &sign(SECRET, "msg_1", NOW - 300, BODY));
        assert_eq!(
            verify(&secrets(&[SECRET]), &edge, BODY, NOW),
            Verification::StandardWebhooks
        );
    }

    #[test]
    fn missing_headers_and_secrets_are_refused() {
        let mut signed = headers("msg_1", NOW, &sign(SECRET, "msg_1", NOW, BODY));
        assert_eq!(verify(&[], &signed, BODY, NOW), rejected(StandardError::NotConfigured));
        assert_eq!(
            verify(&secrets(&["", "whsec_***"]), &signed, BODY, NOW),
            rejected(StandardError::NotConfigured)
        );
        signed.remove(TIMESTAMP_HEADER);
        assert_eq!(
            verify(&secrets(&[SECRET]), &signed, BODY, NOW),
            rejected(StandardError::MissingHeader(TIMESTAMP_HEADER))
        );
        let not_a_number = {
            let mut headers = headers("msg_1", NOW, "v1,x");
            headers.insert(TIMESTAMP_HEADER, HeaderValue::from_static("yesterday"));
            headers
        };
        assert_eq!(
            verify(&secrets(&[SECRET]), &not_a_number, BODY, NOW),
            rejected(StandardError::InvalidTimestamp)
        );
    }

    #[test]
    fn a_secret_without_the_prefix_is_used_as_its_bytes() {
        let signed = headers("msg_1", NOW, &sign("plain-secret", "msg_1", NOW, BODY));
        assert_eq!(
            verify(&secrets(&["plain-secret"]), &signed, BODY, NOW),
            Verification::StandardWebhooks
        );
    }
}
