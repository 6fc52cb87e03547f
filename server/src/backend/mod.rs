//! `ServerBackend`: the one implementation behind the dashboard's server functions and the REST management API
//! (`pipeline.rs`), the directory's (`directory.rs`, `members.rs`), the portal's (`portal.rs`) and the realtime
//! credentials (`realtime.rs`). Each is provided to the pages as its own trait object, so a portal server function
//! cannot reach an admin method. Who may do what is decided here, once: `access` (a session) and `bearer_access`
//! (an API token) establish an `Access`, and each method checks the role it needs and audits what it changed.

mod access;
mod alerts;
mod analytics;
mod audit;
mod destinations;
mod directory;
mod members;
mod oauth;
mod outbound;
mod passwords;
mod pipeline;
mod portal;
mod portal_views;
mod realtime;
mod rules;

use std::sync::Arc;

use app::error::AppError;

pub use access::Caller;
pub use analytics::ExportFormat;
pub use audit::Outcome;
pub use passwords::check_new_password;
pub use portal::{create_link, PortalLink};

use crate::accounts::{Accounts, DefaultAccount};
use crate::processor::RuleHooks;
use crate::queue::EventQueue;
use crate::realtime::TokenKeys;
use crate::secret::Secret;
use crate::servicem8::oauth::DEFAULT_SCOPES;
use crate::store::{Store, StoreError};
use crate::throttle::Failures;

/// How long a dashboard session lasts.
const SESSION_TTL_SECONDS: i64 = 12 * 60 * 60;

/// What the backend needs to know of the server's configuration.
#[derive(Debug, Clone)]
pub struct BackendSettings {
    /// Cookies carry `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// The origin users reach the server under, for links (invitations, OAuth's return, receiver URLs).
    pub public_url: String,
    /// What new accounts start with (the default account's budget, sync interval and retention).
    pub new_accounts: DefaultAccount,
}

pub struct ServerBackend {
    store: Arc<dyn Store>,
    queue: EventQueue,
    accounts: Arc<Accounts>,
    admin_token: Secret,
    settings: BackendSettings,
    /// Failed sign-ins per email, whatever address they come from.
    sign_ins_by_email: Failures<String>,
    /// Set when the realtime relay runs: browsers get their access tokens here.
    realtime: Option<RealtimeKeys>,
    /// Set where rules run: the rule book to refresh on changes, the sandbox rule tests run in, and the delivery
    /// workers to wake.
    outbound: Option<RuleHooks>,
}

/// What minting realtime access tokens takes: the relay's signing keys and its public anon key.
#[derive(Clone)]
pub struct RealtimeKeys {
    pub keys: TokenKeys,
    pub anon_key: Secret,
}

/// How long an access token handed to a browser lasts; the client fetches the next one a minute before.
const REALTIME_TOKEN_TTL_SECONDS: i64 = 60 * 60;
/// Failed sign-ins per email and minute before the email is refused altogether.
pub const SIGN_INS_PER_EMAIL_PER_MINUTE: u32 = 5;

impl ServerBackend {
    pub fn new(
        store: Arc<dyn Store>,
        queue: EventQueue,
        accounts: Arc<Accounts>,
        admin_token: Secret,
        settings: BackendSettings,
    ) -> Self {
        ServerBackend {
            store,
            queue,
            accounts,
            admin_token,
            settings,
            sign_ins_by_email: Failures::per_minute(SIGN_INS_PER_EMAIL_PER_MINUTE),
            realtime: None,
            outbound: None,
        }
    }

    /// Lets the backend manage rules and destinations, with the pipeline's rule book and delivery workers.
    pub fn with_outbound(mut self, hooks: RuleHooks) -> Self {
        self.outbound = Some(hooks);
        self
    }

    /// Lets the backend hand out realtime access tokens signed with `keys`.
    pub fn with_realtime(mut self, keys: RealtimeKeys) -> Self {
        self.realtime = Some(keys);
        self
    }

    /// The store's write-ahead log on disk, where this process keeps one.
    pub fn store_log_bytes(&self) -> Option<u64> {
        self.store.log_bytes()
    }

    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }

    /// The scopes "Connect ServiceM8" asks for unless the user chooses.
    pub fn default_scopes(&self) -> &'static str {
        DEFAULT_SCOPES
    }

    /// Forgets emails whose sign-in limit is full again; run now and then.
    pub fn forget_idle_sign_ins(&self) {
        self.sign_ins_by_email.forget_idle();
    }
}

/// A storage error as the browser and the API see it: unavailable, with the detail only in the log.
fn unavailable(error: StoreError) -> AppError {
    tracing::error!(%error, "storage error");
    AppError::Unavailable("storage unavailable".into())
}
