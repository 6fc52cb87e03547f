//! `demo`: the product with a simulated ServiceM8 account in place of a real one.

use anyhow::Context;
use server::commands::{print_banner, run_until_signal};
use server::processor::ProcessorArgs;
use server::secret::Secret;
use server::startup::Server;
use server::telemetry;

use crate::cli::DemoArgs;

/// `demo`: a simulated ServiceM8 account changes its records and posts webhooks to this server, which fetches
/// each record back from it.
pub async fn demo(demo: DemoArgs) -> anyhow::Result<()> {
    let mut args = demo.serve;
    telemetry::init(args.log_format);
    let account = servicem8_mock::start(servicem8_mock::MockConfig {
        change_interval_ms: demo.demo_change_interval_ms,
        error_rate: demo.demo_error_rate,
        ..servicem8_mock::MockConfig::on_free_port()
    })
    .await
    .context("starting the simulated ServiceM8 account")?;
    args.servicem8.servicem8_api_key = Some(Secret::new(account.api_key()));
    args.servicem8.servicem8_access_token = None;
    args.servicem8.servicem8_base_url = account.base_url();
    if args.processor.retry_base_delay_ms == ProcessorArgs::default().retry_base_delay_ms {
        // Retries every few seconds, so a demo shows events recovering and failing within a minute.
        args.processor.retry_base_delay_ms = 2_000;
    }
    let server = Server::build(&args).await?;
    let address = server.local_addr();
    let token = args
        .ingest
        .webhook_url_token
        .as_ref()
        .map(|t| format!("?token={}", t.expose()))
        .unwrap_or_default();
    account.add_target(format!("http://{address}/api/webhooks/sm8{token}"));
    print_banner(&args, &server, address);
    println!(
        "  Demo mode: a simulated ServiceM8 account at {} changes records and posts webhooks here;",
        account.base_url()
    );
    println!(
        "             about {:.0}% of its API answers fail, to show retries.",
        demo.demo_error_rate * 100.0
    );
    let result = run_until_signal(server).await;
    account.shutdown().await;
    result
}
