//! The dashboard's numbers: counts by status, queue, success rate, processing times, API budget; and the
//! last hour as charts.

use leptos::prelude::*;

use super::Refresh;
use crate::api::{get_minute_buckets, get_pipeline_health, get_stats};
use crate::components::{BarChart, ErrorNote, LineChart, LocalTime};
use crate::model::{EventStatus, MinuteBucket, PipelineHealth, Stats};

#[component]
pub fn HealthPanel() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let stats = Resource::new(move || refresh.get(), |_| get_stats());
    let health = Resource::new(move || refresh.get(), |_| get_pipeline_health());
    view! {
        <section aria-labelledby="stats-title">
            <h2 id="stats-title">"Statistics"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading statistics…"</p> }>
                {move || stats.get().map(|result| match result {
                    Ok(stats) => view! { <StatusCounts stats/> }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
                {move || health.get().map(|result| match result {
                    Ok(health) => view! { <HealthCards health/> }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn StatusCounts(stats: Stats) -> impl IntoView {
    let object_types = stats
        .by_object_type
        .iter()
        .map(|(object_type, count)| format!("{object_type}: {count}"))
        .collect::<Vec<_>>()
        .join(" · ");
    view! {
        {stats.notice.clone().map(|notice| view! { <p class="notice" role="status">{notice}</p> })}
        <dl class="stats">
            <div class="stat"><dt>"Total"</dt><dd data-stat="total">{stats.total}</dd></div>
            {EventStatus::ALL.map(|status| view! {
                <div class=format!("stat status-{status}")>
                    <dt>{status.as_str()}</dt>
                    <dd data-stat=status.as_str()>{stats.count(status)}</dd>
                </div>
            })}
        </dl>
        <p class="muted">
            "Last received: "
            {match stats.last_received_at {
                Some(at) => view! { <LocalTime iso=at/> }.into_any(),
                None => "never".into_any(),
            }}
            {(!object_types.is_empty()).then(|| format!(" · By object: {object_types}"))}
        </p>
    }
}

fn millis(value: Option<f64>) -> String {
    match value {
        Some(ms) if ms >= 10_000.0 => format!("{:.1} s", ms / 1000.0),
        Some(ms) => format!("{ms:.0} ms"),
        None => "–".into(),
    }
}

fn age(seconds: Option<i64>) -> String {
    match seconds {
        None => "none queued".into(),
        Some(s) if s < 120 => format!("{s} s"),
        Some(s) if s < 7_200 => format!("{} min", s / 60),
        Some(s) => format!("{} h", s / 3600),
    }
}

#[component]
fn HealthCards(health: PipelineHealth) -> impl IntoView {
    let budget = health.api_budget.clone();
    let cards = [
        ("Queue depth", health.queue_depth.to_string(), "queue-depth"),
        ("Oldest queued", age(health.oldest_queued_seconds), "oldest-queued"),
        (
            "Success rate (1 h)",
            health
                .success_rate
                .map(|r| format!("{:.1}%", r * 100.0))
                .unwrap_or_else(|| "–".into()),
            "success-rate",
        ),
        ("Mean processing", millis(health.mean_processing_ms), "mean-processing"),
        ("p95 processing", millis(health.p95_processing_ms), "p95-processing"),
        (
            "API this minute",
            format!("{} / {}", budget.minute_used, budget.minute_limit),
            "api-minute",
        ),
        (
            "API today",
            format!("{} / {}", budget.day_used, budget.day_limit),
            "api-day",
        ),
    ];
    view! {
        <dl class="stats health">
            {cards.into_iter().map(|(label, value, key)| view! {
                <div class="stat"><dt>{label}</dt><dd class="small" data-health=key>{value}</dd></div>
            }).collect_view()}
        </dl>
    }
}

#[component]
pub fn Charts() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let buckets = Resource::new(move || refresh.get(), |_| get_minute_buckets());
    view! {
        <section aria-labelledby="charts-title">
            <h2 id="charts-title">"Last hour"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading charts…"</p> }>
                {move || buckets.get().map(|result| match result {
                    Ok(buckets) => view! { <ChartGrid buckets/> }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ChartGrid(buckets: Vec<MinuteBucket>) -> impl IntoView {
    let received = buckets.iter().map(|b| b.received as f64).collect::<Vec<_>>();
    let failed = buckets.iter().map(|b| b.failed as f64).collect::<Vec<_>>();
    let latency = buckets.iter().map(|b| b.mean_latency_ms).collect::<Vec<_>>();
    view! {
        <div class="charts">
            <BarChart title="Throughput (received per minute)" values=received class="bars" unit="events"/>
            <LineChart title="Processing latency (mean per minute)" values=latency unit="ms"/>
            <BarChart title="Errors (failed per minute)" values=failed class="bars errors" unit="failed events"/>
        </div>
    }
}
