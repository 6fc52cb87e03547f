//! What a portal user sees of the mirrored ServiceM8 records: typed views the server builds from the stored JSON,
//! with only the fields a client should see. Dates are RFC 3339 in UTC, absent when ServiceM8 has none.

use serde::{Deserialize, Serialize};

/// What a portal session opens: one company of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalCompany {
    pub account: String,
    pub company_uuid: String,
}

/// The jobs of the session's company, newest change first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortalOverview {
    pub company_uuid: String,
    /// The company's name when the mirror knows it.
    pub company_name: Option<String>,
    pub jobs: Vec<PortalJob>,
}

/// One job as its client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortalJob {
    pub uuid: String,
    /// The job number people quote on the phone.
    pub generated_job_id: Option<String>,
    /// ServiceM8's status: Quote, Work Order, Completed, Unsuccessful.
    pub status: Option<String>,
    pub job_address: Option<String>,
    pub job_description: Option<String>,
    /// When the work is scheduled.
    pub date: Option<String>,
    pub quote_date: Option<String>,
    pub work_order_date: Option<String>,
    pub completion_date: Option<String>,
    /// The invoice total as ServiceM8 states it (e.g. "1250.00").
    pub total_invoice_amount: Option<String>,
    pub invoice_sent: Option<bool>,
    pub payment_received: Option<bool>,
    /// When the job last changed.
    pub edit_date: Option<String>,
}

impl PortalJob {
    /// "Job 1042", or a short form of the uuid when the job has no number.
    pub fn title(&self) -> String {
        match self.generated_job_id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => format!("Job {id}"),
            None => format!("Job {}", self.uuid.chars().take(8).collect::<String>()),
        }
    }
}

/// A scheduled or recorded visit to a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortalActivity {
    pub uuid: String,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    /// Who does the work, when the mirror knows the staff member.
    pub staff_name: Option<String>,
    pub scheduled: bool,
    /// Time was recorded against the job (the visit happened).
    pub recorded: bool,
}

/// A file attached to a job (photos, quotes, signed forms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortalAttachment {
    pub uuid: String,
    pub name: String,
    /// The file extension ServiceM8 records, e.g. ".pdf".
    pub file_type: Option<String>,
    /// When the file was added.
    pub timestamp: Option<String>,
}

/// One job with its visits and files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortalJobDetail {
    pub company_uuid: String,
    pub company_name: Option<String>,
    pub job: PortalJob,
    pub activities: Vec<PortalActivity>,
    pub attachments: Vec<PortalAttachment>,
}

/// Where a status sits among ServiceM8's four, for its badge.
pub fn status_class(status: Option<&str>) -> &'static str {
    match status.map(str::to_ascii_lowercase).as_deref() {
        Some("quote") => "status-quote",
        Some("work order") => "status-work-order",
        Some("completed") => "status-completed",
        Some("unsuccessful") => "status-unsuccessful",
        _ => "status-other",
    }
}

/// "1250" or "1250.5" as "1,250.50"; text that is not a number as it is.
pub fn format_amount(amount: &str) -> String {
    let Ok(value) = amount.trim().parse::<f64>() else {
        return amount.to_owned();
    };
    let cents = (value.abs() * 100.0).round() as u64;
    let digits: Vec<char> = (cents / 100).to_string().chars().collect();
    let groups: Vec<String> = digits.rchunks(3).rev().map(|group| group.iter().collect()).collect();
    let grouped = groups.join(",");
    let sign = if value < 0.0 && cents > 0 { "-" } else { "" };
    format!("{sign}{grouped}.{:02}", cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_get_thousands_separators_and_two_decimals() {
        assert_eq!(format_amount("1250"), "1,250.00");
        assert_eq!(format_amount("1250.5"), "1,250.50");
        assert_eq!(format_amount("999.999"), "1,000.00");
        assert_eq!(format_amount("0"), "0.00");
        assert_eq!(format_amount("-42.1"), "-42.10");
        assert_eq!(format_amount("1234567.8"), "1,234,567.80");
        assert_eq!(format_amount("n/a"), "n/a");
    }

    #[test]
    fn statuses_map_to_badge_classes_whatever_their_case() {
        assert_eq!(status_class(Some("Work Order")), "status-work-order");
        assert_eq!(status_class(Some("completed")), "status-completed");
        assert_eq!(status_class(Some("Archived")), "status-other");
        assert_eq!(status_class(None), "status-other");
    }

    #[test]
    fn a_job_without_number_is_named_by_its_uuid() {
        let mut job = PortalJob {
            uuid: "0f3c2a1b-aaaa".into(),
            generated_job_id: Some("1042".into()),
            status: None,
            job_address: None,
            job_description: None,
            date: None,
            quote_date: None,
            work_order_date: None,
            completion_date: None,
            total_invoice_amount: None,
            invoice_sent: None,
            payment_received: None,
            edit_date: None,
        };
        assert_eq!(job.title(), "Job 1042");
        job.generated_job_id = None;
        assert_eq!(job.title(), "Job 0f3c2a1b");
    }
}
