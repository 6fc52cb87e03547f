//! `/admin/destinations`: where the account's rules send messages (webhooks, Slack, email, SMS), each with its
//! state and counts, and a new one. The destination chosen in the URL (`?destination=`) opens below the table:
//! its settings, a test message, pausing, its signing secret, deleting it, and its delivery log.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};

use super::deliveries::{DeliveryActions, DeliveryLog, OpenedDelivery, DESTINATIONS};
use super::destination_form::{kind_label, target_summary, DestinationEditor};
use super::{failure, time_or_dash, Failure, ShownOncePanel};
use crate::access::Role;
use crate::admin::{AdminShell, CurrentVisitor, LiveUpdates, Refresh};
use crate::components::ErrorNote;
use crate::error::AppError;
use crate::outbound::api::{
    list_destinations, CreateDestination, DeleteDestination, RetryDestinationDeliveries, RotateDestinationSecret,
    SendTestMessage, SetDestinationPaused, UpdateDestination,
};
use crate::outbound::model::{DestinationView, TestSendReport};

#[component]
pub fn DestinationsPage() -> impl IntoView {
    view! {
        <Title text="Destinations · SM8 Webhooks"/>
        <AdminShell>
            <Destinations/>
        </AdminShell>
    }
}

/// What can be done to destinations. Created once, above the views they refresh, so that what they answer (a
/// secret shown once, a test's report) survives the refetch they cause.
#[derive(Clone, Copy)]
struct DestinationActions {
    create: ServerAction<CreateDestination>,
    update: ServerAction<UpdateDestination>,
    delete: ServerAction<DeleteDestination>,
    rotate: ServerAction<RotateDestinationSecret>,
    pause: ServerAction<SetDestinationPaused>,
    test: ServerAction<SendTestMessage>,
    retry_all: ServerAction<RetryDestinationDeliveries>,
}

/// The page's state beside the server's: which destination is being edited, and whose deletion awaits its
/// confirmation. Kept apart from the list, so that a refresh does not reset a form being filled in.
#[derive(Clone, Copy)]
struct Editing {
    form: RwSignal<Option<DestinationView>>,
    confirming_delete: RwSignal<bool>,
}

type DestinationList = Resource<Result<Vec<DestinationView>, AppError>>;

#[component]
fn Destinations() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let visitor = expect_context::<CurrentVisitor>();
    let admin = untrack(move || visitor.may(Role::Admin));
    let actions = DestinationActions {
        create: ServerAction::new(),
        update: ServerAction::new(),
        delete: ServerAction::new(),
        rotate: ServerAction::new(),
        pause: ServerAction::new(),
        test: ServerAction::new(),
        retry_all: ServerAction::new(),
    };
    let destinations: DestinationList = Resource::new(
        move || {
            (
                refresh.get(),
                actions.create.version().get(),
                actions.update.version().get(),
                actions.delete.version().get(),
                actions.pause.version().get(),
                actions.retry_all.version().get(),
            )
        },
        |_| list_destinations(),
    );
    let query = use_query_map();
    let chosen = Memo::new(move |_| query.read().get("destination").filter(|id| !id.is_empty()));
    let editing = Editing {
        form: RwSignal::new(None),
        confirming_delete: RwSignal::new(false),
    };
    // Another destination chosen: nothing said about the previous one stays on the page.
    Effect::new(move |previous: Option<Option<String>>| {
        let current = chosen.get();
        if previous.is_some_and(|previous| previous != current) {
            // Choosing one after a deletion: the deletion's notice goes too.
            if current.is_some() {
                actions.delete.value().set(None);
            }
            editing.form.set(None);
            editing.confirming_delete.set(false);
            actions.test.value().set(None);
            actions.rotate.value().set(None);
            actions.retry_all.value().set(None);
            actions.update.value().set(None);
        }
        current
    });
    Effect::new(move |_| {
        if matches!(actions.update.value().get(), Some(Ok(_))) {
            editing.form.set(None);
        }
    });
    let navigate = use_navigate();
    Effect::new(move |_| {
        if matches!(actions.delete.value().get(), Some(Ok(()))) {
            editing.confirming_delete.set(false);
            navigate(DESTINATIONS, Default::default());
        }
    });
    view! {
        <LiveUpdates/>
        <section aria-labelledby="destinations-title">
            <h2 id="destinations-title">"Destinations"</h2>
            <p class="muted">
                "Where the account's rules send messages. A destination that keeps failing is held by its circuit \
                 breaker until a probe gets through; a paused one keeps its messages queued."
            </p>
            {move || matches!(actions.delete.value().get(), Some(Ok(())))
                .then(|| view! { <p role="status">"Destination deleted."</p> })}
            <Transition fallback=|| view! { <p class="muted">"Loading destinations…"</p> }>
                {move || destinations.get().map(|found| match found {
                    Ok(list) => view! { <DestinationsTable list chosen admin/> }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
        </section>
        {move || chosen.get().map(|id| view! { <ChosenDestination id destinations actions editing admin/> })}
        {admin.then(|| view! { <NewDestination create=actions.create/> })}
    }
}

#[component]
fn DestinationsTable(list: Vec<DestinationView>, chosen: Memo<Option<String>>, admin: bool) -> impl IntoView {
    if list.is_empty() {
        let message = if admin {
            "No destinations yet: add one below, then deliver to it from a rule."
        } else {
            "No destinations yet."
        };
        return view! { <p class="empty">{message}</p> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="destinations">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Kind"</th>
                        <th scope="col">"Target"</th>
                        <th scope="col">"State"</th>
                        <th scope="col">"Queued"</th>
                        <th scope="col">"Delivered"</th>
                        <th scope="col">"Failed"</th>
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|destination| {
                        let id = destination.id.clone();
                        let href = super::deliveries::delivery_log_href(&destination.id, None);
                        view! {
                            <tr data-destination-id=destination.id.clone()
                                class:chosen=move || chosen.get().as_deref() == Some(id.as_str())>
                                <td><a href=href>{destination.name.clone()}</a></td>
                                <td>{kind_label(&destination.kind).to_owned()}</td>
                                <td class="mono target">{target_summary(&destination)}</td>
                                <td><DestinationState destination=destination.clone()/></td>
                                <td>{destination.queued}</td>
                                <td>{destination.delivered}</td>
                                <td>{destination.failed}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// Paused, held by its circuit breaker, or active.
#[component]
fn DestinationState(destination: DestinationView) -> impl IntoView {
    let circuit = destination.circuit_open.then(|| {
        view! {
            <span class="badge status-circuit-open"
                title=format!("{} consecutive failures", destination.consecutive_failures)>
                "circuit open"
            </span>
        }
    });
    let state = if destination.paused {
        view! { <span class="badge status-paused">"paused"</span> }.into_any()
    } else if destination.circuit_open {
        ().into_any()
    } else {
        view! { <span class="badge status-success">"active"</span> }.into_any()
    };
    view! { <span class="state" data-field="state">{state}{circuit}</span> }
}

/// The destination the URL names: its card, the edit form when open, the delivery opened, and its log.
#[component]
fn ChosenDestination(
    id: String,
    destinations: DestinationList,
    actions: DestinationActions,
    editing: Editing,
    admin: bool,
) -> impl IntoView {
    let deliveries = DeliveryActions::new(actions.retry_all);
    let card_id = id.clone();
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading the destination…"</p> }>
            {move || destinations.get().map(|found| {
                // The table above shows a failure to list.
                let Ok(list) = found else { return ().into_any() };
                match list.into_iter().find(|destination| destination.id == card_id) {
                    Some(destination) => view! { <DestinationCard destination actions editing admin/> }.into_any(),
                    None => view! {
                        <p class="empty">"There is no such destination in this account."</p>
                    }.into_any(),
                }
            })}
        </Transition>
        {move || editing.form.get().map(|destination| {
            let id = destination.id.clone();
            let update = actions.update;
            view! {
                <section class="card">
                    <DestinationEditor
                        existing=Some(destination)
                        on_submit=Callback::new(move |form| {
                            update.dispatch(UpdateDestination { id: id.clone(), form });
                        })
                        pending=update.pending()
                        error=failure(update)
                        on_cancel=Callback::new(move |()| editing.form.set(None))
                    />
                </section>
            }
        })}
        <OpenedDelivery actions=deliveries/>
        <DeliveryLog destination_id=id actions=deliveries/>
    }
}

#[component]
fn DestinationCard(
    destination: DestinationView,
    actions: DestinationActions,
    editing: Editing,
    admin: bool,
) -> impl IntoView {
    let DestinationActions {
        delete,
        rotate,
        pause,
        test,
        retry_all,
        ..
    } = actions;
    let id = destination.id.clone();
    let name = destination.name.clone();
    let headers = destination
        .settings
        .get("headers")
        .and_then(|headers| headers.as_object())
        .filter(|headers| !headers.is_empty())
        .map(|headers| headers.keys().cloned().collect::<Vec<_>>().join(", "));
    let secrets = if destination.secrets_set.is_empty() {
        "none".to_owned()
    } else {
        destination.secrets_set.join(", ")
    };
    let buttons = admin.then(|| {
        let paused = destination.paused;
        let webhook = destination.kind == "webhook";
        let edited = destination.clone();
        let (test_id, pause_id, rotate_id, retry_id) = (id.clone(), id.clone(), id.clone(), id.clone());
        view! {
            <div class="row-actions destination-actions">
                <button type="button" class="secondary" on:click=move |_| editing.form.set(Some(edited.clone()))>
                    "Edit"
                </button>
                <button type="button" disabled=move || test.pending().get()
                    on:click=move |_| { test.dispatch(SendTestMessage { id: test_id.clone() }); }>
                    {move || if test.pending().get() { "Sending…" } else { "Send test message" }}
                </button>
                <button type="button" class="secondary" disabled=move || pause.pending().get()
                    on:click=move |_| { pause.dispatch(SetDestinationPaused { id: pause_id.clone(), paused: !paused }); }>
                    {if paused { "Resume" } else { "Pause" }}
                </button>
                {webhook.then(|| view! {
                    <button type="button" class="secondary" disabled=move || rotate.pending().get()
                        on:click=move |_| { rotate.dispatch(RotateDestinationSecret { id: rotate_id.clone() }); }>
                        "Rotate signing secret"
                    </button>
                })}
                <button type="button" class="secondary" disabled=move || retry_all.pending().get()
                    on:click=move |_| {
                        retry_all.dispatch(RetryDestinationDeliveries { destination_id: retry_id.clone() });
                    }>
                    "Retry failed deliveries"
                </button>
                <button type="button" class="secondary danger-text" on:click=move |_| editing.confirming_delete.set(true)>
                    "Delete"
                </button>
            </div>
        }
    });
    let confirm = {
        let (id, name) = (id.clone(), name.clone());
        move || {
            editing.confirming_delete.get().then(|| {
                let id = id.clone();
                view! {
                    <div class="confirm" role="group" aria-labelledby="confirm-delete-text">
                        <p id="confirm-delete-text">
                            {format!("Delete destination “{name}”? Its unfinished deliveries fail, and rules that name \
                                      it have nowhere to deliver. This cannot be undone.")}
                        </p>
                        <div class="row-actions">
                            <button type="button" class="danger" disabled=move || delete.pending().get()
                                on:click=move |_| { delete.dispatch(DeleteDestination { id: id.clone() }); }>
                                "Delete destination"
                            </button>
                            <button type="button" class="secondary"
                                on:click=move |_| editing.confirming_delete.set(false)>
                                "Cancel"
                            </button>
                        </div>
                    </div>
                }
            })
        }
    };
    view! {
        <section class="card destination" aria-labelledby="destination-title" data-destination-id=id.clone()>
            <div class="section-head">
                <h2 id="destination-title">{name.clone()}</h2>
                <DestinationState destination=destination.clone()/>
            </div>
            <dl class="facts">
                <dt>"Kind"</dt><dd>{kind_label(&destination.kind).to_owned()}</dd>
                <dt>"Target"</dt><dd class="mono">{target_summary(&destination)}</dd>
                {headers.map(|headers| view! { <dt>"Headers"</dt><dd class="mono">{headers}</dd> })}
                <dt>"Secrets set"</dt><dd class="mono">{secrets}</dd>
                <dt>"Deliveries"</dt>
                <dd data-field="counts">
                    {format!("{} queued · {} delivered · {} failed", destination.queued, destination.delivered, destination.failed)}
                </dd>
                {(destination.consecutive_failures > 0).then(|| view! {
                    <dt>"Consecutive failures"</dt><dd>{destination.consecutive_failures}</dd>
                })}
                <dt>"Created"</dt><dd>{time_or_dash(Some(destination.created_at.clone()))}</dd>
            </dl>
            {buttons}
            {confirm}
            <Failure error=failure(delete)/>
            <Failure error=failure(pause)/>
            <Failure error=failure(test)/>
            {move || test.value().get().and_then(Result::ok).map(|report| view! { <TestReport report/> })}
            <Failure error=failure(rotate)/>
            {move || rotate.value().get().and_then(Result::ok).map(|secret| view! {
                <ShownOncePanel secret title="New signing secret"/>
            })}
            <Failure error=failure(retry_all)/>
            {move || retry_all.value().get().and_then(Result::ok).map(|count| {
                let text = match count {
                    0 => "No failed deliveries to retry.".to_owned(),
                    1 => "Queued 1 failed delivery again.".to_owned(),
                    count => format!("Queued {count} failed deliveries again."),
                };
                view! { <p role="status">{text}</p> }
            })}
        </section>
    }
}

/// How a test message went.
#[component]
fn TestReport(report: TestSendReport) -> impl IntoView {
    let (class, headline) = if report.delivered {
        ("report delivered", "Test message delivered")
    } else {
        ("report failed", "Test message not delivered")
    };
    let status = report.http_status.map(|status| format!(" · HTTP {status}"));
    view! {
        <div class=class role="status" data-field="test-report">
            <p>
                <strong>{headline}</strong>
                {status}
                {format!(" · {} ms", report.duration_ms)}
            </p>
            {report.error.map(|error| view! { <p class="error-text">{error}</p> })}
            {report.response_excerpt.filter(|excerpt| !excerpt.is_empty()).map(|excerpt| view! {
                <pre class="code excerpt" tabindex="0" aria-label="Test response">{excerpt}</pre>
            })}
        </div>
    }
}

/// The form for a new destination, and the signing secret a new webhook gets, shown once.
#[component]
fn NewDestination(create: ServerAction<CreateDestination>) -> impl IntoView {
    // Each destination created empties the form for the next.
    let created = RwSignal::new(0_u32);
    Effect::new(move |_| {
        if matches!(create.value().get(), Some(Ok(_))) {
            created.update(|n| *n += 1);
        }
    });
    view! {
        <section class="card">
            {move || {
                created.track();
                view! {
                    <DestinationEditor
                        existing=None
                        on_submit=Callback::new(move |form| { create.dispatch(CreateDestination { form }); })
                        pending=create.pending()
                        error=failure(create)
                    />
                }
            }}
            {move || match create.value().get() {
                Some(Ok(created)) => Some(view! {
                    <p role="status">
                        {format!("Destination {} created. ", created.destination.name)}
                        <a href=super::deliveries::delivery_log_href(&created.destination.id, None)>"Open it"</a>
                    </p>
                    {created.shown_once.map(|secret| view! {
                        <ShownOncePanel secret title=format!("Signing secret of {}", created.destination.name)/>
                    })}
                }),
                _ => None,
            }}
        </section>
    }
}
