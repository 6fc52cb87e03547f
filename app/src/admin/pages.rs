//! The admin pages: `/admin/invite/:token` (the first-run setup and invitations, outside the admin frame), and
//! inside it the directory's `/admin/accounts`, `/admin/users`, `/admin/tokens` and `/admin/audit`,
//! `/admin/rules` and `/admin/destinations` with each destination's delivery log, `/admin/alerts` and
//! `/admin/analytics`. Every control a role may not use is left out of the page; the server checks the role again
//! on every call.

mod accounts;
mod alerts;
mod analytics;
mod analytics_charts;
mod analytics_digest;
mod audit;
mod connection;
mod deliveries;
mod destination_form;
mod destinations;
mod invite;
mod portal_links;
mod rule_editor;
mod rule_fields;
mod rules;
mod tokens;
mod users;

use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use crate::components::ErrorNote;
use crate::directory::model::{OneTimeLink, ShownOnce};
use crate::error::AppError;

pub use accounts::AccountsPage;
pub use alerts::AlertsPage;
pub use analytics::AnalyticsPage;
pub use audit::AuditLogPage;
pub use deliveries::{delivery_log_href, DeliveryStatus};
pub use destinations::DestinationsPage;
pub use invite::InvitePage;
pub use rules::RulesPage;
pub use tokens::TokensPage;
pub use users::UsersPage;

/// The message of `action`'s last failure, until it is dispatched again.
fn failure<I, O>(action: ServerAction<I>) -> Signal<Option<String>>
where
    I: ServerFn<Output = O, Error = AppError> + Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    Signal::derive(move || match action.value().get() {
        Some(Err(error)) => Some(error.to_string()),
        _ => None,
    })
}

/// Whether `action`'s last call succeeded.
fn succeeded<I, O>(action: ServerAction<I>) -> Signal<bool>
where
    I: ServerFn<Output = O, Error = AppError> + Clone + Send + Sync + 'static,
    O: Clone + Send + Sync + 'static,
{
    Signal::derive(move || matches!(action.value().get(), Some(Ok(_))))
}

/// `action`'s failure, as an alert beside the control that dispatched it.
#[component]
fn Failure(error: Signal<Option<String>>) -> impl IntoView {
    move || error.get().map(|message| view! { <ErrorNote message/> })
}

/// A secret the server generated: its only showing, in a form that is easy to select and copy.
#[component]
fn ShownOncePanel(secret: ShownOnce, #[prop(into)] title: String) -> impl IntoView {
    view! {
        <div class="shown-once" role="status">
            <p><strong>{title}</strong>" — copy it now: it won't be shown again."</p>
            <code class="secret" aria-label=format!("{} value", secret.name) tabindex="0">{secret.value}</code>
            {secret.usage.map(|usage| view! {
                <p class="muted">"Use it as:"</p>
                <code class="secret" aria-label=format!("{} usage", secret.name) tabindex="0">{usage}</code>
            })}
        </div>
    }
}

/// A one-time link just made: its only showing, with who it is for (`title`) and what to do with it.
#[component]
fn OneTimeLinkPanel(link: OneTimeLink, #[prop(into)] title: String, #[prop(into)] advice: String) -> impl IntoView {
    view! {
        <div class="shown-once" role="status">
            <p>
                <strong>{title.clone()}</strong>
                {format!(" — {advice} It works once, until ")}
                <crate::components::LocalTime iso=link.expires_at/>", and won't be shown again."
            </p>
            <code class="secret" aria-label=title tabindex="0">{link.url}</code>
        </div>
    }
}

/// The role's name with a badge the stylesheet colours per role.
#[component]
fn RoleBadge(role: crate::access::Role) -> impl IntoView {
    view! { <span class="badge role" data-role=role.as_str()>{role.as_str()}</span> }
}

/// A time, or a dash when there is none.
fn time_or_dash(iso: Option<String>) -> AnyView {
    match iso {
        Some(iso) => view! { <crate::components::LocalTime iso/> }.into_any(),
        None => "–".into_any(),
    }
}
