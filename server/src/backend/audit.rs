//! The audit log's writing side: every state-changing action the backend carries out, or refuses, becomes one
//! line with its actor, account, target, outcome and client address. Secret values never go into a line: a line
//! names which secret changed, never what it became.

use app::access::{Access, Actor};
use app::error::AppError;
use serde_json::Value;

use super::ServerBackend;
use crate::store::directory::NewAuditEntry;
use crate::store::now_millis;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// It was tried and failed (a wrong password, a missing event).
    Failure,
    /// The actor's role does not allow it.
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    /// The outcome an action's result stands for.
    pub fn of<T>(result: &Result<T, AppError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(AppError::Forbidden(_)) => Outcome::Denied,
            Err(_) => Outcome::Failure,
        }
    }
}

/// One line to write.
pub struct AuditLine<'a> {
    pub actor: &'a Actor,
    pub account: Option<&'a str>,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub outcome: Outcome,
    pub client_address: Option<&'a str>,
    pub detail: Option<Value>,
}

impl ServerBackend {
    /// Writes one line; a failure to write is logged, never made the action's failure (it has happened).
    pub async fn audit_line(&self, line: AuditLine<'_>) {
        let entry = NewAuditEntry {
            at: now_millis(),
            account: line.account.map(str::to_owned),
            actor_kind: line.actor.kind().into(),
            actor: line.actor.label(),
            action: line.action.into(),
            target: line.target.map(str::to_owned),
            outcome: line.outcome.as_str().into(),
            client_address: line.client_address.map(str::to_owned),
            detail: line.detail,
        };
        if let Err(error) = self.store.record_audit(&entry).await {
            tracing::error!(%error, action = %entry.action, "could not write an audit line");
        }
    }

    /// Audits what `access` did in its account, with the outcome `result` stands for, and passes `result` on.
    pub async fn audited<T>(
        &self,
        access: &Access,
        action: &str,
        target: Option<&str>,
        detail: Option<Value>,
        result: Result<T, AppError>,
    ) -> Result<T, AppError> {
        self.audit_line(AuditLine {
            actor: &access.actor,
            account: Some(&access.account),
            action,
            target,
            outcome: Outcome::of(&result),
            client_address: access.client_address.as_deref(),
            detail,
        })
        .await;
        result
    }
}
