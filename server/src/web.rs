//! The server-rendered UI: Leptos pages, their server functions and the static browser bundle (`assets`).

mod assets;

pub use assets::bundle_name;

use std::path::Path;
use std::sync::Arc;

use app::access::ClientAddress;
use app::alerts::api::AlertsBackend;
use app::analytics::api::AnalyticsBackend;
use app::api::DashboardBackend;
use app::directory::api::{DirectoryBackend, SignIn};
use app::error::AppError;
use app::outbound::api::OutboundBackend;
use app::portal::api::PortalBackend;
use app::realtime::RealtimeBackend;
use app::AreaBundles;
use app::{shell, App};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::nonce::Nonce;
use leptos::prelude::{provide_context, use_context};
use leptos::server_fn::error::{FromServerFnError, SERVER_FN_ERROR_HEADER};
use leptos::server_fn::ServerFn;
use leptos_axum::{generate_route_list, LeptosRoutes};

use crate::backend::ServerBackend;
use crate::security_headers::ScriptNonce;
use crate::throttle::{client_address, RetryAfter, Throttles};

/// The pages and server functions. Every request's context holds `backend` five times over, as the dashboard's,
/// the directory's, the portal's, the rules and destinations' and the realtime credentials' backend: each server
/// function finds only the one it is for.
pub fn router(site_root: &Path, backend: Arc<ServerBackend>, throttles: Arc<Throttles>) -> Router {
    let pkg = site_root.join("pkg");
    let bundle = assets::bundle_name(&pkg);
    let areas = assets::area_bundles(&pkg, &bundle);
    let options = LeptosOptions::builder()
        .output_name(bundle.as_str())
        .site_root(site_root.to_string_lossy().into_owned())
        .site_pkg_dir("pkg")
        .build();
    let routes = generate_route_list(App);
    let backend_for_errors = backend.clone();
    Router::new()
        .merge(assets::router(&pkg, bundle))
        .leptos_routes_with_context(
            &options,
            routes,
            {
                let areas = areas.clone();
                move || provide_page_context(&backend, &areas)
            },
            {
                let options = options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler_with_context(
            {
                let backend = backend_for_errors;
                move || provide_page_context(&backend, &areas)
            },
            shell,
        ))
        .layer(axum::middleware::from_fn(server_function_status))
        .layer(axum::middleware::from_fn(page_render_deadline))
        .layer(axum::middleware::from_fn_with_state(throttles, throttle_sign_ins))
        .layer(axum::middleware::from_fn(note_client_address))
        .with_state(options)
}

/// The longest a page may take to render before its head is sent. Pages wait for their data first (so that the
/// status is the one they show); past this the visitor is told to try again, and the render is dropped, so a page
/// whose data never comes holds no connection for ever.
const PAGE_RENDER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

async fn page_render_deadline(request: Request, next: Next) -> Response {
    if request.method() != axum::http::Method::GET {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    match tokio::time::timeout(PAGE_RENDER_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%path, "a page took too long to render: answered 503");
            let mut response = Response::new(Body::from("The page took too long to render: try again."));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// Puts the client's address where the pages' server functions find it (`app::access::ClientAddress`), for the
/// audit log.
async fn note_client_address(mut request: Request, next: Next) -> Response {
    if let Some(client) = client_address(request.extensions()) {
        request.extensions_mut().insert(ClientAddress(client.to_string()));
    }
    next.run(request).await
}

/// Gives a server function's error the status its `AppError` names (`AppError::status`). The server function
/// layer answers every error 500 — a wrong token, no session, an argument it could not read — and only what
/// really failed on the server should.
async fn server_function_status(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !response.headers().contains_key(SERVER_FN_ERROR_HEADER)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(encoded) = axum::body::to_bytes(body, MAX_ERROR_BYTES).await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let error = AppError::de(encoded.clone());
    parts.status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if let AppError::RateLimited(seconds) = error {
        parts
            .headers
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    if parts.status.is_server_error() {
        tracing::warn!(%error, "a server function failed");
    }
    Response::from_parts(parts, Body::from(encoded))
}

/// Counts failed sign-ins per client address: past `SIGN_INS_PER_MINUTE` in a minute, the failure that went over
/// and every sign-in after it, right password or wrong, is answered 429 with the `AppError` the dashboard shows,
/// until the limit refills.
async fn throttle_sign_ins(State(throttles): State<Arc<Throttles>>, request: Request, next: Next) -> Response {
    let client = (request.uri().path() == SignIn::PATH)
        .then(|| client_address(request.extensions()))
        .flatten();
    let Some(client) = client else {
        return next.run(request).await;
    };
    if let Err(wait) = throttles.sign_ins.admit(&client) {
        return too_many_sign_ins(client, wait);
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        if let Err(wait) = throttles.sign_ins.failed(&client) {
            return too_many_sign_ins(client, wait);
        }
    }
    response
}

fn too_many_sign_ins(client: std::net::IpAddr, wait: RetryAfter) -> Response {
    tracing::warn!(%client, "sign-in refused: too many failures");
    let error = AppError::RateLimited(wait.seconds());
    let mut response = Response::new(Body::from(error.ser()));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = response.headers_mut();
    headers.insert(SERVER_FN_ERROR_HEADER, HeaderValue::from_static(SignIn::PATH));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::RETRY_AFTER, wait.header_value());
    response
}

/// The most of a server function's error body read to learn its status; errors are a short JSON reason.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// What every page render and server function finds in its context: the backends (dashboard, directory, portal,
/// realtime), the nonce of the page's scripts (the one its `Content-Security-Policy` names,
/// `security_headers::ScriptNonce`), and the bundles of the areas that have their own.
fn provide_page_context(backend: &Arc<ServerBackend>, areas: &AreaBundles) {
    provide_context(areas.clone());
    let nonce = use_context::<Parts>().and_then(|parts| parts.extensions.get::<ScriptNonce>().cloned());
    if let Some(ScriptNonce(nonce)) = nonce {
        provide_context(Nonce::from_value(nonce));
    }
    provide_context::<Arc<dyn DashboardBackend>>(backend.clone());
    provide_context::<Arc<dyn DirectoryBackend>>(backend.clone());
    provide_context::<Arc<dyn PortalBackend>>(backend.clone());
    provide_context::<Arc<dyn RealtimeBackend>>(backend.clone());
    provide_context::<Arc<dyn OutboundBackend>>(backend.clone());
    provide_context::<Arc<dyn AlertsBackend>>(backend.clone());
    provide_context::<Arc<dyn AnalyticsBackend>>(backend.clone());
}
