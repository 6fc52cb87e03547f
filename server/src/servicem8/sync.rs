//! Reconciliation: pages through the records ServiceM8 changed since a watermark and queues an event for each
//! record the mirror lacks or holds in an older version, so that missed webhooks are made up for.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::client::{ApiCallError, ServiceM8Client};
use crate::store::mirror::text_field;
use crate::store::{now_millis, NewEvent, ReceivedBody, Store, StoreError, OBJECTS};

/// How often the scheduler looks for accounts whose pass is due (new accounts, new credentials).
pub const SYNC_TICK: Duration = Duration::from_secs(5);

/// When each account's next reconciliation pass is due, and how many failed in a row.
#[derive(Debug, Default)]
pub struct Schedule {
    accounts: HashMap<String, Planned>,
}

#[derive(Debug, Clone, Copy)]
struct Planned {
    next: Instant,
    failures: i32,
}

impl Schedule {
    /// Whether `account`'s pass is due at `now`: a first pass is due at once.
    pub fn is_due(&self, account: &str, now: Instant) -> bool {
        self.accounts.get(account).is_none_or(|planned| planned.next <= now)
    }

    pub fn next_at(&mut self, account: &str, next: Instant) {
        self.accounts
            .entry(account.to_owned())
            .or_insert(Planned { next, failures: 0 })
            .next = next;
    }

    pub fn succeeded(&mut self, account: &str) {
        if let Some(planned) = self.accounts.get_mut(account) {
            planned.failures = 0;
        }
    }

    /// Counts a failed pass; returns how many failed in a row.
    pub fn failed(&mut self, account: &str) -> i32 {
        let planned = self.accounts.entry(account.to_owned()).or_insert(Planned {
            next: Instant::now(),
            failures: 0,
        });
        planned.failures += 1;
        planned.failures
    }

    /// How long until the earliest planned pass (zero if one is due).
    pub fn until_next(&self, now: Instant) -> Duration {
        self.accounts
            .values()
            .map(|planned| planned.next.saturating_duration_since(now))
            .min()
            .unwrap_or(SYNC_TICK)
    }
}

/// How events of a reconciliation pass are verified: changes no webhook announced.
pub const RECONCILIATION: &str = "reconciliation";
/// How events of an object type's first pass are verified: the account's records imported.
pub const INITIAL_SYNC: &str = "initial sync";

/// What one reconciliation pass found for one object type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub object_type: &'static str,
    /// Records ServiceM8 listed as changed since the watermark.
    pub scanned: usize,
    /// Events queued for records the mirror lacked or held older.
    pub queued: usize,
    /// The watermark after the pass.
    pub watermark: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Api(#[from] ApiCallError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reconciles every mirrored object type of `account` (whose API `client` reaches). `since` (a ServiceM8 date,
/// `YYYY-MM-DD HH:MM:SS`) overrides the stored watermarks.
pub async fn reconcile(
    store: &Arc<dyn Store>,
    account: &str,
    client: &ServiceM8Client,
    since: Option<&str>,
) -> Result<Vec<SyncReport>, SyncError> {
    let mut reports = Vec::new();
    for spec in OBJECTS {
        reports.push(reconcile_object(store, account, client, spec.object_type, since).await?);
    }
    Ok(reports)
}

async fn reconcile_object(
    store: &Arc<dyn Store>,
    account: &str,
    client: &ServiceM8Client,
    object_type: &'static str,
    since: Option<&str>,
) -> Result<SyncReport, SyncError> {
    let watermark = match since {
        Some(since) => Some(since.to_owned()),
        None => store.sync_watermark(account, object_type).await?,
    };
    // Dates are quoted in the filter; a quote inside one would end the literal.
    let filter = watermark
        .as_deref()
        .map(|date| format!("edit_date gt '{}'", date.replace('\'', "")));
    let first_pass = watermark.is_none();
    let mut report = SyncReport {
        object_type,
        watermark: watermark.clone(),
        ..SyncReport::default()
    };
    let mut cursor = "-1".to_owned();
    loop {
        let page = client.list_page(object_type, filter.as_deref(), &cursor).await?;
        for record in &page.records {
            report.scanned += 1;
            let (Some(uuid), Some(edit_date)) = (text_field(record, "uuid"), text_field(record, "edit_date")) else {
                continue;
            };
            if report.watermark.as_deref().is_none_or(|mark| mark < edit_date.as_str()) {
                report.watermark = Some(edit_date.clone());
            }
            if mirror_is_behind(store, account, object_type, &uuid, &edit_date).await? {
                store
                    .insert_events(&[sync_event(account, object_type, &uuid, &edit_date, record, first_pass)])
                    .await?;
                report.queued += 1;
            }
        }
        match page.next_cursor {
            Some(next) if !page.records.is_empty() => cursor = next,
            _ => break,
        }
    }
    if let Some(mark) = &report.watermark {
        store
            .set_sync_watermark(account, object_type, mark, now_millis())
            .await?;
    }
    Ok(report)
}

async fn mirror_is_behind(
    store: &Arc<dyn Store>,
    account: &str,
    object_type: &str,
    uuid: &str,
    edit_date: &str,
) -> Result<bool, StoreError> {
    let stored = store.mirror_record(account, object_type, uuid).await?;
    Ok(stored
        .as_ref()
        .and_then(|record| text_field(record, "edit_date"))
        .is_none_or(|stored_date| stored_date.as_str() < edit_date))
}

/// `first_pass`: the object type had no watermark, so the pass imports the account rather than finds what
/// webhooks missed; its events are verified as `initial sync` instead of `reconciliation`, and the
/// missed-webhooks alert does not count them.
fn sync_event(
    account: &str,
    object_type: &str,
    uuid: &str,
    edit_date: &str,
    record: &Value,
    first_pass: bool,
) -> NewEvent {
    let received_at = now_millis();
    NewEvent {
        id: uuid::Uuid::now_v7(),
        account: account.into(),
        // One event per record version: a second pass over the same version is a duplicate.
        dedup_key: format!("sync:{object_type}:{uuid}:{edit_date}"),
        format: "sync".into(),
        object_type: object_type.into(),
        object_uuid: uuid.into(),
        event_type: "updated".into(),
        occurred_at: crate::ingest::payload::parse_timestamp(edit_date),
        // The listed record itself: the processor mirrors it without fetching it again.
        changes: record.clone(),
        body: ReceivedBody::new(record.to_string().into_bytes(), json!({}), received_at),
        verification: if first_pass { INITIAL_SYNC } else { RECONCILIATION }.into(),
        received_at,
    }
}
