//! `/admin/webhook-dashboard`: sign-in, pipeline health and charts, the events table with filters and paging,
//! bulk actions and test events; `/admin/webhook-dashboard/events/:id`: one event in full.

mod actions;
mod detail;
mod events;
mod health;
mod shell;

use std::time::Duration;

use leptos::prelude::*;

use crate::realtime::{use_webhook_updates, ConnectionStatus, PipelineEvent, UseWebhookUpdatesOptions};
pub use detail::EventPage;
pub use shell::{AdminShell, CurrentVisitor};

/// The longest the dashboard lags behind the pipeline: live events within this window share one refresh.
const LIVE_REFRESH_DELAY: Duration = Duration::from_millis(400);

/// Bumped to make every view of the dashboard fetch again.
#[derive(Clone, Copy)]
pub struct Refresh(pub RwSignal<u64>);

impl Refresh {
    pub fn now(self) {
        self.0.update(|n| *n += 1);
    }

    /// Refreshes once after a short delay, however many times this is called meanwhile: a busy pipeline
    /// sends hundreds of events a second, the page needs a few refreshes a second at most.
    pub fn soon(self, pending: RwSignal<bool>) {
        if pending.get_untracked() {
            return;
        }
        pending.set(true);
        set_timeout(
            move || {
                pending.set(false);
                self.now();
            },
            LIVE_REFRESH_DELAY,
        );
    }

    pub fn get(self) -> u64 {
        self.0.get()
    }
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    view! {
        <AdminShell>
            <Dashboard/>
        </AdminShell>
    }
}

/// Follows the pipeline's live events (for every event, or only `event_id`'s), refreshing the page's views as
/// they arrive, and shows the connection's state.
#[component]
pub fn LiveUpdates(#[prop(optional, into)] event_id: Option<String>) -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let pending = RwSignal::new(false);
    let live = use_webhook_updates(UseWebhookUpdatesOptions {
        admin: true,
        on_pipeline: Some(Callback::new(move |event: PipelineEvent| {
            if event_id.as_ref().is_none_or(|id| *id == event.event_id) {
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

#[component]
fn Dashboard() -> impl IntoView {
    view! {
        <LiveUpdates/>
        <health::HealthPanel/>
        <health::Charts/>
        <actions::ActionsPanel/>
        <events::EventsSection/>
    }
}
