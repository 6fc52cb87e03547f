//! The SQL of the client portal, shared by both engines (`$n` binds): a company's jobs, the records under a job
//! (its activities, attachments, whatever `app::objects` links to a job), one-time links and sessions.

use app::objects::{JobLink, ObjectSpec, JOB};

/// The active records of type `child` under one job (`$2`) of an account (`$1`), newest edit first; `None` when
/// that type belongs to no job.
pub fn job_children_sql(child: &ObjectSpec) -> Option<String> {
    let condition = match child.job {
        JobLink::Field(field) => format!("{field} = $2"),
        JobLink::Related { kind_field, uuid_field } => {
            format!("{uuid_field} = $2 AND LOWER({kind_field}) = '{}'", JOB.object_type)
        }
        JobLink::Itself | JobLink::None => return None,
    };
    Some(format!(
        "SELECT record FROM {} WHERE account = $1 AND {condition} AND active = 1 ORDER BY edit_date DESC",
        child.table
    ))
}

pub const COMPANY_JOBS_SQL: &str = "SELECT record FROM sm8_jobs \
     WHERE account = $1 AND company_uuid = $2 AND active = 1 ORDER BY edit_date DESC LIMIT 500";
pub const CREATE_LINK_SQL: &str =
    "INSERT INTO portal_links (token_hash, account, company_uuid, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5)";
/// Marks an unused, unexpired link used and returns its account and company: a link opens one session, once.
pub const REDEEM_LINK_SQL: &str = "UPDATE portal_links SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING account, company_uuid";
pub const CREATE_SESSION_SQL: &str = "INSERT INTO portal_sessions (token_hash, account, company_uuid, created_at, \
     expires_at) VALUES ($1, $2, $3, $4, $5)";
pub const SESSION_COMPANY_SQL: &str =
    "SELECT account, company_uuid FROM portal_sessions WHERE token_hash = $1 AND expires_at > $2";
pub const DELETE_SESSION_SQL: &str = "DELETE FROM portal_sessions WHERE token_hash = $1 OR expires_at <= $2";
