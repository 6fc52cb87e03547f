//! `/admin/analytics`: what the pipeline did over a range (24 hours, 7, 30 or 90 days, or dates of one's own),
//! from the rollups that outlive the events: throughput by the chosen dimension, latency percentiles, error
//! classes, the objects that failed most and deliveries by destination, each total beside the previous period's.
//! The range and dimension live in the URL, so a view is rendered on the server and can be shared; the export
//! links download what is shown, as CSV or JSON. Below, the account's digest (`analytics_digest.rs`).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::params::ParamsMap;

use super::analytics_charts::{bucket_label, PercentileLines, RankedBars, StackedBars};
use super::analytics_digest::DigestPanel;
use crate::admin::{AdminShell, Refresh};
use crate::analytics::api::load_analytics;
use crate::analytics::model::{
    change_percent, AnalyticsBucket, AnalyticsDimension, AnalyticsQuery, AnalyticsRange, AnalyticsReport,
    AnalyticsTotals, Percentiles,
};
use crate::components::ErrorNote;

const ANALYTICS: &str = "/admin/analytics";
const EXPORT: &str = "/api/webhooks/management/analytics/export";

#[component]
pub fn AnalyticsPage() -> impl IntoView {
    view! {
        <Title text="Analytics · SM8 Webhooks"/>
        <AdminShell>
            <Analytics/>
        </AdminShell>
    }
}

/// The report the URL's parameters ask for; what it does not name takes the defaults (24 h, by outcome).
fn query_of(params: &ParamsMap) -> AnalyticsQuery {
    let text = |key: &str| params.get(key).filter(|value| !value.trim().is_empty());
    AnalyticsQuery {
        range: text("range")
            .and_then(|range| AnalyticsRange::parse(&range))
            .unwrap_or_default(),
        from: text("from"),
        to: text("to"),
        dimension: text("dimension")
            .and_then(|dimension| AnalyticsDimension::parse(&dimension))
            .unwrap_or_default(),
    }
}

fn href(query: &AnalyticsQuery) -> String {
    format!("{ANALYTICS}?{}", query.to_query_string())
}

fn dimension_label(dimension: AnalyticsDimension) -> &'static str {
    match dimension {
        AnalyticsDimension::Outcome => "Events by outcome",
        AnalyticsDimension::ObjectType => "Events by object type",
        AnalyticsDimension::EventType => "Events by event type",
        AnalyticsDimension::ErrorClass => "Failed attempts by error class",
        AnalyticsDimension::Destination => "Deliveries by destination and outcome",
    }
}

#[component]
fn Analytics() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let params = use_query_map();
    let query = Memo::new(move |_| query_of(&params.read()));
    let report = Resource::new(move || (query.get(), refresh.get()), |(query, _)| load_analytics(query));
    view! {
        <section aria-labelledby="analytics-title" class="analytics">
            <div class="section-head">
                <h2 id="analytics-title">"Analytics"</h2>
                <div class="export" role="group" aria-label="Export what is shown">
                    <a class="button secondary" download=""
                        href=move || format!("{EXPORT}?format=csv&{}", query.get().to_query_string())>
                        "Export CSV"
                    </a>
                    <a class="button secondary" download=""
                        href=move || format!("{EXPORT}?format=json&{}", query.get().to_query_string())>
                        "Export JSON"
                    </a>
                </div>
            </div>
            <RangePicker query/>
            <Transition fallback=|| view! { <p class="muted">"Loading the analytics…"</p> }>
                {move || report.get().map(|found| match found {
                    Ok(report) => view! { <Report report/> }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
        </section>
        <DigestPanel/>
    }
}

/// The fixed ranges as links, a form for dates of one's own, and the dimension the charts count by.
#[component]
fn RangePicker(query: Memo<AnalyticsQuery>) -> impl IntoView {
    let navigate = use_navigate();
    let fixed = AnalyticsRange::ALL
        .into_iter()
        .filter(|range| *range != AnalyticsRange::Custom)
        .map(|range| {
            let link = move || {
                href(&AnalyticsQuery {
                    range,
                    from: None,
                    to: None,
                    dimension: query.get().dimension,
                })
            };
            let current = move || (query.get().range == range).then_some("page");
            view! { <a class="button secondary" href=link aria-current=current>{range.label()}</a> }
        })
        .collect_view();
    let on_dimension = move |ev| {
        let mut next = query.get_untracked();
        next.dimension = AnalyticsDimension::parse(&event_target_value(&ev)).unwrap_or_default();
        navigate(&href(&next), Default::default());
    };
    let custom_value = move |pick: fn(&AnalyticsQuery) -> Option<String>| {
        move || {
            let query = query.get();
            if query.range == AnalyticsRange::Custom {
                pick(&query).unwrap_or_default()
            } else {
                String::new()
            }
        }
    };
    view! {
        <div class="filters range-picker">
            <nav class="ranges" aria-label="Range">{fixed}</nav>
            <form class="custom-range" method="get" action=ANALYTICS aria-label="Custom range">
                <input type="hidden" name="range" value="custom"/>
                <input type="hidden" name="dimension" prop:value=move || query.get().dimension.as_str()/>
                <div class="field">
                    <label for="analytics-from">"From (UTC)"</label>
                    <input id="analytics-from" name="from" type="date" required
                        prop:value=custom_value(|query| query.from.clone())/>
                </div>
                <div class="field">
                    <label for="analytics-to">"To (UTC, included)"</label>
                    <input id="analytics-to" name="to" type="date" required
                        prop:value=custom_value(|query| query.to.clone())/>
                </div>
                <button type="submit" class="secondary"
                    aria-current=move || (query.get().range == AnalyticsRange::Custom).then_some("page")>
                    "Show custom range"
                </button>
            </form>
            <div class="field">
                <label for="analytics-dimension">"Count by"</label>
                <select id="analytics-dimension" name="dimension"
                    prop:value=move || query.get().dimension.as_str() on:change=on_dimension>
                    {AnalyticsDimension::ALL.map(|dimension| view! {
                        <option value=dimension.as_str()>{dimension_label(dimension)}</option>
                    })}
                </select>
            </div>
        </div>
    }
}

/// How `current` compares with `previous`: the change in percent, marked better or worse.
#[component]
fn Change(current: i64, previous: i64, higher_is_worse: bool) -> impl IntoView {
    let (text, class) = match change_percent(current, previous) {
        None if current == 0 => ("no change".to_owned(), "change"),
        None => ("new in this period".to_owned(), "change"),
        Some(percent) if percent.abs() < 0.5 => ("no change".to_owned(), "change"),
        Some(percent) => {
            let worse = (percent > 0.0) == higher_is_worse;
            let arrow = if percent > 0.0 { "▲" } else { "▼" };
            (
                format!("{arrow} {:.0}%", percent.abs()),
                if worse { "change worse" } else { "change better" },
            )
        }
    };
    view! { <span class=class title=format!("previous period: {previous}")>{text}</span> }
}

/// One summary figure with its change against the previous period.
#[component]
fn Figure(label: &'static str, current: i64, previous: i64, #[prop(optional)] higher_is_worse: bool) -> impl IntoView {
    view! {
        <div class="stat">
            <dt>{label}</dt>
            <dd>{current}</dd>
            <dd class="muted"><Change current previous higher_is_worse/>" vs previous"</dd>
        </div>
    }
}

/// A p95 latency with its change; a dash for a period without samples.
#[component]
fn LatencyFigure(label: &'static str, current: Percentiles, previous: Percentiles) -> impl IntoView {
    let p95 = |percentiles: &Percentiles| percentiles.p95_ms.map_or(0, |ms| ms as i64);
    view! {
        <div class="stat">
            <dt>{label}</dt>
            <dd>{current.p95_ms.map_or_else(|| "–".to_owned(), |ms| format!("{ms} ms"))}</dd>
            <dd class="muted">
                <Change current=p95(&current) previous=p95(&previous) higher_is_worse=true/>" vs previous"
            </dd>
        </div>
    }
}

fn failed(totals: &AnalyticsTotals) -> i64 {
    totals.by_outcome.get("failed").copied().unwrap_or(0)
}

/// The keys a report's buckets count, the largest total first.
fn ranked(map: &std::collections::BTreeMap<String, i64>) -> Vec<(String, i64)> {
    let mut entries: Vec<(String, i64)> = map.iter().map(|(key, count)| (key.clone(), *count)).collect();
    entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    entries
}

#[component]
fn Report(report: AnalyticsReport) -> impl IntoView {
    let by_day = report.bucket == "day";
    let labels: Vec<String> = report
        .buckets
        .iter()
        .map(|bucket| bucket_label(&bucket.start, by_day))
        .collect();
    let keys: Vec<String> = ranked(&report.totals.by_key).into_iter().map(|(key, _)| key).collect();
    let stacked = report
        .buckets
        .iter()
        .zip(&labels)
        .map(|(bucket, label)| (label.clone(), bucket.counts.clone().into_iter().collect()))
        .collect();
    let latency = |pick: fn(&AnalyticsBucket) -> Percentiles| report.buckets.iter().map(pick).collect::<Vec<_>>();
    let processing = latency(|bucket| bucket.processing);
    let browser = latency(|bucket| bucket.browser);
    let (totals, previous) = (&report.totals, &report.previous);
    let refused_total = |totals: &AnalyticsTotals| totals.refused.values().sum::<i64>();
    let failing: Vec<(String, i64)> = totals
        .top_failing_objects
        .iter()
        .map(|object| (object.object.clone(), object.failures))
        .collect();
    view! {
        <p class="muted period">
            {format!("{} to {} (UTC), by {}", report.from.replace('T', " "), report.to.replace('T', " "), report.bucket)}
        </p>
        <dl class="stats analytics-summary">
            <Figure label="Events" current=totals.events previous=previous.events/>
            <Figure label="Failed" current=failed(totals) previous=failed(previous) higher_is_worse=true/>
            <LatencyFigure label="Processing p95" current=totals.processing previous=previous.processing/>
            <LatencyFigure label="Webhook → browser p95" current=totals.browser previous=previous.browser/>
            <Figure label="API requests" current=totals.api_requests previous=previous.api_requests/>
            <Figure label="Duplicates" current=totals.duplicates previous=previous.duplicates/>
            <Figure label="Refused deliveries" current=refused_total(totals) previous=refused_total(previous)
                higher_is_worse=true/>
        </dl>
        <div class="charts analytics-charts">
            <StackedBars title=dimension_label(report.dimension) buckets=stacked keys/>
            <PercentileLines title="Processing latency (ms)" labels=labels.clone() values=processing/>
            <PercentileLines title="Webhook → browser latency (ms)" labels=labels values=browser/>
            <RankedBars title="Error classes" entries=ranked(&totals.error_classes)
                empty="No failed attempts in this range."/>
            <RankedBars title="Objects that failed most" entries=failing
                empty="No event failed for good in this range."/>
        </div>
        <Deliveries totals=totals.clone()/>
    }
}

#[component]
fn Deliveries(totals: AnalyticsTotals) -> impl IntoView {
    if totals.deliveries.is_empty() {
        return view! { <p class="empty">"No deliveries finished in this range."</p> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="analytics-deliveries">
                <caption>"Deliveries by destination"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Destination"</th>
                        <th scope="col">"Delivered"</th>
                        <th scope="col">"Failed"</th>
                    </tr>
                </thead>
                <tbody>
                    {totals.deliveries.into_iter().map(|destination| view! {
                        <tr>
                            <th scope="row">{destination.destination}</th>
                            <td>{destination.delivered}</td>
                            <td>{destination.failed}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
