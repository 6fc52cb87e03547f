//! `/admin/webhook-dashboard`: sign-in, pipeline health and charts, the events table with filters and paging,
//! bulk actions and test events; `/admin/webhook-dashboard/events/:id`: one event in full.

mod actions;
mod detail;
mod events;
mod health;

use leptos::prelude::*;

pub use crate::admin::{AdminShell, CurrentVisitor, LiveUpdates, Refresh};
pub use detail::EventPage;

#[component]
pub fn DashboardPage() -> impl IntoView {
    view! {
        <AdminShell>
            <Dashboard/>
        </AdminShell>
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
