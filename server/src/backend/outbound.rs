//! `OutboundBackend` for the rules and destinations pages: each method is `destinations.rs`'s or `rules.rs`'s.

use app::access::Access;
use app::directory::model::ShownOnce;
use app::error::AppError;
use app::outbound::api::OutboundBackend;
use app::outbound::model::{
    CreatedDestination, DeliveryDetail, DeliveryPage, DeliveryQuery, DeliveryView, DestinationForm, DestinationView,
    RuleForm, RuleTest, RuleView, TestSendReport,
};
use serde_json::Value;

use super::ServerBackend;
use crate::processor::RuleHooks;

impl ServerBackend {
    /// The rule book and the delivery workers, where this server runs them.
    pub(super) fn outbound(&self) -> Result<&RuleHooks, AppError> {
        self.outbound
            .as_ref()
            .ok_or_else(|| AppError::Unavailable("rules and deliveries are not running on this server".into()))
    }

    /// Makes the pipeline read `account`'s rules and destinations again.
    pub(super) fn forget_rules(&self, account: &str) {
        if let Some(hooks) = &self.outbound {
            hooks.book.forget(account);
        }
    }

    pub(super) fn wake_deliveries(&self) {
        if let Some(hooks) = &self.outbound {
            hooks.deliverer.wake();
        }
    }
}

#[async_trait::async_trait]
impl OutboundBackend for ServerBackend {
    async fn destinations(&self, access: &Access) -> Result<Vec<DestinationView>, AppError> {
        self.destination_views(access).await
    }

    async fn create_destination(&self, access: &Access, form: DestinationForm) -> Result<CreatedDestination, AppError> {
        self.add_destination(access, form).await
    }

    async fn update_destination(
        &self,
        access: &Access,
        id: &str,
        form: DestinationForm,
    ) -> Result<DestinationView, AppError> {
        self.change_destination(access, id, form).await
    }

    async fn delete_destination(&self, access: &Access, id: &str) -> Result<(), AppError> {
        self.remove_destination(access, id).await
    }

    async fn rotate_destination_secret(&self, access: &Access, id: &str) -> Result<ShownOnce, AppError> {
        self.rotate_signing_secret(access, id).await
    }

    async fn set_destination_paused(
        &self,
        access: &Access,
        id: &str,
        paused: bool,
    ) -> Result<DestinationView, AppError> {
        self.pause_or_resume(access, id, paused).await
    }

    async fn send_test_message(&self, access: &Access, id: &str) -> Result<TestSendReport, AppError> {
        self.send_test(access, id).await
    }

    async fn rules(&self, access: &Access) -> Result<Vec<RuleView>, AppError> {
        self.rule_views(access).await
    }

    async fn create_rule(&self, access: &Access, form: RuleForm) -> Result<RuleView, AppError> {
        self.add_rule(access, form).await
    }

    async fn update_rule(&self, access: &Access, id: &str, form: RuleForm) -> Result<RuleView, AppError> {
        self.change_rule(access, id, form).await
    }

    async fn delete_rule(&self, access: &Access, id: &str) -> Result<(), AppError> {
        self.remove_rule(access, id).await
    }

    async fn reorder_rules(&self, access: &Access, ids: Vec<String>) -> Result<Vec<RuleView>, AppError> {
        self.order_rules(access, ids).await
    }

    async fn test_rule(&self, access: &Access, definition: Value, event_id: &str) -> Result<RuleTest, AppError> {
        self.try_rule(access, definition, event_id).await
    }

    async fn deliveries(&self, access: &Access, query: DeliveryQuery) -> Result<DeliveryPage, AppError> {
        self.delivery_page(access, query).await
    }

    async fn delivery_detail(&self, access: &Access, id: &str) -> Result<DeliveryDetail, AppError> {
        self.one_delivery(access, id).await
    }

    async fn event_deliveries(&self, access: &Access, event_id: &str) -> Result<Vec<DeliveryView>, AppError> {
        let query = DeliveryQuery {
            event_id: Some(event_id.to_owned()),
            limit: Some(100),
            ..DeliveryQuery::default()
        };
        Ok(self.delivery_page(access, query).await?.deliveries)
    }

    async fn retry_delivery(&self, access: &Access, id: &str) -> Result<(), AppError> {
        self.requeue_delivery(access, id).await
    }

    async fn retry_destination_deliveries(&self, access: &Access, destination_id: &str) -> Result<u64, AppError> {
        self.requeue_failed_deliveries(access, destination_id).await
    }
}
