//! Headers every response carries so that browsers hold back what a hostile page could do with ours: no MIME
//! sniffing, no framing (clickjacking), no `Referer` (portal link URLs carry their token), and on HTML a policy
//! that allows no plugins, no `<base>` rewriting, forms posting only here, and no framing; HSTS when the public
//! URL is https. A route that sets one of them itself (an attachment download's sandbox) keeps its own.

use axum::extract::{Request, State};
use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The policy of HTML pages. Scripts are not restricted here: the hydrated app's start-up script is inline.
const HTML_POLICY: &str = "frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'";
const HSTS: &str = "max-age=31536000";

/// Whether responses announce HSTS (the public URL is https).
#[derive(Debug, Clone, Copy)]
pub struct Https(pub bool);

pub async fn add_security_headers(State(Https(https)): State<Https>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let is_html = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    let headers = response.headers_mut();
    headers
        .entry(X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry(X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    headers
        .entry(REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    if is_html {
        headers
            .entry(CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(HTML_POLICY));
    }
    if https {
        headers
            .entry(STRICT_TRANSPORT_SECURITY)
            .or_insert(HeaderValue::from_static(HSTS));
    }
    response
}
