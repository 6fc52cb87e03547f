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
use app::api::DashboardBackend;
use app::portal::api::{portal_session_cookie, PORTAL_SESSION_TTL_SECONDS};
use app::portal::model::{PortalActivity, PortalAttachment, PortalJob};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{random_token, token_hash};
use crate::ingest::payload::parse_timestamp;
use crate::realtime::args::parse_ttl;
use crate::startup::AppState;
use crate::store::mirror::text_field;
use crate::store::DatabaseArgs;
use crate::store::{self, millis_to_rfc3339, now_millis, Store, StoreError};

/// `sm8-webhooks portal-link`: prints a one-time link that opens the portal for one company.
#[derive(Debug, Clone, Args)]
pub struct PortalLinkArgs {
    /// The ServiceM8 uuid of the company whose jobs the link shows.
    #[arg(long)]
    pub company: String,

    /// How long the link stays usable: seconds, or a number with s, m, h or d (e.g. 12h, 7d).
    #[arg(long, default_value = "7d", value_parser = parse_ttl)]
    pub ttl: Duration,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Origin under which users reach the server (default http://BIND).
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The address `serve` listens on, for the default public URL.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,
}

impl PortalLinkArgs {
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.bind))
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
    let link = create_link(store.as_ref(), company_uuid, ttl_ms, &args.public_url(), now_millis())
        .await
        .context("storing the portal link")?;
    println!("{}", link.url);
    eprintln!(
        "Opens the portal for company {company_uuid} once, until {} (UTC).",
        millis_to_rfc3339(link.expires_at)
    );
    Ok(())
}

/// A stored portal link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalLink {
    /// `{public_url}/portal/enter?token=...`
    pub url: String,
    pub token: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// Stores a new one-time link for `company_uuid`, valid for `ttl_ms` from `now`.
pub async fn create_link(
    store: &dyn Store,
    company_uuid: &str,
    ttl_ms: i64,
    public_url: &str,
    now: i64,
) -> Result<PortalLink, StoreError> {
    let token = random_token();
    let expires_at = now.saturating_add(ttl_ms);
    store
        .create_portal_link(&token_hash(&token), company_uuid, expires_at)
        .await?;
    Ok(PortalLink {
        url: format!("{}/portal/enter?token={token}", public_url.trim_end_matches('/')),
        token,
        expires_at,
    })
}

/// Uses up a link: a new session token for its company, or `None` when the link is unknown, used or expired.
pub async fn redeem_link(store: &dyn Store, token: &str, now: i64) -> Result<Option<String>, StoreError> {
    let Some(company_uuid) = store.redeem_portal_link(&token_hash(token), now).await? else {
        return Ok(None);
    };
    let session = random_token();
    let expires_at = now + PORTAL_SESSION_TTL_SECONDS * 1000;
    store
        .create_portal_session(&token_hash(&session), &company_uuid, expires_at)
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
async fn enter_portal(State(state): State<AppState>, headers: HeaderMap, Query(query): Query<EnterQuery>) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json") && !accept.contains("text/html"));
    let Some(token) = query.token.as_deref().map(str::trim).filter(|token| !token.is_empty()) else {
        return refusal(StatusCode::BAD_REQUEST, LinkProblem::Incomplete, wants_json);
    };
    match redeem_link(state.store.as_ref(), token, now_millis()).await {
        Ok(Some(session)) => {
            let cookie = portal_session_cookie(&session, PORTAL_SESSION_TTL_SECONDS, state.backend.secure_cookies());
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
}

impl LinkProblem {
    fn title(self) -> &'static str {
        match self {
            LinkProblem::Incomplete => "This link is incomplete",
            LinkProblem::Spent => "This link cannot be used again",
            LinkProblem::Unavailable => "The portal is unavailable right now",
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

/// A field as trimmed text, absent when empty.
fn text(record: &Value, field: &str) -> Option<String> {
    text_field(record, field)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// A ServiceM8 date (`YYYY-MM-DD HH:MM:SS`, or RFC 3339) as RFC 3339 UTC; ServiceM8's `0000-00-00 00:00:00`
/// and anything unreadable as absent.
fn time(record: &Value, field: &str) -> Option<String> {
    text(record, field)
        .and_then(|value| parse_timestamp(&value))
        .map(millis_to_rfc3339)
}

/// ServiceM8's flags come as 1/0, "1"/"0" or booleans.
fn flag(record: &Value, field: &str) -> Option<bool> {
    match record.get(field)? {
        Value::Bool(value) => Some(*value),
        Value::Number(number) => number.as_i64().map(|n| n != 0),
        Value::String(text) => match text.trim() {
            "1" | "true" => Some(true),
            "0" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The client's view of a mirrored job; `None` without a uuid.
pub fn job_view(record: &Value) -> Option<PortalJob> {
    Some(PortalJob {
        uuid: text(record, "uuid")?,
        generated_job_id: text(record, "generated_job_id"),
        status: text(record, "status"),
        job_address: text(record, "job_address"),
        job_description: text(record, "job_description"),
        date: time(record, "date"),
        quote_date: time(record, "quote_date"),
        work_order_date: time(record, "work_order_date"),
        completion_date: time(record, "completion_date"),
        total_invoice_amount: text(record, "total_invoice_amount"),
        invoice_sent: flag(record, "invoice_sent"),
        payment_received: flag(record, "payment_received"),
        edit_date: time(record, "edit_date"),
    })
}

/// The client's view of a mirrored job activity, with its staff member's name when known.
pub fn activity_view(record: &Value, staff: Option<&Value>) -> Option<PortalActivity> {
    let staff_name = staff.and_then(|staff| {
        let name = [text(staff, "first"), text(staff, "last")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!name.is_empty()).then_some(name)
    });
    Some(PortalActivity {
        uuid: text(record, "uuid")?,
        start_date: time(record, "start_date"),
        end_date: time(record, "end_date"),
        staff_name,
        scheduled: flag(record, "activity_was_scheduled").unwrap_or(false),
        recorded: flag(record, "activity_was_recorded").unwrap_or(false),
    })
}

/// The client's view of a mirrored attachment.
pub fn attachment_view(record: &Value) -> Option<PortalAttachment> {
    Some(PortalAttachment {
        uuid: text(record, "uuid")?,
        name: text(record, "attachment_name").unwrap_or_else(|| "Untitled file".into()),
        file_type: text(record, "file_type"),
        timestamp: time(record, "timestamp").or_else(|| time(record, "edit_date")),
    })
}

/// Whether a mirrored record is live (ServiceM8 deletes by setting `active` to 0).
pub fn is_active(record: &Value) -> bool {
    flag(record, "active").unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_record_becomes_its_client_view() {
        let record = json!({
            "uuid": "j1", "company_uuid": "c1", "generated_job_id": 1042, "status": "Work Order",
            "job_address": " 1 Harbour St, Sydney ", "job_description": "", "date": "2024-05-01 00:00:00",
            "completion_date": "0000-00-00 00:00:00", "total_invoice_amount": "1250.00", "invoice_sent": "1",
            "payment_received": 0, "edit_date": "2024-05-02 09:30:00", "internal_notes": "not for clients",
        });
        let job = job_view(&record).unwrap();
        assert_eq!(job.generated_job_id.as_deref(), Some("1042"));
        assert_eq!(job.job_address.as_deref(), Some("1 Harbour St, Sydney"));
        assert_eq!(job.job_description, None, "an empty field is absent");
        assert_eq!(job.date.as_deref(), Some("2024-05-01T00:00:00Z"));
        assert_eq!(job.completion_date, None, "ServiceM8's zero date means none");
        assert_eq!((job.invoice_sent, job.payment_received), (Some(true), Some(false)));
        assert_eq!(job.edit_date.as_deref(), Some("2024-05-02T09:30:00Z"));
        assert_eq!(job_view(&json!({"status": "Quote"})), None);
    }

    #[test]
    fn an_activity_names_its_staff_member_and_an_attachment_has_a_name() {
        let activity = json!({"uuid": "a1", "job_uuid": "j1", "start_date": "2024-05-01 08:00:00",
            "end_date": "2024-05-01 10:00:00", "activity_was_scheduled": 1, "activity_was_recorded": "0"});
        let staff = json!({"uuid": "s1", "first": "Ana", "last": "Ng", "email": "ana@example.com"});
        let view = activity_view(&activity, Some(&staff)).unwrap();
        assert_eq!(view.staff_name.as_deref(), Some("Ana Ng"));
        assert!(view.scheduled && !view.recorded);
        assert_eq!(view.start_date.as_deref(), Some("2024-05-01T08:00:00Z"));
        assert_eq!(activity_view(&activity, None).unwrap().staff_name, None);
        let file = attachment_view(&json!({"uuid": "f1", "file_type": ".pdf", "edit_date": "2024-05-01 11:00:00"}));
        let file = file.unwrap();
        assert_eq!(file.name, "Untitled file");
        assert_eq!(file.timestamp.as_deref(), Some("2024-05-01T11:00:00Z"));
    }

    #[test]
    fn deleted_records_are_inactive() {
        assert!(is_active(&json!({"uuid": "j1"})));
        assert!(is_active(&json!({"active": 1})));
        assert!(!is_active(&json!({"active": "0"})));
        assert!(!is_active(&json!({"active": false})));
    }

    #[test]
    fn the_link_origin_defaults_to_the_bind_address() {
        let args = PortalLinkArgs {
            company: "c1".into(),
            ttl: Duration::from_secs(60),
            database: DatabaseArgs {
                database_url: "sqlite::memory:".into(),
            },
            public_url: None,
            bind: "127.0.0.1:3000".parse().unwrap(),
        };
        assert_eq!(args.public_url(), "http://127.0.0.1:3000");
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
        let link = create_link(store.as_ref(), "c1", 60_000, "http://example.test/", now)
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
            store
                .portal_session_company(&token_hash(&session), now)
                .await
                .unwrap()
                .as_deref(),
            Some("c1")
        );
        assert_eq!(
            redeem_link(store.as_ref(), &link.token, now).await.unwrap(),
            None,
            "a second use is refused"
        );
        let late = create_link(store.as_ref(), "c1", 60_000, "http://example.test", now)
            .await
            .unwrap();
        assert_eq!(
            redeem_link(store.as_ref(), &late.token, now + 60_000).await.unwrap(),
            None
        );
        assert_eq!(redeem_link(store.as_ref(), "unknown", now).await.unwrap(), None);
    }
}
