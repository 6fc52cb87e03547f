//! The `sm8-webhooks` command.

use anyhow::Context;
use clap::Parser;
use server::cli::{Cli, Command};
use server::startup::redact_url;
use server::{cli, store, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A missing .env is normal; a malformed one is worth stopping for.
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(error) if error.not_found() => {}
        Err(error) => return Err(error).context("reading .env"),
    }
    match Cli::parse().command {
        Command::Serve(args) => cli::serve(args).await,
        Command::Backup(args) => cli::backup(args).await,
        Command::Demo(args) => cli::demo(args).await,
        Command::Sync(args) => cli::sync(args).await,
        Command::Subscribe(args) => cli::subscribe(args).await,
        Command::MockServicem8(config) => {
            telemetry::init(server::telemetry::LogFormat::Text);
            server::servicem8::mock::run_cli(config).await
        }
        Command::Simulate(args) => server::simulate::run_cli(args).await,
        Command::Bench(args) => server::bench::run_cli(args).await,
        Command::PortalLink(args) => server::portal::run_cli(args).await,
        Command::Token(args) => {
            println!("{}", server::realtime::mint_token(&args).await?);
            Ok(())
        }
        Command::Migrate(args) => {
            telemetry::init(server::telemetry::LogFormat::Text);
            store::connect(&args.database_url)
                .await
                .context("migrating the database")?;
            println!("Database {} is migrated.", redact_url(&args.database_url));
            Ok(())
        }
    }
}
