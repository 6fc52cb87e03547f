//! `GET /metrics`: what `metrics` recorded, and the store's gauges read at scrape time, in the Prometheus text
//! format; open unless `METRICS_TOKEN` is set.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::secrets_match;
use crate::backend::ServerBackend;
use crate::error::ApiError;
use crate::metrics::{recorder, set_log_bytes, set_store_gauges};
use crate::secret::Secret;

/// The text exposition format Prometheus scrapes.
const EXPOSITION_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`, open unless `token` is set (empty counts as unset); installs the process's recorder if no
/// server has yet.
pub fn router(backend: Arc<ServerBackend>, token: Option<Secret>) -> Router {
    let state = MetricsState {
        backend,
        token: token.filter(|token| !token.expose().trim().is_empty()),
        handle: recorder(),
    };
    Router::new().route("/metrics", get(render_metrics)).with_state(state)
}

#[derive(Clone)]
struct MetricsState {
    backend: Arc<ServerBackend>,
    token: Option<Secret>,
    handle: PrometheusHandle,
}

async fn render_metrics(State(state): State<MetricsState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = &state.token {
        if !bearer_token(&headers).is_some_and(|candidate| secrets_match(candidate, token.expose())) {
            return Err(ApiError::Unauthorized(
                "metrics require Authorization: Bearer <METRICS_TOKEN>".into(),
            ));
        }
    }
    let healths = state.backend.health_by_account().await?;
    let text = {
        // The store's gauges are process-wide; setting and rendering them in one step keeps two servers in one
        // process (as in the tests) from showing each other's values.
        static SCRAPE: Mutex<()> = Mutex::new(());
        let _scrape = SCRAPE.lock().unwrap_or_else(PoisonError::into_inner);
        for (account, health) in &healths {
            set_store_gauges(account, health);
        }
        set_log_bytes(state.backend.store_log_bytes());
        state.handle.render()
    };
    Ok(([(header::CONTENT_TYPE, EXPOSITION_CONTENT_TYPE)], text).into_response())
}

/// The token of an `Authorization: Bearer <token>` header; HTTP treats the scheme name case-insensitively.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_bearer_token_is_read_from_the_authorization_header() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            headers
        };
        assert_eq!(bearer_token(&with("Bearer s3cret")), Some("s3cret"));
        assert_eq!(bearer_token(&with("bearer  s3cret ")), Some("s3cret"));
        assert_eq!(bearer_token(&with("Basic czNjcmV0")), None);
        assert_eq!(bearer_token(&with("Bearer ")), None);
        assert_eq!(bearer_token(&with("s3cret")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
