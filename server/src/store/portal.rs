//! The SQL of the client portal, shared by both engines (`$n` binds): a company's jobs, a job's activities and
//! attachments, one-time links and sessions.

/// Which records of a job to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobChild {
    Activities,
    Attachments,
}

impl JobChild {
    pub fn sql(self) -> &'static str {
        match self {
            JobChild::Activities => {
                "SELECT record FROM sm8_job_activities WHERE job_uuid = $1 AND active = 1 ORDER BY edit_date DESC"
            }
            JobChild::Attachments => {
                "SELECT record FROM sm8_attachments WHERE related_object_uuid = $1 AND active = 1 \
                 ORDER BY edit_date DESC"
            }
        }
    }
}

pub const COMPANY_JOBS_SQL: &str =
    "SELECT record FROM sm8_jobs WHERE company_uuid = $1 AND active = 1 ORDER BY edit_date DESC LIMIT 500";
pub const CREATE_LINK_SQL: &str =
    "INSERT INTO portal_links (token_hash, company_uuid, created_at, expires_at) VALUES ($1, $2, $3, $4)";
/// Marks an unused, unexpired link used and returns its company: a link opens one session, once.
pub const REDEEM_LINK_SQL: &str = "UPDATE portal_links SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING company_uuid";
pub const CREATE_SESSION_SQL: &str =
    "INSERT INTO portal_sessions (token_hash, company_uuid, created_at, expires_at) VALUES ($1, $2, $3, $4)";
pub const SESSION_COMPANY_SQL: &str =
    "SELECT company_uuid FROM portal_sessions WHERE token_hash = $1 AND expires_at > $2";
pub const DELETE_SESSION_SQL: &str = "DELETE FROM portal_sessions WHERE token_hash = $1 OR expires_at <= $2";
