//! Secrets never reach the logs: the `sm8-webhooks serve` binary runs at `RUST_LOG=debug` with every secret
//! configured, is used the way operators, ServiceM8, admins and portal users use it, and none of the secrets
//! appears in anything it printed.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use server::ingest::signature::sign;
use servicem8_mock::{self as mock, MockConfig, ObjectKind};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::Mutex;

const ADMIN_TOKEN: &str = "admin-4c1b7f0e9d";
const WEBHOOK_SECRET: &str = "hmac-9a8b7c6d5e";
const URL_TOKEN: &str = "url-token-2f3e4d5c";
const METRICS_TOKEN: &str = "metrics-6e5d4c3b";
const JWT_SECRET: &str = "jwt-secret-1a2b3c4d";
const APP_SECRET: &str = "app-secret-8f7e6d5c";

/// Keeps every line `stream` prints.
fn keep_lines(stream: impl AsyncRead + Unpin + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            lines.lock().await.push(line);
        }
    });
}

#[tokio::test]
async fn no_configured_secret_appears_in_a_debug_log() {
    let account = mock::start(MockConfig {
        change_interval_ms: 0,
        companies: 1,
        jobs_per_company: 1,
        ..MockConfig::on_free_port()
    })
    .await
    .unwrap();
    let data = tempfile::TempDir::new().unwrap();
    let database_url = format!("sqlite://{}", data.path().join("sm8.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sm8-webhooks"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", &database_url)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("WEBHOOK_URL_TOKEN", URL_TOKEN)
        .env("METRICS_TOKEN", METRICS_TOKEN)
        .env("JWT_SECRET", JWT_SECRET)
        .env("SERVICEM8_APP_SECRET", APP_SECRET)
        .env("SERVICEM8_API_KEY", account.api_key())
        .env("SERVICEM8_BASE_URL", account.base_url())
        .env("SYNC_INTERVAL_SECONDS", "0")
        .env("POLL_INTERVAL_MS", "50")
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the sm8-webhooks binary starts");
    let printed: Arc<Mutex<Vec<String>>> = Arc::default();
    keep_lines(child.stdout.take().unwrap(), printed.clone());
    keep_lines(child.stderr.take().unwrap(), printed.clone());
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let found = printed
                .lock()
                .await
                .iter()
                .find_map(|line| line.split_once("serving on http://").map(|(_, a)| a.trim().to_owned()));
            if let Some(address) = found {
                return address;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("serving within 30 s");
    let base = format!("http://{address}");
    let client = reqwest::Client::new();

    // ServiceM8: a signed delivery, and an unsigned callback carrying the URL token in its query.
    let job = &account.uuids(ObjectKind::Job)[0];
    let body = json!({"object_type": "Job", "object_uuid": job, "event_type": "updated",
        "timestamp": "2024-01-01T00:00:00Z", "changes": {"status": "Quote"}})
    .to_string();
    let signed = client
        .post(format!("{base}/api/webhooks/sm8"))
        .header("content-type", "application/json")
        .header(
            "x-servicem8-signature",
            sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    let callback = client
        .post(format!("{base}/api/webhooks/sm8?token={URL_TOKEN}"))
        .json(&json!({"object": "job", "entry": [{"uuid": job, "changed_fields": ["status"], "time": "2024-01-01 00:00:01"}]}))
        .send()
        .await
        .unwrap();
    assert!(callback.status().is_success(), "{}", callback.status());
    // An admin, Prometheus, and a wrong token of each.
    for token in [ADMIN_TOKEN, "wrong-admin"] {
        client
            .get(format!("{base}/api/webhooks/management?action=stats"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
    }
    for token in [METRICS_TOKEN, "wrong-metrics"] {
        client
            .get(format!("{base}/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
    }
    // The event is processed (the API key travels to ServiceM8) before the node stops.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while account.request_count() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the event was not fetched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let printed = printed.lock().await.join("\n");
    assert!(printed.contains("serving on"), "the log was captured");
    assert!(
        printed.contains("/api/webhooks/sm8"),
        "requests were logged at debug:\n{printed}"
    );
    for secret in [
        ADMIN_TOKEN,
        WEBHOOK_SECRET,
        URL_TOKEN,
        METRICS_TOKEN,
        JWT_SECRET,
        APP_SECRET,
        account.api_key(),
    ] {
        assert!(!printed.contains(secret), "{secret} was logged");
    }
}
