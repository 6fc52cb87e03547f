//! The browser bundle: the size of the WASM (raw and gzip, level 9) and of its JS glue as `make build` leaves them
//! in `target/site/pkg`, what a browser is sent of the WASM (the packed bundle's brotli file, which the server
//! sends to every browser that accepts `br`), and the dashboard's first render in Chromium: navigation start to the hydrated page
//! (`body[data-hydrated="true"]`), median of several cold loads, by `end2end/bench/first-render.mjs`.

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

const WASM: &str = "pkg/sm8-webhooks_bg.wasm";
const JS: &str = "pkg/sm8-webhooks.js";
const SCRIPT: &str = "end2end/bench/first-render.mjs";
const CHROMIUM: &str = "/usr/bin/chromium";
const PAGE: &str = "/admin/webhook-dashboard";
const RENDER_TIMEOUT: Duration = Duration::from_secs(90);

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
    report.push(Figure::info("WASM raw", wasm.raw as f64 / 1000.0, "kB"));
    report.push(Figure::against(
        "WASM gzip",
        wasm.gzip as f64 / 1000.0,
        "kB",
        Target::Below(400.0),
    ));
    report.detail("wasm", wasm);
    let bundle = server::web::bundle_name(&site.join("pkg"));
    match std::fs::metadata(site.join("pkg").join(format!("{bundle}_bg.wasm.br"))) {
        Ok(sent) => {
            report.push(Figure::info("WASM as sent (brotli)", sent.len() as f64 / 1000.0, "kB"));
            report.detail("wasm_sent_brotli", sent.len());
        }
        Err(_) => report.note("the bundle is not packed (`make build` packs it): no compressed form is sent"),
    }
    if let Ok(js) = sizes(&site.join(JS)) {
        report.push(Figure::info("JS glue gzip", js.gzip as f64 / 1000.0, "kB"));
        report.detail("js", js);
    }
    println!("  WASM {} kB raw, {} kB gzip", wasm.raw / 1000, wasm.gzip / 1000);

    if let Some(missing) = first_render_missing() {
        report.note(format!("first render not measured: {missing}"));
        return Ok(());
    }
    let mut args = harness::serve_args(&databases.fresh("bundle").await?);
    args.processor.workers = 0;
    args.site_root = site;
    let server = harness::host_server(args).await?;
    let url = format!("http://{}{PAGE}", server.value);
    let rendered = first_render(&url, settings.page_loads()).await;
    server.stop_noting(report).await;
    let rendered = rendered?;
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
    Ok(())
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

async fn first_render(url: &str, loads: usize) -> anyhow::Result<FirstRender> {
    let output = tokio::time::timeout(
        RENDER_TIMEOUT,
        tokio::process::Command::new("node")
            .arg(SCRIPT)
            .arg(url)
            .arg(loads.to_string())
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
