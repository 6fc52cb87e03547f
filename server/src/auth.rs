//! Secret handling shared by every credential check: constant-time comparison, random tokens, and the hashes
//! tokens are stored under.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
