//! The browser bundles: the size of the site's WASM (every page) and of the dashboard's and the client portal's
//! own (their pages alone), raw and gzip (level 9), and of the JS glue, as `make build` leaves them in
//! `target/site/pkg`; what a browser is sent of each WASM (the packed bundle's brotli file, which the server
//! sends to every browser that accepts `br`); and two first renders in Chromium by `end2end/bench/first-render.mjs`,
//! navigation start to the hydrated page (`body[data-hydrated="true"]`) and to the first contentful paint, median
//! of several cold loads:
//!
//! - the dashboard, unthrottled;
//! - the client portal of a signed-in portal user (a session made in the server's store beforehand) as a phone on
//!   a building site loads it: the CPU slowed 4× and Chrome's "Fast 3G" network (1.6 Mbit/s, 150 ms), the
//!   performance issue's targets being a first contentful paint under 1.5 s and hydration under 2.5 s.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Deserialize;
use serde_json::json;

use super::harness::{self, Databases};
use super::report::{Figure, Outcome, ScenarioReport, Target};
use super::Settings;
use app::{Area, OUTPUT_NAME};

const WASM: &str = "pkg/sm8-webhooks_bg.wasm";
const JS: &str = "pkg/sm8-webhooks.js";
const SCRIPT: &str = "end2end/bench/first-render.mjs";
const CHROMIUM: &str = "/usr/bin/chromium";
const PAGE: &str = "/admin/webhook-dashboard";
const PORTAL_PAGE: &str = "/portal";
/// Cold loads of the throttled portal (each takes seconds).
const THROTTLED_LOADS: usize = 3;
/// The company whose portal is loaded; it needs no records to sign in.
const PORTAL_COMPANY: &str = "bench-company";
const RENDER_TIMEOUT: Duration = Duration::from_secs(120);

/// Raw and gzip sizes of a file, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
struct Sizes {
    raw: u64,
    gzip: u64,
}

/// What the first-render script prints.
#[derive(Debug, Deserialize)]
struct FirstRender {
    /// Navigation start to hydrated, per load, in milliseconds.
    hydrated_ms: Vec<f64>,
    /// Navigation start to first contentful paint, per load.
    first_contentful_paint_ms: Vec<f64>,
}

pub async fn run(settings: &Settings, databases: &Databases, report: &mut ScenarioReport) -> anyhow::Result<()> {
    let site = harness::serve_args("sqlite::memory:").resolved_site_root();
    let wasm_path = site.join(WASM);
    if !wasm_path.exists() {
        report.outcome = Outcome::NotRun(format!("{} is missing: run `make build` first", wasm_path.display()));
        return Ok(());
    }
    let wasm = sizes(&wasm_path)?;
    report.push(Figure::info(
        "site WASM raw (every page)",
        wasm.raw as f64 / 1000.0,
        "kB",
    ));
    report.push(Figure::info(
        "site WASM gzip (every page)",
        wasm.gzip as f64 / 1000.0,
        "kB",
    ));
    report.detail("wasm", wasm);
    println!("  site WASM {} kB raw, {} kB gzip", wasm.raw / 1000, wasm.gzip / 1000);
    let bundle = server::web::bundle_name(&site.join("pkg"));
    let mut sent = vec![("site", bundle.clone())];
    for (area, label, below_kb) in [(Area::Dashboard, "dashboard", 400.0), (Area::Portal, "portal", 250.0)] {
        let unpacked = format!("pkg/{OUTPUT_NAME}{}_bg.wasm", area.suffix());
        let Ok(area_wasm) = sizes(&site.join(unpacked)) else {
            report.note(format!(
                "the {label}'s own bundle is missing (`make build` builds it): its pages load the site's"
            ));
            continue;
        };
        report.push(Figure::info(
            format!("{label} WASM raw"),
            area_wasm.raw as f64 / 1000.0,
            "kB",
        ));
        report.push(Figure::against(
            format!("{label} WASM gzip"),
            area_wasm.gzip as f64 / 1000.0,
            "kB",
            Target::Below(below_kb),
        ));
        report.detail(&format!("{label}_wasm"), area_wasm);
        println!(
            "  {label} WASM {} kB raw, {} kB gzip",
            area_wasm.raw / 1000,
            area_wasm.gzip / 1000
        );
        sent.push((label, format!("{bundle}{}", area.suffix())));
    }
    for (label, name) in sent {
        match std::fs::metadata(site.join("pkg").join(format!("{name}_bg.wasm.br"))) {
            Ok(brotli) => {
                report.push(Figure::info(
                    format!("{label} WASM as sent (brotli)"),
                    brotli.len() as f64 / 1000.0,
                    "kB",
                ));
                report.detail(&format!("{label}_wasm_sent_brotli"), brotli.len());
            }
            Err(_) => report.note(format!(
                "the {label} bundle is not packed (`make build` packs it): no compressed form is sent"
            )),
        }
    }
    if let Ok(js) = sizes(&site.join(JS)) {
        report.push(Figure::info("JS glue gzip", js.gzip as f64 / 1000.0, "kB"));
        report.detail("js", js);
    }

    if let Some(missing) = first_render_missing() {
        report.note(format!("first render not measured: {missing}"));
        return Ok(());
    }
    let database_url = databases.fresh("bundle").await?;
    let mut args = harness::serve_args(&database_url);
    args.processor.workers = 0;
    args.site_root = site;
    let server = harness::host_server(args).await?;
    let origin = format!("http://{}", server.value);
    let measured = async {
        let dashboard = first_render(&format!("{origin}{PAGE}"), settings.page_loads(), &[]).await?;
        let cookie = portal_session_cookie(&database_url).await?;
        let portal = first_render(
            &format!("{origin}{PORTAL_PAGE}"),
            THROTTLED_LOADS,
            &["--throttle", "--cookie", &cookie],
        )
        .await?;
        anyhow::Ok((dashboard, portal))
    }
    .await;
    server.stop_noting(report).await;
    let (rendered, portal) = measured?;
    let hydrated = median(&rendered.hydrated_ms);
    let painted = median(&rendered.first_contentful_paint_ms);
    println!("  first render (hydrated) median {hydrated:.0} ms, first contentful paint {painted:.0} ms");
    report.push(Figure::info(
        "dashboard first render to hydrated (median)",
        hydrated,
        "ms",
    ));
    report.push(Figure::info("dashboard first contentful paint (median)", painted, "ms"));
    report.detail(
        "first_render",
        json!({
            "page": PAGE,
            "hydrated_ms": rendered.hydrated_ms,
            "first_contentful_paint_ms": rendered.first_contentful_paint_ms,
        }),
    );
    let (hydrated, painted) = (median(&portal.hydrated_ms), median(&portal.first_contentful_paint_ms));
    println!("  portal, 4× CPU and Fast 3G: hydrated median {hydrated:.0} ms, first contentful paint {painted:.0} ms");
    report.push(Figure::against(
        "portal first contentful paint, 4× CPU + Fast 3G (median)",
        painted,
        "ms",
        Target::Below(1_500.0),
    ));
    report.push(Figure::against(
        "portal hydrated, 4× CPU + Fast 3G (median)",
        hydrated,
        "ms",
        Target::Below(2_500.0),
    ));
    report.detail(
        "portal_throttled",
        json!({
            "page": PORTAL_PAGE,
            "cpu_slowdown": 4,
            "network": {"down_mbit_s": 1.6, "up_kbit_s": 750, "latency_ms": 150},
            "hydrated_ms": portal.hydrated_ms,
            "first_contentful_paint_ms": portal.first_contentful_paint_ms,
        }),
    );
    Ok(())
}

/// A portal session for a company of the default account, made in the server's store as a redeemed sign-in
/// link would make it: the `NAME=VALUE` of its cookie.
async fn portal_session_cookie(database_url: &str) -> anyhow::Result<String> {
    let store = server::store::connect(database_url).await?;
    let company = server::store::CompanyOf {
        account: server::store::DEFAULT_ACCOUNT.to_owned(),
        company_uuid: PORTAL_COMPANY.to_owned(),
    };
    let now = server::store::now_millis();
    let link = server::backend::create_link(store.as_ref(), &company, 60_000, "http://127.0.0.1", now).await?;
    let session = server::portal::redeem_link(store.as_ref(), &link.token, now)
        .await?
        .context("the portal link just made could not be redeemed")?;
    Ok(format!("{}={session}", app::session::SessionCookie::Portal.name()))
}

fn sizes(path: &Path) -> anyhow::Result<Sizes> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(&bytes)?;
    Ok(Sizes {
        raw: bytes.len() as u64,
        gzip: encoder.finish()?.len() as u64,
    })
}

/// Why the first render cannot be measured here, if it cannot (`make bench` installs what it needs).
fn first_render_missing() -> Option<String> {
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|output| output.status.success()) {
        return Some("node is not installed".into());
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is not installed"));
    }
    if !PathBuf::from("end2end/node_modules/@playwright/test").exists() {
        return Some("end2end/node_modules lacks @playwright/test: run `make e2e-deps`".into());
    }
    None
}

async fn first_render(url: &str, loads: usize, options: &[&str]) -> anyhow::Result<FirstRender> {
    let output = tokio::time::timeout(
        RENDER_TIMEOUT,
        tokio::process::Command::new("node")
            .arg(SCRIPT)
            .arg(url)
            .arg(loads.to_string())
            .args(options)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("the first-render script did not finish in time")?
    .context("running the first-render script")?;
    if !output.status.success() {
        bail!(
            "the first-render script failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).context("reading the first-render script's answer")
}

/// The middle value (the mean of the middle two for an even count); 0 for none.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn gzip_sizes_shrink_repetitive_files() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "abc".repeat(10_000)).unwrap();
        let sizes = sizes(file.path()).unwrap();
        assert_eq!(sizes.raw, 30_000);
        assert!(sizes.gzip > 0 && sizes.gzip < 1_000, "{sizes:?}");
    }

    #[test]
    fn the_script_answer_is_read_as_lists_of_milliseconds() {
        let answer: FirstRender =
            serde_json::from_str(r#"{"hydrated_ms":[120.5,98.5],"first_contentful_paint_ms":[40,41]}"#).unwrap();
        assert_eq!(median(&answer.hydrated_ms), 109.5);
    }
}
