//! The browser bundle as a browser gets it: pages name the packed bundle (`make build`'s `pack-site`), and each
//! file goes out in the smallest form the request accepts, cached for ever; what is not packed is revalidated.

use std::path::Path;

use reqwest::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, VARY};
use tempfile::TempDir;

use crate::common::{serve_args, spawn_with, TestApp};

/// A server whose site is a bundle of `script`, packed.
async fn serving_a_packed_bundle(script: &str) -> (TestApp, String, TempDir) {
    serving_packed_bundles(script, &["sm8-webhooks"]).await
}

/// A server whose site holds a bundle of `script` under each of `names`, packed.
async fn serving_packed_bundles(script: &str, names: &[&str]) -> (TestApp, String, TempDir) {
    let site = TempDir::new().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    for name in names {
        std::fs::write(pkg.join(format!("{name}.js")), script).unwrap();
        std::fs::write(pkg.join(format!("{name}_bg.wasm")), vec![7u8; 64 * 1024]).unwrap();
        std::fs::write(pkg.join(format!("{name}.css")), "main { margin: 0 auto; } ".repeat(200)).unwrap();
    }
    let packed = sm8_tools::site::pack(&pkg, app::OUTPUT_NAME).unwrap();
    let data = TempDir::new().unwrap();
    let mut args = serve_args(&format!("sqlite://{}", data.path().join("sm8.db").display()));
    args.processor.workers = 0;
    args.site_root = site.path().to_owned();
    (spawn_with(args, data).await, packed.name, site)
}

fn size(path: &Path) -> String {
    std::fs::metadata(path).unwrap().len().to_string()
}

#[tokio::test]
async fn pages_name_the_packed_bundle_which_goes_out_compressed_as_accepted_and_cached_for_ever() {
    let (app, bundle, site) = serving_a_packed_bundle("export function hydrate() {}").await;
    let page = app
        .client
        .get(app.url("/admin/webhook-dashboard"))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    for file in [
        format!("/pkg/{bundle}.js"),
        format!("/pkg/{bundle}_bg.wasm"),
        format!("/pkg/{bundle}.css"),
    ] {
        assert!(html.contains(&file), "the page names {file}: {html}");
    }

    let wasm = format!("{bundle}_bg.wasm");
    let on_disk = site.path().join("pkg").join(&wasm);
    for (accepted, encoding, file) in [
        ("gzip, deflate, br", Some("br"), format!("{wasm}.br")),
        ("gzip", Some("gzip"), format!("{wasm}.gz")),
        ("identity", None, wasm.clone()),
    ] {
        let response = app
            .client
            .get(app.url(&format!("/pkg/{wasm}")))
            .header(ACCEPT_ENCODING, accepted)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{accepted}");
        let headers = response.headers();
        assert_eq!(
            headers.get(CONTENT_ENCODING).map(|value| value.to_str().unwrap()),
            encoding,
            "{accepted}"
        );
        assert_eq!(
            headers[CONTENT_LENGTH],
            size(&on_disk.with_file_name(&file)).as_str(),
            "{accepted}"
        );
        assert_eq!(headers[CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert!(headers[VARY]
            .to_str()
            .unwrap()
            .to_lowercase()
            .contains("accept-encoding"));
        assert_eq!(headers["content-type"], "application/wasm");
    }
    let script = app
        .client
        .get(app.url(&format!("/pkg/{bundle}.js")))
        .header(ACCEPT_ENCODING, "br")
        .send()
        .await
        .unwrap();
    assert_eq!(script.headers()[CONTENT_ENCODING], "br");
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
}

#[tokio::test]
async fn what_is_not_packed_is_revalidated_and_a_missing_file_is_not_found() {
    let (app, _, _site) = serving_a_packed_bundle("export function hydrate() { /* plain */ }").await;
    let plain = app.client.get(app.url("/pkg/sm8-webhooks.css")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()[CACHE_CONTROL], "no-cache");
    assert!(plain.headers().contains_key("last-modified"));
    let missing = app
        .client
        .get(app.url("/pkg/sm8-webhooks.0000000000000000.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// The page at `path` as HTML.
async fn page(app: &TestApp, path: &str) -> String {
    app.client
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_portal_and_the_dashboard_load_their_own_bundles_and_every_other_page_the_sites() {
    let (app, bundle, _site) = serving_packed_bundles(
        "export function hydrate() {}",
        &["sm8-webhooks", "sm8-webhooks-portal", "sm8-webhooks-dashboard"],
    )
    .await;
    for (path, own) in [
        ("/portal", "-portal"),
        ("/portal/jobs/not-a-job", "-portal"),
        ("/admin/webhook-dashboard", "-dashboard"),
        ("/admin/webhook-dashboard/events/not-an-event", "-dashboard"),
        ("/admin/rules", ""),
        ("/", ""),
    ] {
        let html = page(&app, path).await;
        let name = format!("{bundle}{own}");
        for file in [
            format!("/pkg/{name}.js"),
            format!("/pkg/{name}_bg.wasm"),
            format!("/pkg/{name}.css"),
        ] {
            assert!(html.contains(&file), "{path} names {file}: {html}");
        }
        for other in ["", "-portal", "-dashboard"].into_iter().filter(|other| *other != own) {
            assert!(
                !html.contains(&format!("/pkg/{bundle}{other}.js")),
                "{path} loads no other bundle than {name}: {html}"
            );
        }
    }

    let wasm = app
        .client
        .get(app.url(&format!("/pkg/{bundle}-portal_bg.wasm")))
        .header(ACCEPT_ENCODING, "br")
        .send()
        .await
        .unwrap();
    assert_eq!(wasm.status(), 200);
    assert_eq!(wasm.headers()[CONTENT_ENCODING], "br");
    assert_eq!(wasm.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
}
