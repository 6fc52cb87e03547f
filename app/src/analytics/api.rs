//! The analytics page's server functions and the backend they reach. Each establishes the visitor's `Access`
//! first (`require_access`, as the dashboard's do); the backend checks the role: any member reads, admins choose
//! the digest.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use super::model::{AnalyticsDigest, AnalyticsQuery, AnalyticsReport};
use crate::error::AppError;

#[cfg(feature = "ssr")]
pub use backend::AnalyticsBackend;

#[cfg(feature = "ssr")]
mod backend {
    use std::sync::Arc;

    use super::AppError;
    use crate::access::Access;
    use crate::analytics::model::{AnalyticsDigest, AnalyticsQuery, AnalyticsReport};

    /// What the analytics page needs from the server. Provided as `Arc<dyn AnalyticsBackend>` in the Leptos
    /// context; the management API shares it.
    #[async_trait::async_trait]
    pub trait AnalyticsBackend: Send + Sync + 'static {
        /// The account's report for `query`. Needs the viewer role; a malformed query is `InvalidInput`.
        async fn analytics_report(&self, access: &Access, query: &AnalyticsQuery) -> Result<AnalyticsReport, AppError>;
        /// The account's digest, if it has one. Needs the viewer role.
        async fn analytics_digest(&self, access: &Access) -> Result<Option<AnalyticsDigest>, AppError>;
        /// Sends the digest to one of the account's destinations, or (`None`) stops it. Needs the admin role;
        /// audited.
        async fn set_analytics_digest(
            &self,
            access: &Access,
            digest: Option<AnalyticsDigest>,
        ) -> Result<Option<AnalyticsDigest>, AppError>;
    }

    pub(super) async fn require() -> Result<(Arc<dyn AnalyticsBackend>, Access), AppError> {
        let backend = leptos::prelude::use_context::<Arc<dyn AnalyticsBackend>>()
            .ok_or_else(|| AppError::Unavailable("no analytics backend in context".into()))?;
        let (_, access) = crate::api::require_access().await?;
        Ok((backend, access))
    }
}

#[server(input = Json)]
pub async fn load_analytics(query: AnalyticsQuery) -> Result<AnalyticsReport, AppError> {
    let (backend, access) = backend::require().await?;
    backend.analytics_report(&access, &query).await
}

#[server(input = Json)]
pub async fn get_analytics_digest() -> Result<Option<AnalyticsDigest>, AppError> {
    let (backend, access) = backend::require().await?;
    backend.analytics_digest(&access).await
}

#[server(input = Json)]
pub async fn save_analytics_digest(digest: Option<AnalyticsDigest>) -> Result<Option<AnalyticsDigest>, AppError> {
    let (backend, access) = backend::require().await?;
    backend.set_analytics_digest(&access, digest).await
}
