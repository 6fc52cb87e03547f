//! https built in: a certificate made here (by a test authority the clients trust) is served over HTTP/1.1 and
//! HTTP/2 by ALPN, websockets join over wss, plain HTTP and silent clients are turned away, and a certificate
//! written over the files is served to new connections without a restart, while an unusable one is not.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use reqwest::header::STRICT_TRANSPORT_SECURITY;
use reqwest::Version;
use serde_json::json;
use server::config::ServeArgs;
use server::startup::Server;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::Mutex;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;

use crate::common::realtime_client::{join_payload, with_realtime, ANON_KEY, PUBLIC_TOPIC};
use crate::common::receiver::PATIENCE;
use crate::common::{serve_args, spawn_app_with, TestApp};

/// A certificate authority the tests' clients trust.
struct Authority {
    key: KeyPair,
    certificate: rcgen::Certificate,
}

/// A server certificate for `localhost` and `127.0.0.1`.
struct Issued {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Authority {
    fn new() -> Authority {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "SM8 Webhooks test authority");
        let certificate = params.self_signed(&key).unwrap();
        Authority { key, certificate }
    }

    /// A certificate whose subject is `name`.
    fn issue(&self, name: &str) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let certificate = params.signed_by(&key, &self.certificate, &self.key).unwrap();
        Issued {
            cert_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            der: certificate.der().to_vec(),
        }
    }

    /// A client trusting this authority; each builds its own connections.
    fn client(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.certificate.pem().as_bytes()).unwrap())
            .tls_info(true)
            .timeout(PATIENCE)
    }
}

/// Where a server finds its certificate: written, and written over, by the test.
struct CertificateFiles {
    folder: TempDir,
}

impl CertificateFiles {
    fn new(issued: &Issued) -> CertificateFiles {
        let files = CertificateFiles {
            folder: TempDir::new().unwrap(),
        };
        files.write(issued);
        files
    }

    fn cert(&self) -> PathBuf {
        self.folder.path().join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.folder.path().join("key.pem")
    }

    fn write(&self, issued: &Issued) {
        std::fs::write(self.cert(), &issued.cert_pem).unwrap();
        std::fs::write(self.key(), &issued.key_pem).unwrap();
    }

    fn configure(&self, args: &mut ServeArgs) {
        args.tls.tls_cert = Some(self.cert());
        args.tls.tls_key = Some(self.key());
    }
}

async fn spawn_https(files: &CertificateFiles, configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let mut args = with_realtime(serve_args(""));
    args.processor.workers = 0;
    files.configure(&mut args);
    configure(&mut args);
    spawn_app_with(args).await
}

fn https_url(address: impl std::fmt::Display, path: &str) -> String {
    format!("https://{address}{path}")
}

/// The certificate a new connection to `address` is served.
async fn served_certificate(authority: &Authority, address: impl std::fmt::Display) -> Vec<u8> {
    let response = authority
        .client()
        .build()
        .unwrap()
        .get(https_url(address, "/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let info = response.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    info.peer_certificate().unwrap().to_vec()
}

#[tokio::test]
async fn https_is_served_over_http1_and_http2_with_hsts_to_a_client_trusting_the_certificate() {
    let authority = Authority::new();
    let issued = authority.issue("first.sm8.test");
    let files = CertificateFiles::new(&issued);
    let app = spawn_https(&files, |_| {}).await;
    for (client, version) in [
        (authority.client().http1_only(), Version::HTTP_11),
        (authority.client(), Version::HTTP_2),
    ] {
        let response = client
            .build()
            .unwrap()
            .get(https_url(app.address, "/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), version, "chosen by ALPN");
        assert!(
            response.headers().contains_key(STRICT_TRANSPORT_SECURITY),
            "the public URL defaults to https"
        );
        let info = response.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
        assert_eq!(info.peer_certificate(), Some(issued.der.as_slice()));
    }
}

#[tokio::test]
async fn plain_http_and_silent_clients_are_turned_away_and_https_goes_on() {
    let authority = Authority::new();
    let issued = authority.issue("first.sm8.test");
    let files = CertificateFiles::new(&issued);
    let app = spawn_https(&files, |args| args.listen.http_header_read_timeout_seconds = 1).await;

    let plain = reqwest::Client::builder().timeout(PATIENCE).build().unwrap();
    let error = plain.get(app.url("/healthz")).send().await.unwrap_err();
    assert!(!error.is_timeout(), "refused, not left hanging: {error}");

    // A client that connects and never says hello is dropped after the header timeout.
    let mut silent = TcpStream::connect(app.address).await.unwrap();
    let mut rest = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(1) + PATIENCE, silent.read(&mut rest))
        .await
        .expect("the silent client is dropped");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    assert_eq!(served_certificate(&authority, app.address).await, issued.der);
}

#[tokio::test]
async fn a_websocket_joins_over_wss() {
    let authority = Authority::new();
    let files = CertificateFiles::new(&authority.issue("first.sm8.test"));
    let app = spawn_https(&files, |_| {}).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(authority.certificate.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(app.address).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let url = format!(
        "wss://localhost:{}/realtime/v1/websocket?apikey={ANON_KEY}&vsn=1.0.0",
        app.address.port()
    );
    let (mut socket, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    let join = json!({
        "topic": PUBLIC_TOPIC,
        "event": "phx_join",
        "payload": join_payload(json!({}), None),
        "ref": "1",
        "join_ref": "1",
    });
    socket.send(Message::text(join.to_string())).await.unwrap();
    let reply = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Message::Text(text) = socket.next().await.unwrap().unwrap() {
                let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                if frame["event"] == "phx_reply" {
                    return frame;
                }
            }
        }
    })
    .await
    .expect("a join reply");
    assert_eq!(reply["payload"]["status"], "ok", "{reply}");
}

#[tokio::test]
async fn a_certificate_written_over_the_files_is_served_to_new_connections() {
    let authority = Authority::new();
    let first = authority.issue("first.sm8.test");
    let files = CertificateFiles::new(&first);
    let app = spawn_https(&files, |args| args.tls.tls_reload_interval_seconds = 1).await;
    assert_eq!(served_certificate(&authority, app.address).await, first.der);

    let second = authority.issue("second.sm8.test");
    files.write(&second);
    let deadline = Instant::now() + PATIENCE;
    while served_certificate(&authority, app.address).await != second.der {
        assert!(Instant::now() < deadline, "the new certificate was never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn start_up_fails_with_a_clear_message_for_half_a_configuration_or_an_unreadable_file() {
    let authority = Authority::new();
    let files = CertificateFiles::new(&authority.issue("first.sm8.test"));
    let mut args = serve_args("sqlite::memory:");
    args.tls.tls_cert = Some(files.cert());
    let error = format!("{:#}", Server::build(&args).await.err().unwrap());
    assert!(
        error.contains("TLS_CERT (--tls-cert) is set without TLS_KEY"),
        "{error}"
    );

    std::fs::write(files.key(), "not a key").unwrap();
    files.configure(&mut args);
    let error = format!("{:#}", Server::build(&args).await.err().unwrap());
    assert!(error.contains("key.pem holds no usable PEM private key"), "{error}");
}

/// The `serve` binary over https on a free port, and every line it prints.
struct Binary {
    child: tokio::process::Child,
    printed: Arc<Mutex<Vec<String>>>,
    address: String,
}

impl Binary {
    async fn start(files: &CertificateFiles, database: &Path) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sm8-webhooks"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("DATABASE_URL", format!("sqlite://{}", database.display()))
            .env("TLS_CERT", files.cert())
            .env("TLS_KEY", files.key())
            .env("TLS_RELOAD_INTERVAL_SECONDS", "0")
            .env("WORKERS", "0")
            .env("SYNC_INTERVAL_SECONDS", "0")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the sm8-webhooks binary starts");
        let printed: Arc<Mutex<Vec<String>>> = Arc::default();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let printed = printed.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    printed.lock().await.push(line);
                }
            });
        }
        let mut binary = Binary {
            child,
            printed,
            address: String::new(),
        };
        let banner = binary.printed_line("serving on https://").await;
        binary.address = banner.split_once("serving on https://").unwrap().1.trim().to_owned();
        binary
    }

    /// The first line printed that holds `text`, waiting for it.
    async fn printed_line(&self, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE * 3;
        loop {
            if let Some(line) = self.printed.lock().await.iter().find(|line| line.contains(text)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "never printed {text:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn hang_up(&self) {
        let pid = self.child.id().unwrap().to_string();
        let status = Command::new("kill").args(["-HUP", &pid]).status().await.unwrap();
        assert!(status.success());
    }
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_an_unusable_one_leaves_the_last_served() {
    let authority = Authority::new();
    let first = authority.issue("first.sm8.test");
    let files = CertificateFiles::new(&first);
    let data = TempDir::new().unwrap();
    let binary = Binary::start(&files, &data.path().join("sm8.db")).await;
    assert_eq!(served_certificate(&authority, &binary.address).await, first.der);

    // Polling is off: only the SIGHUP makes the server read the files.
    let second = authority.issue("second.sm8.test");
    files.write(&second);
    binary.hang_up().await;
    binary.printed_line("serving the new TLS certificate").await;
    assert_eq!(served_certificate(&authority, &binary.address).await, second.der);

    std::fs::write(
        files.cert(),
        "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    binary.hang_up().await;
    let warning = binary.printed_line("keeping the current certificate").await;
    assert!(warning.contains("cert.pem"), "the warning names the file: {warning}");
    assert_eq!(served_certificate(&authority, &binary.address).await, second.der);
}
