//! The account changing by itself, and the callbacks that announce changes.
//!
//! Every tick of the change task picks a record and changes it as people using ServiceM8 would (a quote becomes a
//! work order, a job is completed and invoiced, a visit is booked, a photo is added, something is deleted), bumps
//! its `edit_date`, and posts an object callback in the real format to each target and each matching subscription:
//! `{"object":"job","entry":[{"uuid","changed_fields","time"}],"resource_url":".../api_1.0/job/<uuid>.json"}`.
//! Event subscriptions get the same body with an `eventName`; ServiceM8 does not document that body, so its shape
//! here is a guess.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::config::CallbackFormat;
use super::generate::{self, Generator, JOB_STATUSES};
use super::records::{format_date, now, ObjectKind, Record, Records, NO_DATE};
use super::state::{lock, MockState};
use super::subscriptions::{Topic, CALLBACK_TIMEOUT};

/// One change to one record, as a callback announces it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: ObjectKind,
    pub uuid: String,
    pub changed_fields: Vec<String>,
    /// The record's new `edit_date`.
    pub time: String,
    /// The record after the change.
    pub record: Record,
    /// Whether the record was added by this change.
    pub created: bool,
}

/// How one callback went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The target answered 2xx with this status.
    Delivered(u16),
    /// The target answered with another status.
    Refused(u16),
    /// The target could not be reached or did not answer in time.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackDelivery {
    pub url: String,
    pub outcome: DeliveryOutcome,
}

/// Changes a random record every `every` until the account shuts down.
pub(crate) async fn run(state: Arc<MockState>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The first tick is immediate; the first change should come one interval after start.
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Some(change) = random_change(&state) {
            tracing::debug!(object = %change.kind, uuid = %change.uuid, fields = ?change.changed_fields, "record changed");
            // Deliveries run beside the ticker so that a slow target does not slow the account down.
            let state = state.clone();
            tokio::spawn(async move { deliver(&state, &change).await });
        }
    }
}

/// Makes one realistic change; `None` when there was nothing to change.
pub(crate) fn random_change(state: &MockState) -> Option<Change> {
    let mut generator = lock(&state.generator);
    let mut records = lock(&state.records);
    let roll: f64 = generator.rng().random();
    let (kind, changes) = match roll {
        r if r < 0.55 => (ObjectKind::Job, None),
        r if r < 0.65 => (ObjectKind::Company, None),
        r if r < 0.75 => return add_activity(&mut generator, &mut records),
        r if r < 0.85 => return add_attachment(&mut generator, &mut records),
        r if r < 0.90 => (ObjectKind::Staff, None),
        _ => {
            let kind = *[ObjectKind::JobActivity, ObjectKind::Attachment, ObjectKind::Job]
                .choose(generator.rng())
                .expect("kinds");
            (kind, Some(object(json!({"active": 0}))))
        }
    };
    let uuid = pick_active(&mut generator, &records, kind)?;
    let record = records.get(kind, &uuid)?;
    let changes = changes.unwrap_or_else(|| match kind {
        ObjectKind::Job => job_changes(record, &mut generator),
        ObjectKind::Company => company_changes(record, &mut generator),
        ObjectKind::Staff => staff_changes(&mut generator),
        // Activities and attachments are added or removed above, never edited.
        ObjectKind::JobActivity | ObjectKind::Attachment => Map::new(),
    });
    let changed_fields = records.update(kind, &uuid, changes, now()).ok()?;
    // A change that happened to set the values already there is no change to announce.
    if changed_fields.is_empty() {
        return None;
    }
    let record = records.get(kind, &uuid)?.clone();
    Some(Change {
        kind,
        time: edit_date(&record),
        uuid,
        changed_fields,
        record,
        created: false,
    })
}

/// A uuid of an active record of `kind`, if there is one.
fn pick_active(generator: &mut Generator, records: &Records, kind: ObjectKind) -> Option<String> {
    let count = records.len(kind);
    // A few tries: most records are active, and a miss only skips one tick.
    (0..8).find_map(|_| {
        let uuid = records.uuids(kind).nth(generator.rng().random_range(0..count.max(1)))?;
        (records.get(kind, uuid)?.get("active") == Some(&json!(1))).then(|| uuid.clone())
    })
}

/// The next step in a job's life.
fn job_changes(job: &Record, generator: &mut Generator) -> Map<String, Value> {
    let at = format_date(now());
    let rng = generator.rng();
    let amount = format!("{:.4}", f64::from(rng.random_range(8_000..500_000)) / 100.0);
    let description = *generate::JOB_DESCRIPTIONS.choose(rng).expect("descriptions");
    let (advance, complete) = (rng.random_bool(0.8), rng.random_bool(0.5));
    let status = job.get("status").and_then(Value::as_str).unwrap_or(JOB_STATUSES[0]);
    let changes = match status {
        "Quote" if advance => {
            json!({"status": "Work Order", "work_order_date": at, "total_invoice_amount": amount})
        }
        "Quote" => json!({"status": "Unsuccessful", "unsuccessful_date": at}),
        "Work Order" if complete => json!({"status": "Completed", "completion_date": at}),
        "Work Order" => json!({"job_description": description, "total_invoice_amount": amount}),
        "Completed" if job.get("invoice_sent") != Some(&json!(true)) => {
            json!({"invoice_sent": true})
        }
        "Completed" if job.get("payment_received") != Some(&json!(1)) => {
            json!({"payment_received": 1})
        }
        "Unsuccessful" => json!({
            "status": "Quote", "quote_date": at, "unsuccessful_date": NO_DATE, "job_description": description,
        }),
        _ => json!({"job_description": description}),
    };
    object(changes)
}

fn company_changes(company: &Record, generator: &mut Generator) -> Map<String, Value> {
    let street = company
        .get("address_street")
        .and_then(Value::as_str)
        .unwrap_or("1 High Street");
    let street_name = street.split_once(' ').map_or(street, |(_, name)| name);
    let street = format!("{} {street_name}", generator.rng().random_range(1..400));
    let text = |field: &str| {
        company
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let billing = format!(
        "{street}, {} {} {}",
        text("address_city"),
        text("address_state"),
        text("address_postcode")
    );
    object(json!({"address_street": street, "billing_address": billing}))
}

fn staff_changes(generator: &mut Generator) -> Map<String, Value> {
    let rng = generator.rng();
    let digits: [u16; 3] = [
        rng.random_range(0..100),
        rng.random_range(0..1000),
        rng.random_range(0..1000),
    ];
    let mobile = format!("04{:02} {:03} {:03}", digits[0], digits[1], digits[2]);
    object(json!({"mobile": mobile}))
}

/// Books a visit on an active job.
fn add_activity(generator: &mut Generator, records: &mut Records) -> Option<Change> {
    let job_uuid = pick_active(generator, records, ObjectKind::Job)?;
    let staff_uuid = pick_active(generator, records, ObjectKind::Staff)?;
    let job = records.get(ObjectKind::Job, &job_uuid)?.clone();
    let mut activity = generator.job_activity(&job, &staff_uuid);
    let start = now() + time::Duration::days(generator.rng().random_range(1..14));
    activity.insert("start_date".into(), format_date(start).into());
    activity.insert("end_date".into(), format_date(start + time::Duration::hours(2)).into());
    activity.insert("activity_was_recorded".into(), 0.into());
    Some(insert(records, ObjectKind::JobActivity, activity))
}

/// Adds a photo or document to an active job.
fn add_attachment(generator: &mut Generator, records: &mut Records) -> Option<Change> {
    let job_uuid = pick_active(generator, records, ObjectKind::Job)?;
    let job = records.get(ObjectKind::Job, &job_uuid)?.clone();
    let mut attachment = generator.attachment(&job);
    attachment.insert("timestamp".into(), format_date(now()).into());
    Some(insert(records, ObjectKind::Attachment, attachment))
}

/// Stores a new record stamped now; every field but `uuid` counts as changed.
pub(crate) fn insert(records: &mut Records, kind: ObjectKind, mut record: Record) -> Change {
    let time = format_date(now());
    record.insert("edit_date".into(), time.clone().into());
    let uuid = generate::uuid_of(&record);
    let changed_fields = record.keys().filter(|field| *field != "uuid").cloned().collect();
    records.put(kind, record.clone());
    Change {
        kind,
        uuid,
        changed_fields,
        time,
        record,
        created: true,
    }
}

fn edit_date(record: &Record) -> String {
    record
        .get("edit_date")
        .and_then(Value::as_str)
        .unwrap_or(NO_DATE)
        .to_owned()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("changes are built from object literals"),
    }
}

/// The object callback ServiceM8 posts for `change`.
pub fn callback_body(base_url: &str, change: &Change) -> Value {
    json!({
        "object": change.kind.as_str(),
        "entry": [{"uuid": change.uuid, "changed_fields": change.changed_fields, "time": change.time}],
        "resource_url": format!("{base_url}/{}/{}.json", change.kind, change.uuid),
    })
}

/// The event names a change stands for.
fn events_for(change: &Change) -> Vec<&'static str> {
    let changed = |field: &str| change.changed_fields.iter().any(|f| f == field);
    let value = |field: &str| change.record.get(field).cloned().unwrap_or(Value::Null);
    match change.kind {
        ObjectKind::Job if change.created => vec!["job.created"],
        ObjectKind::Job => {
            let mut events = vec!["job.updated"];
            if changed("status") {
                events.push("job.status_changed");
                if value("status") == "Completed" {
                    events.push("job.completed");
                }
            }
            if changed("invoice_sent") && value("invoice_sent") == true {
                events.push("job.invoice_sent");
            }
            if changed("payment_received") && value("payment_received") == 1 {
                events.push("job.invoice_paid");
            }
            events
        }
        ObjectKind::Company if change.created => vec!["company.created"],
        ObjectKind::Company => vec!["company.updated"],
        ObjectKind::Attachment if change.created && value("file_type") != ".pdf" => {
            vec!["job.photo_added"]
        }
        _ => Vec::new(),
    }
}

/// Posts the callbacks for `change` to every target and matching subscription, and waits for the answers.
pub(crate) async fn deliver(state: &MockState, change: &Change) -> Vec<CallbackDelivery> {
    let body = callback_body(&state.base_url, change);
    let mut posts: Vec<(String, Value)> = lock(&state.targets)
        .iter()
        .map(|url| (url.clone(), body.clone()))
        .collect();
    let events = events_for(change);
    for subscription in lock(&state.subscriptions).iter() {
        match &subscription.topic {
            Topic::Object { .. } if subscription.wants_object_change(change.kind.as_str(), &change.changed_fields) => {
                posts.push((subscription.callback_url.clone(), body.clone()));
            }
            Topic::Event { event } if events.contains(&event.as_str()) => {
                let mut event_body = body.clone();
                event_body["eventName"] = json!(event);
                posts.push((subscription.callback_url.clone(), event_body));
            }
            _ => {}
        }
    }
    let deliveries = posts.into_iter().map(|(url, body)| async move {
        let outcome = post_callback(state, &url, &body).await;
        state
            .counters
            .callback(matches!(outcome, DeliveryOutcome::Delivered(_)));
        if !matches!(outcome, DeliveryOutcome::Delivered(_)) {
            tracing::warn!(%url, ?outcome, "callback not delivered");
        }
        CallbackDelivery { url, outcome }
    });
    join_all(deliveries).await
}

async fn post_callback(state: &MockState, url: &str, body: &Value) -> DeliveryOutcome {
    let request = state.http.post(url).timeout(CALLBACK_TIMEOUT);
    let request = match state.callback_format {
        CallbackFormat::Json => request.json(body),
        CallbackFormat::Form => {
            let text = |field: &str| match &body[field] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let mut form = vec![
                ("object", text("object")),
                ("entry", text("entry")),
                ("resource_url", text("resource_url")),
            ];
            if body.get("eventName").is_some() {
                form.push(("eventName", text("eventName")));
            }
            request.form(&form)
        }
    };
    let sent = tokio::select! {
        sent = request.send() => sent,
        _ = state.shutdown.cancelled() => return DeliveryOutcome::Failed("the account shut down".into()),
    };
    match sent {
        Ok(response) if response.status().is_success() => DeliveryOutcome::Delivered(response.status().as_u16()),
        Ok(response) => DeliveryOutcome::Refused(response.status().as_u16()),
        Err(error) => DeliveryOutcome::Failed(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MockConfig;

    fn state() -> MockState {
        let config = MockConfig {
            companies: 3,
            jobs_per_company: 4,
            staff: 2,
            ..MockConfig::default()
        };
        MockState::new(&config, "http://mock/api_1.0".into(), Default::default()).unwrap()
    }

    #[test]
    fn random_changes_bump_the_edit_date_and_name_the_changed_fields() {
        let state = state();
        let mut changes = 0;
        for _ in 0..50 {
            let Some(change) = random_change(&state) else {
                continue;
            };
            changes += 1;
            assert!(!change.changed_fields.is_empty(), "{change:?}");
            assert!(change.time.as_str() > "2025-01-01 00:00:00");
            let stored = lock(&state.records).get(change.kind, &change.uuid).cloned().unwrap();
            assert_eq!(stored["edit_date"], change.time.as_str());
            if change.kind == ObjectKind::Job {
                assert!(JOB_STATUSES.contains(&stored["status"].as_str().unwrap()));
            }
        }
        assert!(changes > 40, "only {changes} of 50 ticks changed something");
    }

    #[test]
    fn the_callback_body_has_the_real_shape() {
        let change = Change {
            kind: ObjectKind::Job,
            uuid: "abc".into(),
            changed_fields: vec!["status".into()],
            time: "2025-01-02 03:04:05".into(),
            record: Record::new(),
            created: false,
        };
        assert_eq!(
            callback_body("http://mock/api_1.0", &change),
            json!({
                "object": "job",
                "entry": [{"uuid": "abc", "changed_fields": ["status"], "time": "2025-01-02 03:04:05"}],
                "resource_url": "http://mock/api_1.0/job/abc.json",
            })
        );
    }

    #[test]
    fn a_completed_job_stands_for_the_status_and_completion_events() {
        let change = Change {
            kind: ObjectKind::Job,
            uuid: "abc".into(),
            changed_fields: vec!["status".into(), "completion_date".into()],
            time: "2025-01-02 03:04:05".into(),
            record: object(json!({"status": "Completed"})),
            created: false,
        };
        assert_eq!(
            events_for(&change),
            ["job.updated", "job.status_changed", "job.completed"]
        );
    }
}
