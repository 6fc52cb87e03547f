//! `/admin/alerts`: the account's alerts with where each stands (firing, acknowledged, silenced), acknowledging
//! and silencing them, their thresholds and destinations, and the history of their transitions. Changes arrive
//! live; the banner at the top of every admin page shows what fires unacknowledged.

use leptos::prelude::*;
use leptos_meta::Title;

use super::{failure, time_or_dash, Failure};
use crate::access::Role;
use crate::admin::{AdminShell, CurrentVisitor, LiveUpdates, Refresh};
use crate::alerts::api::{alert_history, list_alerts, AcknowledgeAlert, SilenceAlert, UpdateAlert};
use crate::alerts::model::{AlertForm, AlertHistoryEntry, AlertState, AlertView};
use crate::components::ErrorNote;
use crate::outbound::api::list_destinations;
use crate::outbound::model::DestinationView;

/// How long "Silence" silences, in minutes.
const SILENCE_MINUTES: i64 = 60;
/// History lines per page.
const HISTORY_PAGE: u32 = 25;

#[component]
pub fn AlertsPage() -> impl IntoView {
    view! {
        <Title text="Alerts · SM8 Webhooks"/>
        <AdminShell>
            <Alerts/>
        </AdminShell>
    }
}

/// What can be done to alerts, created once above the views they refresh.
#[derive(Clone, Copy)]
struct AlertActions {
    acknowledge: ServerAction<AcknowledgeAlert>,
    silence: ServerAction<SilenceAlert>,
    update: ServerAction<UpdateAlert>,
}

#[component]
fn Alerts() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let actions = AlertActions {
        acknowledge: ServerAction::new(),
        silence: ServerAction::new(),
        update: ServerAction::new(),
    };
    let changed = move || {
        (
            refresh.get(),
            actions.acknowledge.version().get(),
            actions.silence.version().get(),
            actions.update.version().get(),
        )
    };
    let alerts = Resource::new(changed, |_| list_alerts());
    let destinations = Resource::new(move || refresh.get(), |_| list_destinations());
    let editing = RwSignal::new(None::<String>);
    view! {
        <section aria-labelledby="alerts-title">
            <div class="section-head">
                <h2 id="alerts-title">"Alerts"</h2>
                <LiveUpdates/>
            </div>
            <p class="muted">
                "Each alert notifies its destinations when it fires and when it resolves, and again after its \
                 re-notify interval while it keeps firing, unless acknowledged. A silenced alert still records \
                 what happens, without notifying."
            </p>
            <Failure error=failure(actions.acknowledge)/>
            <Failure error=failure(actions.silence)/>
            <Transition fallback=|| view! { <p class="muted">"Loading alerts…"</p> }>
                {move || alerts.get().map(|found| match found {
                    Ok(alerts) => {
                        let destinations = destinations.get().and_then(Result::ok).unwrap_or_default();
                        view! { <AlertTable alerts destinations actions editing/> }.into_any()
                    }
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
        </section>
        <History changed=Signal::derive(changed)/>
    }
}

#[component]
fn AlertTable(
    alerts: Vec<AlertView>,
    destinations: Vec<DestinationView>,
    actions: AlertActions,
    editing: RwSignal<Option<String>>,
) -> impl IntoView {
    let visitor = expect_context::<CurrentVisitor>();
    let admin = untrack(move || visitor.may(Role::Admin));
    let destinations = StoredValue::new(destinations);
    view! {
        <div class="table-wrap">
            <table class="alerts">
                <thead>
                    <tr>
                        <th scope="col">"Alert"</th>
                        <th scope="col">"State"</th>
                        <th scope="col">"Since"</th>
                        <th scope="col">"Notifies"</th>
                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {alerts.into_iter().map(|alert| {
                        let names = destinations.with_value(|all| names_of(all, &alert.destination_ids));
                        let shown = alert.id.clone();
                        let form_alert = alert.clone();
                        view! {
                            <tr data-alert-kind=alert.kind.as_str() data-state=alert.state.as_str()>
                                <td>
                                    <strong>{alert.title.clone()}</strong>
                                    {(!alert.enabled).then(|| view! { " " <span class="badge">"off"</span> })}
                                    <div class="muted small">{alert.summary.clone().unwrap_or_default()}</div>
                                </td>
                                <td><StateBadges alert=alert.clone()/></td>
                                <td>{time_or_dash(alert.firing_since.clone())}</td>
                                <td>{if names.is_empty() { "the dashboard only".to_owned() } else { names }}</td>
                                <td class="row-actions">
                                    {admin.then(|| view! { <AlertButtons alert=alert.clone() actions editing/> })}
                                </td>
                            </tr>
                            {move || (editing.get().as_deref() == Some(shown.as_str())).then(|| {
                                let all = destinations.get_value();
                                view! {
                                    <tr class="editor-row">
                                        <td colspan="5">
                                            <AlertEditor alert=form_alert.clone() destinations=all actions editing/>
                                        </td>
                                    </tr>
                                }
                            })}
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

fn names_of(destinations: &[DestinationView], ids: &[String]) -> String {
    ids.iter()
        .map(|id| {
            destinations
                .iter()
                .find(|destination| &destination.id == id)
                .map_or_else(|| "(deleted)".to_owned(), |destination| destination.name.clone())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[component]
fn StateBadges(alert: AlertView) -> impl IntoView {
    let state = match alert.state {
        AlertState::Firing => view! { <span class="badge status-failed">"firing"</span> }.into_any(),
        AlertState::Ok => view! { <span class="badge status-success">"ok"</span> }.into_any(),
    };
    view! {
        {state}
        {alert.acknowledged_at.is_some().then(|| view! {
            " " <span class="badge status-skipped"
                title=format!("by {}", alert.acknowledged_by.clone().unwrap_or_default())>"acknowledged"</span>
        })}
        {alert.silenced_until.clone().map(|until| view! {
            " " <span class="badge status-paused">"silenced until " <crate::components::LocalTime iso=until/></span>
        })}
    }
}

#[component]
fn AlertButtons(alert: AlertView, actions: AlertActions, editing: RwSignal<Option<String>>) -> impl IntoView {
    let id = alert.id.clone();
    let (ack_id, silence_id, edit_id) = (id.clone(), id.clone(), id.clone());
    let silenced = alert.silenced_until.is_some();
    view! {
        {alert.needs_attention().then(|| view! {
            <button type="button" aria-label=format!("Acknowledge {}", alert.title)
                disabled=move || actions.acknowledge.pending().get()
                on:click=move |_| { actions.acknowledge.dispatch(AcknowledgeAlert { id: ack_id.clone() }); }>
                "Acknowledge"
            </button>
        })}
        <button type="button" class="secondary" aria-label=format!("{} {}", if silenced { "Unsilence" } else { "Silence" }, alert.title)
            disabled=move || actions.silence.pending().get()
            on:click=move |_| {
                let minutes = if silenced { 0 } else { SILENCE_MINUTES };
                actions.silence.dispatch(SilenceAlert { id: silence_id.clone(), minutes });
            }>
            {if silenced { "Unsilence" } else { "Silence 1 h" }}
        </button>
        <button type="button" class="secondary" aria-label=format!("Edit {}", alert.title)
            on:click=move |_| editing.update(|open| {
                *open = if open.as_deref() == Some(edit_id.as_str()) { None } else { Some(edit_id.clone()) };
            })>
            "Edit"
        </button>
    }
}

/// An alert's thresholds (JSON, every field optional), destinations and re-notify interval.
#[component]
fn AlertEditor(
    alert: AlertView,
    destinations: Vec<DestinationView>,
    actions: AlertActions,
    editing: RwSignal<Option<String>>,
) -> impl IntoView {
    let enabled = RwSignal::new(alert.enabled);
    let settings = RwSignal::new(serde_json::to_string_pretty(&alert.settings).unwrap_or_default());
    let renotify = RwSignal::new(alert.renotify_minutes.to_string());
    let chosen = RwSignal::new(alert.destination_ids.clone());
    let problem = RwSignal::new(None::<String>);
    let id = alert.id.clone();
    let save = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let parsed = serde_json::from_str(&settings.get_untracked());
        let minutes = renotify.get_untracked().trim().parse::<i64>();
        match (parsed, minutes) {
            (Err(error), _) => problem.set(Some(format!("settings: not JSON ({error})"))),
            (_, Err(_)) => problem.set(Some("re-notify: a whole number of minutes".into())),
            (Ok(settings), Ok(renotify_minutes)) => {
                problem.set(None);
                actions.update.dispatch(UpdateAlert {
                    id: id.clone(),
                    form: AlertForm {
                        enabled: enabled.get_untracked(),
                        settings,
                        destination_ids: chosen.get_untracked(),
                        renotify_minutes,
                    },
                });
            }
        }
    };
    Effect::new(move |_| {
        if matches!(actions.update.value().get(), Some(Ok(_))) {
            editing.set(None);
        }
    });
    let field = |name: &str| format!("alert-{}-{name}", alert.kind.as_str());
    view! {
        <form class="alert-editor" on:submit=save aria-label=format!("Edit {}", alert.title)>
            <label class="inline">
                <input type="checkbox" bind:checked=enabled/>" Enabled"
            </label>
            <label for=field("settings")>"Thresholds (JSON)"</label>
            <textarea id=field("settings") class="code" rows="6" bind:value=settings></textarea>
            <label for=field("renotify")>"Re-notify while firing, every (minutes; 0: never)"</label>
            <input id=field("renotify") type="number" min="0" bind:value=renotify/>
            <fieldset>
                <legend>"Notify"</legend>
                {if destinations.is_empty() {
                    view! { <p class="muted">"No destinations yet: add one on the "<a href="/admin/destinations">"Destinations page"</a>"."</p> }.into_any()
                } else {
                    destinations.into_iter().map(|destination| {
                        let id = destination.id.clone();
                        let checked_id = id.clone();
                        view! {
                            <label class="inline">
                                <input type="checkbox"
                                    prop:checked=move || chosen.with(|chosen| chosen.contains(&checked_id))
                                    on:change=move |event| {
                                        let on = event_target_checked(&event);
                                        chosen.update(|chosen| {
                                            chosen.retain(|kept| kept != &id);
                                            if on { chosen.push(id.clone()); }
                                        });
                                    }/>
                                {format!(" {} ({})", destination.name, destination.kind)}
                            </label>
                        }
                    }).collect_view().into_any()
                }}
            </fieldset>
            {move || problem.get().map(|message| view! { <ErrorNote message/> })}
            <Failure error=failure(actions.update)/>
            <div class="row-actions">
                <button type="submit" disabled=move || actions.update.pending().get()>"Save"</button>
                <button type="button" class="secondary" on:click=move |_| editing.set(None)>"Cancel"</button>
            </div>
        </form>
    }
}

/// The account's alert history, newest first, a page at a time.
#[component]
fn History(changed: Signal<(u64, usize, usize, usize)>) -> impl IntoView {
    let before = RwSignal::new(None::<i64>);
    let history = Resource::new(
        move || (changed.get(), before.get()),
        |(_, before)| alert_history(before, HISTORY_PAGE),
    );
    view! {
        <section aria-labelledby="alert-history-title">
            <h2 id="alert-history-title">"History"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading history…"</p> }>
                {move || history.get().map(|found| match found {
                    Ok(page) if page.entries.is_empty() && before.get_untracked().is_none() => {
                        view! { <p class="empty">"Nothing has happened to the alerts yet."</p> }.into_any()
                    }
                    Ok(page) => view! {
                        <HistoryTable entries=page.entries.clone()/>
                        <div class="row-actions">
                            {before.get_untracked().is_some().then(|| view! {
                                <button type="button" class="secondary" on:click=move |_| before.set(None)>"Newest"</button>
                            })}
                            {page.next.map(|next| view! {
                                <button type="button" class="secondary" on:click=move |_| before.set(Some(next))>"Older"</button>
                            })}
                        </div>
                    }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn HistoryTable(entries: Vec<AlertHistoryEntry>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="alert-history">
                <thead>
                    <tr>
                        <th scope="col">"When"</th>
                        <th scope="col">"Alert"</th>
                        <th scope="col">"What"</th>
                        <th scope="col">"Detail"</th>
                        <th scope="col">"Notified"</th>
                        <th scope="col">"By"</th>
                    </tr>
                </thead>
                <tbody>
                    {entries.into_iter().map(|entry| view! {
                        <tr data-transition=entry.transition.as_str()>
                            <td>{time_or_dash(Some(entry.at.clone()))}</td>
                            <td>{entry.kind.title()}</td>
                            <td>{entry.transition.as_str()}</td>
                            <td>{entry.summary.clone()}</td>
                            <td>{if entry.notified { "yes" } else { "no" }}</td>
                            <td>{entry.actor.clone().unwrap_or_else(|| "–".into())}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
