//! A simulated ServiceM8 account: a real HTTP server with the REST shape of the real API, used by demo mode, tests
//! and benchmarks.
//!
//! It serves job, company, jobactivity, attachment and staff records generated from a seed under
//! `/api_1.0/{object}.json` and `/api_1.0/{object}/{uuid}.json` (cursor paging, `$filter`), checks the API key,
//! enforces the per-minute and per-day limits, injects faults on demand, takes webhook subscriptions with the
//! handshake, and changes its own records over time, posting real-format callbacks for each change.
//! Everything a test needs to steer or observe it is on [`MockHandle`]; the same controls are reachable over HTTP
//! at `POST /_mock/faults` and `GET /_mock/stats` (unauthenticated: this is a test double, never a production
//! service).
//!
//! It is also the authorization server of one OAuth application (`--oauth-client-id`/`--oauth-client-secret`):
//! `/oauth/authorize` asks the user to allow it, `/oauth/access_token` exchanges codes and refresh tokens, and the
//! API takes the access tokens it issued until they expire (`--oauth-token-ttl-seconds`); `POST /_mock/oauth`
//! makes refreshes fail or ends the tokens issued so far.
//!
//! Several simulated accounts, each with its own API key, can sit behind one base URL as ServiceM8's accounts do:
//! [`start_front`] serves them together and hands each request to the account whose key it carries.

mod api;
mod changes;
mod config;
mod filter;
mod front;
mod generate;
mod limits;
mod oauth;
mod oauth_http;
mod records;
mod state;
mod subscriptions;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use api::NEXT_CURSOR_HEADER;
pub use changes::{CallbackDelivery, Change, DeliveryOutcome};
pub use config::{CallbackFormat, MockConfig};
pub use front::{start_front, MockFront};
pub use limits::Faults;
pub use oauth::{OAuthStats, TokenAnswer, CODE_LIFETIME};
pub use records::{ObjectKind, Record, RecordError, UnknownObject};
pub use state::MockStats;
pub use subscriptions::{Subscription, Topic};

use records::{format_date, now};
use state::{lock, MockState};

/// Starts the simulated account on `config.bind` and, when configured, its change task.
pub async fn start(config: MockConfig) -> anyhow::Result<MockHandle> {
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding the mock ServiceM8 to {}", config.bind))?;
    let address = listener.local_addr().context("reading the mock ServiceM8 address")?;
    let shutdown = CancellationToken::new();
    let state = Arc::new(MockState::new(
        &config,
        format!("http://{address}/api_1.0"),
        shutdown.clone(),
    )?);
    let router = api::router(state.clone());
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
            {
                tracing::error!(%error, "the mock ServiceM8 stopped");
            }
        }
    });
    let changer = config
        .change_interval()
        .map(|every| tokio::spawn(changes::run(state.clone(), every)));
    Ok(MockHandle {
        state,
        address,
        shutdown,
        tasks: vec![Some(server), changer].into_iter().flatten().collect(),
    })
}

/// The `mock-servicem8` command: serves the simulated account until Ctrl-C. SIGTERM's default action, ending the
/// process, suits it: it keeps nothing that would need saving.
pub async fn run_cli(config: MockConfig) -> anyhow::Result<()> {
    let sizes = (
        config.companies,
        config.companies * config.jobs_per_company,
        config.staff,
    );
    let every = config.change_interval();
    let account = start(config).await?;
    println!("Simulated ServiceM8 account on {}", account.origin());
    println!("  SERVICEM8_BASE_URL={}", account.base_url());
    println!("  SERVICEM8_API_KEY={}", account.api_key());
    println!("  SERVICEM8_OAUTH_CLIENT_ID={}", account.oauth_client_id());
    println!("  SERVICEM8_OAUTH_CLIENT_SECRET={}", account.oauth_client_secret());
    println!("  SERVICEM8_OAUTH_AUTHORIZE_URL={}", account.oauth_authorize_url());
    println!("  SERVICEM8_OAUTH_TOKEN_URL={}", account.oauth_token_url());
    println!(
        "  Records: {} companies, {} jobs, {} staff, with their activities and attachments",
        sizes.0, sizes.1, sizes.2
    );
    match every {
        Some(every) => {
            println!("  Changes a record every {every:?} and posts a callback to each target and subscription")
        }
        None => println!("  Changes nothing by itself (--change-interval-ms 0)"),
    }
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    account.shutdown().await;
    Ok(())
}

/// A running simulated account. Dropping it stops the account; [`MockHandle::shutdown`] also waits for that.
pub struct MockHandle {
    state: Arc<MockState>,
    address: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl MockHandle {
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://ADDR/api_1.0`: the value for `SERVICEM8_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// `http://ADDR`, where `/webhook_subscriptions` and `/_mock` live.
    pub fn origin(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn api_key(&self) -> &str {
        self.state.api_key.expose()
    }

    /// The OAuth application's client id: the value for `SERVICEM8_OAUTH_CLIENT_ID`.
    pub fn oauth_client_id(&self) -> String {
        lock(&self.state.grants).client_id().to_owned()
    }

    /// The value for `SERVICEM8_OAUTH_CLIENT_SECRET`.
    pub fn oauth_client_secret(&self) -> String {
        lock(&self.state.grants).client_secret().expose().to_owned()
    }

    /// `http://ADDR/oauth/authorize`: the value for `SERVICEM8_OAUTH_AUTHORIZE_URL`.
    pub fn oauth_authorize_url(&self) -> String {
        format!("{}{}", self.origin(), oauth_http::AUTHORIZE_PATH)
    }

    /// `http://ADDR/oauth/access_token`: the value for `SERVICEM8_OAUTH_TOKEN_URL`.
    pub fn oauth_token_url(&self) -> String {
        format!("{}{}", self.origin(), oauth_http::TOKEN_PATH)
    }

    /// Makes every refresh fail with `invalid_grant` (as for a revoked refresh token), or succeed again.
    pub fn set_refresh_failing(&self, failing: bool) {
        lock(&self.state.grants).set_refresh_failing(failing);
    }

    /// Ends every access token issued so far: the API answers 401 to them from now on.
    pub fn expire_access_tokens(&self) {
        lock(&self.state.grants).expire_access_tokens(std::time::Instant::now());
    }

    /// The lifetime of access tokens issued from now on.
    pub fn set_token_ttl(&self, ttl: std::time::Duration) {
        lock(&self.state.grants).set_token_ttl(ttl);
    }

    pub fn oauth_stats(&self) -> OAuthStats {
        lock(&self.state.grants).stats()
    }

    /// Stops serving and changing, lets in-flight requests end (hanging ones end at once), and waits for both.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    /// Sends every later callback to `url` too.
    pub fn add_target(&self, url: impl Into<String>) {
        lock(&self.state.targets).push(url.into());
    }

    /// Adds a record: `uuid` is generated when absent, `active` defaults to 1 and `edit_date` is now.
    /// Returns the record's uuid.
    pub fn insert_record(&self, kind: ObjectKind, record: Value) -> Result<String, RecordError> {
        let Value::Object(mut record) = record else {
            return Err(RecordError::NotAnObject);
        };
        if !record.get("uuid").is_some_and(Value::is_string) {
            record.insert("uuid".into(), generate::random_uuid().into());
        }
        record.entry("active").or_insert(1.into());
        Ok(changes::insert(&mut lock(&self.state.records), kind, record).uuid)
    }

    /// Sets the fields of `changes` (a JSON object) and bumps `edit_date`; returns the fields whose value changed.
    /// No callback is sent: see [`MockHandle::trigger_callback`].
    pub fn update_record(&self, kind: ObjectKind, uuid: &str, changes: Value) -> Result<Vec<String>, RecordError> {
        let Value::Object(changes) = changes else {
            return Err(RecordError::NotAnObject);
        };
        lock(&self.state.records).update(kind, uuid, changes, now())
    }

    /// Deletes the record the ServiceM8 way: `active` becomes 0.
    pub fn delete(&self, kind: ObjectKind, uuid: &str) -> Result<(), RecordError> {
        self.update_record(kind, uuid, serde_json::json!({"active": 0}))
            .map(drop)
    }

    pub fn record(&self, kind: ObjectKind, uuid: &str) -> Option<Record> {
        lock(&self.state.records).get(kind, uuid).cloned()
    }

    /// The uuids of every record of `kind`, active or not.
    pub fn uuids(&self, kind: ObjectKind) -> Vec<String> {
        lock(&self.state.records).uuids(kind).cloned().collect()
    }

    /// Posts the callback for a change of `changed_fields` of the record to the targets and matching
    /// subscriptions, and returns how each delivery went.
    pub async fn trigger_callback(
        &self,
        kind: ObjectKind,
        uuid: &str,
        changed_fields: &[&str],
    ) -> Result<Vec<CallbackDelivery>, RecordError> {
        let record = self
            .record(kind, uuid)
            .ok_or_else(|| RecordError::NotFound(kind, uuid.to_owned()))?;
        let time = record
            .get("edit_date")
            .and_then(Value::as_str)
            .map_or_else(|| format_date(now()), str::to_owned);
        let change = Change {
            kind,
            uuid: uuid.to_owned(),
            changed_fields: changed_fields.iter().map(|field| field.to_string()).collect(),
            time,
            record,
            created: false,
        };
        Ok(changes::deliver(&self.state, &change).await)
    }

    /// Makes one change as the change task would and delivers its callbacks; `None` when nothing was changed.
    pub async fn change_something(&self) -> Option<(Change, Vec<CallbackDelivery>)> {
        let change = changes::random_change(&self.state)?;
        let deliveries = changes::deliver(&self.state, &change).await;
        Some((change, deliveries))
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.state.faults) = faults;
    }

    pub fn faults(&self) -> Faults {
        *lock(&self.state.faults)
    }

    pub fn subscriptions(&self) -> Vec<Subscription> {
        lock(&self.state.subscriptions).clone()
    }

    /// Requests to the API and subscription endpoints so far, whatever their answer.
    pub fn request_count(&self) -> u64 {
        self.stats().requests
    }

    /// Single-record fetches of this record so far.
    pub fn fetch_count(&self, kind: ObjectKind, uuid: &str) -> u64 {
        self.state.counters.fetch_count(kind, uuid)
    }

    /// Requests answered 429 so far.
    pub fn rate_limited_count(&self) -> u64 {
        self.stats().rate_limited
    }

    /// Requests answered 429 because the client passed the account's limits (not injected faults).
    pub fn over_limit_count(&self) -> u64 {
        self.stats().over_limit
    }

    pub fn stats(&self) -> MockStats {
        self.state.counters.snapshot()
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
