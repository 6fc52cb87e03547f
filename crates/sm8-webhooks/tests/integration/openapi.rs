//! The OpenAPI document at `/api/openapi.json`: it describes the API the server really serves. Every documented
//! operation is a route that answers JSON (not the pages' fallback), and the document names exactly the API's
//! operations, with the shapes the handlers answer with.

use std::collections::BTreeSet;

use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};

use crate::common::realtime_client::{admin_token, with_realtime};
use crate::common::{serve_args, spawn_app, spawn_app_with, ADMIN_TOKEN};

async fn document(app: &crate::common::TestApp) -> Value {
    let response = app.client.get(app.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    response.json().await.unwrap()
}

fn operations(document: &Value) -> BTreeSet<String> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            operations.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    operations
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_names_every_operation_of_the_api() {
    let app = spawn_app().await;
    let document = document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");
    let expected: BTreeSet<String> = [
        "GET /api/webhooks/management",
        "POST /api/webhooks/management",
        "GET /api/webhooks/management/analytics",
        "GET /api/webhooks/management/analytics/export",
        "GET /api/webhooks/management/analytics/digest",
        "POST /api/webhooks/management/analytics/digest",
        "GET /api/webhooks/sm8",
        "POST /api/webhooks/sm8",
        "GET /api/webhooks/sm8/{account}",
        "POST /api/webhooks/sm8/{account}",
        "GET /healthz",
        "GET /readyz",
        "GET /portal/attachments/{uuid}",
        "POST /realtime/v1/api/broadcast",
        "POST /realtime/v1/api/broadcast/{topic}/events/{event}",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(operations(&document), expected);
    let schemes = document["components"]["securitySchemes"].as_object().unwrap();
    for scheme in ["bearer", "dashboard_session", "portal_session", "realtime_apikey"] {
        assert!(schemes.contains_key(scheme), "{scheme}");
    }
}

#[tokio::test]
async fn every_documented_operation_is_a_route_that_answers_json() {
    let app = spawn_app_with(with_realtime(serve_args("sqlite::memory:"))).await;
    let document = document(&app).await;
    for operation in operations(&document) {
        let (method, path) = operation.split_once(' ').unwrap();
        let path = path
            .replace("{account}", "default")
            .replace("{uuid}", "00000000-0000-4000-8000-000000000000")
            .replace("{topic}", "jobs")
            .replace("{event}", "changed");
        let request = match method {
            "GET" => app.client.get(app.url(&path)),
            "POST" => app
                .client
                .post(app.url(&path))
                .header(CONTENT_TYPE, "application/json")
                .body("{}"),
            other => panic!("an undocumented method {other}"),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert_ne!(status, 405, "{operation}: the router has no such method");
        let content_type = response.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with("application/json"),
            "{operation} answered {status} {content_type}: not a route of the API"
        );
        let documented = &document["paths"][operation.split_once(' ').unwrap().1][method.to_lowercase()]["responses"]
            [status.to_string()];
        assert!(
            documented.is_object(),
            "{operation} answered {status}, which it does not document"
        );
    }
}

#[tokio::test]
async fn reads_and_changes_answer_the_shapes_the_document_names() {
    let app = spawn_app_with(with_realtime(serve_args("sqlite::memory:"))).await;
    let document = document(&app).await;
    let read_shapes = document["components"]["schemas"]["ReadAnswer"]["anyOf"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(read_shapes, 17, "one shape per read action");
    let change_shapes = document["components"]["schemas"]["ChangeAnswer"]["anyOf"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(change_shapes, 22, "one shape per kind of change answer");

    let stats = app.manage_json("action=stats").await;
    assert!(stats["by_status"].is_object(), "{stats}");
    let stats_schema = &document["components"]["schemas"]["Stats"];
    for field in stats_schema["required"].as_array().unwrap() {
        assert!(
            stats.get(field.as_str().unwrap()).is_some(),
            "Stats.{field} documented, not answered"
        );
    }

    let response = app
        .client
        .post(app.url("/api/webhooks/management"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"action": "retry_failed_events", "dryRun": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer, json!({"success": true, "dryRun": true, "wouldRetry": 0}));

    let broadcast = app
        .client
        .post(app.url("/realtime/v1/api/broadcast"))
        .header("apikey", crate::common::realtime_client::ANON_KEY)
        .bearer_auth(admin_token())
        .json(&json!({"messages": [{"topic": "jobs", "event": "changed", "payload": {}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(broadcast.status(), 202);
    assert!(document["paths"]["/realtime/v1/api/broadcast"]["post"]["responses"]["202"].is_object());
}
