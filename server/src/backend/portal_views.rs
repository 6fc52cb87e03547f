//! What a portal user sees of a mirrored record: the fields of a job, activity or attachment a client may see,
//! in the portal's types, with ServiceM8's dates and flags read as they come.

use app::portal::model::{PortalActivity, PortalAttachment, PortalJob};
use serde_json::Value;

use crate::ingest::payload::parse_timestamp;
use crate::store::millis_to_rfc3339;
use crate::store::mirror::text_field;

/// A field as trimmed text, absent when empty.
fn text(record: &Value, field: &str) -> Option<String> {
    text_field(record, field)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// A ServiceM8 date (`YYYY-MM-DD HH:MM:SS`, or RFC 3339) as RFC 3339 UTC; ServiceM8's `0000-00-00 00:00:00`
/// and anything unreadable as absent.
fn time(record: &Value, field: &str) -> Option<String> {
    text(record, field)
        .and_then(|value| parse_timestamp(&value))
        .map(millis_to_rfc3339)
}

/// ServiceM8's flags come as 1/0, "1"/"0" or booleans.
fn flag(record: &Value, field: &str) -> Option<bool> {
    match record.get(field)? {
        Value::Bool(value) => Some(*value),
        Value::Number(number) => number.as_i64().map(|n| n != 0),
        Value::String(text) => match text.trim() {
            "1" | "true" => Some(true),
            "0" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The client's view of a mirrored job; `None` without a uuid.
pub fn job_view(record: &Value) -> Option<PortalJob> {
    Some(PortalJob {
        uuid: text(record, "uuid")?,
        generated_job_id: text(record, "generated_job_id"),
        status: text(record, "status"),
        job_address: text(record, "job_address"),
        job_description: text(record, "job_description"),
        date: time(record, "date"),
        quote_date: time(record, "quote_date"),
        work_order_date: time(record, "work_order_date"),
        completion_date: time(record, "completion_date"),
        total_invoice_amount: text(record, "total_invoice_amount"),
        invoice_sent: flag(record, "invoice_sent"),
        payment_received: flag(record, "payment_received"),
        edit_date: time(record, "edit_date"),
    })
}

/// The client's view of a mirrored job activity, with its staff member's name when known.
pub fn activity_view(record: &Value, staff: Option<&Value>) -> Option<PortalActivity> {
    let staff_name = staff.and_then(|staff| {
        let name = [text(staff, "first"), text(staff, "last")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!name.is_empty()).then_some(name)
    });
    Some(PortalActivity {
        uuid: text(record, "uuid")?,
        start_date: time(record, "start_date"),
        end_date: time(record, "end_date"),
        staff_name,
        scheduled: flag(record, "activity_was_scheduled").unwrap_or(false),
        recorded: flag(record, "activity_was_recorded").unwrap_or(false),
    })
}

/// The client's view of a mirrored attachment.
pub fn attachment_view(record: &Value) -> Option<PortalAttachment> {
    Some(PortalAttachment {
        uuid: text(record, "uuid")?,
        name: text(record, "attachment_name").unwrap_or_else(|| "Untitled file".into()),
        file_type: text(record, "file_type"),
        timestamp: time(record, "timestamp").or_else(|| time(record, "edit_date")),
    })
}

/// Whether a mirrored record is live (ServiceM8 deletes by setting `active` to 0).
pub fn is_active(record: &Value) -> bool {
    flag(record, "active").unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_job_record_becomes_its_client_view() {
        let record = json!({
            "uuid": "j1", "company_uuid": "c1", "generated_job_id": 1042, "status": "Work Order",
            "job_address": " 1 Harbour St, Sydney ", "job_description": "", "date": "2024-05-01 00:00:00",
            "completion_date": "0000-00-00 00:00:00", "total_invoice_amount": "1250.00", "invoice_sent": "1",
            "payment_received": 0, "edit_date": "2024-05-02 09:30:00", "internal_notes": "not for clients",
        });
        let job = job_view(&record).unwrap();
        assert_eq!(job.generated_job_id.as_deref(), Some("1042"));
        assert_eq!(job.job_address.as_deref(), Some("1 Harbour St, Sydney"));
        assert_eq!(job.job_description, None, "an empty field is absent");
        assert_eq!(job.date.as_deref(), Some("2024-05-01T00:00:00Z"));
        assert_eq!(job.completion_date, None, "ServiceM8's zero date means none");
        assert_eq!((job.invoice_sent, job.payment_received), (Some(true), Some(false)));
        assert_eq!(job.edit_date.as_deref(), Some("2024-05-02T09:30:00Z"));
        assert_eq!(job_view(&json!({"status": "Quote"})), None);
    }

    #[test]
    fn an_activity_names_its_staff_member_and_an_attachment_has_a_name() {
        let activity = json!({"uuid": "a1", "job_uuid": "j1", "start_date": "2024-05-01 08:00:00",
            "end_date": "2024-05-01 10:00:00", "activity_was_scheduled": 1, "activity_was_recorded": "0"});
        let staff = json!({"uuid": "s1", "first": "Ana", "last": "Ng", "email": "ana@example.com"});
        let view = activity_view(&activity, Some(&staff)).unwrap();
        assert_eq!(view.staff_name.as_deref(), Some("Ana Ng"));
        assert!(view.scheduled && !view.recorded);
        assert_eq!(view.start_date.as_deref(), Some("2024-05-01T08:00:00Z"));
        assert_eq!(activity_view(&activity, None).unwrap().staff_name, None);
        let file = attachment_view(&json!({"uuid": "f1", "file_type": ".pdf", "edit_date": "2024-05-01 11:00:00"}));
        let file = file.unwrap();
        assert_eq!(file.name, "Untitled file");
        assert_eq!(file.timestamp.as_deref(), Some("2024-05-01T11:00:00Z"));
    }

    #[test]
    fn deleted_records_are_inactive() {
        assert!(is_active(&json!({"uuid": "j1"})));
        assert!(is_active(&json!({"active": 1})));
        assert!(!is_active(&json!({"active": "0"})));
        assert!(!is_active(&json!({"active": false})));
    }
}
