//! `/admin/webhook-dashboard`: sign-in, pipeline statistics and the events table.

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::{get_stats, list_events, session_status, AppError, SignIn, SignOut};
use crate::model::{EventQuery, EventStatus, EventSummary, Stats};

#[component]
pub fn DashboardPage() -> impl IntoView {
    let sign_in = ServerAction::<SignIn>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let session = Resource::new(
        move || (sign_in.version().get(), sign_out.version().get()),
        |_| session_status(),
    );

    view! {
        <main class="page">
            <header class="topbar">
                <h1>"Webhook dashboard"</h1>
                <Transition fallback=|| ()>
                    {move || matches!(session.get(), Some(Ok(true))).then(|| view! {
                        <ActionForm action=sign_out attr:class="inline">
                            <button type="submit" class="secondary">"Sign out"</button>
                        </ActionForm>
                    })}
                </Transition>
            </header>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || session.get().map(|signed_in| match signed_in {
                    Ok(true) => view! { <Dashboard/> }.into_any(),
                    Ok(false) => view! { <SignInForm action=sign_in/> }.into_any(),
                    Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
                })}
            </Transition>
        </main>
    }
}

#[component]
fn SignInForm(action: ServerAction<SignIn>) -> impl IntoView {
    let error = move || match action.value().get() {
        Some(Err(error)) => Some(error.to_string()),
        _ => None,
    };
    view! {
        <section class="card signin" aria-labelledby="signin-title">
            <h2 id="signin-title">"Sign in"</h2>
            <p class="muted">"Use the admin token printed when the server started, or the value of ADMIN_TOKEN."</p>
            <ActionForm action>
                <label for="admin_token">"Admin token"</label>
                <input id="admin_token" name="admin_token" type="password" autocomplete="current-password" required/>
                <button type="submit">"Sign in"</button>
            </ActionForm>
            {move || error().map(|message| view! { <p class="error" role="alert">{message}</p> })}
        </section>
    }
}

#[component]
fn Dashboard() -> impl IntoView {
    let query = use_query_map();
    let status_filter = Memo::new(move |_| query.read().get("status").unwrap_or_default());
    let refreshes = RwSignal::new(0u32);
    let stats = Resource::new(move || refreshes.get(), |_| get_stats());
    let events = Resource::new(
        move || (status_filter.get(), refreshes.get()),
        |(status, _)| list_events(EventQuery { status: status.parse().ok(), ..EventQuery::default() }),
    );
    let navigate = use_navigate();
    let on_filter = move |ev: leptos::ev::Event| {
        let status = event_target_value(&ev);
        let target = if status.is_empty() { "?".to_owned() } else { format!("?status={status}") };
        navigate(&target, Default::default());
    };

    view! {
        <section aria-labelledby="stats-title">
            <div class="section-head">
                <h2 id="stats-title">"Statistics"</h2>
                <button type="button" class="secondary" on:click=move |_| refreshes.update(|n| *n += 1)>
                    "Refresh"
                </button>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading statistics…"</p> }>
                {move || stats.get().map(|result| match result {
                    Ok(stats) => view! { <StatsPanel stats/> }.into_any(),
                    Err(error) => error_view(error),
                })}
            </Transition>
        </section>
        <section aria-labelledby="events-title">
            <div class="section-head">
                <h2 id="events-title">"Events"</h2>
                <label class="filter">
                    "Status "
                    <select name="status" on:change=on_filter prop:value=move || status_filter.get()>
                        <option value="">"All"</option>
                        {EventStatus::ALL.map(|status| view! {
                            <option value=status.as_str()>{status.as_str()}</option>
                        })}
                    </select>
                </label>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading events…"</p> }>
                {move || events.get().map(|result| match result {
                    Ok(page) => view! { <EventsTable events=page.events/> }.into_any(),
                    Err(error) => error_view(error),
                })}
            </Transition>
        </section>
    }
}

fn error_view(error: AppError) -> AnyView {
    view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any()
}

#[component]
fn StatsPanel(stats: Stats) -> impl IntoView {
    let object_types = stats
        .by_object_type
        .iter()
        .map(|(object_type, count)| format!("{object_type}: {count}"))
        .collect::<Vec<_>>()
        .join(" · ");
    let notice = stats.notice.clone();
    view! {
        {notice.map(|notice| view! { <p class="notice" role="status">{notice}</p> })}
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
            "Last received: " {stats.last_received_at.unwrap_or_else(|| "never".into())}
            {(!object_types.is_empty()).then(|| format!(" · By object: {object_types}"))}
        </p>
    }
}

#[component]
fn EventsTable(events: Vec<EventSummary>) -> impl IntoView {
    if events.is_empty() {
        return view! { <p class="empty">"No events match."</p> }.into_any();
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
                    {events.into_iter().map(|event| view! {
                        <tr data-event-id=event.id.clone()>
                            <td><time datetime=event.received_at.clone()>{event.received_at.clone()}</time></td>
                            <td>{event.object_type}</td>
                            <td class="mono">{event.object_uuid}</td>
                            <td>{event.event_type}</td>
                            <td><span class=format!("badge status-{}", event.status)>{event.status.as_str()}</span></td>
                            <td>{event.attempts}</td>
                            <td>{event.last_error.unwrap_or_default()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
