//! `simulate` against a real receiver started with `Server::build`.

use std::time::Duration;

use server::secret::Secret;
use sm8_tools::simulate::{self, Progress, SimulateArgs, WebhookFormat};

#[tokio::test]
async fn simulate_sends_seed_webhooks_with_duplicates_and_bad_signatures_and_counts_the_answers() {
    let app = crate::common::spawn_app().await;
    let args = SimulateArgs {
        format: WebhookFormat::Seed,
        duplicates: 0.25,
        bad_signatures: 0.2,
        reorder: true,
        concurrency: 8,
        secret: Some(Secret::new(crate::common::WEBHOOK_SECRET)),
        seed: Some(7),
        ..SimulateArgs::new(app.url("/api/webhooks/sm8"), 40)
    };
    let summary = simulate::run(&args, Progress::Hidden).await.unwrap();
    assert!(summary.is_clean(), "{summary}");
    assert_eq!(
        (summary.sent, summary.duplicates_sent, summary.bad_signatures_sent),
        (40, 10, 8)
    );
    assert_eq!(summary.accepted, 32);
    assert_eq!(summary.rejected_as_expected, 8);
    assert_eq!(
        summary.duplicates_reported, 10,
        "every repeated delivery is reported as a duplicate"
    );
    assert!(summary.latency.max >= summary.latency.p50 && summary.latency.max > Duration::ZERO);
    let stats = app.manage_json("action=stats").await;
    assert_eq!(stats["total"], 22, "each new event is stored once: {stats}");
}

#[tokio::test]
async fn simulate_reports_answers_it_did_not_expect() {
    let app = crate::common::spawn_app().await;
    // Deliveries signed with the wrong secret are rejected though simulate thinks them authentic.
    let args = SimulateArgs {
        secret: Some(Secret::new("not-the-receivers-secret")),
        ..SimulateArgs::new(app.url("/api/webhooks/sm8"), 5)
    };
    let summary = simulate::run(&args, Progress::Hidden).await.unwrap();
    assert_eq!((summary.sent, summary.unexpected, summary.accepted), (5, 5, 0));
    assert!(
        summary.unexpected_samples[0].contains("401"),
        "{:?}",
        summary.unexpected_samples
    );
}

const APP_SECRET: &str = "simulated-app-secret";
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const URL_TOKEN: &str = "simulated-url-token";

/// A receiver that checks every format: seed HMAC, URL token, add-on JWT and Standard Webhooks.
async fn spawn_checking_every_format() -> crate::common::TestApp {
    let mut args = crate::common::serve_args("");
    args.ingest.webhook_url_token = Some(Secret::new(URL_TOKEN));
    args.ingest.servicem8_app_secret = Some(Secret::new(APP_SECRET));
    args.ingest.standard_webhook_secrets = vec![Secret::new(STANDARD_SECRET)];
    args.processor.workers = 0;
    crate::common::spawn_app_with(args).await
}

/// Sends 20 deliveries of `format` with 5 duplicates and 4 bad signatures, reordered, and checks the tally.
async fn simulate_format(format: WebhookFormat) {
    let app = spawn_checking_every_format().await;
    let args = SimulateArgs {
        format,
        duplicates: 0.25,
        bad_signatures: 0.2,
        reorder: true,
        app_secret: Some(Secret::new(APP_SECRET)),
        standard_secret: vec![Secret::new(STANDARD_SECRET)],
        token: Some(Secret::new(URL_TOKEN)),
        seed: Some(11),
        ..SimulateArgs::new(app.url("/api/webhooks/sm8"), 20)
    };
    let summary = simulate::run(&args, Progress::Hidden).await.unwrap();
    assert!(summary.is_clean(), "{format:?}: {summary}");
    assert_eq!((summary.accepted, summary.rejected_as_expected), (16, 4), "{format:?}");
    assert_eq!(summary.duplicates_reported, 5, "{format:?}: {summary}");
    assert_eq!(app.manage_json("action=stats").await["total"], 11, "{format:?}");
}

#[tokio::test]
async fn simulate_sends_object_callbacks_that_the_receiver_accepts() {
    simulate_format(WebhookFormat::Object).await;
}

#[tokio::test]
async fn simulate_sends_addon_jwts_that_the_receiver_accepts() {
    simulate_format(WebhookFormat::Addon).await;
}

#[tokio::test]
async fn simulate_sends_standard_webhooks_that_the_receiver_accepts() {
    simulate_format(WebhookFormat::Standard).await;
}

#[tokio::test]
async fn simulate_with_an_account_delivers_to_that_accounts_receiver() {
    let app = crate::common::spawn_app().await;
    for (path, body) in [
        (
            "/api/webhooks/management",
            serde_json::json!({"action": "create_account", "slug": "acme", "name": "Acme Ltd"}),
        ),
        (
            "/api/webhooks/management?account=acme",
            serde_json::json!({"action": "set_account_secret", "secret": "webhook_secret",
                "value": crate::common::WEBHOOK_SECRET}),
        ),
    ] {
        let answer = app
            .client
            .post(app.url(path))
            .bearer_auth(crate::common::ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    }
    let args = SimulateArgs {
        account: Some("acme".into()),
        secret: Some(Secret::new(crate::common::WEBHOOK_SECRET)),
        seed: Some(3),
        ..SimulateArgs::new(app.url("/api/webhooks/sm8"), 5)
    };
    let summary = simulate::run(&args, Progress::Hidden).await.unwrap();
    assert!(summary.is_clean(), "{summary}");
    assert_eq!(app.manage_json("action=stats&account=acme").await["total"], 5);
    assert_eq!(
        app.manage_json("action=stats").await["total"],
        0,
        "nothing for the default account"
    );
}
