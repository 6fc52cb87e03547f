//! Test helpers: a real server on port 0 with a fresh database, and request helpers.

pub mod outbound;
pub mod portal;
pub mod realtime_client;
pub mod receiver;
pub mod users;

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
/// The account everything of a test belongs to unless it says otherwise: the default one.
pub const ACCOUNT: &str = server::store::DEFAULT_ACCOUNT;
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
    // Given, so that no test writes a key file anywhere (PostgreSQL's would go into the working directory).
    args.accounts.secret_key = Some(Secret::new(SECRET_KEY));
    args
}

/// The accounts of `store` as a server would hold them, with the default account reaching ServiceM8 as `api`
/// says: for tests that run a processor of their own.
pub async fn accounts_with(
    store: std::sync::Arc<dyn Store>,
    api: &server::servicem8::client::ServiceM8Args,
) -> std::sync::Arc<server::accounts::Accounts> {
    let sealer = server::sealing::MasterKey::parse(SECRET_KEY).unwrap().sealer();
    let accounts = server::accounts::Accounts::load(store, sealer, api.clone(), None)
        .await
        .unwrap();
    let processor = server::processor::ProcessorArgs {
        sync_interval_seconds: 0,
        retention_days: 0,
        ..Default::default()
    };
    let default = server::startup::default_account(
        &server::ingest::IngestArgs::default(),
        api,
        &processor,
        &server::accounts::AccountArgs::default(),
    );
    accounts.apply_default(&default).await.unwrap();
    accounts
}

/// The master key of every test server's sealed secrets (32 bytes, base64).
pub const SECRET_KEY: &str = "dGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmchISE=";

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

    /// Starts shutting the server down, as SIGTERM does, without waiting for it.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
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

    /// POST of a management change with the admin token: its status and answer.
    pub async fn change(&self, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url("/api/webhooks/management"))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// A management change that must succeed: its answer.
    pub async fn changed(&self, body: serde_json::Value) -> serde_json::Value {
        let (status, answer) = self.change(&body).await;
        assert_eq!(status, 200, "{body}: {answer}");
        answer
    }

    pub async fn manage_json(&self, query: &str) -> serde_json::Value {
        let response = self.manage(query).await;
        assert_eq!(response.status(), 200, "management query {query} failed");
        response.json().await.unwrap()
    }

    /// Signs in to the dashboard as an instance owner (created on first use), as its page does, and returns the
    /// session cookie (`name=value`).
    pub async fn admin_session_cookie(&self) -> String {
        users::ensure_user(self, users::OWNER_EMAIL, true, &[]).await;
        users::sign_in(self, users::OWNER_EMAIL, users::PASSWORD).await
    }
}

/// Polls `probe` until it yields a value; fails after 20 s.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut probe: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
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
        account: ACCOUNT.into(),
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
