//! The types of the event queue: what a worker claims, how it finishes, and what each attempt recorded.

use app::model::EventStatus;

/// An event a worker holds under a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedEvent {
    pub id: String,
    pub account: String,
    pub format: String,
    pub object_type: String,
    pub object_uuid: String,
    pub event_type: String,
    pub occurred_at: Option<i64>,
    pub changes: serde_json::Value,
    /// Including the attempt this claim starts.
    pub attempts: i32,
    pub received_at: i64,
    /// The lease; finishing only counts while the event still carries it.
    pub lease_until: i64,
}

/// How an attempt at some events ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    Success,
    /// Nothing to do, and never will be (unknown object, object does not exist).
    Skipped(String),
    /// Try again at `next_attempt_at`.
    Retry {
        next_attempt_at: i64,
        error: String,
    },
    /// Not attempted (the request budget is spent, or ServiceM8 asked every node to pause): the attempt is given
    /// back and the events keep their place in the queue, ahead of newer ones, for when requests may be made again.
    Postponed(String),
    /// Given up; the payload and the error are kept for a manual retry.
    Failed(String),
}

impl Completion {
    pub fn status(&self) -> EventStatus {
        match self {
            Completion::Success => EventStatus::Success,
            Completion::Skipped(_) => EventStatus::Skipped,
            Completion::Retry { .. } | Completion::Postponed(_) => EventStatus::Queued,
            Completion::Failed(_) => EventStatus::Failed,
        }
    }

    /// The name stored in an attempt's outcome.
    pub fn outcome_name(&self) -> &'static str {
        match self {
            Completion::Success => "success",
            Completion::Skipped(_) => "skipped",
            Completion::Retry { .. } => "retry",
            Completion::Postponed(_) => "postponed",
            Completion::Failed(_) => "failed",
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Completion::Retry { error, .. } | Completion::Postponed(error) | Completion::Failed(error) => Some(error),
            Completion::Success | Completion::Skipped(_) => None,
        }
    }
}

/// One attempt at one event, for the dashboard's timeline.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AttemptRecord {
    pub event_id: String,
    pub attempt: i32,
    pub started_at: i64,
    pub finished_at: i64,
    pub outcome: String,
    pub http_status: Option<i32>,
    pub error: Option<String>,
}

/// A claim of due events: by `node`, held until `lease_until`.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub now: i64,
    pub lease_until: i64,
    /// Objects to claim at most; every due event of each.
    pub objects: u32,
    /// Who claims: the node's id, so that it can release its own claims when it starts again.
    pub node: &'a str,
}

/// Claims to give up: their attempts are recorded as interrupted, and their events queued again at once, or
/// failed when their last allowed attempt (`max_attempts`) was the one interrupted.
#[derive(Debug, Clone, Copy)]
pub struct Release<'a> {
    pub now: i64,
    pub max_attempts: i32,
    pub whose: Whose<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose<'a> {
    /// Claims whose lease ran out (their worker stopped, or stalled).
    Expired,
    /// Every claim of this node: it is starting, so none of them is being worked on.
    Node(&'a str),
}

impl Release<'_> {
    /// The condition on `webhook_events` that picks the claims, on parameter `$3`.
    pub fn condition(&self) -> &'static str {
        match self.whose {
            Whose::Expired => "status = 'processing' AND locked_until < $3",
            Whose::Node(_) => "status = 'processing' AND claimed_by = $3",
        }
    }
}

/// What an interrupted attempt records as its error.
pub const INTERRUPTED_REASON: &str = "interrupted: its worker stopped, or held the event past LEASE_MS";

/// The `SET` of releasing claims: the event is queued again at once, or failed when the interrupted attempt was
/// its last allowed one (`$1` now, `$2` the allowed attempts). Before it, the claim time is in `updated_at`.
pub const RELEASE_SET: &str = "status = CASE WHEN attempts >= $2 THEN 'failed' ELSE 'queued' END,
     last_error = CASE WHEN attempts >= $2
         THEN 'gave up after ' || CAST(attempts AS TEXT)
              || ' attempts: the last was interrupted (its worker stopped, or held the event past LEASE_MS)'
         ELSE 'interrupted: its worker stopped, or held the event past LEASE_MS' END,
     processed_at = CASE WHEN attempts >= $2 THEN $1 ELSE processed_at END,
     locked_until = NULL, claimed_by = NULL, next_attempt_at = $1, updated_at = $1";

/// The columns of an interrupted attempt's row.
pub const INTERRUPTED_ATTEMPT_COLUMNS: &str =
    "event_attempts (event_id, attempt, started_at, finished_at, outcome, http_status, error)";

/// `Store::next_due_after`, the same on both engines (the due index answers it).
pub const NEXT_DUE_SQL: &str =
    "SELECT MIN(next_attempt_at) FROM webhook_events WHERE status = 'queued' AND next_attempt_at > $1";

/// `Store::renew_lease`, the same on both engines.
pub const RENEW_LEASE_SQL: &str = "UPDATE webhook_events SET locked_until = $1
     WHERE account = $5 AND object_type = $2 AND object_uuid = $3 AND status = 'processing' AND locked_until = $4";

pub const MINUTE_MS: i64 = 60_000;
pub const DAY_MS: i64 = 24 * 60 * MINUTE_MS;
