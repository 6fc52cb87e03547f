//! https on the main listener: rustls (with the `ring` provider) serves the certificate chain and key from two PEM
//! files, offers HTTP/2 and HTTP/1.1 by ALPN, and bounds each handshake by a timeout. The files are read again
//! without a restart: when their modification time or size changes (checked every `TLS_RELOAD_INTERVAL_SECONDS`)
//! and on SIGHUP. New connections get the new certificate; open ones keep theirs. A new file that cannot be used
//! (half-written, garbage, a key that does not fit) leaves the previous certificate in place, with a warning.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use clap::Args;
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The https settings of `serve`.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// PEM file with the certificate chain to serve https with, the server's certificate first; needs --tls-key.
    #[arg(long, env = "TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Seconds between checks of the certificate files for changes; 0 reloads them only on SIGHUP.
    #[arg(long, env = "TLS_RELOAD_INTERVAL_SECONDS", default_value_t = 5)]
    pub tls_reload_interval_seconds: u64,
}

impl TlsArgs {
    /// Whether https is asked for (start-up refuses half of it).
    pub fn enabled(&self) -> bool {
        self.tls_cert.is_some() || self.tls_key.is_some()
    }

    /// The certificate and key files, when https is configured.
    pub fn files(&self) -> Result<Option<CertificateFiles>, TlsError> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(TlsError::KeyMissing),
            (None, Some(_)) => Err(TlsError::CertificateMissing),
            (Some(cert), Some(key)) => Ok(Some(CertificateFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
        }
    }
}

/// Why https cannot be served, or a new certificate not used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS_CERT (--tls-cert) is set without TLS_KEY (--tls-key): https needs both")]
    KeyMissing,
    #[error("TLS_KEY (--tls-key) is set without TLS_CERT (--tls-cert): https needs both")]
    CertificateMissing,
    // The causes are in the messages, not `source`s: the reload's warning prints the message alone.
    #[error("reading {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{} holds no usable PEM {what}: {reason}", path.display())]
    Pem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("the key in {} cannot serve the certificate in {}: {error}", key.display(), cert.display())]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        error: tokio_rustls::rustls::Error,
    },
}

/// The two PEM files https is served from.
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What the files looked like when last read: a change to either means reading them again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    cert: (SystemTime, u64),
    key: (SystemTime, u64),
}

impl CertificateFiles {
    /// Reads and checks both files: a certificate chain, and a private key that fits its first certificate.
    async fn load(&self, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
        let cert_pem = read(&self.cert).await?;
        let key_pem = read(&self.key).await?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| pem_error(&self.cert, "certificate", error.to_string()))?;
        if chain.is_empty() {
            return Err(pem_error(&self.cert, "certificate", "no CERTIFICATE block".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|error| pem_error(&self.key, "private key", error.to_string()))?;
        let certified = CertifiedKey::from_der(chain, key, provider).map_err(|error| TlsError::Unusable {
            cert: self.cert.clone(),
            key: self.key.clone(),
            error,
        })?;
        Ok(Arc::new(certified))
    }

    /// The files' modification times and sizes; `None` while either cannot be looked at.
    async fn stamp(&self) -> Option<Stamp> {
        async fn stamp_of(path: &Path) -> Option<(SystemTime, u64)> {
            let metadata = tokio::fs::metadata(path).await.ok()?;
            Some((metadata.modified().ok()?, metadata.len()))
        }
        Some(Stamp {
            cert: stamp_of(&self.cert).await?,
            key: stamp_of(&self.key).await?,
        })
    }
}

async fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    tokio::fs::read(path).await.map_err(|error| TlsError::Read {
        path: path.to_owned(),
        error,
    })
}

fn pem_error(path: &Path, what: &'static str, reason: String) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        what,
        reason,
    }
}

/// The certificate new handshakes get; replaced whole by a reload.
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().expect("certificate lock").clone())
    }
}

/// https for a listener: the acceptor its connections go through, and the reloader that keeps its certificate
/// current while it serves.
pub struct Tls {
    pub acceptor: Acceptor,
    pub reloader: Reloader,
}

impl Tls {
    /// Reads the certificate files, when `args` configures https; an error says which file is wrong and how.
    pub async fn load(args: &TlsArgs) -> Result<Option<Tls>, TlsError> {
        let Some(files) = args.files()? else {
            return Ok(None);
        };
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let stamp = files.stamp().await;
        let current = Arc::new(CurrentCertificate(RwLock::new(files.load(&provider).await?)));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Unusable {
                cert: files.cert.clone(),
                key: files.key.clone(),
                error,
            })?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Tls {
            acceptor: Acceptor(TlsAcceptor::from(Arc::new(config))),
            reloader: Reloader {
                files,
                provider,
                current,
                seen: stamp,
                interval: Duration::from_secs(args.tls_reload_interval_seconds),
                // Listening from start-up on: the default action of a SIGHUP is to end the process.
                hangups: hangups(),
            },
        }))
    }
}

/// Turns accepted TCP connections into TLS streams.
#[derive(Clone)]
pub struct Acceptor(TlsAcceptor);

/// Why a connection never got past its TLS handshake; logged at debug, as it is the client's doing.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no TLS handshake within {} s", .0.as_secs())]
    TimedOut(Duration),
    #[error("the TLS handshake failed: {0}")]
    Failed(std::io::Error),
}

impl Acceptor {
    /// The TLS handshake on `stream`, given up after `within` (a client that connects and sends nothing).
    pub async fn accept(&self, stream: TcpStream, within: Duration) -> Result<TlsStream<TcpStream>, HandshakeError> {
        match tokio::time::timeout(within, self.0.accept(stream)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(error)) => Err(HandshakeError::Failed(error)),
            Err(_) => Err(HandshakeError::TimedOut(within)),
        }
    }
}

/// Whether the client chose HTTP/2 by ALPN.
pub fn negotiated_http2(stream: &TlsStream<TcpStream>) -> bool {
    stream.get_ref().1.alpn_protocol() == Some(b"h2")
}

/// What one look at the certificate files did.
#[derive(Debug)]
pub enum Reload {
    /// The files are as they were when last read.
    Unchanged,
    /// New connections get the new certificate.
    Loaded,
    /// The files could not be used; the previous certificate stays.
    Kept(TlsError),
}

/// Reads the certificate files again when they change or on SIGHUP.
pub struct Reloader {
    files: CertificateFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCertificate>,
    seen: Option<Stamp>,
    interval: Duration,
    hangups: Hangups,
}

impl Reloader {
    /// Reloads on every change and SIGHUP until `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let asked = tokio::select! {
                () = shutdown.cancelled() => return,
                () = tick(self.interval) => false,
                () = hangup(&mut self.hangups) => true,
            };
            let outcome = if asked {
                self.reload().await
            } else {
                self.reload_if_changed().await
            };
            match outcome {
                Reload::Unchanged => {}
                Reload::Loaded => tracing::info!(cert = %self.files.cert.display(), "serving the new TLS certificate"),
                Reload::Kept(error) => {
                    tracing::warn!(%error, "the TLS certificate files cannot be used; keeping the current certificate")
                }
            }
        }
    }

    /// Reads the files if they changed since they were last read.
    pub async fn reload_if_changed(&mut self) -> Reload {
        // A file that cannot be looked at is read (and warned about) once, not at every tick.
        if self.files.stamp().await == self.seen {
            return Reload::Unchanged;
        }
        self.reload().await
    }

    /// Reads the files and serves what they hold, unless it cannot be used.
    pub async fn reload(&mut self) -> Reload {
        // Taken before reading: a write that lands meanwhile changes the stamp again and is read next time.
        self.seen = self.files.stamp().await;
        match self.files.load(&self.provider).await {
            Ok(certified) => {
                *self.current.0.write().expect("certificate lock") = certified;
                Reload::Loaded
            }
            Err(error) => Reload::Kept(error),
        }
    }
}

/// Completes every `interval`, or never when polling is off.
async fn tick(interval: Duration) {
    if interval.is_zero() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(interval).await;
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn hangups() -> Hangups {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|error| tracing::warn!(%error, "SIGHUP cannot reload the TLS certificate"))
        .ok()
}

#[cfg(not(unix))]
fn hangups() -> Hangups {}

/// Completes on each SIGHUP, or never where there is none.
#[cfg(unix)]
async fn hangup(hangups: &mut Hangups) {
    if let Some(signals) = hangups {
        if signals.recv().await.is_some() {
            return;
        }
    }
    std::future::pending::<()>().await;
}

#[cfg(not(unix))]
async fn hangup(_: &mut Hangups) {
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `name`: (certificate PEM, key PEM, certificate DER).
    fn certificate(name: &str) -> (String, String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (certificate.pem(), key.serialize_pem(), certificate.der().to_vec())
    }

    fn args(cert: Option<&Path>, key: Option<&Path>) -> TlsArgs {
        TlsArgs {
            tls_cert: cert.map(Path::to_owned),
            tls_key: key.map(Path::to_owned),
            tls_reload_interval_seconds: 0,
        }
    }

    fn served(tls: &Tls) -> Vec<u8> {
        tls.reloader
            .current
            .0
            .read()
            .unwrap()
            .end_entity_cert()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_certificate_without_its_key_or_a_key_without_its_certificate_is_refused() {
        let path = Path::new("server.pem");
        assert!(matches!(args(Some(path), None).files(), Err(TlsError::KeyMissing)));
        assert!(matches!(
            args(None, Some(path)).files(),
            Err(TlsError::CertificateMissing)
        ));
        assert!(args(None, None).files().unwrap().is_none());
        assert!(!args(None, None).enabled());
        assert!(args(Some(path), None).enabled());
    }

    #[tokio::test]
    async fn files_that_do_not_parse_or_do_not_fit_are_refused_with_the_file_named() {
        let folder = tempfile::tempdir().unwrap();
        let (cert, key, _) = certificate("localhost");
        let (_, other_key, _) = certificate("localhost");
        let cert_path = folder.path().join("cert.pem");
        let key_path = folder.path().join("key.pem");
        let load = || async { Tls::load(&args(Some(&cert_path), Some(&key_path))).await.err().unwrap() };

        assert!(matches!(load().await, TlsError::Read { path, .. } if path == cert_path));
        std::fs::write(&cert_path, "garbage").unwrap();
        std::fs::write(&key_path, &key).unwrap();
        let error = load().await;
        assert!(
            matches!(&error, TlsError::Pem { path, .. } if *path == cert_path),
            "{error}"
        );
        assert!(error.to_string().contains("cert.pem"));
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &cert).unwrap();
        assert!(matches!(load().await, TlsError::Pem { path, .. } if path == key_path));
        std::fs::write(&key_path, &other_key).unwrap();
        assert!(matches!(load().await, TlsError::Unusable { .. }));
    }

    #[tokio::test]
    async fn a_changed_certificate_is_served_and_an_unusable_one_keeps_the_last() {
        let folder = tempfile::tempdir().unwrap();
        let cert_path = folder.path().join("cert.pem");
        let key_path = folder.path().join("key.pem");
        let (cert, key, first) = certificate("first.test");
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &key).unwrap();
        let mut tls = Tls::load(&args(Some(&cert_path), Some(&key_path)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(served(&tls), first);
        assert!(matches!(tls.reloader.reload_if_changed().await, Reload::Unchanged));

        let (cert, key, second) = certificate("second.test");
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &key).unwrap();
        assert!(matches!(tls.reloader.reload_if_changed().await, Reload::Loaded));
        assert_eq!(served(&tls), second);

        std::fs::write(&cert_path, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
        assert!(matches!(
            tls.reloader.reload_if_changed().await,
            Reload::Kept(TlsError::Pem { .. })
        ));
        assert_eq!(served(&tls), second);
        assert!(
            matches!(tls.reloader.reload_if_changed().await, Reload::Unchanged),
            "a bad file is not read again until it changes"
        );
        std::fs::remove_file(&key_path).unwrap();
        assert!(matches!(
            tls.reloader.reload().await,
            Reload::Kept(TlsError::Read { .. })
        ));
        assert_eq!(served(&tls), second);
    }
}
