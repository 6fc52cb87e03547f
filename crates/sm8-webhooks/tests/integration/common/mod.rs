//! Test helpers: a real server on port 0 with a fresh database, and request helpers.

pub mod portal;
pub mod realtime_client;
pub mod receiver;

use std::net::SocketAddr;

use server::config::ServeArgs;
use server::ingest::signature::sign;
use server::secret::Secret;
use server::startup::Server;
use server::store::{Claim, ClaimedEvent, NewEvent, Release, Store, Whose};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A running server and what is needed to talk to it and to restart it on the same database.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub database_url: String,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    // Dropped last: the SQLite file lives here.
    _data: TempDir,
}

pub fn serve_args(database_url: &str) -> ServeArgs {
    let mut args = ServeArgs::new("127.0.0.1:0".parse().unwrap(), database_url);
    args.ingest.webhook_secret = Some(Secret::new(WEBHOOK_SECRET));
    args.admin_token = Some(Secret::new(ADMIN_TOKEN));
    args
}

/// Starts a receive-only server (no workers, so events stay queued) on a fresh SQLite database.
pub async fn spawn_app() -> TestApp {
    let data = TempDir::new().unwrap();
    let database_url = format!("sqlite://{}", data.path().join("sm8.db").display());
    let mut args = serve_args(&database_url);
    args.processor.workers = 0;
    spawn_with(args, data).await
}

/// Starts a server with `args` as given; `data` holds its SQLite file, if any.
pub async fn spawn_with(args: ServeArgs, data: TempDir) -> TestApp {
    let server = Server::build(&args).await.expect("server starts");
    let address = server.local_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    TestApp {
        address,
        client: reqwest::Client::new(),
        database_url: args.database.database_url.clone(),
        shutdown,
        task,
        _data: data,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// Stops the server, waits for it to finish, and starts a new one on the same database.
    pub async fn restart(self) -> TestApp {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
        let mut args = serve_args(&self.database_url);
        args.processor.workers = 0;
        spawn_with(args, self._data).await
    }

    /// Posts `body` signed with the test secret.
    pub async fn post_signed(&self, body: &str) -> reqwest::Response {
        self.post_webhook(body, Some(&sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes())))
            .await
    }

    pub async fn post_webhook(&self, body: &str, signature: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/api/webhooks/sm8"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("x-servicem8-signature", signature);
        }
        request.send().await.unwrap()
    }

    /// GET on the management API with the admin token.
    pub async fn manage(&self, query: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/webhooks/management?{query}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }

    pub async fn manage_json(&self, query: &str) -> serde_json::Value {
        let response = self.manage(query).await;
        assert_eq!(response.status(), 200, "management query {query} failed");
        response.json().await.unwrap()
    }

    /// Signs in to the dashboard as its page does and returns the session cookie (`name=value`).
    pub async fn admin_session_cookie(&self) -> String {
        use leptos::server_fn::ServerFn;
        let signed_in = self
            .client
            .post(self.url(app::api::SignIn::PATH))
            .header("sec-fetch-site", "same-origin")
            .json(&serde_json::json!({ "admin_token": ADMIN_TOKEN }))
            .send()
            .await
            .unwrap();
        assert!(signed_in.status().is_success(), "{}", signed_in.status());
        let cookie = signed_in.headers()[reqwest::header::SET_COOKIE].to_str().unwrap();
        cookie.split(';').next().unwrap().to_owned()
    }
}

/// A delivery of `body` to the receiver at `url`, signed with the test secret as ServiceM8 signs it; for tasks that
/// post on their own, apart from a `TestApp`.
pub fn signed_delivery(client: &reqwest::Client, url: &str, body: String) -> reqwest::RequestBuilder {
    let signature = sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes());
    client
        .post(url)
        .header("content-type", "application/json")
        .header("x-servicem8-signature", signature)
        .body(body)
}

/// A seed-format event for `object_uuid` with a given status change.
pub fn seed_event(object_type: &str, object_uuid: &str, status: &str) -> String {
    serde_json::json!({
        "object_type": object_type,
        "object_uuid": object_uuid,
        "event_type": "updated",
        "timestamp": "2024-01-01T00:00:00Z",
        "changes": { "status": status },
    })
    .to_string()
}

/// Starts a server with `args` on a fresh SQLite database (replacing whatever database `args` names).
pub async fn spawn_app_with(mut args: ServeArgs) -> TestApp {
    let data = TempDir::new().unwrap();
    args.database.database_url = format!("sqlite://{}", data.path().join("sm8.db").display());
    spawn_with(args, data).await
}

/// Runs a server the test built itself (to keep its `updates()` sender, say), as `spawn_with` does.
pub fn run_built(server: Server, database_url: &str, data: TempDir) -> TestApp {
    let address = server.local_addr();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    TestApp {
        address,
        client: reqwest::Client::new(),
        database_url: database_url.to_owned(),
        shutdown,
        task,
        _data: data,
    }
}

/// The PostgreSQL server that `#[ignore]`d PostgreSQL tests use; `make test-postgres` sets it.
pub fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .expect("TEST_DATABASE_URL must name a PostgreSQL database: run make test-postgres")
}

/// Creates a new, empty database on the server `base` names and returns its URL.
pub async fn fresh_postgres_database(base: &str) -> String {
    use sqlx::Connection;
    let name = format!("sm8_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(base)
        .await
        .expect("PostgreSQL at TEST_DATABASE_URL answers");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (without_query, query) = base.split_once('?').map_or((base, None), |(url, q)| (url, Some(q)));
    let server = &without_query[..without_query.rfind('/').expect("URL has a database path")];
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// The node id tests claim as.
pub const TEST_NODE: &str = "test-node";

/// Claims as `TEST_NODE`: the due events of up to `objects` objects, held until `lease_until`.
pub async fn claim(store: &dyn Store, now: i64, lease_until: i64, objects: u32) -> Vec<ClaimedEvent> {
    store
        .claim_due_objects(&Claim {
            now,
            lease_until,
            objects,
            node: TEST_NODE,
        })
        .await
        .unwrap()
}

/// Releases the claims whose lease ran out by `now`, as a node's sweep does; how many events it released.
pub async fn release_expired(store: &dyn Store, now: i64, max_attempts: i32) -> u64 {
    store
        .release_claims(&Release {
            now,
            max_attempts,
            whose: Whose::Expired,
        })
        .await
        .unwrap()
}

/// An `updated` event of one object as the receiver would store it, received (and due) at `received_at`.
pub fn queued_event(object_type: &str, object_uuid: &str, received_at: i64) -> NewEvent {
    NewEvent {
        id: uuid::Uuid::now_v7(),
        dedup_key: format!("test:{object_uuid}:{}", uuid::Uuid::now_v7()),
        format: "seed".into(),
        object_type: object_type.into(),
        object_uuid: object_uuid.into(),
        event_type: "updated".into(),
        occurred_at: Some(received_at),
        changes: serde_json::json!({}),
        body: server::store::ReceivedBody::new(b"{}".to_vec(), serde_json::json!({}), received_at),
        verification: "unsigned".into(),
        received_at,
    }
}
