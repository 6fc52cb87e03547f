//! Every management action against every kind of caller: an owner, an admin and a viewer of the account, nobody,
//! and the owner of another account. Each action needs a role; below it the answer is `403`, without a session
//! `401`, and a member of another account gets `403` whatever their role there. (The dashboard's server functions
//! get the same matrix in `server_function_roles`.)

use app::access::Role;
use reqwest::header::COOKIE;
use serde_json::{json, Value};

use crate::common::users::{matrix_callers, member_session, MatrixCallers};
use crate::common::{spawn_app, TestApp};

/// One management request and the least role it needs.
struct Route {
    /// The read's query (`action=…`, or a path of its own and its query), or the change's name (or path).
    name: &'static str,
    needs: Role,
    /// `GET ?{name}` when `None`; else the `POST` body.
    body: Option<Value>,
}

/// A user id and a token id no one has: the change is allowed or refused before it finds nothing.
const NOBODY: &str = "00000000-0000-7000-8000-000000000000";

fn routes() -> Vec<Route> {
    let read = |query: &'static str| Route {
        name: query,
        needs: Role::Viewer,
        body: None,
    };
    let change = |name: &'static str, needs: Role, body: Value| Route {
        name,
        needs,
        body: Some(body),
    };
    vec![
        read("action=stats"),
        read("action=health"),
        read("action=throughput"),
        read("action=events"),
        read("action=event&id=00000000-0000-7000-8000-000000000000"),
        read("action=audit"),
        read("action=accounts"),
        read("action=account"),
        read("action=members"),
        read("action=tokens"),
        read("action=subscriptions"),
        read("action=rules"),
        read("action=destinations"),
        read("action=deliveries"),
        read("action=alerts"),
        read("action=alert_history"),
        change(
            "update_alert",
            Role::Admin,
            json!({"action": "update_alert", "id": NOBODY, "enabled": false, "renotifyMinutes": 0}),
        ),
        change(
            "acknowledge_alert",
            Role::Admin,
            json!({"action": "acknowledge_alert", "id": NOBODY}),
        ),
        change(
            "silence_alert",
            Role::Admin,
            json!({"action": "silence_alert", "id": NOBODY, "minutes": 60}),
        ),
        read("analytics?range=7d&dimension=error_class"),
        read("analytics/export?format=csv&range=24h"),
        change(
            "create_destination",
            Role::Admin,
            json!({"action": "create_destination", "name": "matrix", "kind": "webhook",
                "settings": {"url": "http://127.0.0.1:9/hook"}}),
        ),
        change(
            "create_rule",
            Role::Admin,
            json!({"action": "create_rule", "definition": {"name": "matrix", "when": {"stage": "processed"},
                "actions": []}}),
        ),
        change("analytics/digest", Role::Admin, json!({})),
        change(
            "retry_delivery",
            Role::Admin,
            json!({"action": "retry_delivery", "id": NOBODY}),
        ),
        change(
            "retry_event",
            Role::Admin,
            json!({"action": "retry_event", "event_id": NOBODY}),
        ),
        change(
            "retry_failed_events",
            Role::Admin,
            json!({"action": "retry_failed_events", "dry_run": false}),
        ),
        change(
            "cleanup",
            Role::Admin,
            json!({"action": "cleanup", "older_than_days": 3650}),
        ),
        change(
            "send_test_event",
            Role::Admin,
            json!({"action": "send_test_event", "event": {"object_type": "job", "object_uuid": "matrix-job",
                "event_type": "updated", "changes": {}}}),
        ),
        change(
            "create_portal_link",
            Role::Admin,
            json!({"action": "create_portal_link", "company_uuid": "matrix-company"}),
        ),
        change(
            "generate_account_secret",
            Role::Owner,
            json!({"action": "generate_account_secret", "secret": "url_token"}),
        ),
        change(
            "invite_member",
            Role::Owner,
            json!({"action": "invite_member", "email": "invited@example.test", "role": "viewer"}),
        ),
        change(
            "subscribe",
            Role::Owner,
            json!({"action": "subscribe", "kind": "object", "name": "job", "fields": ["status"]}),
        ),
        change(
            "unsubscribe",
            Role::Owner,
            json!({"action": "unsubscribe", "kind": "object", "name": "job"}),
        ),
        change(
            "update_account",
            Role::Owner,
            json!({"action": "update_account", "name": "Default", "requests_per_minute": 180,
                "requests_per_day": 20000, "sync_interval_seconds": 300, "retention_days": 30}),
        ),
        change(
            "set_account_secret",
            Role::Owner,
            json!({"action": "set_account_secret", "secret": "api_key", "value": "matrix-api-key"}),
        ),
        change("disable_account", Role::Owner, json!({"action": "disable_account"})),
        change("enable_account", Role::Owner, json!({"action": "enable_account"})),
        change(
            "set_role",
            Role::Owner,
            json!({"action": "set_role", "user_id": NOBODY, "role": "viewer"}),
        ),
        change(
            "remove_member",
            Role::Owner,
            json!({"action": "remove_member", "user_id": NOBODY}),
        ),
        change(
            "create_token",
            Role::Viewer,
            json!({"action": "create_token", "name": "matrix", "role": "viewer"}),
        ),
        change(
            "revoke_token",
            Role::Viewer,
            json!({"action": "revoke_token", "token_id": NOBODY}),
        ),
    ]
}

/// The status of `route` on the default account, asked with `cookie` (none: no session).
async fn status_of(app: &TestApp, route: &Route, cookie: Option<&str>) -> u16 {
    let url = match &route.body {
        None => match route.name.split_once('?') {
            // A read with a path of its own under the management API (`analytics?range=7d`).
            Some((path, query)) => app.url(&format!("/api/webhooks/management/{path}?{query}&account=default")),
            None => app.url(&format!("/api/webhooks/management?{}&account=default", route.name)),
        },
        // A change with a path of its own under the management API (`analytics/digest`).
        Some(_) if route.name.contains('/') => {
            app.url(&format!("/api/webhooks/management/{}?account=default", route.name))
        }
        Some(_) => app.url("/api/webhooks/management?account=default"),
    };
    let mut request = match &route.body {
        None => app.client.get(url),
        Some(body) => app.client.post(url).json(body),
    };
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn every_management_route_answers_each_role_and_no_other_accounts_member() {
    let app = spawn_app().await;
    let MatrixCallers { members, stranger } = matrix_callers(&app, "matrix.test").await;

    let mut wrong = Vec::new();
    for route in routes() {
        for (role, cookie) in &members {
            let status = status_of(&app, &route, Some(cookie)).await;
            let allowed = *role >= route.needs;
            if allowed == (status == 403 || status == 401) || (allowed && status >= 500) {
                wrong.push(format!("{} as {role:?}: {status}", route.name));
            }
        }
        let status = status_of(&app, &route, None).await;
        if status != 401 {
            wrong.push(format!("{} without a session: {status}", route.name));
        }
        let status = status_of(&app, &route, Some(&stranger)).await;
        if status != 403 {
            wrong.push(format!("{} as another account's owner: {status}", route.name));
        }
    }
    assert!(wrong.is_empty(), "unexpected answers:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn only_an_instance_owner_creates_accounts_whatever_role_a_member_holds() {
    let app = spawn_app().await;
    for role in [Role::Owner, Role::Admin, Role::Viewer] {
        let email = format!("{}@creator.test", role.as_str());
        let cookie = member_session(&app, &email, "default", role).await;
        let route = Route {
            name: "create_account",
            needs: Role::Owner,
            body: Some(json!({"action": "create_account", "slug": "made-by-member", "name": "Made"})),
        };
        assert_eq!(status_of(&app, &route, Some(&cookie)).await, 403, "{role:?}");
    }
    let accounts = app.manage_json("action=accounts").await;
    let slugs: Vec<&str> = accounts["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|account| account["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["default"]);
}
