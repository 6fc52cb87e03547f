//! The `sm8-webhooks` command.

use anyhow::Context;
use clap::Parser;
use server::config::{Cli, Command, ServeArgs};
use server::startup::{redact_url, AdminTokenSource, Server};
use server::{store, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A missing .env is normal; a malformed one is worth stopping for.
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(error) if error.not_found() => {}
        Err(error) => return Err(error).context("reading .env"),
    }
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => {
            telemetry::init(server::config::LogFormat::Text);
            store::connect(&args.database_url).await.context("migrating the database")?;
            println!("Database {} is migrated.", redact_url(&args.database_url));
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let server = Server::build(&args).await?;
    let address = server.local_addr();
    let public_url = args.public_url.clone().unwrap_or_else(|| format!("http://{address}"));
    println!("SM8 Webhooks is serving on http://{address}");
    println!("  Database:  {}", redact_url(&args.database.database_url));
    println!("  Dashboard: {public_url}/admin/webhook-dashboard");
    println!("  Webhooks:  POST {public_url}/api/webhooks/sm8");
    match server.admin_token_source {
        AdminTokenSource::Configured => println!("  Admin token (from ADMIN_TOKEN): {}", server.admin_token.expose()),
        AdminTokenSource::Stored => {
            println!("  Admin token (generated, kept in the database): {}", server.admin_token.expose())
        }
    }
    if args.webhook_secret.is_none() {
        println!("  WEBHOOK_SECRET is not set: webhook signatures are not checked.");
    }

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
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
