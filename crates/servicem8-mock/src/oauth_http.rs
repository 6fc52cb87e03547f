//! The OAuth 2.0 endpoints of the simulated account, at ServiceM8's paths:
//!
//! - `GET /oauth/authorize?response_type=code&client_id=..&redirect_uri=..&scope=..&state=..` shows a consent page;
//!   its "Allow" and "Deny" buttons post to `POST /oauth/authorize`, which sends the browser to `redirect_uri` with
//!   `code` and `state`, or with `error=access_denied`. An unknown client or a missing redirect URI gets an error
//!   page instead of a redirect, as OAuth wants (the redirect URI cannot be trusted).
//! - `POST /oauth/access_token` (form-encoded) with `grant_type=authorization_code` or `refresh_token` answers
//!   `{access_token, expires_in, refresh_token, scope, token_type}`, or `{error, error_description}` with 400/401.
//! - `GET /_mock/oauth` reads the counters; `POST /_mock/oauth` makes refreshes fail, expires the access tokens
//!   issued so far, or changes the lifetime of new ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::oauth::{OAuthStats, TokenError};
use super::state::{lock, MockState};

/// Where a client sends the user's browser to connect an account.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
/// Where a client exchanges a code or a refresh token.
pub const TOKEN_PATH: &str = "/oauth/access_token";

pub(crate) fn router() -> Router<Arc<MockState>> {
    Router::new()
        .route(AUTHORIZE_PATH, get(show_consent).post(decide))
        .route(TOKEN_PATH, post(issue_token))
        .route("/_mock/oauth", get(get_oauth).post(control_oauth))
}

/// The parameters of an authorization request, from the query (the page) or the form (the decision).
#[derive(Debug, Default, Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    /// `allow` or `deny`: which button the user pressed.
    decision: Option<String>,
}

/// An authorization request the consent page may be shown for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authorization {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
}

/// Why an authorization request is not shown the consent page.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// Shown to the user: the redirect URI or client cannot be trusted.
    Page(String),
    /// Sent back to the client at its redirect URI.
    Redirect(String),
}

fn check_request(state: &MockState, params: &AuthorizeParams) -> Result<Authorization, Refusal> {
    let client_id = params.client_id.clone().unwrap_or_default();
    if !lock(&state.grants).knows_client(&client_id) {
        return Err(Refusal::Page(format!("Unknown client_id {client_id:?}")));
    }
    let redirect_uri = params.redirect_uri.clone().unwrap_or_default();
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")) {
        return Err(Refusal::Page("redirect_uri must be an http(s) URL".into()));
    }
    let state_param = params.state.as_deref();
    if params.response_type.as_deref() != Some("code") {
        return Err(Refusal::Redirect(with_query(
            &redirect_uri,
            &[
                ("error", "unsupported_response_type"),
                ("state", state_param.unwrap_or_default()),
            ],
        )));
    }
    let scope = params
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if scope.is_empty() {
        return Err(Refusal::Redirect(with_query(
            &redirect_uri,
            &[("error", "invalid_scope"), ("state", state_param.unwrap_or_default())],
        )));
    }
    Ok(Authorization {
        client_id,
        redirect_uri,
        scope,
        state: params.state.clone(),
    })
}

/// `GET /oauth/authorize`: the consent page.
async fn show_consent(State(state): State<Arc<MockState>>, Query(params): Query<AuthorizeParams>) -> Response {
    match check_request(&state, &params) {
        Ok(authorization) => Html(consent_page(&authorization)).into_response(),
        Err(refusal) => refused(refusal),
    }
}

/// `POST /oauth/authorize`: the user pressed "Allow" or "Deny".
async fn decide(State(state): State<Arc<MockState>>, Form(params): Form<AuthorizeParams>) -> Response {
    let authorization = match check_request(&state, &params) {
        Ok(authorization) => authorization,
        Err(refusal) => return refused(refusal),
    };
    let state_param = authorization.state.as_deref().unwrap_or_default();
    let location = if params.decision.as_deref() == Some("allow") {
        let code = lock(&state.grants).issue_code(&authorization.redirect_uri, &authorization.scope, Instant::now());
        with_query(&authorization.redirect_uri, &[("code", &code), ("state", state_param)])
    } else {
        with_query(
            &authorization.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "The user denied access"),
                ("state", state_param),
            ],
        )
    };
    see_other(&location)
}

fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(reason) => (StatusCode::BAD_REQUEST, Html(error_page(&reason))).into_response(),
        Refusal::Redirect(location) => see_other(&location),
    }
}

fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location.to_owned()),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
    )
        .into_response()
}

/// `uri` with `pairs` added to its query; empty values are left out.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs.iter().filter(|(_, value)| !value.is_empty()) {
        query.append_pair(name, value);
    }
    let query = query.finish();
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{query}")
}

/// `POST /oauth/access_token`.
async fn issue_token(
    State(state): State<Arc<MockState>>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let answer = match form {
        Ok(Form(form)) => {
            let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
            let mut grants = lock(&state.grants);
            let now = Instant::now();
            match field("grant_type") {
                "authorization_code" => grants.exchange_code(
                    field("client_id"),
                    field("client_secret"),
                    field("code"),
                    form.get("redirect_uri").map(String::as_str),
                    now,
                ),
                "refresh_token" => {
                    grants.refresh(field("client_id"), field("client_secret"), field("refresh_token"), now)
                }
                "" => Err(TokenError::InvalidRequest("grant_type is required".into())),
                other => Err(TokenError::UnsupportedGrantType(other.to_owned())),
            }
        }
        Err(rejection) => Err(TokenError::InvalidRequest(rejection.body_text())),
    };
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    match answer {
        Ok(tokens) => (no_store, Json(tokens)).into_response(),
        Err(error) => {
            let status = match error {
                TokenError::InvalidClient => StatusCode::UNAUTHORIZED,
                _ => StatusCode::BAD_REQUEST,
            };
            let body = json!({"error": error.code(), "error_description": error.to_string()});
            (status, no_store, Json(body)).into_response()
        }
    }
}

async fn get_oauth(State(state): State<Arc<MockState>>) -> Json<OAuthStats> {
    Json(lock(&state.grants).stats())
}

/// `POST /_mock/oauth`: each field, when present, changes one thing.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct OAuthControl {
    /// Refuse every refresh (`invalid_grant`, as for a revoked refresh token), or stop refusing.
    refresh_failing: Option<bool>,
    /// End every access token issued so far.
    expire_access_tokens: bool,
    /// Lifetime of access tokens issued from now on.
    token_ttl_seconds: Option<u64>,
}

async fn control_oauth(State(state): State<Arc<MockState>>, Json(control): Json<OAuthControl>) -> Json<OAuthStats> {
    let mut grants = lock(&state.grants);
    if let Some(failing) = control.refresh_failing {
        grants.set_refresh_failing(failing);
    }
    if control.expire_access_tokens {
        grants.expire_access_tokens(Instant::now());
    }
    if let Some(seconds) = control.token_ttl_seconds {
        grants.set_token_ttl(Duration::from_secs(seconds));
    }
    Json(grants.stats())
}

const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;\
color:#1d2733}h1{font-size:1.4rem}code{word-break:break-all}button{font-size:1rem;padding:.5rem 1.4rem;\
margin-right:.6rem;border-radius:4px;border:1px solid #0b6bcb;background:#fff;color:#0b6bcb;cursor:pointer}\
button[value=allow]{background:#0b6bcb;color:#fff}footer{margin-top:2rem;color:#667;font-size:.85rem}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{title}</title>\
         <style>{PAGE_STYLE}</style></head><body><main>{body}\
         <footer>Simulated ServiceM8 account</footer></main></body></html>",
        title = escape(title),
    )
}

fn consent_page(authorization: &Authorization) -> String {
    let scopes: String = authorization
        .scope
        .split(' ')
        .map(|scope| format!("<li><code>{}</code></li>", escape(scope)))
        .collect();
    let hidden =
        |name: &str, value: &str| format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(value));
    let body = format!(
        "<h1>Allow access to your ServiceM8 account?</h1>\
         <p>The application <strong>{client}</strong> asks to:</p><ul>{scopes}</ul>\
         <p>You will then return to <code>{redirect}</code>.</p>\
         <form method=\"post\" action=\"{AUTHORIZE_PATH}\">{fields}\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        client = escape(&authorization.client_id),
        redirect = escape(&authorization.redirect_uri),
        fields = [
            hidden("response_type", "code"),
            hidden("client_id", &authorization.client_id),
            hidden("redirect_uri", &authorization.redirect_uri),
            hidden("scope", &authorization.scope),
            hidden("state", authorization.state.as_deref().unwrap_or_default()),
        ]
        .concat(),
    );
    page("Allow access to ServiceM8", &body)
}

fn error_page(reason: &str) -> String {
    page(
        "ServiceM8 authorization failed",
        &format!(
            "<h1>This authorization request is not valid</h1><p>{}</p>",
            escape(reason)
        ),
    )
}

/// Text made safe for HTML content and quoted attributes.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorization() -> Authorization {
        Authorization {
            client_id: "mock-client-id".into(),
            redirect_uri: "http://app.test/cb?x=1".into(),
            scope: "read_jobs read_staff".into(),
            state: Some("\"><script>alert(1)</script>".into()),
        }
    }

    #[test]
    fn the_consent_page_offers_allow_and_deny_and_escapes_what_the_client_sent() {
        let html = consent_page(&authorization());
        assert!(html.contains("value=\"allow\">Allow</button>"));
        assert!(html.contains("value=\"deny\">Deny</button>"));
        assert!(html.contains("<li><code>read_staff</code></li>"));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("name=\"state\" value=\"&quot;&gt;&lt;script&gt;"));
    }

    #[test]
    fn redirects_add_to_the_query_and_leave_out_empty_values() {
        assert_eq!(
            with_query("http://app.test/cb", &[("code", "a b"), ("state", "s&t")]),
            "http://app.test/cb?code=a+b&state=s%26t"
        );
        assert_eq!(
            with_query("http://app.test/cb?x=1", &[("error", "access_denied"), ("state", "")]),
            "http://app.test/cb?x=1&error=access_denied"
        );
    }

    #[test]
    fn requests_from_unknown_clients_or_without_a_redirect_uri_get_a_page_and_others_a_redirect() {
        let state = MockState::new(
            &crate::MockConfig::default(),
            "http://mock.test/api_1.0".into(),
            tokio_util::sync::CancellationToken::new(),
        )
        .unwrap();
        let params = |client: &str, redirect: &str, response_type: &str, scope: &str| AuthorizeParams {
            response_type: Some(response_type.into()),
            client_id: Some(client.into()),
            redirect_uri: Some(redirect.into()),
            scope: Some(scope.into()),
            state: Some("st".into()),
            decision: None,
        };
        let cb = "http://app.test/cb";
        assert!(matches!(
            check_request(&state, &params("someone", cb, "code", "read_jobs")),
            Err(Refusal::Page(_))
        ));
        assert!(matches!(
            check_request(&state, &params("mock-client-id", "javascript:x", "code", "read_jobs")),
            Err(Refusal::Page(_))
        ));
        assert_eq!(
            check_request(&state, &params("mock-client-id", cb, "token", "read_jobs")),
            Err(Refusal::Redirect(format!(
                "{cb}?error=unsupported_response_type&state=st"
            )))
        );
        assert_eq!(
            check_request(&state, &params("mock-client-id", cb, "code", "  ")),
            Err(Refusal::Redirect(format!("{cb}?error=invalid_scope&state=st")))
        );
        let allowed = check_request(&state, &params("mock-client-id", cb, "code", "read_jobs  read_staff")).unwrap();
        assert_eq!(allowed.scope, "read_jobs read_staff");
    }
}
