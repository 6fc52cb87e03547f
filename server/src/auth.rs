//! Secret handling shared by every credential check: constant-time comparison, random tokens, the hashes tokens
//! are stored under, and users' password hashes (argon2id).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
pub use sm8_wire::secret::secrets_match;

/// A new random token: 32 bytes, hex encoded.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What is stored for a session token: its SHA-256, so a database leak reveals no usable cookie.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The shortest password a user may choose.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest: argon2 takes any length, but a megabyte "password" is only a way to burn CPU.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The PHC string (`$argon2id$v=19$…`) stored for `password`: argon2id with the crate's default cost
/// (19 MiB, 2 passes) and a random salt. Takes tens of milliseconds: call it off the async runtime.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id hashes any password of bounded length")
        .to_string()
}

/// Whether `password` is the one `stored` was made from; a malformed `stored` matches nothing.
pub fn password_matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A password hash to verify against when there is no user, so that an unknown email costs as long as a
/// wrong password (no user enumeration by timing).
pub fn decoy_password_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_token()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_is_argon2id_salted_and_matches_only_its_password() {
        let stored = hash_password("correct horse battery");
        assert!(stored.starts_with("$argon2id$v=19$"), "{stored}");
        assert!(password_matches("correct horse battery", &stored));
        assert!(!password_matches("correct horse batterY", &stored));
        assert_ne!(stored, hash_password("correct horse battery"), "a fresh salt each time");
        assert!(!password_matches("anything", "not a hash"));
        assert!(!password_matches("anything", decoy_password_hash()));
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
