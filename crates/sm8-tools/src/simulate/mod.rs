//! `sm8-webhooks simulate`: sends webhooks in a real format to a receiver at a target rate, with duplicates,
//! reordering and deliberately bad signatures, and reports how the receiver answered.
//!
//! Authentic deliveries must be answered 2xx with a receipt (`{received, duplicates, ...}`) and mis-signed ones
//! 401; anything else is unexpected and makes the command fail.

mod plan;
mod summary;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Deserialize;

pub use plan::Credentials;
use plan::{Delivery, Signer};
use server::secret::Secret;
use summary::{Answer, Latencies};
pub use summary::{LatencySummary, SimulationSummary};

/// The format of the deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WebhookFormat {
    /// The seed's JSON `{object_type, object_uuid, event_type, timestamp, changes}`, signed with
    /// `x-servicem8-signature` (hex HMAC-SHA256 under WEBHOOK_SECRET).
    Seed,
    /// A ServiceM8 object callback `{object, entry, resource_url}`, unsigned (authenticated by `?token=`).
    Object,
    /// A ServiceM8 add-on callback: an HS256 JWT under the App Secret.
    Addon,
    /// An object callback signed with Standard Webhooks headers.
    Standard,
}

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Webhook URL of the receiver.
    #[arg(long, default_value = "http://127.0.0.1:3000/api/webhooks/sm8")]
    pub target: String,

    /// Send to this account's own receiver, `{target}/{account}`, instead of the default account's.
    #[arg(long)]
    pub account: Option<String>,

    /// Format of the deliveries.
    #[arg(long, value_enum, default_value_t = WebhookFormat::Seed)]
    pub format: WebhookFormat,

    /// Deliveries to send, duplicates and bad signatures included.
    #[arg(long, default_value_t = 100)]
    pub count: usize,

    /// Deliveries per second; 0 sends as fast as --concurrency allows.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,

    /// Deliveries in flight at once, at most.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,

    /// Fraction of deliveries that repeat an earlier one.
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,

    /// Shuffle the send order within small windows, so that some deliveries overtake others.
    #[arg(long)]
    pub reorder: bool,

    /// Fraction of deliveries deliberately mis-signed; the receiver must answer them 401.
    #[arg(long, default_value_t = 0.0)]
    pub bad_signatures: f64,

    /// Secret of the seed format's x-servicem8-signature.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: Option<Secret>,

    /// App Secret that signs add-on JWTs.
    #[arg(long, env = "SERVICEM8_APP_SECRET", hide_env_values = true)]
    pub app_secret: Option<Secret>,

    /// Standard Webhooks secret (`whsec_...`); of a comma-separated list, the first signs.
    #[arg(
        long,
        env = "STANDARD_WEBHOOK_SECRETS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub standard_secret: Vec<Secret>,

    /// Token sent as `?token=` on every delivery (the callback URL's secret).
    #[arg(long, env = "WEBHOOK_URL_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,

    /// Seed of the random choices, for a repeatable run.
    #[arg(long)]
    pub seed: Option<u64>,

    /// How long to wait for each answer, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

impl SimulateArgs {
    /// Where the deliveries go: `target`, or with `account` its own receiver beneath it (the query kept).
    pub fn receiver_url(&self) -> Result<String, SimulateError> {
        let Some(account) = self
            .account
            .as_deref()
            .map(str::trim)
            .filter(|account| !account.is_empty())
        else {
            return Ok(self.target.clone());
        };
        let mut url = reqwest::Url::parse(&self.target).map_err(|_| SimulateError::BadTarget(self.target.clone()))?;
        url.path_segments_mut()
            .map_err(|()| SimulateError::BadTarget(self.target.clone()))?
            .pop_if_empty()
            .push(account);
        Ok(url.to_string())
    }

    /// Defaults for sending `count` seed-format deliveries to `target`.
    pub fn new(target: impl Into<String>, count: usize) -> Self {
        SimulateArgs {
            target: target.into(),
            account: None,
            format: WebhookFormat::Seed,
            count,
            rate: 0.0,
            concurrency: 32,
            duplicates: 0.0,
            reorder: false,
            bad_signatures: 0.0,
            secret: None,
            app_secret: None,
            standard_secret: Vec::new(),
            token: None,
            seed: None,
            timeout_ms: 10_000,
        }
    }

    pub fn credentials(&self) -> Credentials {
        let expose = |secret: &Option<Secret>| secret.as_ref().map(|s| s.expose().to_owned()).filter(|s| !s.is_empty());
        Credentials {
            webhook_secret: expose(&self.secret),
            app_secret: expose(&self.app_secret),
            standard_secret: expose(&self.standard_secret.first().cloned()),
            url_token: expose(&self.token),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("{0}")]
    MissingSecret(&'static str),
    #[error("the Standard Webhooks secret is not valid base64: {0}")]
    BadSecret(String),
    #[error("{0}")]
    Plan(String),
    #[error("{0} must be a fraction between 0 and 1")]
    NotAFraction(&'static str),
    #[error("--target {0:?} is not an http(s) URL")]
    BadTarget(String),
    #[error("the HTTP client could not be built: {0}")]
    Client(#[from] reqwest::Error),
}

/// Whether to draw a progress bar while sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Bar,
    Hidden,
}

/// The receipt fields `simulate` reads.
#[derive(Deserialize)]
struct Receipt {
    duplicates: usize,
}

/// Sends the deliveries `args` describes and tallies the answers.
pub async fn run(args: &SimulateArgs, progress: Progress) -> Result<SimulationSummary, SimulateError> {
    for (name, fraction) in [
        ("--duplicates", args.duplicates),
        ("--bad-signatures", args.bad_signatures),
    ] {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(SimulateError::NotAFraction(name));
        }
    }
    let signer = Signer::new(args.format, args.credentials(), args.bad_signatures > 0.0)?;
    let mut rng = args.seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64);
    let share = |fraction: f64| (args.count as f64 * fraction).round() as usize;
    let deliveries = plan::plan(
        &signer,
        &mut rng,
        args.count,
        share(args.duplicates),
        share(args.bad_signatures),
        args.reorder,
    )?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()?;
    let bar = match progress {
        Progress::Bar => ProgressBar::new(deliveries.len() as u64),
        Progress::Hidden => ProgressBar::hidden(),
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} sent  {per_sec}  {msg}").expect("a valid template"),
    );

    let mut summary = SimulationSummary {
        duplicates_sent: deliveries.iter().filter(|d| d.duplicate).count(),
        bad_signatures_sent: deliveries.iter().filter(|d| !d.authentic).count(),
        ..SimulationSummary::default()
    };
    let mut latencies = Latencies::new();
    let started = Instant::now();
    let target = Arc::new(args.receiver_url()?);
    // Delivery i leaves at start + i / rate, so the rate holds on average whatever the answer times.
    let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let start = tokio::time::Instant::now();
    let paced = futures_util::stream::iter(deliveries.into_iter().enumerate()).then(|(index, delivery)| async move {
        if let Some(interval) = interval {
            tokio::time::sleep_until(start + interval.mul_f64(index as f64)).await;
        }
        delivery
    });
    let mut answers = std::pin::pin!(paced
        .map(|delivery| {
            let (client, target) = (client.clone(), target.clone());
            async move { send(&client, &target, delivery).await }
        })
        .buffer_unordered(args.concurrency.max(1)));
    while let Some((answer, latency)) = answers.next().await {
        latencies.record(latency);
        summary.count(answer);
        bar.inc(1);
        if summary.unexpected > 0 {
            bar.set_message(format!("{} unexpected", summary.unexpected));
        }
    }
    bar.finish_and_clear();
    summary.elapsed = started.elapsed();
    summary.latency = latencies.summary();
    Ok(summary)
}

async fn send(client: &reqwest::Client, target: &str, delivery: Delivery) -> (Answer, Duration) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut request = client
        .post(target)
        .header(reqwest::header::CONTENT_TYPE, delivery.content_type);
    for (name, value) in delivery.headers(now) {
        request = request.header(name, value);
    }
    request = request.body(delivery.body);
    if let Some(token) = &delivery.token {
        request = request.query(&[("token", token)]);
    }
    let started = Instant::now();
    let response = request.send().await;
    let latency = started.elapsed();
    let answer = match response {
        Err(error) => Answer::Unexpected(format!("no answer: {error}")),
        Ok(response) => {
            let status = response.status();
            match (delivery.authentic, status.as_u16()) {
                (true, 200..=299) => match response.json::<Receipt>().await {
                    Ok(receipt) => Answer::Accepted {
                        duplicates: receipt.duplicates,
                    },
                    Err(error) => Answer::Unexpected(format!("{status} with an unreadable receipt: {error}")),
                },
                (false, 401) => Answer::RejectedAsExpected,
                (authentic, _) => {
                    let body = response.text().await.unwrap_or_default();
                    let expected = if authentic { "2xx" } else { "401" };
                    Answer::Unexpected(format!(
                        "{status} (expected {expected}): {}",
                        body.chars().take(200).collect::<String>()
                    ))
                }
            }
        }
    };
    (answer, latency)
}

/// The `simulate` command: runs with a progress bar, prints the summary, and fails on any unexpected answer.
pub async fn run_cli(args: SimulateArgs) -> anyhow::Result<()> {
    let summary = run(&args, Progress::Bar).await?;
    println!("{summary}");
    anyhow::ensure!(
        summary.is_clean(),
        "{} answers were not the expected ones",
        summary.unexpected
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_sends_to_its_own_receiver_beneath_the_target_with_the_query_kept() {
        let args = SimulateArgs {
            account: Some("acme".into()),
            ..SimulateArgs::new("http://127.0.0.1:3000/api/webhooks/sm8?token=t", 1)
        };
        assert_eq!(
            args.receiver_url().unwrap(),
            "http://127.0.0.1:3000/api/webhooks/sm8/acme?token=t"
        );
        let default = SimulateArgs::new("http://127.0.0.1:3000/api/webhooks/sm8", 1);
        assert_eq!(
            default.receiver_url().unwrap(),
            "http://127.0.0.1:3000/api/webhooks/sm8"
        );
    }

    #[tokio::test]
    async fn fractions_outside_zero_to_one_are_refused() {
        let args = SimulateArgs {
            duplicates: 1.5,
            ..SimulateArgs::new("http://127.0.0.1:1/", 1)
        };
        assert!(matches!(
            run(&args, Progress::Hidden).await,
            Err(SimulateError::NotAFraction("--duplicates"))
        ));
    }

    #[tokio::test]
    async fn a_receiver_that_cannot_be_reached_makes_every_answer_unexpected() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}/api/webhooks/sm8", listener.local_addr().unwrap());
        drop(listener);
        let summary = run(&SimulateArgs::new(closed, 3), Progress::Hidden).await.unwrap();
        assert_eq!((summary.sent, summary.unexpected, summary.accepted), (3, 3, 0));
        assert!(!summary.is_clean());
    }
}
