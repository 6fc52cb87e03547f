//! Admin authentication for the management API: `Authorization: Bearer <ADMIN_TOKEN>` or a dashboard session.

use app::api::{session_from_headers, DashboardBackend};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::startup::AppState;

/// Proof that the request comes from an admin; take it as a handler argument to require admin access.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(authorization) = parts.headers.get(AUTHORIZATION) {
            let token = authorization
                .to_str()
                .ok()
                .and_then(|value| value.strip_prefix("Bearer "))
                .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <ADMIN_TOKEN>".into()))?;
            return if state.backend.admin_token_matches(token.trim()) {
                Ok(Admin)
            } else {
                Err(ApiError::Unauthorized("invalid admin token".into()))
            };
        }
        if let Some(session) = session_from_headers(&parts.headers) {
            if state.backend.session_is_active(session).await? {
                return Ok(Admin);
            }
        }
        Err(ApiError::Unauthorized(
            "admin authentication required: send Authorization: Bearer <ADMIN_TOKEN>".into(),
        ))
    }
}

/// Compares two secrets in constant time, whatever their lengths.
pub fn secrets_match(candidate: &str, expected: &str) -> bool {
    // Comparing digests keeps the time independent of where, or whether, the lengths differ.
    Sha256::digest(candidate.as_bytes())
        .ct_eq(&Sha256::digest(expected.as_bytes()))
        .into()
}

/// A new random token: 32 bytes, hex encoded.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What is stored for a session token: its SHA-256, so a database leak reveals no usable cookie.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(secrets_match("abc", "abc"));
        assert!(!secrets_match("abc", "abd"));
        assert!(!secrets_match("", "abc"));
        assert!(!secrets_match("abcd", "abc"));
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
