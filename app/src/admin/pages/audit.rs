//! `/admin/audit`: who did what in the current account, newest first. The filters live in the URL, like the
//! events table's, so that a filtered view is rendered on the server and can be shared; pages follow the cursor.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::params::ParamsMap;

use super::time_or_dash;
use crate::admin::{AdminShell, Refresh};
use crate::components::ErrorNote;
use crate::directory::api::get_audit;
use crate::directory::model::{AuditEntryView, AuditFilter, AuditPage};

const AUDIT: &str = "/admin/audit";
const PAGE_SIZE: u32 = 50;
const OUTCOMES: [&str; 3] = ["success", "failure", "denied"];

#[component]
pub fn AuditLogPage() -> impl IntoView {
    view! {
        <Title text="Audit log · SM8 Webhooks"/>
        <AdminShell>
            <AuditLog/>
        </AdminShell>
    }
}

/// A `datetime-local` value (`2024-01-01T10:00`), taken as UTC, as RFC 3339.
fn utc_bound(local: String) -> String {
    match local.len() {
        16 => format!("{local}:00Z"),
        19 => format!("{local}Z"),
        _ => local,
    }
}

/// The filter the URL's parameters describe.
fn filter_of(params: &ParamsMap) -> AuditFilter {
    let text = |key: &str| params.get(key).filter(|value| !value.trim().is_empty());
    AuditFilter {
        action: text("action"),
        actor: text("actor"),
        outcome: text("outcome"),
        from: text("from").map(utc_bound),
        to: text("to").map(utc_bound),
        cursor: text("cursor"),
        limit: Some(PAGE_SIZE),
    }
}

#[component]
fn AuditLog() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let params = use_query_map();
    let page = Resource::new(
        move || (params.get(), refresh.get()),
        |(params, _)| get_audit(filter_of(&params)),
    );
    let navigate = use_navigate();
    let set_param = Callback::new(move |(key, value): (&'static str, String)| {
        let mut next = params.get_untracked();
        next.remove("cursor");
        if value.trim().is_empty() {
            next.remove(key);
        } else {
            next.replace(key, value);
        }
        navigate(&format!("{AUDIT}{}", next.to_query_string()), Default::default());
    });
    let param = move |key: &str| params.read().get(key).unwrap_or_default();
    let text_filter = move |key: &'static str, id: &'static str, label: &'static str, placeholder: &'static str| {
        view! {
            <div class="field">
                <label for=id>{label}</label>
                <input id=id name=key type="text" placeholder=placeholder prop:value=move || param(key)
                    on:change=move |ev| set_param.run((key, event_target_value(&ev)))/>
            </div>
        }
    };
    let time_filter = move |key: &'static str, id: &'static str, label: &'static str| {
        view! {
            <div class="field">
                <label for=id>{label}</label>
                <input id=id name=key type="datetime-local" prop:value=move || param(key)
                    on:change=move |ev| set_param.run((key, event_target_value(&ev)))/>
            </div>
        }
    };

    view! {
        <section aria-labelledby="audit-title">
            <h2 id="audit-title">"Audit log"</h2>
            <div class="filters" role="search">
                {text_filter("action", "audit-action", "Action", "e.g. sign_in")}
                {text_filter("actor", "audit-actor", "Actor", "part of an email or token name")}
                <div class="field">
                    <label for="audit-outcome">"Outcome"</label>
                    <select id="audit-outcome" name="outcome" prop:value=move || param("outcome")
                        on:change=move |ev| set_param.run(("outcome", event_target_value(&ev)))>
                        <option value="">"All"</option>
                        {OUTCOMES.map(|outcome| view! { <option value=outcome>{outcome}</option> })}
                    </select>
                </div>
                {time_filter("from", "audit-from", "Since (UTC)")}
                {time_filter("to", "audit-to", "Until (UTC)")}
                <a class="button secondary" href=AUDIT>"Clear filters"</a>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading the audit log…"</p> }>
                {move || page.get().map(|found| match found {
                    Ok(page) => view! { <AuditTable page params=params.get_untracked()/> }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn AuditTable(page: AuditPage, params: ParamsMap) -> impl IntoView {
    let on_later_page = params.get("cursor").is_some();
    let older = page.next_cursor.map(|cursor| {
        let mut next = params.clone();
        next.replace("cursor", cursor);
        format!("{AUDIT}{}", next.to_query_string())
    });
    let newest = {
        let mut first = params;
        first.remove("cursor");
        format!("{AUDIT}{}", first.to_query_string())
    };
    if page.entries.is_empty() {
        return view! {
            <p class="empty">"No audit entries match."</p>
            {on_later_page.then(|| view! { <a href=newest>"Back to the newest entries"</a> })}
        }
        .into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="audit">
                <thead>
                    <tr>
                        <th scope="col">"Time"</th>
                        <th scope="col">"Actor"</th>
                        <th scope="col">"Action"</th>
                        <th scope="col">"Target"</th>
                        <th scope="col">"Outcome"</th>
                        <th scope="col">"Client address"</th>
                        <th scope="col">"Detail"</th>
                    </tr>
                </thead>
                <tbody>
                    {page.entries.into_iter().map(|entry| view! { <AuditRow entry/> }).collect_view()}
                </tbody>
            </table>
        </div>
        <nav class="pager" aria-label="Pages of the audit log">
            {on_later_page.then(|| view! { <a class="button secondary" href=newest.clone()>"← Newest"</a> })}
            {older.map(|href| view! { <a class="button secondary" href=href>"Older →"</a> })}
        </nav>
    }
    .into_any()
}

#[component]
fn AuditRow(entry: AuditEntryView) -> impl IntoView {
    let outcome_class = match entry.outcome.as_str() {
        "success" => "badge status-success",
        "failure" => "badge status-failed",
        _ => "badge status-skipped",
    };
    // A user or token is named; the admin token, the server itself and anonymous callers by their kind.
    let actor = entry.actor.unwrap_or_else(|| entry.actor_kind.replace('_', " "));
    let detail = entry
        .detail
        .filter(|detail| !detail.is_null())
        .map(|detail| detail.to_string())
        .unwrap_or_default();
    view! {
        <tr data-audit-id=entry.id>
            <td>{time_or_dash(Some(entry.at))}</td>
            <td>{actor}</td>
            <td class="mono">{entry.action}</td>
            <td>{entry.target.unwrap_or_default()}</td>
            <td><span class=outcome_class>{entry.outcome}</span></td>
            <td class="mono">{entry.client_address.unwrap_or_default()}</td>
            <td class="mono detail">{detail}</td>
        </tr>
    }
}
