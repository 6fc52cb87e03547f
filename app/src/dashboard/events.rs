//! The events table: filters kept in the URL (so a filtered view can be shared and is rendered on the
//! server), newest first, paged by cursor.

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::params::ParamsMap;

use super::Refresh;
use crate::api::list_events;
use crate::components::{ErrorNote, LocalTime};
use crate::model::{EventPage, EventQuery, EventStatus};
use crate::objects::OBJECTS;

const DASHBOARD: &str = "/admin/webhook-dashboard";
/// Time ranges offered by the filter: (query value, label, minutes).
const RANGES: [(&str, &str, i64); 4] = [
    ("15m", "Last 15 minutes", 15),
    ("1h", "Last hour", 60),
    ("24h", "Last 24 hours", 1_440),
    ("7d", "Last 7 days", 10_080),
];

/// Milliseconds since the epoch on whichever side runs this.
fn now_millis() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now() as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as i64)
            .unwrap_or_default()
    }
}

/// The query the URL's parameters describe.
fn query_of(params: &ParamsMap) -> EventQuery {
    let text = |key: &str| params.get(key).filter(|value| !value.trim().is_empty());
    let received_from = text("range")
        .and_then(|range| RANGES.iter().find(|(value, _, _)| *value == range))
        .map(|(_, _, minutes)| now_millis() - minutes * 60_000);
    EventQuery {
        status: text("status").and_then(|status| status.parse().ok()),
        object_type: text("object_type"),
        event_type: text("event_type").map(|t| t.trim().to_ascii_lowercase()),
        search: text("search"),
        received_from,
        received_to: None,
        cursor: text("cursor"),
        limit: Some(25),
    }
}

#[component]
pub fn EventsSection() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let params = use_query_map();
    let events = Resource::new(
        move || (params.get(), refresh.get()),
        |(params, _)| list_events(query_of(&params)),
    );
    let navigate = use_navigate();
    // A Callback is Copy, so every filter's handler can hold it.
    let set_param = Callback::new(move |(key, value): (&'static str, String)| {
        let mut next = params.get_untracked();
        next.remove("cursor");
        if value.is_empty() {
            next.remove(key);
        } else {
            next.replace(key, value);
        }
        navigate(&format!("{DASHBOARD}{}", next.to_query_string()), Default::default());
    });
    let param = move |key: &str| params.read().get(key).unwrap_or_default();

    view! {
        <section aria-labelledby="events-title">
            <h2 id="events-title">"Events"</h2>
            <div class="filters" role="search">
                <div class="field">
                    <label for="filter-status">"Status"</label>
                    <select id="filter-status" name="status" prop:value=move || param("status")
                        on:change=move |ev| set_param.run(("status", event_target_value(&ev)))>
                        <option value="">"All"</option>
                        {EventStatus::ALL.map(|status| view! { <option value=status.as_str()>{status.as_str()}</option> })}
                    </select>
                </div>
                <div class="field">
                    <label for="filter-object">"Object"</label>
                    <select id="filter-object" name="object_type" prop:value=move || param("object_type")
                        on:change=move |ev| set_param.run(("object_type", event_target_value(&ev)))>
                        <option value="">"All"</option>
                        {OBJECTS.map(|spec| view! { <option value=spec.object_type>{spec.object_type}</option> })}
                    </select>
                </div>
                <div class="field">
                    <label for="filter-event-type">"Event type"</label>
                    <input id="filter-event-type" name="event_type" type="text" placeholder="e.g. status_changed"
                        prop:value=move || param("event_type")
                        on:change=move |ev| set_param.run(("event_type", event_target_value(&ev)))/>
                </div>
                <div class="field">
                    <label for="filter-search">"UUID or event id"</label>
                    <input id="filter-search" name="search" type="search" placeholder="part of a uuid"
                        prop:value=move || param("search")
                        on:change=move |ev| set_param.run(("search", event_target_value(&ev)))/>
                </div>
                <div class="field">
                    <label for="filter-range">"Received"</label>
                    <select id="filter-range" name="range" prop:value=move || param("range")
                        on:change=move |ev| set_param.run(("range", event_target_value(&ev)))>
                        <option value="">"Any time"</option>
                        {RANGES.map(|(value, label, _)| view! { <option value=value>{label}</option> })}
                    </select>
                </div>
                <a class="button secondary" href=DASHBOARD>"Clear filters"</a>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading events…"</p> }>
                {move || events.get().map(|result| match result {
                    Ok(page) => view! { <EventsTable page params=params.get_untracked()/> }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn EventsTable(page: EventPage, params: ParamsMap) -> impl IntoView {
    let on_later_page = params.get("cursor").is_some();
    let older = page.next_cursor.map(|cursor| {
        let mut next = params.clone();
        next.replace("cursor", cursor);
        format!("{DASHBOARD}{}", next.to_query_string())
    });
    let newest = {
        let mut first = params;
        first.remove("cursor");
        format!("{DASHBOARD}{}", first.to_query_string())
    };
    if page.events.is_empty() {
        return view! {
            <p class="empty">"No events match."</p>
            {on_later_page.then(|| view! { <a href=newest>"Back to the newest events"</a> })}
        }
        .into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="events">
                <thead>
                    <tr>
                        <th scope="col">"Received"</th>
                        <th scope="col">"Object"</th>
                        <th scope="col">"UUID"</th>
                        <th scope="col">"Event"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Attempts"</th>
                        <th scope="col">"Last error"</th>
                    </tr>
                </thead>
                <tbody>
                    {page.events.into_iter().map(|event| {
                        let href = format!("{DASHBOARD}/events/{}", event.id);
                        view! {
                            <tr data-event-id=event.id.clone()>
                                <td><a href=href aria-label=format!("Details of event {}", event.id)>
                                    <LocalTime iso=event.received_at.clone()/>
                                </a></td>
                                <td>{event.object_type}</td>
                                <td class="mono">{event.object_uuid}</td>
                                <td>{event.event_type}</td>
                                <td><span class=format!("badge status-{}", event.status)>{event.status.as_str()}</span></td>
                                <td>{event.attempts}</td>
                                <td class="error-cell">{event.last_error.unwrap_or_default()}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <nav class="pager" aria-label="Pages of events">
            {on_later_page.then(|| view! { <a class="button secondary" href=newest.clone()>"← Newest"</a> })}
            {older.map(|href| view! { <a class="button secondary" href=href>"Older →"</a> })}
        </nav>
    }
    .into_any()
}
