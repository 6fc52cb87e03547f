//! Starting and stopping what the scenarios measure, all on 127.0.0.1: a fresh database per scenario, servers on a
//! tokio runtime of their own (so the load generator never shares a scheduler with them), and the release binary
//! as a child process where its memory is what is measured.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Context};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::report::ScenarioReport;
use server::config::ServeArgs;
use server::realtime::auth::{now_seconds, Role, TokenKeys};
use server::secret::Secret;
use server::startup::Server;
use servicem8_mock::{MockConfig, MockHandle};

pub const WEBHOOK_SECRET: &str = "bench-webhook-secret";
pub const ADMIN_TOKEN: &str = "bench-admin-token";
pub const ANON_KEY: &str = "bench-anon-key";
pub const JWT_SECRET: &str = "bench-jwt-secret";

/// Worker threads of a hosted server's runtime: what the machine offers, as in production.
fn server_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |cores| cores.get())
}

/// Serve settings for a bench server on a free port with known secrets and no reconciliation pass (it would
/// list the whole simulated account in the middle of a measurement).
pub fn serve_args(database_url: &str) -> ServeArgs {
    let mut args = ServeArgs::new(SocketAddr::from(([127, 0, 0, 1], 0)), database_url);
    args.ingest.webhook_secret = Some(Secret::new(WEBHOOK_SECRET));
    args.admin_token = Some(Secret::new(ADMIN_TOKEN));
    args.realtime.realtime_anon_key = Some(Secret::new(ANON_KEY));
    args.realtime.jwt_secret = Some(Secret::new(JWT_SECRET));
    // The fan-out scenario opens 50,000 subscribers, over four loopback addresses.
    args.realtime.realtime_max_connections = 60_000;
    args.realtime.realtime_max_connections_per_address = 60_000;
    args.processor.sync_interval_seconds = 0;
    args
}

/// An admin access token for the realtime relay of a bench server.
pub fn admin_access_token() -> anyhow::Result<String> {
    Ok(TokenKeys::new(&Secret::new(JWT_SECRET)).mint(
        Role::Admin,
        server::store::DEFAULT_ACCOUNT,
        None,
        3600,
        now_seconds(),
    )?)
}

/// A simulated account that never limits or fails, with `companies × jobs_per_company` jobs and nothing else.
pub fn unlimited_account(companies: usize, jobs_per_company: usize) -> MockConfig {
    MockConfig {
        companies,
        jobs_per_company,
        activities_per_job: 0,
        attachments_per_job: 0,
        per_minute: u32::MAX / 2,
        per_day: u32::MAX / 2,
        latency_ms: 0,
        change_interval_ms: 0,
        ..MockConfig::on_free_port()
    }
}

/// Something running on its own runtime thread until stopped.
pub struct Hosted<T> {
    pub value: T,
    shutdown: CancellationToken,
    /// Answered with the outcome when the thread is done. A thread that never finishes is left behind detached,
    /// so that it cannot keep this process from exiting.
    finished: Option<oneshot::Receiver<anyhow::Result<()>>>,
}

/// Runs `start` on a new multi-thread runtime in a new OS thread. `start` sends what the caller needs once it is
/// ready, then runs until the token is cancelled.
pub async fn host<T, F, Fut>(name: &str, start: F) -> anyhow::Result<Hosted<T>>
where
    T: Send + 'static,
    F: FnOnce(oneshot::Sender<T>, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let shutdown = CancellationToken::new();
    let (ready, value) = oneshot::channel();
    let (done, finished) = oneshot::channel();
    std::thread::Builder::new().name(name.to_owned()).spawn({
        let shutdown = shutdown.clone();
        let name = name.to_owned();
        move || {
            let outcome = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(server_threads())
                .thread_name(name)
                .enable_all()
                .build()
                .context("building a server runtime")
                .and_then(|runtime| runtime.block_on(start(ready, shutdown)));
            let _ = done.send(outcome);
        }
    })?;
    match value.await {
        Ok(value) => Ok(Hosted {
            value,
            shutdown,
            finished: Some(finished),
        }),
        Err(_) => Err(match finished.await {
            Ok(Err(error)) => error,
            Ok(Ok(())) => anyhow!("{name} stopped before it was ready"),
            Err(_) => anyhow!("{name} panicked"),
        }),
    }
}

impl<T> Hosted<T> {
    /// Cancels and waits for the runtime thread to finish (a thread that hangs is left behind after 15 s).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let Some(finished) = self.finished.take() else {
            return Ok(());
        };
        match tokio::time::timeout(Duration::from_secs(15), finished).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(anyhow!("a hosted server panicked")),
            Err(_) => Err(anyhow!("a hosted server did not stop within 15 s")),
        }
    }

    /// Stops; a server that will not stop is noted in the report rather than failing the scenario, whose figures
    /// are already taken.
    pub async fn stop_noting(self, report: &mut ScenarioReport) {
        if let Err(error) = self.stop().await {
            report.note(format!("{error:#}"));
        }
    }
}

impl<T> Drop for Hosted<T> {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Runs a simulated ServiceM8 account on its own runtime, as the remote service it stands for.
pub async fn host_account(config: MockConfig) -> anyhow::Result<Hosted<MockHandle>> {
    host("bench-servicem8", move |ready, shutdown| async move {
        // The handle goes to the caller; the account's tasks end with this runtime.
        if ready.send(servicem8_mock::start(config).await?).is_ok() {
            shutdown.cancelled().await;
        }
        Ok(())
    })
    .await
}

/// Makes `args` fetch from `account`, with an API budget that never runs out.
pub fn fetch_from(args: &mut ServeArgs, account: &MockHandle) {
    args.servicem8.servicem8_api_key = Some(Secret::new(account.api_key()));
    args.servicem8.servicem8_access_token = None;
    args.servicem8.servicem8_base_url = account.base_url();
    args.servicem8.servicem8_requests_per_minute = i64::from(u32::MAX);
    args.servicem8.servicem8_requests_per_day = i64::from(u32::MAX);
}

/// Starts the product server on its own runtime and runs it until stopped; the value is its address.
pub async fn host_server(args: ServeArgs) -> anyhow::Result<Hosted<SocketAddr>> {
    host("bench-server", move |ready, shutdown| async move {
        let server = Server::build(&args).await?;
        if ready.send(server.local_addr()).is_err() {
            return Ok(());
        }
        server.run(shutdown).await
    })
    .await
}

/// A fresh, empty database for each scenario: SQLite files in a temporary folder, or PostgreSQL databases created
/// beside the one `base` names and dropped at the end.
pub enum Databases {
    Sqlite { folder: TempDir, made: AtomicUsize },
    Postgres { base: String, made: Mutex<Vec<String>> },
}

impl Databases {
    pub fn sqlite() -> anyhow::Result<Databases> {
        let folder = tempfile::Builder::new()
            .prefix("sm8-bench-")
            .tempdir()
            .context("creating a temporary folder")?;
        Ok(Databases::Sqlite {
            folder,
            made: AtomicUsize::new(0),
        })
    }

    pub fn postgres(base: &str) -> Databases {
        Databases::Postgres {
            base: base.to_owned(),
            made: Mutex::new(Vec::new()),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Databases::Postgres { .. })
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Databases::Sqlite { .. } => "sqlite",
            Databases::Postgres { .. } => "postgres",
        }
    }

    /// The URL of a new, empty database.
    pub async fn fresh(&self, scenario: &str) -> anyhow::Result<String> {
        match self {
            Databases::Sqlite { folder, made } => {
                let n = made.fetch_add(1, Ordering::Relaxed);
                Ok(format!(
                    "sqlite://{}",
                    folder.path().join(format!("{scenario}-{n}.db")).display()
                ))
            }
            Databases::Postgres { base, made } => {
                use sqlx::Connection;
                let name = format!("sm8_bench_{}", uuid::Uuid::new_v4().simple());
                let mut admin = sqlx::PgConnection::connect(base)
                    .await
                    .with_context(|| format!("connecting to PostgreSQL at {}", server::startup::redact_url(base)))?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await?;
                made.lock().expect("the list of databases is intact").push(name.clone());
                Ok(sibling_database_url(base, &name))
            }
        }
    }

    /// Drops the PostgreSQL databases made; SQLite files go with the temporary folder.
    pub async fn clean_up(&self) {
        let Databases::Postgres { base, made } = self else {
            return;
        };
        use sqlx::Connection;
        let names = std::mem::take(&mut *made.lock().expect("the list of databases is intact"));
        let Ok(mut admin) = sqlx::PgConnection::connect(base).await else {
            return;
        };
        for name in names {
            if let Err(error) = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
            {
                eprintln!("could not drop the bench database {name}: {error}");
            }
        }
    }
}

/// `base` with its database name replaced by `name`, keeping any query string.
fn sibling_database_url(base: &str, name: &str) -> String {
    let (url, query) = base
        .split_once('?')
        .map_or((base, None), |(url, query)| (url, Some(query)));
    let server = url
        .rfind('/')
        .filter(|&slash| slash > url.find("://").map_or(0, |scheme| scheme + 2))
        .map_or(url, |slash| &url[..slash]);
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// The release binary serving as a separate process, so that its memory can be read on its own.
pub struct ChildServer {
    child: tokio::process::Child,
    pub address: SocketAddr,
}

impl ChildServer {
    /// Starts `sm8-webhooks serve` (this very executable) on a free port, receive-only, and waits for its banner.
    pub async fn start(database_url: &str) -> anyhow::Result<ChildServer> {
        ChildServer::start_with(database_url, &[]).await
    }

    /// Starts the server with `settings` (environment variables) over the receive-only defaults.
    pub async fn start_with(database_url: &str, settings: &[(&str, String)]) -> anyhow::Result<ChildServer> {
        let executable = std::env::current_exe().context("finding the sm8-webhooks executable")?;
        let mut command = tokio::process::Command::new(executable);
        command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("DATABASE_URL", database_url)
            .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("REALTIME_ANON_KEY", ANON_KEY)
            .env("JWT_SECRET", JWT_SECRET)
            .env("WORKERS", "0")
            .env("SYNC_INTERVAL_SECONDS", "0")
            // Set (empty) so that a .env in the working directory cannot point the child at a real account.
            .env("SERVICEM8_API_KEY", "")
            .env("SERVICEM8_ACCESS_TOKEN", "")
            .env("RUST_LOG", "warn")
            // The fan-out scenario opens 50,000 subscribers, over four loopback addresses, as in `serve_args`.
            .env("REALTIME_MAX_CONNECTIONS", "60000")
            .env("REALTIME_MAX_CONNECTIONS_PER_ADDRESS", "60000")
            .envs(settings.iter().map(|(name, value)| (name, value)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().context("starting sm8-webhooks serve")?;
        let stdout = child.stdout.take().context("the child's output")?;
        let mut lines = BufReader::new(stdout).lines();
        let address = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(address) = announced_address(&line) {
                    return Ok(address);
                }
            }
            Err(anyhow!("sm8-webhooks serve exited before it was serving"))
        })
        .await
        .context("sm8-webhooks serve did not start within 30 s")??;
        // Keep reading so that the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(ChildServer { child, address })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn resident_kib(&self) -> Option<u64> {
        super::measure::resident_kib(self.child.id()?)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The address in the banner line `SM8 Webhooks is serving on http://ADDR`.
fn announced_address(line: &str) -> Option<SocketAddr> {
    line.split_once("serving on http://")?.1.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_postgres_databases_sit_beside_the_base_one() {
        assert_eq!(
            sibling_database_url("postgres://postgres@127.0.0.1:5432/test", "b1"),
            "postgres://postgres@127.0.0.1:5432/b1"
        );
        assert_eq!(
            sibling_database_url("postgres://u:p@db/test?sslmode=disable", "b2"),
            "postgres://u:p@db/b2?sslmode=disable"
        );
        assert_eq!(sibling_database_url("postgres://db", "b3"), "postgres://db/b3");
    }

    #[test]
    fn the_child_announces_where_it_serves() {
        assert_eq!(
            announced_address("SM8 Webhooks is serving on http://127.0.0.1:41234"),
            Some(SocketAddr::from(([127, 0, 0, 1], 41234)))
        );
        assert_eq!(announced_address("  Database:  sqlite://x"), None);
    }

    #[tokio::test]
    async fn a_hosted_task_reports_a_failed_start() {
        let failed = host::<(), _, _>("bench-test", |_ready, _shutdown| async { Err(anyhow!("no database")) }).await;
        assert_eq!(
            failed.err().map(|error| error.to_string()),
            Some("no database".to_owned())
        );
        let hosted = host("bench-test", |ready, shutdown| async move {
            ready.send(7).ok();
            shutdown.cancelled().await;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(hosted.value, 7);
        hosted.stop().await.unwrap();
    }
}
