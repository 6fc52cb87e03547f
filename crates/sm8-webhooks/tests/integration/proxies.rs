//! Behind a reverse proxy named in `TRUSTED_PROXIES`, the per-address limits count the client the proxy forwarded
//! (`X-Forwarded-For`); from any other peer the header is ignored, so a client cannot pick its own address.

use std::sync::atomic::{AtomicUsize, Ordering};

use leptos::server_fn::ServerFn;
use server::throttle::{TrustedProxies, SIGN_INS_PER_MINUTE};

use crate::common::{serve_args, spawn_app_with, TestApp};

async fn spawn_app_trusting(proxies: &str) -> TestApp {
    let mut args = serve_args("");
    args.processor.workers = 0;
    args.listen.trusted_proxies = TrustedProxies::parse(proxies).unwrap();
    spawn_app_with(args).await
}

/// A wrong sign-in said to come from `forwarded_for`; its status. Each tries another email, so that only the
/// per-address limit can refuse it.
async fn sign_in_forwarded_for(app: &TestApp, forwarded_for: &str) -> u16 {
    static ATTEMPT: AtomicUsize = AtomicUsize::new(0);
    let email = format!("nobody-{}@example.com", ATTEMPT.fetch_add(1, Ordering::Relaxed));
    app.client
        .post(app.url(app::directory::api::SignIn::PATH))
        .header("sec-fetch-site", "same-origin")
        .header("x-forwarded-for", forwarded_for)
        .json(&serde_json::json!({ "email": email, "password": "wrong" }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_sign_ins_are_limited_per_forwarded_client() {
    // The tests' connections come from 127.0.0.1: here, the proxy.
    let app = spawn_app_trusting("127.0.0.0/8").await;
    for _ in 0..SIGN_INS_PER_MINUTE {
        assert_eq!(sign_in_forwarded_for(&app, "203.0.113.7").await, 401);
    }
    assert_eq!(sign_in_forwarded_for(&app, "203.0.113.7").await, 429);
    assert_eq!(
        sign_in_forwarded_for(&app, "198.51.100.4, 203.0.113.7").await,
        429,
        "what the client wrote left of the address the proxy saw changes nothing"
    );
    assert_eq!(
        sign_in_forwarded_for(&app, "203.0.113.8").await,
        401,
        "another client behind the same proxy has its own limit"
    );
}

#[tokio::test]
async fn from_a_peer_that_is_not_a_trusted_proxy_the_forwarded_header_is_ignored() {
    let app = spawn_app_trusting("192.0.2.1").await;
    for attempt in 0..SIGN_INS_PER_MINUTE {
        assert_eq!(sign_in_forwarded_for(&app, &format!("203.0.113.{attempt}")).await, 401);
    }
    assert_eq!(
        sign_in_forwarded_for(&app, "203.0.113.200").await,
        429,
        "every attempt counted against the connection's own address"
    );
}
