//! Builds the application from its configuration and runs it until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::backend::ServerBackend;
use crate::config::{Secret, ServeArgs};
use crate::store::{self, Store};
use crate::{auth, health, ingest, manage, web};

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub webhook_secret: Option<Secret>,
    pub backend: Arc<ServerBackend>,
}

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
    pub admin_token: Secret,
    pub admin_token_source: AdminTokenSource,
}

impl Server {
    /// Opens and migrates the database, resolves the admin token and binds the listener.
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Server> {
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
        let backend = Arc::new(ServerBackend::new(store.clone(), admin_token.clone(), secure_cookies));
        let state = AppState {
            store,
            webhook_secret: args.webhook_secret.clone().filter(|secret| !secret.expose().is_empty()),
            backend: backend.clone(),
        };
        let api = Router::new()
            .merge(ingest::router())
            .merge(manage::router())
            .merge(health::router())
            .with_state(state);
        let router = api
            .merge(web::router(&args.resolved_site_root(), backend))
            .layer(TraceLayer::new_for_http());
        let listener = TcpListener::bind(args.bind).await.with_context(|| format!("binding {}", args.bind))?;
        Ok(Server { listener, router, admin_token, admin_token_source })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .context("serving HTTP")
    }
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
