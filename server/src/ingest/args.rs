//! The receiver's settings: the secrets the default account's deliveries are verified with, and how much one
//! delivery may hold.

use clap::Args;

use super::DeliverySecrets;
use crate::secret::Secret;

/// Secrets the receiver checks deliveries against, and its limits.
#[derive(Debug, Clone, Args)]
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

    /// Most events one delivery may hold (an object callback's entries): a larger one is refused with 413, so
    /// that one request cannot turn into thousands of stored events.
    #[arg(long, env = "MAX_EVENTS_PER_DELIVERY", default_value_t = 100)]
    pub max_events_per_delivery: usize,

    /// Most bytes one event's changes may take (as JSON): a delivery with a larger event is refused with 413.
    /// The body itself is stored once per delivery whatever it holds.
    #[arg(long, env = "MAX_EVENT_BYTES", default_value_t = 64 * 1024)]
    pub max_event_bytes: usize,
}

impl IngestArgs {
    /// The secrets configured here: the default account's.
    pub fn delivery_secrets(&self) -> DeliverySecrets {
        DeliverySecrets {
            webhook_secret: self.webhook_secret.clone(),
            webhook_url_token: self.webhook_url_token.clone(),
            servicem8_app_secret: self.servicem8_app_secret.clone(),
            standard_webhook_secrets: self.standard_webhook_secrets.clone(),
        }
    }
}

impl Default for IngestArgs {
    fn default() -> Self {
        crate::flags::defaults()
    }
}
