//! The server functions of the rules and destinations pages, and the backend they reach. Each establishes the
//! visitor's `Access` first (`require_access`, as the dashboard's do); the backend checks the role: viewers
//! read, admins change. Every change is audited.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde_json::Value;

use super::model::{
    CreatedDestination, DeliveryDetail, DeliveryPage, DeliveryQuery, DestinationForm, DestinationView, RuleForm,
    RuleTest, RuleView, TestSendReport,
};
use crate::directory::model::ShownOnce;
use crate::error::AppError;

#[cfg(feature = "ssr")]
pub use backend::OutboundBackend;

#[cfg(feature = "ssr")]
mod backend {
    use std::sync::Arc;

    use serde_json::Value;

    use super::AppError;
    use crate::access::Access;
    use crate::directory::model::ShownOnce;
    use crate::outbound::model::{
        CreatedDestination, DeliveryDetail, DeliveryPage, DeliveryQuery, DeliveryView, DestinationForm,
        DestinationView, RuleForm, RuleTest, RuleView, TestSendReport,
    };

    /// What the rules and destinations pages need from the server. Provided as `Arc<dyn OutboundBackend>` in the
    /// Leptos context; the management API shares it.
    #[async_trait::async_trait]
    pub trait OutboundBackend: Send + Sync + 'static {
        async fn destinations(&self, access: &Access) -> Result<Vec<DestinationView>, AppError>;
        /// Needs the admin role. A webhook destination without a signing secret gets one, shown this once.
        async fn create_destination(
            &self,
            access: &Access,
            form: DestinationForm,
        ) -> Result<CreatedDestination, AppError>;
        async fn update_destination(
            &self,
            access: &Access,
            id: &str,
            form: DestinationForm,
        ) -> Result<DestinationView, AppError>;
        async fn delete_destination(&self, access: &Access, id: &str) -> Result<(), AppError>;
        /// A new signing secret for a webhook destination, shown this once; the previous one keeps signing
        /// beside it until the next rotation.
        async fn rotate_destination_secret(&self, access: &Access, id: &str) -> Result<ShownOnce, AppError>;
        async fn set_destination_paused(
            &self,
            access: &Access,
            id: &str,
            paused: bool,
        ) -> Result<DestinationView, AppError>;
        /// Sends a test message now and reports how it went (nothing is queued).
        async fn send_test_message(&self, access: &Access, id: &str) -> Result<TestSendReport, AppError>;

        async fn rules(&self, access: &Access) -> Result<Vec<RuleView>, AppError>;
        async fn create_rule(&self, access: &Access, form: RuleForm) -> Result<RuleView, AppError>;
        async fn update_rule(&self, access: &Access, id: &str, form: RuleForm) -> Result<RuleView, AppError>;
        async fn delete_rule(&self, access: &Access, id: &str) -> Result<(), AppError>;
        /// The account's rules in the order given (every rule's id once).
        async fn reorder_rules(&self, access: &Access, ids: Vec<String>) -> Result<Vec<RuleView>, AppError>;
        /// What `definition` would do to the stored event `event_id`, sending nothing. Needs the viewer role.
        async fn test_rule(&self, access: &Access, definition: Value, event_id: &str) -> Result<RuleTest, AppError>;

        async fn deliveries(&self, access: &Access, query: DeliveryQuery) -> Result<DeliveryPage, AppError>;
        async fn delivery_detail(&self, access: &Access, id: &str) -> Result<DeliveryDetail, AppError>;
        /// The deliveries an event caused, for its detail page.
        async fn event_deliveries(&self, access: &Access, event_id: &str) -> Result<Vec<DeliveryView>, AppError>;
        /// Queues one failed delivery again. Needs the admin role.
        async fn retry_delivery(&self, access: &Access, id: &str) -> Result<(), AppError>;
        /// Queues every failed delivery of a destination again; how many. Needs the admin role.
        async fn retry_destination_deliveries(&self, access: &Access, destination_id: &str) -> Result<u64, AppError>;
    }

    pub(super) async fn require() -> Result<(Arc<dyn OutboundBackend>, Access), AppError> {
        let backend = leptos::prelude::use_context::<Arc<dyn OutboundBackend>>()
            .ok_or_else(|| AppError::Unavailable("no rules backend in context".into()))?;
        let (_, access) = crate::api::require_access().await?;
        Ok((backend, access))
    }
}

#[server(input = Json)]
pub async fn list_destinations() -> Result<Vec<DestinationView>, AppError> {
    let (backend, access) = backend::require().await?;
    backend.destinations(&access).await
}

#[server(input = Json)]
pub async fn create_destination(form: DestinationForm) -> Result<CreatedDestination, AppError> {
    let (backend, access) = backend::require().await?;
    backend.create_destination(&access, form).await
}

#[server(input = Json)]
pub async fn update_destination(id: String, form: DestinationForm) -> Result<DestinationView, AppError> {
    let (backend, access) = backend::require().await?;
    backend.update_destination(&access, &id, form).await
}

#[server(input = Json)]
pub async fn delete_destination(id: String) -> Result<(), AppError> {
    let (backend, access) = backend::require().await?;
    backend.delete_destination(&access, &id).await
}

#[server(input = Json)]
pub async fn rotate_destination_secret(id: String) -> Result<ShownOnce, AppError> {
    let (backend, access) = backend::require().await?;
    backend.rotate_destination_secret(&access, &id).await
}

#[server(input = Json)]
pub async fn set_destination_paused(id: String, paused: bool) -> Result<DestinationView, AppError> {
    let (backend, access) = backend::require().await?;
    backend.set_destination_paused(&access, &id, paused).await
}

#[server(input = Json)]
pub async fn send_test_message(id: String) -> Result<TestSendReport, AppError> {
    let (backend, access) = backend::require().await?;
    backend.send_test_message(&access, &id).await
}

#[server(input = Json)]
pub async fn list_rules() -> Result<Vec<RuleView>, AppError> {
    let (backend, access) = backend::require().await?;
    backend.rules(&access).await
}

#[server(input = Json)]
pub async fn create_rule(form: RuleForm) -> Result<RuleView, AppError> {
    let (backend, access) = backend::require().await?;
    backend.create_rule(&access, form).await
}

#[server(input = Json)]
pub async fn update_rule(id: String, form: RuleForm) -> Result<RuleView, AppError> {
    let (backend, access) = backend::require().await?;
    backend.update_rule(&access, &id, form).await
}

#[server(input = Json)]
pub async fn delete_rule(id: String) -> Result<(), AppError> {
    let (backend, access) = backend::require().await?;
    backend.delete_rule(&access, &id).await
}

#[server(input = Json)]
pub async fn reorder_rules(ids: Vec<String>) -> Result<Vec<RuleView>, AppError> {
    let (backend, access) = backend::require().await?;
    backend.reorder_rules(&access, ids).await
}

#[server(input = Json)]
pub async fn test_rule(definition: Value, event_id: String) -> Result<RuleTest, AppError> {
    let (backend, access) = backend::require().await?;
    backend.test_rule(&access, definition, &event_id).await
}

#[server(input = Json)]
pub async fn list_deliveries(query: DeliveryQuery) -> Result<DeliveryPage, AppError> {
    let (backend, access) = backend::require().await?;
    backend.deliveries(&access, query).await
}

#[server(input = Json)]
pub async fn get_delivery_detail(id: String) -> Result<DeliveryDetail, AppError> {
    let (backend, access) = backend::require().await?;
    backend.delivery_detail(&access, &id).await
}

#[server(input = Json)]
pub async fn list_event_deliveries(event_id: String) -> Result<Vec<super::model::DeliveryView>, AppError> {
    let (backend, access) = backend::require().await?;
    backend.event_deliveries(&access, &event_id).await
}

#[server(input = Json)]
pub async fn retry_delivery(id: String) -> Result<(), AppError> {
    let (backend, access) = backend::require().await?;
    backend.retry_delivery(&access, &id).await
}

#[server(input = Json)]
pub async fn retry_destination_deliveries(destination_id: String) -> Result<u64, AppError> {
    let (backend, access) = backend::require().await?;
    backend.retry_destination_deliveries(&access, &destination_id).await
}
