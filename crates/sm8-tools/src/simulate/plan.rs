//! What `simulate` sends: the deliveries in order, each built in one of the real formats and signed (or
//! deliberately mis-signed) the way that format is authenticated.

use app::objects::{self, ObjectSpec};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use serde_json::{json, Value};
use server::ingest::signature;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

use super::{SimulateError, WebhookFormat};

/// Deliveries are shuffled within windows of this many when reordering.
pub const REORDER_WINDOW: usize = 8;
/// What a mis-signed delivery is signed with instead of the real secret.
const WRONG_SECRET: &[u8] = b"not-the-secret";
const STATUSES: [&str; 4] = ["Quote", "Work Order", "Unsuccessful", "Completed"];
/// What the deliveries are about, jobs twice as often as the rest.
const SENT: [&ObjectSpec; 4] = [&objects::JOB, &objects::JOB, &objects::COMPANY, &objects::JOB_ACTIVITY];

/// The secrets the deliveries are signed with; only those the format needs must be present.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// `WEBHOOK_SECRET`: the seed format's HMAC key.
    pub webhook_secret: Option<String>,
    /// `SERVICEM8_APP_SECRET`: the add-on JWT key.
    pub app_secret: Option<String>,
    /// One Standard Webhooks secret, `whsec_<base64>` (or raw bytes without the prefix).
    pub standard_secret: Option<String>,
    /// The `?token=` of the callback URL.
    pub url_token: Option<String>,
}

/// One request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub body: Vec<u8>,
    pub content_type: &'static str,
    /// Headers that do not depend on the time of sending.
    pub fixed_headers: Vec<(&'static str, String)>,
    /// Standard Webhooks signs the time of sending too, so its headers are made then.
    pub standard: Option<StandardSigning>,
    pub token: Option<String>,
    /// Whether it carries a valid signature (else the receiver must answer 401).
    pub authentic: bool,
    /// Whether it repeats an earlier delivery.
    pub duplicate: bool,
}

/// The message id and key of a Standard Webhooks delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardSigning {
    pub message_id: String,
    pub key: Vec<u8>,
}

impl Delivery {
    /// The headers to send at `now` (unix seconds).
    pub fn headers(&self, now: i64) -> Vec<(&'static str, String)> {
        let mut headers = self.fixed_headers.clone();
        if let Some(StandardSigning { message_id, key }) = &self.standard {
            headers.push(("webhook-id", message_id.clone()));
            headers.push(("webhook-timestamp", now.to_string()));
            headers.push((
                "webhook-signature",
                standard_signature(key, message_id, now, &self.body),
            ));
        }
        headers
    }
}

/// Builds deliveries of one format.
pub struct Signer {
    format: WebhookFormat,
    credentials: Credentials,
    standard_key: Option<Vec<u8>>,
}

impl Signer {
    /// Checks that `credentials` hold what `format` needs, for authentic deliveries and, when `mis_sign`, for
    /// deliberately bad ones.
    pub fn new(format: WebhookFormat, credentials: Credentials, mis_sign: bool) -> Result<Signer, SimulateError> {
        let standard_key = credentials.standard_secret.as_deref().map(standard_key).transpose()?;
        match format {
            WebhookFormat::Seed if mis_sign && credentials.webhook_secret.is_none() => Err(
                SimulateError::MissingSecret("--bad-signatures with the seed format needs --secret"),
            ),
            WebhookFormat::Object if mis_sign && credentials.url_token.is_none() => Err(SimulateError::MissingSecret(
                "--bad-signatures with the object format needs --token",
            )),
            WebhookFormat::Addon if credentials.app_secret.is_none() => {
                Err(SimulateError::MissingSecret("the addon format needs --app-secret"))
            }
            WebhookFormat::Standard if standard_key.is_none() => Err(SimulateError::MissingSecret(
                "the standard format needs --standard-secret",
            )),
            _ => Ok(Signer {
                format,
                credentials,
                standard_key,
            }),
        }
    }

    /// A new event, `authentic` or not.
    pub fn delivery(&self, rng: &mut StdRng, authentic: bool) -> Delivery {
        let spec = *SENT.choose(rng).expect("objects");
        let (object_type, object) = (spec.api_name, spec.object_type);
        let uuid = uuid::Builder::from_random_bytes(rng.random()).into_uuid().to_string();
        let status = *STATUSES.choose(rng).expect("statuses");
        let now = OffsetDateTime::now_utc();
        let time = now
            .format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"))
            .expect("now formats");
        let callback = object_callback(object, &uuid, &time);
        let (body, content_type) = match self.format {
            WebhookFormat::Seed => {
                let event = json!({
                    "object_type": object_type,
                    "object_uuid": uuid,
                    "event_type": "updated",
                    "timestamp": now.format(&Rfc3339).expect("now formats"),
                    "changes": {"status": status},
                });
                (event.to_string().into_bytes(), "application/json")
            }
            WebhookFormat::Object | WebhookFormat::Standard => (callback.to_string().into_bytes(), "application/json"),
            WebhookFormat::Addon => {
                let secret = self
                    .credentials
                    .app_secret
                    .as_deref()
                    .map(str::as_bytes)
                    .expect("checked in new");
                let key = if authentic { secret } else { WRONG_SECRET };
                (
                    addon_jwt(key, &callback, now.unix_timestamp()).into_bytes(),
                    "text/plain",
                )
            }
        };
        let standard = self
            .standard_key
            .as_ref()
            .filter(|_| self.format == WebhookFormat::Standard)
            .map(|key| StandardSigning {
                message_id: format!(
                    "msg_{}",
                    uuid::Builder::from_random_bytes(rng.random()).into_uuid().simple()
                ),
                key: if authentic { key.clone() } else { WRONG_SECRET.to_vec() },
            });
        let fixed_headers = match (&self.format, &self.credentials.webhook_secret) {
            (WebhookFormat::Seed, Some(secret)) => {
                let key = if authentic { secret.as_bytes() } else { WRONG_SECRET };
                vec![("x-servicem8-signature", signature::sign(key, &body))]
            }
            _ => Vec::new(),
        };
        Delivery {
            fixed_headers,
            standard,
            token: self
                .credentials
                .url_token
                .clone()
                .map(|token| if authentic { token } else { format!("{token}-x") }),
            body,
            content_type,
            authentic,
            duplicate: false,
        }
    }
}

/// The key of a Standard Webhooks secret: the base64 after `whsec_`, or the bytes of a secret without the prefix.
pub fn standard_key(secret: &str) -> Result<Vec<u8>, SimulateError> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => BASE64
            .decode(encoded)
            .map_err(|error| SimulateError::BadSecret(error.to_string())),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, as the Standard Webhooks specification signs.
pub fn standard_signature(key: &[u8], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(format!("{message_id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// A ServiceM8 object callback for one changed record.
fn object_callback(object: &str, uuid: &str, time: &str) -> Value {
    json!({
        "object": object,
        "entry": [{"uuid": uuid, "changed_fields": ["status"], "time": time}],
        "resource_url": format!("https://api.servicem8.com/api_1.0/{object}/{uuid}.json"),
    })
}

/// An add-on callback: an HS256 JWT whose `eventArgs` is the object callback.
fn addon_jwt(key: &[u8], callback: &Value, now: i64) -> String {
    let claims = json!({
        "eventVersion": "1.0",
        "eventName": "webhook_subscription",
        "auth": {
            "accountUUID": "00000000-0000-4000-8000-000000000001",
            "staffUUID": "00000000-0000-4000-8000-000000000002",
            "accessToken": "simulated-access-token",
            "accessTokenExpiry": now + 3600,
        },
        "eventArgs": callback,
        "iat": now,
        // Long enough for the longest run: a duplicate re-sends the same token much later.
        "exp": now + 24 * 3600,
    });
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(key))
        .expect("HS256 encodes any claims")
}

/// `count` deliveries: `duplicates` re-sends of earlier authentic ones, `bad` mis-signed ones, the rest new,
/// spread at random; with `reorder`, shuffled within windows so that some arrive before what they follow.
pub fn plan(
    signer: &Signer,
    rng: &mut StdRng,
    count: usize,
    duplicates: usize,
    bad: usize,
    reorder: bool,
) -> Result<Vec<Delivery>, SimulateError> {
    let fresh = count.saturating_sub(duplicates + bad);
    if duplicates + bad > count {
        return Err(SimulateError::Plan(
            "--duplicates and --bad-signatures add up to more than --count".into(),
        ));
    }
    if duplicates > 0 && fresh == 0 {
        return Err(SimulateError::Plan(
            "duplicates need at least one new event to repeat".into(),
        ));
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Fresh,
        Duplicate,
        Bad,
    }
    let mut kinds: Vec<Kind> = [(Kind::Fresh, fresh), (Kind::Duplicate, duplicates), (Kind::Bad, bad)]
        .iter()
        .flat_map(|&(k, n)| vec![k; n])
        .collect();
    kinds.shuffle(rng);
    // A duplicate needs something before it to repeat.
    if let (Some(first_duplicate), Some(first_fresh)) = (
        kinds.iter().position(|k| *k == Kind::Duplicate),
        kinds.iter().position(|k| *k == Kind::Fresh),
    ) {
        if first_duplicate < first_fresh {
            kinds.swap(first_duplicate, first_fresh);
        }
    }
    let mut deliveries: Vec<Delivery> = Vec::with_capacity(count);
    let mut originals: Vec<usize> = Vec::new();
    for kind in kinds {
        let delivery = match kind {
            Kind::Fresh => {
                originals.push(deliveries.len());
                signer.delivery(rng, true)
            }
            Kind::Bad => signer.delivery(rng, false),
            Kind::Duplicate => {
                let original = *originals.choose(rng).expect("a duplicate follows a new event");
                Delivery {
                    duplicate: true,
                    ..deliveries[original].clone()
                }
            }
        };
        deliveries.push(delivery);
    }
    if reorder {
        for window in deliveries.chunks_mut(REORDER_WINDOW) {
            window.shuffle(rng);
        }
    }
    Ok(deliveries)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};
    use rand::SeedableRng;

    use super::*;

    fn credentials() -> Credentials {
        Credentials {
            webhook_secret: Some("seed-secret".into()),
            app_secret: Some("app-secret".into()),
            standard_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            url_token: Some("url-token".into()),
        }
    }

    fn one(format: WebhookFormat, authentic: bool) -> Delivery {
        Signer::new(format, credentials(), true)
            .unwrap()
            .delivery(&mut StdRng::seed_from_u64(1), authentic)
    }

    const NOW: i64 = 1_750_000_000;

    fn header(delivery: &Delivery, name: &str) -> String {
        delivery.headers(NOW).into_iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn seed_deliveries_carry_the_hmac_of_their_body_and_bad_ones_do_not() {
        let good = one(WebhookFormat::Seed, true);
        assert_eq!(
            header(&good, "x-servicem8-signature"),
            signature::sign(b"seed-secret", &good.body)
        );
        let bad = one(WebhookFormat::Seed, false);
        assert_ne!(
            header(&bad, "x-servicem8-signature"),
            signature::sign(b"seed-secret", &bad.body)
        );
        assert!(server::ingest::payload::parse_seed(&good.body).is_ok());
    }

    #[test]
    fn addon_deliveries_are_jwts_that_verify_with_the_app_secret() {
        let good = one(WebhookFormat::Addon, true);
        let token = String::from_utf8(good.body).unwrap();
        let claims = jsonwebtoken::decode::<Value>(
            &token,
            &DecodingKey::from_secret(b"app-secret"),
            &Validation::new(Algorithm::HS256),
        )
        .unwrap()
        .claims;
        assert_eq!(claims["eventName"], "webhook_subscription");
        assert!(claims["auth"]["accountUUID"].is_string());
        assert_eq!(claims["eventArgs"]["entry"][0]["changed_fields"], json!(["status"]));
        let bad = String::from_utf8(one(WebhookFormat::Addon, false).body).unwrap();
        let refused = jsonwebtoken::decode::<Value>(
            &bad,
            &DecodingKey::from_secret(b"app-secret"),
            &Validation::new(Algorithm::HS256),
        );
        assert!(refused.is_err());
    }

    #[test]
    fn standard_deliveries_sign_id_timestamp_and_body_with_the_decoded_key() {
        let good = one(WebhookFormat::Standard, true);
        assert_eq!(header(&good, "webhook-timestamp"), NOW.to_string());
        let key = BASE64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let expected = standard_signature(&key, &header(&good, "webhook-id"), NOW, &good.body);
        assert_eq!(header(&good, "webhook-signature"), expected);
        let bad = one(WebhookFormat::Standard, false);
        let expected = standard_signature(&key, &header(&bad, "webhook-id"), NOW, &bad.body);
        assert_ne!(header(&bad, "webhook-signature"), expected);
    }

    #[test]
    fn the_standard_signature_matches_the_specification_example() {
        // The example of the Standard Webhooks specification and its reference libraries.
        let key = standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            standard_signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn object_deliveries_are_callbacks_whose_bad_copies_carry_a_wrong_token() {
        let good = one(WebhookFormat::Object, true);
        let callback: Value = serde_json::from_slice(&good.body).unwrap();
        assert!(callback["entry"][0]["uuid"].is_string());
        assert_eq!(good.token.as_deref(), Some("url-token"));
        assert_ne!(one(WebhookFormat::Object, false).token.as_deref(), Some("url-token"));
    }

    #[test]
    fn a_format_without_its_secret_is_refused() {
        let none = Credentials::default();
        assert!(Signer::new(WebhookFormat::Seed, none.clone(), false).is_ok());
        assert!(Signer::new(WebhookFormat::Seed, none.clone(), true).is_err());
        assert!(Signer::new(WebhookFormat::Addon, none.clone(), false).is_err());
        assert!(Signer::new(WebhookFormat::Standard, none, false).is_err());
    }

    #[test]
    fn the_plan_has_the_requested_mix_and_duplicates_repeat_earlier_authentic_deliveries() {
        let signer = Signer::new(WebhookFormat::Seed, credentials(), true).unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        let deliveries = plan(&signer, &mut rng, 50, 10, 5, false).unwrap();
        assert_eq!(deliveries.len(), 50);
        assert_eq!(deliveries.iter().filter(|d| d.duplicate).count(), 10);
        assert_eq!(deliveries.iter().filter(|d| !d.authentic).count(), 5);
        for (index, delivery) in deliveries.iter().enumerate().filter(|(_, d)| d.duplicate) {
            assert!(delivery.authentic);
            assert!(deliveries[..index]
                .iter()
                .any(|earlier| !earlier.duplicate && earlier.body == delivery.body));
        }
        let unique: std::collections::HashSet<&Vec<u8>> = deliveries.iter().map(|d| &d.body).collect();
        assert_eq!(unique.len(), 40);
    }

    #[test]
    fn an_impossible_mix_is_refused() {
        let signer = Signer::new(WebhookFormat::Seed, credentials(), true).unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        assert!(plan(&signer, &mut rng, 5, 4, 2, false).is_err());
        assert!(plan(&signer, &mut rng, 5, 3, 2, false).is_err());
    }
}
