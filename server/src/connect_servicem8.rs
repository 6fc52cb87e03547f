//! `GET /oauth/servicem8/callback`: where ServiceM8 sends the browser back after an owner connected an account
//! ("Connect ServiceM8" on the account page). The `state` it carries must be one this server issued, unused and
//! unexpired (OAuth's defence against forged callbacks); the code is exchanged for tokens, which are sealed into
//! the account. The browser lands on the accounts page, told how it went.

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::state::AppState;
use crate::throttle::ClientAddress;

/// Where ServiceM8 returns the browser; `ServerBackend::oauth_redirect_uri` names the same path.
pub const CALLBACK_PATH: &str = "/oauth/servicem8/callback";

pub fn router() -> Router<AppState> {
    Router::new().route(CALLBACK_PATH, get(oauth_callback))
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// Set instead of a code when the user declined or ServiceM8 failed.
    error: Option<String>,
    error_description: Option<String>,
}

async fn oauth_callback(
    State(app): State<AppState>,
    ClientAddress(client): ClientAddress,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let outcome = match (&query.code, &query.state, &query.error) {
        (_, _, Some(error)) => Err(format!(
            "ServiceM8 did not connect the account: {}",
            query.error_description.as_deref().unwrap_or(error)
        )),
        (Some(code), Some(state), None) => app
            .backend
            .finish_oauth(state, code, client.map(|client| client.to_string()))
            .await
            .map_err(|error| error.to_string()),
        _ => Err("the ServiceM8 callback lacks its code or state".into()),
    };
    let location = match outcome {
        Ok(account) => format!("/admin/accounts?account={account}&oauth=connected"),
        Err(reason) => {
            tracing::warn!(%reason, "a ServiceM8 OAuth connection failed");
            let reason: String = form_urlencoded::byte_serialize(reason.as_bytes()).collect();
            format!("/admin/accounts?oauth_error={reason}")
        }
    };
    // Not a redirect: this request comes from ServiceM8's site, so a redirect from it would be cross-site too and
    // the browser would leave out the SameSite=Strict session cookie. A page of our own moving on is same-site.
    // `location` holds only URL-safe characters and `&`.
    let location = location.replace('&', "&amp;");
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={location}\"><title>ServiceM8 · SM8 Webhooks</title></head>\
         <body><p><a href=\"{location}\">Back to the account</a></p></body></html>"
    );
    let mut response = (StatusCode::OK, Html(page)).into_response();
    // The code is spent; nothing of this answer belongs in a cache or a Referer.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
