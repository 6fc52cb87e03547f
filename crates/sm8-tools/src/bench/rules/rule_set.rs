//! The rules the `rules` scenario runs: ten of stage `processed` on jobs whose filters, written as accounts write
//! them (one per operator family), rarely match the bench's job updates, and one whose 20-line transform shapes
//! every job update into a message for an ERP.

use serde_json::{json, Value};

use server::rules::{AccountFacts, Document, EventFacts};
use server::store::{now_millis, DEFAULT_ACCOUNT};

/// The name of the webhook destination every rule delivers to.
pub const DESTINATION: &str = "erp-webhook";

/// A transform as an account would write one for an ERP: a job's identity, stage, address lines, dates and
/// invoice, from the mirrored record and what changed.
pub const TRANSFORM: &str = r#"const money = (text) => Math.round(Number(text || 0) * 100) / 100;
const day = (text) => (text && !text.startsWith("0000") ? text.slice(0, 10) : null);
const STAGES = { "Quote": "quoted", "Work Order": "scheduled", "Completed": "done", "Unsuccessful": "lost" };
(input) => {
  const job = input.record || {};
  const before = input.previous || {};
  const total = money(job.total_invoice_amount);
  return {
    id: input.event.id,
    job: { uuid: job.uuid, number: job.generated_job_id, company: job.company_uuid },
    stage: STAGES[job.status] || "other",
    stage_changed: job.status !== before.status,
    address: (job.job_address || "").split(",").map((line) => line.trim()).filter(Boolean),
    description: (job.job_description || "").slice(0, 200),
    dates: { quoted: day(job.quote_date), scheduled: day(job.work_order_date), completed: day(job.completion_date) },
    invoice: { total, tax: money(total / 11), sent: Boolean(job.invoice_sent), paid: job.payment_received === 1 },
    changed: Object.keys(input.changes || {}),
    account: input.account.slug,
    sent_at: new Date(input.event.received_at).toISOString(),
  };
}"#;

/// The rules, in their order, each delivering to `destination`: ten filters, then the transform.
pub fn definitions(destination: &str) -> Vec<Value> {
    let filters = [
        (
            "Job completed",
            json!({"record.status": "Completed", "previous.status": {"$neq": "Completed"}}),
        ),
        (
            "Quote accepted or invoiced",
            json!({"event.event_type": {"$in": ["quote_accepted", "invoice_sent"]}}),
        ),
        (
            "Large invoice sent",
            json!({"record.total_invoice_amount": {"$gte": 10000}, "record.invoice_sent": true}),
        ),
        (
            "Job lost",
            json!({"changes.status": {"$in": ["Unsuccessful", "Cancelled"]}}),
        ),
        (
            "Warranty work",
            json!({"record.job_description": {"$contains": "warranty"}}),
        ),
        (
            "Post office box address",
            json!({"record.job_address": {"$startsWith": "PO Box"}}),
        ),
        (
            "Completion date in the future",
            json!({"record.completion_date": {"$gt": "2030-01-01 00:00:00"}}),
        ),
        (
            "Paid before invoiced",
            json!({"record.payment_received": 1, "record.invoice_sent": false}),
        ),
        (
            "Job reopened",
            json!({"previous.status": "Completed", "record.status": {"$nin": ["Completed", "Unsuccessful"]}}),
        ),
        (
            "Job deactivated",
            json!({"$or": [{"record.active": 0}, {"$not": {"record.uuid": {"$exist": true}}}]}),
        ),
    ];
    let when = json!({"stage": "processed", "object_types": ["job"]});
    let deliver = json!([{"type": "deliver", "destinations": [destination]}]);
    let mut rules: Vec<Value> = filters
        .into_iter()
        .map(|(name, filter)| json!({"name": name, "when": when, "filter": filter, "actions": deliver}))
        .collect();
    rules.push(json!({"name": "Forward jobs to the ERP", "when": when, "transform": TRANSFORM, "actions": deliver}));
    rules
}

/// The document of an update of `record` (a job) whose status was `Quote` before, as rules at stage `processed`
/// read it.
pub fn job_update_document(record: Value) -> Document {
    let mut previous = record.clone();
    previous["status"] = json!("Quote");
    let now = now_millis();
    let event = EventFacts {
        id: uuid::Uuid::now_v7().to_string(),
        format: "seed".into(),
        object_type: "job".into(),
        object_uuid: record["uuid"].as_str().unwrap_or_default().to_owned(),
        event_type: "updated".into(),
        occurred_at: Some(now),
        received_at: now,
    };
    let account = AccountFacts {
        slug: DEFAULT_ACCOUNT.into(),
        name: "Default".into(),
    };
    let changes = json!({"status": record["status"]});
    Document::processed(&event, changes, record, Some(previous), &account)
}

#[cfg(test)]
mod tests {
    use super::*;
    use server::rules::sandbox::{Sandbox, SandboxLimits};
    use server::rules::{evaluate, ActionOutcome, MessageBody, Rule, RuleOutcome};

    fn work_order() -> Value {
        json!({
            "uuid": "job-1", "active": 1, "status": "Work Order", "company_uuid": "company-1",
            "generated_job_id": "1001", "job_address": "12 Smith Street, Fitzroy VIC 3065",
            "job_description": "Test and tag all appliances", "quote_date": "2024-03-01 09:00:00",
            "work_order_date": "2024-03-04 10:00:00", "completion_date": "0000-00-00 00:00:00",
            "total_invoice_amount": "1234.5000", "invoice_sent": false, "payment_received": 0,
        })
    }

    #[tokio::test]
    async fn the_filters_pass_a_work_order_update_by_and_the_transform_shapes_it() {
        let rules = definitions(DESTINATION);
        assert_eq!(rules.len(), 11);
        let document = job_update_document(work_order());
        let sandbox = Sandbox::start(SandboxLimits::default()).unwrap();
        let mut outcomes = Vec::new();
        for definition in &rules {
            let rule: Rule = serde_json::from_value(definition.clone()).unwrap();
            let compiled = rule.compile().unwrap_or_else(|error| panic!("{}: {error}", rule.name));
            outcomes.push(evaluate(&compiled, &document, &sandbox).await);
        }
        let (filters, transform) = outcomes.split_at(10);
        assert!(
            filters.iter().all(|outcome| *outcome == RuleOutcome::NotMatched),
            "{filters:?}"
        );
        let RuleOutcome::Matched(actions) = &transform[0] else {
            panic!("the transform rule did not match: {transform:?}");
        };
        let ActionOutcome::Deliver(messages) = &actions[0] else {
            panic!("the transform rule did not deliver: {actions:?}");
        };
        let MessageBody::Json(body) = &messages[0].body else {
            panic!("the transform rule rendered a template: {messages:?}");
        };
        assert_eq!(body["stage"], "scheduled");
        assert_eq!(body["stage_changed"], true);
        assert_eq!(body["address"], json!(["12 Smith Street", "Fitzroy VIC 3065"]));
        assert_eq!(body["dates"]["completed"], Value::Null);
        assert_eq!(body["invoice"]["total"], 1234.5);
        assert_eq!(body["changed"], json!(["status"]));
    }
}
