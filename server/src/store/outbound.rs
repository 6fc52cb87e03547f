//! What goes out: an account's destinations (a webhook URL, a Slack channel, email, SMS), its rules in order, and
//! the deliveries of the messages rules make, each with its attempts. `Outbound` is part of every `Store`
//! (`outbound_sql.rs` writes it once for both engines).
//!
//! Deliveries are a queue of their own beside the events': a worker claims due deliveries under a lease, sends
//! them and finishes each with what the attempt did. Every method that takes an `account` reads or changes that
//! account's rows only.

use async_trait::async_trait;

use super::StoreError;

/// The most of a response an attempt keeps; longer excerpts are cut at a character boundary.
pub const RESPONSE_EXCERPT_BYTES: usize = 4096;

/// Declares an enum the store keeps by name: its variants and their names, `ALL`, `as_str`, and reading one back
/// from a row (`TryFrom<String>`: an unknown name is a corrupt row).
macro_rules! stored_by_name {
    ($(#[$meta:meta])* $name:ident ($what:literal) { $($(#[$variant_meta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$(Self::$variant),+];

            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = StoreError;

            fn try_from(name: String) -> Result<Self, StoreError> {
                Self::ALL
                    .into_iter()
                    .find(|value| value.as_str() == name)
                    .ok_or_else(|| StoreError::Corrupt(format!(concat!("unknown ", $what, " {:?}"), name)))
            }
        }
    };
}
pub(super) use stored_by_name;

stored_by_name! {
    /// What a destination sends through (`destinations.kind`).
    DestinationKind("destination kind") {
        Webhook => "webhook",
        Slack => "slack",
        Email => "email",
        Sms => "sms",
    }
}

stored_by_name! {
    /// Where a delivery stands (`deliveries.status`).
    DeliveryStatus("delivery status") {
        /// Waiting for its `next_attempt_at`.
        Queued => "queued",
        /// A worker holds it under a lease.
        Delivering => "delivering",
        Delivered => "delivered",
        /// Given up, or its destination was deleted; a user may retry it.
        Failed => "failed",
    }
}

stored_by_name! {
    /// How one attempt ended (`delivery_attempts.outcome`).
    AttemptOutcome("attempt outcome") {
        Delivered => "delivered",
        /// Failed; tried again later.
        Retry => "retry",
        /// Failed; given up.
        Failed => "failed",
        /// Its lease ran out before its worker finished it, and another claim took the delivery.
        Interrupted => "interrupted",
    }
}

/// A destination as stored. Its secrets stay sealed here, under `destination_secrets_context(id)`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DestinationRow {
    pub id: String,
    pub account: String,
    /// What rules call it; one destination per name in an account.
    pub name: String,
    /// Fixed at creation: the settings' shape depends on it.
    #[sqlx(try_from = "String")]
    pub kind: DestinationKind,
    /// What is not secret (URL, channel, addresses), as the kind's sender reads it.
    pub settings: serde_json::Value,
    pub sealed_secrets: Option<String>,
    /// Paused by a user: none of its deliveries is claimed until it is resumed.
    pub paused_at: Option<i64>,
    pub consecutive_failures: i64,
    /// When its circuit opened; `None` while it is closed.
    pub circuit_opened_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What saving a destination did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationSave {
    Saved,
    /// Another destination of the account has the name.
    NameTaken,
    /// No such destination in the account (updates only).
    NotFound,
}

/// A destination's circuit as stored: the sends that failed in a row, and when it opened (`None` while closed).
/// The worker's circuit breaker decides what an attempt makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Circuit {
    pub consecutive_failures: i64,
    pub opened_at: Option<i64>,
}

impl DestinationRow {
    pub fn circuit(&self) -> Circuit {
        Circuit {
            consecutive_failures: self.consecutive_failures,
            opened_at: self.circuit_opened_at,
        }
    }
}

/// A rule as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RuleRow {
    pub id: String,
    pub account: String,
    /// Rules apply in ascending position; ties (from rules created at the same moment) in creation order.
    pub position: i64,
    pub enabled: bool,
    /// The rule as `rules::Rule` serializes it; the caller compiles it.
    pub definition: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A rule to store after the account's others.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRule {
    pub id: String,
    pub account: String,
    pub enabled: bool,
    pub definition: serde_json::Value,
    pub created_at: i64,
}

/// What reordering an account's rules did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOrder {
    Reordered,
    /// The list was not every rule of the account, each once: nothing changed.
    NotAPermutation,
}

/// A message to enqueue for one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// Also the `webhook-id` its receivers deduplicate on.
    pub id: String,
    pub account: String,
    /// One of the account's destinations; a message for any other is not stored.
    pub destination_id: String,
    pub event_id: Option<String>,
    pub rule_id: Option<String>,
    pub rule_name: Option<String>,
    /// A second delivery with the same key in the account is not stored (re-processing an event after a crash).
    pub dedup_key: Option<String>,
    pub message: serde_json::Value,
    pub created_at: i64,
    /// When it may first be sent.
    pub next_attempt_at: i64,
    /// Stored as failed with this error, never sent: the rule's transform or template failed to make the
    /// message.
    pub failed: Option<String>,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub account: String,
    pub destination_id: String,
    pub event_id: Option<String>,
    pub rule_id: Option<String>,
    pub rule_name: Option<String>,
    pub dedup_key: Option<String>,
    pub message: serde_json::Value,
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    /// Attempts since it was enqueued or last retried by hand, including one in hand.
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// A claim of due deliveries by one worker.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryClaim<'a> {
    pub now: i64,
    /// Longer than a send can take: a lease that runs out lets another worker take the delivery.
    pub lease_until: i64,
    pub limit: u32,
    /// Who claims, unique among every worker of every node: only it may finish what it claimed.
    pub worker: &'a str,
    /// How long an opened circuit keeps its destination's deliveries waiting. After that they are claimed again
    /// (half-open): the worker sends one as the probe, postpones the others (`postpone_delivery`), and records
    /// what the probe made of the circuit.
    pub circuit_cooldown_ms: i64,
}

/// A delivery a worker holds under a lease.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ClaimedDelivery {
    pub id: String,
    pub account: String,
    pub destination_id: String,
    pub event_id: Option<String>,
    pub rule_id: Option<String>,
    pub rule_name: Option<String>,
    pub message: serde_json::Value,
    /// Including the attempt this claim starts: a worker that finds it past its limit finishes the delivery as
    /// failed without sending (a delivery whose worker keeps dying comes back here each time its lease runs out).
    pub attempts: i64,
    pub lease_owner: String,
    pub lease_until: i64,
    pub created_at: i64,
}

/// How a worker's attempt at a claimed delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Send it again at `next_attempt_at`.
    Retry {
        next_attempt_at: i64,
        error: String,
    },
    /// Given up; a user may retry it.
    Failed(String),
}

impl DeliveryOutcome {
    /// Where the delivery stands after it: delivered, queued for the retry, or failed.
    pub fn status(&self) -> DeliveryStatus {
        match self {
            DeliveryOutcome::Delivered => DeliveryStatus::Delivered,
            DeliveryOutcome::Retry { .. } => DeliveryStatus::Queued,
            DeliveryOutcome::Failed(_) => DeliveryStatus::Failed,
        }
    }

    pub fn attempt_outcome(&self) -> AttemptOutcome {
        match self {
            DeliveryOutcome::Delivered => AttemptOutcome::Delivered,
            DeliveryOutcome::Retry { .. } => AttemptOutcome::Retry,
            DeliveryOutcome::Failed(_) => AttemptOutcome::Failed,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            DeliveryOutcome::Delivered => None,
            DeliveryOutcome::Retry { error, .. } | DeliveryOutcome::Failed(error) => Some(error),
        }
    }
}

/// An attempt at a claimed delivery that ended, to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryFinish {
    pub delivery: ClaimedDelivery,
    pub report: AttemptReport,
    pub outcome: DeliveryOutcome,
}

/// What one attempt saw, to be recorded with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    pub started_at: i64,
    pub duration_ms: i64,
    pub http_status: Option<i32>,
    /// The start of the response; the store keeps at most `RESPONSE_EXCERPT_BYTES`.
    pub response_excerpt: Option<String>,
}

/// One attempt at a delivery, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryAttemptRow {
    pub delivery_id: String,
    pub attempt: i64,
    pub started_at: i64,
    pub duration_ms: i64,
    pub http_status: Option<i32>,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    #[sqlx(try_from = "String")]
    pub outcome: AttemptOutcome,
}

/// Which deliveries to list, newest first: every filter optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    pub destination_id: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub event_id: Option<String>,
    /// Deliveries older than this one (the `next` of the page before).
    pub before: Option<DeliveryCursor>,
    /// At most `MAX_LIMIT`; 0 asks for `DEFAULT_LIMIT`.
    pub limit: u32,
}

impl DeliveryQuery {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 500;

    /// How many deliveries a page holds.
    pub fn page_size(&self) -> u32 {
        match self.limit {
            0 => Self::DEFAULT_LIMIT,
            limit => limit.min(Self::MAX_LIMIT),
        }
    }
}

/// Where a page of deliveries ends: its last delivery's creation time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCursor {
    pub created_at: i64,
    pub id: String,
}

/// A page of deliveries, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryRow>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<DeliveryCursor>,
}

/// What retrying one delivery by hand did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryRetry {
    /// Queued again, due now, with its attempts starting again from none.
    Requeued,
    NotFound,
    /// Only failed deliveries are retried.
    NotRetryable(DeliveryStatus),
    /// Its destination was deleted: there is nowhere to send it.
    DestinationDeleted,
}

/// How many of a destination's deliveries stand at one status.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryCount {
    pub destination_id: String,
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    pub count: i64,
}

#[async_trait]
pub trait Outbound: Send + Sync {
    /// Stores a new destination: `NameTaken` when the account has one of that name.
    async fn insert_destination(&self, destination: &DestinationRow) -> Result<DestinationSave, StoreError>;
    /// Replaces the name, settings, sealed secrets and `updated_at` of the destination `destination.id` names in
    /// `destination.account`; its kind, pause and circuit stay as they are.
    async fn update_destination(&self, destination: &DestinationRow) -> Result<DestinationSave, StoreError>;
    /// Deletes a destination. Its deliveries stay, for their history: those still queued or being delivered fail
    /// with `DESTINATION_DELETED` (a worker holding one finds its lease gone). Returns how many it failed, or
    /// `None` when the account has no such destination.
    async fn delete_destination(&self, account: &str, id: &str, now: i64) -> Result<Option<u64>, StoreError>;
    /// The account's destinations by name.
    async fn list_destinations(&self, account: &str) -> Result<Vec<DestinationRow>, StoreError>;
    async fn destination(&self, account: &str, id: &str) -> Result<Option<DestinationRow>, StoreError>;
    async fn destination_by_name(&self, account: &str, name: &str) -> Result<Option<DestinationRow>, StoreError>;
    /// Stops claims of the destination's deliveries (they wait, queued); false when there is no such destination.
    /// Pausing a paused destination keeps the time it was first paused.
    async fn pause_destination(&self, account: &str, id: &str, now: i64) -> Result<bool, StoreError>;
    /// Lets the destination's deliveries be claimed again.
    async fn resume_destination(&self, account: &str, id: &str, now: i64) -> Result<bool, StoreError>;
    /// Replaces the destination's circuit with `circuit`, provided it is still `read` (what the caller read and
    /// made `circuit` from); false when it changed meanwhile (another worker recorded an attempt: read it again)
    /// or the destination is gone.
    async fn record_circuit(
        &self,
        account: &str,
        id: &str,
        read: Circuit,
        circuit: Circuit,
    ) -> Result<bool, StoreError>;

    /// Stores a rule after the account's others, and returns it with its position.
    async fn insert_rule(&self, rule: &NewRule) -> Result<RuleRow, StoreError>;
    /// Replaces a rule's definition and whether it is enabled; false when there is no such rule.
    async fn update_rule(
        &self,
        account: &str,
        id: &str,
        definition: &serde_json::Value,
        enabled: bool,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Deletes a rule, moving those after it up one place; its deliveries keep its id and name.
    async fn delete_rule(&self, account: &str, id: &str) -> Result<bool, StoreError>;
    /// The account's rules in the order they apply.
    async fn list_rules(&self, account: &str) -> Result<Vec<RuleRow>, StoreError>;
    async fn rule(&self, account: &str, id: &str) -> Result<Option<RuleRow>, StoreError>;
    /// Puts the account's rules in the order of `ids`, which must name every one of them once.
    async fn reorder_rules(&self, account: &str, ids: &[String], now: i64) -> Result<RuleOrder, StoreError>;

    /// Queues deliveries in one transaction, leaving out those whose dedup key the account already has and those
    /// for destinations it does not have; returns how many it stored. Not made durable on its own: enqueue before
    /// finishing the event, so that a crash that loses the deliveries loses the finish too, and the event is
    /// processed again.
    async fn enqueue_deliveries(&self, deliveries: &[NewDelivery]) -> Result<u64, StoreError>;
    /// Claims up to `claim.limit` due deliveries, oldest due first, each by exactly one worker of any node: queued
    /// ones whose time has come and held ones whose lease ran out (their attempt is recorded as interrupted). The
    /// store passes over deliveries of paused destinations and of destinations whose circuit opened less than
    /// `claim.circuit_cooldown_ms` ago; the worker decides when a circuit opens or closes (`record_circuit`).
    async fn claim_deliveries(&self, claim: &DeliveryClaim<'_>) -> Result<Vec<ClaimedDelivery>, StoreError>;
    /// Ends the attempt `delivery` started and records it, if the delivery is still held by that claim (the same
    /// worker, the same attempt); false, recording nothing, when its lease was lost.
    async fn finish_delivery(
        &self,
        delivery: &ClaimedDelivery,
        report: &AttemptReport,
        outcome: &DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        let finish = DeliveryFinish {
            delivery: delivery.clone(),
            report: report.clone(),
            outcome: outcome.clone(),
        };
        Ok(self.finish_deliveries(std::slice::from_ref(&finish)).await?[0])
    }
    /// `finish_delivery` for each of `finishes`, in one transaction; whether each was still held.
    async fn finish_deliveries(&self, finishes: &[DeliveryFinish]) -> Result<Vec<bool>, StoreError>;
    /// Gives a claimed delivery back unsent, queued again for `next_attempt_at` with the attempt the claim
    /// started returned and nothing recorded (its destination was paused or its circuit opened since the claim, or
    /// the worker is stopping); false when its lease was lost.
    async fn postpone_delivery(&self, delivery: &ClaimedDelivery, next_attempt_at: i64) -> Result<bool, StoreError>;
    /// A page of the account's deliveries, newest first.
    async fn list_deliveries(&self, account: &str, query: &DeliveryQuery) -> Result<DeliveryPage, StoreError>;
    async fn delivery(&self, account: &str, id: &str) -> Result<Option<DeliveryRow>, StoreError>;
    /// The attempts at one of the account's deliveries, oldest first.
    async fn delivery_attempts(&self, account: &str, delivery_id: &str) -> Result<Vec<DeliveryAttemptRow>, StoreError>;
    /// Queues a failed delivery again, due now.
    async fn retry_delivery(&self, account: &str, id: &str, now: i64) -> Result<DeliveryRetry, StoreError>;
    /// Queues every failed delivery of a destination again, due now; returns how many.
    async fn retry_failed_deliveries(&self, account: &str, destination_id: &str, now: i64) -> Result<u64, StoreError>;
    /// How many of the account's deliveries stand at each status, per destination (no row for a count of none).
    async fn delivery_counts(&self, account: &str) -> Result<Vec<DeliveryCount>, StoreError>;
    /// Deletes the account's delivered and failed deliveries created before `cutoff`, with their attempts;
    /// returns how many deliveries. Retention of events calls it too.
    async fn delete_finished_deliveries_before(&self, account: &str, cutoff: i64) -> Result<u64, StoreError>;
}

/// The error a delivery fails with when its destination is deleted.
pub const DESTINATION_DELETED: &str = "its destination was deleted";

/// The sealing context of a destination's secrets, `destinations:{id}:secrets`.
pub fn destination_secrets_context(id: &str) -> String {
    format!("destinations:{id}:secrets")
}

/// At most `RESPONSE_EXCERPT_BYTES` of `excerpt`, cut at a character boundary.
pub fn capped_excerpt(excerpt: &str) -> &str {
    if excerpt.len() <= RESPONSE_EXCERPT_BYTES {
        return excerpt;
    }
    let mut end = RESPONSE_EXCERPT_BYTES;
    while !excerpt.is_char_boundary(end) {
        end -= 1;
    }
    &excerpt[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_excerpt_is_cut_at_a_character_boundary_within_the_cap() {
        let text = "é".repeat(RESPONSE_EXCERPT_BYTES);
        let cut = capped_excerpt(&text);
        assert_eq!(cut.len(), RESPONSE_EXCERPT_BYTES);
        let odd = format!("a{text}");
        assert_eq!(capped_excerpt(&odd).len(), RESPONSE_EXCERPT_BYTES - 1);
        assert_eq!(capped_excerpt("short"), "short");
    }

    #[test]
    fn every_stored_name_reads_back_as_its_value() {
        for kind in DestinationKind::ALL {
            assert_eq!(DestinationKind::try_from(kind.as_str().to_owned()).unwrap(), kind);
        }
        for status in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::try_from(status.as_str().to_owned()).unwrap(), status);
        }
        for outcome in AttemptOutcome::ALL {
            assert_eq!(AttemptOutcome::try_from(outcome.as_str().to_owned()).unwrap(), outcome);
        }
        assert!(DeliveryStatus::try_from("sent".to_owned()).is_err());
    }
}
