//! Several accounts in one server, over HTTP: each has its own receiver (`404` for an unknown account, `410` for a
//! disabled one, nothing stored), its own events, and its members' roles decide what they may do.

use app::access::Role;
use leptos::server_fn::ServerFn;
use reqwest::header::COOKIE;
use serde_json::{json, Value};
use server::ingest::signature::sign;

use crate::common::users::member_session;
use crate::common::{seed_event, spawn_app, TestApp, ADMIN_TOKEN, WEBHOOK_SECRET};

/// Creates account `slug` through the management API with `ADMIN_TOKEN`; returns the answer.
async fn create_account(app: &TestApp, slug: &str) -> Value {
    let created = app
        .client
        .post(app.url("/api/webhooks/management"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"action": "create_account", "slug": slug, "name": format!("{slug} Ltd")}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    created.json().await.unwrap()
}

/// Sets the seed HMAC secret of `slug` (accounts start without one).
async fn set_webhook_secret(app: &TestApp, slug: &str) {
    let set = app
        .client
        .post(app.url(&format!("/api/webhooks/management?account={slug}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"action": "set_account_secret", "secret": "webhook_secret", "value": WEBHOOK_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200, "{}", set.text().await.unwrap());
}

async fn post_to(app: &TestApp, path: &str, body: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("content-type", "application/json")
        .header(
            "x-servicem8-signature",
            sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn total(app: &TestApp, account: &str) -> i64 {
    app.manage_json(&format!("action=stats&account={account}")).await["total"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn each_account_receives_at_its_own_url_and_sees_only_its_own_events() {
    let app = spawn_app().await;
    let created = create_account(&app, "acme").await;
    assert_eq!(created["account"]["slug"], "acme");
    assert_eq!(created["url_token"]["name"], "url_token");
    assert!(created["url_token"]["usage"]
        .as_str()
        .unwrap()
        .contains("/api/webhooks/sm8/acme?token="));
    set_webhook_secret(&app, "acme").await;

    let body = seed_event("job", "acme-job", "Quote");
    assert_eq!(post_to(&app, "/api/webhooks/sm8/acme", &body).await.status(), 200);
    // The same delivery to the default account is another account's event, not a duplicate.
    let receipt: Value = post_to(&app, "/api/webhooks/sm8", &body).await.json().await.unwrap();
    assert_eq!(receipt["duplicates"], 0, "deduplication is per account");
    assert_eq!(total(&app, "acme").await, 1);
    assert_eq!(total(&app, "default").await, 1);
    let listed = app.manage_json("action=events&account=acme").await;
    assert_eq!(listed["events"].as_array().unwrap().len(), 1);

    let unknown = post_to(&app, "/api/webhooks/sm8/nobody", &body).await;
    assert_eq!(unknown.status(), 404);
    assert!(unknown.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("no account"));

    let disabled = app
        .client
        .post(app.url("/api/webhooks/management?account=acme"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"action": "disable_account"}))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    let refused = post_to(
        &app,
        "/api/webhooks/sm8/acme",
        &seed_event("job", "acme-job-2", "Quote"),
    )
    .await;
    assert_eq!(refused.status(), 410);
    assert_eq!(total(&app, "acme").await, 1, "nothing stored for a disabled account");
}

#[tokio::test]
async fn a_viewer_reads_but_its_retry_is_forbidden_and_audited_while_an_admin_may_retry() {
    let app = spawn_app().await;
    let receipt: Value = app
        .post_signed(&seed_event("job", "role-job", "Quote"))
        .await
        .json()
        .await
        .unwrap();
    let event_id = receipt["event_ids"][0].as_str().unwrap().to_owned();
    let retry = |cookie: String| {
        let app = &app;
        let event_id = event_id.clone();
        async move {
            app.client
                .post(app.url(app::api::RetryEvent::PATH))
                .header(COOKIE, cookie)
                .header("sec-fetch-site", "same-origin")
                .json(&json!({ "event_id": event_id }))
                .send()
                .await
                .unwrap()
        }
    };
    let viewer = member_session(&app, "viewer@example.test", "default", Role::Viewer).await;
    let stats = app
        .client
        .post(app.url(app::api::GetStats::PATH))
        .header(COOKIE, &viewer)
        .header("sec-fetch-site", "same-origin")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), 200, "a viewer reads");
    assert_eq!(retry(viewer).await.status(), 403, "a viewer may not retry");

    let admin = member_session(&app, "admin@example.test", "default", Role::Admin).await;
    // The event is queued: an admin's retry is allowed and answered as a conflict, not refused.
    assert_eq!(retry(admin).await.status(), 409);

    let audit = app.manage_json("action=audit&auditAction=retry_event").await;
    let outcomes: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["failure", "denied"],
        "newest first: the admin's conflict, the viewer's refusal"
    );
}

#[tokio::test]
async fn an_admin_mints_a_portal_link_that_opens_its_accounts_company_once_and_the_minting_is_audited() {
    let app = spawn_app().await;
    create_account(&app, "acme").await;
    let minted = app
        .client
        .post(app.url("/api/webhooks/management?account=acme"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"action": "create_portal_link", "companyUuid": "acme-company", "ttlDays": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), 200);
    let minted: Value = minted.json().await.unwrap();
    let url = minted["url"].as_str().unwrap();
    assert!(url.starts_with(&app.url("/portal/enter?token=")), "{url}");

    let store = crate::common::users::store_of(&app).await;
    let token = url.split("token=").nth(1).unwrap();
    let company = store
        .redeem_portal_link(&server::auth::token_hash(token), server::store::now_millis())
        .await
        .unwrap();
    assert_eq!(
        company,
        Some(server::store::CompanyOf {
            account: "acme".into(),
            company_uuid: "acme-company".into()
        }),
        "the link is for the account's company"
    );

    let too_long = app
        .client
        .post(app.url("/api/webhooks/management?account=acme"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"action": "create_portal_link", "companyUuid": "acme-company", "ttlDays": 365}))
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), 400);

    let audit = app
        .manage_json("action=audit&account=acme&auditAction=create_portal_link")
        .await;
    let outcomes: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failure", "success"]);
}
