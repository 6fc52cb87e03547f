//! The server functions of the alerts page and the banner, and the backend they reach. Each establishes the
//! visitor's `Access` first; the backend checks the role: viewers read, admins change. Every change is audited.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use super::model::{AlertForm, AlertHistoryPage, AlertView};
use crate::error::AppError;

#[cfg(feature = "ssr")]
pub use backend::AlertsBackend;

#[cfg(feature = "ssr")]
mod backend {
    use std::sync::Arc;

    use super::AppError;
    use crate::access::Access;
    use crate::alerts::model::{AlertForm, AlertHistoryPage, AlertView};

    /// What the alerts page and the banner need from the server. Provided as `Arc<dyn AlertsBackend>` in the
    /// Leptos context; the management API shares it.
    #[async_trait::async_trait]
    pub trait AlertsBackend: Send + Sync + 'static {
        /// The account's alerts (its defaults created on first asking).
        async fn alerts(&self, access: &Access) -> Result<Vec<AlertView>, AppError>;
        /// Needs the admin role.
        async fn update_alert(&self, access: &Access, id: &str, form: AlertForm) -> Result<AlertView, AppError>;
        /// Stops a firing alert's notifications and banner until it resolves. Needs the admin role.
        async fn acknowledge_alert(&self, access: &Access, id: &str) -> Result<AlertView, AppError>;
        /// No notifications for `minutes` (0 lifts a silence). Needs the admin role.
        async fn silence_alert(&self, access: &Access, id: &str, minutes: i64) -> Result<AlertView, AppError>;
        /// The account's alert history, newest first, before the entry `before`.
        async fn alert_history(
            &self,
            access: &Access,
            before: Option<i64>,
            limit: u32,
        ) -> Result<AlertHistoryPage, AppError>;
    }

    pub(super) async fn require() -> Result<(Arc<dyn AlertsBackend>, Access), AppError> {
        let backend = leptos::prelude::use_context::<Arc<dyn AlertsBackend>>()
            .ok_or_else(|| AppError::Unavailable("no alerts backend in context".into()))?;
        let (_, access) = crate::api::require_access().await?;
        Ok((backend, access))
    }
}

#[server(input = Json)]
pub async fn list_alerts() -> Result<Vec<AlertView>, AppError> {
    let (backend, access) = backend::require().await?;
    backend.alerts(&access).await
}

#[server(input = Json)]
pub async fn update_alert(id: String, form: AlertForm) -> Result<AlertView, AppError> {
    let (backend, access) = backend::require().await?;
    backend.update_alert(&access, &id, form).await
}

#[server(input = Json)]
pub async fn acknowledge_alert(id: String) -> Result<AlertView, AppError> {
    let (backend, access) = backend::require().await?;
    backend.acknowledge_alert(&access, &id).await
}

#[server(input = Json)]
pub async fn silence_alert(id: String, minutes: i64) -> Result<AlertView, AppError> {
    let (backend, access) = backend::require().await?;
    backend.silence_alert(&access, &id, minutes).await
}

#[server(input = Json)]
pub async fn alert_history(before: Option<i64>, limit: u32) -> Result<AlertHistoryPage, AppError> {
    let (backend, access) = backend::require().await?;
    backend.alert_history(&access, before, limit).await
}
