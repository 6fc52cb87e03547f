//! The admin frame and the admin pages: `AdminShell` (the title bar, the account switcher, sign-in) around every
//! admin page, `Refresh` and the pipeline's live events that bump it (`LiveUpdates`), the banner of firing alerts
//! (`AlertBanner`), the directory's pages, the pages of rules and destinations with their deliveries, and the
//! alerts page (`pages`).

mod banner;
mod live;
mod pages;
mod shell;

use std::time::Duration;

use leptos::prelude::*;

pub use banner::AlertBanner;
pub use live::LiveUpdates;
pub use pages::{
    delivery_log_href, AccountsPage, AlertsPage, AnalyticsPage, AuditLogPage, DeliveryStatus, DestinationsPage,
    InvitePage, RulesPage, TokensPage, UsersPage,
};
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
