//! The analytics page's charts, drawn as inline SVG like the dashboard's (`components::chart`): bars stacked by
//! key per bucket, percentile lines, and a ranked list of bars. Each chart carries a text summary for screen
//! readers and a legend that names its colours.

use leptos::prelude::*;

use crate::analytics::model::Percentiles;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 160.0;

/// Keys that keep one colour wherever they appear; other keys take the palette's colours in turn.
const OUTCOMES: [&str; 4] = ["success", "failed", "skipped", "delivered"];
const PALETTE: usize = 6;

/// The class the stylesheet colours a series by: an outcome's own (`series-failed`, also for `ops: failed`), or
/// the palette's `series-{index % 6}`.
pub(super) fn series_class(key: &str, index: usize) -> String {
    match OUTCOMES
        .iter()
        .find(|outcome| key == **outcome || key.ends_with(&format!(": {outcome}")))
    {
        Some(outcome) => format!("series-{outcome}"),
        None => format!("series-{}", index % PALETTE),
    }
}

/// The label of a bucket's start (RFC 3339) on an axis: `MM-DD HH:MM` by hour, `YYYY-MM-DD` by day.
pub(super) fn bucket_label(start: &str, by_day: bool) -> String {
    let label = if by_day { start.get(..10) } else { start.get(5..16) };
    label.unwrap_or(start).replace('T', " ")
}

#[component]
fn Legend(keys: Vec<String>) -> impl IntoView {
    view! {
        <ul class="legend">
            {keys.into_iter().enumerate().map(|(index, key)| view! {
                <li><span class=format!("swatch {}", series_class(&key, index)) aria-hidden="true"></span>{key}</li>
            }).collect_view()}
        </ul>
    }
}

/// One stacked bar per bucket, oldest first: each key's count on top of the previous keys'.
#[component]
pub fn StackedBars(
    #[prop(into)] title: String,
    /// `(bucket label, counts by key)`.
    buckets: Vec<(String, Vec<(String, i64)>)>,
    keys: Vec<String>,
) -> impl IntoView {
    let totals: Vec<i64> = buckets
        .iter()
        .map(|(_, counts)| counts.iter().map(|(_, n)| n).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let slot = WIDTH / buckets.len().max(1) as f64;
    let rects = buckets
        .iter()
        .enumerate()
        .flat_map(|(i, (label, counts))| {
            let mut top = HEIGHT;
            keys.iter()
                .enumerate()
                .filter_map(|(index, key)| {
                    let count = counts.iter().find(|(k, _)| k == key).map(|(_, n)| *n).unwrap_or(0);
                    (count > 0).then(|| {
                        let height = (count as f64 / max * (HEIGHT - 4.0)).max(1.0);
                        top -= height;
                        view! {
                            <rect class=series_class(key, index) x=format!("{:.1}", i as f64 * slot + 0.5)
                                y=format!("{top:.1}") width=format!("{:.1}", (slot - 1.0).max(0.5))
                                height=format!("{height:.1}")>
                                <title>{format!("{label} · {key}: {count}")}</title>
                            </rect>
                        }
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect_view();
    let total: i64 = totals.iter().sum();
    let summary = format!("{title}: {total} in all, at most {max:.0} in one bucket");
    let first = buckets.first().map(|(label, _)| label.clone()).unwrap_or_default();
    let last = buckets.last().map(|(label, _)| label.clone()).unwrap_or_default();
    view! {
        <figure class="chart wide">
            <figcaption>{title}<span class="muted">{format!(" · peak {max:.0}")}</span></figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") class="stacked" role="img" aria-label=summary
                preserveAspectRatio="none">
                <line class="axis" x1="0" y1=HEIGHT x2=WIDTH y2=HEIGHT/>
                {rects}
            </svg>
            <div class="chart-axis muted"><span>{first}</span><span>{last}</span></div>
            <Legend keys/>
        </figure>
    }
}

/// Lines of p50, p95 and p99 per bucket (milliseconds), with gaps where a bucket had no samples.
#[component]
pub fn PercentileLines(#[prop(into)] title: String, labels: Vec<String>, values: Vec<Percentiles>) -> impl IntoView {
    let highest = values
        .iter()
        .flat_map(|p| [p.p50_ms, p.p95_ms, p.p99_ms])
        .flatten()
        .max()
        .unwrap_or(0);
    let max = highest.max(1) as f64;
    let step = WIDTH / (values.len().max(2) - 1) as f64;
    let line = |pick: fn(&Percentiles) -> Option<u64>| {
        let mut segments: Vec<Vec<String>> = vec![Vec::new()];
        for (i, value) in values.iter().map(pick).enumerate() {
            match value {
                Some(value) => segments.last_mut().expect("never empty").push(format!(
                    "{:.1},{:.1}",
                    i as f64 * step,
                    HEIGHT - 2.0 - value as f64 / max * (HEIGHT - 4.0)
                )),
                None if !segments.last().is_some_and(Vec::is_empty) => segments.push(Vec::new()),
                None => {}
            }
        }
        segments
            .into_iter()
            .filter(|points| !points.is_empty())
            .map(|points| match points.as_slice() {
                [single] => {
                    let (x, y) = single.split_once(',').unwrap_or(("0", "0"));
                    view! { <circle cx=x.to_owned() cy=y.to_owned() r="3"/> }.into_any()
                }
                _ => view! { <polyline points=points.join(" ")/> }.into_any(),
            })
            .collect_view()
    };
    let keys = ["p50", "p95", "p99"];
    let samples = values.iter().filter(|p| p.samples > 0).count();
    let summary = if samples == 0 {
        format!("{title}: no samples")
    } else {
        format!("{title}: the highest p99 of a bucket is {highest} ms")
    };
    let first = labels.first().cloned().unwrap_or_default();
    let last = labels.last().cloned().unwrap_or_default();
    view! {
        <figure class="chart">
            <figcaption>{title}<span class="muted">{format!(" · max {highest} ms")}</span></figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") class="percentiles" role="img" aria-label=summary
                preserveAspectRatio="none">
                <line class="axis" x1="0" y1=HEIGHT x2=WIDTH y2=HEIGHT/>
                <g class="series-p50">{line(|p| p.p50_ms)}</g>
                <g class="series-p95">{line(|p| p.p95_ms)}</g>
                <g class="series-p99">{line(|p| p.p99_ms)}</g>
            </svg>
            <div class="chart-axis muted"><span>{first}</span><span>{last}</span></div>
            <ul class="legend">
                {keys.map(|key| view! {
                    <li><span class=format!("swatch series-{key}") aria-hidden="true"></span>{key}</li>
                })}
            </ul>
        </figure>
    }
}

/// Horizontal bars, largest first, each with its count: a list a screen reader reads as it is.
#[component]
pub fn RankedBars(
    #[prop(into)] title: String,
    entries: Vec<(String, i64)>,
    #[prop(into)] empty: String,
) -> impl IntoView {
    let max = entries.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    view! {
        <figure class="chart ranked">
            <figcaption>{title}</figcaption>
            {if entries.is_empty() {
                view! { <p class="muted">{empty}</p> }.into_any()
            } else {
                view! {
                    <ol>
                        {entries.into_iter().enumerate().map(|(index, (key, count))| view! {
                            <li>
                                <span class="ranked-key mono">{key.clone()}</span>
                                <span class="ranked-bar" aria-hidden="true">
                                    <span class=series_class(&key, index)
                                        style=format!("width: {:.1}%", count as f64 / max * 100.0)></span>
                                </span>
                                <span class="ranked-count">{count}</span>
                            </li>
                        }).collect_view()}
                    </ol>
                }.into_any()
            }}
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_keep_their_colour_whatever_their_place_and_other_keys_take_turns() {
        assert_eq!(series_class("failed", 3), "series-failed");
        assert_eq!(series_class("ops: delivered", 0), "series-delivered");
        assert_eq!(series_class("job", 7), "series-1");
        assert_eq!(bucket_label("2026-01-02T03:00:00Z", false), "01-02 03:00");
        assert_eq!(bucket_label("2026-01-02T00:00:00Z", true), "2026-01-02");
    }
}
