//! `postgres_changes` over the mirror tables, through the pipeline and real websockets under both serializers:
//! inserts, updates and deletes (`active = 0`) to the bindings that match, rows only for who may see them, and
//! bad bindings refused with their reason.

use serde_json::{json, Value};
use server::realtime::Role;

use crate::common::realtime_client::{
    account_token, admin_token, job_row_update, join_payload, portal_token, reason, spawn_relay, Frame, RealtimeClient,
    Received, RelayApp,
};
use crate::under_both_serializers;

under_both_serializers!(
    job_rows_reach_the_bindings_they_match_as_inserts_updates_and_deletes,
    a_portal_token_receives_only_its_companys_rows,
    an_accounts_token_receives_only_its_accounts_rows,
    a_binding_for_an_unknown_table_or_a_bad_filter_refuses_the_join_with_its_reason,
);

/// A ServiceM8 webhook for `uuid` of `object_type` whose `changes` carry the values (no credentials: the
/// processor applies them), the `second`th of the day so that later events are newer.
async fn post_change(relay: &RelayApp, object_type: &str, uuid: &str, changes: Value, second: u32) {
    let body = json!({
        "object_type": object_type,
        "object_uuid": uuid,
        "event_type": "updated",
        "timestamp": format!("2024-01-01T00:00:{second:02}Z"),
        "changes": changes,
    });
    let response = relay.app.post_signed(&body.to_string()).await;
    assert_eq!(response.status(), 200);
}

async fn join_with_bindings(client: &mut RealtimeClient, topic: &str, bindings: Value, token: &str) -> Vec<u64> {
    let payload = join_payload(json!({ "postgres_changes": bindings }), Some(token));
    let (_, reply) = client.join(topic, payload).await;
    assert_eq!(reply.payload["status"], "ok", "{reply:?}");
    reply.payload["response"]["postgres_changes"]
        .as_array()
        .expect("the bindings are echoed")
        .iter()
        .map(|binding| binding["id"].as_u64().expect("each with an id"))
        .collect()
}

/// The next `postgres_changes` frame.
async fn row_change(client: &mut RealtimeClient) -> Frame {
    client
        .receive_where(|r| matches!(r, Received::Text(f) if f.event == "postgres_changes"))
        .await
        .text()
}

fn ids(frame: &Frame) -> Vec<u64> {
    frame.payload["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_u64().unwrap())
        .collect()
}

async fn job_rows_reach_the_bindings_they_match_as_inserts_updates_and_deletes(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = relay.client(vsn).await;
    let bindings = json!([
        {"event": "*", "schema": "public", "table": "jobs"},
        {"event": "UPDATE", "schema": "public", "table": "sm8_jobs", "filter": "status=eq.Completed"},
        {"event": "*", "schema": "public", "table": "companies"},
    ]);
    let [every, completed, _companies] =
        join_with_bindings(&mut client, "realtime:watch", bindings, &admin_token()).await[..]
    else {
        panic!("three bindings")
    };

    post_change(
        &relay,
        "job",
        "job-1",
        json!({"status": "Quote", "company_uuid": "co-1"}),
        1,
    )
    .await;
    let insert = row_change(&mut client).await;
    assert_eq!(insert.topic, "realtime:watch");
    assert_eq!(ids(&insert), [every]);
    let data = &insert.payload["data"];
    assert_eq!(
        (data["schema"].clone(), data["table"].clone()),
        (json!("public"), json!("sm8_jobs"))
    );
    assert_eq!(
        (data["type"].clone(), data["errors"].clone()),
        (json!("INSERT"), Value::Null)
    );
    assert_eq!(data["record"]["uuid"], "job-1");
    assert_eq!(data["record"]["status"], "Quote");
    assert_eq!(data["record"]["record"]["company_uuid"], "co-1");
    assert!(data["commit_timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(data["columns"]
        .as_array()
        .unwrap()
        .contains(&json!({"name": "active", "type": "int4"})));

    post_change(&relay, "job", "job-1", json!({"status": "Completed"}), 2).await;
    let update = row_change(&mut client).await;
    assert_eq!(ids(&update), [every, completed]);
    let data = &update.payload["data"];
    assert_eq!(data["type"], "UPDATE");
    assert_eq!(
        (data["record"]["status"].clone(), data["old_record"]["status"].clone()),
        (json!("Completed"), json!("Quote"))
    );

    post_change(&relay, "job", "job-1", json!({"active": 0}), 3).await;
    let delete = row_change(&mut client).await;
    assert_eq!(ids(&delete), [every]);
    let data = &delete.payload["data"];
    assert_eq!(data["type"], "DELETE");
    assert_eq!(
        (data["old_record"]["uuid"].clone(), data["old_record"]["active"].clone()),
        (json!("job-1"), json!(1))
    );
    assert!(data.get("record").is_none());

    post_change(&relay, "company", "co-1", json!({"name": "Acme"}), 4).await;
    let company = row_change(&mut client).await;
    assert_eq!(company.payload["data"]["table"], "sm8_companies");
    assert_eq!(company.payload["data"]["record"]["name"], "Acme");
}

async fn a_portal_token_receives_only_its_companys_rows(vsn: &str) {
    let relay = spawn_relay().await;
    let mut portal = relay.client(vsn).await;
    let bindings = json!([{"event": "*", "schema": "public", "table": "jobs"}]);
    join_with_bindings(&mut portal, "realtime:company:co-1", bindings, &portal_token("co-1")).await;

    // In order: had the other company's row reached the portal, it would be the first frame.
    post_change(
        &relay,
        "job",
        "job-of-2",
        json!({"status": "Quote", "company_uuid": "co-2"}),
        1,
    )
    .await;
    post_change(
        &relay,
        "job",
        "job-of-1",
        json!({"status": "Quote", "company_uuid": "co-1"}),
        2,
    )
    .await;
    let frame = row_change(&mut portal).await;
    assert_eq!(frame.payload["data"]["record"]["uuid"], "job-of-1");
    let later = portal.drain().await;
    assert!(
        later
            .iter()
            .all(|r| !matches!(r, Received::Text(f) if f.event == "postgres_changes")),
        "{later:?}"
    );
}

fn row_update_of(relay: &RelayApp, account: &str, uuid: &str) {
    let update = job_row_update(account, uuid);
    relay.updates.send(update).expect("the relay listens");
}

async fn an_accounts_token_receives_only_its_accounts_rows(vsn: &str) {
    let relay = spawn_relay().await;
    let bindings = json!([{"event": "INSERT", "schema": "public", "table": "jobs"}]);
    let mut viewer = relay.client(vsn).await;
    let token = account_token("bravo", Role::Viewer, None, 3600);
    join_with_bindings(&mut viewer, "realtime:jobs", bindings.clone(), &token).await;
    let mut portal = relay.client(vsn).await;
    let token = account_token("bravo", Role::Portal, Some("co-1"), 3600);
    join_with_bindings(&mut portal, "realtime:company:co-1", bindings, &token).await;

    row_update_of(&relay, "alpha", "job-of-alpha");
    row_update_of(&relay, "bravo", "job-of-bravo");
    for client in [&mut viewer, &mut portal] {
        let frame = row_change(client).await;
        assert_eq!(frame.payload["data"]["record"]["uuid"], "job-of-bravo");
    }
}

async fn a_binding_for_an_unknown_table_or_a_bad_filter_refuses_the_join_with_its_reason(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = relay.client(vsn).await;
    for (binding, expected) in [
        (
            json!({"event": "*", "schema": "public", "table": "todos"}),
            "unknown table \"todos\"",
        ),
        (
            json!({"event": "*", "schema": "public", "table": "jobs", "filter": "status=like.Q"}),
            "operator",
        ),
        (
            json!({"event": "*", "schema": "public", "table": "jobs", "filter": "colour=eq.red"}),
            "column",
        ),
    ] {
        let payload = join_payload(json!({ "postgres_changes": [binding] }), Some(&admin_token()));
        let (_, reply) = client.join("realtime:jobs", payload).await;
        let reason = reason(&reply);
        assert!(
            reason.starts_with("postgres_changes: ") && reason.contains(expected),
            "{reason}"
        );
    }
}
