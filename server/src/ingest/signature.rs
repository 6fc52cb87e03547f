//! HMAC-SHA256 signatures of webhook bodies (`x-servicem8-signature`).
//!
//! The header carries the hex digest of the raw body under `WEBHOOK_SECRET`, optionally prefixed `sha256=`.
//! Every comparison is constant-time and checks the length first, so an empty or truncated signature fails.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length in bytes of an HMAC-SHA256 digest.
const DIGEST_LEN: usize = 32;

/// How a delivery was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The signature matched the configured secret.
    Verified,
    /// No secret is configured, so nothing was checked.
    Unsigned,
    /// The delivery must be refused.
    Rejected(SignatureError),
}

impl Verification {
    /// The name stored with the event.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verification::Verified => "hmac-sha256",
            Verification::Unsigned => "unsigned",
            Verification::Rejected(_) => "rejected",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing x-servicem8-signature header")]
    Missing,
    #[error("empty signature")]
    Empty,
    #[error("signature is not hexadecimal")]
    NotHex,
    #[error("signature has the wrong length")]
    WrongLength,
    #[error("signature does not match")]
    Mismatch,
}

/// Checks `header` (the raw header value, if present) against the HMAC of `body` under `secret`.
pub fn verify(secret: Option<&[u8]>, body: &[u8], header: Option<&[u8]>) -> Verification {
    let Some(secret) = secret else {
        return Verification::Unsigned;
    };
    match check(secret, body, header) {
        Ok(()) => Verification::Verified,
        Err(error) => Verification::Rejected(error),
    }
}

fn check(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim_ascii();
    let digest_hex = strip_prefix_ignore_case(header, b"sha256=").unwrap_or(header);
    if digest_hex.is_empty() {
        return Err(SignatureError::Empty);
    }
    if digest_hex.len() != DIGEST_LEN * 2 {
        return Err(SignatureError::WrongLength);
    }
    let digest = hex::decode(digest_hex).map_err(|_| SignatureError::NotHex)?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&digest).map_err(|_| SignatureError::Mismatch)
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &value[prefix.len()..])
}

/// The hex signature of `body` under `secret`, as a sender computes it.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"topsecret";
    const BODY: &[u8] = br#"{"object_type":"Job"}"#;

    fn verify_header(header: &str) -> Verification {
        verify(Some(SECRET), BODY, Some(header.as_bytes()))
    }

    #[test]
    fn a_correct_signature_is_verified() {
        assert_eq!(verify_header(&sign(SECRET, BODY)), Verification::Verified);
    }

    #[test]
    fn the_sha256_prefix_is_accepted_in_any_case() {
        let digest = sign(SECRET, BODY);
        assert_eq!(verify_header(&format!("sha256={digest}")), Verification::Verified);
        assert_eq!(verify_header(&format!("SHA256={digest}")), Verification::Verified);
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        assert_eq!(verify_header(&sign(SECRET, BODY).to_uppercase()), Verification::Verified);
    }

    #[test]
    fn a_missing_signature_is_rejected_when_a_secret_is_set() {
        assert_eq!(verify(Some(SECRET), BODY, None), Verification::Rejected(SignatureError::Missing));
    }

    #[test]
    fn an_empty_signature_is_rejected() {
        assert_eq!(verify_header(""), Verification::Rejected(SignatureError::Empty));
        assert_eq!(verify_header("sha256="), Verification::Rejected(SignatureError::Empty));
        assert_eq!(verify_header("   "), Verification::Rejected(SignatureError::Empty));
    }

    #[test]
    fn a_signature_of_the_wrong_length_is_rejected() {
        let digest = sign(SECRET, BODY);
        assert_eq!(verify_header(&digest[..62]), Verification::Rejected(SignatureError::WrongLength));
        assert_eq!(verify_header(&format!("{digest}00")), Verification::Rejected(SignatureError::WrongLength));
    }

    #[test]
    fn a_non_hex_signature_is_rejected() {
        let not_hex = "z".repeat(64);
        assert_eq!(verify_header(&not_hex), Verification::Rejected(SignatureError::NotHex));
    }

    #[test]
    fn a_signature_of_another_body_or_secret_is_rejected() {
        assert_eq!(verify_header(&sign(SECRET, b"{}")), Verification::Rejected(SignatureError::Mismatch));
        assert_eq!(verify_header(&sign(b"other", BODY)), Verification::Rejected(SignatureError::Mismatch));
    }

    #[test]
    fn without_a_secret_nothing_is_checked() {
        assert_eq!(verify(None, BODY, Some(b"garbage")), Verification::Unsigned);
    }
}
