//! Sends to a real SMTP server: aiosmtpd (Python), writing what it receives to a maildir that the tests read.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::destinations::receivers::{attempt, client, failure, refusing_address, DELIVERY_ID};
use crate::destinations::{
    send, AttemptReport, Destination, DestinationSecrets, DestinationSettings, EmailSecrets, EmailSettings, ErrorClass,
    SmtpSecurity,
};
use crate::rules::template::RenderedMessage;
use crate::rules::MessageBody;
use crate::secret::Secret;

const AIOSMTPD_MISSING: &str = "the email tests send to aiosmtpd, which is not installed: \
                                run `make smtp-test-deps` (python3 -m pip install aiosmtpd==1.4.6)";
const USERNAME: &str = "office";
const PASSWORD: &str = "correct horse";
/// How long aiosmtpd may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// An aiosmtpd process on a free port, delivering into a maildir; ended when dropped.
struct SmtpServer {
    port: u16,
    maildir: PathBuf,
    _child: Child,
    _directory: TempDir,
}

impl SmtpServer {
    /// aiosmtpd's own command line: any client may send.
    async fn open() -> SmtpServer {
        SmtpServer::start(|command, port, maildir| {
            command
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(maildir);
        })
        .await
    }

    /// A server that takes mail only after AUTH as [`USERNAME`] with [`PASSWORD`].
    async fn with_auth() -> SmtpServer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests-support/smtp_auth_server.py");
        SmtpServer::start(|command, port, maildir| {
            command
                .args([script, "127.0.0.1", &port.to_string()])
                .arg(maildir)
                .args([USERNAME, PASSWORD]);
        })
        .await
    }

    async fn start(arguments: impl FnOnce(&mut Command, u16, &PathBuf)) -> SmtpServer {
        let installed = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(installed, "{AIOSMTPD_MISSING}");
        let directory = tempfile::tempdir().unwrap();
        let maildir = directory.path().join("maildir");
        let log_path = directory.path().join("smtp.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let port = free_port().await;
        let mut command = Command::new("python3");
        arguments(&mut command, port, &maildir);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("python3 starts");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(status) = child.try_wait().unwrap() {
                panic!("aiosmtpd exited ({status}) before listening:\n{}", log());
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "aiosmtpd is not listening on {port}:\n{}",
                log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        SmtpServer {
            port,
            maildir,
            _child: child,
            _directory: directory,
        }
    }

    /// Every message received so far, as stored, with `\n` line ends.
    fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .map(|entry| {
                std::fs::read_to_string(entry.unwrap().path())
                    .unwrap()
                    .replace("\r\n", "\n")
            })
            .collect()
    }

    fn only_message(&self) -> StoredEmail {
        let messages = self.messages();
        assert_eq!(messages.len(), 1, "{messages:?}");
        StoredEmail(messages.into_iter().next().unwrap())
    }
}

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

struct StoredEmail(String);

impl StoredEmail {
    /// The value of a top-level header.
    fn header(&self, name: &str) -> &str {
        let head = self.0.split("\n\n").next().unwrap();
        head.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name).then(|| value.trim())
            })
            .unwrap_or_else(|| panic!("no {name} header in\n{}", self.0))
    }

    fn contains(&self, text: &str) -> bool {
        self.0.contains(text)
    }
}

fn settings(port: u16, security: SmtpSecurity, username: Option<&str>) -> EmailSettings {
    EmailSettings {
        host: "127.0.0.1".into(),
        port,
        security,
        username: username.map(str::to_owned),
        from: "SM8 Webhooks <alerts@example.com>".into(),
        to: vec!["office@example.com".into(), "Boss <boss@example.com>".into()],
    }
}

fn destination(settings: EmailSettings, password: Option<&str>) -> Destination {
    let secrets = EmailSecrets {
        password: password.map(Secret::new),
    };
    Destination::new(
        "office-email",
        DestinationSettings::Email(settings),
        DestinationSecrets::Email(secrets),
    )
    .unwrap()
}

async fn send_to(destination: &Destination, body: &MessageBody) -> AttemptReport {
    send(&client(), destination, &attempt(body)).await
}

#[tokio::test]
async fn an_email_with_text_and_html_goes_out_as_alternatives_after_signing_in() {
    let server = SmtpServer::with_auth().await;
    let destination = destination(
        settings(server.port, SmtpSecurity::None, Some(USERNAME)),
        Some(PASSWORD),
    );
    let body = MessageBody::Rendered(RenderedMessage {
        subject: Some("Quote accepted: job 1042".into()),
        text: Some("Accepted: Fix the leak".into()),
        html: Some("<p>Accepted: <b>Fix the leak</b></p>".into()),
        blocks: None,
    });

    let report = send_to(&destination, &body).await;

    assert!(report.is_delivered(), "{report:?}");
    assert_eq!(report.status, None);
    assert!(
        report.response_excerpt.as_deref().unwrap().starts_with("250"),
        "{report:?}"
    );
    let email = server.only_message();
    assert_eq!(email.header("From"), "\"SM8 Webhooks\" <alerts@example.com>");
    assert_eq!(email.header("To"), "office@example.com, Boss <boss@example.com>");
    assert_eq!(email.header("X-RcptTo"), "office@example.com, boss@example.com");
    assert_eq!(email.header("Subject"), "Quote accepted: job 1042");
    assert_eq!(email.header("X-SM8-Delivery"), DELIVERY_ID);
    assert_eq!(email.header("Message-ID"), format!("<{DELIVERY_ID}@example.com>"));
    assert_eq!(email.header("Date"), "Wed, 01 May 2024 04:05:00 +0000");
    assert!(
        email.header("Content-Type").starts_with("multipart/alternative"),
        "{}",
        email.0
    );
    let part = |content_type: &str, content: &str| {
        format!("Content-Type: {content_type}; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n{content}\n")
    };
    assert!(
        email.contains(&part("text/plain", "Accepted: Fix the leak")),
        "{}",
        email.0
    );
    assert!(
        email.contains(&part("text/html", "<p>Accepted: <b>Fix the leak</b></p>")),
        "{}",
        email.0
    );
}

#[tokio::test]
async fn a_json_message_arrives_as_pretty_text_under_the_destinations_subject() {
    let server = SmtpServer::open().await;
    let destination = destination(settings(server.port, SmtpSecurity::None, None), None);
    let body = MessageBody::Json(json!({"job": "1042", "status": "Completed"}));

    let report = send_to(&destination, &body).await;

    assert!(report.is_delivered(), "{report:?}");
    let email = server.only_message();
    assert_eq!(email.header("Subject"), "SM8 Webhooks: office-email");
    assert_eq!(email.header("X-SM8-Delivery"), DELIVERY_ID);
    assert!(email.header("Content-Type").starts_with("text/plain"), "{}", email.0);
    assert!(
        email.contains("\n\n{\n  \"job\": \"1042\",\n  \"status\": \"Completed\"\n}"),
        "{}",
        email.0
    );
}

#[tokio::test]
async fn a_subject_given_with_the_attempt_names_a_message_that_has_none() {
    let server = SmtpServer::open().await;
    let destination = destination(settings(server.port, SmtpSecurity::None, None), None);
    let body = MessageBody::Json(json!("Export finished"));
    let attempt = crate::destinations::Attempt {
        subject: Some("Nightly export"),
        ..attempt(&body)
    };

    let report = send(&client(), &destination, &attempt).await;

    assert!(report.is_delivered(), "{report:?}");
    let email = server.only_message();
    assert_eq!(email.header("Subject"), "Nightly export");
    assert!(email.contains("\n\nExport finished"), "{}", email.0);
}

#[tokio::test]
async fn a_wrong_password_is_an_smtp_failure_and_sends_nothing() {
    let server = SmtpServer::with_auth().await;
    let destination = destination(settings(server.port, SmtpSecurity::None, Some(USERNAME)), Some("wrong"));

    let report = send_to(&destination, &MessageBody::Json(json!("hello"))).await;

    let (class, message) = failure(&report);
    assert_eq!(class, ErrorClass::Smtp, "{report:?}");
    assert!(message.contains("535"), "{message}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn starttls_is_required_when_the_settings_ask_for_it() {
    let server = SmtpServer::open().await;
    let destination = destination(settings(server.port, SmtpSecurity::Starttls, None), None);

    let report = send_to(&destination, &MessageBody::Json(json!("hello"))).await;

    let (class, message) = failure(&report);
    assert_eq!(class, ErrorClass::Smtp, "{report:?}");
    assert!(message.contains("STARTTLS"), "{message}");
    assert!(server.messages().is_empty(), "nothing goes out in plain text");
}

#[tokio::test]
async fn implicit_tls_to_a_plain_server_is_a_tls_failure() {
    let server = SmtpServer::open().await;
    let destination = destination(settings(server.port, SmtpSecurity::Tls, None), None);

    let report = send_to(&destination, &MessageBody::Json(json!("hello"))).await;

    assert_eq!(failure(&report).0, ErrorClass::Tls, "{report:?}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_server_that_refuses_connections_is_a_network_failure() {
    let port = refusing_address().await.port();
    let destination = destination(settings(port, SmtpSecurity::None, None), None);

    let report = send_to(&destination, &MessageBody::Json(json!("hello"))).await;

    assert_eq!(failure(&report).0, ErrorClass::Network, "{report:?}");
}
