//! Builds the application from its configuration and runs it until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::accounts::{AccountArgs, AccountSecrets, Accounts, DefaultAccount, ProcessingMode};
use crate::alerts::AlertMonitor;
use crate::backend::{BackendSettings, RealtimeKeys, ServerBackend};
use crate::config::ServeArgs;
use crate::csrf::{self, SameOrigin};
use crate::deliveries::Deliverer;
use crate::ingest::IngestArgs;
use crate::listen::Listener;
use crate::processor::{Processor, ProcessorArgs, RuleBook, RuleHooks};
use crate::queue::EventQueue;
use crate::rules::sandbox::{Sandbox, SandboxLimits};
use crate::sealing::{self, KeySource, MasterKey, Sealer, CHECK_SETTING};
use crate::secret::Secret;
use crate::security_headers::{self, Https};
use crate::servicem8::client::ServiceM8Args;
use crate::servicem8::oauth::OAuthArgs;
use crate::state::AppState;
use crate::store::{self, Store, DEFAULT_ACCOUNT};
use crate::tls::Tls;
use crate::updates::{self, UpdateSender};
use crate::{
    attachments, auth, connect_servicem8, error, health, manage, openapi, portal, prometheus, realtime, receiver,
    throttle, web,
};

/// Where the admin token came from, so start-up can tell the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminTokenSource {
    Configured,
    /// Generated on first start and kept in the database.
    Stored,
}

/// A bound, ready-to-run server.
pub struct Server {
    listener: Listener,
    router: Router,
    state: AppState,
    processor: Arc<Processor>,
    deliverer: Arc<Deliverer>,
    alert_monitor: AlertMonitor,
    delivery_workers: usize,
    pub admin_token: Secret,
    pub admin_token_source: AdminTokenSource,
    /// The public key realtime clients pass as `apikey`.
    pub realtime_anon_key: Secret,
    /// Where the master key of the secrets came from (a generated one must be backed up).
    pub key_source: KeySource,
    /// The first-run setup link, while there is no user yet.
    pub setup_link: Option<String>,
    relay_closer: realtime::RelayCloser,
}

/// The store and the accounts, opened with the master key: what `serve` and the commands that read accounts
/// share.
pub struct Directory {
    pub store: Arc<dyn Store>,
    pub accounts: Arc<Accounts>,
    pub key_source: KeySource,
}

/// Opens the database, checks the master key against the secrets it sealed, and loads the accounts, completing
/// the default account from `default` (the environment), when given.
pub async fn open_directory(
    database_url: &str,
    account_args: &AccountArgs,
    servicem8: &ServiceM8Args,
    oauth: &OAuthArgs,
    default: Option<&DefaultAccount>,
) -> anyhow::Result<Directory> {
    let store = store::connect(database_url)
        .await
        .with_context(|| format!("opening the database {}", redact_url(database_url)))?;
    let (key, key_source) = master_key(account_args, database_url)?;
    let sealer = checked_sealer(store.as_ref(), &key).await?;
    let oauth_app = oauth.app(std::time::Duration::from_millis(servicem8.servicem8_timeout_ms))?;
    let accounts = Accounts::load(store.clone(), sealer, servicem8.clone(), oauth_app)
        .await
        .context("loading the accounts")?;
    if let Some(default) = default {
        accounts
            .apply_default(default)
            .await
            .context("completing the default account from the environment")?;
    }
    Ok(Directory {
        store,
        accounts,
        key_source,
    })
}

/// The master key: `SECRET_KEY`, the key file, or (for an in-memory database) one for this process only.
fn master_key(args: &AccountArgs, database_url: &str) -> anyhow::Result<(MasterKey, KeySource)> {
    match args.key_file(database_url) {
        Some(file) => sealing::load_or_generate_key(args.secret_key.as_ref(), &file),
        None => match &args.secret_key {
            Some(key) => Ok((MasterKey::parse(key.expose())?, KeySource::Environment)),
            None => Ok((MasterKey::generate(), KeySource::Environment)),
        },
    }
}

/// A sealer under `key`, after checking that `key` is the one this database's secrets were sealed with.
async fn checked_sealer(store: &dyn Store, key: &MasterKey) -> anyhow::Result<Sealer> {
    let sealer = key.sealer();
    let stored = store
        .setting_or_insert(CHECK_SETTING, &sealer.check_value())
        .await
        .context("reading the secret key check")?;
    anyhow::ensure!(
        sealer.verifies(&stored),
        "the master key (SECRET_KEY or the key file) is not the one this database's secrets were sealed with: \
         start with the right key, or rotate it with `sm8-webhooks rotate-secret-key` using the old one"
    );
    Ok(sealer)
}

/// The default account as the environment describes it: its credentials, secrets, budget, sync and retention.
pub fn default_account(
    ingest: &IngestArgs,
    servicem8: &ServiceM8Args,
    processor: &ProcessorArgs,
    accounts: &AccountArgs,
) -> DefaultAccount {
    let secret = |value: &Option<Secret>| value.as_ref().map(|secret| secret.expose().to_owned());
    DefaultAccount {
        servicem8_account_uuid: accounts.servicem8_account_uuid.clone().filter(|uuid| !uuid.is_empty()),
        secrets: AccountSecrets {
            api_key: secret(&servicem8.servicem8_api_key),
            access_token: secret(&servicem8.servicem8_access_token),
            refresh_token: None,
            webhook_secret: secret(&ingest.webhook_secret),
            url_token: secret(&ingest.webhook_url_token),
            app_secret: secret(&ingest.servicem8_app_secret),
            standard_webhook_secrets: ingest
                .standard_webhook_secrets
                .iter()
                .map(|secret| secret.expose().to_owned())
                .filter(|secret| !secret.is_empty())
                .collect(),
        },
        requests_per_minute: servicem8.servicem8_requests_per_minute,
        requests_per_day: servicem8.servicem8_requests_per_day,
        sync_interval_seconds: processor.sync_interval_seconds,
        retention_days: processor.retention_days,
    }
}

impl Server {
    /// Opens and migrates the database, resolves the admin token and binds the listener.
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Server> {
        args.processor
            .check_lease(args.servicem8.servicem8_timeout_ms)
            .map_err(anyhow::Error::msg)?;
        let tls = Tls::load(&args.tls).await.context("setting up https")?;
        let listener = TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        let port = bound.port();
        let public_url = args.public_url_at(bound);
        let listener = Listener::new(listener, &args.listen, tls);
        let default = default_account(&args.ingest, &args.servicem8, &args.processor, &args.accounts);
        let Directory {
            store,
            accounts,
            key_source,
        } = open_directory(
            &args.database.database_url,
            &args.accounts,
            &args.servicem8,
            &args.oauth,
            Some(&default),
        )
        .await?;
        let (admin_token, admin_token_source) = match &args.admin_token {
            Some(token) if !token.expose().trim().is_empty() => (token.clone(), AdminTokenSource::Configured),
            _ => {
                let token = store.setting_or_insert("admin_token", &auth::random_token()).await?;
                (Secret::new(token), AdminTokenSource::Stored)
            }
        };
        let secure_cookies = public_url.starts_with("https://");
        let updates = updates::channel();
        let queue_wakeup = Arc::new(Notify::new());
        let deliverer = Deliverer::new(
            store.clone(),
            accounts.sealer().clone(),
            &args.deliveries,
            args.processor.node(port),
            updates.clone(),
        );
        let sandbox = Sandbox::start(SandboxLimits::default()).context("starting the rules' JavaScript sandbox")?;
        let rule_book = Arc::new(RuleBook::new(store.clone(), sandbox));
        let rule_hooks = RuleHooks {
            book: rule_book.clone(),
            deliverer: deliverer.clone(),
        };
        let processor = Processor::new(
            store.clone(),
            accounts.clone(),
            updates.clone(),
            args.processor.clone(),
            queue_wakeup.clone(),
            args.processor.node(port),
            Some(rule_hooks.clone()),
        );
        let queue = EventQueue::new(store.clone(), updates.clone(), queue_wakeup.clone());
        let settings = BackendSettings {
            secure_cookies,
            public_url: public_url.clone(),
            new_accounts: default,
        };
        let relay = realtime::Relay::start(
            &args.realtime,
            &args.database.database_url,
            store.clone(),
            realtime::store_job_ownership(store.clone()),
        )
        .await?;
        // The backend mints the access tokens browsers join with (`realtime_credentials`).
        let realtime_keys = RealtimeKeys {
            keys: relay.token_keys(),
            anon_key: relay.anon_key().clone(),
        };
        let backend = Arc::new(
            ServerBackend::new(
                store.clone(),
                queue.clone(),
                accounts.clone(),
                admin_token.clone(),
                settings,
            )
            .with_realtime(realtime_keys)
            .with_outbound(rule_hooks),
        );
        let setup_link = backend.setup_link().await.map_err(|error| anyhow::anyhow!("{error}"))?;
        let state = AppState {
            store,
            ingest: Arc::new(args.ingest.clone()),
            backend: backend.clone(),
            updates,
            queue_wakeup,
            queue,
            accounts,
            throttles: throttle::start(),
        };
        relay.spawn_forwarding(state.updates.subscribe());
        let alert_monitor = AlertMonitor {
            store: state.store.clone(),
            accounts: state.accounts.clone(),
            relay: relay.health(),
            deliverer: deliverer.clone(),
            updates: state.updates.clone(),
            node: args.processor.node(port),
            public_url: public_url.clone(),
            args: args.alerts.clone(),
        };
        let realtime_anon_key = relay.anon_key().clone();
        let relay_closer = relay.closer();
        let (documented, mut document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
            .merge(receiver::router())
            .merge(manage::router())
            .merge(health::router())
            .merge(attachments::router())
            .split_for_parts();
        let (relay_routes, relay_document) = relay.router().split_for_parts();
        document.merge(relay_document);
        let api = documented
            .merge(portal::router())
            .merge(connect_servicem8::router())
            .with_state(state.clone());
        let router = api
            .merge(prometheus::router(backend.clone(), args.metrics_token.clone()))
            .merge(relay_routes)
            .merge(openapi::router(&document)?)
            .merge(web::router(
                &args.resolved_site_root(),
                backend,
                state.throttles.clone(),
            ))
            .layer(axum::middleware::from_fn_with_state(
                SameOrigin::new(&public_url),
                csrf::refuse_cross_origin,
            ))
            .layer(axum::middleware::from_fn_with_state(
                Https(secure_cookies),
                security_headers::add_security_headers,
            ))
            .layer(axum::middleware::from_fn(error::explain_wrong_method))
            .layer(TraceLayer::new_for_http().make_span_with(request_span));
        Ok(Server {
            listener,
            router,
            state,
            processor,
            deliverer,
            alert_monitor,
            delivery_workers: args.deliveries.delivery_workers,
            admin_token,
            admin_token_source,
            realtime_anon_key,
            key_source,
            setup_link,
            relay_closer,
        })
    }

    /// The channel on which the pipeline announces its progress.
    pub fn updates(&self) -> UpdateSender {
        self.state.updates.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Where the default account's processed records come from (fetched, or applied from payloads without
    /// credentials).
    pub fn processing_mode(&self) -> ProcessingMode {
        self.state
            .accounts
            .get(DEFAULT_ACCOUNT)
            .map_or(ProcessingMode::PayloadOnly, |account| account.processing_mode())
    }

    /// Every account of this server.
    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.state.accounts
    }

    /// The backend, for tools and tests that act as the dashboard would.
    pub fn backend(&self) -> &Arc<ServerBackend> {
        &self.state.backend
    }

    /// Serves and processes until `shutdown` is cancelled, then lets in-flight requests and batches finish.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let refresh = self.state.accounts.spawn_refresh(shutdown.clone());
        let mut workers = self.processor.spawn(shutdown.clone()).await;
        let mut delivery_workers = self.deliverer.spawn(self.delivery_workers, shutdown.clone());
        let alerts = self.alert_monitor.spawn(shutdown.clone());
        // Upgraded websockets outlive their HTTP connections: the relay closes them itself.
        let realtime_closed = tokio::spawn(self.relay_closer.close_on(shutdown.clone()));
        self.listener.serve(self.router, shutdown.clone()).await;
        shutdown.cancel();
        let _ = realtime_closed.await;
        while workers.join_next().await.is_some() {}
        while delivery_workers.join_next().await.is_some() {}
        let _ = alerts.await;
        let _ = refresh.await;
        self.state.store.save_api_budget().await?;
        Ok(())
    }
}

/// The span of one request: its method and path, never its query string, which can carry a URL token or a
/// portal link's token.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
}

/// The database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn database_passwords_are_redacted_from_messages() {
        assert_eq!(redact_url("postgres://sm8:pw@db/sm8"), "postgres://sm8:***@db/sm8");
        assert_eq!(redact_url("postgres://sm8@db/sm8"), "postgres://sm8@db/sm8");
        assert_eq!(redact_url("sqlite://data/sm8.db"), "sqlite://data/sm8.db");
    }
}
