//! The ServiceM8 object types this product knows, each described once: where it is mirrored, how a record names
//! its job and company, which update the relay announces for it, and which fields a webhook subscription asks for.
//! The server (mirror, processing, topics, subscriptions, reconciliation, the portal's job children), the
//! dashboard's lists and the simulated account read this table; adding an object type starts here.

use crate::realtime::wire::{topic, UpdateKind};

/// How a record names the job it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobLink {
    /// The record is a job.
    Itself,
    /// This field holds the job's uuid.
    Field(&'static str),
    /// `uuid_field` holds the uuid of a record whose type `kind_field` names; a job when it says `job`.
    Related {
        kind_field: &'static str,
        uuid_field: &'static str,
    },
    /// The record belongs to no job.
    None,
}

/// How a record names the company it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompanyLink {
    /// The record is a company.
    Itself,
    /// This field holds the company's uuid.
    Field(&'static str),
    /// The company of the record's job.
    ThroughJob,
    /// The record belongs to no company.
    None,
}

/// One ServiceM8 object type.
#[derive(Debug, PartialEq, Eq)]
pub struct ObjectSpec {
    /// Canonical name, as stored on events and in REST URLs: lower case, no separators (`jobactivity`).
    pub object_type: &'static str,
    /// ServiceM8's own spelling, as webhooks carry it (`JobActivity`).
    pub api_name: &'static str,
    /// The mirror table (the same name on both engines).
    pub table: &'static str,
    /// Record fields the mirror table keeps as columns of their own, beside `uuid`, `edit_date`, `active`,
    /// `record` and `mirrored_at`.
    pub key_columns: &'static [&'static str],
    pub job: JobLink,
    pub company: CompanyLink,
    /// The `type` of the relay's `webhook_update` for a change to this record.
    pub update: UpdateKind,
    /// A topic that carries every change of this type (for admins), beside its job's and company's topics.
    pub admin_topic: Option<&'static str>,
    /// The fields a webhook subscription asks for when none are named: those the mirror and the portal use.
    pub default_fields: &'static [&'static str],
}

impl ObjectSpec {
    /// The record fields that name its job and its company, where a field does.
    pub fn link_fields(&self) -> Vec<&'static str> {
        let mut fields = match self.job {
            JobLink::Field(field) => vec![field],
            JobLink::Related { kind_field, uuid_field } => vec![kind_field, uuid_field],
            JobLink::Itself | JobLink::None => Vec::new(),
        };
        if let CompanyLink::Field(field) = self.company {
            fields.push(field);
        }
        fields
    }

    /// Whether the client portal lists these records under their job.
    pub fn is_job_child(&self) -> bool {
        matches!(self.job, JobLink::Field(_) | JobLink::Related { .. })
    }
}

pub static JOB: ObjectSpec = ObjectSpec {
    object_type: "job",
    api_name: "Job",
    table: "sm8_jobs",
    key_columns: &["company_uuid", "status", "generated_job_id"],
    job: JobLink::Itself,
    company: CompanyLink::Field("company_uuid"),
    update: UpdateKind::JobUpdate,
    admin_topic: Some(topic::JOBS),
    default_fields: &[
        "status",
        "company_uuid",
        "job_address",
        "job_description",
        "date",
        "quote_date",
        "work_order_date",
        "completion_date",
        "total_invoice_amount",
        "invoice_sent",
        "payment_received",
        "active",
    ],
};

pub static COMPANY: ObjectSpec = ObjectSpec {
    object_type: "company",
    api_name: "Company",
    table: "sm8_companies",
    key_columns: &["name"],
    job: JobLink::None,
    company: CompanyLink::Itself,
    update: UpdateKind::CompanyUpdate,
    admin_topic: None,
    default_fields: &["name", "address", "billing_address", "is_individual", "active"],
};

pub static JOB_ACTIVITY: ObjectSpec = ObjectSpec {
    object_type: "jobactivity",
    api_name: "JobActivity",
    table: "sm8_job_activities",
    key_columns: &["job_uuid", "staff_uuid"],
    job: JobLink::Field("job_uuid"),
    company: CompanyLink::ThroughJob,
    update: UpdateKind::ActivityUpdate,
    admin_topic: None,
    default_fields: &[
        "job_uuid",
        "staff_uuid",
        "start_date",
        "end_date",
        "activity_was_scheduled",
        "active",
    ],
};

pub static ATTACHMENT: ObjectSpec = ObjectSpec {
    object_type: "attachment",
    api_name: "Attachment",
    table: "sm8_attachments",
    key_columns: &["related_object", "related_object_uuid"],
    job: JobLink::Related {
        kind_field: "related_object",
        uuid_field: "related_object_uuid",
    },
    company: CompanyLink::ThroughJob,
    update: UpdateKind::AttachmentUpdate,
    admin_topic: None,
    default_fields: &[
        "related_object",
        "related_object_uuid",
        "attachment_name",
        "file_type",
        "active",
    ],
};

pub static STAFF: ObjectSpec = ObjectSpec {
    object_type: "staff",
    api_name: "Staff",
    table: "sm8_staff",
    key_columns: &["email"],
    job: JobLink::None,
    company: CompanyLink::None,
    update: UpdateKind::StaffUpdate,
    admin_topic: Some(topic::STAFF),
    default_fields: &["first", "last", "email", "mobile", "job_title", "active"],
};

/// Every object type, in the order lists show them.
pub static OBJECTS: [&ObjectSpec; 5] = [&JOB, &COMPANY, &JOB_ACTIVITY, &ATTACHMENT, &STAFF];

/// The object type with this canonical name, if it is one we know.
pub fn object_spec(object_type: &str) -> Option<&'static ObjectSpec> {
    OBJECTS.iter().copied().find(|spec| spec.object_type == object_type)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_tables_and_updates_are_each_used_once() {
        for field in [
            |spec: &ObjectSpec| spec.object_type.to_owned(),
            |spec: &ObjectSpec| spec.table.to_owned(),
            |spec: &ObjectSpec| spec.update.as_str().to_owned(),
        ] {
            let values: HashSet<String> = OBJECTS.iter().map(|spec| field(spec)).collect();
            assert_eq!(values.len(), OBJECTS.len());
        }
    }

    #[test]
    fn canonical_names_are_the_api_names_in_lower_case() {
        for spec in OBJECTS {
            assert_eq!(spec.api_name.to_lowercase(), spec.object_type);
            assert_eq!(object_spec(spec.object_type), Some(spec));
        }
        assert_eq!(object_spec("invoice"), None);
    }

    #[test]
    fn a_record_linked_to_its_job_or_company_by_a_field_keeps_that_field_as_a_column() {
        for spec in OBJECTS {
            for field in spec.link_fields() {
                assert!(spec.key_columns.contains(&field), "{}: {field}", spec.object_type);
                assert!(spec.default_fields.contains(&field), "{}: {field}", spec.object_type);
            }
        }
    }
}
