//! Who may join and broadcast on which topic.
//!
//! The `apikey` on the socket URL is public (like Supabase's anon key): it only opens the socket. It is the anon
//! key, or itself a JWT under `JWT_SECRET` (as Supabase's anon key is), whose claims then authorise the joins that
//! carry no token of their own. Channel access comes from an `access_token`, an HS256 JWT under `JWT_SECRET`,
//! ours or minted by another service (only `exp`, `nbf` and, when `REALTIME_JWT_AUDIENCE` is set, `aud` are
//! checked, with `CLOCK_SKEW_SECONDS` of allowance): `role: "admin"` joins every
//! topic of its account and broadcasts; `role: "viewer"` joins every topic of its account and never broadcasts;
//! `role: "portal"` with a `company_uuid` joins only `company:{its company}` and `job:{uuid}` of that company's
//! jobs, and cannot broadcast; `role: "anon"` (Supabase's anon key) and no token join only the topics configured
//! as public. supabase-js sends the apikey itself as the token when nobody is signed in, so the anon key counts as
//! no token.
//!
//! Every token is for one account (its `account` claim; `default` without one), and every topic it names is that
//! account's: clients of two accounts both join `jobs` and never see each other's (see `scope`).

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use jsonwebtoken::{decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::auth::secrets_match;
use crate::secret::Secret;
use crate::store::{Store, DEFAULT_ACCOUNT};

/// Every channel topic upstream routes starts with this.
pub use app::realtime::wire::topic::PREFIX as TOPIC_PREFIX;

/// Answers which company a job of an account belongs to (`None` when unknown): `(account, job_uuid)`. Portal
/// users join a job's topic only when it is their company's. Start-up passes the store's lookup in.
pub type JobOwnership = Arc<dyn Fn(String, String) -> BoxFuture<'static, Option<String>> + Send + Sync>;

/// Job ownership as the store's mirror of jobs knows it; a job not (yet) mirrored belongs to nobody.
pub fn store_job_ownership(store: Arc<dyn Store>) -> JobOwnership {
    Arc::new(move |account: String, job_uuid: String| {
        let store = store.clone();
        Box::pin(async move {
            store.job_company(&account, &job_uuid).await.unwrap_or_else(|error| {
                tracing::error!(%error, "looking up the company of a job failed");
                None
            })
        })
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Joins and broadcasts on every topic of its account.
    Admin,
    /// Joins every topic of its account; never broadcasts.
    Viewer,
    /// Sees one company's topics; never broadcasts.
    Portal,
}

/// How far a token's `exp` and `nbf` may be off: clocks of the services minting tokens disagree a little.
pub const CLOCK_SKEW_SECONDS: i64 = 2;

/// The claims of an access token this server mints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub role: Role,
    /// The account whose topics the token opens; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_uuid: Option<String>,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Issued at, unix seconds: optional (RFC 7519), as tokens minted elsewhere often leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The audience, when `REALTIME_JWT_AUDIENCE` names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// The claims read from any token: every one optional, as RFC 7519 has them.
#[derive(Deserialize)]
struct ReadClaims {
    role: Option<String>,
    account: Option<String>,
    company_uuid: Option<String>,
    exp: Option<i64>,
}

/// Who is behind a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    Admin { account: String },
    Viewer { account: String },
    Portal { account: String, company_uuid: String },
}

impl Identity {
    /// The account whose topics this identity names; anonymous clients use the default account's public topics.
    pub fn account(&self) -> &str {
        match self {
            Identity::Anonymous => DEFAULT_ACCOUNT,
            Identity::Admin { account } | Identity::Viewer { account } | Identity::Portal { account, .. } => account,
        }
    }
}

/// A verified identity and when it stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub identity: Identity,
    /// Unix seconds; `None` for anonymous access, which does not expire.
    pub expires_at: Option<i64>,
}

impl Credentials {
    pub fn anonymous() -> Credentials {
        Credentials {
            identity: Identity::Anonymous,
            expires_at: None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("Token has expired")]
    Expired,
    #[error("Unauthorized: invalid access token ({0})")]
    Invalid(String),
    #[error("a portal token needs a company")]
    MissingCompany,
}

/// The outcome of an authorisation check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// Refused, with the reason the client is told.
    Denied(String),
}

/// Signs and verifies access tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// `aud` that tokens must name, and that minted ones carry; not checked when `None`.
    audience: Option<String>,
}

impl TokenKeys {
    pub fn new(secret: &Secret) -> TokenKeys {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            audience: None,
        }
    }

    /// Keys that require, and mint, the audience `audience` (none: `aud` is not checked).
    pub fn with_audience(mut self, audience: Option<String>) -> TokenKeys {
        self.audience = audience.filter(|audience| !audience.trim().is_empty());
        self
    }

    /// A token for `role` in `account` valid for `ttl_seconds` from `now` (unix seconds).
    pub fn mint(
        &self,
        role: Role,
        account: &str,
        company_uuid: Option<&str>,
        ttl_seconds: i64,
        now: i64,
    ) -> Result<String, TokenError> {
        if role == Role::Portal && company_uuid.is_none_or(str::is_empty) {
            return Err(TokenError::MissingCompany);
        }
        let claims = Claims {
            role,
            account: Some(account.to_owned()),
            company_uuid: company_uuid.map(str::to_owned),
            exp: now + ttl_seconds,
            iat: Some(now),
            aud: self.audience.clone(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| TokenError::Invalid(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Credentials, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Only a little: a grace period would keep a revoked portal user listening.
        validation.leeway = CLOCK_SKEW_SECONDS as u64;
        // Every registered claim is optional (RFC 7519); `exp` and `nbf` are enforced when present.
        validation.required_spec_claims.clear();
        validation.validate_nbf = true;
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        let claims = decode::<ReadClaims>(token, &self.decoding, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                // A short reason for the client, never the decoder's internals.
                ErrorKind::InvalidSignature => TokenError::Invalid("bad signature".into()),
                ErrorKind::ImmatureSignature => TokenError::Invalid("not valid yet".into()),
                ErrorKind::InvalidAudience | ErrorKind::MissingRequiredClaim(_) => {
                    TokenError::Invalid("wrong audience".into())
                }
                _ => TokenError::Invalid("malformed".into()),
            })?
            .claims;
        let account = claims.account.unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned());
        let identity = match (claims.role.as_deref(), claims.company_uuid) {
            (None, _) => return Err(TokenError::Invalid("no role".into())),
            (Some("admin"), _) => Identity::Admin { account },
            (Some("viewer"), _) => Identity::Viewer { account },
            (Some("portal"), Some(company_uuid)) if !company_uuid.is_empty() => {
                Identity::Portal { account, company_uuid }
            }
            (Some("portal"), _) => return Err(TokenError::MissingCompany),
            // Supabase's anon key: a public client, like no token.
            (Some("anon"), _) => Identity::Anonymous,
            (Some(_), _) => return Err(TokenError::Invalid("unknown role".into())),
        };
        Ok(Credentials {
            identity,
            expires_at: claims.exp,
        })
    }
}

/// The relay's access rules: the anon key, the token keys, the public topics and job ownership.
pub struct Authority {
    keys: TokenKeys,
    anon_key: Secret,
    /// Sub-topics (without `realtime:`) anyone may join.
    public_topics: HashSet<String>,
    job_company: JobOwnership,
}

impl Authority {
    pub fn new(keys: TokenKeys, anon_key: Secret, public_topics: &[String], job_company: JobOwnership) -> Authority {
        let public_topics = public_topics
            .iter()
            .map(|topic| topic.trim())
            .filter(|topic| !topic.is_empty())
            .map(|topic| topic.strip_prefix(TOPIC_PREFIX).unwrap_or(topic).to_owned())
            .collect();
        Authority {
            keys,
            anon_key,
            public_topics,
            job_company,
        }
    }

    pub fn token_keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// Whether `apikey` opens a socket: the anon key, or a JWT under the secret that is valid now.
    pub fn accepts_apikey(&self, apikey: &str) -> bool {
        secrets_match(apikey, self.anon_key.expose()) || self.keys.verify(apikey).is_ok()
    }

    /// The credentials a token grants; no token, or the anon key in its place, is anonymous access.
    pub fn credentials(&self, token: Option<&str>) -> Result<Credentials, TokenError> {
        match token.map(str::trim).filter(|token| !token.is_empty()) {
            None => Ok(Credentials::anonymous()),
            Some(token) if secrets_match(token, self.anon_key.expose()) => Ok(Credentials::anonymous()),
            Some(token) => self.keys.verify(token),
        }
    }

    /// Whether `identity` may join `topic` (a full `realtime:...` topic, as the client names it) of its account.
    pub async fn authorize_join(&self, identity: &Identity, topic: &str) -> Access {
        let Some(sub_topic) = topic.strip_prefix(TOPIC_PREFIX) else {
            return Access::Denied("unmatched topic".into());
        };
        if self.public_topics.contains(sub_topic) {
            return Access::Granted;
        }
        match identity {
            Identity::Admin { .. } | Identity::Viewer { .. } => Access::Granted,
            Identity::Anonymous => {
                Access::Denied(format!("Unauthorized: an access token is required to join {sub_topic}"))
            }
            Identity::Portal { account, company_uuid } => {
                if sub_topic.strip_prefix("company:") == Some(company_uuid) {
                    return Access::Granted;
                }
                if let Some(job_uuid) = sub_topic.strip_prefix("job:") {
                    let owner = (self.job_company)(account.clone(), job_uuid.to_owned()).await;
                    if owner.as_ref() == Some(company_uuid) {
                        return Access::Granted;
                    }
                }
                Access::Denied(format!("Unauthorized: this portal token cannot join {sub_topic}"))
            }
        }
    }

    /// Whether `identity` may broadcast on `topic`: admins anywhere in their account, anyone on public topics,
    /// viewers and portal users never.
    pub fn authorize_broadcast(&self, identity: &Identity, topic: &str) -> Access {
        let sub_topic = topic.strip_prefix(TOPIC_PREFIX).unwrap_or(topic);
        match identity {
            Identity::Admin { .. } => Access::Granted,
            Identity::Viewer { .. } => Access::Denied("Unauthorized: viewer tokens cannot broadcast".into()),
            Identity::Portal { .. } => Access::Denied("Unauthorized: portal tokens cannot broadcast".into()),
            Identity::Anonymous if self.public_topics.contains(sub_topic) => Access::Granted,
            Identity::Anonymous => Access::Denied(format!(
                "Unauthorized: an access token is required to broadcast on {sub_topic}"
            )),
        }
    }
}

/// Unix seconds now.
pub fn now_seconds() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&Secret::new("test-jwt-secret"))
    }

    fn authority() -> Authority {
        let ownership: JobOwnership = Arc::new(|account: String, job_uuid: String| {
            Box::pin(async move { (account == "alpha" && job_uuid == "job-of-c1").then(|| "c1".to_owned()) })
        });
        Authority::new(
            keys(),
            Secret::new("anon"),
            &["lobby".into(), "realtime:room1".into()],
            ownership,
        )
    }

    fn portal(company: &str) -> Identity {
        Identity::Portal {
            account: "alpha".into(),
            company_uuid: company.into(),
        }
    }

    fn admin() -> Identity {
        Identity::Admin {
            account: "alpha".into(),
        }
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let now = now_seconds();
        let claims = serde_json::json!({"role": "admin", "exp": now + 3_600, "iat": now, "nbf": now + 600});
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"test-jwt-secret"),
        )
        .unwrap();
        assert!(matches!(keys().verify(&token), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn a_minted_token_verifies_to_its_role_and_expiry() {
        let now = now_seconds();
        let token = keys().mint(Role::Portal, "alpha", Some("c1"), 60, now).unwrap();
        let credentials = keys().verify(&token).unwrap();
        assert_eq!(credentials.identity, portal("c1"));
        assert_eq!(credentials.expires_at, Some(now + 60));
    }

    #[test]
    fn expired_forged_and_companyless_tokens_are_refused() {
        let now = now_seconds();
        let expired = keys().mint(Role::Admin, "alpha", None, -5, now).unwrap();
        assert_eq!(keys().verify(&expired), Err(TokenError::Expired));
        let forged = TokenKeys::new(&Secret::new("other"))
            .mint(Role::Admin, "alpha", None, 60, now)
            .unwrap();
        assert!(matches!(keys().verify(&forged), Err(TokenError::Invalid(_))));
        assert_eq!(
            keys().mint(Role::Portal, "alpha", None, 60, now),
            Err(TokenError::MissingCompany)
        );
    }

    #[test]
    fn a_token_is_for_its_account_and_one_without_the_claim_for_the_default_account() {
        let now = now_seconds();
        let token = keys().mint(Role::Viewer, "bravo", None, 60, now).unwrap();
        assert_eq!(
            keys().verify(&token).unwrap().identity,
            Identity::Viewer {
                account: "bravo".into()
            }
        );
        // Minted elsewhere: no `iat`, no `account`.
        let claims = serde_json::json!({"role": "admin", "exp": now + 60});
        let foreign = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"test-jwt-secret"),
        )
        .unwrap();
        assert_eq!(keys().verify(&foreign).unwrap().identity.account(), DEFAULT_ACCOUNT);
    }

    fn signed(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"test-jwt-secret"),
        )
        .unwrap()
    }

    #[test]
    fn any_valid_token_is_accepted_with_a_little_clock_skew_and_refused_ones_say_why_briefly() {
        let now = now_seconds();
        let verify = |claims: serde_json::Value| keys().verify(&signed(claims));
        assert!(verify(serde_json::json!({"role": "admin"})).is_ok(), "exp is optional");
        assert!(verify(serde_json::json!({"role": "admin", "exp": now - 1, "nbf": now + 1})).is_ok());
        assert_eq!(
            verify(serde_json::json!({"role": "admin", "exp": now - 30})),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(serde_json::json!({"exp": now + 60})),
            Err(TokenError::Invalid("no role".into()))
        );
        assert_eq!(
            verify(serde_json::json!({"role": "owner"})),
            Err(TokenError::Invalid("unknown role".into()))
        );
        assert_eq!(
            verify(serde_json::json!({"role": "anon", "iss": "supabase"}))
                .unwrap()
                .identity,
            Identity::Anonymous
        );
        assert_eq!(
            keys().verify("not.a.token"),
            Err(TokenError::Invalid("malformed".into()))
        );
    }

    #[test]
    fn the_audience_is_checked_only_when_configured_and_minted_tokens_carry_it() {
        let now = now_seconds();
        let strict = keys().with_audience(Some("sm8".into()));
        let claims = |aud: &str| serde_json::json!({"role": "admin", "aud": aud, "exp": now + 60});
        assert!(strict.verify(&signed(claims("sm8"))).is_ok());
        assert_eq!(
            strict.verify(&signed(claims("other"))),
            Err(TokenError::Invalid("wrong audience".into()))
        );
        assert!(strict.verify(&signed(serde_json::json!({"role": "admin"}))).is_err());
        assert!(
            keys().verify(&signed(claims("other"))).is_ok(),
            "not checked when not configured"
        );
        let minted = strict.mint(Role::Viewer, "alpha", None, 60, now).unwrap();
        assert!(strict.verify(&minted).is_ok());
    }

    #[test]
    fn the_apikey_is_the_anon_key_or_a_valid_token() {
        let authority = authority();
        assert!(authority.accepts_apikey("anon"));
        assert!(authority.accepts_apikey(&signed(serde_json::json!({"role": "anon"}))));
        assert!(!authority.accepts_apikey("other"));
        let expired = signed(serde_json::json!({"role": "anon", "exp": now_seconds() - 60}));
        assert!(!authority.accepts_apikey(&expired));
    }

    #[test]
    fn viewers_join_but_never_broadcast() {
        let viewer = Identity::Viewer {
            account: "alpha".into(),
        };
        assert!(matches!(
            authority().authorize_broadcast(&viewer, "realtime:jobs"),
            Access::Denied(_)
        ));
    }

    #[test]
    fn no_token_or_the_anon_key_as_token_is_anonymous() {
        let authority = authority();
        assert_eq!(authority.credentials(None), Ok(Credentials::anonymous()));
        assert_eq!(authority.credentials(Some("anon")), Ok(Credentials::anonymous()));
        assert!(authority.credentials(Some("garbage")).is_err());
    }

    #[tokio::test]
    async fn admins_join_everything_and_anonymous_users_only_public_topics() {
        let authority = authority();
        assert_eq!(
            authority.authorize_join(&admin(), "realtime:admin:webhooks").await,
            Access::Granted
        );
        assert_eq!(
            authority.authorize_join(&Identity::Anonymous, "realtime:room1").await,
            Access::Granted
        );
        assert_eq!(
            authority.authorize_join(&Identity::Anonymous, "realtime:lobby").await,
            Access::Granted
        );
        assert!(matches!(
            authority.authorize_join(&Identity::Anonymous, "realtime:jobs").await,
            Access::Denied(_)
        ));
        assert!(matches!(
            authority.authorize_join(&admin(), "phoenix").await,
            Access::Denied(_)
        ));
    }

    #[tokio::test]
    async fn portal_users_join_only_their_company_and_its_jobs() {
        let authority = authority();
        assert_eq!(
            authority.authorize_join(&portal("c1"), "realtime:company:c1").await,
            Access::Granted
        );
        assert_eq!(
            authority.authorize_join(&portal("c1"), "realtime:job:job-of-c1").await,
            Access::Granted
        );
        for topic in [
            "realtime:company:c2",
            "realtime:job:other",
            "realtime:jobs",
            "realtime:admin:webhooks",
        ] {
            assert!(
                matches!(authority.authorize_join(&portal("c1"), topic).await, Access::Denied(_)),
                "{topic}"
            );
        }
        assert!(matches!(
            authority.authorize_join(&portal("c2"), "realtime:job:job-of-c1").await,
            Access::Denied(_)
        ));
    }

    #[test]
    fn portal_users_never_broadcast() {
        let authority = authority();
        assert!(matches!(
            authority.authorize_broadcast(&portal("c1"), "realtime:company:c1"),
            Access::Denied(_)
        ));
        assert_eq!(
            authority.authorize_broadcast(&admin(), "realtime:jobs"),
            Access::Granted
        );
        assert_eq!(
            authority.authorize_broadcast(&Identity::Anonymous, "realtime:lobby"),
            Access::Granted
        );
        assert!(matches!(
            authority.authorize_broadcast(&Identity::Anonymous, "realtime:jobs"),
            Access::Denied(_)
        ));
    }
}
