//! Processing one claimed batch (the due events of one object): fetch, mirror, finish, announce.

use std::sync::Arc;

use app::objects::{CompanyLink, JobLink, JOB};
use serde_json::{Map, Value};

use super::lease::Lease;
use super::rules::{account_facts, event_facts, AccountRules};
use super::{RetryPolicy, RuleHooks, Step};
use crate::accounts::Accounts;
use crate::metrics;
use crate::rules::{AccountFacts, Document, Stage};
use crate::servicem8::client::{ApiCallError, Fetched, ServiceM8Client};
use crate::store::mirror::text_field;
use crate::store::outbound::NewDelivery;
use crate::store::{
    now_millis, object_spec, AttemptTiming, ClaimedEvent, Completion, MirrorRecord, ObjectSpec, Store, StoreError,
};
use crate::updates::{PipelineEvent, PipelineStage, PipelineUpdate, RecordUpdate, RowChange, UpdateSender};

pub(super) struct Handler {
    store: Arc<dyn Store>,
    accounts: Arc<Accounts>,
    updates: UpdateSender,
    policy: RetryPolicy,
    rules: Option<RuleHooks>,
}

/// Which job and company a record belongs to, for routing its update.
#[derive(Debug, Default)]
struct Owners {
    company_uuid: Option<String>,
    job_uuid: Option<String>,
}

impl Handler {
    pub(super) fn new(
        store: Arc<dyn Store>,
        accounts: Arc<Accounts>,
        updates: UpdateSender,
        policy: RetryPolicy,
        rules: Option<RuleHooks>,
    ) -> Self {
        Handler {
            store,
            accounts,
            updates,
            policy,
            rules,
        }
    }

    /// Processes one object's claimed events under `lease`, which the caller keeps renewed.
    pub(super) async fn process(&self, batch: &[ClaimedEvent], lease: &Lease) -> Result<Step, StoreError> {
        let started_at = now_millis();
        for event in batch {
            self.announce(event, PipelineStage::Processing, None);
        }
        let first = &batch[0];
        let account = match self.accounts.get(&first.account) {
            Some(account) if !account.disabled => account,
            found => {
                let state = if found.is_some() {
                    "is disabled"
                } else {
                    "no longer exists"
                };
                let reason = format!("account {} {state}: not processed", first.account);
                let work = Work::new(batch, lease, started_at, None, account_facts(&first.account, ""));
                self.finish(&work, batch, Completion::Skipped(reason), None).await?;
                return Ok(Step::Processed);
            }
        };
        let rules = match &self.rules {
            Some(hooks) => Some(hooks.book.of(&account.slug).await?),
            None => None,
        };
        let facts = account_facts(&account.slug, &account.name);
        let received = Work::new(batch, lease, started_at, rules.clone(), facts.clone());
        let remaining = self.apply_received_rules(&received).await?;
        if remaining.is_empty() {
            return Ok(Step::Processed);
        }
        let work = Work::new(&remaining, lease, started_at, rules, facts);
        let Some(table) = object_spec(&first.object_type) else {
            let reason = format!("unknown object type {:?}: not mirrored", first.object_type);
            self.finish(&work, &remaining, Completion::Skipped(reason), None)
                .await?;
            return Ok(Step::Processed);
        };
        match &account.client {
            Some(client) => self.fetch_and_mirror(client, table, &work).await,
            None => self.apply_payloads(table, &work).await,
        }
    }

    /// Applies the account's rules of stage `received` to each event: queues the deliveries they ask for and
    /// finishes the events they skip (no API request is spent on those); returns the events left to process.
    async fn apply_received_rules(&self, work: &Work<'_>) -> Result<Vec<ClaimedEvent>, StoreError> {
        let (Some(hooks), Some(rules)) = (&self.rules, &work.rules) else {
            return Ok(work.batch.to_vec());
        };
        if !rules.any_at(Stage::Received) {
            return Ok(work.batch.to_vec());
        }
        let mut deliveries = Vec::new();
        let mut remaining = Vec::with_capacity(work.batch.len());
        let mut skipped = Vec::new();
        let documents: Vec<_> = work
            .batch
            .iter()
            .map(|event| {
                let document = Document::received(&event_facts(event), event.changes.clone(), &work.account);
                (event, document)
            })
            .collect();
        let decisions = hooks.book.decide_each(rules, &documents).await;
        for (event, decision) in work.batch.iter().zip(decisions) {
            deliveries.extend(decision.deliveries);
            match decision.skip {
                Some(reason) => skipped.push((event, reason)),
                None => remaining.push(event.clone()),
            }
        }
        self.enqueue(deliveries).await?;
        for (event, reason) in skipped {
            self.finish(work, std::slice::from_ref(event), Completion::Skipped(reason), None)
                .await?;
        }
        Ok(remaining)
    }

    /// The deliveries the account's rules of stage `processed` ask for, for each event of the batch, its record
    /// now mirrored (`previous`: the mirror's record before). A rule's transform runs for the whole batch in one
    /// hand-off to the sandbox. The deliveries are queued in the transaction that finishes the events, so that
    /// a crash before it processes the events again rather than losing the deliveries (which the store keeps
    /// once each).
    async fn processed_rule_deliveries(
        &self,
        work: &Work<'_>,
        events: &[ClaimedEvent],
        record: &Value,
        previous: &Option<Value>,
    ) -> Vec<NewDelivery> {
        let (Some(hooks), Some(rules)) = (&self.rules, &work.rules) else {
            return Vec::new();
        };
        let documents: Vec<_> = events
            .iter()
            .map(|event| {
                let changes = filled_changes(&event.changes, record);
                let document = Document::processed(
                    &event_facts(event),
                    changes,
                    record.clone(),
                    previous.clone(),
                    &work.account,
                );
                (event, document)
            })
            .collect();
        hooks
            .book
            .decide_each(rules, &documents)
            .await
            .into_iter()
            .flat_map(|decision| decision.deliveries)
            .collect()
    }

    /// The mirror's record of the batch's object before this change, when a rule of stage `processed` will
    /// read it.
    async fn previous_record(&self, work: &Work<'_>) -> Result<Option<Value>, StoreError> {
        if !work.rules.as_ref().is_some_and(|rules| rules.any_at(Stage::Processed)) {
            return Ok(None);
        }
        let event = &work.batch[0];
        self.store
            .mirror_record(&event.account, &event.object_type, &event.object_uuid)
            .await
    }

    async fn enqueue(&self, deliveries: Vec<NewDelivery>) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        if self.store.enqueue_deliveries(&deliveries).await? > 0 {
            if let Some(hooks) = &self.rules {
                hooks.deliverer.wake();
            }
        }
        Ok(())
    }

    async fn fetch_and_mirror(
        &self,
        client: &ServiceM8Client,
        table: &'static ObjectSpec,
        work: &Work<'_>,
    ) -> Result<Step, StoreError> {
        let batch = work.batch;
        let (account, object_type, object_uuid) = (&batch[0].account, &batch[0].object_type, &batch[0].object_uuid);
        let fetched = match listed_record(batch) {
            // Reconciliation already holds the record as listed: no need to spend a request on it.
            Some(record) => Ok(Fetched::Record(record)),
            None => client.fetch(table.object_type, object_uuid).await,
        };
        match fetched {
            Ok(Fetched::Record(record)) => {
                let Some(row) = MirrorRecord::from_record(account, table, record) else {
                    let error = ApiCallError::InvalidResponse("record without uuid".into());
                    self.retry_or_fail(work, &error).await?;
                    return Ok(Step::Processed);
                };
                if !self.still_held(work).await? {
                    return Ok(Step::Processed);
                }
                let previous = self.previous_record(work).await?;
                let mirrored_at = now_millis();
                let write = self.store.upsert_mirror(&row, mirrored_at).await?;
                let owners = self.owners(&row.account, table, &row.uuid, &row.record).await?;
                let deliveries = self
                    .processed_rule_deliveries(work, batch, &row.record, &previous)
                    .await;
                if self
                    .finish_delivering(work, batch, Completion::Success, Some(200), deliveries)
                    .await?
                {
                    // One write for the whole batch: its row change goes with the first event's update only.
                    let mut row_change = row.change(&write, mirrored_at);
                    for event in batch {
                        let changes = filled_changes(&event.changes, &row.record);
                        self.announce_record(event, changes, &owners, row_change.take());
                    }
                }
                Ok(Step::Processed)
            }
            Ok(Fetched::Missing) => {
                let reason = format!("ServiceM8 has no {object_type} {object_uuid}: not mirrored");
                self.finish(work, batch, Completion::Skipped(reason), Some(404)).await?;
                Ok(Step::Processed)
            }
            Err(ApiCallError::BudgetExhausted { retry_at }) => {
                let reason = "ServiceM8 request budget spent; waiting for room in it".to_owned();
                self.finish(work, batch, Completion::Postponed(reason), None).await?;
                Ok(Step::BudgetSpent { until: retry_at })
            }
            Err(ApiCallError::RateLimited { retry_at }) => {
                let reason = ApiCallError::RateLimited { retry_at }.to_string();
                self.finish(work, batch, Completion::Postponed(reason), Some(429))
                    .await?;
                Ok(Step::BudgetSpent { until: retry_at })
            }
            Err(ApiCallError::Store(error)) => Err(error),
            Err(error) => {
                self.retry_or_fail(work, &error).await?;
                Ok(Step::Processed)
            }
        }
    }

    /// Schedules each event's next attempt, or fails it when its retries are used up.
    async fn retry_or_fail(&self, work: &Work<'_>, error: &ApiCallError) -> Result<(), StoreError> {
        for event in work.batch {
            let completion = match self.policy.delay_after(event.attempts) {
                Some(delay) => Completion::Retry {
                    next_attempt_at: now_millis() + delay.as_millis() as i64,
                    error: error.to_string(),
                },
                None => Completion::Failed(error.to_string()),
            };
            self.finish(work, std::slice::from_ref(event), completion, error.http_status())
                .await?;
        }
        Ok(())
    }

    /// Without credentials: merges each event's own `changes` into the mirrored record, in order.
    async fn apply_payloads(&self, table: &'static ObjectSpec, work: &Work<'_>) -> Result<Step, StoreError> {
        for event in work.batch {
            let values: Map<String, Value> = match &event.changes {
                Value::Object(changes) => changes
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                _ => Map::new(),
            };
            if values.is_empty() {
                let reason = "no ServiceM8 credentials: the delivery names changed fields but carries no values".into();
                self.finish(work, std::slice::from_ref(event), Completion::Skipped(reason), None)
                    .await?;
                continue;
            }
            let stored = self
                .store
                .mirror_record(&event.account, table.object_type, &event.object_uuid)
                .await?;
            let previous = stored.clone();
            let mut record = match stored {
                Some(Value::Object(record)) => record,
                _ => Map::from_iter([
                    ("uuid".to_owned(), Value::from(event.object_uuid.clone())),
                    ("active".to_owned(), 1.into()),
                ]),
            };
            record.extend(values.clone());
            let occurred = event.occurred_at.unwrap_or(event.received_at);
            let edit_date = servicem8_date(occurred);
            if record
                .get("edit_date")
                .and_then(Value::as_str)
                .is_none_or(|stored| stored < edit_date.as_str())
            {
                record.insert("edit_date".into(), edit_date.into());
            }
            let record = Value::Object(record);
            let row = MirrorRecord::from_record(&event.account, table, record)
                .expect("the record was given the event's uuid");
            if !self.still_held(work).await? {
                return Ok(Step::Processed);
            }
            let mirrored_at = now_millis();
            let write = self.store.upsert_mirror(&row, mirrored_at).await?;
            let owners = self.owners(&row.account, table, &row.uuid, &row.record).await?;
            let deliveries = self
                .processed_rule_deliveries(work, std::slice::from_ref(event), &row.record, &previous)
                .await;
            if self
                .finish_delivering(work, std::slice::from_ref(event), Completion::Success, None, deliveries)
                .await?
            {
                let row_change = row.change(&write, mirrored_at);
                self.announce_record(event, Value::Object(values), &owners, row_change);
            }
        }
        Ok(Step::Processed)
    }

    /// The job and company the record belongs to, by its type's links (`app::objects`).
    async fn owners(
        &self,
        account: &str,
        table: &ObjectSpec,
        uuid: &str,
        record: &Value,
    ) -> Result<Owners, StoreError> {
        let job_uuid = match table.job {
            JobLink::Itself => Some(uuid.to_owned()),
            JobLink::Field(field) => text_field(record, field),
            JobLink::Related { kind_field, uuid_field } => text_field(record, kind_field)
                .filter(|kind| kind.eq_ignore_ascii_case(JOB.object_type))
                .and_then(|_| text_field(record, uuid_field)),
            JobLink::None => None,
        };
        let company_uuid = match table.company {
            CompanyLink::Itself => Some(uuid.to_owned()),
            CompanyLink::Field(field) => text_field(record, field),
            CompanyLink::ThroughJob => match &job_uuid {
                Some(job_uuid) => self.store.job_company(account, job_uuid).await?,
                None => None,
            },
            CompanyLink::None => None,
        };
        Ok(Owners { company_uuid, job_uuid })
    }

    /// Whether the work's lease is still this worker's; when it is not, says so: the events are someone else's.
    async fn still_held(&self, work: &Work<'_>) -> Result<bool, StoreError> {
        let held = work.lease.hold().await?.is_some();
        if !held {
            lost_lease(work.batch);
        }
        Ok(held)
    }

    /// Records how the attempt at `events` (of `work`) ended and announces it; false, with nothing written or
    /// announced, when the lease was lost.
    async fn finish(
        &self,
        work: &Work<'_>,
        events: &[ClaimedEvent],
        completion: Completion,
        http_status: Option<i32>,
    ) -> Result<bool, StoreError> {
        self.finish_delivering(work, events, completion, http_status, Vec::new())
            .await
    }

    /// `finish`, queueing `deliveries` in the same commit.
    async fn finish_delivering(
        &self,
        work: &Work<'_>,
        events: &[ClaimedEvent],
        completion: Completion,
        http_status: Option<i32>,
        deliveries: Vec<NewDelivery>,
    ) -> Result<bool, StoreError> {
        let Some(held) = work.lease.hold().await? else {
            lost_lease(events);
            return Ok(false);
        };
        let timing = AttemptTiming {
            started_at: work.started_at,
            finished_at: now_millis(),
            http_status,
        };
        let finished = self
            .store
            .finish_events_delivering(&held.stamp(events), &completion, &timing, &deliveries)
            .await?;
        drop(held);
        if finished == 0 {
            lost_lease(events);
            return Ok(false);
        }
        if !deliveries.is_empty() {
            if let Some(hooks) = &self.rules {
                hooks.deliverer.wake();
            }
        }
        metrics::record_finished(
            &events[0].account,
            &completion,
            events.len(),
            timing.finished_at - work.started_at,
        );
        let stage = match &completion {
            Completion::Success => PipelineStage::Success,
            Completion::Skipped(_) => PipelineStage::Skipped,
            Completion::Retry { .. } | Completion::Postponed(_) => PipelineStage::Retrying,
            Completion::Failed(_) => PipelineStage::Failed,
        };
        let detail = match &completion {
            Completion::Skipped(reason) => Some(reason.as_str()),
            other => other.error(),
        };
        for event in events {
            self.announce(event, stage, detail);
        }
        Ok(true)
    }

    fn announce(&self, event: &ClaimedEvent, stage: PipelineStage, error: Option<&str>) {
        let _ = self.updates.send(PipelineUpdate::Lifecycle(PipelineEvent {
            account: event.account.clone(),
            event_id: event.id.clone(),
            object_type: event.object_type.clone(),
            object_uuid: event.object_uuid.clone(),
            event_type: event.event_type.clone(),
            stage,
            attempts: event.attempts,
            error: error.map(str::to_owned),
            at: now_millis(),
            offset: None,
        }));
    }

    fn announce_record(&self, event: &ClaimedEvent, changes: Value, owners: &Owners, row: Option<RowChange>) {
        let _ = self.updates.send(PipelineUpdate::Record(RecordUpdate {
            account: event.account.clone(),
            event_id: event.id.clone(),
            object_type: event.object_type.clone(),
            object_uuid: event.object_uuid.clone(),
            event_type: event.event_type.clone(),
            changes,
            company_uuid: owners.company_uuid.clone(),
            job_uuid: owners.job_uuid.clone(),
            received_at: event.received_at,
            row,
        }));
        metrics::record_broadcast(self.accounts.tallies(), &event.account, event.received_at);
    }
}

/// One object's claimed events being worked on, and the account's rules.
struct Work<'a> {
    batch: &'a [ClaimedEvent],
    lease: &'a Lease,
    started_at: i64,
    rules: Option<Arc<AccountRules>>,
    account: AccountFacts,
}

impl<'a> Work<'a> {
    fn new(
        batch: &'a [ClaimedEvent],
        lease: &'a Lease,
        started_at: i64,
        rules: Option<Arc<AccountRules>>,
        account: AccountFacts,
    ) -> Work<'a> {
        Work {
            batch,
            lease,
            started_at,
            rules,
            account,
        }
    }
}

fn lost_lease(events: &[ClaimedEvent]) {
    tracing::warn!(
        object_type = %events[0].object_type,
        object_uuid = %events[0].object_uuid,
        events = events.len(),
        "lease lost: another worker has claimed these events; this attempt writes and announces nothing"
    );
}

/// The newest record carried by reconciliation events, when every event of the batch is one.
fn listed_record(batch: &[ClaimedEvent]) -> Option<Value> {
    if !batch.iter().all(|event| event.format == "sync") {
        return None;
    }
    batch
        .iter()
        .map(|event| &event.changes)
        .filter(|record| record.get("uuid").is_some())
        .max_by_key(|record| text_field(record, "edit_date"))
        .cloned()
}

/// The event's changes with each field named without a value (object callbacks) filled from the record.
fn filled_changes(changes: &Value, record: &Value) -> Value {
    match changes {
        Value::Object(changes) => Value::Object(
            changes
                .iter()
                .map(|(field, value)| {
                    let value = if value.is_null() {
                        record.get(field).cloned().unwrap_or(Value::Null)
                    } else {
                        value.clone()
                    };
                    (field.clone(), value)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Unix milliseconds as ServiceM8 writes dates: `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn servicem8_date(millis: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_named_without_values_are_filled_from_the_record() {
        let changes = json!({"status": null, "job_description": "given"});
        let record = json!({"status": "Completed", "job_description": "stored"});
        assert_eq!(
            filled_changes(&changes, &record),
            json!({"status": "Completed", "job_description": "given"})
        );
    }

    #[test]
    fn dates_are_written_like_servicem8_writes_them() {
        assert_eq!(servicem8_date(1_704_067_200_000), "2024-01-01 00:00:00");
    }
}
