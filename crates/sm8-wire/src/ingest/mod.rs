//! Ingest: what a delivery from ServiceM8 means. Each delivery format is detected and decoded (`decode`,
//! `formats`) and verified (`signature`, `standard`); the server turns the result into the events it stores.

pub mod decode;
pub(crate) mod form;
pub mod formats;
mod json;
pub mod payload;
pub mod signature;
pub mod standard;

use crate::secret::Secret;

/// Header carrying the seed format's HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-servicem8-signature";

/// The secrets one account's deliveries are verified with (each account has its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliverySecrets {
    /// The seed format's `x-servicem8-signature` HMAC secret.
    pub webhook_secret: Option<Secret>,
    /// The `?token=` unsigned ServiceM8 callbacks must carry.
    pub webhook_url_token: Option<Secret>,
    /// The add-on App Secret its JWT callbacks are signed with.
    pub servicem8_app_secret: Option<Secret>,
    /// Standard Webhooks secrets (`whsec_…`), several during a rotation.
    pub standard_webhook_secrets: Vec<Secret>,
}
