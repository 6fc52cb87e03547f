//! `GET /portal/attachments/{uuid}`: a portal user downloads an attachment of one of their company's jobs. The
//! mirror says which job it belongs to; the bytes come from ServiceM8 (`/Attachment/{uuid}.file`) on each request,
//! through the shared request budget, and are never kept.
//!
//! Attachments are whatever someone uploaded to ServiceM8, so they are always served as downloads, never rendered
//! on this origin: `Content-Disposition: attachment`, `nosniff`, and a sandboxing content security policy.

use app::portal::api::PortalBackend;
use app::session::SessionCookie;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::servicem8::client::ApiCallError;
use crate::state::AppState;
use crate::store::mirror::text_field;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(download_attachment))
}

#[utoipa::path(
    get,
    path = "/portal/attachments/{uuid}",
    tag = "portal",
    summary = "Download an attachment of one of the portal company's jobs",
    params(("uuid" = String, Path, description = "The attachment's ServiceM8 uuid")),
    security(("portal_session" = [])),
    responses(
        (status = 200, description = "The file, as a download", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, description = "No portal session, or it has ended", body = ErrorBody),
        (status = 404, description = "No such attachment among the company's jobs", body = ErrorBody),
        (status = 502, description = "ServiceM8 did not return the file", body = ErrorBody),
        (status = 503, description = "The ServiceM8 request budget is spent, or no credentials; see Retry-After", body = ErrorBody),
    )
)]
async fn download_attachment(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    let session = SessionCookie::Portal
        .value_in(&headers)
        .ok_or_else(|| ApiError::Unauthorized("sign in to the portal first".into()))?;
    let company = state
        .backend
        .portal_session_company(session)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the portal session has ended: open a new link".into()))?;
    // Another company's attachment and one that does not exist answer alike.
    let not_found = || ApiError::NotFound(format!("no attachment {uuid}"));
    let account = company.account.as_str();
    let record = state
        .store
        .mirror_record(account, "attachment", &uuid)
        .await?
        .ok_or_else(not_found)?;
    let active = text_field(&record, "active").as_deref() != Some("0");
    let job = text_field(&record, "related_object_uuid")
        .filter(|_| active)
        .ok_or_else(not_found)?;
    if state.store.job_company(account, &job).await?.as_deref() != Some(company.company_uuid.as_str()) {
        return Err(not_found());
    }
    let client = state
        .accounts
        .get(account)
        .and_then(|account| account.client.clone())
        .ok_or_else(|| {
            ApiError::Unavailable("the account has no ServiceM8 credentials: attachment files cannot be fetched".into())
        })?;
    let file = match client.fetch_attachment_file(&uuid).await {
        Ok(Some(file)) => file,
        Ok(None) => return Err(not_found()),
        Err(ApiCallError::BudgetExhausted { .. } | ApiCallError::RateLimited { .. }) => {
            return Err(ApiError::Unavailable(
                "the ServiceM8 request budget is spent for now; try again in a minute".into(),
            ))
        }
        Err(error) => {
            tracing::warn!(%error, attachment = %uuid, "fetching an attachment file failed");
            return Err(ApiError::BadGateway(format!(
                "ServiceM8 did not return the file: {error}"
            )));
        }
    };
    let name = text_field(&record, "attachment_name").unwrap_or_else(|| uuid.clone());
    let content_type = file
        .content_type
        .as_deref()
        .and_then(|value| HeaderValue::from_str(value).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let disposition =
        HeaderValue::from_str(&content_disposition(&name)).unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox; default-src 'none'"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
        ],
        file.bytes,
    )
        .into_response())
}

/// `attachment` with the name twice: a plain ASCII fallback, and the exact name percent-encoded (RFC 6266).
fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_keeps_its_name_quoted_safely_and_exactly_encoded() {
        assert_eq!(
            content_disposition("Photo 12.jpg"),
            "attachment; filename=\"Photo 12.jpg\"; filename*=UTF-8''Photo%2012.jpg"
        );
        assert_eq!(
            content_disposition("a\"b\\c é.pdf"),
            "attachment; filename=\"a_b_c _.pdf\"; filename*=UTF-8''a%22b%5Cc%20%C3%A9.pdf"
        );
    }
}
