//! Hostile pages: cross-site actions replayed as a browser would send them: another origin (another port on the same host is
//! the same *site*, so `SameSite=Strict` lets the admin's cookie through) posts to the dashboard's server
//! functions with every content type a plain form or a `no-cors` fetch can use. None may act; the dashboard's own
//! same-origin requests still do. And the headers that keep pages from being framed, sniffed or leaking links.

use leptos::server_fn::ServerFn;
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};
use serde_json::json;

use crate::common::{spawn_app, TestApp};

async fn total_events(app: &TestApp) -> i64 {
    app.manage_json("action=stats").await["total"].as_i64().unwrap()
}

fn test_event_body() -> String {
    json!({"event": {"object_type": "job", "object_uuid": "csrf-job", "event_type": "updated",
        "changes": {"status": "Hacked"}}})
    .to_string()
}

#[tokio::test]
async fn a_page_on_another_origin_cannot_act_with_the_admins_cookie() {
    let app = spawn_app().await;
    let cookie = app.admin_session_cookie().await;
    let attacker = format!("http://127.0.0.1:{}", app.address.port() + 1);
    let attacks: [(&str, Option<&str>, Option<&str>); 6] = [
        // (content type, Sec-Fetch-Site, Origin)
        ("text/plain", Some("same-site"), Some(&attacker)),
        ("application/x-www-form-urlencoded", Some("same-site"), Some(&attacker)),
        ("multipart/form-data; boundary=x", Some("cross-site"), Some(&attacker)),
        ("application/json", Some("same-site"), Some(&attacker)),
        ("text/plain", None, Some(&attacker)),
        ("text/plain", Some("same-site"), None),
    ];
    for path in [app::api::SendTestEvent::PATH, app::api::CleanupEvents::PATH] {
        for (content_type, site, origin) in attacks {
            let mut request = app
                .client
                .post(app.url(path))
                .header(COOKIE, &cookie)
                .header(CONTENT_TYPE, content_type)
                .body(if path == app::api::CleanupEvents::PATH {
                    json!({"older_than_days": 0}).to_string()
                } else {
                    test_event_body()
                });
            if let Some(site) = site {
                request = request.header("sec-fetch-site", site);
            }
            if let Some(origin) = origin {
                request = request.header(ORIGIN, origin);
            }
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), 403, "{path} with {content_type}, {site:?}, {origin:?}");
            let reason: serde_json::Value = answer.json().await.unwrap();
            assert!(reason["error"].as_str().unwrap().contains("refused"), "{reason}");
        }
    }
    assert_eq!(total_events(&app).await, 0, "no test event was created");

    // The dashboard itself, same origin, still acts.
    let own = app
        .client
        .post(app.url(app::api::SendTestEvent::PATH))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, "application/json")
        .header("sec-fetch-site", "same-origin")
        .header(ORIGIN, format!("http://{}", app.address))
        .body(test_event_body())
        .send()
        .await
        .unwrap();
    assert!(own.status().is_success(), "{}", own.status());
    assert_eq!(total_events(&app).await, 1);
}

#[tokio::test]
async fn a_request_a_form_could_send_does_not_act_even_with_this_origins_headers() {
    let app = spawn_app().await;
    let cookie = app.admin_session_cookie().await;
    let own_origin = format!("http://{}", app.address);
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut request = app
            .client
            .post(app.url(app::api::SendTestEvent::PATH))
            .header(COOKIE, &cookie)
            .header("sec-fetch-site", "same-origin")
            .header(ORIGIN, &own_origin)
            .body(test_event_body());
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 415, "{content_type:?}");
        let reason: serde_json::Value = answer.json().await.unwrap();
        assert!(
            reason["error"].as_str().unwrap().contains("application/json"),
            "{reason}"
        );
    }
    assert_eq!(total_events(&app).await, 0, "no test event was created");
}

#[tokio::test]
async fn pages_refuse_framing_sniffing_and_referrers_and_https_adds_hsts() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(app.url("/admin/webhook-dashboard"))
        .send()
        .await
        .unwrap();
    let headers = page.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("frame-ancestors 'none'") && policy.contains("form-action 'self'"),
        "{policy}"
    );
    assert!(
        headers.get("strict-transport-security").is_none(),
        "plain http: no HSTS"
    );
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no script nonce in {policy}"));
    assert!(
        policy.contains("'strict-dynamic'") && !policy.contains("unsafe-inline"),
        "{policy}"
    );
    let html = page.text().await.unwrap();
    let scripts = html.matches("<script").count();
    assert!(scripts > 0, "the page starts the app with a script");
    assert_eq!(
        html.matches(&format!("nonce=\"{nonce}\"")).count(),
        scripts,
        "every script of the page carries the policy's nonce: {html}"
    );
    let again = app
        .client
        .get(app.url("/admin/webhook-dashboard"))
        .send()
        .await
        .unwrap();
    let again = again.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(!again.contains(nonce), "a fresh nonce for every page");
    let api = app.manage("action=stats").await;
    assert_eq!(api.headers()["x-content-type-options"], "nosniff");
    assert!(
        api.headers().get("content-security-policy").is_none(),
        "JSON needs no page policy"
    );

    let data = tempfile::TempDir::new().unwrap();
    let mut args = crate::common::serve_args(&format!("sqlite://{}", data.path().join("sm8.db").display()));
    args.public_url = Some("https://hooks.example.com".into());
    args.processor.workers = 0;
    let behind_https = crate::common::spawn_with(args, data).await;
    let page = behind_https
        .client
        .get(behind_https.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["strict-transport-security"], "max-age=31536000");
}
