//! Which topics a pipeline update goes to, and with what payload.
//!
//! A changed record is event `webhook_update` with the seed's payload (`{type, object_uuid, event_type, changes,
//! company_uuid, job_uuid, event_id}`, plus the topic's `offset`) on: `jobs`, `job:{uuid}` and `company:{uuid}`
//! for a job; `company:{uuid}` for a company; `job:{uuid}` and `company:{uuid}` for an activity or attachment;
//! `staff` for staff. An event's lifecycle is event `pipeline` with the `LifecycleUpdate` fields on
//! `admin:webhooks`, for the dashboard.

use serde_json::json;

use super::auth::TOPIC_PREFIX;
use super::bus::{Broadcast, Publication};
use super::protocol::BroadcastPayload;
use crate::updates::{PipelineUpdate, RecordUpdate};

/// Event name of record changes, as in the seed.
pub const RECORD_EVENT: &str = "webhook_update";
/// Event name of lifecycle updates on the admin topic.
pub const LIFECYCLE_EVENT: &str = "pipeline";
pub const ADMIN_TOPIC: &str = "realtime:admin:webhooks";

/// The retained broadcasts announcing `update`.
pub fn publications(update: &PipelineUpdate) -> Vec<Publication> {
    match update {
        PipelineUpdate::Lifecycle(lifecycle) => {
            let payload = serde_json::to_value(lifecycle).expect("a lifecycle update serialises");
            vec![retained(ADMIN_TOPIC.to_owned(), LIFECYCLE_EVENT, payload)]
        }
        PipelineUpdate::Record(record) => {
            let Some((update_type, topics)) = record_topics(record) else {
                return Vec::new();
            };
            let payload = json!({
                "type": update_type,
                "object_uuid": record.object_uuid,
                "event_type": record.event_type,
                "changes": record.changes,
                "company_uuid": record.company_uuid,
                "job_uuid": record.job_uuid,
                "event_id": record.event_id,
            });
            topics
                .into_iter()
                .map(|topic| retained(topic, RECORD_EVENT, payload.clone()))
                .collect()
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

/// The seed's `type` for the record and the full topics it goes to; `None` for object types nobody watches.
fn record_topics(record: &RecordUpdate) -> Option<(&'static str, Vec<String>)> {
    let topic = |sub_topic: String| format!("{TOPIC_PREFIX}{sub_topic}");
    let known = |uuid: &Option<String>| uuid.as_deref().filter(|uuid| !uuid.is_empty()).map(str::to_owned);
    let company = known(&record.company_uuid).map(|uuid| topic(format!("company:{uuid}")));
    let job = known(&record.job_uuid).map(|uuid| topic(format!("job:{uuid}")));
    match record.object_type.as_str() {
        "job" => {
            let mut topics = vec![topic("jobs".into()), topic(format!("job:{}", record.object_uuid))];
            topics.extend(company);
            Some(("job_update", topics))
        }
        "company" => Some(("company_update", vec![topic(format!("company:{}", record.object_uuid))])),
        "jobactivity" => Some(("activity_update", job.into_iter().chain(company).collect())),
        "attachment" => Some(("attachment_update", job.into_iter().chain(company).collect())),
        "staff" => Some(("staff_update", vec![topic("staff".into())])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::updates::{LifecycleUpdate, Stage};

    fn record(object_type: &str, company: Option<&str>, job: Option<&str>) -> PipelineUpdate {
        PipelineUpdate::Record(RecordUpdate {
            event_id: "ev-1".into(),
            object_type: object_type.into(),
            object_uuid: "obj-1".into(),
            event_type: "updated".into(),
            changes: json!({"status": "Completed"}),
            company_uuid: company.map(Into::into),
            job_uuid: job.map(Into::into),
            received_at: 0,
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
    fn lifecycle_updates_go_to_the_admin_topic_as_pipeline_events() {
        let update = PipelineUpdate::Lifecycle(LifecycleUpdate {
            event_id: "ev-1".into(),
            object_type: "job".into(),
            object_uuid: "obj-1".into(),
            event_type: "updated".into(),
            stage: Stage::Received,
            attempts: 0,
            error: None,
            at: 5,
        });
        let Publication::Retained(broadcast) = publications(&update).remove(0) else {
            panic!()
        };
        assert_eq!(
            (broadcast.topic.as_str(), broadcast.event.as_str()),
            (ADMIN_TOPIC, "pipeline")
        );
        let BroadcastPayload::Json(payload) = broadcast.payload else {
            panic!()
        };
        assert_eq!(payload["stage"], "received");
        assert_eq!(payload["event_id"], "ev-1");
    }
}
