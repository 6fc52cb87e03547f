//! The pipeline's live events on an admin page: `LiveUpdates` bumps the page's `Refresh` as events move and as
//! deliveries' attempts end, and shows the connection's state.

use leptos::prelude::*;

use super::Refresh;
use crate::realtime::{use_webhook_updates, ConnectionStatus, DeliveryChange, PipelineEvent, UseWebhookUpdatesOptions};

/// Follows the pipeline's live events and deliveries (for every event, or only `event_id`'s), refreshing the
/// page's views as they arrive, and shows the connection's state.
#[component]
pub fn LiveUpdates(#[prop(optional, into)] event_id: Option<String>) -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let pending = RwSignal::new(false);
    let delivery_event = event_id.clone();
    let live = use_webhook_updates(UseWebhookUpdatesOptions {
        admin: true,
        on_pipeline: Some(Callback::new(move |event: PipelineEvent| {
            if event_id.as_ref().is_none_or(|id| *id == event.event_id) {
                refresh.soon(pending);
            }
        })),
        on_delivery: Some(Callback::new(move |change: DeliveryChange| {
            if delivery_event.is_none() || delivery_event == change.event_id {
                refresh.soon(pending);
            }
        })),
        on_refetch: Some(Callback::new(move |()| refresh.now())),
        ..Default::default()
    });
    view! { <LiveIndicator status=live.status/> }
}

#[component]
pub fn LiveIndicator(status: Signal<ConnectionStatus>) -> impl IntoView {
    view! {
        <p class=move || format!("live live-{}", status.get().as_str()) role="status" aria-live="polite">
            <span class="dot" aria-hidden="true"></span>
            {move || format!("Live updates: {}", status.get().label())}
        </p>
    }
}
