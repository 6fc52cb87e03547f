//! The audit log holds a line for every kind of state-changing action, with its actor, account, target, outcome
//! and client address, and never a secret value. (Connecting ServiceM8 by OAuth and refreshing its tokens are
//! audited too; `oauth` checks those lines against the simulated account.)

use app::directory::api::{AcceptInvite, ChangePassword, SignOut};
use leptos::server_fn::ServerFn;
use reqwest::header::COOKIE;
use serde_json::{json, Value};

use crate::common::users::{ensure_user, member_session, sign_in, store_of, try_sign_in, PASSWORD};
use crate::common::{claim, release_expired, seed_event, spawn_app, TestApp, ADMIN_TOKEN};

/// A management change with the instance's token.
async fn change(app: &TestApp, body: Value) -> Value {
    change_as(app, None, body).await
}

/// A management change with a dashboard session (`cookie`), or else the instance's token.
async fn change_as(app: &TestApp, cookie: Option<&str>, body: Value) -> Value {
    let request = app.client.post(app.url("/api/webhooks/management?account=default"));
    let request = match cookie {
        Some(cookie) => request.header(COOKIE, cookie).header("sec-fetch-site", "same-origin"),
        None => request.bearer_auth(ADMIN_TOKEN),
    };
    let response = request.json(&body).send().await.unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert!(status.is_success() || status == 409, "{body}: {status} {answer}");
    answer
}

async fn server_fn(app: &TestApp, path: &str, cookie: &str, args: Value) -> u16 {
    app.client
        .post(app.url(path))
        .header("sec-fetch-site", "same-origin")
        .header(COOKIE, cookie)
        .json(&args)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Every line of `account` and the instance's own (the instance's token reads both), all pages.
async fn all_lines(app: &TestApp, account: &str) -> Vec<Value> {
    let mut lines = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .manage_json(&format!("action=audit&account={account}&limit=200&cursor={cursor}"))
            .await;
        lines.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return lines,
        }
    }
}

#[tokio::test]
async fn every_kind_of_action_leaves_an_audit_line_with_its_actor_and_outcome_and_no_secret() {
    let app = spawn_app().await;
    let mut secrets: Vec<String> = vec![PASSWORD.into(), ADMIN_TOKEN.into()];

    // Signing in, failing to, changing one's password and signing out.
    ensure_user(
        &app,
        "owner@audit.test",
        false,
        &[("default", app::access::Role::Owner)],
    )
    .await;
    assert_eq!(
        try_sign_in(&app, "owner@audit.test", "wrong password").await.status(),
        401
    );
    secrets.push("wrong password".into());
    let session = sign_in(&app, "owner@audit.test", PASSWORD).await;
    let new_password = "a brand new passphrase for audit";
    secrets.push(new_password.into());
    let changed = server_fn(
        &app,
        ChangePassword::PATH,
        &session,
        json!({"current": PASSWORD, "new_password": new_password}),
    )
    .await;
    assert_eq!(changed, 200);
    // A new password ends the user's sessions: sign in with it, and out.
    let session = sign_in(&app, "owner@audit.test", new_password).await;
    assert_eq!(server_fn(&app, SignOut::PATH, &session, json!({})).await, 200);
    let session = format!(
        "{}; sm8_account=default",
        sign_in(&app, "owner@audit.test", new_password).await
    );

    // Members and tokens.
    let invited = change(
        &app,
        json!({"action": "invite_member", "email": "new@audit.test", "role": "viewer"}),
    )
    .await;
    let invite_token = invited["url"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    secrets.push(invite_token.clone());
    let accepted = app
        .client
        .post(app.url(AcceptInvite::PATH))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"token": invite_token, "email": "new@audit.test", "password": "the invited one's password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    secrets.push("the invited one's password".into());
    let members = app.manage_json("action=members").await;
    let new_member = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["email"] == "new@audit.test")
        .unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    change(
        &app,
        json!({"action": "set_role", "userId": new_member, "role": "admin"}),
    )
    .await;
    change(&app, json!({"action": "remove_member", "userId": new_member})).await;
    let token = change_as(
        &app,
        Some(&session),
        json!({"action": "create_token", "name": "audited", "role": "viewer"}),
    )
    .await;
    secrets.push(token["value"].as_str().unwrap().to_owned());
    let token_id = token["token"]["id"].as_str().unwrap().to_owned();
    change_as(
        &app,
        Some(&session),
        json!({"action": "revoke_token", "tokenId": token_id}),
    )
    .await;

    // The pipeline, and a portal link .
    assert_eq!(
        app.post_signed(&seed_event("job", "audit-job", "Quote")).await.status(),
        200
    );
    let events = app.manage_json("action=events").await;
    let event_id = events["events"][0]["id"].as_str().unwrap().to_owned();
    // A queued event is not retried: its one attempt fails first (a claim whose lease runs out).
    let store = store_of(&app).await;
    let now = server::store::now_millis();
    assert_eq!(claim(store.as_ref(), now, now + 1, 10).await.len(), 1);
    assert_eq!(release_expired(store.as_ref(), now + 10, 1).await, 1);
    change(&app, json!({"action": "retry_event", "eventId": event_id})).await;
    change(&app, json!({"action": "retry_failed_events"})).await;
    change(&app, json!({"action": "cleanup", "olderThanDays": 3650})).await;
    let sent = change(
        &app,
        json!({"action": "send_test_event", "event": {"object_type": "job", "object_uuid": "audit-test",
            "event_type": "updated", "changes": {}}}),
    )
    .await;
    assert_eq!(sent["success"], true);
    let link = change(
        &app,
        json!({"action": "create_portal_link", "companyUuid": "audit-company"}),
    )
    .await;
    secrets.push(link["url"].as_str().unwrap().rsplit('=').next().unwrap().to_owned());

    // The account, its credentials and secrets, and its subscriptions.
    let created = change(
        &app,
        json!({"action": "create_account", "slug": "second", "name": "Second"}),
    )
    .await;
    secrets.push(created["url_token"]["value"].as_str().unwrap().to_owned());
    change(
        &app,
        json!({"action": "update_account", "name": "Default Co", "requestsPerMinute": 180, "requestsPerDay": 20000,
            "syncIntervalSeconds": 300, "retentionDays": 30}),
    )
    .await;
    // Before an API key is set, so that ServiceM8 is not asked: without credentials both fail, and are audited.
    change(
        &app,
        json!({"action": "subscribe", "kind": "object", "name": "job", "fields": ["status"]}),
    )
    .await;
    change(&app, json!({"action": "unsubscribe", "kind": "object", "name": "job"})).await;
    secrets.push("audited-api-key-value".into());
    change(
        &app,
        json!({"action": "set_account_secret", "secret": "api_key", "value": "audited-api-key-value"}),
    )
    .await;
    let generated = change(
        &app,
        json!({"action": "generate_account_secret", "secret": "url_token"}),
    )
    .await;
    secrets.push(generated["value"].as_str().unwrap().to_owned());
    change(&app, json!({"action": "disable_account"})).await;
    change(&app, json!({"action": "enable_account"})).await;

    // Alerts: settings, a silence, and an acknowledgement refused (the alert is not firing).
    let alerts = app.manage_json("action=alerts").await;
    let alert_id = alerts["alerts"][0]["id"].as_str().unwrap().to_owned();
    change(
        &app,
        json!({"action": "update_alert", "id": alert_id, "enabled": true, "renotifyMinutes": 30}),
    )
    .await;
    change(&app, json!({"action": "silence_alert", "id": alert_id, "minutes": 60})).await;
    change(&app, json!({"action": "acknowledge_alert", "id": alert_id})).await;

    // A refusal: a viewer's retry.
    let viewer = member_session(&app, "viewer@audit.test", "default", app::access::Role::Viewer).await;
    let refused = app
        .client
        .post(app.url("/api/webhooks/management"))
        .header(COOKIE, &viewer)
        .json(&json!({"action": "retry_event", "eventId": event_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // A new account's creation is a line of that account.
    let mut lines = all_lines(&app, "default").await;
    lines.extend(
        all_lines(&app, "second")
            .await
            .into_iter()
            .filter(|line| line["account"] == "second"),
    );
    let find = |action: &str, outcome: &str| {
        lines
            .iter()
            .find(|line| line["action"] == action && line["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {outcome} line for {action} in {lines:#?}"))
    };
    let expected = [
        ("sign_in", "failure", "anonymous"),
        ("sign_in", "success", "user"),
        ("change_password", "success", "user"),
        ("sign_out", "success", "user"),
        ("invite_member", "success", "admin_token"),
        ("accept_invite", "success", "user"),
        ("set_role", "success", "admin_token"),
        ("remove_member", "success", "admin_token"),
        ("create_token", "success", "user"),
        ("revoke_token", "success", "user"),
        ("create_account", "success", "admin_token"),
        ("update_account", "success", "admin_token"),
        ("set_account_secret", "success", "admin_token"),
        ("generate_account_secret", "success", "admin_token"),
        ("disable_account", "success", "admin_token"),
        ("enable_account", "success", "admin_token"),
        ("subscribe", "failure", "admin_token"),
        ("unsubscribe", "failure", "admin_token"),
        ("retry_event", "success", "admin_token"),
        ("retry_failed_events", "success", "admin_token"),
        ("cleanup", "success", "admin_token"),
        ("send_test_event", "success", "admin_token"),
        ("create_portal_link", "success", "admin_token"),
        ("update_alert", "success", "admin_token"),
        ("silence_alert", "success", "admin_token"),
        ("acknowledge_alert", "failure", "admin_token"),
        ("retry_event", "denied", "user"),
    ];
    for (action, outcome, actor_kind) in expected {
        let line = find(action, outcome);
        assert_eq!(line["actor_kind"], actor_kind, "{line}");
        assert_eq!(line["client_address"], "127.0.0.1", "{line}");
        assert!(line["at"].as_str().is_some_and(|at| at.contains('T')), "{line}");
    }
    assert_eq!(find("sign_in", "failure")["target"], "owner@audit.test");
    assert_eq!(find("retry_event", "success")["target"], event_id.as_str());
    assert_eq!(find("retry_event", "denied")["actor"], "viewer@audit.test");
    assert_eq!(find("set_account_secret", "success")["account"], "default");
    assert_eq!(find("create_account", "success")["target"], "second");
    assert_eq!(find("silence_alert", "success")["target"], alert_id.as_str());

    let written = serde_json::to_string(&lines).unwrap();
    for secret in &secrets {
        assert!(
            !written.contains(secret.as_str()),
            "a secret value reached the audit log: {secret}"
        );
    }
}
