//! Every malformed request gets a 4xx with a JSON reason, never a 500, an empty body or the wrong status: bad
//! cursors, wrong methods, oversized management bodies, garbage webhooks, JSON that says two things, and server
//! functions asked without a session or with a wrong token.

use leptos::server_fn::ServerFn;
use reqwest::header::{ALLOW, CONTENT_TYPE, COOKIE};
use serde_json::{json, Value};
use server::secret::Secret;

use crate::common::{seed_event, serve_args, spawn_app, spawn_app_with, ADMIN_TOKEN};

async fn reason(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("a JSON body");
    body["error"].as_str().expect("an error reason").to_owned()
}

#[tokio::test]
async fn a_cursor_that_no_page_gave_is_a_bad_request() {
    let app = spawn_app().await;
    let response = app.manage("action=events&cursor=not-a-cursor").await;
    assert_eq!(response.status(), 400);
    assert!(reason(response).await.contains("not a page cursor"));
}

#[tokio::test]
async fn a_wrong_method_on_the_receiver_answers_405_with_a_reason_and_the_allowed_methods() {
    let app = spawn_app().await;
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::PATCH] {
        let response = app
            .client
            .request(method.clone(), app.url("/api/webhooks/sm8"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        let allow = response.headers()[ALLOW].to_str().unwrap().to_owned();
        assert!(allow.contains("POST") && allow.contains("GET"), "{allow}");
        assert!(reason(response).await.contains(method.as_str()));
    }
}

#[tokio::test]
async fn an_oversized_management_body_is_too_large_not_malformed() {
    let app = spawn_app().await;
    let padding = "x".repeat(server::manage::MAX_ACTION_BYTES + 1);
    let response = app
        .client
        .post(app.url("/api/webhooks/management"))
        .bearer_auth(ADMIN_TOKEN)
        .header(CONTENT_TYPE, "application/json")
        .body(json!({"action": "cleanup", "olderThanDays": 30, "padding": padding}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(reason(response).await.contains("exceeds"));
}

#[tokio::test]
async fn a_garbage_body_with_a_valid_url_token_is_a_bad_request() {
    let mut args = serve_args("sqlite::memory:");
    args.ingest.webhook_url_token = Some(Secret::new("url-token"));
    let app = spawn_app_with(args).await;
    let response = app
        .client
        .post(app.url("/api/webhooks/sm8?token=url-token"))
        .body("this is not a webhook")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_signed_body_that_repeats_a_key_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let body = r#"{"object_type": "Job", "object_uuid": "job-1", "event_type": "updated",
        "changes": {"status": "Quote"}, "changes": {"status": "Completed"}}"#;
    let response = app.post_signed(body).await;
    assert_eq!(response.status(), 400);
    assert!(reason(response).await.contains("appears twice"));
    assert_eq!(app.manage_json("action=stats").await["total"], 0);
}

#[tokio::test]
async fn server_functions_answer_the_status_of_their_error() {
    let app = spawn_app().await;
    let post = |path: &'static str, arguments: Value| {
        app.client
            .post(app.url(path))
            .header("sec-fetch-site", "same-origin")
            .json(&arguments)
            .send()
    };
    let wrong_token = post(
        app::directory::api::SignIn::PATH,
        json!({"email": "nobody@example.test", "password": "wrong"}),
    )
    .await
    .unwrap();
    assert_eq!(wrong_token.status(), 401);
    let no_session = post(app::api::GetStats::PATH, json!({})).await.unwrap();
    assert_eq!(no_session.status(), 401);
    let portal_without_session = post(app::portal::api::FetchPortalJobs::PATH, json!({})).await.unwrap();
    assert_eq!(portal_without_session.status(), 401);
}

#[tokio::test]
async fn dashboard_pages_answer_the_status_they_show_on_every_request() {
    let app = spawn_app().await;
    let stored = app.post_signed(&seed_event("job", "page-job", "Quote")).await;
    let receipt: Value = stored.json().await.unwrap();
    let event_id = receipt["event_ids"][0].as_str().unwrap().to_owned();
    let page = |path: String, cookie: Option<&str>| {
        let mut request = app.client.get(app.url(&path));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send()
    };
    let event_page = format!("/admin/webhook-dashboard/events/{event_id}");
    let missing_page = format!("/admin/webhook-dashboard/events/{}", uuid::Uuid::now_v7());
    for path in ["/admin/webhook-dashboard".to_owned(), event_page.clone()] {
        let without_session = page(path.clone(), None).await.unwrap();
        assert_eq!(without_session.status(), 401, "{path}");
        assert!(without_session.text().await.unwrap().contains("Sign in"), "{path}");
    }
    let cookie = app.admin_session_cookie().await;
    for _ in 0..5 {
        assert_eq!(
            page("/admin/webhook-dashboard".into(), Some(&cookie))
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(page(event_page.clone(), Some(&cookie)).await.unwrap().status(), 200);
        let missing = page(missing_page.clone(), Some(&cookie)).await.unwrap();
        assert_eq!(missing.status(), 404);
        assert!(missing.text().await.unwrap().contains("no event"));
    }
}

#[tokio::test]
async fn a_delivery_with_more_events_than_allowed_is_refused_whole() {
    let mut args = serve_args("sqlite::memory:");
    args.ingest.max_events_per_delivery = 3;
    let app = spawn_app_with(args).await;
    let entries: Vec<Value> = (0..4)
        .map(|n| json!({"uuid": format!("job-{n}"), "changed_fields": ["status"], "time": "2024-01-01 00:00:00"}))
        .collect();
    let callback =
        json!({"object": "job", "entry": entries, "resource_url": "https://api.servicem8.com/api_1.0/job.json"});
    let response = app.post_signed(&callback.to_string()).await;
    assert_eq!(response.status(), 413);
    assert!(reason(response).await.contains("at most 3 events"));
    assert_eq!(app.manage_json("action=stats").await["total"], 0);
    let three =
        json!({"object": "job", "entry": &entries[..3], "resource_url": "https://api.servicem8.com/api_1.0/job.json"});
    assert_eq!(app.post_signed(&three.to_string()).await.status(), 200);
}
