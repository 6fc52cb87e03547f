//! Settings of the simulated account: flags of `sm8-webhooks mock-servicem8`, and `MockConfig::default()` for tests.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};

use server::secret::Secret;

/// How the simulated account encodes the callbacks it posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackFormat {
    /// `{"object":..,"entry":[..],"resource_url":..}` as `application/json`.
    #[default]
    Json,
    /// `object=..&entry=<json>&resource_url=..` as `application/x-www-form-urlencoded`.
    Form,
}

/// Everything the simulated account can be told at start; faults can also change at run time.
#[derive(Debug, Clone, Args)]
pub struct MockConfig {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value_t = MockConfig::DEFAULT_BIND)]
    pub bind: SocketAddr,

    /// API key clients must send as X-API-Key (or as an OAuth bearer token). It is a test double's key, printed at
    /// start so clients can be pointed at the account.
    #[arg(long, env = "SERVICEM8_API_KEY", default_value = MockConfig::DEFAULT_API_KEY, hide_env_values = true)]
    pub api_key: Secret,

    /// Seed of the generated records and of the changes made to them: the same seed gives the same account.
    #[arg(long, default_value_t = 8)]
    pub seed: u64,

    /// Client companies to generate.
    #[arg(long, default_value_t = 20)]
    pub companies: usize,

    /// Jobs generated for each company.
    #[arg(long, default_value_t = 5)]
    pub jobs_per_company: usize,

    /// Job activities (scheduled visits) generated for each job.
    #[arg(long, default_value_t = 2)]
    pub activities_per_job: usize,

    /// Attachments generated for each job.
    #[arg(long, default_value_t = 1)]
    pub attachments_per_job: usize,

    /// Staff members to generate.
    #[arg(long, default_value_t = 6)]
    pub staff: usize,

    /// Records per page when a client pages with `?cursor=` (ServiceM8 serves up to 5,000).
    #[arg(long, default_value_t = 5_000)]
    pub page_size: usize,

    /// Requests each API key may make per minute before getting 429.
    #[arg(long, default_value_t = 180)]
    pub per_minute: u32,

    /// Requests each API key may make per day before getting 429.
    #[arg(long, default_value_t = 20_000)]
    pub per_day: u32,

    /// Fraction of requests answered 500 or 503.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,

    /// Fraction of requests answered 429 whatever the counters say.
    #[arg(long, default_value_t = 0.0)]
    pub rate_limit_rate: f64,

    /// Delay added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,

    /// Fraction of requests that hang (see --hang-ms) so that clients time out.
    #[arg(long, default_value_t = 0.0)]
    pub timeout_rate: f64,

    /// How long a hanging request hangs before it is answered 504, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub hang_ms: u64,

    /// Interval at which the account changes one of its records and posts a callback, in milliseconds; 0 = never.
    #[arg(long, default_value_t = 0)]
    pub change_interval_ms: u64,

    /// URL that receives a callback for every change (besides the URLs of webhook subscriptions); repeatable.
    #[arg(long = "target")]
    pub targets: Vec<String>,

    /// Encoding of the callbacks.
    #[arg(long, value_enum, default_value_t = CallbackFormat::Json)]
    pub callback_format: CallbackFormat,

    /// Client id of the one OAuth application the account knows (`/oauth/authorize`, `/oauth/access_token`).
    #[arg(long, default_value = MockConfig::DEFAULT_OAUTH_CLIENT_ID)]
    pub oauth_client_id: String,

    /// Client secret of that application.
    #[arg(long, default_value = MockConfig::DEFAULT_OAUTH_CLIENT_SECRET)]
    pub oauth_client_secret: Secret,

    /// Lifetime of the OAuth access tokens it issues, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub oauth_token_ttl_seconds: u64,
}

impl MockConfig {
    pub const DEFAULT_BIND: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 3900);
    pub const DEFAULT_API_KEY: &'static str = "mock-api-key";
    pub const DEFAULT_OAUTH_CLIENT_ID: &'static str = "mock-client-id";
    pub const DEFAULT_OAUTH_CLIENT_SECRET: &'static str = "mock-client-secret";

    /// Defaults on a free port of 127.0.0.1, as tests want them.
    pub fn on_free_port() -> Self {
        MockConfig {
            bind: SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), 0),
            ..MockConfig::default()
        }
    }

    pub(crate) fn change_interval(&self) -> Option<Duration> {
        (self.change_interval_ms > 0).then(|| Duration::from_millis(self.change_interval_ms))
    }
}

impl Default for MockConfig {
    /// The command-line defaults.
    fn default() -> Self {
        server::flags::defaults()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: MockConfig,
    }

    #[test]
    fn the_default_config_equals_the_command_line_defaults() {
        let parsed = Cli::try_parse_from(["mock"]).unwrap().config;
        // `Debug` shows every field but the key, which the environment may set.
        assert_eq!(format!("{parsed:?}"), format!("{:?}", MockConfig::default()));
        assert_eq!(MockConfig::default().api_key.expose(), "mock-api-key");
    }

    #[test]
    fn targets_repeat_and_the_callback_format_is_chosen_by_name() {
        let parsed = Cli::try_parse_from([
            "mock",
            "--target",
            "http://a/hook",
            "--target",
            "http://b/hook",
            "--callback-format",
            "form",
            "--change-interval-ms",
            "250",
        ])
        .unwrap()
        .config;
        assert_eq!(parsed.targets, ["http://a/hook", "http://b/hook"]);
        assert_eq!(parsed.callback_format, CallbackFormat::Form);
        assert_eq!(parsed.change_interval(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn the_oauth_application_and_token_lifetime_are_flags() {
        let parsed = Cli::try_parse_from([
            "mock",
            "--oauth-client-id",
            "app-1",
            "--oauth-client-secret",
            "s3cret",
            "--oauth-token-ttl-seconds",
            "30",
        ])
        .unwrap()
        .config;
        assert_eq!(parsed.oauth_client_id, "app-1");
        assert_eq!(parsed.oauth_client_secret.expose(), "s3cret");
        assert_eq!(parsed.oauth_token_ttl_seconds, 30);
        let defaults = MockConfig::default();
        assert_eq!(defaults.oauth_client_secret.expose(), "mock-client-secret");
        assert_eq!(defaults.oauth_token_ttl_seconds, 3600);
    }
}
