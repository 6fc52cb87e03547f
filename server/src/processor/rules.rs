//! The account's rules in the pipeline: at stage `received` they may skip an event before its record is
//! fetched; at both stages they queue deliveries. Compiled rules are kept per account for a moment
//! (`RULES_TTL`) and dropped at once when this node changes them, so a busy pipeline does not read and compile
//! them for every batch, and another node's change applies within the moment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::rules::sandbox::Sandbox;
use crate::rules::{
    evaluate_each, AccountFacts, ActionOutcome, CompiledRule, Document, EventFacts, Rule, RuleOutcome, Stage,
};
use crate::store::outbound::NewDelivery;
use crate::store::{now_millis, ClaimedEvent, EventRecord, Store, StoreError};

/// How long a node uses the rules it read before reading them again.
const RULES_TTL: Duration = Duration::from_secs(2);

/// One account's enabled rules, compiled, by stage, and its destinations by name.
#[derive(Default)]
pub struct AccountRules {
    received: Vec<LoadedRule>,
    processed: Vec<LoadedRule>,
    destinations: HashMap<String, String>,
}

struct LoadedRule {
    id: String,
    compiled: CompiledRule,
}

impl AccountRules {
    /// Whether any rule applies at `stage`: without one, the stage costs nothing.
    pub fn any_at(&self, stage: Stage) -> bool {
        !self.at(stage).is_empty()
    }

    fn at(&self, stage: Stage) -> &[LoadedRule] {
        match stage {
            Stage::Received => &self.received,
            Stage::Processed => &self.processed,
        }
    }
}

/// What the rules decided about one event at one stage.
#[derive(Debug, Default)]
pub struct Decision {
    /// Finish the event as skipped with this reason (stage `received` only).
    pub skip: Option<String>,
    pub deliveries: Vec<NewDelivery>,
}

/// Every account's rules, as this node last read them, and the sandbox their transforms run in.
pub struct RuleBook {
    store: Arc<dyn Store>,
    sandbox: Sandbox,
    loaded: Mutex<HashMap<String, (Instant, Arc<AccountRules>)>>,
}

impl RuleBook {
    pub fn new(store: Arc<dyn Store>, sandbox: Sandbox) -> RuleBook {
        RuleBook {
            store,
            sandbox,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Forgets `account`'s rules: the next batch reads them again.
    pub fn forget(&self, account: &str) {
        self.loaded.lock().expect("rule book lock").remove(account);
    }

    /// `account`'s rules, read at most `RULES_TTL` ago.
    pub async fn of(&self, account: &str) -> Result<Arc<AccountRules>, StoreError> {
        if let Some((at, rules)) = self.loaded.lock().expect("rule book lock").get(account) {
            if at.elapsed() < RULES_TTL {
                return Ok(rules.clone());
            }
        }
        let rules = Arc::new(self.read(account).await?);
        self.loaded
            .lock()
            .expect("rule book lock")
            .insert(account.to_owned(), (Instant::now(), rules.clone()));
        Ok(rules)
    }

    async fn read(&self, account: &str) -> Result<AccountRules, StoreError> {
        let mut rules = AccountRules::default();
        for row in self.store.list_rules(account).await? {
            if !row.enabled {
                continue;
            }
            // Rules are compiled when they are saved; one that no longer compiles (after an upgrade) is left out
            // and said so, rather than stopping the account's pipeline.
            let compiled = serde_json::from_value::<Rule>(row.definition.clone())
                .map_err(|error| error.to_string())
                .and_then(|rule| rule.compile().map_err(|error| error.to_string()));
            match compiled {
                Ok(compiled) => {
                    let loaded = LoadedRule { id: row.id, compiled };
                    match loaded.compiled.stage() {
                        Stage::Received => rules.received.push(loaded),
                        Stage::Processed => rules.processed.push(loaded),
                    }
                }
                Err(error) => {
                    tracing::warn!(account, rule = %row.id, %error, "a stored rule does not compile: skipped")
                }
            }
        }
        rules.destinations = self
            .store
            .list_destinations(account)
            .await?
            .into_iter()
            .map(|destination| (destination.name, destination.id))
            .collect();
        Ok(rules)
    }

    /// Applies `rules` at the documents' stage (one for the whole batch), in order, to each of a batch's events
    /// with its document: the deliveries they ask for, and whether one skips the event (the first skip ends the
    /// event's evaluation: later rules never see a skipped event). Each rule runs over the whole batch at once,
    /// so a transform costs one hand-off to the sandbox per batch. The decisions are in the events' order.
    pub async fn decide_each(&self, rules: &AccountRules, events: &[(&ClaimedEvent, Document)]) -> Vec<Decision> {
        let mut decisions: Vec<Decision> = events.iter().map(|_| Decision::default()).collect();
        let Some((_, first)) = events.first() else {
            return decisions;
        };
        let now = now_millis();
        for rule in rules.at(first.stage()) {
            let open: Vec<usize> = (0..events.len())
                .filter(|&index| decisions[index].skip.is_none())
                .collect();
            if open.is_empty() {
                break;
            }
            let documents: Vec<&Document> = open.iter().map(|&index| &events[index].1).collect();
            let outcomes = evaluate_each(&rule.compiled, &documents, &self.sandbox).await;
            for (index, outcome) in open.into_iter().zip(outcomes) {
                let RuleOutcome::Matched(outcomes) = outcome else {
                    continue;
                };
                let origin = Origin {
                    rules,
                    rule,
                    event: events[index].0,
                    now,
                };
                origin.apply(outcomes, &mut decisions[index]);
            }
        }
        decisions
    }
}

/// Where an action's deliveries come from: which rule of the account, which of its actions, for which event.
struct Origin<'a> {
    rules: &'a AccountRules,
    rule: &'a LoadedRule,
    event: &'a ClaimedEvent,
    now: i64,
}

impl Origin<'_> {
    /// Adds what the rule's actions ask for to the event's decision.
    fn apply(&self, outcomes: Vec<ActionOutcome>, decision: &mut Decision) {
        for (action, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                ActionOutcome::Skip { reason } => {
                    // The first skip's reason stands.
                    decision.skip.get_or_insert(reason);
                }
                ActionOutcome::Deliver(messages) => {
                    for (index, message) in messages.into_iter().enumerate() {
                        let body = serde_json::to_value(&message.body).unwrap_or(Value::Null);
                        decision
                            .deliveries
                            .extend(self.delivery(action, index, &message.destination, body, None));
                    }
                }
                ActionOutcome::Dropped { .. } => {}
                ActionOutcome::Failed { destinations, error } => {
                    let failure = format!("rule {:?}: {error}", self.rule.compiled.name());
                    for destination in destinations {
                        decision.deliveries.extend(self.delivery(
                            action,
                            0,
                            &destination,
                            Value::Null,
                            Some(failure.clone()),
                        ));
                    }
                }
            }
        }
    }

    /// The delivery of message `index` of the action to `destination`, keyed so that processing the event again
    /// (after a crash, or a retry) queues it once; none when the account has no such destination any more.
    fn delivery(
        &self,
        action: usize,
        index: usize,
        destination: &str,
        message: Value,
        failed: Option<String>,
    ) -> Option<NewDelivery> {
        let (event, rule) = (self.event, self.rule);
        let Some(destination_id) = self.rules.destinations.get(destination) else {
            tracing::warn!(account = %event.account, rule = %rule.compiled.name(), destination, "a rule names a destination the account no longer has");
            return None;
        };
        Some(NewDelivery {
            id: uuid::Uuid::now_v7().to_string(),
            account: event.account.clone(),
            destination_id: destination_id.clone(),
            event_id: Some(event.id.clone()),
            rule_id: Some(rule.id.clone()),
            rule_name: Some(rule.compiled.name().to_owned()),
            dedup_key: Some(format!("{}:{}:{action}:{index}:{destination_id}", event.id, rule.id)),
            message,
            created_at: self.now,
            next_attempt_at: self.now,
            failed,
        })
    }
}

/// What rules know of a stored event (a rule tried against it from the dashboard).
pub fn event_facts_of(event: &EventRecord) -> EventFacts {
    EventFacts {
        id: event.id.clone(),
        format: event.format.clone(),
        object_type: event.object_type.clone(),
        object_uuid: event.object_uuid.clone(),
        event_type: event.event_type.clone(),
        occurred_at: event.occurred_at,
        received_at: event.received_at,
    }
}

/// What rules know of an event.
pub fn event_facts(event: &ClaimedEvent) -> EventFacts {
    EventFacts {
        id: event.id.clone(),
        format: event.format.clone(),
        object_type: event.object_type.clone(),
        object_uuid: event.object_uuid.clone(),
        event_type: event.event_type.clone(),
        occurred_at: event.occurred_at,
        received_at: event.received_at,
    }
}

/// What rules know of an account.
pub fn account_facts(slug: &str, name: &str) -> AccountFacts {
    AccountFacts {
        slug: slug.to_owned(),
        name: name.to_owned(),
    }
}
