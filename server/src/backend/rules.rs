//! The account's rules: listed in order, saved only when they compile and name destinations the account has,
//! reordered, and tried against a stored event without sending anything.

use app::access::{Access, Role};
use app::error::AppError;
use app::outbound::model::{ActionPreview, RuleForm, RuleTest, RuleView};
use serde_json::{json, Value};

use super::{unavailable, ServerBackend};
use crate::processor::rules_facts::{account_facts, event_facts_of};
use crate::rules::{self, evaluate, ActionOutcome, Document, Rule, RuleOutcome, Stage};
use crate::store::outbound::{NewRule, RuleOrder, RuleRow};
use crate::store::{millis_to_rfc3339, now_millis};

impl ServerBackend {
    pub(super) async fn rule_views(&self, access: &Access) -> Result<Vec<RuleView>, AppError> {
        access.require(Role::Viewer)?;
        let rows = self.store.list_rules(&access.account).await.map_err(unavailable)?;
        Ok(rows.iter().map(rule_view).collect())
    }

    pub(super) async fn add_rule(&self, access: &Access, form: RuleForm) -> Result<RuleView, AppError> {
        self.require(access, Role::Admin, "create_rule").await?;
        let name = rule_name(&form.definition);
        let created = match self.checked_rule(access, &form.definition).await {
            Ok(definition) => self
                .store
                .insert_rule(&NewRule {
                    id: uuid::Uuid::now_v7().to_string(),
                    account: access.account.clone(),
                    enabled: form.enabled,
                    definition,
                    created_at: now_millis(),
                })
                .await
                .map(|row| rule_view(&row))
                .map_err(unavailable),
            Err(error) => Err(error),
        };
        self.forget_rules(&access.account);
        self.audited(access, "create_rule", Some(&name), None, created).await
    }

    pub(super) async fn change_rule(&self, access: &Access, id: &str, form: RuleForm) -> Result<RuleView, AppError> {
        self.require(access, Role::Admin, "update_rule").await?;
        let changed = self.changed_rule(access, id, form).await;
        self.forget_rules(&access.account);
        self.audited(access, "update_rule", Some(id), None, changed).await
    }

    async fn changed_rule(&self, access: &Access, id: &str, form: RuleForm) -> Result<RuleView, AppError> {
        let definition = self.checked_rule(access, &form.definition).await?;
        let now = now_millis();
        let found = self
            .store
            .update_rule(&access.account, id, &definition, form.enabled, now)
            .await
            .map_err(unavailable)?;
        if !found {
            return Err(AppError::NotFound(format!("no rule {id}")));
        }
        let row = self.store.rule(&access.account, id).await.map_err(unavailable)?;
        row.map(|row| rule_view(&row))
            .ok_or_else(|| AppError::NotFound(format!("no rule {id}")))
    }

    pub(super) async fn remove_rule(&self, access: &Access, id: &str) -> Result<(), AppError> {
        self.require(access, Role::Admin, "delete_rule").await?;
        let removed = match self.store.delete_rule(&access.account, id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(AppError::NotFound(format!("no rule {id}"))),
            Err(error) => Err(unavailable(error)),
        };
        self.forget_rules(&access.account);
        self.audited(access, "delete_rule", Some(id), None, removed).await
    }

    pub(super) async fn order_rules(&self, access: &Access, ids: Vec<String>) -> Result<Vec<RuleView>, AppError> {
        self.require(access, Role::Admin, "reorder_rules").await?;
        let reordered = match self.store.reorder_rules(&access.account, &ids, now_millis()).await {
            Ok(RuleOrder::Reordered) => self.rule_views(access).await,
            Ok(RuleOrder::NotAPermutation) => Err(AppError::InvalidInput(
                "ids: name every rule of the account once, in the new order".into(),
            )),
            Err(error) => Err(unavailable(error)),
        };
        self.forget_rules(&access.account);
        self.audited(access, "reorder_rules", None, Some(json!({ "order": ids })), reordered)
            .await
    }

    /// What `definition` would do to the stored event `event_id` at the rule's own stage: at `processed`, with
    /// the record as mirrored now (and no earlier record to compare with).
    pub(super) async fn try_rule(
        &self,
        access: &Access,
        definition: Value,
        event_id: &str,
    ) -> Result<RuleTest, AppError> {
        access.require(Role::Viewer)?;
        let rule: Rule = parse_rule(&definition)?;
        let compiled = rule
            .compile()
            .map_err(|error| AppError::InvalidInput(error.to_string()))?;
        let event = self
            .store
            .event_record(&access.account, event_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| AppError::NotFound(format!("no event {event_id}")))?;
        let name = self
            .accounts
            .get(&access.account)
            .map(|account| account.name.clone())
            .unwrap_or_default();
        let account = account_facts(&access.account, &name);
        let facts = event_facts_of(&event);
        let document = match compiled.stage() {
            Stage::Received => Document::received(&facts, event.changes.clone(), &account),
            Stage::Processed => {
                let record = self
                    .store
                    .mirror_record(&access.account, &event.object_type, &event.object_uuid)
                    .await
                    .map_err(unavailable)?
                    .unwrap_or(Value::Null);
                Document::processed(&facts, event.changes.clone(), record, None, &account)
            }
        };
        let sandbox = self.outbound()?.book.sandbox();
        let outcome = evaluate(&compiled, &document, sandbox).await;
        let stage = match compiled.stage() {
            Stage::Received => "received",
            Stage::Processed => "processed",
        };
        Ok(RuleTest {
            stage: stage.into(),
            matched: matches!(outcome, RuleOutcome::Matched(_)),
            actions: match outcome {
                RuleOutcome::Matched(actions) => actions.into_iter().map(preview).collect(),
                RuleOutcome::NotMatched => Vec::new(),
            },
            document: document.as_json().clone(),
        })
    }

    /// The rule's definition, checked: it compiles, and each destination it names is the account's.
    async fn checked_rule(&self, access: &Access, definition: &Value) -> Result<Value, AppError> {
        let rule = parse_rule(definition)?;
        rule.compile()
            .map_err(|error| AppError::InvalidInput(error.to_string()))?;
        let destinations = self
            .store
            .list_destinations(&access.account)
            .await
            .map_err(unavailable)?;
        for (index, action) in rule.actions.iter().enumerate() {
            if let rules::Action::Deliver {
                destinations: named, ..
            } = action
            {
                for name in named {
                    if !destinations.iter().any(|destination| &destination.name == name) {
                        return Err(AppError::InvalidInput(format!(
                            "at actions[{index}].destinations: the account has no destination named {name:?}"
                        )));
                    }
                }
            }
        }
        serde_json::to_value(&rule).map_err(|error| AppError::InvalidInput(error.to_string()))
    }
}

fn parse_rule(definition: &Value) -> Result<Rule, AppError> {
    serde_json::from_value(definition.clone())
        .map_err(|error| AppError::InvalidInput(format!("at definition: {error}")))
}

fn rule_name(definition: &Value) -> String {
    definition["name"].as_str().unwrap_or_default().to_owned()
}

fn rule_view(row: &RuleRow) -> RuleView {
    RuleView {
        id: row.id.clone(),
        position: row.position,
        enabled: row.enabled,
        name: rule_name(&row.definition),
        stage: row.definition["when"]["stage"]
            .as_str()
            .unwrap_or("processed")
            .to_owned(),
        definition: row.definition.clone(),
        updated_at: millis_to_rfc3339(row.updated_at),
    }
}

fn preview(outcome: ActionOutcome) -> ActionPreview {
    match outcome {
        ActionOutcome::Skip { reason } => ActionPreview {
            outcome: "skip".into(),
            destinations: Vec::new(),
            messages: Vec::new(),
            detail: Some(reason),
        },
        ActionOutcome::Deliver(messages) => ActionPreview {
            outcome: "deliver".into(),
            destinations: messages.iter().map(|message| message.destination.clone()).collect(),
            messages: messages
                .iter()
                .map(|message| serde_json::to_value(&message.body).unwrap_or_default())
                .collect(),
            detail: None,
        },
        ActionOutcome::Dropped { destinations } => ActionPreview {
            outcome: "dropped".into(),
            destinations,
            messages: Vec::new(),
            detail: Some("the transform returned nothing to send".into()),
        },
        ActionOutcome::Failed { destinations, error } => ActionPreview {
            outcome: "failed".into(),
            destinations,
            messages: Vec::new(),
            detail: Some(error.to_string()),
        },
    }
}
