//! `/admin/webhook-dashboard`: sign-in, pipeline health and charts, the events table with filters and paging,
//! bulk actions and test events; `/admin/webhook-dashboard/events/:id`: one event in full.

mod actions;
mod detail;
mod events;
mod health;

use std::time::Duration;

use leptos::prelude::*;

use crate::api::{session_status, SignIn, SignOut};
use crate::components::ErrorNote;
use crate::error::{answer_with_status, AppError};
use crate::realtime::{use_webhook_updates, ConnectionStatus, PipelineEvent, UseWebhookUpdatesOptions};
pub use detail::EventPage;

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

/// The admin page frame: the title bar with sign-out, and the sign-in form instead of `children` when the
/// visitor has no session.
#[component]
pub fn AdminShell(children: ChildrenFn) -> impl IntoView {
    let sign_in = ServerAction::<SignIn>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let session = Resource::new(
        move || (sign_in.version().get(), sign_out.version().get()),
        |_| session_status(),
    );
    let refresh = Refresh(RwSignal::new(0));
    provide_context(refresh);
    let children = StoredValue::new(children);

    view! {
        <main class="page">
            <header class="topbar">
                <h1><a href="/admin/webhook-dashboard" class="home">"Webhook dashboard"</a></h1>
                <Transition fallback=|| ()>
                    {move || matches!(session.get(), Some(Ok(true))).then(|| view! {
                        <div class="topbar-actions">
                            <button type="button" class="secondary" on:click=move |_| refresh.now()>"Refresh"</button>
                            <button type="button" class="secondary" on:click=move |_| { sign_out.dispatch(SignOut {}); }>
                                "Sign out"
                            </button>
                        </div>
                    })}
                </Transition>
            </header>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || session.get().map(|signed_in| match signed_in {
                    Ok(true) => children.with_value(|children| children()).into_any(),
                    Ok(false) => {
                        answer_with_status(&AppError::NotSignedIn);
                        view! { <SignInForm action=sign_in/> }.into_any()
                    }
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
        </main>
    }
}

#[component]
fn SignInForm(action: ServerAction<SignIn>) -> impl IntoView {
    let token = RwSignal::new(String::new());
    let error = move || match action.value().get() {
        Some(Err(error)) => Some(error.to_string()),
        _ => None,
    };
    view! {
        <section class="card signin" aria-labelledby="signin-title">
            <h2 id="signin-title">"Sign in"</h2>
            <p class="muted">"Use the admin token printed when the server started, or the value of ADMIN_TOKEN."</p>
            // Submitted by the hydrated page as JSON: the server takes no form posts (`server/src/csrf.rs`).
            <form on:submit=move |event| {
                event.prevent_default();
                action.dispatch(SignIn { admin_token: token.get_untracked() });
            }>
                <label for="admin_token">"Admin token"</label>
                <input
                    id="admin_token"
                    name="admin_token"
                    type="password"
                    autocomplete="current-password"
                    required
                    bind:value=token
                />
                <button type="submit">"Sign in"</button>
            </form>
            {move || error().map(|message| view! { <ErrorNote message/> })}
        </section>
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
