//! The OAuth 2.0 grants of the simulated account, as ServiceM8 gives them to a public application: authorization
//! codes (single-use, short-lived, bound to the redirect URI they were issued for), access tokens that expire after
//! the configured lifetime, and refresh tokens that get new access tokens until they are revoked. The HTTP side
//! (consent page, token endpoint, controls) is in `oauth_http`; this module holds the rules, with the clock passed
//! in so that they are tested without waiting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::config::MockConfig;
use server::secret::Secret;

/// How long an authorization code can be exchanged (OAuth 2.0 recommends at most ten minutes).
pub const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// The token endpoint's answer to a granted request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    /// Seconds the access token is valid for.
    pub expires_in: u64,
    pub refresh_token: String,
    pub scope: String,
    /// Always `bearer`.
    pub token_type: String,
}

/// A refused token request, answered as OAuth 2.0 says: `{"error": .., "error_description": ..}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// 400: a parameter is missing.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401: not the application's client id and secret.
    #[error("Client authentication failed")]
    InvalidClient,
    /// 400: the code or refresh token is unknown, spent, expired, revoked, or for another redirect URI.
    #[error("{0}")]
    InvalidGrant(String),
    /// 400: a grant type other than `authorization_code` and `refresh_token`.
    #[error("Unsupported grant type {0:?}")]
    UnsupportedGrantType(String),
}

impl TokenError {
    /// OAuth's name for the error.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::InvalidClient => "invalid_client",
            TokenError::InvalidGrant(_) => "invalid_grant",
            TokenError::UnsupportedGrantType(_) => "unsupported_grant_type",
        }
    }
}

/// Whether a bearer token may call the API now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    Expired,
    Unknown,
}

/// What the OAuth side has done so far (`GET /_mock/oauth`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthStats {
    /// Codes issued by an "Allow" on the consent page.
    pub codes_issued: u64,
    /// Codes exchanged for tokens.
    pub codes_exchanged: u64,
    /// Access tokens issued by a refresh.
    pub refreshes: u64,
    /// Token requests refused, whatever the reason.
    pub token_requests_refused: u64,
    /// API requests let in by a bearer token.
    pub bearer_accepted: u64,
    /// API requests answered 401 for an expired or unknown bearer token.
    pub bearer_refused: u64,
    /// Whether refreshes are refused (`POST /_mock/oauth {"refresh_failing": true}`).
    pub refresh_failing: bool,
    pub token_ttl_seconds: u64,
}

/// A code issued by the consent page, until it is exchanged.
#[derive(Debug, Clone)]
struct IssuedCode {
    redirect_uri: String,
    scope: String,
    expires_at: Instant,
}

/// The tokens an exchanged code produced: revoked if the code is presented again (OAuth 2.0, section 4.1.2).
#[derive(Debug, Clone)]
struct SpentCode {
    access_token: String,
    refresh_token: String,
}

#[derive(Debug, Clone)]
struct AccessGrant {
    expires_at: Instant,
}

/// The account's one OAuth application and every grant it holds.
#[derive(Debug)]
pub(crate) struct Grants {
    client_id: String,
    client_secret: Secret,
    token_ttl: Duration,
    codes: HashMap<String, IssuedCode>,
    spent_codes: HashMap<String, SpentCode>,
    access_tokens: HashMap<String, AccessGrant>,
    /// Refresh token → the scope it grants. A refresh keeps the refresh token (only the access token changes).
    refresh_tokens: HashMap<String, String>,
    refresh_failing: bool,
    stats: OAuthStats,
}

impl Grants {
    pub fn new(config: &MockConfig) -> Grants {
        Grants {
            client_id: config.oauth_client_id.clone(),
            client_secret: config.oauth_client_secret.clone(),
            token_ttl: Duration::from_secs(config.oauth_token_ttl_seconds),
            codes: HashMap::new(),
            spent_codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            refresh_failing: false,
            stats: OAuthStats::default(),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn client_secret(&self) -> &Secret {
        &self.client_secret
    }

    /// Whether `client_id` is the application's (the consent page refuses other clients without redirecting).
    pub fn knows_client(&self, client_id: &str) -> bool {
        client_id == self.client_id
    }

    /// The user allowed the application: a code for `redirect_uri` and `scope`.
    pub fn issue_code(&mut self, redirect_uri: &str, scope: &str, now: Instant) -> String {
        self.codes.retain(|_, code| code.expires_at > now);
        let code = random_token("mock-code");
        self.codes.insert(
            code.clone(),
            IssuedCode {
                redirect_uri: redirect_uri.to_owned(),
                scope: scope.to_owned(),
                expires_at: now + CODE_LIFETIME,
            },
        );
        self.stats.codes_issued += 1;
        code
    }

    /// `grant_type=authorization_code`: the code, once, for the redirect URI it was issued for.
    pub fn exchange_code(
        &mut self,
        client_id: &str,
        client_secret: &str,
        code: &str,
        redirect_uri: Option<&str>,
        now: Instant,
    ) -> Result<TokenAnswer, TokenError> {
        let answer = self.try_exchange_code(client_id, client_secret, code, redirect_uri, now);
        self.count(&answer);
        answer
    }

    fn try_exchange_code(
        &mut self,
        client_id: &str,
        client_secret: &str,
        code: &str,
        redirect_uri: Option<&str>,
        now: Instant,
    ) -> Result<TokenAnswer, TokenError> {
        self.authenticate(client_id, client_secret)?;
        if code.is_empty() {
            return Err(TokenError::InvalidRequest("code is required".into()));
        }
        if let Some(spent) = self.spent_codes.remove(code) {
            self.access_tokens.remove(&spent.access_token);
            self.refresh_tokens.remove(&spent.refresh_token);
            return Err(TokenError::InvalidGrant(
                "The authorization code was already used; the tokens it gave are revoked".into(),
            ));
        }
        let issued = self
            .codes
            .remove(code)
            .ok_or_else(|| TokenError::InvalidGrant("Unknown authorization code".into()))?;
        if issued.expires_at <= now {
            return Err(TokenError::InvalidGrant("The authorization code has expired".into()));
        }
        if redirect_uri.is_some_and(|uri| uri != issued.redirect_uri) {
            return Err(TokenError::InvalidGrant(
                "redirect_uri differs from the one the code was issued for".into(),
            ));
        }
        let refresh_token = random_token("mock-rt");
        self.refresh_tokens.insert(refresh_token.clone(), issued.scope.clone());
        let answer = self.grant_access(refresh_token, issued.scope, now);
        self.spent_codes.insert(
            code.to_owned(),
            SpentCode {
                access_token: answer.access_token.clone(),
                refresh_token: answer.refresh_token.clone(),
            },
        );
        self.stats.codes_exchanged += 1;
        Ok(answer)
    }

    /// `grant_type=refresh_token`: a new access token, unless refreshes are failing or the token is unknown.
    pub fn refresh(
        &mut self,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
        now: Instant,
    ) -> Result<TokenAnswer, TokenError> {
        let answer = self.try_refresh(client_id, client_secret, refresh_token, now);
        self.count(&answer);
        if answer.is_ok() {
            self.stats.refreshes += 1;
        }
        answer
    }

    fn try_refresh(
        &mut self,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
        now: Instant,
    ) -> Result<TokenAnswer, TokenError> {
        self.authenticate(client_id, client_secret)?;
        if refresh_token.is_empty() {
            return Err(TokenError::InvalidRequest("refresh_token is required".into()));
        }
        if self.refresh_failing {
            return Err(TokenError::InvalidGrant("The refresh token has been revoked".into()));
        }
        let scope = self
            .refresh_tokens
            .get(refresh_token)
            .cloned()
            .ok_or_else(|| TokenError::InvalidGrant("Unknown refresh token".into()))?;
        Ok(self.grant_access(refresh_token.to_owned(), scope, now))
    }

    /// Whether `token` is a live access token, counting the answer.
    pub fn check_access(&mut self, token: &str, now: Instant) -> TokenCheck {
        let check = match self.access_tokens.get(token) {
            Some(grant) if grant.expires_at > now => TokenCheck::Valid,
            Some(_) => TokenCheck::Expired,
            None => TokenCheck::Unknown,
        };
        match check {
            TokenCheck::Valid => self.stats.bearer_accepted += 1,
            TokenCheck::Expired | TokenCheck::Unknown => self.stats.bearer_refused += 1,
        }
        check
    }

    /// Makes refreshes fail (as when the user revokes the application) or succeed again.
    pub fn set_refresh_failing(&mut self, failing: bool) {
        self.refresh_failing = failing;
    }

    /// Ends every access token issued so far, as if their lifetime had passed.
    pub fn expire_access_tokens(&mut self, now: Instant) {
        for grant in self.access_tokens.values_mut() {
            grant.expires_at = grant.expires_at.min(now);
        }
    }

    /// The lifetime of access tokens issued from now on.
    pub fn set_token_ttl(&mut self, ttl: Duration) {
        self.token_ttl = ttl;
    }

    pub fn stats(&self) -> OAuthStats {
        OAuthStats {
            refresh_failing: self.refresh_failing,
            token_ttl_seconds: self.token_ttl.as_secs(),
            ..self.stats.clone()
        }
    }

    fn authenticate(&self, client_id: &str, client_secret: &str) -> Result<(), TokenError> {
        let secret_matches = super::api::keys_equal(client_secret, self.client_secret.expose());
        if client_id == self.client_id && secret_matches {
            Ok(())
        } else {
            Err(TokenError::InvalidClient)
        }
    }

    fn grant_access(&mut self, refresh_token: String, scope: String, now: Instant) -> TokenAnswer {
        self.access_tokens.retain(|_, grant| grant.expires_at > now);
        let access_token = random_token("mock-at");
        self.access_tokens.insert(
            access_token.clone(),
            AccessGrant {
                expires_at: now + self.token_ttl,
            },
        );
        TokenAnswer {
            access_token,
            expires_in: self.token_ttl.as_secs(),
            refresh_token,
            scope,
            token_type: "bearer".into(),
        }
    }

    fn count<T>(&mut self, answer: &Result<T, TokenError>) {
        if answer.is_err() {
            self.stats.token_requests_refused += 1;
        }
    }
}

fn random_token(prefix: &str) -> String {
    format!("{prefix}-{}", hex::encode(rand::random::<[u8; 16]>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDIRECT: &str = "http://app.test/oauth/servicem8/callback";

    fn grants() -> Grants {
        Grants::new(&MockConfig {
            oauth_token_ttl_seconds: 60,
            ..MockConfig::default()
        })
    }

    fn connect(grants: &mut Grants, now: Instant) -> TokenAnswer {
        let code = grants.issue_code(REDIRECT, "read_jobs", now);
        grants
            .exchange_code("mock-client-id", "mock-client-secret", &code, Some(REDIRECT), now)
            .unwrap()
    }

    #[test]
    fn a_code_gives_bearer_tokens_once() {
        let mut grants = grants();
        let now = Instant::now();
        let code = grants.issue_code(REDIRECT, "read_jobs read_staff", now);
        let answer = grants
            .exchange_code("mock-client-id", "mock-client-secret", &code, Some(REDIRECT), now)
            .unwrap();
        assert_eq!(answer.token_type, "bearer");
        assert_eq!(answer.expires_in, 60);
        assert_eq!(answer.scope, "read_jobs read_staff");
        assert_eq!(grants.check_access(&answer.access_token, now), TokenCheck::Valid);

        let again = grants.exchange_code("mock-client-id", "mock-client-secret", &code, Some(REDIRECT), now);
        assert!(matches!(again, Err(TokenError::InvalidGrant(_))), "{again:?}");
        assert_eq!(
            grants.check_access(&answer.access_token, now),
            TokenCheck::Unknown,
            "a reused code revokes what it gave"
        );
        let refreshed = grants.refresh("mock-client-id", "mock-client-secret", &answer.refresh_token, now);
        assert!(matches!(refreshed, Err(TokenError::InvalidGrant(_))));
    }

    #[test]
    fn a_code_is_refused_when_expired_unknown_or_for_another_redirect_uri() {
        let mut grants = grants();
        let now = Instant::now();
        let code = grants.issue_code(REDIRECT, "read_jobs", now);
        let late = grants.exchange_code("mock-client-id", "mock-client-secret", &code, None, now + CODE_LIFETIME);
        assert!(matches!(late, Err(TokenError::InvalidGrant(_))), "{late:?}");

        let code = grants.issue_code(REDIRECT, "read_jobs", now);
        let elsewhere = grants.exchange_code(
            "mock-client-id",
            "mock-client-secret",
            &code,
            Some("http://evil.test/cb"),
            now,
        );
        assert!(matches!(elsewhere, Err(TokenError::InvalidGrant(_))));

        let unknown = grants.exchange_code("mock-client-id", "mock-client-secret", "nope", None, now);
        assert!(matches!(unknown, Err(TokenError::InvalidGrant(_))));
        assert_eq!(grants.stats().token_requests_refused, 3);
    }

    #[test]
    fn a_wrong_client_is_refused_before_the_code_is_spent() {
        let mut grants = grants();
        let now = Instant::now();
        let code = grants.issue_code(REDIRECT, "read_jobs", now);
        for (id, secret) in [("mock-client-id", "wrong"), ("other-client", "mock-client-secret")] {
            let refused = grants.exchange_code(id, secret, &code, Some(REDIRECT), now);
            assert_eq!(refused, Err(TokenError::InvalidClient));
            assert_eq!(TokenError::InvalidClient.code(), "invalid_client");
        }
        assert!(grants
            .exchange_code("mock-client-id", "mock-client-secret", &code, Some(REDIRECT), now)
            .is_ok());
    }

    #[test]
    fn access_tokens_expire_and_a_refresh_gives_a_new_one_with_the_same_refresh_token() {
        let mut grants = grants();
        let now = Instant::now();
        let first = connect(&mut grants, now);
        let later = now + Duration::from_secs(60);
        assert_eq!(grants.check_access(&first.access_token, later), TokenCheck::Expired);
        assert_eq!(grants.check_access("made-up", now), TokenCheck::Unknown);

        let second = grants
            .refresh("mock-client-id", "mock-client-secret", &first.refresh_token, later)
            .unwrap();
        assert_ne!(second.access_token, first.access_token);
        assert_eq!(second.refresh_token, first.refresh_token);
        assert_eq!(second.scope, "read_jobs");
        assert_eq!(grants.check_access(&second.access_token, later), TokenCheck::Valid);
        let stats = grants.stats();
        assert_eq!(
            (stats.refreshes, stats.bearer_accepted, stats.bearer_refused),
            (1, 1, 2)
        );
    }

    #[test]
    fn refreshes_fail_while_switched_to_fail_and_expired_tokens_stay_expired() {
        let mut grants = grants();
        let now = Instant::now();
        let answer = connect(&mut grants, now);
        grants.set_refresh_failing(true);
        grants.expire_access_tokens(now);
        assert_eq!(grants.check_access(&answer.access_token, now), TokenCheck::Expired);
        let refused = grants.refresh("mock-client-id", "mock-client-secret", &answer.refresh_token, now);
        assert!(matches!(refused, Err(TokenError::InvalidGrant(_))), "{refused:?}");
        assert!(grants.stats().refresh_failing);

        grants.set_refresh_failing(false);
        grants.set_token_ttl(Duration::from_secs(5));
        let renewed = grants
            .refresh("mock-client-id", "mock-client-secret", &answer.refresh_token, now)
            .unwrap();
        assert_eq!(renewed.expires_in, 5);
        let wrong_secret = grants.refresh("mock-client-id", "nope", &answer.refresh_token, now);
        assert_eq!(wrong_secret, Err(TokenError::InvalidClient));
    }
}
