//! The `sm8-webhooks` command.

use anyhow::Context;
use clap::Parser;
use server::startup::redact_url;
use server::{commands, store, telemetry};

mod cli;
mod demo;

use cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A missing .env is normal; a malformed one is worth stopping for.
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(error) if error.not_found() => {}
        Err(error) => return Err(error).context("reading .env"),
    }
    match Cli::parse().command {
        Command::Serve(args) => commands::serve(args).await,
        Command::Backup(args) => commands::backup(args).await,
        Command::Demo(args) => demo::demo(args).await,
        Command::Sync(args) => commands::sync(args).await,
        Command::Subscribe(args) => commands::subscribe(args).await,
        Command::Account(command) => commands::account(command).await,
        Command::User(command) => commands::user(command).await,
        Command::RotateSecretKey(args) => commands::rotate_secret_key(args).await,
        Command::MockServicem8(config) => {
            telemetry::init(server::telemetry::LogFormat::Text);
            servicem8_mock::run_cli(config).await
        }
        Command::Simulate(args) => sm8_tools::simulate::run_cli(args).await,
        Command::Bench(args) => sm8_tools::bench::run_cli(args).await,
        Command::PackSite(args) => sm8_tools::site::run_cli(args),
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
