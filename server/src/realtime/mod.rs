//! The realtime relay: pushes every processed change to browsers over websockets that speak the Supabase Realtime
//! channel protocol, so our Leptos UI and an existing supabase-js frontend both work against it unchanged.
//!
//! Pieces: `protocol` (serializers 1.0.0 and 2.0.0), `session` (one connection's loop) and `channel` (one joined
//! channel), `hub` (this node's topics and presence), `auth` (apikey, access tokens, who joins what), `bus` and
//! `postgres_bus` (every broadcast reaches every node), `outbox` (per-topic offsets and resume), `mapping`
//! (pipeline updates → topics), `rest` (REST broadcast), `socket` (the upgrade), `args` (settings and the `token`
//! command). The wire format is described in `shared/REALTIME_PROTOCOL.md`; resume and refetch frames in `session`.

pub mod args;
pub mod auth;
pub mod bus;
mod channel;
pub mod hub;
pub mod mapping;
pub mod outbox;
pub mod postgres_bus;
pub mod protocol;
pub mod rest;
pub mod session;
pub mod socket;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::Secret;
use crate::store::Store;
use crate::updates::PipelineUpdate;
pub use args::{mint_token, RealtimeArgs, TokenArgs};
use auth::Authority;
pub use auth::{store_job_ownership, JobOwnership, Role, TokenKeys};
use bus::{Bus, InProcessBus};
use hub::Hub;
use outbox::Retention;
use postgres_bus::PostgresBus;
use session::SessionContext;

/// Most pipeline updates published in one batch (one transaction and one NOTIFY on PostgreSQL).
const FORWARD_BATCH: usize = 256;

/// The relay of one node, ready to be routed and fed.
pub struct Relay {
    context: Arc<SessionContext>,
    anon_key: Secret,
    /// Stops the PostgreSQL listener when dropped: with the relay, or with its routes once `router` moved it there.
    running: DropGuard,
}

impl Relay {
    /// Resolves the anon key and JWT secret (configured, or kept in the database), and starts the bus that
    /// `database_url` calls for: PostgreSQL LISTEN/NOTIFY, or in process for SQLite.
    pub async fn start(
        args: &RealtimeArgs,
        database_url: &str,
        store: Arc<dyn Store>,
        job_company: JobOwnership,
    ) -> anyhow::Result<Relay> {
        let jwt_secret = args::resolve_secret(&args.jwt_secret, store.as_ref(), args::JWT_SECRET_SETTING).await?;
        let anon_key = args::resolve_secret(&args.realtime_anon_key, store.as_ref(), args::ANON_KEY_SETTING).await?;
        let retention = Retention {
            max_messages: args.realtime_retention_messages.max(1),
            max_age: Duration::from_secs(args.realtime_retention_seconds),
            max_bytes: args.realtime_retention_mib.saturating_mul(1024 * 1024),
        };
        let hub = Arc::new(Hub::new());
        let running = CancellationToken::new();
        let bus: Arc<dyn Bus> = if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
        {
            let bus = PostgresBus::connect(database_url, hub.clone(), retention, running.clone())
                .await
                .context("starting the realtime bus on PostgreSQL")?;
            Arc::new(bus)
        } else {
            Arc::new(InProcessBus::new(hub.clone(), retention))
        };
        let authority = Authority::new(
            TokenKeys::new(&jwt_secret),
            anon_key.clone(),
            &args.realtime_public_topics,
            job_company,
        );
        Ok(Relay {
            context: Arc::new(SessionContext { hub, bus, authority }),
            anon_key,
            running: running.drop_guard(),
        })
    }

    /// The public key clients pass as `apikey`.
    pub fn anon_key(&self) -> &Secret {
        &self.anon_key
    }

    /// Signs access tokens this relay accepts (for the UI backend, which hands them to browsers).
    pub fn token_keys(&self) -> TokenKeys {
        self.context.authority.token_keys().clone()
    }

    /// Publishes every pipeline update to its topics until the update channel closes.
    pub fn spawn_forwarding(&self, updates: broadcast::Receiver<PipelineUpdate>) -> JoinHandle<()> {
        tokio::spawn(forward_updates(self.context.bus.clone(), updates))
    }

    /// The websocket and REST routes; the relay stops its background work when they are dropped.
    pub fn router(self) -> Router {
        socket::router(self.context.clone(), self.running).merge(rest::router(self.context))
    }
}

async fn forward_updates(bus: Arc<dyn Bus>, mut updates: broadcast::Receiver<PipelineUpdate>) {
    use broadcast::error::{RecvError, TryRecvError};
    loop {
        let mut publications = match updates.recv().await {
            Ok(update) => mapping::publications(&update),
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "the realtime relay fell behind the pipeline; clients should refetch"
                );
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        // Whatever queued meanwhile goes out with it: one transaction and one NOTIFY for many updates.
        while publications.len() < FORWARD_BATCH {
            match updates.try_recv() {
                Ok(update) => publications.extend(mapping::publications(&update)),
                Err(TryRecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "the realtime relay fell behind the pipeline; clients should refetch"
                    );
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        if publications.is_empty() {
            continue;
        }
        if let Err(error) = bus.publish(publications).await {
            tracing::error!(%error, "publishing pipeline updates to realtime clients failed");
        }
    }
}
