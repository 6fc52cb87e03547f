//! The browser bundle under `/pkg`: as `make build` packed it (`sm8_tools::site`), named by its content and
//! beside its brotli and gzip forms. Each request gets the smallest form its `Accept-Encoding` allows, and a
//! packed file may be kept for ever (`immutable`: a new build has a new name); anything else under `/pkg` is
//! checked again on each use (`no-cache`, with its `Last-Modified`).

use std::path::Path;

use app::{Area, AreaBundles, OUTPUT_NAME};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use tower_http::services::ServeDir;

/// A year: as long as `max-age` usefully goes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// The bundle's name in `pkg`: `sm8-webhooks.{hash}` when a packed set is there (the newest, should several
/// be), else `sm8-webhooks` as wasm-bindgen wrote it (a build without `pack-site`).
pub fn bundle_name(pkg: &Path) -> String {
    let prefix = format!("{OUTPUT_NAME}.");
    let newest = std::fs::read_dir(pkg)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".js")?;
            if Area::ALL.iter().any(|area| stem.ends_with(area.suffix())) {
                return None;
            }
            stem.strip_prefix(&prefix)?;
            let modified = entry.metadata().ok()?.modified().ok()?;
            Some((modified, stem.to_owned()))
        })
        .max();
    newest.map_or_else(|| OUTPUT_NAME.to_owned(), |(_, stem)| stem)
}

/// The bundles of the areas that have their own beside the site bundle `bundle`, those that were built:
/// `{bundle}-portal`, `{bundle}-dashboard`.
pub fn area_bundles(pkg: &Path, bundle: &str) -> AreaBundles {
    AreaBundles(
        Area::ALL
            .into_iter()
            .map(|area| (area, format!("{bundle}{}", area.suffix())))
            .filter(|(_, name)| pkg.join(format!("{name}.js")).is_file())
            .collect(),
    )
}

/// Serves `pkg` under `/pkg`, each packed file of the bundle `bundle` cached for ever.
pub fn router<S: Clone + Send + Sync + 'static>(pkg: &Path, bundle: String) -> Router<S> {
    let files = ServeDir::new(pkg).precompressed_br().precompressed_gzip();
    Router::new()
        .nest_service("/pkg", files)
        .layer(axum::middleware::from_fn_with_state(Packed(bundle), cache_control))
}

/// The packed bundle's name, when there is one (not the plain `OUTPUT_NAME`).
#[derive(Clone)]
struct Packed(String);

async fn cache_control(State(Packed(bundle)): State<Packed>, request: Request, next: Next) -> Response {
    let file = request.uri().path().rsplit('/').next().unwrap_or_default().to_owned();
    let mut response = next.run(request).await;
    if response.status().is_success() || response.status() == axum::http::StatusCode::NOT_MODIFIED {
        let packed = bundle != OUTPUT_NAME
            && file
                .strip_prefix(&bundle)
                .is_some_and(|rest| rest.starts_with(['.', '_', '-']));
        let value = if packed { IMMUTABLE } else { REVALIDATE };
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
        // Caches between must keep each encoding apart.
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(pkg: &Path, name: &str) {
        std::fs::write(pkg.join(name), b"x").unwrap();
    }

    fn names(bundles: AreaBundles) -> Vec<(Area, String)> {
        bundles.0
    }

    #[test]
    fn the_areas_bundles_are_found_beside_the_site_bundle_and_never_taken_for_it() {
        let folder = tempfile::TempDir::new().unwrap();
        let pkg = folder.path();
        touch(pkg, "sm8-webhooks.js");
        touch(pkg, "sm8-webhooks-portal.js");
        assert_eq!(bundle_name(pkg), "sm8-webhooks");
        assert_eq!(
            names(area_bundles(pkg, "sm8-webhooks")),
            vec![(Area::Portal, "sm8-webhooks-portal".to_owned())]
        );

        touch(pkg, "sm8-webhooks.0123456789abcdef-portal.js");
        touch(pkg, "sm8-webhooks.0123456789abcdef-dashboard.js");
        touch(pkg, "sm8-webhooks.0123456789abcdef.js");
        let bundle = bundle_name(pkg);
        assert_eq!(bundle, "sm8-webhooks.0123456789abcdef");
        assert_eq!(
            names(area_bundles(pkg, &bundle)),
            vec![
                (Area::Portal, "sm8-webhooks.0123456789abcdef-portal".to_owned()),
                (Area::Dashboard, "sm8-webhooks.0123456789abcdef-dashboard".to_owned()),
            ]
        );
        assert!(names(area_bundles(pkg, "sm8-webhooks.ffffffffffffffff")).is_empty());
    }
}
