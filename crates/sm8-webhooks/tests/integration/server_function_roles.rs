//! The dashboard's server functions against every kind of caller, as `role_matrix` does for the management API:
//! an owner, an admin and a viewer of the account, nobody, and the owner of another account. Each function needs
//! a role: below it `403`, without a session `401`. The other account's owner, whose account cookie names this
//! account, is served their own account instead and never sees this one's data.

use app::access::Role;
use app::alerts::api::{AcknowledgeAlert, AlertHistory, ListAlerts, SilenceAlert, UpdateAlert};
use app::analytics::api::{GetAnalyticsDigest, LoadAnalytics, SaveAnalyticsDigest};
use app::analytics::model::AnalyticsQuery;
use app::api::{
    CleanupEvents, GetEventDetail, GetMinuteBuckets, GetPipelineHealth, GetStats, ListEvents, RetryEvent,
    RetryFailedEvents, SendTestEvent,
};
use app::directory::api::{
    AccountsOverview, CreatePortalLink, CreateToken, GenerateAccountSecret, GetAccount, GetAudit, InviteMember,
    ListMembers, ListSubscriptions, ListTokens, RemoveMember, RevokeToken, SetAccountDisabled, SetAccountSecret,
    SetMemberRole, StartOauth, Subscribe, Unsubscribe, UpdateAccount,
};
use app::directory::model::AuditFilter;
use app::model::EventQuery;
use app::outbound::api::{
    CreateDestination, CreateRule, ListDeliveries, ListDestinations, ListRules, RetryDelivery, TestRule,
};
use app::realtime::FetchRealtimeCredentials;
use leptos::server_fn::ServerFn;
use reqwest::header::COOKIE;
use serde_json::{json, Value};

use crate::common::users::{matrix_callers, MatrixCallers};
use crate::common::{spawn_app, TestApp, ADMIN_TOKEN};

/// A server function, the arguments it is called with and the least role it needs.
struct Function {
    path: &'static str,
    args: Value,
    needs: Role,
}

const NOBODY: &str = "00000000-0000-7000-8000-000000000000";
/// In the events of this account only: the other account's owner must never see it.
const MARKER: &str = "only-in-the-default-account";

fn functions() -> Vec<Function> {
    let function = |path: &'static str, needs: Role, args: Value| Function { path, args, needs };
    let event_query = serde_json::to_value(EventQuery::default()).unwrap();
    let audit_filter = serde_json::to_value(AuditFilter::default()).unwrap();
    vec![
        function(GetStats::PATH, Role::Viewer, json!({})),
        function(ListEvents::PATH, Role::Viewer, json!({ "query": event_query })),
        function(GetEventDetail::PATH, Role::Viewer, json!({ "event_id": NOBODY })),
        function(GetPipelineHealth::PATH, Role::Viewer, json!({})),
        function(GetMinuteBuckets::PATH, Role::Viewer, json!({})),
        function(AccountsOverview::PATH, Role::Viewer, json!({})),
        function(GetAccount::PATH, Role::Viewer, json!({})),
        function(ListSubscriptions::PATH, Role::Viewer, json!({})),
        function(ListMembers::PATH, Role::Viewer, json!({})),
        function(ListTokens::PATH, Role::Viewer, json!({})),
        function(GetAudit::PATH, Role::Viewer, json!({ "filter": audit_filter })),
        function(FetchRealtimeCredentials::PATH, Role::Viewer, json!({})),
        function(GetAnalyticsDigest::PATH, Role::Viewer, json!({})),
        function(SaveAnalyticsDigest::PATH, Role::Admin, json!({ "digest": null })),
        function(
            LoadAnalytics::PATH,
            Role::Viewer,
            json!({ "query": serde_json::to_value(AnalyticsQuery::default()).unwrap() }),
        ),
        function(
            CreateToken::PATH,
            Role::Viewer,
            json!({"name": "matrix", "role": "viewer", "expires_in_days": null}),
        ),
        function(RevokeToken::PATH, Role::Viewer, json!({ "id": NOBODY })),
        function(ListDestinations::PATH, Role::Viewer, json!({})),
        function(ListAlerts::PATH, Role::Viewer, json!({})),
        function(AlertHistory::PATH, Role::Viewer, json!({"before": null, "limit": 10})),
        function(
            UpdateAlert::PATH,
            Role::Admin,
            json!({"id": NOBODY, "form": {"enabled": true, "renotifyMinutes": 60}}),
        ),
        function(AcknowledgeAlert::PATH, Role::Admin, json!({ "id": NOBODY })),
        function(SilenceAlert::PATH, Role::Admin, json!({"id": NOBODY, "minutes": 60})),
        function(ListRules::PATH, Role::Viewer, json!({})),
        function(ListDeliveries::PATH, Role::Viewer, json!({ "query": {} })),
        function(
            TestRule::PATH,
            Role::Viewer,
            json!({"definition": {"name": "t", "when": {"stage": "processed"}, "actions": []}, "event_id": NOBODY}),
        ),
        function(
            CreateDestination::PATH,
            Role::Admin,
            json!({"form": {"name": "fns", "kind": "webhook", "settings": {"url": "http://127.0.0.1:9/hook"}}}),
        ),
        function(
            CreateRule::PATH,
            Role::Admin,
            json!({"form": {"definition": {"name": "fns", "when": {"stage": "processed"}, "actions": []}}}),
        ),
        function(RetryDelivery::PATH, Role::Admin, json!({ "id": NOBODY })),
        function(RetryEvent::PATH, Role::Admin, json!({ "event_id": NOBODY })),
        function(RetryFailedEvents::PATH, Role::Admin, json!({ "dry_run": false })),
        function(CleanupEvents::PATH, Role::Admin, json!({ "older_than_days": 3650 })),
        function(
            SendTestEvent::PATH,
            Role::Admin,
            json!({"event": {"object_type": "job", "object_uuid": "matrix-job", "event_type": "updated", "changes": {}}}),
        ),
        function(
            CreatePortalLink::PATH,
            Role::Admin,
            json!({"company_uuid": "matrix-company", "ttl_days": 1}),
        ),
        function(
            Subscribe::PATH,
            Role::Owner,
            json!({"kind": "object", "name": "job", "fields": ["status"]}),
        ),
        function(Unsubscribe::PATH, Role::Owner, json!({"kind": "object", "name": "job"})),
        function(
            UpdateAccount::PATH,
            Role::Owner,
            json!({"settings": {"name": "Default", "servicem8_account_uuid": null, "requests_per_minute": 180,
                "requests_per_day": 20000, "sync_interval_seconds": 300, "retention_days": 30}}),
        ),
        function(
            SetAccountSecret::PATH,
            Role::Owner,
            json!({"kind": "api_key", "value": "matrix-key"}),
        ),
        function(GenerateAccountSecret::PATH, Role::Owner, json!({ "kind": "url_token" })),
        function(SetAccountDisabled::PATH, Role::Owner, json!({ "disabled": true })),
        function(SetAccountDisabled::PATH, Role::Owner, json!({ "disabled": false })),
        function(StartOauth::PATH, Role::Owner, json!({ "scopes": "read_jobs" })),
        function(
            InviteMember::PATH,
            Role::Owner,
            json!({"email": "invited@example.test", "role": "viewer"}),
        ),
        function(
            SetMemberRole::PATH,
            Role::Owner,
            json!({"user_id": NOBODY, "role": "viewer"}),
        ),
        function(RemoveMember::PATH, Role::Owner, json!({ "user_id": NOBODY })),
    ]
}

/// The status and body of `function` called from the dashboard's own origin with `cookie` (none: no session).
async fn call(app: &TestApp, function: &Function, cookie: Option<&str>) -> (u16, String) {
    let mut request = app
        .client
        .post(app.url(function.path))
        .header("sec-fetch-site", "same-origin")
        .json(&function.args);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn every_server_function_answers_each_role_and_serves_another_accounts_owner_only_their_own() {
    let app = spawn_app().await;
    let marked = app
        .client
        .post(app.url("/api/webhooks/management?account=default"))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({"action": "send_test_event", "event": {"object_type": "job", "object_uuid": MARKER,
            "event_type": "updated", "changes": {}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(marked.status(), 200);
    let MatrixCallers { members, stranger } = matrix_callers(&app, "fns.test").await;

    let mut wrong = Vec::new();
    for function in functions() {
        for (role, cookie) in &members {
            let (status, body) = call(&app, &function, Some(cookie)).await;
            let allowed = *role >= function.needs;
            if allowed == (status == 403 || status == 401) || status >= 500 {
                wrong.push(format!("{} as {role:?}: {status} {body}", function.path));
            }
        }
        let (status, body) = call(&app, &function, None).await;
        if status != 401 {
            wrong.push(format!("{} without a session: {status} {body}", function.path));
        }
        let (status, body) = call(&app, &function, Some(&stranger)).await;
        if status >= 500 || body.contains(MARKER) {
            wrong.push(format!("{} as another account's owner: {status} {body}", function.path));
        }
    }
    assert!(wrong.is_empty(), "unexpected answers:\n{}", wrong.join("\n"));

    let (status, body) = call(
        &app,
        &Function {
            path: GetAccount::PATH,
            args: json!({}),
            needs: Role::Viewer,
        },
        Some(&stranger),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["slug"], "other");
    let events = app.manage_json("action=events&account=default").await;
    assert!(
        events.to_string().contains(MARKER),
        "the stranger's calls left this account's events alone"
    );
}
