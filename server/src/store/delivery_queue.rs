//! The statements of the delivery queue, run on both engines by `outbound_sql.rs`: claiming due deliveries,
//! finishing an attempt, retries, counts, and the page query with its cursor.

use super::outbound::{DeliveryCursor, DeliveryPage, DeliveryQuery, DeliveryRow, DeliveryStatus};
use super::placeholders::numbered;

/// The columns of `DeliveryRow`.
pub const DELIVERY_COLUMNS: &str = "id, account, destination_id, event_id, rule_id, rule_name, dedup_key, message, \
     status, attempts, next_attempt_at, lease_owner, lease_until, last_error, created_at, finished_at";

/// The columns of `ClaimedDelivery`.
const CLAIMED_COLUMNS: &str =
    "id, account, destination_id, event_id, rule_id, rule_name, message, attempts, lease_owner, lease_until, created_at";

/// What an attempt whose lease ran out records as its error.
pub const INTERRUPTED_REASON: &str = "interrupted: its worker stopped, or held the delivery past its lease";

/// Picks due deliveries: held ones whose lease ran out (`$1` now), then queued ones whose time has come, oldest
/// due first, of destinations neither paused nor with a circuit opened after `$2`; at most `$3`. `skip_locked` is
/// the engine's `Engine::skip_locked` for `d`.
///
/// Each kind is its own index-ordered pick that stops at the limit: one `WHERE` with both kinds `OR`ed was
/// planned as a scan of every due delivery and a sort, which made each claim cost as much as the whole queue (a
/// backlog of 20,000 held the delivery workers to half their rate).
pub fn pick_due_sql(skip_locked: &str) -> String {
    let pick = |condition: &str, order: &str| {
        format!(
            "SELECT id FROM (SELECT d.id FROM deliveries d
                 JOIN destinations t ON t.account = d.account AND t.id = d.destination_id
                 WHERE {condition}
                   AND t.paused_at IS NULL AND (t.circuit_opened_at IS NULL OR t.circuit_opened_at <= $2)
                 {order} LIMIT $3 {skip_locked})"
        )
    };
    format!(
        "SELECT id FROM ({} expired UNION ALL {} queued) picked LIMIT $3",
        pick("d.status = 'delivering' AND d.lease_until < $1", ""),
        pick(
            "d.status = 'queued' AND d.next_attempt_at <= $1",
            "ORDER BY d.next_attempt_at"
        ),
    )
}

/// Records, among `count` picked deliveries (`$2…`), the attempts whose lease ran out as interrupted (`$1` the
/// reason), having lasted as long as their lease.
pub fn record_interrupted_sql(count: usize) -> String {
    format!(
        "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, error, outcome)
         SELECT id, attempts, claimed_at, lease_until - claimed_at, $1, 'interrupted' FROM deliveries
         WHERE status = 'delivering' AND id IN ({})",
        numbered(2, count)
    )
}

/// Takes `count` picked deliveries (`$4…`) for worker `$1` until `$2`, starting their next attempt at `$3`.
pub fn take_sql(count: usize) -> String {
    format!(
        "UPDATE deliveries SET status = 'delivering', attempts = attempts + 1, lease_owner = $1, lease_until = $2,
             claimed_at = $3
         WHERE id IN ({}) RETURNING {CLAIMED_COLUMNS}",
        numbered(4, count)
    )
}

/// Ends the attempt in hand (`$1` status, `$2` next attempt if any, `$3` error, `$4` finished at) if delivery
/// `$6` of account `$5` is still held by worker `$7` for attempt `$8`.
pub const FINISH_SQL: &str = "UPDATE deliveries SET status = $1, next_attempt_at = COALESCE($2, next_attempt_at),
         last_error = $3, finished_at = $4, lease_owner = NULL, lease_until = NULL, claimed_at = NULL
     WHERE account = $5 AND id = $6 AND status = 'delivering' AND lease_owner = $7 AND attempts = $8";

/// Queues delivery `$3` of account `$2` again for `$1`, giving back the attempt its claim started, if it is still
/// held by worker `$4` for attempt `$5`.
pub const POSTPONE_SQL: &str = "UPDATE deliveries SET status = 'queued', next_attempt_at = $1, attempts = attempts - 1,
         lease_owner = NULL, lease_until = NULL, claimed_at = NULL
     WHERE account = $2 AND id = $3 AND status = 'delivering' AND lease_owner = $4 AND attempts = $5";

pub const RECORD_ATTEMPT_SQL: &str = "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms,
         http_status, response_excerpt, error, outcome)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// The attempts at delivery `$2` of account `$1`, oldest first.
pub const ATTEMPTS_SQL: &str = "SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.http_status,
         a.response_excerpt, a.error, a.outcome
     FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
     WHERE d.account = $1 AND a.delivery_id = $2 ORDER BY a.id";

/// Queues failed deliveries of account `$1` again at `$3`, with their attempts starting again from none, unless
/// their destination was deleted; `which` picks them by `$2`.
fn requeue_failed_sql(which: &str) -> String {
    format!(
        "UPDATE deliveries SET status = 'queued', attempts = 0, next_attempt_at = $3, finished_at = NULL
         WHERE account = $1 AND {which} = $2 AND status = 'failed'
           AND EXISTS (SELECT 1 FROM destinations t
                       WHERE t.account = deliveries.account AND t.id = deliveries.destination_id)"
    )
}

/// `Outbound::retry_delivery`: delivery `$2`.
pub fn retry_one_sql() -> String {
    requeue_failed_sql("id")
}

/// `Outbound::retry_failed_deliveries`: every failed delivery of destination `$2`.
pub fn retry_destination_sql() -> String {
    requeue_failed_sql("destination_id")
}

/// Why delivery `$2` of account `$1` was not retried: its status, and its destination's id if it still exists.
pub const RETRY_REFUSAL_SQL: &str = "SELECT d.status, t.id FROM deliveries d
     LEFT JOIN destinations t ON t.account = d.account AND t.id = d.destination_id
     WHERE d.account = $1 AND d.id = $2";

pub const COUNTS_SQL: &str = "SELECT destination_id, status, COUNT(*) AS count FROM deliveries WHERE account = $1
     GROUP BY destination_id, status ORDER BY destination_id, status";

/// One value bound to a statement built at run time.
pub enum Bind<'a> {
    Text(&'a str),
    Int(i64),
}

/// A page query: its text, its binds in order, and the page size (it fetches one row more, to tell whether
/// another page follows).
pub struct PageQuery<'a> {
    pub sql: String,
    pub binds: Vec<Bind<'a>>,
    pub size: usize,
}

/// The query for one page of `account`'s deliveries; only the filters given appear in it, so each can use its
/// index.
pub fn page_query<'a>(account: &'a str, query: &'a DeliveryQuery) -> PageQuery<'a> {
    let mut binds = vec![Bind::Text(account)];
    let mut conditions = vec!["account = $1".to_owned()];
    let filters = [
        ("destination_id", query.destination_id.as_deref()),
        ("status", query.status.map(DeliveryStatus::as_str)),
        ("event_id", query.event_id.as_deref()),
    ];
    for (column, value) in filters {
        if let Some(value) = value {
            binds.push(Bind::Text(value));
            conditions.push(format!("{column} = ${}", binds.len()));
        }
    }
    if let Some(before) = &query.before {
        binds.push(Bind::Int(before.created_at));
        binds.push(Bind::Text(&before.id));
        let (at, id) = (binds.len() - 1, binds.len());
        conditions.push(format!("(created_at < ${at} OR (created_at = ${at} AND id < ${id}))"));
    }
    let size = query.page_size() as usize;
    binds.push(Bind::Int(size as i64 + 1));
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {} ORDER BY created_at DESC, id DESC LIMIT ${}",
        conditions.join(" AND "),
        binds.len()
    );
    PageQuery { sql, binds, size }
}

/// Splits the extra row a page query fetches off into the next page's cursor.
pub fn into_page(mut deliveries: Vec<DeliveryRow>, size: usize) -> DeliveryPage {
    let mut next = None;
    if deliveries.len() > size {
        deliveries.truncate(size);
        next = deliveries.last().map(|last| DeliveryCursor {
            created_at: last.created_at,
            id: last.id.clone(),
        });
    }
    DeliveryPage { deliveries, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taking_deliveries_numbers_their_ids_after_the_worker_lease_and_start() {
        assert!(take_sql(2).contains("WHERE id IN ($4, $5) RETURNING"));
    }

    #[test]
    fn a_page_query_binds_only_the_filters_given_in_order() {
        let query = DeliveryQuery {
            status: Some(DeliveryStatus::Failed),
            before: Some(DeliveryCursor {
                created_at: 7,
                id: "d-7".into(),
            }),
            limit: 2,
            ..DeliveryQuery::default()
        };
        let page = page_query("acme", &query);
        assert!(page
            .sql
            .contains("account = $1 AND status = $2 AND (created_at < $3 OR"));
        assert!(page.sql.contains("id < $4") && page.sql.ends_with("LIMIT $5"));
        assert_eq!(page.binds.len(), 5);
        assert!(matches!(page.binds[4], Bind::Int(3)), "one row more than the page");
    }
}
