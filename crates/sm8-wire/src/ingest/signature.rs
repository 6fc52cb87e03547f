//! How a delivery was authenticated, and the checks that need no more than a header or the URL.
//!
//! `x-servicem8-signature` carries the hex HMAC-SHA256 of the raw body under `WEBHOOK_SECRET`, optionally prefixed
//! `sha256=`; unsigned ServiceM8 callbacks may instead have to carry `?token=` in the callback URL. Every comparison
//! is constant-time and checks the length first, so an empty or truncated signature fails.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::formats::addon::JwtError;
use super::standard::StandardError;
use crate::secret::secrets_match;

type HmacSha256 = Hmac<Sha256>;

/// Length in bytes of an HMAC-SHA256 digest.
const DIGEST_LEN: usize = 32;

/// How a delivery was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// `x-servicem8-signature` matched `WEBHOOK_SECRET`.
    HmacSha256,
    /// A Standard Webhooks signature matched one of `STANDARD_WEBHOOK_SECRETS`.
    StandardWebhooks,
    /// The body was a JWT signed with the add-on's App Secret.
    AddonJwt,
    /// Unsigned, but the callback URL carried `WEBHOOK_URL_TOKEN`.
    UrlToken,
    /// Nothing was configured to check it against; the processor still validates it by fetching the object.
    Unsigned,
    /// Sent by a signed-in admin from the dashboard.
    AdminSession,
    /// The delivery must be refused with 401, whatever else it carries.
    Rejected(Rejection),
}

impl Verification {
    /// Whether a credential vouched for the delivery (a signature, the URL token, the add-on's JWT, a session).
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Verification::Unsigned | Verification::Rejected(_))
    }

    /// The name stored with the event.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verification::HmacSha256 => "hmac-sha256",
            Verification::StandardWebhooks => "standard-webhooks",
            Verification::AddonJwt => "addon-jwt",
            Verification::UrlToken => "url-token",
            Verification::Unsigned => "unsigned",
            Verification::AdminSession => "admin-session",
            Verification::Rejected(_) => "rejected",
        }
    }
}

/// Why a delivery was refused; the message is the 401's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("invalid signature: {0}")]
    Hmac(#[from] SignatureError),
    #[error("invalid Standard Webhooks signature: {0}")]
    Standard(#[from] StandardError),
    #[error(transparent)]
    AddonJwt(#[from] JwtError),
    #[error(transparent)]
    UrlToken(#[from] TokenError),
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
        Ok(()) => Verification::HmacSha256,
        Err(error) => Verification::Rejected(error.into()),
    }
}

/// Why the callback URL's token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("unsigned callbacks must carry ?token= in the callback URL")]
    Missing,
    #[error("the callback URL's token does not match")]
    Mismatch,
}

/// Checks the `?token=` of an unsigned delivery against `expected` (`WEBHOOK_URL_TOKEN`), when one is configured.
pub fn check_url_token(expected: Option<&str>, token: Option<&str>) -> Verification {
    let Some(expected) = expected else {
        return Verification::Unsigned;
    };
    match token.filter(|token| !token.is_empty()) {
        None => Verification::Rejected(TokenError::Missing.into()),
        Some(token) if secrets_match(token, expected) => Verification::UrlToken,
        Some(_) => Verification::Rejected(TokenError::Mismatch.into()),
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

    fn rejected(error: SignatureError) -> Verification {
        Verification::Rejected(Rejection::Hmac(error))
    }

    #[test]
    fn a_correct_signature_is_verified() {
        assert_eq!(verify_header(&sign(SECRET, BODY)), Verification::HmacSha256);
    }

    #[test]
    fn the_sha256_prefix_is_accepted_in_any_case() {
        let digest = sign(SECRET, BODY);
        assert_eq!(verify_header(&format!("sha256={digest}")), Verification::HmacSha256);
        assert_eq!(verify_header(&format!("SHA256={digest}")), Verification::HmacSha256);
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        assert_eq!(
            verify_header(&sign(SECRET, BODY).to_uppercase()),
            Verification::HmacSha256
        );
    }

    #[test]
    fn a_missing_signature_is_rejected_when_a_secret_is_set() {
        assert_eq!(verify(Some(SECRET), BODY, None), rejected(SignatureError::Missing));
    }

    #[test]
    fn an_empty_signature_is_rejected() {
        assert_eq!(verify_header(""), rejected(SignatureError::Empty));
        assert_eq!(verify_header("sha256="), rejected(SignatureError::Empty));
        assert_eq!(verify_header("   "), rejected(SignatureError::Empty));
    }

    #[test]
    fn a_signature_of_the_wrong_length_is_rejected() {
        let digest = sign(SECRET, BODY);
        assert_eq!(verify_header(&digest[..62]), rejected(SignatureError::WrongLength));
        assert_eq!(
            verify_header(&format!("{digest}00")),
            rejected(SignatureError::WrongLength)
        );
    }

    #[test]
    fn a_non_hex_signature_is_rejected() {
        let not_hex = "z".repeat(64);
        assert_eq!(verify_header(&not_hex), rejected(SignatureError::NotHex));
    }

    #[test]
    fn a_signature_of_another_body_or_secret_is_rejected() {
        assert_eq!(verify_header(&sign(SECRET, b"{}")), rejected(SignatureError::Mismatch));
        assert_eq!(verify_header(&sign(b"other", BODY)), rejected(SignatureError::Mismatch));
    }

    #[test]
    fn without_a_secret_nothing_is_checked() {
        assert_eq!(verify(None, BODY, Some(b"garbage")), Verification::Unsigned);
    }

    #[test]
    fn the_url_token_is_required_only_when_configured() {
        assert_eq!(check_url_token(None, None), Verification::Unsigned);
        assert_eq!(check_url_token(Some("t0ken"), Some("t0ken")), Verification::UrlToken);
        assert_eq!(
            check_url_token(Some("t0ken"), None),
            Verification::Rejected(TokenError::Missing.into())
        );
        assert_eq!(
            check_url_token(Some("t0ken"), Some("")),
            Verification::Rejected(TokenError::Missing.into())
        );
        for wrong in ["t0ke", "t0ken2", "T0KEN"] {
            assert_eq!(
                check_url_token(Some("t0ken"), Some(wrong)),
                Verification::Rejected(TokenError::Mismatch.into())
            );
        }
    }

    #[test]
    fn rejections_name_what_was_wrong() {
        assert_eq!(
            Rejection::from(SignatureError::Missing).to_string(),
            "invalid signature: missing x-servicem8-signature header"
        );
        assert!(Rejection::from(TokenError::Missing).to_string().contains("?token="));
    }
}
