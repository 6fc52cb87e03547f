//! The server-rendered UI: Leptos pages, their server functions and the static browser bundle.

use std::path::Path;
use std::sync::Arc;

use app::api::DashboardBackend;
use app::{shell, App, OUTPUT_NAME};
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};

/// The pages and server functions, with `backend` in every request's context.
pub fn router(site_root: &Path, backend: Arc<dyn DashboardBackend>) -> Router {
    let options = LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_root(site_root.to_string_lossy().into_owned())
        .site_pkg_dir("pkg")
        .build();
    let routes = generate_route_list(App);
    Router::new()
        .leptos_routes_with_context(&options, routes, move || provide_context(backend.clone()), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(options)
}
