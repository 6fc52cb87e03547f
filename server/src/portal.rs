//! The client portal on the server: one-time links (`sm8-webhooks portal-link`), `GET /portal/enter?token=` that
//! turns a link into a session, and the views of mirrored records a portal user may see.
//!
//! Only SHA-256 hashes of link tokens and session tokens are stored. A link opens one session, once, before it
//! expires; the session is the HttpOnly cookie `sm8_portal_session` (SameSite=Lax, so arriving from an email link
//! keeps it; Secure when the public URL is https) and lasts 30 days. The pages and their server functions live in
//! `app::portal`; the backend methods behind them are in `backend.rs` and build their answers with `job_view`,
//! `activity_view` and `attachment_view` here.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use app::portal::api::PortalBackend;
use app::session::{SessionCookie, PORTAL_SESSION_TTL_SECONDS};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{random_token, token_hash};
use crate::backend::create_link;
use crate::realtime::args::parse_ttl;
use crate::state::AppState;
use crate::store::DatabaseArgs;
use crate::store::{self, millis_to_rfc3339, now_millis, CompanyOf, Store, StoreError, DEFAULT_ACCOUNT};
use crate::throttle::ClientAddress;

/// `sm8-webhooks portal-link`: prints a one-time link that opens the portal for one company.
#[derive(Debug, Clone, Args)]
pub struct PortalLinkArgs {
    /// The ServiceM8 uuid of the company whose jobs the link shows.
    #[arg(long)]
    pub company: String,

    /// The account the company belongs to.
    #[arg(long, default_value = DEFAULT_ACCOUNT)]
    pub account: String,

    /// How long the link stays usable: seconds, or a number with s, m, h or d (e.g. 12h, 7d).
    #[arg(long, default_value = "7d", value_parser = parse_ttl)]
    pub ttl: Duration,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Origin under which users reach the server (default http://BIND, or https://BIND with TLS_CERT).
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The address `serve` listens on, for the default public URL.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    /// The certificate `serve` speaks https with, if any: the default public URL's scheme.
    #[arg(long, env = "TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,
}

impl PortalLinkArgs {
    pub fn public_url(&self) -> String {
        let scheme = if self.tls_cert.is_some() { "https" } else { "http" };
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", self.bind))
            .trim_end_matches('/')
            .to_owned()
    }
}

/// Runs `portal-link`: the URL goes to stdout (for scripts), its validity to stderr.
pub async fn run_cli(args: PortalLinkArgs) -> anyhow::Result<()> {
    let company_uuid = args.company.trim();
    anyhow::ensure!(
        !company_uuid.is_empty(),
        "--company needs the uuid of a ServiceM8 company"
    );
    let store = store::connect(&args.database.database_url)
        .await
        .context("opening the database")?;
    let ttl_ms = i64::try_from(args.ttl.as_millis()).context("the ttl is too long")?;
    anyhow::ensure!(
        store.account(&args.account).await?.is_some(),
        "there is no account {:?}: see `sm8-webhooks account list`",
        args.account
    );
    let company = CompanyOf {
        account: args.account.clone(),
        company_uuid: company_uuid.to_owned(),
    };
    let link = create_link(store.as_ref(), &company, ttl_ms, &args.public_url(), now_millis())
        .await
        .context("storing the portal link")?;
    println!("{}", link.url);
    eprintln!(
        "Opens the portal for company {company_uuid} of account {} once, until {} (UTC).",
        args.account,
        millis_to_rfc3339(link.expires_at)
    );
    Ok(())
}

/// Uses up a link: a new session token for its company, or `None` when the link is unknown, used or expired.
pub async fn redeem_link(store: &dyn Store, token: &str, now: i64) -> Result<Option<String>, StoreError> {
    let Some(company) = store.redeem_portal_link(&token_hash(token), now).await? else {
        return Ok(None);
    };
    let session = random_token();
    let expires_at = now + PORTAL_SESSION_TTL_SECONDS * 1000;
    store
        .create_portal_session(&token_hash(&session), &company, expires_at)
        .await?;
    Ok(Some(session))
}

/// `GET /portal/enter`.
pub fn router() -> Router<AppState> {
    Router::new().route("/portal/enter", get(enter_portal))
}

#[derive(Debug, Deserialize)]
struct EnterQuery {
    token: Option<String>,
}

/// Redeems the link and redirects to `/portal` with the session cookie; a link that cannot be used gets a page
/// (or JSON, when asked for) saying why, never a 500.
async fn enter_portal(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    Query(query): Query<EnterQuery>,
) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json") && !accept.contains("text/html"));
    if let Some(client) = client {
        if let Err(wait) = state.throttles.portal_links.attempt(client) {
            let mut response = refusal(StatusCode::TOO_MANY_REQUESTS, LinkProblem::TooManyAttempts, wants_json);
            response.headers_mut().insert(header::RETRY_AFTER, wait.header_value());
            return response;
        }
    }
    let Some(token) = query.token.as_deref().map(str::trim).filter(|token| !token.is_empty()) else {
        return refusal(StatusCode::BAD_REQUEST, LinkProblem::Incomplete, wants_json);
    };
    match redeem_link(state.store.as_ref(), token, now_millis()).await {
        Ok(Some(session)) => {
            let secure = state.backend.secure_cookies();
            let cookie = SessionCookie::Portal.set_cookie(&session, PORTAL_SESSION_TTL_SECONDS, secure);
            let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/portal")]).into_response();
            let headers = response.headers_mut();
            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                headers.insert(header::SET_COOKIE, cookie);
            }
            // The used token stays out of caches and of the next page's Referer.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            response
        }
        Ok(None) => {
            tracing::info!("a portal link was refused: unknown, used or expired");
            refusal(StatusCode::GONE, LinkProblem::Spent, wants_json)
        }
        Err(error) => {
            tracing::error!(%error, "redeeming a portal link failed");
            refusal(StatusCode::SERVICE_UNAVAILABLE, LinkProblem::Unavailable, wants_json)
        }
    }
}

/// Why a portal link did not open a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkProblem {
    /// No token in the URL.
    Incomplete,
    /// Unknown, already used, or expired: the three look alike on purpose.
    Spent,
    /// The database did not answer; the link is still good.
    Unavailable,
    /// Too many links tried from this address in a minute.
    TooManyAttempts,
}

impl LinkProblem {
    fn title(self) -> &'static str {
        match self {
            LinkProblem::Incomplete => "This link is incomplete",
            LinkProblem::Spent => "This link cannot be used again",
            LinkProblem::Unavailable => "The portal is unavailable right now",
            LinkProblem::TooManyAttempts => "Too many links tried",
        }
    }

    fn explanation(self) -> &'static str {
        match self {
            LinkProblem::Incomplete => {
                "Part of the link seems to be missing. Copy the whole link from your message and try again."
            }
            LinkProblem::Spent => {
                "Each portal link works once and only for a limited time. If you have already opened it, go to \
                 your jobs; otherwise ask your contact for a new link."
            }
            LinkProblem::Unavailable => "Your link still works: please try it again in a minute.",
            LinkProblem::TooManyAttempts => {
                "Too many portal links were opened from your network in the last minute. Your link still works: \
                 please try it again in a minute."
            }
        }
    }
}

fn refusal(status: StatusCode, problem: LinkProblem, wants_json: bool) -> Response {
    if wants_json {
        return (
            status,
            Json(json!({ "error": problem.title(), "detail": problem.explanation() })),
        )
            .into_response();
    }
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Client portal</title>\
         <link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/pkg/{css}.css\"></head>\
         <body><header class=\"portal-header\"><div class=\"portal-brand\"><a href=\"/portal\">Client portal</a></div>\
         </header><main class=\"portal-main\"><section class=\"portal-message\"><h1>{title}</h1><p>{text}</p>\
         <p><a href=\"/portal\">Go to your jobs</a></p></section></main></body></html>",
        title = problem.title(),
        text = problem.explanation(),
        css = app::OUTPUT_NAME,
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_origin_defaults_to_the_bind_address() {
        let args = PortalLinkArgs {
            company: "c1".into(),
            account: DEFAULT_ACCOUNT.into(),
            ttl: Duration::from_secs(60),
            database: DatabaseArgs {
                database_url: "sqlite::memory:".into(),
            },
            public_url: None,
            bind: "127.0.0.1:3000".parse().unwrap(),
            tls_cert: None,
        };
        assert_eq!(args.public_url(), "http://127.0.0.1:3000");
        let args = PortalLinkArgs {
            tls_cert: Some("cert.pem".into()),
            ..args
        };
        assert_eq!(args.public_url(), "https://127.0.0.1:3000", "serve speaks https itself");
        let args = PortalLinkArgs {
            public_url: Some("https://portal.example.com/".into()),
            ..args
        };
        assert_eq!(args.public_url(), "https://portal.example.com");
    }

    #[tokio::test]
    async fn a_link_opens_one_session_once_and_not_after_it_expires() {
        let store = store::connect("sqlite::memory:").await.unwrap();
        let now = now_millis();
        let company = CompanyOf {
            account: "acme".into(),
            company_uuid: "c1".into(),
        };
        let link = create_link(store.as_ref(), &company, 60_000, "http://example.test/", now)
            .await
            .unwrap();
        assert_eq!(
            link.url,
            format!("http://example.test/portal/enter?token={}", link.token)
        );
        let session = redeem_link(store.as_ref(), &link.token, now)
            .await
            .unwrap()
            .expect("a first use opens a session");
        assert_eq!(
            store.portal_session_company(&token_hash(&session), now).await.unwrap(),
            Some(company.clone()),
            "the session opens the link's company of the link's account"
        );
        assert_eq!(
            redeem_link(store.as_ref(), &link.token, now).await.unwrap(),
            None,
            "a second use is refused"
        );
        let late = create_link(store.as_ref(), &company, 60_000, "http://example.test", now)
            .await
            .unwrap();
        assert_eq!(
            redeem_link(store.as_ref(), &late.token, now + 60_000).await.unwrap(),
            None
        );
        assert_eq!(redeem_link(store.as_ref(), "unknown", now).await.unwrap(), None);
    }
}
