//! The server-rendered UI: Leptos pages, their server functions and the static browser bundle.

use std::path::Path;
use std::sync::Arc;

use app::api::DashboardBackend;
use app::portal::api::PortalBackend;
use app::realtime::RealtimeBackend;
use app::{shell, App, OUTPUT_NAME};
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};

use crate::backend::ServerBackend;

/// The pages and server functions. Every request's context holds `backend` three times over, as the dashboard's,
/// the portal's and the realtime credentials' backend: each server function finds only the one it is for.
pub fn router(site_root: &Path, backend: Arc<ServerBackend>) -> Router {
    let options = LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_root(site_root.to_string_lossy().into_owned())
        .site_pkg_dir("pkg")
        .build();
    let routes = generate_route_list(App);
    Router::new()
        .leptos_routes_with_context(&options, routes, move || provide_backends(&backend), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(options)
}

fn provide_backends(backend: &Arc<ServerBackend>) {
    provide_context::<Arc<dyn DashboardBackend>>(backend.clone());
    provide_context::<Arc<dyn PortalBackend>>(backend.clone());
    provide_context::<Arc<dyn RealtimeBackend>>(backend.clone());
}
