//! The receiver's settings: the secrets deliveries are verified with.

use clap::Args;

use crate::secret::Secret;

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
