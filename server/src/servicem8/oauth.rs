//! ServiceM8 OAuth 2.0 (authorization code): the authorize URL an account is connected through, the exchange of
//! the code for tokens, and `OAuthSession`, which keeps one account's access token fresh: refreshed a minute
//! before it expires and whenever ServiceM8 answers 401, each new pair handed to whoever keeps it
//! (`accounts::Accounts`, which seals it into the account).

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::client::ApiCallError;
use crate::secret::Secret;
use crate::store::now_millis;

/// ServiceM8's authorization endpoint.
pub const DEFAULT_AUTHORIZE_URL: &str = "https://go.servicem8.com/oauth/authorize";
/// ServiceM8's token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://go.servicem8.com/oauth/access_token";
/// The scopes a connection asks for unless the user chooses: what processing, sync, the portal and subscriptions
/// need.
pub use app::directory::model::DEFAULT_OAUTH_SCOPES as DEFAULT_SCOPES;
/// An access token is refreshed when it has less than this left.
const REFRESH_AHEAD_MS: i64 = 60_000;

/// The OAuth application this deployment is registered as with ServiceM8.
#[derive(Debug, Clone, Args)]
pub struct OAuthArgs {
    /// Client id of the ServiceM8 OAuth application ("Connect ServiceM8" is offered when it is set).
    #[arg(long, env = "SERVICEM8_OAUTH_CLIENT_ID")]
    pub servicem8_oauth_client_id: Option<String>,

    /// Client secret of the ServiceM8 OAuth application.
    #[arg(long, env = "SERVICEM8_OAUTH_CLIENT_SECRET", hide_env_values = true)]
    pub servicem8_oauth_client_secret: Option<Secret>,

    /// ServiceM8's authorization endpoint.
    #[arg(long, env = "SERVICEM8_OAUTH_AUTHORIZE_URL", default_value = DEFAULT_AUTHORIZE_URL)]
    pub servicem8_oauth_authorize_url: String,

    /// ServiceM8's token endpoint.
    #[arg(long, env = "SERVICEM8_OAUTH_TOKEN_URL", default_value = DEFAULT_TOKEN_URL)]
    pub servicem8_oauth_token_url: String,
}

impl Default for OAuthArgs {
    fn default() -> Self {
        crate::flags::defaults()
    }
}

impl OAuthArgs {
    /// The application, when a client id and secret are configured.
    pub fn app(&self, timeout: Duration) -> anyhow::Result<Option<OAuthApp>> {
        let (Some(client_id), Some(client_secret)) = (
            self.servicem8_oauth_client_id
                .clone()
                .filter(|id| !id.trim().is_empty()),
            self.servicem8_oauth_client_secret.clone(),
        ) else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("sm8-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(OAuthApp {
            client_id,
            client_secret,
            authorize_url: self.servicem8_oauth_authorize_url.clone(),
            token_url: self.servicem8_oauth_token_url.clone(),
            http,
        }))
    }
}

/// A pair of tokens and what they allow.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthTokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    /// When the access token expires (unix ms).
    pub expires_at: i64,
    pub scopes: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("ServiceM8 refused the {grant}: {reason}")]
    Refused { grant: &'static str, reason: String },
    #[error("could not reach ServiceM8's token endpoint: {0}")]
    Transport(String),
}

/// ServiceM8's token answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    scope: Option<String>,
}

/// The registered application: builds authorize URLs and talks to the token endpoint.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    client_id: String,
    client_secret: Secret,
    authorize_url: String,
    token_url: String,
    http: reqwest::Client,
}

impl OAuthApp {
    /// Where to send the user's browser to connect an account: `state` comes back with the code.
    pub fn authorize_url(&self, state: &str, scopes: &str, redirect_uri: &str) -> String {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", scopes)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .finish();
        let separator = if self.authorize_url.contains('?') { '&' } else { '?' };
        format!("{}{separator}{query}", self.authorize_url)
    }

    /// Exchanges an authorization code for tokens.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<OAuthTokens, OAuthError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        self.token_request("authorization code", &form, None).await
    }

    /// A new pair for `refresh_token` (ServiceM8 may keep the refresh token; then the old one stays).
    pub async fn refresh(&self, refresh_token: &Secret, scopes: &str) -> Result<OAuthTokens, OAuthError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("refresh_token", refresh_token.expose()),
        ];
        let mut tokens = self.token_request("refresh token", &form, Some(refresh_token)).await?;
        if tokens.scopes.is_empty() {
            tokens.scopes = scopes.to_owned();
        }
        Ok(tokens)
    }

    async fn token_request(
        &self,
        grant: &'static str,
        form: &[(&str, &str)],
        previous_refresh: Option<&Secret>,
    ) -> Result<OAuthTokens, OAuthError> {
        let response = self
            .http
            .post(&self.token_url)
            .form(form)
            .send()
            .await
            .map_err(|error| OAuthError::Transport(error.without_url().to_string()))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let reason: String = body.chars().take(200).collect();
            return Err(OAuthError::Refused {
                grant,
                reason: format!("{status}: {reason}"),
            });
        }
        let answer: TokenAnswer = serde_json::from_str(&body).map_err(|error| OAuthError::Refused {
            grant,
            reason: format!("unreadable token answer: {error}"),
        })?;
        let refresh_token = answer
            .refresh_token
            .map(Secret::new)
            .or_else(|| previous_refresh.cloned())
            .ok_or_else(|| OAuthError::Refused {
                grant,
                reason: "the answer holds no refresh token".into(),
            })?;
        Ok(OAuthTokens {
            access_token: Secret::new(answer.access_token),
            refresh_token,
            expires_at: now_millis() + answer.expires_in.unwrap_or(3600).max(0) * 1000,
            scopes: answer.scope.unwrap_or_default(),
        })
    }
}

/// What became of a refresh, for whoever keeps the account's tokens.
#[derive(Debug, Clone)]
pub enum RefreshOutcome {
    Refreshed(OAuthTokens),
    /// The refresh failed: the account must be connected again if it keeps failing.
    Failed(String),
}

/// Keeps a refresh's outcome (seals new tokens into the account, records a failure).
pub type TokenKeeper = Arc<dyn Fn(RefreshOutcome) -> BoxFuture<'static, ()> + Send + Sync>;

/// One account's OAuth connection: its current tokens, refreshed when needed.
pub struct OAuthSession {
    app: OAuthApp,
    tokens: tokio::sync::Mutex<OAuthTokens>,
    keeper: TokenKeeper,
}

impl OAuthSession {
    pub fn new(app: OAuthApp, tokens: OAuthTokens, keeper: TokenKeeper) -> OAuthSession {
        OAuthSession {
            app,
            tokens: tokio::sync::Mutex::new(tokens),
            keeper,
        }
    }

    /// The access token to send now, refreshed first if it is about to expire.
    pub async fn access_token(&self) -> Result<Secret, ApiCallError> {
        let mut tokens = self.tokens.lock().await;
        if tokens.expires_at - REFRESH_AHEAD_MS <= now_millis() {
            self.refresh_locked(&mut tokens).await?;
        }
        Ok(tokens.access_token.clone())
    }

    /// ServiceM8 refused `rejected` (401): a fresh access token, unless another request already refreshed it.
    pub async fn after_unauthorized(&self, rejected: &Secret) -> Result<Secret, ApiCallError> {
        let mut tokens = self.tokens.lock().await;
        if &tokens.access_token == rejected {
            self.refresh_locked(&mut tokens).await?;
        }
        Ok(tokens.access_token.clone())
    }

    async fn refresh_locked(&self, tokens: &mut OAuthTokens) -> Result<(), ApiCallError> {
        match self.app.refresh(&tokens.refresh_token, &tokens.scopes).await {
            Ok(fresh) => {
                *tokens = fresh.clone();
                (self.keeper)(RefreshOutcome::Refreshed(fresh)).await;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "refreshing a ServiceM8 OAuth token failed");
                (self.keeper)(RefreshOutcome::Failed(error.to_string())).await;
                Err(ApiCallError::Unauthorized(error.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> OAuthApp {
        OAuthArgs {
            servicem8_oauth_client_id: Some("client-1".into()),
            servicem8_oauth_client_secret: Some(Secret::new("shh")),
            ..OAuthArgs::default()
        }
        .app(Duration::from_secs(1))
        .unwrap()
        .unwrap()
    }

    #[test]
    fn the_authorize_url_carries_the_client_scopes_redirect_and_state() {
        let url = app().authorize_url("st&te", "read_jobs read_staff", "https://hooks.example.com/cb?x=1");
        assert!(url.starts_with("https://go.servicem8.com/oauth/authorize?response_type=code&client_id=client-1"));
        assert!(url.contains("scope=read_jobs+read_staff"), "{url}");
        assert!(
            url.contains("redirect_uri=https%3A%2F%2Fhooks.example.com%2Fcb%3Fx%3D1"),
            "{url}"
        );
        assert!(url.contains("state=st%26te"), "{url}");
        assert!(!url.contains("shh"), "the client secret never goes to the browser");
    }

    #[test]
    fn without_a_client_id_and_secret_there_is_no_app() {
        assert!(OAuthArgs::default().app(Duration::from_secs(1)).unwrap().is_none());
    }
}
