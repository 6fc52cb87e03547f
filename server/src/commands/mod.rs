//! The product's commands: `serve` and `backup` (here), `sync` and `subscribe` (`servicem8.rs`), `account`, `user`
//! and `rotate-secret-key` (`directory.rs`), their arguments, and the start-up banner. The command line that offers
//! them (with the tooling commands beside) is the `sm8-webhooks` binary's.

mod directory;
mod servicem8;

pub use directory::{account, rotate_secret_key, user, AccountCommand, RotateKeyArgs, UserCommand};
pub use servicem8::{subscribe, sync, SubscribeArgs, SyncArgs};

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::accounts::{AccountArgs, AccountSecrets, DefaultAccount, LiveAccount, ProcessingMode};
use crate::config::ServeArgs;
use crate::processor::ProcessorArgs;
use crate::sealing::KeySource;
use crate::servicem8::client::ServiceM8Args;
use crate::servicem8::oauth::OAuthArgs;
use crate::startup::{open_directory, redact_url, AdminTokenSource, Directory, Server};
use crate::store::{DatabaseArgs, DEFAULT_ACCOUNT};
use crate::{store, telemetry};

/// What the commands that read or change accounts need: the database, its master key, how to reach ServiceM8,
/// and which account.
#[derive(Debug, Clone, Args)]
pub struct DirectoryArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub accounts: AccountArgs,

    #[command(flatten)]
    pub servicem8: ServiceM8Args,

    #[command(flatten)]
    pub oauth: OAuthArgs,

    /// The account to act on.
    #[arg(long, default_value = DEFAULT_ACCOUNT)]
    pub account: String,

    /// Origin under which users reach the server, for links (default http://BIND).
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The address `serve` listens on, for the default public URL.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,
}

impl DirectoryArgs {
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.bind))
            .trim_end_matches('/')
            .to_owned()
    }

    /// Opens the database and the accounts. The default account is created from the environment's credentials
    /// if `serve` never ran; otherwise it is left as `serve` last completed it.
    pub async fn open(&self) -> anyhow::Result<Directory> {
        let processor = ProcessorArgs::default();
        let default = DefaultAccount {
            servicem8_account_uuid: self.accounts.servicem8_account_uuid.clone(),
            secrets: AccountSecrets {
                api_key: self
                    .servicem8
                    .servicem8_api_key
                    .as_ref()
                    .map(|key| key.expose().to_owned()),
                access_token: self
                    .servicem8
                    .servicem8_access_token
                    .as_ref()
                    .map(|token| token.expose().to_owned()),
                ..AccountSecrets::default()
            },
            requests_per_minute: self.servicem8.servicem8_requests_per_minute,
            requests_per_day: self.servicem8.servicem8_requests_per_day,
            sync_interval_seconds: processor.sync_interval_seconds,
            retention_days: processor.retention_days,
        };
        let store = store::connect(&self.database.database_url)
            .await
            .context("opening the database")?;
        let default = match store.account(DEFAULT_ACCOUNT).await? {
            Some(_) => None,
            None => Some(default),
        };
        drop(store);
        let opened = open_directory(
            &self.database.database_url,
            &self.accounts,
            &self.servicem8,
            &self.oauth,
            default.as_ref(),
        )
        .await?;
        announce_generated_key(&opened.key_source);
        Ok(opened)
    }

    /// The account `--account` names.
    pub fn account(&self, opened: &Directory) -> anyhow::Result<Arc<LiveAccount>> {
        opened.accounts.get(&self.account).with_context(|| {
            format!(
                "there is no account {:?}: see `sm8-webhooks account list`",
                self.account
            )
        })
    }
}

/// Says, once, that a master key was just generated and where it is: without it the sealed secrets are lost.
pub fn announce_generated_key(source: &KeySource) {
    if let KeySource::Generated(file) = source {
        eprintln!(
            "Generated the master key of the stored secrets in {} (readable by its owner only). Back it up: \
             without it the stored credentials cannot be read. SECRET_KEY can hold it instead.",
            file.display()
        );
    }
}

#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The file to write; it must not exist yet.
    #[arg(long)]
    pub to: std::path::PathBuf,
}

/// `backup`: SQLite's `VACUUM INTO`, safe while serving. PostgreSQL has its own tools.
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let url = &args.database.database_url;
    if !url.starts_with("sqlite:") {
        bail!(
            "backup copies SQLite databases; for PostgreSQL use pg_dump (for example `pg_dump --format=custom \
             --file=sm8.dump {}`) and pg_restore",
            redact_url(url)
        );
    }
    if url.contains(":memory:") {
        bail!("an in-memory database has nothing on disk to back up");
    }
    let backup = store::backup_sqlite(url, &args.to)
        .await
        .with_context(|| format!("backing up {}", redact_url(url)))?;
    println!(
        "Backed up {} to {} ({} bytes).",
        redact_url(url),
        backup.path.display(),
        backup.bytes
    );
    Ok(())
}

/// `serve`: runs until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let server = Server::build(&args).await?;
    print_banner(&args, &server, server.local_addr());
    run_until_signal(server).await
}

/// What the operator needs to start: where the server listens, its URLs, and what is not configured.
pub fn print_banner(args: &ServeArgs, server: &Server, address: SocketAddr) {
    let scheme = args.scheme();
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{address}"));
    println!("SM8 Webhooks is serving on {scheme}://{address}");
    println!("  Database:  {}", redact_url(&args.database.database_url));
    println!("  Dashboard: {public_url}/admin/webhook-dashboard");
    println!("  Webhooks:  POST {public_url}/api/webhooks/sm8");
    println!(
        "  Realtime:  {public_url}/realtime/v1 (anon key: {})",
        server.realtime_anon_key.expose()
    );
    // A token the operator configured is theirs already: printing it would only put it in the logs.
    match server.admin_token_source {
        AdminTokenSource::Configured => println!("  Admin token: the one in ADMIN_TOKEN"),
        AdminTokenSource::Stored => {
            println!(
                "  Admin token (generated on first start, kept in the database's settings): {}",
                server.admin_token.expose()
            )
        }
    }
    if args.ingest.webhook_secret.is_none() {
        println!("  WEBHOOK_SECRET is not set: webhook signatures are not checked.");
    }
    if server.processing_mode() == ProcessingMode::PayloadOnly {
        println!("  No ServiceM8 credentials (SERVICEM8_API_KEY): events are applied from their payloads, nothing is fetched.");
    }
    let accounts = server.accounts().all();
    if accounts.len() > 1 {
        let slugs: Vec<&str> = accounts.iter().map(|account| account.slug.as_str()).collect();
        println!(
            "  Accounts:  {} (each at {public_url}/api/webhooks/sm8/<account>)",
            slugs.join(", ")
        );
    }
    announce_generated_key(&server.key_source);
    if let Some(link) = &server.setup_link {
        println!("  First start: create the first owner at {link} (one-time link, valid 7 days),");
        println!("               or run `sm8-webhooks user add --email you@example.com --password-stdin`.");
    }
}

/// Runs `server` until SIGINT or SIGTERM, then lets it finish what it accepted.
pub async fn run_until_signal(server: Server) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing in-flight requests and batches");
            shutdown.cancel();
        }
    });
    server.run(shutdown).await
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
