//! The relay scaled out: two `serve` nodes on one PostgreSQL database deliver every update to their own
//! subscribers through the outbox and LISTEN/NOTIFY. `#[ignore]`d so that `cargo test` needs no PostgreSQL;
//! `make test-postgres` runs them with `--ignored` and `TEST_DATABASE_URL` set.

use crate::common::realtime_client::{
    admin_token, job_row_update, job_update, join_payload, portal_token, RealtimeClient, Received, JWT_SECRET,
    PUBLIC_TOPIC,
};
use crate::common::{fresh_postgres_database, run_built, serve_args, test_database_url, TestApp};
use serde_json::json;
use server::secret::Secret;
use server::startup::Server;
use server::updates::UpdateSender;
use tempfile::TempDir;

/// Two nodes on one fresh database, and the anon key they agreed on.
pub(crate) struct Cluster {
    pub a: TestApp,
    pub b: TestApp,
    updates_a: UpdateSender,
    anon_key: String,
    pub database_url: String,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let database_url = fresh_postgres_database(&test_database_url()).await;
        let mut args = serve_args(&database_url);
        // No anon key configured: the nodes must share the one the first generates and keeps in the database.
        args.realtime.jwt_secret = Some(Secret::new(JWT_SECRET));
        args.realtime.realtime_public_topics = vec!["lobby".into()];
        let node_a = Server::build(&args).await.expect("node A starts");
        let node_b = Server::build(&args).await.expect("node B starts");
        assert_eq!(
            node_a.realtime_anon_key, node_b.realtime_anon_key,
            "the nodes share one anon key"
        );
        let anon_key = node_a.realtime_anon_key.expose().to_owned();
        let updates_a = node_a.updates();
        let a = run_built(node_a, &database_url, TempDir::new().unwrap());
        let b = run_built(node_b, &database_url, TempDir::new().unwrap());
        Cluster {
            a,
            b,
            updates_a,
            anon_key,
            database_url,
        }
    }

    pub async fn client(&self, node: &TestApp) -> RealtimeClient {
        RealtimeClient::try_connect(node.address, &self.anon_key, "2.0.0")
            .await
            .expect("the upgrade succeeds")
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run make test-postgres"]
async fn an_update_processed_on_one_node_reaches_clients_on_both() {
    let cluster = Cluster::start().await;
    let (mut on_a, mut on_b) = (cluster.client(&cluster.a).await, cluster.client(&cluster.b).await);
    on_a.join_ok("realtime:jobs", Some(&admin_token())).await;
    on_b.join_ok("realtime:job:job-1", Some(&admin_token())).await;
    for status in ["Quote", "Completed"] {
        cluster
            .updates_a
            .send(job_update("job-1", "co-1", status))
            .expect("node A's relay listens");
    }
    for (client, topic) in [(&mut on_a, "realtime:jobs"), (&mut on_b, "realtime:job:job-1")] {
        let first = client.broadcast_on(topic, "webhook_update").await;
        assert_eq!(
            (first["object_uuid"].as_str(), first["changes"]["status"].as_str()),
            (Some("job-1"), Some("Quote"))
        );
        assert_eq!(first["offset"], 1);
        assert_eq!(client.broadcast_on(topic, "webhook_update").await["offset"], 2);
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run make test-postgres"]
async fn a_broadcast_from_a_client_on_one_node_reaches_clients_on_the_other() {
    let cluster = Cluster::start().await;
    let (mut sender, mut listener) = (cluster.client(&cluster.a).await, cluster.client(&cluster.b).await);
    let config = json!({"broadcast": {"ack": true, "self": true}});
    let (join_ref, _) = sender.join(PUBLIC_TOPIC, join_payload(config, None)).await;
    listener.join_ok(PUBLIC_TOPIC, None).await;
    sender
        .push_binary_broadcast(&join_ref, "20", PUBLIC_TOPIC, "cursor", json!({"x": 3}))
        .await;
    assert_eq!(sender.frame().await.payload["status"], "ok");
    assert_eq!(listener.broadcast_on(PUBLIC_TOPIC, "cursor").await, json!({"x": 3}));
    assert_eq!(
        sender.broadcast_on(PUBLIC_TOPIC, "cursor").await,
        json!({"x": 3}),
        "self: true across the bus"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run make test-postgres"]
async fn a_client_resumes_on_another_node_from_the_outbox() {
    let cluster = Cluster::start().await;
    let mut observer = cluster.client(&cluster.a).await;
    observer.join_ok("realtime:jobs", Some(&admin_token())).await;
    for status in ["A", "B", "C"] {
        cluster
            .updates_a
            .send(job_update("job-1", "co-1", status))
            .expect("node A's relay listens");
    }
    for _ in 0..3 {
        observer.broadcast_on("realtime:jobs", "webhook_update").await;
    }

    let mut client = cluster.client(&cluster.b).await;
    let resume = join_payload(json!({"resume": {"offset": 1}}), Some(&admin_token()));
    let (_, reply) = client.join("realtime:jobs", resume).await;
    assert_eq!(reply.payload["status"], "ok");
    for (offset, status) in [(2, "B"), (3, "C")] {
        let replayed = client.broadcast_on("realtime:jobs", "webhook_update").await;
        assert_eq!(
            (replayed["offset"].as_i64(), replayed["changes"]["status"].as_str()),
            (Some(offset), Some(status))
        );
    }
    cluster
        .updates_a
        .send(job_update("job-1", "co-1", "D"))
        .expect("node A's relay listens");
    assert_eq!(
        client.broadcast_on("realtime:jobs", "webhook_update").await["offset"],
        4,
        "then live, no repeats"
    );

    let mut behind = cluster.client(&cluster.b).await;
    let ahead = join_payload(json!({"resume": {"offset": 99}}), Some(&admin_token()));
    behind.join("realtime:jobs", ahead).await;
    let refetch = behind.frame().await;
    assert_eq!(
        (refetch.event.as_str(), &refetch.payload["message"]),
        ("system", &json!("refetch"))
    );
    assert_eq!(refetch.payload["offset"], 4);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run make test-postgres"]
async fn a_node_reads_the_outbox_by_position_so_rows_it_was_not_told_of_still_arrive() {
    let cluster = Cluster::start().await;
    let mut listener = cluster.client(&cluster.b).await;
    listener.join_ok(PUBLIC_TOPIC, None).await;
    let pool = sqlx::PgPool::connect(&cluster.database_url).await.unwrap();
    let insert = "INSERT INTO realtime_outbox (topic, event, payload, created_at) VALUES ($1, $2, $3, $4)";
    let now = server::store::now_millis();
    // A row whose transaction commits late: rows with higher ids are read first.
    let mut late = pool.begin().await.unwrap();
    sqlx::query(insert)
        .bind(PUBLIC_TOPIC)
        .bind("late")
        .bind(json!({"n": 1}))
        .bind(now)
        .execute(&mut *late)
        .await
        .unwrap();
    // A row nobody announced, as if its NOTIFY had been lost.
    sqlx::query(insert)
        .bind(PUBLIC_TOPIC)
        .bind("unannounced")
        .bind(json!({"n": 2}))
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
    // Then a broadcast announced as usual, from a client of node A.
    let mut sender = cluster.client(&cluster.a).await;
    let (join_ref, _) = sender.join(PUBLIC_TOPIC, join_payload(json!({}), None)).await;
    sender
        .push(
            Some(&join_ref),
            Some("9"),
            PUBLIC_TOPIC,
            "broadcast",
            json!({"type": "broadcast", "event": "announced", "payload": {"n": 3}}),
        )
        .await;
    assert_eq!(
        listener.broadcast_on(PUBLIC_TOPIC, "unannounced").await,
        json!({"n": 2})
    );
    assert_eq!(listener.broadcast_on(PUBLIC_TOPIC, "announced").await, json!({"n": 3}));
    // The late row's id was skipped; once its transaction commits it is delivered all the same.
    late.commit().await.unwrap();
    assert_eq!(listener.broadcast_on(PUBLIC_TOPIC, "late").await, json!({"n": 1}));
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run make test-postgres"]
async fn a_row_mirrored_on_one_node_reaches_table_subscribers_on_both_who_may_see_it() {
    let cluster = Cluster::start().await;
    let bindings = json!({"postgres_changes": [{"event": "*", "schema": "public", "table": "jobs"}]});
    let mut watchers = Vec::new();
    for (node, topic, token) in [
        (&cluster.a, "realtime:jobs", admin_token()),
        (&cluster.b, "realtime:jobs", admin_token()),
        (&cluster.b, "realtime:company:co-1", portal_token("co-1")),
    ] {
        let mut client = cluster.client(node).await;
        let (_, reply) = client.join(topic, join_payload(bindings.clone(), Some(&token))).await;
        assert_eq!(reply.payload["status"], "ok", "{reply:?}");
        watchers.push(client);
    }
    let mut stranger = cluster.client(&cluster.b).await;
    let (_, reply) = stranger
        .join(
            "realtime:company:co-2",
            join_payload(bindings, Some(&portal_token("co-2"))),
        )
        .await;
    assert_eq!(reply.payload["status"], "ok");

    cluster
        .updates_a
        .send(job_row_update(server::store::DEFAULT_ACCOUNT, "job-1"))
        .expect("node A's relay listens");
    for client in &mut watchers {
        let frame = client
            .receive_where(|r| matches!(r, Received::Text(f) if f.event == "postgres_changes"))
            .await
            .text();
        assert_eq!(frame.payload["data"]["type"], "INSERT");
        assert_eq!(frame.payload["data"]["record"]["uuid"], "job-1");
    }
    // The other company's portal saw nothing of it: by the time node B answered the heartbeat, it had been sent.
    let seen = stranger.drain().await;
    assert!(
        seen.iter()
            .all(|r| !matches!(r, Received::Text(f) if f.event == "postgres_changes")),
        "{seen:?}"
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run make test-postgres"]
async fn a_broadcast_replay_on_another_node_is_served_from_the_outbox() {
    let cluster = Cluster::start().await;
    let mut observer = cluster.client(&cluster.a).await;
    observer.join_ok("realtime:jobs", Some(&admin_token())).await;
    for status in ["Quote", "Completed"] {
        cluster
            .updates_a
            .send(job_update("job-1", "co-1", status))
            .expect("node A's relay listens");
        observer.broadcast_on("realtime:jobs", "webhook_update").await;
    }
    let mut late = cluster.client(&cluster.b).await;
    let replay = json!({"broadcast": {"replay": {"since": 0, "limit": 1}}});
    let (_, reply) = late
        .join("realtime:jobs", join_payload(replay, Some(&admin_token())))
        .await;
    assert_eq!(reply.payload["status"], "ok");
    let replayed = late.broadcast_on("realtime:jobs", "webhook_update").await;
    assert_eq!(
        (replayed["offset"].clone(), replayed["changes"]["status"].clone()),
        (json!(2), json!("Completed"))
    );
}
