//! The relay's settings (flattened into `serve`) and the `token` command that mints access tokens.

use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::auth::{now_seconds, Role, TokenKeys};
use crate::secret::Secret;
use crate::store::DatabaseArgs;
use crate::store::{self, Store};

/// Settings key under which a generated JWT secret is kept, so every node signs and verifies alike.
pub const JWT_SECRET_SETTING: &str = "jwt_secret";
/// Settings key under which a generated anon key is kept.
pub const ANON_KEY_SETTING: &str = "realtime_anon_key";

#[derive(Debug, Clone, Args)]
pub struct RealtimeArgs {
    /// Public key browsers pass as `apikey` to open the realtime socket (like Supabase's anon key); generated
    /// once and kept in the database when unset.
    #[arg(long, env = "REALTIME_ANON_KEY", hide_env_values = true)]
    pub realtime_anon_key: Option<Secret>,

    /// HS256 secret of realtime access tokens; generated once and kept in the database when unset.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// The `aud` realtime access tokens must name (and minted ones carry); not checked when unset.
    #[arg(long, env = "REALTIME_JWT_AUDIENCE")]
    pub realtime_jwt_audience: Option<String>,

    /// Realtime topics anyone may join without a token, comma-separated (e.g. `lobby`); none by default.
    #[arg(long, env = "REALTIME_PUBLIC_TOPICS", value_delimiter = ',')]
    pub realtime_public_topics: Vec<String>,

    /// How long updates are kept for clients that reconnect and resume.
    #[arg(long, env = "REALTIME_RETENTION_SECONDS", default_value_t = 3600)]
    pub realtime_retention_seconds: u64,

    /// How many updates per topic are kept for clients that reconnect and resume.
    #[arg(long, env = "REALTIME_RETENTION_MESSAGES", default_value_t = 1000)]
    pub realtime_retention_messages: usize,

    /// At most this many MiB of updates (their JSON) are kept for resuming, over all topics together; the oldest go
    /// first. SQLite only: on PostgreSQL they are kept in the database.
    #[arg(long, env = "REALTIME_RETENTION_MIB", default_value_t = DEFAULT_RETENTION_MIB)]
    pub realtime_retention_mib: usize,

    /// The largest websocket message (and frame) a client may send, in KiB; a larger one closes its connection.
    #[arg(long, env = "REALTIME_MAX_MESSAGE_KIB", default_value_t = DEFAULT_MAX_MESSAGE_KIB)]
    pub realtime_max_message_kib: usize,

    /// Messages a websocket client may send per second (twice as many in a burst); past it its connection is
    /// closed (the client reconnects with backoff).
    #[arg(long, env = "REALTIME_MAX_MESSAGES_PER_SECOND", default_value_t = 100)]
    pub realtime_max_messages_per_second: u32,

    /// Most websockets this node holds; past it an upgrade is refused with 503 (another node, or later).
    #[arg(long, env = "REALTIME_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub realtime_max_connections: usize,

    /// Most websockets from one client address; past it an upgrade is refused with 429.
    #[arg(long, env = "REALTIME_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 1_000)]
    pub realtime_max_connections_per_address: usize,
}

pub const DEFAULT_MAX_MESSAGE_KIB: usize = 1024;

pub const DEFAULT_RETENTION_MIB: usize = 16;

impl Default for RealtimeArgs {
    fn default() -> Self {
        crate::flags::defaults()
    }
}

/// `sm8-webhooks token`: prints an access token for the realtime relay.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// What the token grants: admin (every topic of the account), viewer (every topic, no broadcasting) or
    /// portal (one company's topics, no broadcasting).
    #[arg(long, value_enum)]
    pub role: Role,

    /// The account whose topics the token opens.
    #[arg(long, default_value = crate::store::DEFAULT_ACCOUNT)]
    pub account: String,

    /// The company a portal token is for.
    #[arg(long, required_if_eq("role", "portal"))]
    pub company: Option<String>,

    /// How long the token is valid: seconds, or a number with s, m, h or d (e.g. 30m, 12h).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,

    /// Signing secret; read from the database (where `serve` keeps a generated one) when unset.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// The `aud` the token carries, as `serve` requires it when `REALTIME_JWT_AUDIENCE` is set.
    #[arg(long, env = "REALTIME_JWT_AUDIENCE")]
    pub realtime_jwt_audience: Option<String>,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Parses `90`, `90s`, `30m`, `12h` or `7d`.
pub fn parse_ttl(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let (number, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(index) => value.split_at(index),
        None => (value, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a duration like 90, 30m or 12h"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?}: use s, m, h or d")),
    };
    if number == 0 {
        return Err("the ttl must be positive".into());
    }
    Ok(Duration::from_secs(number * seconds))
}

/// The configured secret, else the one kept in the database (stored now if there is none yet).
pub async fn resolve_secret(configured: &Option<Secret>, store: &dyn Store, setting: &str) -> anyhow::Result<Secret> {
    match configured {
        Some(secret) if !secret.expose().trim().is_empty() => Ok(secret.clone()),
        _ => {
            let value = store
                .setting_or_insert(setting, &crate::auth::random_token())
                .await
                .with_context(|| format!("reading the {setting} setting"))?;
            Ok(Secret::new(value))
        }
    }
}

/// Mints the token `args` describe.
pub async fn mint_token(args: &TokenArgs) -> anyhow::Result<String> {
    let secret = match &args.jwt_secret {
        Some(secret) if !secret.expose().trim().is_empty() => secret.clone(),
        _ => {
            let store = store::connect(&args.database.database_url)
                .await
                .context("opening the database")?;
            resolve_secret(&None, store.as_ref(), JWT_SECRET_SETTING).await?
        }
    };
    let ttl = i64::try_from(args.ttl.as_secs()).context("the ttl is too long")?;
    let keys = TokenKeys::new(&secret).with_audience(args.realtime_jwt_audience.clone());
    Ok(keys.mint(args.role, &args.account, args.company.as_deref(), ttl, now_seconds())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_take_seconds_or_a_unit() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("0").is_err());
    }

    #[tokio::test]
    async fn a_minted_portal_token_verifies_with_the_configured_secret() {
        let args = TokenArgs {
            role: Role::Portal,
            account: "acme".into(),
            company: Some("co-1".into()),
            ttl: Duration::from_secs(60),
            jwt_secret: Some(Secret::new("s3cret")),
            realtime_jwt_audience: None,
            database: DatabaseArgs {
                database_url: "sqlite::memory:".into(),
            },
        };
        let token = mint_token(&args).await.unwrap();
        let credentials = TokenKeys::new(&Secret::new("s3cret")).verify(&token).unwrap();
        assert_eq!(
            credentials.identity,
            crate::realtime::auth::Identity::Portal {
                account: "acme".into(),
                company_uuid: "co-1".into()
            }
        );
    }
}
