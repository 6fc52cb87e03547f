//! Charts drawn as inline SVG by our own components: no chart library, nothing fetched at run time.

use leptos::prelude::*;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;

/// The largest value, at least 1 so an empty series still has a scale.
fn scale_max(values: &[f64]) -> f64 {
    values.iter().copied().fold(1.0, f64::max)
}

/// One bar per value (oldest first), with the peak written beside the chart.
#[component]
pub fn BarChart(
    #[prop(into)] title: String,
    values: Vec<f64>,
    /// CSS class giving the bars their colour.
    #[prop(into)]
    class: String,
    #[prop(into)] unit: String,
) -> impl IntoView {
    let max = scale_max(&values);
    let slot = WIDTH / values.len().max(1) as f64;
    let total: f64 = values.iter().sum();
    let bars = values
        .iter()
        .enumerate()
        .filter(|(_, value)| **value > 0.0)
        .map(|(i, value)| {
            let height = (value / max * (HEIGHT - 4.0)).max(1.0);
            view! {
                <rect x=format!("{:.1}", i as f64 * slot + 1.0) y=format!("{:.1}", HEIGHT - height)
                    width=format!("{:.1}", (slot - 2.0).max(1.0)) height=format!("{height:.1}")/>
            }
        })
        .collect_view();
    let summary = format!("{title}: {total:.0} {unit} in the last hour, at most {max:.0} in one minute");
    view! {
        <figure class="chart">
            <figcaption>{title.clone()}<span class="muted">{format!(" · peak {max:.0}/min")}</span></figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") class=class role="img" aria-label=summary
                preserveAspectRatio="none">
                <line class="axis" x1="0" y1=HEIGHT x2=WIDTH y2=HEIGHT/>
                {bars}
            </svg>
            <div class="chart-axis muted"><span>"60 min ago"</span><span>"now"</span></div>
        </figure>
    }
}

/// A line through the values that exist (oldest first); gaps where a minute had none.
#[component]
pub fn LineChart(#[prop(into)] title: String, values: Vec<Option<f64>>, #[prop(into)] unit: String) -> impl IntoView {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let max = scale_max(&present);
    let step = WIDTH / (values.len().max(2) - 1) as f64;
    let mut segments: Vec<Vec<String>> = vec![Vec::new()];
    for (i, value) in values.iter().enumerate() {
        match value {
            Some(value) => {
                let y = HEIGHT - 2.0 - value / max * (HEIGHT - 4.0);
                segments
                    .last_mut()
                    .expect("never empty")
                    .push(format!("{:.1},{y:.1}", i as f64 * step));
            }
            None if !segments.last().is_some_and(Vec::is_empty) => segments.push(Vec::new()),
            None => {}
        }
    }
    let lines = segments
        .into_iter()
        .filter(|points| !points.is_empty())
        .map(|points| {
            let dot = points.len() == 1;
            let first = points[0].clone();
            view! {
                <polyline points=points.join(" ")/>
                {dot.then(|| {
                    let (x, y) = first.split_once(',').unwrap_or(("0", "0"));
                    view! { <circle cx=x.to_owned() cy=y.to_owned() r="2.5"/> }
                })}
            }
        })
        .collect_view();
    let latest = present
        .last()
        .map(|v| format!("{v:.0} {unit}"))
        .unwrap_or_else(|| "no data".into());
    let summary = format!("{title}: latest {latest}, highest {max:.0} {unit}");
    view! {
        <figure class="chart">
            <figcaption>{title.clone()}<span class="muted">{format!(" · latest {latest}")}</span></figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") class="line" role="img" aria-label=summary
                preserveAspectRatio="none">
                <line class="axis" x1="0" y1=HEIGHT x2=WIDTH y2=HEIGHT/>
                {lines}
            </svg>
            <div class="chart-axis muted"><span>"60 min ago"</span><span>"now"</span></div>
        </figure>
    }
}
