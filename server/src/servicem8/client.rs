//! The ServiceM8 REST API client: authentication, timeouts, the shared request budget, and what answers mean.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use reqwest::StatusCode;
use serde_json::Value;

pub use super::budget::Budget;
use super::oauth::OAuthSession;
use crate::analytics::tally::Tallies;
use crate::secret::Secret;
use crate::store::{BudgetLimits, Store, StoreError, DEFAULT_ACCOUNT};

/// The real API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.servicem8.com/api_1.0";

/// How to reach the ServiceM8 API.
#[derive(Debug, Clone, Args)]
pub struct ServiceM8Args {
    /// API key of a private ServiceM8 integration (sent as X-API-Key).
    #[arg(long, env = "SERVICEM8_API_KEY", hide_env_values = true)]
    pub servicem8_api_key: Option<Secret>,

    /// OAuth access token (sent as a bearer token) instead of an API key.
    #[arg(long, env = "SERVICEM8_ACCESS_TOKEN", hide_env_values = true)]
    pub servicem8_access_token: Option<Secret>,

    /// Base URL of the REST API.
    #[arg(long, env = "SERVICEM8_BASE_URL", default_value = DEFAULT_BASE_URL)]
    pub servicem8_base_url: String,

    /// Timeout of one API request, in milliseconds.
    #[arg(long, env = "SERVICEM8_TIMEOUT_MS", default_value_t = 10_000)]
    pub servicem8_timeout_ms: u64,

    /// Most API requests per minute, across all workers and nodes (ServiceM8 allows 180).
    #[arg(long, env = "SERVICEM8_REQUESTS_PER_MINUTE", default_value_t = 180)]
    pub servicem8_requests_per_minute: i64,

    /// Most API requests per day, across all workers and nodes (ServiceM8 allows 20,000).
    #[arg(long, env = "SERVICEM8_REQUESTS_PER_DAY", default_value_t = 20_000)]
    pub servicem8_requests_per_day: i64,

    /// Percent of both limits kept unused, for other clients of the account and for clocks that disagree.
    #[arg(long, env = "SERVICEM8_BUDGET_MARGIN_PERCENT", default_value_t = DEFAULT_BUDGET_MARGIN_PERCENT,
          value_parser = clap::value_parser!(u8).range(0..=90))]
    pub servicem8_budget_margin_percent: u8,
}

pub const DEFAULT_BUDGET_MARGIN_PERCENT: u8 = 5;

impl Default for ServiceM8Args {
    fn default() -> Self {
        crate::flags::defaults()
    }
}

impl ServiceM8Args {
    /// The configured credentials, if any (an API key wins over an access token).
    pub fn credentials(&self) -> Option<Credentials> {
        let present = |secret: &Option<Secret>| secret.clone().filter(|s| !s.expose().is_empty());
        present(&self.servicem8_api_key)
            .map(Credentials::ApiKey)
            .or_else(|| present(&self.servicem8_access_token).map(Credentials::AccessToken))
    }

    /// The limits the budget keeps: the configured ones less the margin.
    pub fn budget_limits(&self) -> BudgetLimits {
        // The margin is rounded up: 5 % of 180 keeps 9, of 10 keeps 1.
        let margin = i64::from(self.servicem8_budget_margin_percent);
        let kept = |limit: i64| limit - (limit.max(0) * margin + 99) / 100;
        BudgetLimits {
            per_minute: kept(self.servicem8_requests_per_minute),
            per_day: kept(self.servicem8_requests_per_day),
        }
    }
}

#[derive(Clone)]
pub enum Credentials {
    ApiKey(Secret),
    /// A bearer token given as it is (`SERVICEM8_ACCESS_TOKEN`); nothing refreshes it.
    AccessToken(Secret),
    /// A connected account's tokens, refreshed before they expire and after a 401.
    OAuth(Arc<OAuthSession>),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::ApiKey(_) => "Credentials::ApiKey(***)",
            Credentials::AccessToken(_) => "Credentials::AccessToken(***)",
            Credentials::OAuth(_) => "Credentials::OAuth(***)",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiCallError {
    /// Our own budget is spent; no request was made.
    #[error("API request budget spent")]
    BudgetExhausted { retry_at: i64 },
    /// ServiceM8 answered 429; every node pauses until `retry_at`.
    #[error("ServiceM8 rate limit reached (429)")]
    RateLimited { retry_at: i64 },
    #[error("ServiceM8 answered {status}: {message}")]
    Status { status: u16, message: String },
    /// The account's OAuth tokens could not be refreshed: it must be connected again.
    #[error("ServiceM8 OAuth: {0}")]
    Unauthorized(String),
    #[error("ServiceM8 did not answer in time")]
    Timeout,
    #[error("could not reach ServiceM8: {0}")]
    Transport(String),
    #[error("unexpected answer from ServiceM8: {0}")]
    InvalidResponse(String),
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
}

impl ApiCallError {
    /// The HTTP status ServiceM8 answered, when it answered.
    pub fn http_status(&self) -> Option<i32> {
        match self {
            ApiCallError::RateLimited { .. } => Some(429),
            ApiCallError::Status { status, .. } => Some(i32::from(*status)),
            ApiCallError::Unauthorized(_) => Some(401),
            _ => None,
        }
    }
}

/// What fetching one record found.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    Record(Value),
    /// ServiceM8 says there is no such object.
    Missing,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<Value>,
    /// Cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// An attachment's bytes as ServiceM8 serves them.
#[derive(Debug)]
pub struct AttachmentFile {
    pub content_type: Option<String>,
    pub bytes: bytes::Bytes,
}

/// One account's client of the ServiceM8 API.
pub struct ServiceM8Client {
    http: reqwest::Client,
    base_url: String,
    credentials: Credentials,
    pub budget: Budget,
}

impl ServiceM8Client {
    /// The default account's client when its credentials are configured in `args`; its requests are tallied for
    /// no node's analytics.
    pub fn from_args(args: &ServiceM8Args, store: Arc<dyn Store>) -> anyhow::Result<Option<ServiceM8Client>> {
        let Some(credentials) = args.credentials() else {
            return Ok(None);
        };
        let budget = Budget::new(store, DEFAULT_ACCOUNT, args.budget_limits(), Tallies::default());
        Ok(Some(ServiceM8Client::new(args, credentials, budget)?))
    }

    /// A client reaching `args`'s API with `credentials`, counting its requests in `budget`.
    pub fn new(args: &ServiceM8Args, credentials: Credentials, budget: Budget) -> anyhow::Result<ServiceM8Client> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(args.servicem8_timeout_ms))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("sm8-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ServiceM8Client {
            http,
            base_url: args.servicem8_base_url.trim_end_matches('/').to_owned(),
            credentials,
            budget,
        })
    }

    /// Fetches one record: `GET {base}/{object}/{uuid}.json`.
    pub async fn fetch(&self, object: &str, uuid: &str) -> Result<Fetched, ApiCallError> {
        let url = format!("{}/{object}/{}.json", self.base_url, urlencode(uuid));
        let response = self.send(self.http.get(url)).await;
        let response = match response {
            Err(ApiCallError::Status { status: 404, .. }) => return Ok(Fetched::Missing),
            other => other?,
        };
        let record: Value = response
            .json()
            .await
            .map_err(|e| ApiCallError::InvalidResponse(e.to_string()))?;
        // An empty answer or one without the uuid is how a missing object looks on some endpoints.
        match record.get("uuid").and_then(Value::as_str) {
            Some(found) if found.eq_ignore_ascii_case(uuid) => Ok(Fetched::Record(record)),
            _ => Ok(Fetched::Missing),
        }
    }

    /// The bytes of an attachment: `GET {base}/Attachment/{uuid}.file`, with the content type ServiceM8 gives;
    /// `None` when ServiceM8 has no such attachment.
    pub async fn fetch_attachment_file(&self, uuid: &str) -> Result<Option<AttachmentFile>, ApiCallError> {
        let url = format!("{}/Attachment/{}.file", self.base_url, urlencode(uuid));
        let response = match self.send(self.http.get(url)).await {
            Err(ApiCallError::Status { status: 404, .. }) => return Ok(None),
            other => other?,
        };
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ApiCallError::InvalidResponse(e.to_string()))?;
        Ok(Some(AttachmentFile { content_type, bytes }))
    }

    /// One page of `object` records matching `filter` (a `$filter` expression), from `cursor` (`-1` = first).
    pub async fn list_page(&self, object: &str, filter: Option<&str>, cursor: &str) -> Result<Page, ApiCallError> {
        let mut query = vec![("cursor", cursor)];
        if let Some(filter) = filter {
            query.push(("$filter", filter));
        }
        let url = format!("{}/{object}.json", self.base_url);
        let response = self.send(self.http.get(url).query(&query)).await?;
        let next_cursor = response
            .headers()
            .get("x-next-cursor")
            .and_then(|value| value.to_str().ok())
            .filter(|value| !value.is_empty())
            .map(str::to_owned);
        let records: Vec<Value> = response
            .json()
            .await
            .map_err(|e| ApiCallError::InvalidResponse(e.to_string()))?;
        Ok(Page { records, next_cursor })
    }

    /// The webhook subscriptions of the account: `GET /webhook_subscriptions` (beside `/api_1.0`).
    pub async fn list_subscriptions(&self) -> Result<Vec<Value>, ApiCallError> {
        let url = format!("{}/webhook_subscriptions", self.account_root());
        let response = self.send(self.http.get(url)).await?;
        let listed: Value = response
            .json()
            .await
            .map_err(|e| ApiCallError::InvalidResponse(e.to_string()))?;
        Ok(match listed {
            Value::Array(items) => items,
            Value::Object(mut object) => match object.remove("subscriptions").or_else(|| object.remove("data")) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        })
    }

    /// Creates (or replaces) the object subscription for `object`; ServiceM8 wants a form body.
    pub async fn subscribe_object(
        &self,
        object: &str,
        fields: &[String],
        callback_url: &str,
        unique_id: &str,
    ) -> Result<(), ApiCallError> {
        let url = format!("{}/webhook_subscriptions/object", self.account_root());
        let fields = fields.join(",");
        let form = [
            ("object", object),
            ("fields", fields.as_str()),
            ("callback_url", callback_url),
            ("unique_id", unique_id),
        ];
        self.send(self.http.post(url).form(&form)).await?;
        Ok(())
    }

    /// Creates (or replaces) the subscription of `callback_url` to an event webhook (`job.completed`, ...).
    pub async fn subscribe_event(&self, event: &str, callback_url: &str, unique_id: &str) -> Result<(), ApiCallError> {
        let url = format!("{}/webhook_subscriptions/event", self.account_root());
        let form = [
            ("event", event),
            ("callback_url", callback_url),
            ("unique_id", unique_id),
        ];
        self.send(self.http.post(url).form(&form)).await?;
        Ok(())
    }

    /// Deletes the subscription of `callback_url` to an object (`kind` = `object`) or an event (`event`).
    pub async fn delete_subscription(&self, kind: &str, name: &str, callback_url: &str) -> Result<(), ApiCallError> {
        let url = format!("{}/webhook_subscriptions/{kind}", self.account_root());
        let form = [(kind, name), ("callback_url", callback_url)];
        self.send(self.http.delete(url).form(&form)).await?;
        Ok(())
    }

    /// The API root without `/api_1.0`, where the webhook subscription endpoints live.
    fn account_root(&self) -> &str {
        self.base_url.strip_suffix("/api_1.0").unwrap_or(&self.base_url)
    }

    /// Sends a request within the budget and turns error answers into `ApiCallError`s. With OAuth, a 401 refreshes
    /// the access token and the request is sent once more (another request from the budget).
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ApiCallError> {
        let retry = match &self.credentials {
            Credentials::OAuth(_) => request.try_clone(),
            Credentials::ApiKey(_) | Credentials::AccessToken(_) => None,
        };
        let (response, sent_token) = self.send_once(request, None).await?;
        let response = match (response.status(), retry, sent_token, &self.credentials) {
            (StatusCode::UNAUTHORIZED, Some(retry), Some(rejected), Credentials::OAuth(session)) => {
                let fresh = session.after_unauthorized(&rejected).await?;
                self.send_once(retry, Some(fresh)).await?.0
            }
            _ => response,
        };
        self.answer(response).await
    }

    /// Takes one request from the budget and sends it with the credentials (or `token`); returns the answer and
    /// the OAuth access token it carried.
    async fn send_once(
        &self,
        request: reqwest::RequestBuilder,
        token: Option<Secret>,
    ) -> Result<(reqwest::Response, Option<Secret>), ApiCallError> {
        self.budget.take().await?;
        let (request, sent_token) = match &self.credentials {
            Credentials::ApiKey(key) => (request.header("X-API-Key", key.expose()), None),
            Credentials::AccessToken(token) => (request.bearer_auth(token.expose()), None),
            Credentials::OAuth(session) => {
                let token = match token {
                    Some(token) => token,
                    None => session.access_token().await?,
                };
                (request.bearer_auth(token.expose()), Some(token))
            }
        };
        let response = request
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|error| {
                if error.is_timeout() {
                    ApiCallError::Timeout
                } else {
                    ApiCallError::Transport(error.without_url().to_string())
                }
            })?;
        Ok((response, sent_token))
    }

    /// What an answer means: a 429 pauses the account's requests; other errors carry their status.
    async fn answer(&self, response: reqwest::Response) -> Result<reqwest::Response, ApiCallError> {
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry_at = self.budget.rate_limited(response.headers()).await?;
            return Err(ApiCallError::RateLimited { retry_at });
        }
        self.budget.answered();
        match response.status() {
            status if status.is_success() => Ok(response),
            status => {
                let body = response.text().await.unwrap_or_default();
                let message: String = body.chars().take(200).collect();
                Err(ApiCallError::Status {
                    status: status.as_u16(),
                    message,
                })
            }
        }
    }
}

/// Percent-encodes a path segment (uuids are plain, but an event may carry anything).
fn urlencode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_key_is_preferred_to_an_access_token_and_empty_values_do_not_count() {
        let mut args = ServiceM8Args::default();
        assert!(args.credentials().is_none());
        args.servicem8_access_token = Some(Secret::new("token"));
        assert!(matches!(args.credentials(), Some(Credentials::AccessToken(_))));
        args.servicem8_api_key = Some(Secret::new(""));
        assert!(matches!(args.credentials(), Some(Credentials::AccessToken(_))));
        args.servicem8_api_key = Some(Secret::new("key"));
        assert!(matches!(args.credentials(), Some(Credentials::ApiKey(_))));
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(urlencode("a1b2-c3"), "a1b2-c3");
        assert_eq!(urlencode("../x y"), "..%2Fx%20y");
    }
}
