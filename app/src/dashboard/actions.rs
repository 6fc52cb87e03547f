//! Actions on many events at once, and a test event to try the pipeline: offered to admins and owners only.

use leptos::prelude::*;

use super::{CurrentVisitor, Refresh};
use crate::access::Role;
use crate::api::{CleanupEvents, RetryFailedEvents, SendTestEvent};
use crate::components::ErrorNote;
use crate::model::TestEvent;
use crate::objects::OBJECTS;

#[component]
pub fn ActionsPanel() -> impl IntoView {
    let visitor = expect_context::<CurrentVisitor>();
    move || visitor.may(Role::Admin).then(|| view! { <Actions/> })
}

#[component]
fn Actions() -> impl IntoView {
    view! {
        <section aria-labelledby="actions-title">
            <h2 id="actions-title">"Actions"</h2>
            <div class="actions-grid">
                <RetryFailed/>
                <Cleanup/>
                <SendTestEventForm/>
            </div>
        </section>
    }
}

/// Refreshes the dashboard whenever `action` completes successfully.
fn refresh_after<I, O, E>(action: ServerAction<I>)
where
    I: leptos::server_fn::ServerFn<Output = O, Error = E> + Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    let refresh = expect_context::<Refresh>();
    Effect::new(move |_| {
        if matches!(action.value().get(), Some(Ok(_))) {
            refresh.now();
        }
    });
}

/// Counts the failed events first, then retries them on confirmation.
#[component]
fn RetryFailed() -> impl IntoView {
    let count = ServerAction::<RetryFailedEvents>::new();
    let retry = ServerAction::<RetryFailedEvents>::new();
    refresh_after(retry);
    let check = move |_| {
        retry.value().set(None);
        count.dispatch(RetryFailedEvents { dry_run: true });
    };
    view! {
        <div class="card action">
            <h3>"Retry failed events"</h3>
            <p class="muted">"Put every failed event back in the queue."</p>
            {move || match (count.value().get(), retry.value().get()) {
                (_, Some(Ok(retried))) => view! {
                    <p role="status">{format!("Retried {retried} failed events.")}</p>
                    <button type="button" class="secondary" on:click=check>"Check again"</button>
                }.into_any(),
                (_, Some(Err(error))) | (Some(Err(error)), _) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                (Some(Ok(0)), None) => view! {
                    <p role="status">"No failed events."</p>
                    <button type="button" class="secondary" on:click=check>"Check again"</button>
                }.into_any(),
                (Some(Ok(failed)), None) => view! {
                    <p role="status">{format!("{failed} failed events can be retried.")}</p>
                    <button type="button" on:click=move |_| { retry.dispatch(RetryFailedEvents { dry_run: false }); }>
                        {format!("Retry {failed} failed events")}
                    </button>
                }.into_any(),
                (None, None) => view! {
                    <button type="button" on:click=check>"Count failed events"</button>
                }.into_any(),
            }}
        </div>
    }
}

#[component]
fn Cleanup() -> impl IntoView {
    let cleanup = ServerAction::<CleanupEvents>::new();
    refresh_after(cleanup);
    let days = RwSignal::new(30_i64);
    view! {
        <div class="card action">
            <h3>"Clean up"</h3>
            <p class="muted">"Delete finished events (success, skipped, failed) older than:"</p>
            <div class="inline-fields">
                <label class="sr-only" for="cleanup-days">"Age in days"</label>
                <input id="cleanup-days" type="number" min="0" max="3650" prop:value=move || days.get()
                    on:input=move |ev| days.set(event_target_value(&ev).parse().unwrap_or(30))/>
                <span>"days"</span>
                <button type="button" on:click=move |_| { cleanup.dispatch(CleanupEvents { older_than_days: days.get() }); }>
                    "Delete old events"
                </button>
            </div>
            {move || cleanup.value().get().map(|result| match result {
                Ok(deleted) => view! { <p role="status">{format!("Deleted {deleted} events.")}</p> }.into_any(),
                Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
            })}
        </div>
    }
}

#[component]
fn SendTestEventForm() -> impl IntoView {
    let send = ServerAction::<SendTestEvent>::new();
    refresh_after(send);
    let object_type = RwSignal::new("job".to_owned());
    let object_uuid = RwSignal::new("test-job-1".to_owned());
    let event_type = RwSignal::new("updated".to_owned());
    let changes = RwSignal::new(r#"{"status": "Work Order"}"#.to_owned());
    let invalid = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match serde_json::from_str::<serde_json::Value>(&changes.get()) {
            Ok(parsed) if parsed.is_object() => {
                invalid.set(None);
                send.dispatch(SendTestEvent {
                    event: TestEvent {
                        object_type: object_type.get(),
                        object_uuid: object_uuid.get(),
                        event_type: event_type.get(),
                        changes: parsed,
                    },
                });
            }
            _ => invalid.set(Some(
                "Changes must be a JSON object, e.g. {\"status\": \"Completed\"}.".into(),
            )),
        }
    };
    view! {
        <form class="card action test-event" on:submit=submit>
            <h3>"Send a test event"</h3>
            <label for="test-object">"Record type"</label>
            <select id="test-object" prop:value=move || object_type.get() on:change=move |ev| object_type.set(event_target_value(&ev))>
                {OBJECTS.map(|spec| view! { <option value=spec.object_type>{spec.object_type}</option> })}
            </select>
            <label for="test-uuid">"Record UUID"</label>
            <input id="test-uuid" type="text" required prop:value=move || object_uuid.get()
                on:input=move |ev| object_uuid.set(event_target_value(&ev))/>
            <label for="test-event-type">"Change type"</label>
            <input id="test-event-type" type="text" required prop:value=move || event_type.get()
                on:input=move |ev| event_type.set(event_target_value(&ev))/>
            <label for="test-changes">"Changed fields (JSON)"</label>
            <textarea id="test-changes" rows="3" prop:value=move || changes.get()
                on:input=move |ev| changes.set(event_target_value(&ev))></textarea>
            <button type="submit">"Send test event"</button>
            {move || invalid.get().map(|message| view! { <ErrorNote message/> })}
            {move || send.value().get().map(|result| match result {
                Ok(id) => view! {
                    <p role="status">"Queued as "
                        <a href=format!("/admin/webhook-dashboard/events/{id}")>{format!("event {id}")}</a>"."
                    </p>
                }.into_any(),
                Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
            })}
        </form>
    }
}
