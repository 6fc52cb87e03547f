//! The command line: the product's commands (`serve`, `migrate`, `backup`, `sync`, `subscribe`, `account`, `user`,
//! `rotate-secret-key`, `token`, `portal-link`), `demo`, and the tools beside them (`mock-servicem8`, `simulate`,
//! `bench`).

use clap::{Args, Parser, Subcommand};
use server::commands::{AccountCommand, BackupArgs, RotateKeyArgs, SubscribeArgs, SyncArgs, UserCommand};
use server::config::ServeArgs;
use server::store::DatabaseArgs;

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
    Backup(BackupArgs),
    /// Serve with a simulated ServiceM8 account producing realistic traffic: the product without an account.
    Demo(DemoArgs),
    /// Reconcile: queue every record ServiceM8 changed since the last sync (or --since) that the mirror lacks.
    Sync(SyncArgs),
    /// Manage an account's webhook subscriptions at ServiceM8: create (fields merged), --list, --delete.
    Subscribe(SubscribeArgs),
    /// The ServiceM8 accounts this deployment serves.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Users and their roles in accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Seal every stored secret under a new master key.
    RotateSecretKey(RotateKeyArgs),
    /// Run a simulated ServiceM8 account (REST API, webhook subscriptions, changing records) on its own.
    MockServicem8(servicem8_mock::MockConfig),
    /// Send webhooks in a real format to a receiver, with duplicates, reordering and bad signatures, and report.
    Simulate(sm8_tools::simulate::SimulateArgs),
    /// Print an access token for the realtime relay (admin: every topic; portal: one company's topics).
    Token(server::realtime::TokenArgs),
    /// Print a one-time link that opens the client portal for one company (valid once, for --ttl).
    PortalLink(server::portal::PortalLinkArgs),
    /// Measure ingest, end-to-end latency, fan-out, processing and the browser bundle against their targets.
    Bench(sm8_tools::bench::BenchArgs),
    /// Name the built browser bundle by its content and write it brotli- and gzip-compressed (make build's last
    /// step).
    PackSite(sm8_tools::site::PackSiteArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,

    /// How often the simulated account changes a record and posts a webhook, in milliseconds.
    #[arg(long, default_value_t = 1_500)]
    pub demo_change_interval_ms: u64,

    /// Fraction of simulated API requests that fail with a server error (shows retries and failures).
    #[arg(long, default_value_t = 0.15)]
    pub demo_error_rate: f64,
}

#[cfg(test)]
mod tests {
    use sm8_tools::simulate::WebhookFormat;

    use super::*;

    #[test]
    fn serve_flags_parse_with_their_defaults() {
        let cli = Cli::try_parse_from(["sm8-webhooks", "serve", "--bind", "0.0.0.0:8080"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(args.bind.port(), 8080);
        assert!(args.database.database_url.starts_with("sqlite://") || std::env::var("DATABASE_URL").is_ok());
    }

    #[test]
    fn the_simulate_command_takes_its_flags() {
        let cli = Cli::try_parse_from([
            "sm8-webhooks",
            "simulate",
            "--target",
            "http://127.0.0.1:1/api/webhooks/sm8",
            "--format",
            "standard",
            "--count",
            "7",
            "--duplicates",
            "0.2",
            "--reorder",
            "--standard-secret",
            "whsec_a2V5,whsec_b2xk",
        ])
        .unwrap();
        let Command::Simulate(args) = cli.command else {
            panic!("expected simulate")
        };
        assert_eq!(
            (args.format, args.count, args.reorder),
            (WebhookFormat::Standard, 7, true)
        );
        assert_eq!(args.credentials().standard_secret.as_deref(), Some("whsec_a2V5"));
    }

    #[test]
    fn the_mock_servicem8_command_takes_the_mock_config() {
        let cli = Cli::try_parse_from([
            "sm8-webhooks",
            "mock-servicem8",
            "--bind",
            "127.0.0.1:0",
            "--page-size",
            "50",
        ])
        .unwrap();
        let Command::MockServicem8(config) = cli.command else {
            panic!("expected mock-servicem8")
        };
        assert_eq!((config.bind.port(), config.page_size), (0, 50));
    }
}
