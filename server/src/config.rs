//! Configuration: flags, environment variables and `.env`, in one `Config` per command.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::processor::ProcessorArgs;
use crate::servicem8::client::ServiceM8Args;

/// A secret value: usable by the code, never written to a log or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(value))
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "sm8-webhooks",
    version,
    about = "Receives, stores and processes ServiceM8 webhooks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the webhook receiver, the management API and the dashboard.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Write a consistent copy of the SQLite database to a new file, while the server keeps serving.
    Backup(crate::cli::BackupArgs),
    /// Serve with a simulated ServiceM8 account producing realistic traffic: the product without an account.
    Demo(crate::cli::DemoArgs),
    /// Reconcile: queue every record ServiceM8 changed since the last sync (or --since) that the mirror lacks.
    Sync(crate::cli::SyncArgs),
    /// Register object webhook subscriptions with ServiceM8, merged with the fields already subscribed.
    Subscribe(crate::cli::SubscribeArgs),
    /// Run a simulated ServiceM8 account (REST API, webhook subscriptions, changing records) on its own.
    MockServicem8(crate::servicem8::mock::MockConfig),
    /// Send webhooks in a real format to a receiver, with duplicates, reordering and bad signatures, and report.
    Simulate(crate::simulate::SimulateArgs),
    /// Print an access token for the realtime relay (admin: every topic; portal: one company's topics).
    Token(crate::realtime::TokenArgs),
    /// Print a one-time link that opens the client portal for one company (valid once, for --ttl).
    PortalLink(crate::portal::PortalLinkArgs),
    /// Measure ingest, end-to-end latency, fan-out, processing and the browser bundle against their targets.
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database to use: sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/sm8.db")]
    pub database_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub ingest: IngestArgs,

    #[command(flatten)]
    pub servicem8: ServiceM8Args,

    #[command(flatten)]
    pub processor: ProcessorArgs,

    #[command(flatten)]
    pub realtime: crate::realtime::RealtimeArgs,

    /// Token for the management API and the dashboard sign-in; generated once and kept in the database when unset.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// Token Prometheus must send as `Authorization: Bearer ...` to read /metrics; without it /metrics is open.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,

    /// Folder holding the browser bundle (pkg/) and static assets; found beside the binary when relative.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Origin under which users reach this server, for links and cookie security (default http://BIND).
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Secrets the receiver checks deliveries against.
#[derive(Debug, Clone, Default, Args)]
pub struct IngestArgs {
    /// Shared secret for the x-servicem8-signature HMAC-SHA256 of webhook bodies: when set, seed-format deliveries
    /// must carry a valid signature and any delivery carrying one is checked.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<Secret>,

    /// Token that unsigned ServiceM8 object callbacks must carry as `?token=...` in the callback URL.
    #[arg(long, env = "WEBHOOK_URL_TOKEN", hide_env_values = true)]
    pub webhook_url_token: Option<Secret>,

    /// App Secret of a ServiceM8 add-on: its callbacks are HS256 JWTs signed with it.
    #[arg(long, env = "SERVICEM8_APP_SECRET", hide_env_values = true)]
    pub servicem8_app_secret: Option<Secret>,

    /// Standard Webhooks secrets (`whsec_...`), comma-separated; several allow rotation.
    #[arg(
        long,
        env = "STANDARD_WEBHOOK_SECRETS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub standard_webhook_secrets: Vec<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    /// Settings for a server on `bind` with the given database and otherwise defaults; used by tests and tools.
    pub fn new(bind: SocketAddr, database_url: impl Into<String>) -> Self {
        ServeArgs {
            bind,
            database: DatabaseArgs {
                database_url: database_url.into(),
            },
            ingest: IngestArgs::default(),
            servicem8: ServiceM8Args::default(),
            processor: ProcessorArgs::default(),
            realtime: crate::realtime::RealtimeArgs::default(),
            admin_token: None,
            metrics_token: None,
            site_root: PathBuf::from("target/site"),
            public_url: None,
            log_format: LogFormat::Text,
        }
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.bind))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The site folder: as given when it exists or is absolute, else `../site` beside the binary
    /// (`target/release/sm8-webhooks` finds `target/site` from any working directory).
    pub fn resolved_site_root(&self) -> PathBuf {
        if self.site_root.is_absolute() || self.site_root.exists() {
            return self.site_root.clone();
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent()?.parent().map(|target| target.join("site")))
            .filter(|candidate| candidate.exists())
            .unwrap_or_else(|| self.site_root.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }

    #[test]
    fn public_url_defaults_to_the_bind_address() {
        let args = ServeArgs::new("127.0.0.1:3000".parse().unwrap(), "sqlite::memory:");
        assert_eq!(args.public_url(), "http://127.0.0.1:3000");
    }

    #[test]
    fn serve_flags_parse_with_their_defaults() {
        let cli = Cli::try_parse_from(["sm8-webhooks", "serve", "--bind", "0.0.0.0:8080"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(args.bind.port(), 8080);
        assert!(args.database.database_url.starts_with("sqlite://") || std::env::var("DATABASE_URL").is_ok());
    }
}
