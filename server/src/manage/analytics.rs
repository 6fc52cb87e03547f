//! The analytics of the management API: `GET /api/webhooks/management/analytics` (a report: buckets of one
//! dimension over a range, its totals and the previous period's) and `GET …/analytics/export` (the same as a CSV
//! or JSON download, audited), and `…/analytics/digest` (read, or set by an admin: where and how often the
//! account's digest goes). Any member of the account reads them; the backend checks the role.

use app::analytics::api::AnalyticsBackend;
use app::analytics::model::{
    AnalyticsDigest, AnalyticsDimension, AnalyticsQuery, AnalyticsRange, AnalyticsReport, DigestCadence,
};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Authorized;
use crate::backend::ExportFormat;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(read_analytics))
        .routes(routes!(export_analytics))
        .routes(routes!(read_digest, set_digest))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AnalyticsParameters {
    /// `24h` (the default, by hour), `7d` (by hour), `30d`, `90d` (by day) or `custom`.
    range: Option<String>,
    /// `range=custom`: the first hour or day, an RFC 3339 time or a `YYYY-MM-DD` date (UTC).
    from: Option<String>,
    /// `range=custom`: the end, an RFC 3339 time (excluded) or a `YYYY-MM-DD` date (included).
    to: Option<String>,
    /// What the buckets count: `outcome` (the default), `object_type`, `event_type`, `error_class` or
    /// `destination`.
    dimension: Option<String>,
}

impl AnalyticsParameters {
    fn query(self) -> Result<AnalyticsQuery, ApiError> {
        let range = match self.range.as_deref() {
            None => AnalyticsRange::default(),
            Some(name) => AnalyticsRange::parse(name).ok_or_else(|| {
                ApiError::BadRequest(format!("unknown range {name:?}: expected 24h, 7d, 30d, 90d or custom"))
            })?,
        };
        let dimension = match self.dimension.as_deref() {
            None => AnalyticsDimension::default(),
            Some(name) => AnalyticsDimension::parse(name).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "unknown dimension {name:?}: expected outcome, object_type, event_type, error_class or destination"
                ))
            })?,
        };
        Ok(AnalyticsQuery {
            range,
            from: self.from,
            to: self.to,
            dimension,
        })
    }
}

fn parameters(parameters: Result<Query<AnalyticsParameters>, QueryRejection>) -> Result<AnalyticsParameters, ApiError> {
    parameters
        .map(|Query(parameters)| parameters)
        .map_err(|rejection| ApiError::BadRequest(rejection.to_string()))
}

/// `?range=7d&dimension=error_class`, `?range=custom&from=2026-01-01&to=2026-01-31`, ...
#[utoipa::path(
    get,
    path = "/api/webhooks/management/analytics",
    operation_id = "analytics_read",
    tag = "management",
    summary = "Read the account's analytics over a range, by one dimension, beside the previous period",
    params(
        AnalyticsParameters,
        ("account" = Option<String>, Query, description = "The account to read (default: the token's own, the \
                                                            session's chosen one, or `default`)"),
    ),
    security(("bearer" = []), ("dashboard_session" = [])),
    responses(
        (status = 200, description = "The report", body = AnalyticsReport),
        (status = 400, description = "Unknown range or dimension, or a malformed custom range", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The caller is no member of the account", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this client; see Retry-After", body = ErrorBody),
        (status = 503, description = "Storage unavailable; see Retry-After", body = ErrorBody),
    )
)]
async fn read_analytics(
    Authorized(access): Authorized,
    State(state): State<AppState>,
    query: Result<Query<AnalyticsParameters>, QueryRejection>,
) -> Result<Json<AnalyticsReport>, ApiError> {
    let query = parameters(query)?.query()?;
    Ok(Json(state.backend.analytics_report(&access, &query).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ExportParameters {
    /// `csv` (one row per bucket: its start, the dimension's counts, the latency percentiles) or `json` (the
    /// report).
    #[param(required = true)]
    format: Option<String>,
}

/// `?format=csv&range=30d&dimension=object_type`: what the report shows, as a download.
#[utoipa::path(
    get,
    path = "/api/webhooks/management/analytics/export",
    operation_id = "analytics_export",
    tag = "management",
    summary = "Download the account's analytics over a range as CSV or JSON (audited)",
    params(
        ExportParameters,
        AnalyticsParameters,
        ("account" = Option<String>, Query, description = "The account to read (default: the token's own, the \
                                                            session's chosen one, or `default`)"),
    ),
    security(("bearer" = []), ("dashboard_session" = [])),
    responses(
        (status = 200, description = "The report as a download: `text/csv` or `application/json`",
            content((String = "text/csv"), (AnalyticsReport = "application/json"))),
        (status = 400, description = "Missing or unknown format, unknown range or dimension, or a malformed custom \
                                      range", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The caller is no member of the account", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this client; see Retry-After", body = ErrorBody),
        (status = 503, description = "Storage unavailable; see Retry-After", body = ErrorBody),
    )
)]
async fn export_analytics(
    Authorized(access): Authorized,
    State(state): State<AppState>,
    export: Result<Query<ExportParameters>, QueryRejection>,
    query: Result<Query<AnalyticsParameters>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(export) = export.map_err(|rejection| ApiError::BadRequest(rejection.to_string()))?;
    let format = match export.format.as_deref() {
        Some("csv") => ExportFormat::Csv,
        Some("json") => ExportFormat::Json,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "unknown format {other:?}: expected csv or json"
            )))
        }
        None => return Err(ApiError::BadRequest("missing format: expected csv or json".into())),
    };
    let query = parameters(query)?.query()?;
    let body = state.backend.export_analytics(&access, &query, format).await?;
    let content_type = match format {
        ExportFormat::Csv => "text/csv; charset=utf-8",
        ExportFormat::Json => "application/json",
    };
    let file = format!(
        "attachment; filename=\"analytics-{}-{}-{}.{}\"",
        access
            .account
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_', "_"),
        query.range.as_str(),
        query.dimension.as_str(),
        format.as_str()
    );
    Ok((
        [(CONTENT_TYPE, content_type.to_owned()), (CONTENT_DISPOSITION, file)],
        body,
    )
        .into_response())
}

/// An account's digest, or none.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct DigestAnswer {
    digest: Option<AnalyticsDigest>,
}

/// The digest to send: to `destination_id`, `daily` or `weekly`; without a destination, none.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct DigestChange {
    destination_id: Option<String>,
    cadence: Option<DigestCadence>,
}

#[utoipa::path(
    get,
    path = "/api/webhooks/management/analytics/digest",
    operation_id = "analytics_digest_read",
    tag = "management",
    summary = "Read where and how often the account's analytics digest goes",
    params(
        ("account" = Option<String>, Query, description = "The account to read (default: the token's own, the \
                                                            session's chosen one, or `default`)"),
    ),
    security(("bearer" = []), ("dashboard_session" = [])),
    responses(
        (status = 200, description = "The account's digest, null when it has none", body = DigestAnswer),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The caller is no member of the account", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this client; see Retry-After", body = ErrorBody),
        (status = 503, description = "Storage unavailable; see Retry-After", body = ErrorBody),
    )
)]
async fn read_digest(
    Authorized(access): Authorized,
    State(state): State<AppState>,
) -> Result<Json<DigestAnswer>, ApiError> {
    let digest = state.backend.analytics_digest(&access).await?;
    Ok(Json(DigestAnswer { digest }))
}

/// `{"destination_id": "…", "cadence": "weekly"}` sends the digest there each week; `{}` stops it.
#[utoipa::path(
    post,
    path = "/api/webhooks/management/analytics/digest",
    operation_id = "analytics_digest_set",
    tag = "management",
    summary = "Send the account's analytics digest to a destination daily or weekly, or stop it (admin; audited)",
    params(
        ("account" = Option<String>, Query, description = "The account to change (default: the token's own, the \
                                                            session's chosen one, or `default`)"),
    ),
    request_body = DigestChange,
    security(("bearer" = []), ("dashboard_session" = [])),
    responses(
        (status = 200, description = "The account's digest as it now is", body = DigestAnswer),
        (status = 400, description = "Malformed body, a destination without a cadence, or a destination the \
                                      account does not have", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The caller is no admin of the account", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this client; see Retry-After", body = ErrorBody),
        (status = 503, description = "Storage unavailable; see Retry-After", body = ErrorBody),
    )
)]
async fn set_digest(
    Authorized(access): Authorized,
    State(state): State<AppState>,
    change: Result<Json<DigestChange>, JsonRejection>,
) -> Result<Json<DigestAnswer>, ApiError> {
    let Json(change) = change.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let digest = match (change.destination_id, change.cadence) {
        (Some(destination_id), Some(cadence)) => Some(AnalyticsDigest {
            destination_id,
            cadence,
        }),
        (Some(_), None) => return Err(ApiError::BadRequest("a digest needs a cadence: daily or weekly".into())),
        (None, _) => None,
    };
    let digest = state.backend.set_analytics_digest(&access, digest).await?;
    Ok(Json(DigestAnswer { digest }))
}
