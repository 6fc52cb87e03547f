//! Which topics a pipeline update goes to, and with what payload. The payloads, event names and topic names are
//! the browser client's own (`app::realtime::wire`).
//!
//! A changed record is event `webhook_update` with the seed's payload (`WebhookUpdate`: `{type, object_uuid,
//! event_type, changes, company_uuid, job_uuid, event_id}`, plus the topic's `offset`) on: `jobs`, `job:{uuid}` and
//! `company:{uuid}` for a job; `company:{uuid}` for a company; `job:{uuid}` and `company:{uuid}` for an activity or
//! attachment; `staff` for staff. An event's lifecycle is event `pipeline` with the `PipelineEvent` on
//! `admin:webhooks`, for the dashboard, and so are an alert's change (event `alert`) and a delivery's attempt
//! (event `delivery`, not retained). A record update that
//! changed a mirror row also goes, once, to the account's table subscribers (`changes`).

use app::objects::{object_spec, CompanyLink, JobLink};
use app::realtime::wire::{
    topic, UpdateKind, WebhookUpdate, ALERT_EVENT, DELIVERY_EVENT, LIFECYCLE_EVENT, RECORD_EVENT,
};

use super::bus::{Broadcast, Publication};
use super::changes::RowEvent;
use super::protocol::BroadcastPayload;
use super::scope::scoped;
use crate::updates::{PipelineUpdate, RecordUpdate};

/// The retained broadcasts announcing `update`.
pub fn publications(update: &PipelineUpdate) -> Vec<Publication> {
    match update {
        PipelineUpdate::Lifecycle(lifecycle) => {
            let payload = serde_json::to_value(lifecycle).expect("a lifecycle update serialises");
            vec![retained(
                scoped(&lifecycle.account, topic::ADMIN_WEBHOOKS),
                LIFECYCLE_EVENT,
                payload,
            )]
        }
        PipelineUpdate::Alert(notice) => {
            let payload = serde_json::json!({
                "alert_id": notice.alert_id,
                "kind": notice.kind,
                "transition": notice.transition,
            });
            vec![retained(
                scoped(&notice.account, topic::ADMIN_WEBHOOKS),
                ALERT_EVENT,
                payload,
            )]
        }
        // Not kept for resume: a page that missed some fetches its deliveries again when it reconnects.
        PipelineUpdate::Delivery(notice) => {
            let payload = serde_json::json!({
                "delivery_id": notice.delivery_id,
                "destination_id": notice.destination_id,
                "event_id": notice.event_id,
                "status": notice.status,
            });
            vec![Publication::Ephemeral(Broadcast::new(
                scoped(&notice.account, topic::ADMIN_WEBHOOKS),
                DELIVERY_EVENT,
                BroadcastPayload::Json(payload),
                None,
                false,
            ))]
        }
        PipelineUpdate::Record(record) => {
            let Some((kind, topics)) = record_topics(record) else {
                return Vec::new();
            };
            let update = WebhookUpdate {
                kind,
                object_uuid: record.object_uuid.clone(),
                event_type: record.event_type.clone(),
                changes: record.changes.clone(),
                company_uuid: record.company_uuid.clone(),
                job_uuid: record.job_uuid.clone(),
                event_id: Some(record.event_id.clone()),
                offset: None,
            };
            let payload = serde_json::to_value(&update).expect("a record update serialises");
            let mut publications: Vec<Publication> = topics
                .into_iter()
                .map(|name| retained(scoped(&record.account, &name), RECORD_EVENT, payload.clone()))
                .collect();
            if let Some(change) = &record.row {
                let event = RowEvent {
                    change: change.clone(),
                    company_uuid: record.company_uuid.clone(),
                };
                publications.push(event.publication(&record.account));
            }
            publications
        }
    }
}

fn retained(topic: String, event: &str, payload: serde_json::Value) -> Publication {
    Publication::Retained(Broadcast::new(
        topic,
        event,
        BroadcastPayload::Json(payload),
        None,
        false,
    ))
}

/// The seed's `type` for the record and the full topics it goes to: its type's admin topic, then its job's and
/// its company's; `None` for object types we do not know.
fn record_topics(record: &RecordUpdate) -> Option<(UpdateKind, Vec<String>)> {
    let spec = object_spec(&record.object_type)?;
    let known = |uuid: &Option<String>| uuid.clone().filter(|uuid| !uuid.is_empty());
    let job = match spec.job {
        JobLink::Itself => Some(record.object_uuid.clone()),
        _ => known(&record.job_uuid),
    };
    let company = match spec.company {
        CompanyLink::Itself => Some(record.object_uuid.clone()),
        _ => known(&record.company_uuid),
    };
    let topics = spec
        .admin_topic
        .map(str::to_owned)
        .into_iter()
        .chain(job.map(|uuid| topic::job(&uuid)))
        .chain(company.map(|uuid| topic::company(&uuid)))
        .collect();
    Some((spec.update, topics))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::updates::{PipelineEvent, PipelineStage};

    fn record(object_type: &str, company: Option<&str>, job: Option<&str>) -> PipelineUpdate {
        PipelineUpdate::Record(RecordUpdate {
            account: "default".into(),
            event_id: "ev-1".into(),
            object_type: object_type.into(),
            object_uuid: "obj-1".into(),
            event_type: "updated".into(),
            changes: json!({"status": "Completed"}),
            company_uuid: company.map(Into::into),
            job_uuid: job.map(Into::into),
            received_at: 0,
            row: None,
        })
    }

    fn topics_and_type(update: &PipelineUpdate) -> (Vec<String>, Vec<String>) {
        publications(update)
            .into_iter()
            .map(|publication| {
                let Publication::Retained(broadcast) = publication else {
                    panic!("pipeline updates are retained")
                };
                let BroadcastPayload::Json(payload) = broadcast.payload else {
                    panic!("JSON payload")
                };
                (broadcast.topic, payload["type"].as_str().unwrap_or_default().to_owned())
            })
            .unzip()
    }

    #[test]
    fn a_job_goes_to_jobs_its_own_topic_and_its_company() {
        let (topics, types) = topics_and_type(&record("job", Some("co-1"), Some("obj-1")));
        assert_eq!(topics, ["realtime:jobs", "realtime:job:obj-1", "realtime:company:co-1"]);
        assert!(types.iter().all(|t| t == "job_update"));
        let (topics, _) = topics_and_type(&record("job", None, None));
        assert_eq!(topics, ["realtime:jobs", "realtime:job:obj-1"]);
    }

    #[test]
    fn activities_and_attachments_go_to_their_job_and_company_where_known() {
        let (topics, types) = topics_and_type(&record("jobactivity", Some("co-1"), Some("job-9")));
        assert_eq!(topics, ["realtime:job:job-9", "realtime:company:co-1"]);
        assert_eq!(types[0], "activity_update");
        let (topics, types) = topics_and_type(&record("attachment", None, Some("job-9")));
        assert_eq!(topics, ["realtime:job:job-9"]);
        assert_eq!(types[0], "attachment_update");
    }

    #[test]
    fn companies_and_staff_have_their_own_topics_and_unknown_types_none() {
        assert_eq!(
            topics_and_type(&record("company", Some("obj-1"), None)).0,
            ["realtime:company:obj-1"]
        );
        assert_eq!(
            topics_and_type(&record("staff", None, None)),
            (vec!["realtime:staff".into()], vec!["staff_update".into()])
        );
        assert!(publications(&record("invoice", None, None)).is_empty());
    }

    #[test]
    fn the_record_payload_is_the_seeds() {
        let Publication::Retained(broadcast) = publications(&record("job", Some("co-1"), None)).remove(0) else {
            panic!()
        };
        assert_eq!(broadcast.event, "webhook_update");
        assert_eq!(
            broadcast.payload,
            BroadcastPayload::Json(json!({
                "type": "job_update", "object_uuid": "obj-1", "event_type": "updated",
                "changes": {"status": "Completed"}, "company_uuid": "co-1", "job_uuid": null, "event_id": "ev-1",
            }))
        );
    }

    #[test]
    fn another_accounts_updates_go_to_its_own_topics() {
        let PipelineUpdate::Record(mut other) = record("job", Some("co-1"), None) else {
            panic!()
        };
        other.account = "acme".into();
        let (topics, _) = topics_and_type(&PipelineUpdate::Record(other));
        assert_eq!(
            topics,
            [
                "acme/realtime:jobs",
                "acme/realtime:job:obj-1",
                "acme/realtime:company:co-1"
            ]
        );
    }

    #[test]
    fn a_changed_row_also_goes_once_to_the_accounts_table_subscribers() {
        let PipelineUpdate::Record(mut update) = record("job", Some("co-1"), None) else {
            panic!()
        };
        update.account = "acme".into();
        update.row = Some(crate::updates::RowChange {
            table: "sm8_jobs".into(),
            kind: crate::updates::RowChangeKind::Insert,
            new: json!({"uuid": "obj-1"}),
            old: None,
            committed_at: 1,
        });
        let publications = publications(&PipelineUpdate::Record(update));
        let Some(Publication::Ephemeral(rows)) = publications.last() else {
            panic!("the row change is ephemeral and last")
        };
        assert_eq!(rows.topic, "acme/postgres_changes");
        let event = RowEvent::from_payload(&rows.payload).unwrap();
        assert_eq!(event.company_uuid.as_deref(), Some("co-1"));
        assert_eq!(event.change.new["uuid"], "obj-1");
    }

    #[test]
    fn lifecycle_updates_go_to_the_admin_topic_as_pipeline_events() {
        let update = PipelineUpdate::Lifecycle(PipelineEvent {
            account: "default".into(),
            event_id: "ev-1".into(),
            object_type: "job".into(),
            object_uuid: "obj-1".into(),
            event_type: "updated".into(),
            stage: PipelineStage::Received,
            attempts: 0,
            error: None,
            at: 5,
            offset: None,
        });
        let Publication::Retained(broadcast) = publications(&update).remove(0) else {
            panic!()
        };
        assert_eq!(
            (broadcast.topic.as_str(), broadcast.event.as_str()),
            (topic::ADMIN_WEBHOOKS, "pipeline")
        );
        let BroadcastPayload::Json(payload) = broadcast.payload else {
            panic!()
        };
        assert_eq!(payload["stage"], "received");
        assert_eq!(payload["event_id"], "ev-1");
    }
}
