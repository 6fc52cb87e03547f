//! One event in full: what arrived, how it was verified, every attempt, the deliveries its rules made, and the
//! record as mirrored now.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use super::{AdminShell, CurrentVisitor, LiveUpdates, Refresh};
use crate::access::Role;
use crate::admin::{delivery_log_href, DeliveryStatus};
use crate::api::{get_event_detail, RetryEvent};
use crate::components::{ErrorNote, JsonBlock, LocalTime};
use crate::error::{answer_with_status, AppError};
use crate::model::{EventDetail, EventStatus};
use crate::outbound::api::list_event_deliveries;
use crate::outbound::model::DeliveryView;

type EventDeliveries = Resource<Result<Vec<DeliveryView>, AppError>>;

#[component]
pub fn EventPage() -> impl IntoView {
    view! {
        <AdminShell>
            <EventView/>
        </AdminShell>
    }
}

#[component]
fn EventView() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let params = use_params_map();
    let event_id = move || params.read().get("id").unwrap_or_default();
    let retry = ServerAction::<RetryEvent>::new();
    let detail = Resource::new(
        move || (event_id(), refresh.get(), retry.version().get()),
        |(event_id, _, _)| get_event_detail(event_id),
    );
    // Made here rather than in the detail, which is built again on every refresh.
    let deliveries: EventDeliveries = Resource::new(
        move || (event_id(), refresh.get()),
        |(event_id, _)| list_event_deliveries(event_id),
    );
    view! {
        <div class="section-head">
            <p><a href="/admin/webhook-dashboard">"← All events"</a></p>
            {move || view! { <LiveUpdates event_id=event_id()/> }}
        </div>
        <Transition fallback=|| view! { <p class="muted">"Loading event…"</p> }>
            {move || detail.get().map(|result| match result {
                Ok(detail) => view! { <Detail detail retry deliveries/> }.into_any(),
                Err(error) => {
                    answer_with_status(&error);
                    view! { <ErrorNote message=error.to_string()/> }.into_any()
                }
            })}
        </Transition>
    }
}

#[component]
fn Detail(detail: EventDetail, retry: ServerAction<RetryEvent>, deliveries: EventDeliveries) -> impl IntoView {
    let summary = detail.summary.clone();
    // Viewers see no retry: the server would refuse them.
    let retryable = expect_context::<CurrentVisitor>().may(Role::Admin)
        && matches!(
            summary.status,
            EventStatus::Failed | EventStatus::Skipped | EventStatus::Success
        );
    let event_id = summary.id.clone();
    let headers: Vec<(String, String)> = detail
        .headers
        .as_object()
        .map(|headers| {
            headers
                .iter()
                .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    view! {
        <section class="card detail" aria-labelledby="event-title">
            <div class="section-head">
                <h2 id="event-title">{format!("{} {} · {}", summary.object_type, summary.event_type, summary.object_uuid)}</h2>
                <span class=format!("badge status-{}", summary.status)>{summary.status.as_str()}</span>
            </div>
            <dl class="facts">
                <dt>"Event id"</dt><dd class="mono">{summary.id.clone()}</dd>
                <dt>"Received"</dt><dd><LocalTime iso=summary.received_at.clone()/></dd>
                <dt>"Changed at (ServiceM8)"</dt>
                <dd>{match detail.occurred_at.clone() { Some(at) => view! { <LocalTime iso=at/> }.into_any(), None => "–".into_any() }}</dd>
                <dt>"Format"</dt><dd>{detail.format.clone()}</dd>
                <dt>"Verification"</dt><dd data-field="verification">{detail.verification.clone()}</dd>
                <dt>"Attempts"</dt><dd>{summary.attempts}</dd>
                {detail.next_attempt_at.clone().map(|at| view! { <dt>"Next attempt"</dt><dd><LocalTime iso=at/></dd> })}
                {detail.processed_at.clone().map(|at| view! { <dt>"Finished"</dt><dd><LocalTime iso=at/></dd> })}
                {detail.skip_reason.clone().map(|reason| view! { <dt>"Skipped because"</dt><dd>{reason}</dd> })}
                {summary.last_error.clone().map(|error| view! { <dt>"Last error"</dt><dd class="error-text">{error}</dd> })}
            </dl>
            {retryable.then(|| view! {
                <button type="button" on:click=move |_| { retry.dispatch(RetryEvent { event_id: event_id.clone() }); }>
                    "Retry this event"
                </button>
            })}
            {move || retry.value().get().map(|result| match result {
                Ok(()) => view! { <p role="status">"Queued again."</p> }.into_any(),
                Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
            })}
        </section>
        <section class="card" aria-labelledby="timeline-title">
            <h2 id="timeline-title">"Attempts"</h2>
            {if detail.attempt_log.is_empty() {
                view! { <p class="empty">"Not attempted yet."</p> }.into_any()
            } else {
                view! {
                    <ol class="timeline">
                        {detail.attempt_log.iter().map(|attempt| view! {
                            <li class=format!("attempt outcome-{}", attempt.outcome)>
                                <strong>{format!("Attempt {} · {}", attempt.attempt, attempt.outcome)}</strong>
                                " · " <LocalTime iso=attempt.started_at.clone()/>
                                {format!(" · {} ms", attempt.duration_ms)}
                                {attempt.http_status.map(|status| format!(" · HTTP {status}"))}
                                {attempt.error.clone().map(|error| view! { <div class="error-text">{error}</div> })}
                            </li>
                        }).collect_view()}
                    </ol>
                }.into_any()
            }}
        </section>
        <Deliveries deliveries event_id=summary.id.clone()/>
        <div class="detail-grid">
            <section class="card" aria-labelledby="changes-title">
                <h2 id="changes-title">"Changes"</h2>
                <JsonBlock value=detail.changes.clone() label="Changes"/>
            </section>
            <section class="card" aria-labelledby="mirror-title">
                <h2 id="mirror-title">"Mirrored record now"</h2>
                {match detail.mirrored.clone() {
                    Some(record) => view! { <JsonBlock value=record label="Mirrored record"/> }.into_any(),
                    None => view! { <p class="empty">"Not mirrored."</p> }.into_any(),
                }}
            </section>
        </div>
        <section class="card" aria-labelledby="payload-title">
            <h2 id="payload-title">"Raw payload"</h2>
            <pre class="code" tabindex="0" aria-label="Delivery body">{detail.raw_body.clone()}</pre>
            <h3>"Headers"</h3>
            <div class="table-wrap">
                <table class="headers">
                    <tbody>
                        {headers.into_iter().map(|(name, value)| view! {
                            <tr><th scope="row" class="mono">{name}</th><td class="mono">{value}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
}

/// The messages the account's rules sent for this event: to which destination, through which rule, and how it
/// went; each opens in its destination's delivery log.
#[component]
fn Deliveries(deliveries: EventDeliveries, event_id: String) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="deliveries-title">
            <div class="section-head">
                <h2 id="deliveries-title">"Deliveries"</h2>
                <a href=format!("/admin/rules?event={event_id}") rel="external">"Test a rule against this event"</a>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading deliveries…"</p> }>
                {move || deliveries.get().map(|found| match found {
                    Ok(list) if list.is_empty() => view! {
                        <p class="empty">"No deliveries: no rule sent this event anywhere."</p>
                    }.into_any(),
                    Ok(list) => view! { <DeliveriesTable list/> }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn DeliveriesTable(list: Vec<DeliveryView>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="event-deliveries">
                <thead>
                    <tr>
                        <th scope="col">"Destination"</th>
                        <th scope="col">"Rule"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Attempts"</th>
                        <th scope="col">"Last error"</th>
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|delivery| view! {
                        <tr data-delivery-id=delivery.id.clone()>
                            <td>
                                <a href=delivery_log_href(&delivery.destination_id, Some(&delivery.id)) rel="external">
                                    {delivery.destination_name}
                                </a>
                            </td>
                            <td>{delivery.rule_name.unwrap_or_else(|| "–".into())}</td>
                            <td><DeliveryStatus status=delivery.status/></td>
                            <td>{delivery.attempts}</td>
                            <td class="error-cell">{delivery.last_error.unwrap_or_default()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
