//! Presence shared by two nodes on one PostgreSQL database: who is present on either node is in each client's
//! state and diffs, and the entries of a node that died expire with a leave. `#[ignore]`d: `make test-postgres`.

use serde_json::json;
use sqlx::Connection;

use crate::common::realtime_client::{join_payload, RealtimeClient, Received, PUBLIC_TOPIC};
use crate::realtime_postgres::Cluster;

/// Joins the public topic with presence under `key`, returning the join ref and the `presence_state` that follows.
async fn join_present(client: &mut RealtimeClient, key: &str) -> (String, serde_json::Value) {
    let payload = join_payload(json!({"presence": {"key": key, "enabled": true}}), None);
    let (join_ref, reply) = client.join(PUBLIC_TOPIC, payload).await;
    assert_eq!(reply.payload["status"], "ok");
    let state = client
        .receive_where(|r| matches!(r, Received::Text(f) if f.event == "presence_state"))
        .await;
    (join_ref, state.text().payload)
}

async fn track(client: &mut RealtimeClient, join_ref: &str, name: &str) {
    let msg_ref = client.make_ref();
    let track = json!({"type": "presence", "event": "track", "payload": {"name": name}});
    client
        .push(Some(join_ref), Some(&msg_ref), PUBLIC_TOPIC, "presence", track)
        .await;
    let reply = client
        .receive_where(|r| matches!(r, Received::Text(f) if f.msg_ref.as_deref() == Some(msg_ref.as_str())))
        .await;
    assert_eq!(reply.text().payload["status"], "ok");
}

/// The next `presence_diff` with `key` among its `side` (`joins` or `leaves`).
async fn diff_with(client: &mut RealtimeClient, side: &str, key: &str) -> serde_json::Value {
    let received = client
        .receive_where(
            |r| matches!(r, Received::Text(f) if f.event == "presence_diff" && f.payload[side].get(key).is_some()),
        )
        .await;
    received.text().payload[side][key].clone()
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run make test-postgres"]
async fn presence_is_shared_by_the_nodes_and_a_dead_nodes_entries_expire_with_a_leave() {
    let cluster = Cluster::start().await;
    let mut alice = cluster.client(&cluster.a).await;
    let (alice_join, _) = join_present(&mut alice, "alice").await;
    track(&mut alice, &alice_join, "Alice").await;

    let mut bob = cluster.client(&cluster.b).await;
    let (bob_join, state) = join_present(&mut bob, "bob").await;
    assert_eq!(
        state["alice"]["metas"][0]["name"], "Alice",
        "node B's client sees node A's: {state}"
    );
    track(&mut bob, &bob_join, "Bob").await;
    assert_eq!(diff_with(&mut alice, "joins", "bob").await["metas"][0]["name"], "Bob");

    // An entry of a node that stopped refreshing its entries: it expires and its leave reaches everyone.
    let mut database = sqlx::PgConnection::connect(&cluster.database_url).await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    sqlx::query(
        "INSERT INTO realtime_presence (topic, connection, presence_key, phx_ref, meta, node, expires_at)
         VALUES ($1, $2, 'ghost', 'g1', '{\"name\": \"Ghost\"}', 'a-node-that-died', $3)",
    )
    .bind(PUBLIC_TOPIC)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(now + 500)
    .execute(&mut database)
    .await
    .unwrap();
    assert_eq!(
        diff_with(&mut bob, "leaves", "ghost").await["metas"][0]["phx_ref"],
        "g1"
    );

    drop(alice);
    assert_eq!(
        diff_with(&mut bob, "leaves", "alice").await["metas"][0]["name"],
        "Alice"
    );
    let mut carol = cluster.client(&cluster.a).await;
    let (_, state) = join_present(&mut carol, "carol").await;
    assert_eq!(
        state.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["bob"],
        "{state}"
    );
}
