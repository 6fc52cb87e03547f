//! The product's commands: `serve`, `sync`, `subscribe` and `backup`, their arguments, and the start-up banner.
//! The command line that offers them (with the tooling commands beside) is the `sm8-webhooks` binary's.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::config::ServeArgs;
use crate::processor::ProcessingMode;
use crate::servicem8::client::{ServiceM8Args, ServiceM8Client};
use crate::servicem8::{subscriptions, sync};
use crate::startup::{redact_url, AdminTokenSource, Server};
use crate::store::{DatabaseArgs, OBJECTS};
use crate::{store, telemetry};

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub servicem8: ServiceM8Args,

    /// Reconcile records changed after this ServiceM8 date ("YYYY-MM-DD HH:MM:SS") instead of the stored watermark.
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SubscribeArgs {
    #[command(flatten)]
    pub servicem8: ServiceM8Args,

    /// The URL ServiceM8 should post to, e.g. https://example.com/api/webhooks/sm8?token=...
    #[arg(long, env = "WEBHOOK_CALLBACK_URL")]
    pub callback_url: String,

    /// Object to subscribe, optionally with its fields: `job` or `job:status,job_address`. Repeatable; the
    /// default subscribes job, company, jobactivity, attachment and staff with the fields the mirror uses.
    #[arg(long = "object")]
    pub objects: Vec<String>,
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

/// `sync`: one reconciliation pass.
pub async fn sync(args: SyncArgs) -> anyhow::Result<()> {
    telemetry::init(crate::telemetry::LogFormat::Text);
    let store = store::connect(&args.database.database_url)
        .await
        .context("opening the database")?;
    let Some(client) = ServiceM8Client::from_args(&args.servicem8, store.clone())? else {
        bail!("sync needs ServiceM8 credentials: set SERVICEM8_API_KEY or SERVICEM8_ACCESS_TOKEN");
    };
    let reports = sync::reconcile(&store, &client, args.since.as_deref()).await?;
    for report in reports {
        println!(
            "{:<12} scanned {:>6}  queued {:>6}  watermark {}",
            report.object_type,
            report.scanned,
            report.queued,
            report.watermark.as_deref().unwrap_or("-")
        );
    }
    println!("Queued events are processed by a running `sm8-webhooks serve` on the same database.");
    Ok(())
}

/// `subscribe`: registers the object subscriptions.
pub async fn subscribe(args: SubscribeArgs) -> anyhow::Result<()> {
    telemetry::init(crate::telemetry::LogFormat::Text);
    let requested = requested_objects(&args.objects)?;
    // Subscriptions are not events: the budget lives in memory here.
    let store: Arc<dyn store::Store> = store::connect("sqlite::memory:").await?;
    let Some(client) = ServiceM8Client::from_args(&args.servicem8, store)? else {
        bail!("subscribe needs ServiceM8 credentials: set SERVICEM8_API_KEY or SERVICEM8_ACCESS_TOKEN");
    };
    let subscribed = subscriptions::subscribe(&client, &args.callback_url, &requested).await?;
    for subscription in subscribed {
        println!(
            "subscribed {:<12} fields {}",
            subscription.object,
            subscription.fields.join(",")
        );
    }
    println!(
        "ServiceM8 confirms each subscription by posting a challenge to {}.",
        args.callback_url
    );
    Ok(())
}

/// `job` or `job:status,job_address` into (object, fields), with the defaults when nothing is given.
fn requested_objects(objects: &[String]) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    if objects.is_empty() {
        return Ok(OBJECTS
            .iter()
            .filter_map(|spec| {
                Some((
                    spec.object_type.to_owned(),
                    subscriptions::default_fields(spec.object_type)?,
                ))
            })
            .collect());
    }
    objects
        .iter()
        .map(|spec| {
            let (object, fields) = spec.split_once(':').unwrap_or((spec, ""));
            let object = crate::ingest::payload::canonical_object_type(object);
            let fields: Vec<String> = fields
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect();
            match (fields.is_empty(), subscriptions::default_fields(&object)) {
                (false, _) => Ok((object, fields)),
                (true, Some(defaults)) => Ok((object, defaults)),
                (true, None) => bail!("no default fields for {object:?}: name them, e.g. --object {object}:name"),
            }
        })
        .collect()
}

/// What the operator needs to start: where the server listens, its URLs, and what is not configured.
pub fn print_banner(args: &ServeArgs, server: &Server, address: SocketAddr) {
    let public_url = args.public_url.clone().unwrap_or_else(|| format!("http://{address}"));
    println!("SM8 Webhooks is serving on http://{address}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_specs_take_their_fields_or_the_defaults() {
        let requested = requested_objects(&["Job:status,job_address".into(), "company".into()]).unwrap();
        assert_eq!(
            requested[0],
            ("job".into(), vec!["status".to_owned(), "job_address".to_owned()])
        );
        assert_eq!(requested[1].0, "company");
        assert!(!requested[1].1.is_empty());
        assert!(requested_objects(&["form".into()]).is_err());
        assert_eq!(requested_objects(&[]).unwrap().len(), OBJECTS.len());
    }
}
