//! `ServerBackend`: the one implementation behind both the dashboard's server functions and the REST
//! management API.

use std::sync::Arc;

use app::api::{AppError, DashboardBackend};
use app::model::{EventQuery, EventSummary, Stats};

use crate::auth::{random_token, secrets_match, token_hash};
use crate::config::Secret;
use crate::store::{now_millis, Store, StoreError};

/// How long a dashboard session lasts.
const SESSION_TTL_SECONDS: i64 = 12 * 60 * 60;

pub struct ServerBackend {
    store: Arc<dyn Store>,
    admin_token: Secret,
    secure_cookies: bool,
}

impl ServerBackend {
    pub fn new(store: Arc<dyn Store>, admin_token: Secret, secure_cookies: bool) -> Self {
        ServerBackend { store, admin_token, secure_cookies }
    }

    pub fn admin_token_matches(&self, candidate: &str) -> bool {
        !candidate.is_empty() && secrets_match(candidate, self.admin_token.expose())
    }
}

fn unavailable(error: StoreError) -> AppError {
    tracing::error!(%error, "storage error");
    AppError::Unavailable("storage unavailable".into())
}

#[async_trait::async_trait]
impl DashboardBackend for ServerBackend {
    async fn stats(&self) -> Result<Stats, AppError> {
        self.store.stats().await.map_err(unavailable)
    }

    async fn list_events(&self, query: EventQuery) -> Result<Vec<EventSummary>, AppError> {
        self.store.list_events(&query).await.map_err(unavailable)
    }

    async fn sign_in(&self, admin_token: &str) -> Result<String, AppError> {
        if !self.admin_token_matches(admin_token) {
            tracing::warn!("dashboard sign-in refused: wrong admin token");
            return Err(AppError::InvalidAdminToken);
        }
        let session = random_token();
        let expires_at = now_millis() + SESSION_TTL_SECONDS * 1000;
        self.store.create_session(&token_hash(&session), expires_at).await.map_err(unavailable)?;
        Ok(session)
    }

    async fn session_is_active(&self, session: &str) -> Result<bool, AppError> {
        self.store.session_is_active(&token_hash(session), now_millis()).await.map_err(unavailable)
    }

    async fn sign_out(&self, session: &str) -> Result<(), AppError> {
        self.store.delete_session(&token_hash(session)).await.map_err(unavailable)
    }

    fn session_ttl_seconds(&self) -> i64 {
        SESSION_TTL_SECONDS
    }

    fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }
}
