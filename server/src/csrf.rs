//! Cross-site request defence for every route a browser's cookies can authorise: the dashboard's and the portal's
//! server functions, sign-in and sign-out, the management API used from the dashboard.
//!
//! `SameSite=Strict` cookies are not enough: another port on the same host, or a sibling subdomain, is the same
//! *site*, so a page there can post a plain HTML form (or a `no-cors` fetch) with the admin's cookie. A
//! state-changing request is therefore accepted only when the browser says it comes from this very origin:
//! `Sec-Fetch-Site: same-origin` (every current browser sends it), or, from a browser that does not, an `Origin`
//! whose host is the one the request was sent to (or `PUBLIC_URL`'s). A request with neither header does not come
//! from a browser, so it carries no victim's cookies; it is left to the route's own authentication.
//!
//! Second, such a request must be one no page can send without the browser asking this server first (a CORS
//! preflight, which it never grants): `Content-Type: application/json` or an `Authorization` header. A plain HTML
//! form (`text/plain`, form-encoded, multipart) and a `no-cors` fetch can send neither, so even a page that got
//! past the origin check (an old browser, a proxy stripping headers) cannot act. The UI's server functions all
//! take JSON for this reason (`app/src/api.rs`). A request that is not JSON gets `415`.
//!
//! Routes that no cookie authorises are exempt: the webhook receiver (ServiceM8's servers, verified by signature)
//! and the REST broadcast (a bearer token).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Paths no cookie authorises.
const EXEMPT_PREFIXES: [&str; 2] = ["/api/webhooks/sm8", "/realtime/v1/api/broadcast"];

/// What the check compares origins with.
#[derive(Debug, Clone)]
pub struct SameOrigin {
    /// `host[:port]` of `PUBLIC_URL`, where users reach this server behind a proxy.
    public_host: Option<String>,
}

impl SameOrigin {
    pub fn new(public_url: &str) -> SameOrigin {
        SameOrigin {
            public_host: host_of(public_url).map(str::to_ascii_lowercase),
        }
    }

    /// Why a request may not change anything, if it may not.
    fn refusal(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Refusal> {
        if method.is_safe() || EXEMPT_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
            return None;
        }
        self.foreign_origin(headers).or_else(|| simple_request(headers))
    }

    /// Whether a browser says the request comes from a page of another origin.
    fn foreign_origin(&self, headers: &HeaderMap) -> Option<Refusal> {
        let text = |name| headers.get(name).and_then(|value| value.to_str().ok());
        if let Some(site) = text("sec-fetch-site") {
            return (!site.eq_ignore_ascii_case("same-origin")).then_some(Refusal::CrossSite);
        }
        let origin = text(header::ORIGIN.as_str())?;
        let origin_host = host_of(origin).map(str::to_ascii_lowercase);
        let request_host = text(header::HOST.as_str()).map(str::to_ascii_lowercase);
        let same = origin_host.is_some() && (origin_host == request_host || origin_host == self.public_host);
        (!same).then_some(Refusal::CrossOrigin)
    }
}

/// Why a state-changing request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// `Sec-Fetch-Site` is not `same-origin`.
    CrossSite,
    /// `Origin` names another host.
    CrossOrigin,
    /// Neither JSON nor carrying `Authorization`: what a form or a `no-cors` fetch sends.
    SimpleRequest,
}

impl Refusal {
    fn status(self) -> StatusCode {
        match self {
            Refusal::CrossSite | Refusal::CrossOrigin => StatusCode::FORBIDDEN,
            Refusal::SimpleRequest => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Refusal::CrossSite => "cross-site request refused",
            Refusal::CrossOrigin => "cross-origin request refused",
            Refusal::SimpleRequest => "state-changing requests must send Content-Type: application/json",
        }
    }
}

/// A request any page could send without a preflight: not JSON, no `Authorization`.
fn simple_request(headers: &HeaderMap) -> Option<Refusal> {
    if headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    let json = media_type.is_some_and(|media_type| media_type.eq_ignore_ascii_case("application/json"));
    (!json).then_some(Refusal::SimpleRequest)
}

/// `host[:port]` of an origin or URL (`scheme://host[:port][/...]`).
fn host_of(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then_some(host)
}

/// Refuses state-changing requests from other origins with 403, and those a form could send with 415, each with
/// a JSON reason.
pub async fn refuse_cross_origin(
    State(same_origin): State<SameOrigin>,
    request: Request<Body>,
    next: Next,
) -> Response {
    if let Some(refusal) = same_origin.refusal(request.method(), request.uri().path(), request.headers()) {
        let reason = refusal.reason();
        tracing::warn!(path = %request.uri().path(), reason, "refused a state-changing request");
        return (refusal.status(), Json(serde_json::json!({ "error": reason }))).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn only_same_origin_browser_requests_and_non_browser_ones_may_change_state() {
        let check = SameOrigin::new("https://hooks.example.com");
        let post = |pairs: &[(&'static str, &'static str)]| {
            let mut pairs = pairs.to_vec();
            pairs.push(JSON);
            check.refusal(&Method::POST, "/api/cleanup_events", &headers(&pairs))
        };
        assert_eq!(post(&[("sec-fetch-site", "same-origin")]), None);
        assert!(
            post(&[("sec-fetch-site", "same-site")]).is_some(),
            "another port or subdomain"
        );
        assert!(post(&[("sec-fetch-site", "cross-site")]).is_some());
        assert!(post(&[("sec-fetch-site", "none")]).is_some());
        assert_eq!(
            post(&[("origin", "http://127.0.0.1:3000"), ("host", "127.0.0.1:3000")]),
            None
        );
        assert_eq!(
            post(&[("origin", "https://hooks.example.com"), ("host", "10.0.0.5:3000")]),
            None,
            "behind a proxy"
        );
        assert!(post(&[("origin", "http://127.0.0.1:4000"), ("host", "127.0.0.1:3000")]).is_some());
        assert!(
            post(&[("origin", "null"), ("host", "127.0.0.1:3000")]).is_some(),
            "a sandboxed page"
        );
        assert_eq!(post(&[]), None, "curl: no browser, no cookies of a victim");
    }

    #[test]
    fn a_state_changing_request_a_form_could_send_is_refused_even_from_this_origin() {
        let check = SameOrigin::new("http://127.0.0.1:3000");
        let post = |pairs: &[(&'static str, &'static str)]| {
            check.refusal(&Method::POST, "/api/cleanup_events", &headers(pairs))
        };
        let same = ("sec-fetch-site", "same-origin");
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
        ] {
            assert_eq!(
                post(&[same, ("content-type", content_type)]),
                Some(Refusal::SimpleRequest),
                "{content_type}"
            );
        }
        assert_eq!(post(&[same]), Some(Refusal::SimpleRequest), "no content type");
        assert_eq!(post(&[same, ("content-type", "Application/JSON; charset=utf-8")]), None);
        assert_eq!(
            post(&[("authorization", "Bearer t")]),
            None,
            "a bearer token: no form sends one"
        );
        assert_eq!(Refusal::SimpleRequest.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn reads_and_cookieless_routes_are_not_checked() {
        let check = SameOrigin::new("http://127.0.0.1:3000");
        let cross = headers(&[("sec-fetch-site", "cross-site")]);
        assert_eq!(check.refusal(&Method::GET, "/admin/webhook-dashboard", &cross), None);
        assert_eq!(check.refusal(&Method::POST, "/api/webhooks/sm8", &cross), None);
        assert_eq!(check.refusal(&Method::POST, "/api/webhooks/sm8?token=x", &cross), None);
        assert_eq!(check.refusal(&Method::POST, "/realtime/v1/api/broadcast", &cross), None);
        assert!(check
            .refusal(&Method::POST, "/api/webhooks/management", &cross)
            .is_some());
        assert!(check.refusal(&Method::DELETE, "/api/portal/sign_out", &cross).is_some());
    }

    #[test]
    fn the_host_of_an_origin_is_read_with_its_port() {
        assert_eq!(host_of("http://127.0.0.1:3000"), Some("127.0.0.1:3000"));
        assert_eq!(host_of("https://hooks.example.com/x?y"), Some("hooks.example.com"));
        assert_eq!(host_of("null"), None);
        assert_eq!(host_of("http://"), None);
    }
}
