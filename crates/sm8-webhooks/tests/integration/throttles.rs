//! Guessing is limited per client address and, for sign-ins, per email: sign-ins, wrong bearer tokens and portal
//! links past their limits are answered 429 with Retry-After, and a client that sent too many wrong bearer tokens
//! is refused even with the right one until the limit refills. Every refused sign-in is audited. One address holds
//! at most its share of the relay's websockets.

use reqwest::header::RETRY_AFTER;
use server::backend::SIGN_INS_PER_EMAIL_PER_MINUTE;
use server::throttle::{BEARER_FAILURES_PER_MINUTE, PORTAL_LINKS_PER_MINUTE, SIGN_INS_PER_MINUTE};

use std::time::Instant;

use crate::common::realtime_client::{spawn_relay_with, RealtimeClient, ANON_KEY};
use crate::common::receiver::PATIENCE;
use crate::common::users::{ensure_user, store_of, try_sign_in, OWNER_EMAIL, PASSWORD};
use crate::common::{spawn_app, ADMIN_TOKEN};

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn failed_sign_ins_past_the_limit_are_refused_with_when_to_try_again() {
    let app = spawn_app().await;
    ensure_user(&app, OWNER_EMAIL, true, &[]).await;
    for attempt in 0..SIGN_INS_PER_MINUTE {
        // A different email each time: the address's limit, not the email's.
        let email = format!("guess-{attempt}@example.test");
        assert_eq!(try_sign_in(&app, &email, "wrong password").await.status(), 401);
    }
    let over = try_sign_in(&app, "one-more@example.test", "wrong password").await;
    assert_eq!(over.status(), 429, "the failure past the limit");
    let refused = try_sign_in(&app, OWNER_EMAIL, PASSWORD).await;
    assert_eq!(refused.status(), 429);
    assert!((1..=60).contains(&retry_after(&refused)));
    let error: serde_json::Value = refused.json().await.unwrap();
    assert!(
        error.to_string().contains("RateLimited"),
        "the dashboard's own error: {error}"
    );
}

#[tokio::test]
async fn successful_sign_ins_are_never_limited() {
    let app = spawn_app().await;
    ensure_user(&app, OWNER_EMAIL, true, &[]).await;
    for _ in 0..SIGN_INS_PER_MINUTE + SIGN_INS_PER_EMAIL_PER_MINUTE {
        assert_eq!(try_sign_in(&app, OWNER_EMAIL, PASSWORD).await.status(), 200);
    }
}

#[tokio::test]
async fn failed_sign_ins_to_one_email_past_its_limit_are_refused_and_every_failure_is_audited() {
    let app = spawn_app().await;
    ensure_user(&app, OWNER_EMAIL, true, &[]).await;
    for _ in 0..SIGN_INS_PER_EMAIL_PER_MINUTE {
        assert_eq!(try_sign_in(&app, OWNER_EMAIL, "wrong password").await.status(), 401);
    }
    assert_eq!(
        try_sign_in(&app, OWNER_EMAIL, "wrong password").await.status(),
        429,
        "the failure past the limit"
    );
    let refused = try_sign_in(&app, OWNER_EMAIL, PASSWORD).await;
    assert_eq!(
        refused.status(),
        429,
        "even the right password, until the limit refills"
    );
    assert!((1..=60).contains(&retry_after(&refused)));
    let store = store_of(&app).await;
    let audited = store
        .audit_page(&server::store::directory::AuditQuery {
            action: Some("sign_in".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let outcomes: Vec<&str> = audited.iter().map(|line| line.outcome.as_str()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "failure").count(),
        SIGN_INS_PER_EMAIL_PER_MINUTE as usize + 1
    );
    assert_eq!(outcomes.iter().filter(|o| **o == "denied").count(), 1, "{outcomes:?}");
    assert!(audited.iter().all(|line| line.target.as_deref() == Some(OWNER_EMAIL)));
}

#[tokio::test]
async fn after_too_many_wrong_bearer_tokens_even_the_right_one_is_refused() {
    let app = spawn_app().await;
    let manage = |token: &'static str| {
        app.client
            .get(app.url("/api/webhooks/management?action=stats"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(manage(ADMIN_TOKEN).await.unwrap().status(), 200);
    for _ in 0..BEARER_FAILURES_PER_MINUTE {
        assert_eq!(manage("wrong").await.unwrap().status(), 401);
    }
    let refused = manage("wrong").await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!((1..=60).contains(&retry_after(&refused)));
    assert_eq!(
        manage(ADMIN_TOKEN).await.unwrap().status(),
        429,
        "the guesser learns nothing"
    );
}

#[tokio::test]
async fn portal_links_past_the_limit_are_refused_before_they_are_looked_up() {
    let app = spawn_app().await;
    let enter = || {
        app.client
            .get(app.url("/portal/enter?token=not-a-link"))
            .header("accept", "application/json")
            .send()
    };
    for _ in 0..PORTAL_LINKS_PER_MINUTE {
        assert_eq!(enter().await.unwrap().status(), 410);
    }
    let refused = enter().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!((1..=60).contains(&retry_after(&refused)));
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_websockets_and_a_closed_one_frees_its_place() {
    let relay = spawn_relay_with(|args| args.realtime.realtime_max_connections_per_address = 2).await;
    let address = relay.app.address;
    let first = RealtimeClient::connect(address, "1.0.0").await;
    let _second = RealtimeClient::connect(address, "1.0.0").await;
    assert_eq!(
        RealtimeClient::try_connect(address, ANON_KEY, "1.0.0").await.err(),
        Some(429)
    );
    drop(first);
    // The server gives the place back once it sees the connection close.
    let deadline = Instant::now() + PATIENCE;
    loop {
        match RealtimeClient::try_connect(address, ANON_KEY, "1.0.0").await {
            Ok(_) => break,
            Err(status) => {
                assert_eq!(status, 429);
                assert!(
                    Instant::now() < deadline,
                    "the closed connection's place was never given back"
                );
                tokio::task::yield_now().await;
            }
        }
    }
}
