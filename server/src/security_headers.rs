//! Headers every response carries so that browsers hold back what a hostile page could do with ours: no MIME
//! sniffing, no framing (clickjacking), no `Referer` (portal link URLs carry their token), and on HTML a policy
//! that runs only the scripts this server put in the page, allows no plugins, no `<base>` rewriting, forms posting
//! only here, and no framing; HSTS when the public URL is https. A route that sets one of them itself (an
//! attachment download's sandbox) keeps its own.
//!
//! Scripts: every page request gets a fresh `ScriptNonce`, which the page renderer puts on each inline script it
//! writes (the hydration start-up and the resolved resources, `web.rs`), and the policy allows only scripts
//! carrying it, and what they load (`'strict-dynamic'`: the bundle's module and its WebAssembly, which needs
//! `'wasm-unsafe-eval'`). A script injected into a page through data never carries the nonce, so it never runs.

use axum::extract::{Request, State};
use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use std::sync::Arc;

use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;

/// The policy of HTML pages, before its `script-src`.
const HTML_POLICY: &str = "frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'";
const HSTS: &str = "max-age=31536000";
/// The policy of HTML that carries no script of ours.
const NO_SCRIPTS_POLICY: &str =
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self'; script-src 'none'";

/// The nonce a page's own scripts carry; in the request's extensions for the page renderer.
#[derive(Debug, Clone)]
pub struct ScriptNonce(pub Arc<str>);

impl ScriptNonce {
    fn generate() -> ScriptNonce {
        ScriptNonce(crate::auth::random_token().into())
    }

    /// The page policy allowing this nonce's scripts.
    fn page_policy(&self) -> Option<HeaderValue> {
        let policy = format!(
            "{HTML_POLICY}; script-src 'nonce-{}' 'strict-dynamic' 'wasm-unsafe-eval'",
            self.0
        );
        HeaderValue::from_str(&policy).ok()
    }
}

/// Whether responses announce HSTS (the public URL is https).
#[derive(Debug, Clone, Copy)]
pub struct Https(pub bool);

pub async fn add_security_headers(State(Https(https)): State<Https>, mut request: Request, next: Next) -> Response {
    // Only a GET renders a page; nothing else needs a nonce.
    let nonce = (request.method() == Method::GET).then(ScriptNonce::generate);
    if let Some(nonce) = &nonce {
        request.extensions_mut().insert(nonce.clone());
    }
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
        // An HTML answer to anything but a GET has no scripts of ours: none may run.
        let policy = nonce
            .as_ref()
            .and_then(ScriptNonce::page_policy)
            .unwrap_or_else(|| HeaderValue::from_static(NO_SCRIPTS_POLICY));
        headers.entry(CONTENT_SECURITY_POLICY).or_insert(policy);
    }
    if https {
        headers
            .entry(STRICT_TRANSPORT_SECURITY)
            .or_insert(HeaderValue::from_static(HSTS));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_policy_runs_only_scripts_with_its_own_fresh_nonce() {
        let (first, second) = (ScriptNonce::generate(), ScriptNonce::generate());
        assert_ne!(first.0, second.0);
        let policy = first.page_policy().unwrap();
        let policy = policy.to_str().unwrap();
        assert!(
            policy.contains(&format!("script-src 'nonce-{}' 'strict-dynamic'", first.0)),
            "{policy}"
        );
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    }
}
