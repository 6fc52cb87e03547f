//! Secrets at rest: credentials and webhook secrets are stored sealed with XChaCha20-Poly1305 (an AEAD) under one
//! master key, never in the clear.
//!
//! The master key is `SECRET_KEY` (32 bytes, base64 or hex) or, without it, a key file (`SECRET_KEY_FILE`, by
//! default `sm8.key` beside the SQLite database, or `data/sm8.key` for PostgreSQL) generated on first start with
//! mode 0600. Each sealed value is bound to where it is stored (its `context`, the associated data), so a value
//! copied into another row or column does not open. A check value in the settings tells at start-up whether the
//! key is the one the stored secrets were sealed with: a wrong key stops the server instead of failing later.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::secret::Secret;

/// The prefix of every sealed value: the format, so another one can follow.
const SEALED_PREFIX: &str = "v1.";
const NONCE_BYTES: usize = 24;
/// What the check value seals, and where.
const CHECK_PLAINTEXT: &[u8] = b"sm8-webhooks secret key check";
pub const CHECK_CONTEXT: &str = "settings:secret_key_check";
/// The settings key the check value is stored under.
pub const CHECK_SETTING: &str = "secret_key_check";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("SECRET_KEY must be 32 bytes written as base64 (44 characters) or hex (64 characters)")]
    MalformedKey,
    #[error("not a sealed value")]
    Malformed,
    /// The key is not the one it was sealed with, the value was changed, or it belongs elsewhere.
    #[error("a sealed value does not open under this key (wrong SECRET_KEY, or the value was altered)")]
    WrongKey,
}

/// The master key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    pub fn generate() -> MasterKey {
        MasterKey(rand::random())
    }

    /// Reads a key written as base64 (standard or URL-safe) or hex.
    pub fn parse(text: &str) -> Result<MasterKey, SealError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            STANDARD
                .decode(text)
                .ok()
                .or_else(|| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok())
        };
        bytes
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(MasterKey)
            .ok_or(SealError::MalformedKey)
    }

    /// The key as base64, for the key file or `SECRET_KEY`.
    pub fn encode(&self) -> Secret {
        Secret::new(STANDARD.encode(self.0))
    }

    pub fn sealer(&self) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(&self.0.into()),
        }
    }
}

/// Seals and opens values under one master key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    /// `plaintext` sealed for `context` (where it is stored, e.g. `accounts:acme:secrets`), with a fresh nonce.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .expect("XChaCha20-Poly1305 seals any message that fits in memory");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The plaintext of a value sealed for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let encoded = sealed.strip_prefix(SEALED_PREFIX).ok_or(SealError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| SealError::Malformed)?;
        if bytes.len() < NONCE_BYTES {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        self.cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| SealError::WrongKey)
    }

    /// The value stored to tell later whether a key is this one.
    pub fn check_value(&self) -> String {
        self.seal(CHECK_PLAINTEXT, CHECK_CONTEXT)
    }

    /// Whether `check` was made by `check_value` under this key.
    pub fn verifies(&self, check: &str) -> bool {
        self.open(check, CHECK_CONTEXT)
            .is_ok_and(|plain| plain == CHECK_PLAINTEXT)
    }
}

/// Where the master key came from, for the start-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `SECRET_KEY`.
    Environment,
    /// A key file that already existed.
    File(PathBuf),
    /// A key file written just now: the operator must be told, once, to back it up.
    Generated(PathBuf),
}

/// The master key from `configured` (`SECRET_KEY`), else read from `file`, else generated into `file` (0600).
pub fn load_or_generate_key(configured: Option<&Secret>, file: &Path) -> anyhow::Result<(MasterKey, KeySource)> {
    if let Some(key) = configured.filter(|key| !key.expose().trim().is_empty()) {
        return Ok((MasterKey::parse(key.expose())?, KeySource::Environment));
    }
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let key =
                MasterKey::parse(&text).map_err(|error| anyhow::anyhow!("the key file {}: {error}", file.display()))?;
            Ok((key, KeySource::File(file.to_owned())))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate();
            write_key_file(&key, file)?;
            Ok((key, KeySource::Generated(file.to_owned())))
        }
        Err(error) => Err(anyhow::anyhow!("reading the key file {}: {error}", file.display())),
    }
}

/// Writes `key` to `file`, readable by its owner only; never replaces an existing file.
pub fn write_key_file(key: &MasterKey, file: &Path) -> anyhow::Result<()> {
    if let Some(folder) = file.parent().filter(|folder| !folder.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut written = options
        .open(file)
        .map_err(|error| anyhow::anyhow!("creating the key file {}: {error}", file.display()))?;
    writeln!(written, "{}", key.encode().expose())?;
    written.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_under_its_key_and_in_its_place() {
        let key = MasterKey::generate();
        let sealer = key.sealer();
        let sealed = sealer.seal(b"api-key-123", "accounts:acme:secrets");
        assert!(!sealed.contains("api-key-123"));
        assert_eq!(sealer.open(&sealed, "accounts:acme:secrets").unwrap(), b"api-key-123");
        assert_eq!(
            sealer.open(&sealed, "accounts:other:secrets"),
            Err(SealError::WrongKey),
            "copied into another row"
        );
        assert_eq!(
            MasterKey::generate().sealer().open(&sealed, "accounts:acme:secrets"),
            Err(SealError::WrongKey)
        );
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(sealer
            .open(std::str::from_utf8(&altered).unwrap(), "accounts:acme:secrets")
            .is_err());
        assert_eq!(sealer.open("plain text", "x"), Err(SealError::Malformed));
        assert_eq!(sealer.open("v1.", "x"), Err(SealError::Malformed));
        assert_ne!(
            sealer.seal(b"same", "c"),
            sealer.seal(b"same", "c"),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn keys_are_read_as_base64_or_hex_and_anything_else_is_refused() {
        let key = MasterKey::generate();
        let encoded = key.encode();
        let parsed = MasterKey::parse(encoded.expose()).unwrap();
        assert_eq!(parsed.0, key.0);
        assert_eq!(MasterKey::parse(&hex::encode(key.0)).unwrap().0, key.0);
        assert_eq!(MasterKey::parse(&URL_SAFE_NO_PAD.encode(key.0)).unwrap().0, key.0);
        assert_eq!(MasterKey::parse("short").unwrap_err(), SealError::MalformedKey);
        assert_eq!(
            MasterKey::parse(&STANDARD.encode([1u8; 16])).unwrap_err(),
            SealError::MalformedKey
        );
        assert!(!format!("{key:?}").contains(encoded.expose()));
    }

    #[test]
    fn the_check_value_tells_the_right_key_from_another() {
        let key = MasterKey::generate();
        let check = key.sealer().check_value();
        assert!(key.sealer().verifies(&check));
        assert!(!MasterKey::generate().sealer().verifies(&check));
    }

    #[test]
    fn a_key_file_is_generated_once_readable_by_its_owner_only_and_read_back() {
        let folder = tempfile::TempDir::new().unwrap();
        let file = folder.path().join("keys").join("sm8.key");
        let (generated, source) = load_or_generate_key(None, &file).unwrap();
        assert_eq!(source, KeySource::Generated(file.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (read, source) = load_or_generate_key(None, &file).unwrap();
        assert_eq!(source, KeySource::File(file.clone()));
        assert_eq!(read.0, generated.0);
        let configured = MasterKey::generate();
        let (from_env, source) = load_or_generate_key(Some(&configured.encode()), &file).unwrap();
        assert_eq!(source, KeySource::Environment);
        assert_eq!(from_env.0, configured.0);
        assert!(
            write_key_file(&configured, &file).is_err(),
            "an existing key file is never replaced"
        );
    }
}
