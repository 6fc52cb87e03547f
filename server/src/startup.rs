//! Builds the application from its configuration and runs it until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::backend::{BackendSettings, RealtimeKeys, ServerBackend};
use crate::config::ServeArgs;
use crate::csrf::{self, SameOrigin};
use crate::processor::{ProcessingMode, Processor};
use crate::queue::EventQueue;
use crate::secret::Secret;
use crate::security_headers::{self, Https};
use crate::servicem8::client::ServiceM8Client;
use crate::state::AppState;
use crate::store;
use crate::updates::{self, UpdateSender};
use crate::{attachments, auth, error, health, listen, manage, portal, prometheus, realtime, receiver, throttle, web};

/// Where the admin token came from, so start-up can tell the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminTokenSource {
    Configured,
    /// Generated on first start and kept in the database.
    Stored,
}

/// A bound, ready-to-run server.
pub struct Server {
    listener: TcpListener,
    router: Router,
    state: AppState,
    processor: Arc<Processor>,
    pub admin_token: Secret,
    pub admin_token_source: AdminTokenSource,
    /// The public key realtime clients pass as `apikey`.
    pub realtime_anon_key: Secret,
}

impl Server {
    /// Opens and migrates the database, resolves the admin token and binds the listener.
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Server> {
        args.processor
            .check_lease(args.servicem8.servicem8_timeout_ms)
            .map_err(anyhow::Error::msg)?;
        let listener = TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        let port = listener.local_addr().context("reading the bound address")?.port();
        let store = store::connect(&args.database.database_url)
            .await
            .with_context(|| format!("opening the database {}", redact_url(&args.database.database_url)))?;
        let (admin_token, admin_token_source) = match &args.admin_token {
            Some(token) if !token.expose().trim().is_empty() => (token.clone(), AdminTokenSource::Configured),
            _ => {
                let token = store.setting_or_insert("admin_token", &auth::random_token()).await?;
                (Secret::new(token), AdminTokenSource::Stored)
            }
        };
        let secure_cookies = args.public_url().starts_with("https://");
        let updates = updates::channel();
        let queue_wakeup = Arc::new(Notify::new());
        let client = ServiceM8Client::from_args(&args.servicem8, store.clone())?.map(Arc::new);
        let processor = Processor::new(
            store.clone(),
            client.clone(),
            updates.clone(),
            args.processor.clone(),
            queue_wakeup.clone(),
            args.processor.node(port),
        );
        let queue = EventQueue::new(store.clone(), updates.clone(), queue_wakeup.clone());
        let settings = BackendSettings {
            secure_cookies,
            processing_mode: processor.mode(),
            budget_limits: args.servicem8.budget_limits(),
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
            ServerBackend::new(store.clone(), queue.clone(), admin_token.clone(), settings)
                .with_realtime(realtime_keys),
        );
        let state = AppState {
            store,
            ingest: Arc::new(args.ingest.clone()),
            backend: backend.clone(),
            updates,
            queue_wakeup,
            queue,
            servicem8: client,
            throttles: throttle::start(),
        };
        relay.spawn_forwarding(state.updates.subscribe());
        let realtime_anon_key = relay.anon_key().clone();
        let api = Router::new()
            .merge(receiver::router())
            .merge(manage::router())
            .merge(health::router())
            .merge(portal::router())
            .merge(attachments::router())
            .with_state(state.clone());
        let router = api
            .merge(prometheus::router(backend.clone(), args.metrics_token.clone()))
            .merge(relay.router())
            .merge(web::router(
                &args.resolved_site_root(),
                backend,
                state.throttles.clone(),
            ))
            .layer(axum::middleware::from_fn_with_state(
                SameOrigin::new(&args.public_url()),
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
            admin_token,
            admin_token_source,
            realtime_anon_key,
        })
    }

    /// The channel on which the pipeline announces its progress.
    pub fn updates(&self) -> UpdateSender {
        self.state.updates.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Where processed records come from (fetched, or applied from payloads without credentials).
    pub fn processing_mode(&self) -> ProcessingMode {
        self.processor.mode()
    }

    /// Serves and processes until `shutdown` is cancelled, then lets in-flight requests and batches finish.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut workers = self.processor.spawn(shutdown.clone()).await;
        listen::serve(self.listener, self.router, shutdown.clone()).await;
        shutdown.cancel();
        while workers.join_next().await.is_some() {}
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
