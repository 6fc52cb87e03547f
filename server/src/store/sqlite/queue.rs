//! The queue's statements on the writer: claiming due objects and releasing claims.

use sqlx::{Connection, SqliteConnection};

use super::super::engine::Engine;
use super::super::queue::{Claim, Release, Whose, INTERRUPTED_ATTEMPT_COLUMNS, INTERRUPTED_REASON, RELEASE_SET};
use super::super::{in_change_order, ClaimedEvent, ClaimedRow, StoreError, CLAIMED_COLUMNS, MAX_CLAIMED_EVENTS};
use super::SqliteStore;

pub(super) async fn claim_due_objects(
    connection: &mut SqliteConnection,
    claim: &Claim<'_>,
) -> Result<Vec<ClaimedEvent>, StoreError> {
    // One statement: SQLite takes the write lock before reading, so two workers never claim the same event.
    // The due objects are found by an index-ordered lookup of the queue and their events through the object
    // index: left to itself the planner sorts every due event for each candidate, which takes minutes once a
    // backlog of tens of thousands builds up. The first `objects` due events name at most that many objects.
    // Objects with an event in flight are passed over: one object is worked on by one worker at a time, so
    // its updates stay in order.
    let rows: Vec<ClaimedRow> = sqlx::query_as(&format!(
        "UPDATE webhook_events
         SET status = 'processing', locked_until = ?2, attempts = attempts + 1, updated_at = ?1, claimed_by = ?4
         WHERE id IN (
             SELECT e.id FROM (
                 SELECT DISTINCT account, object_type, object_uuid FROM (
                     SELECT account, object_type, object_uuid FROM webhook_events q INDEXED BY webhook_events_due
                     WHERE status = 'queued' AND next_attempt_at <= ?1
                       AND NOT EXISTS (
                           SELECT 1 FROM webhook_events p INDEXED BY webhook_events_in_flight
                           WHERE p.account = q.account AND p.object_type = q.object_type
                             AND p.object_uuid = q.object_uuid AND p.status = 'processing')
                     ORDER BY next_attempt_at LIMIT ?3)) due
             CROSS JOIN webhook_events e INDEXED BY webhook_events_object
             WHERE e.account = due.account AND e.object_type = due.object_type AND e.object_uuid = due.object_uuid
               AND e.status = 'queued' AND e.next_attempt_at <= ?1
             LIMIT {MAX_CLAIMED_EVENTS})
         RETURNING {CLAIMED_COLUMNS}"
    ))
    .bind(claim.now)
    .bind(claim.lease_until)
    .bind(claim.objects)
    .bind(claim.node)
    .fetch_all(&mut *connection)
    .await?;
    Ok(in_change_order(rows))
}

pub(super) async fn release_claims(
    connection: &mut SqliteConnection,
    release: &Release<'_>,
) -> Result<u64, StoreError> {
    let mut tx = connection.begin_with(<SqliteStore as Engine>::BEGIN_WRITE).await?;
    // The writer is held: both statements see the same claims.
    let condition = release.condition();
    let record = format!(
        "INSERT INTO {INTERRUPTED_ATTEMPT_COLUMNS}
         SELECT id, attempts, updated_at, $1, 'interrupted', NULL, $2 FROM webhook_events WHERE {condition}"
    );
    let record = sqlx::query(&record).bind(release.now).bind(INTERRUPTED_REASON);
    let release_sql = format!("UPDATE webhook_events SET {RELEASE_SET} WHERE {condition}");
    let released = sqlx::query(&release_sql).bind(release.now).bind(release.max_attempts);
    let (record, released) = match release.whose {
        Whose::Expired => (record.bind(release.now), released.bind(release.now)),
        Whose::Node(node) => (record.bind(node), released.bind(node)),
    };
    record.execute(&mut *tx).await?;
    let released = released.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(released.rows_affected())
}
