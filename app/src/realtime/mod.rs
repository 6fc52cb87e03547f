//! Live updates in the browser: `use_webhook_updates`, the Leptos counterpart of the seed's React
//! `useWebhookUpdates` hook, speaking the Supabase/Phoenix channel protocol to this server's relay.
//!
//! ```ignore
//! let live = use_webhook_updates(UseWebhookUpdatesOptions {
//!     company_uuid: Some(company_uuid),
//!     job_uuid: Some(job_uuid),
//!     on_job_update: Some(Callback::new(move |update: WebhookUpdate| job.refetch())),
//!     on_activity_update: Some(Callback::new(move |_| activities.refetch())),
//!     ..Default::default()
//! });
//! view! { <p role="status">{move || live.status.get().label()}</p> }
//! ```
//!
//! Topics joined: `realtime:company:{company_uuid}` and `realtime:job:{job_uuid}` when given; with `admin` also
//! `realtime:jobs`, `realtime:staff` and `realtime:admin:webhooks`. Without any topic the hook stays `Closed`.
//! Each `webhook_update` goes to the callback of its `type` (`job_update` → `on_job_update`, ...), once even when
//! it arrives on two topics, and only when it concerns the given job and company (a job, activity or attachment of
//! another job is dropped when `job_uuid` is set; an update of another company when `company_uuid` is set).
//! `pipeline` events of the admin topic go to `on_pipeline`. `last_update` holds the latest delivered update.
//!
//! What the client does for you: it fetches credentials with [`realtime_credentials`] (an admin token for an
//! admin session, a portal token for a portal session; no session means `Closed`), opens
//! `ws(s)://{host}/realtime/v1/websocket?apikey=...&vsn=1.0.0`, joins each topic with the access token, heartbeats
//! every 25 s (an unanswered heartbeat means a dead connection), reconnects with exponential backoff (1 s doubling
//! to 30 s, with jitter), resumes each topic after the last offset it saw (`config.resume.offset`) so missed
//! updates are replayed, hands each channel a new token before the old one expires, and leaves and closes when
//! the component unmounts. When missed updates cannot be replayed (the relay's `refetch` message, or a rejoin of a
//! topic that never delivered anything) it bumps `refetch_needed` and calls `on_refetch`: fetch the data again.
//!
//! On the server (SSR) the hook does nothing and reports `Connecting`, which is also what the browser shows until
//! its first join succeeds, so hydration matches. The topics are fixed for the hook's life: to follow another job,
//! render the component that calls it again (e.g. inside a `move ||` keyed on the job).

mod api;
#[cfg(feature = "hydrate")]
mod client;
pub mod protocol;
pub mod session;
pub mod wire;

use std::fmt;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub use api::RealtimeBackend;
pub use api::{realtime_credentials, FetchRealtimeCredentials, RealtimeCredentials, VisitorSessions};
pub use wire::{AlertChange, DeliveryChange, PipelineEvent, PipelineStage, UpdateKind, WebhookUpdate};

/// The state of the live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionStatus {
    /// Opening the first connection, or joining its topics.
    Connecting,
    /// Every topic is joined: updates arrive as they happen.
    Connected,
    /// The connection was lost (or a topic closed); trying again with backoff.
    Reconnecting,
    /// Not connected and not trying: unmounted, signed out, or nothing to watch.
    Closed,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connecting => "connecting",
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Reconnecting => "reconnecting",
            ConnectionStatus::Closed => "closed",
        }
    }

    /// Words for a connection indicator.
    pub fn label(self) -> &'static str {
        match self {
            ConnectionStatus::Connecting => "Connecting…",
            ConnectionStatus::Connected => "Live",
            ConnectionStatus::Reconnecting => "Reconnecting…",
            ConnectionStatus::Closed => "Offline",
        }
    }
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to watch and whom to tell. Every field is optional: `..Default::default()`.
#[derive(Clone, Default)]
pub struct UseWebhookUpdatesOptions {
    /// Join `realtime:company:{uuid}` and drop updates of other companies.
    pub company_uuid: Option<String>,
    /// Join `realtime:job:{uuid}` and drop jobs, activities and attachments of other jobs.
    pub job_uuid: Option<String>,
    /// Also join `realtime:jobs`, `realtime:staff` and `realtime:admin:webhooks` (needs an admin session).
    pub admin: bool,
    pub on_job_update: Option<Callback<WebhookUpdate>>,
    pub on_activity_update: Option<Callback<WebhookUpdate>>,
    pub on_company_update: Option<Callback<WebhookUpdate>>,
    pub on_attachment_update: Option<Callback<WebhookUpdate>>,
    pub on_staff_update: Option<Callback<WebhookUpdate>>,
    pub on_pipeline: Option<Callback<PipelineEvent>>,
    /// An alert of the account fired, resolved, or was acknowledged or silenced (admin topic).
    pub on_alert: Option<Callback<AlertChange>>,
    /// A delivery's attempt ended (admin topic).
    pub on_delivery: Option<Callback<DeliveryChange>>,
    /// Updates were missed and cannot be replayed: fetch the data again.
    pub on_refetch: Option<Callback<()>>,
}

impl UseWebhookUpdatesOptions {
    /// The full topics to join, in a fixed order.
    pub fn topics(&self) -> Vec<String> {
        let mut topics = Vec::new();
        if let Some(company_uuid) = self.company_uuid.as_deref().filter(|uuid| !uuid.is_empty()) {
            topics.push(wire::topic::company(company_uuid));
        }
        if let Some(job_uuid) = self.job_uuid.as_deref().filter(|uuid| !uuid.is_empty()) {
            topics.push(wire::topic::job(job_uuid));
        }
        if self.admin {
            topics.extend([wire::topic::JOBS, wire::topic::STAFF, wire::topic::ADMIN_WEBHOOKS].map(String::from));
        }
        topics
    }

    /// Whether `update` is about what these options watch.
    pub fn concerns(&self, update: &WebhookUpdate) -> bool {
        let differs = |filter: &Option<String>, value: Option<&str>| match (filter.as_deref(), value) {
            (Some(wanted), Some(actual)) => !wanted.is_empty() && wanted != actual,
            _ => false,
        };
        let record_of_a_job = matches!(
            update.kind,
            UpdateKind::JobUpdate | UpdateKind::ActivityUpdate | UpdateKind::AttachmentUpdate
        );
        if record_of_a_job {
            let job = update
                .job_uuid
                .as_deref()
                .or_else(|| (update.kind == UpdateKind::JobUpdate).then_some(update.object_uuid.as_str()));
            if differs(&self.job_uuid, job) {
                return false;
            }
        }
        let company = match update.kind {
            UpdateKind::CompanyUpdate => Some(update.object_uuid.as_str()),
            _ => update.company_uuid.as_deref(),
        };
        !differs(&self.company_uuid, company)
    }

    /// The callback for an update of this kind.
    pub fn callback_for(&self, kind: UpdateKind) -> Option<Callback<WebhookUpdate>> {
        match kind {
            UpdateKind::JobUpdate => self.on_job_update,
            UpdateKind::ActivityUpdate => self.on_activity_update,
            UpdateKind::CompanyUpdate => self.on_company_update,
            UpdateKind::AttachmentUpdate => self.on_attachment_update,
            UpdateKind::StaffUpdate => self.on_staff_update,
            UpdateKind::Other => None,
        }
    }
}

/// The live connection as the component sees it. `Copy`: pass it around freely.
#[derive(Debug, Clone, Copy)]
pub struct WebhookUpdates {
    pub status: Signal<ConnectionStatus>,
    pub is_connected: Signal<bool>,
    /// The latest update delivered to a callback.
    pub last_update: Signal<Option<WebhookUpdate>>,
    /// Bumped each time updates were missed for good; track it to refetch.
    pub refetch_needed: Signal<u64>,
}

/// Subscribes the current component to live updates; see the module documentation.
pub fn use_webhook_updates(options: UseWebhookUpdatesOptions) -> WebhookUpdates {
    let status = RwSignal::new(ConnectionStatus::Connecting);
    let last_update = RwSignal::new(None::<WebhookUpdate>);
    let refetch_needed = RwSignal::new(0_u64);
    #[cfg(feature = "hydrate")]
    client::start(
        options,
        client::Sinks {
            status,
            last_update,
            refetch_needed,
        },
    );
    #[cfg(not(feature = "hydrate"))]
    drop(options);
    WebhookUpdates {
        status: status.into(),
        is_connected: Signal::derive(move || status.get() == ConnectionStatus::Connected),
        last_update: last_update.into(),
        refetch_needed: refetch_needed.into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn update(kind: &str, object_uuid: &str, company: Option<&str>, job: Option<&str>) -> WebhookUpdate {
        serde_json::from_value(json!({
            "type": kind, "object_uuid": object_uuid, "event_type": "updated", "changes": {},
            "company_uuid": company, "job_uuid": job, "event_id": "e1", "offset": 1,
        }))
        .unwrap()
    }

    #[test]
    fn topics_follow_the_options() {
        let portal = UseWebhookUpdatesOptions {
            company_uuid: Some("c1".into()),
            job_uuid: Some("j1".into()),
            ..Default::default()
        };
        assert_eq!(portal.topics(), ["realtime:company:c1", "realtime:job:j1"]);
        let admin = UseWebhookUpdatesOptions {
            admin: true,
            ..Default::default()
        };
        assert_eq!(
            admin.topics(),
            ["realtime:jobs", "realtime:staff", "realtime:admin:webhooks"]
        );
        assert!(UseWebhookUpdatesOptions::default().topics().is_empty());
        let blank = UseWebhookUpdatesOptions {
            company_uuid: Some(String::new()),
            ..Default::default()
        };
        assert!(blank.topics().is_empty());
    }

    #[test]
    fn a_job_filter_drops_other_jobs_records_but_keeps_company_news() {
        let options = UseWebhookUpdatesOptions {
            company_uuid: Some("c1".into()),
            job_uuid: Some("j1".into()),
            ..Default::default()
        };
        assert!(options.concerns(&update("job_update", "j1", Some("c1"), Some("j1"))));
        assert!(!options.concerns(&update("job_update", "j2", Some("c1"), Some("j2"))));
        assert!(options.concerns(&update("activity_update", "a1", Some("c1"), Some("j1"))));
        assert!(!options.concerns(&update("attachment_update", "f1", Some("c1"), Some("j2"))));
        assert!(options.concerns(&update("company_update", "c1", Some("c1"), None)));
        assert!(!options.concerns(&update("company_update", "c2", Some("c2"), None)));
        assert!(!options.concerns(&update("job_update", "j1", Some("c2"), Some("j1"))));
        assert!(
            options.concerns(&update("job_update", "j1", None, None)),
            "an unknown company is not another's"
        );
    }

    #[test]
    fn without_filters_everything_concerns_the_watcher() {
        let options = UseWebhookUpdatesOptions {
            admin: true,
            ..Default::default()
        };
        assert!(options.concerns(&update("job_update", "j9", Some("c9"), Some("j9"))));
        assert!(options.concerns(&update("staff_update", "s1", None, None)));
    }

    #[test]
    fn each_kind_has_its_callback_slot() {
        let owner = Owner::new();
        owner.set();
        let on_job = Callback::new(|_: WebhookUpdate| {});
        let options = UseWebhookUpdatesOptions {
            on_job_update: Some(on_job),
            ..Default::default()
        };
        assert!(options
            .callback_for(UpdateKind::JobUpdate)
            .is_some_and(|callback| callback.matches(&on_job)));
        assert!(options.callback_for(UpdateKind::ActivityUpdate).is_none());
        assert!(options.callback_for(UpdateKind::Other).is_none());
    }

    #[test]
    fn statuses_have_names_and_labels() {
        assert_eq!(ConnectionStatus::Reconnecting.to_string(), "reconnecting");
        assert_eq!(ConnectionStatus::Connected.label(), "Live");
        assert_eq!(serde_json::to_value(ConnectionStatus::Closed).unwrap(), "closed");
    }
}
