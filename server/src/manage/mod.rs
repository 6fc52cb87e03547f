//! The management API, `/api/webhooks/management`: `Authorization: Bearer` with the instance's `ADMIN_TOKEN` or a
//! personal API token, or a dashboard session. `?account=` names the account (default: the token's own, the
//! session's chosen one, or `default` for `ADMIN_TOKEN`); the role each action needs is checked by the backend,
//! which the dashboard's server functions share. Reads are `GET ?action=…` (here); changes are `POST {"action": …}`
//! (`actions.rs`).

mod actions;
mod analytics;
mod answers;

use app::access::Access;
use app::alerts::api::AlertsBackend;
use app::api::DashboardBackend;
use app::directory::api::DirectoryBackend;
use app::directory::model::AuditFilter;
use app::error::AppError;
use app::model::{EventQuery, EventStatus};
use app::outbound::api::OutboundBackend;
use app::outbound::model::DeliveryQuery;
use app::session::SessionCookie;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::backend::Caller;
use crate::error::{bad_request, ApiError, ErrorBody};
use crate::state::AppState;
use crate::throttle::client_address;
use answers::{Accounts, AlertList, Destinations, Members, Minutes, ReadAnswer, Rules, Subscriptions, Tokens};

/// The largest management request body: an action is a few fields.
pub const MAX_ACTION_BYTES: usize = 64 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(query_management, actions::act))
        .merge(analytics::router())
        .layer(DefaultBodyLimit::max(MAX_ACTION_BYTES))
}

/// `access`, unless the request named another account than the one it opens: a caller who is no member of the
/// account asked for is refused rather than answered about one of their own.
fn named_account(access: Access, named: Option<&str>) -> Result<Authorized, ApiError> {
    match named {
        Some(named) if named != access.account => {
            Err(AppError::Forbidden(format!("you have no access to account {named}")).into())
        }
        _ => Ok(Authorized(access)),
    }
}

/// The caller's access to the account the request names; take it as a handler argument to require one.
pub struct Authorized(pub Access);

#[derive(Deserialize)]
struct AccountParameter {
    account: Option<String>,
}

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let account = Query::<AccountParameter>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|Query(parameter)| parameter.account)
            .filter(|account| !account.trim().is_empty());
        let client = client_address(&parts.extensions);
        let address = client.map(|client| client.to_string());
        if let Some(authorization) = parts.headers.get(AUTHORIZATION) {
            // A client that sent too many wrong tokens is refused whatever it sends now.
            if let Some(client) = client {
                state
                    .throttles
                    .bearer_tokens
                    .admit(&client)
                    .map_err(ApiError::TooManyRequests)?;
            }
            let token = authorization
                .to_str()
                .ok()
                .and_then(|value| value.strip_prefix("Bearer "))
                .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <token>".into()))?;
            let caller = Caller::Bearer(token.trim().to_owned());
            return match state.backend.access_for(&caller, account.as_deref(), address).await {
                Ok(access) => named_account(access, account.as_deref()),
                Err(AppError::InvalidAdminToken) => {
                    if let Some(client) = client {
                        state
                            .throttles
                            .bearer_tokens
                            .failed(&client)
                            .map_err(ApiError::TooManyRequests)?;
                    }
                    Err(ApiError::Unauthorized("invalid token".into()))
                }
                Err(error) => Err(error.into()),
            };
        }
        if let Some(session) = SessionCookie::Admin.value_in(&parts.headers) {
            // The account cookie is a preference, which falls back to another of the caller's accounts; an
            // account named in the request is not.
            let chosen = account
                .clone()
                .or_else(|| SessionCookie::Account.value_in(&parts.headers).map(str::to_owned));
            let caller = Caller::Session(session.to_owned());
            let access = state.backend.access_for(&caller, chosen.as_deref(), address).await?;
            return named_account(access, account.as_deref());
        }
        Err(ApiError::Unauthorized(
            "authentication required: send Authorization: Bearer <ADMIN_TOKEN or API token>".into(),
        ))
    }
}

/// What a read asks for.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum ReadAction {
    Stats,
    Health,
    Throughput,
    Events,
    Event,
    Audit,
    Accounts,
    Account,
    Members,
    Tokens,
    Subscriptions,
    Rules,
    Destinations,
    Deliveries,
    Delivery,
    Alerts,
    AlertHistory,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ManagementQuery {
    /// What to read.
    #[param(required = true, inline)]
    action: Option<ReadAction>,
    /// `action=events`: queued, processing, success, failed, skipped or all.
    status: Option<String>,
    object_type: Option<String>,
    event_type: Option<String>,
    /// Part of an object uuid, or an event id.
    #[serde(alias = "uuid")]
    search: Option<String>,
    /// RFC 3339: received (or audited) at or after.
    from: Option<String>,
    /// RFC 3339: received (or audited) before.
    to: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
    /// The event of `action=event`, the delivery of `action=delivery`.
    #[serde(alias = "eventId")]
    id: Option<String>,
    /// `action=deliveries`: one destination's.
    #[serde(rename = "destinationId", alias = "destination_id")]
    destination_id: Option<String>,
    /// `action=deliveries`: those one event caused.
    event: Option<String>,
    /// `action=audit`: the action, actor and outcome to show.
    #[serde(rename = "auditAction", alias = "audit_action")]
    audit_action: Option<String>,
    actor: Option<String>,
    outcome: Option<String>,
}

const ACTIONS: &str = "stats, health, throughput, events, event, audit, accounts, account, members, tokens, \
     subscriptions, rules, destinations, deliveries, delivery, alerts or alert_history";

/// `?action=stats`, `?action=events&status=...&limit=...`, `?action=audit`, ...
#[utoipa::path(
    get,
    path = "/api/webhooks/management",
    operation_id = "management_read",
    tag = "management",
    summary = "Read the pipeline, the account, its members, tokens, subscriptions or audit log",
    params(
        ManagementQuery,
        ("account" = Option<String>, Query, description = "The account to read (default: the token's own, the \
                                                            session's chosen one, or `default`)"),
    ),
    security(("bearer" = []), ("dashboard_session" = [])),
    responses(
        (status = 200, description = "The answer of the action asked for", body = ReadAnswer),
        (status = 400, description = "Unknown action or malformed parameter", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The caller's role or account does not allow it", body = ErrorBody),
        (status = 404, description = "No such event or account", body = ErrorBody),
        (status = 409, description = "Subscriptions: the account has no ServiceM8 credentials", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this client; see Retry-After", body = ErrorBody),
        (status = 502, description = "Subscriptions: ServiceM8 did not answer usefully", body = ErrorBody),
        (status = 503, description = "Storage unavailable; see Retry-After", body = ErrorBody),
    )
)]
async fn query_management(
    Authorized(access): Authorized,
    State(state): State<AppState>,
    query: Result<Query<ManagementQuery>, QueryRejection>,
) -> Result<Json<ReadAnswer>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::BadRequest(format!("{rejection}: expected {ACTIONS}")))?;
    let backend = state.backend.as_ref();
    let action = query
        .action
        .ok_or_else(|| ApiError::BadRequest(format!("missing action: expected {ACTIONS}")))?;
    let answer = match action {
        ReadAction::Stats => ReadAnswer::Stats(DashboardBackend::stats(backend, &access).await?),
        ReadAction::Health => ReadAnswer::Health(backend.pipeline_health(&access).await?),
        ReadAction::Throughput => ReadAnswer::Throughput(Minutes {
            minutes: backend.minute_buckets(&access).await?,
        }),
        ReadAction::Events => {
            ReadAnswer::Events(DashboardBackend::list_events(backend, &access, event_query(&query)?).await?)
        }
        ReadAction::Event => {
            let id = query
                .id
                .as_deref()
                .ok_or_else(|| ApiError::BadRequest("action=event needs id".into()))?;
            ReadAnswer::Event(backend.event_detail(&access, id).await?)
        }
        ReadAction::Audit => ReadAnswer::Audit(backend.audit(&access, audit_filter(&query)?).await?),
        ReadAction::Accounts => ReadAnswer::Accounts(Accounts {
            accounts: backend.accounts_overview(&access).await?,
        }),
        ReadAction::Account => ReadAnswer::Account(backend.account(&access).await?),
        ReadAction::Members => ReadAnswer::Members(Members {
            members: backend.members(&access).await?,
        }),
        ReadAction::Tokens => ReadAnswer::Tokens(Tokens {
            tokens: backend.tokens(&access).await?,
        }),
        ReadAction::Subscriptions => ReadAnswer::Subscriptions(Subscriptions {
            subscriptions: backend.subscriptions(&access).await?,
        }),
        ReadAction::Rules => ReadAnswer::Rules(Rules {
            rules: OutboundBackend::rules(backend, &access).await?,
        }),
        ReadAction::Destinations => ReadAnswer::Destinations(Destinations {
            destinations: backend.destinations(&access).await?,
        }),
        ReadAction::Deliveries => {
            let query = DeliveryQuery {
                destination_id: query.destination_id.clone(),
                status: query.status.clone(),
                event_id: query.event.clone(),
                cursor: query.cursor.clone(),
                limit: limit_param(&query.limit)?,
            };
            ReadAnswer::Deliveries(backend.deliveries(&access, query).await?)
        }
        ReadAction::Delivery => {
            let id = query
                .id
                .as_deref()
                .ok_or_else(|| ApiError::BadRequest("action=delivery needs id".into()))?;
            ReadAnswer::Delivery(backend.delivery_detail(&access, id).await?)
        }
        ReadAction::Alerts => ReadAnswer::Alerts(AlertList {
            alerts: backend.alerts(&access).await?,
        }),
        ReadAction::AlertHistory => {
            let before = match query.cursor.as_deref() {
                None | Some("") => None,
                Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| {
                    ApiError::BadRequest("cursor: expected the `next` of the page before (a number)".into())
                })?),
            };
            let limit = limit_param(&query.limit)?.unwrap_or(0);
            ReadAnswer::AlertHistory(backend.alert_history(&access, before, limit).await?)
        }
    };
    Ok(Json(answer))
}

fn event_query(query: &ManagementQuery) -> Result<EventQuery, ApiError> {
    let status = match query.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(name) => Some(name.parse::<EventStatus>().map_err(bad_request)?),
    };
    let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    Ok(EventQuery {
        status,
        object_type: non_empty(&query.object_type).map(|t| crate::ingest::payload::canonical_object_type(&t)),
        event_type: non_empty(&query.event_type),
        search: non_empty(&query.search),
        received_from: time_param("from", &query.from)?,
        received_to: time_param("to", &query.to)?,
        cursor: non_empty(&query.cursor),
        limit: limit_param(&query.limit)?,
    })
}

fn audit_filter(query: &ManagementQuery) -> Result<AuditFilter, ApiError> {
    time_param("from", &query.from)?;
    time_param("to", &query.to)?;
    let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    Ok(AuditFilter {
        action: non_empty(&query.audit_action),
        actor: non_empty(&query.actor),
        outcome: non_empty(&query.outcome),
        from: non_empty(&query.from),
        to: non_empty(&query.to),
        cursor: non_empty(&query.cursor),
        limit: limit_param(&query.limit)?,
    })
}

fn limit_param(limit: &Option<String>) -> Result<Option<u32>, ApiError> {
    match limit.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse::<u32>()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("limit must be a positive number, not {text:?}"))),
    }
}

/// An RFC 3339 (or ServiceM8 date) query parameter as unix milliseconds.
fn time_param(name: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => crate::ingest::payload::parse_timestamp(text)
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest(format!("{name} must be an RFC 3339 time, not {text:?}"))),
    }
}
