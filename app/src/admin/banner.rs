//! The banner at the top of every admin page while an alert fires unacknowledged: what fires, a link to the
//! alerts, and (for admins) acknowledging it there. It follows the account's alert changes live.

use leptos::prelude::*;

use super::CurrentVisitor;
use crate::access::Role;
use crate::alerts::api::{list_alerts, AcknowledgeAlert};
use crate::alerts::model::AlertView;
use crate::realtime::{use_webhook_updates, AlertChange, UseWebhookUpdatesOptions};

#[component]
pub fn AlertBanner() -> impl IntoView {
    let visitor = expect_context::<CurrentVisitor>();
    let admin = untrack(move || visitor.may(Role::Admin));
    let changes = RwSignal::new(0_u64);
    let acknowledge = ServerAction::<AcknowledgeAlert>::new();
    let alerts = Resource::new(move || (changes.get(), acknowledge.version().get()), |_| list_alerts());
    use_webhook_updates(UseWebhookUpdatesOptions {
        admin: true,
        on_alert: Some(Callback::new(move |_: AlertChange| changes.update(|n| *n += 1))),
        on_refetch: Some(Callback::new(move |()| changes.update(|n| *n += 1))),
        ..Default::default()
    });
    let firing = move || {
        alerts
            .get()
            .and_then(Result::ok)
            .unwrap_or_default()
            .into_iter()
            .filter(AlertView::needs_attention)
            .collect::<Vec<_>>()
    };
    view! {
        <Transition fallback=|| ()>
            {move || {
                let firing = firing();
                (!firing.is_empty()).then(|| view! {
                    <div class="alert-banner" role="alert" aria-live="assertive">
                        <strong>{if firing.len() == 1 { "An alert is firing".to_owned() } else { format!("{} alerts are firing", firing.len()) }}</strong>
                        <ul>
                            {firing.into_iter().map(|alert| {
                                let id = alert.id.clone();
                                view! {
                                    <li data-alert-kind=alert.kind.as_str()>
                                        <a href="/admin/alerts" rel="external">{alert.title.clone()}</a>
                                        ": " {alert.summary.clone().unwrap_or_default()}
                                        {admin.then(|| view! {
                                            " "
                                            <button type="button" class="secondary small"
                                                aria-label=format!("Acknowledge {}", alert.title)
                                                disabled=move || acknowledge.pending().get()
                                                on:click=move |_| { acknowledge.dispatch(AcknowledgeAlert { id: id.clone() }); }>
                                                "Acknowledge"
                                            </button>
                                        })}
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    </div>
                })
            }}
        </Transition>
    }
}
