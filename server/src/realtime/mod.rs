//! The realtime relay: pushes every processed change to browsers over websockets that speak the Supabase Realtime
//! channel protocol, so our Leptos UI and an existing supabase-js frontend both work against it unchanged.
//!
//! Pieces: `protocol` (serializers 1.0.0 and 2.0.0), `session` (one connection's loop) and `channel` (one joined
//! channel), `changes` (`postgres_changes` over the mirror tables), `hub` (this node's topics and presence), `auth` (apikey, access tokens, who joins what), `bus` and
//! `postgres_bus` (every broadcast reaches every node), `outbox` (per-topic offsets and resume), `mapping`
//! (pipeline updates → topics), `rest` (REST broadcast), `socket` (the upgrade), `args` (settings and the `token`
//! command). The wire format is Supabase Realtime's (Phoenix channels, serializers 1.0.0 and 2.0.0); resume and
//! refetch frames are described in `session`.

pub mod args;
pub mod auth;
pub mod bus;
pub mod changes;
mod channel;
mod health;
pub mod hub;
pub mod mapping;
pub mod outbox;
mod pg_delivery;
mod pg_presence;
pub mod postgres_bus;
/// The wire format, the `sm8-wire` crate's (so that it can be fuzzed apart from the server).
pub use sm8_wire::realtime::protocol;
pub mod rest;
pub mod scope;
pub mod session;
pub mod slots;
pub mod socket;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use utoipa_axum::router::OpenApiRouter;

use crate::secret::Secret;
use crate::store::Store;
use crate::updates::PipelineUpdate;
pub use args::{mint_token, RealtimeArgs, TokenArgs};
use auth::Authority;
pub use auth::{store_job_ownership, JobOwnership, Role, TokenKeys};
use bus::{Broadcast, Bus, InProcessBus, Publication};
pub use health::RelayHealth;
use hub::{Hub, EVERY_TOPIC};
use outbox::Retention;
use postgres_bus::PostgresBus;
use protocol::BroadcastPayload;
use session::SessionContext;

/// Most pipeline updates published in one batch (one transaction and one NOTIFY on PostgreSQL).
const FORWARD_BATCH: usize = 256;
/// How long a shutdown waits for the websockets to close once they were told to.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The relay of one node, ready to be routed and fed.
pub struct Relay {
    context: Arc<SessionContext>,
    anon_key: Secret,
    /// Stops the PostgreSQL listener when dropped: with the relay, or with its routes once `router` moved it there.
    running: DropGuard,
    /// The largest message a client may send.
    max_message_bytes: usize,
    /// The websockets this node holds, in all and per client address.
    slots: Arc<slots::Slots>,
    health: RelayHealth,
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
            TokenKeys::new(&jwt_secret).with_audience(args.realtime_jwt_audience.clone()),
            anon_key.clone(),
            &args.realtime_public_topics,
            job_company,
        );
        Ok(Relay {
            context: Arc::new(SessionContext {
                hub,
                bus,
                authority,
                messages_per_second: args.realtime_max_messages_per_second,
                closing: CancellationToken::new(),
            }),
            anon_key,
            running: running.drop_guard(),
            max_message_bytes: args.realtime_max_message_kib.max(1).saturating_mul(1024),
            slots: slots::Slots::new(slots::SlotLimits {
                total: args.realtime_max_connections,
                per_address: args.realtime_max_connections_per_address,
            }),
            health: RelayHealth::default(),
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

    /// What closes this relay's websockets when the server shuts down.
    pub fn closer(&self) -> RelayCloser {
        RelayCloser {
            closing: self.context.closing.clone(),
            slots: self.slots.clone(),
        }
    }

    /// Publishes every pipeline update to its topics until the update channel closes.
    pub fn spawn_forwarding(&self, updates: broadcast::Receiver<PipelineUpdate>) -> JoinHandle<()> {
        tokio::spawn(forward_updates(self.context.bus.clone(), updates, self.health.clone()))
    }

    /// Whether this relay's forwarder can publish, for the alert monitor.
    pub fn health(&self) -> RelayHealth {
        self.health.clone()
    }

    /// The websocket and REST routes (the REST broadcast documented); the relay stops its background work when
    /// they are dropped.
    pub fn router(self) -> OpenApiRouter {
        OpenApiRouter::from(socket::router(
            self.context.clone(),
            self.running,
            self.max_message_bytes,
            self.slots,
        ))
        .merge(rest::router(self.context))
    }
}

/// Closes a relay's websockets on shutdown.
pub struct RelayCloser {
    closing: CancellationToken,
    slots: Arc<slots::Slots>,
}

impl RelayCloser {
    /// Once `shutdown` is cancelled, tells every session to close (each tells its client, which reconnects to
    /// another node or to this one restarted) and waits for the sockets to close, at most `DRAIN_TIMEOUT`.
    pub async fn close_on(self, shutdown: CancellationToken) {
        shutdown.cancelled().await;
        self.closing.cancel();
        if tokio::time::timeout(DRAIN_TIMEOUT, self.slots.emptied()).await.is_err() {
            tracing::warn!("some realtime connections were still open after the drain timeout");
        }
    }
}

/// The relay fell behind the pipeline and `missed` updates never reached the bus: every subscriber of every
/// topic, on every node, is told to refetch.
fn fell_behind(missed: u64) -> Publication {
    tracing::warn!(
        missed,
        "the realtime relay fell behind the pipeline; telling every client to refetch"
    );
    crate::metrics::count_dropped_realtime_updates("relay_lag", missed);
    let everyone = Broadcast::new(
        EVERY_TOPIC,
        "refetch",
        BroadcastPayload::Json(serde_json::Value::Null),
        None,
        false,
    );
    Publication::Ephemeral(everyone)
}

async fn forward_updates(bus: Arc<dyn Bus>, mut updates: broadcast::Receiver<PipelineUpdate>, health: RelayHealth) {
    use broadcast::error::{RecvError, TryRecvError};
    loop {
        let mut publications = match updates.recv().await {
            Ok(update) => mapping::publications(&update),
            Err(RecvError::Lagged(missed)) => vec![fell_behind(missed)],
            Err(RecvError::Closed) => break,
        };
        // Whatever queued meanwhile goes out with it: one transaction and one NOTIFY for many updates.
        while publications.len() < FORWARD_BATCH {
            match updates.try_recv() {
                Ok(update) => publications.extend(mapping::publications(&update)),
                Err(TryRecvError::Lagged(missed)) => publications.push(fell_behind(missed)),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        if publications.is_empty() {
            continue;
        }
        match bus.publish(publications).await {
            Ok(()) => health.published(),
            Err(error) => {
                tracing::error!(%error, "publishing pipeline updates to realtime clients failed");
                health.failed(error.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::hub::{Outlet, Push};
    use crate::updates::{RecordUpdate, CHANNEL_CAPACITY};
    use tokio::sync::mpsc;

    fn job_update(n: usize) -> PipelineUpdate {
        PipelineUpdate::Record(RecordUpdate {
            account: "default".into(),
            event_id: format!("e{n}"),
            object_type: "job".into(),
            object_uuid: "job-1".into(),
            event_type: "updated".into(),
            changes: serde_json::json!({"n": n}),
            company_uuid: None,
            job_uuid: Some("job-1".into()),
            received_at: 0,
            row: None,
        })
    }

    #[tokio::test]
    async fn updates_the_relay_fell_behind_on_make_every_subscriber_refetch() {
        let hub = Arc::new(Hub::new());
        let retention = Retention {
            max_messages: 10,
            max_age: Duration::from_secs(60),
            max_bytes: usize::MAX,
        };
        let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new(hub.clone(), retention));
        let (queue, mut pushes) = mpsc::channel(4 * CHANNEL_CAPACITY);
        let outlet = Outlet {
            queue,
            overflowed: Arc::default(),
        };
        hub.subscribe("realtime:jobs", uuid::Uuid::new_v4(), false, outlet);
        // The pipeline outruns the relay: the channel drops the oldest updates.
        let updates = crate::updates::channel();
        let relay = updates.subscribe();
        for n in 0..CHANNEL_CAPACITY + 50 {
            updates.send(job_update(n)).unwrap();
        }
        drop(updates);
        forward_updates(bus, relay, RelayHealth::default()).await;

        let (mut broadcasts, mut refetches) = (0, 0);
        while let Ok(push) = pushes.try_recv() {
            match push {
                Push::Broadcast(_) => broadcasts += 1,
                Push::Refetch { topic } if topic == "realtime:jobs" => refetches += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(refetches, 1, "told once, for the whole gap");
        assert_eq!(broadcasts, CHANNEL_CAPACITY, "what the channel kept still arrives");
    }
}
