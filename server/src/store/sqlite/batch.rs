//! Many rows per statement. Every statement is a round trip to the connection's own thread, which costs more than
//! SQLite's work on a small row: a batch of deliveries, or the events of one claimed object, take one or two
//! statements instead of one or two per event.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::super::{AttemptTiming, ClaimedEvent, Completion, FinishValues, Insertion, NewEvent, StoreError};

/// Rows per statement: 14 parameters per event stay well under SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 1_000;

/// Inserts `events`, skipping those whose dedup key is already stored, and says for each which id holds it.
pub(super) async fn insert_events(
    connection: &mut SqliteConnection,
    events: &[NewEvent],
) -> Result<Vec<Insertion>, StoreError> {
    let mut stored: HashSet<String> = HashSet::with_capacity(events.len());
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO webhook_events (id, dedup_key, format, object_type, object_uuid, event_type, occurred_at,
                 changes, raw_body, headers, verification, next_attempt_at, received_at, updated_at) ",
        );
        insert.push_values(chunk, |mut row, event| {
            row.push_bind(event.id.to_string())
                .push_bind(&event.dedup_key)
                .push_bind(&event.format)
                .push_bind(&event.object_type)
                .push_bind(&event.object_uuid)
                .push_bind(&event.event_type)
                .push_bind(event.occurred_at)
                .push_bind(&event.changes)
                .push_bind(&event.raw_body)
                .push_bind(&event.headers)
                .push_bind(&event.verification)
                .push_bind(event.received_at)
                .push_bind(event.received_at)
                .push_bind(event.received_at);
        });
        // Conflicting rows (stored before, or earlier in this batch) are skipped and not returned.
        insert.push(" ON CONFLICT (dedup_key) DO NOTHING RETURNING id");
        let inserted: Vec<String> = insert.build_query_scalar().fetch_all(&mut *connection).await?;
        stored.extend(inserted);
    }
    let duplicates: Vec<&str> = events
        .iter()
        .filter(|event| !stored.contains(&event.id.to_string()))
        .map(|event| event.dedup_key.as_str())
        .collect();
    let mut holders: HashMap<String, String> = HashMap::with_capacity(duplicates.len());
    for chunk in duplicates.chunks(ROWS_PER_STATEMENT) {
        let mut select = QueryBuilder::<Sqlite>::new("SELECT dedup_key, id FROM webhook_events WHERE dedup_key IN (");
        let mut keys = select.separated(", ");
        for key in chunk {
            keys.push_bind(*key);
        }
        select.push(")");
        let rows: Vec<(String, String)> = select.build_query_as().fetch_all(&mut *connection).await?;
        holders.extend(rows);
    }
    events
        .iter()
        .map(|event| {
            if stored.contains(&event.id.to_string()) {
                return Ok(Insertion::Stored(event.id));
            }
            let holder = holders
                .get(&event.dedup_key)
                .ok_or_else(|| StoreError::Corrupt(format!("no event holds dedup key {}", event.dedup_key)))?;
            Ok(Insertion::Duplicate(
                holder.parse().map_err(|_| StoreError::Corrupt(holder.clone()))?,
            ))
        })
        .collect()
}

/// Records how the attempt on `events` ended, for those whose lease is still theirs; one attempt row each.
pub(super) async fn finish_events(
    connection: &mut SqliteConnection,
    events: &[ClaimedEvent],
    completion: &Completion,
    attempt: &AttemptTiming,
) -> Result<u64, StoreError> {
    let values = FinishValues::new(completion, attempt.finished_at);
    let mut finished_count = 0;
    // The events of one claim share a lease; grouping keeps the id lookup on its index.
    let mut by_lease: BTreeMap<i64, Vec<&ClaimedEvent>> = BTreeMap::new();
    for event in events {
        by_lease.entry(event.lease_until).or_default().push(event);
    }
    for (lease_until, leased) in by_lease {
        for chunk in leased.chunks(ROWS_PER_STATEMENT) {
            let mut update = QueryBuilder::<Sqlite>::new("UPDATE webhook_events SET status = ");
            update
                .push_bind(values.status)
                .push(", last_error = COALESCE(")
                .push_bind(values.last_error)
                .push(", last_error), skip_reason = ")
                .push_bind(values.skip_reason)
                .push(", locked_until = NULL, next_attempt_at = COALESCE(")
                .push_bind(values.next_attempt_at)
                .push(", next_attempt_at), attempts = attempts - ")
                .push_bind(values.refund)
                .push(", processed_at = COALESCE(")
                .push_bind(values.processed_at)
                .push(", processed_at), updated_at = ")
                .push_bind(attempt.finished_at)
                .push(" WHERE status = 'processing' AND locked_until = ")
                .push_bind(lease_until)
                .push(" AND id IN (");
            let mut ids = update.separated(", ");
            for event in chunk {
                ids.push_bind(&event.id);
            }
            update.push(") RETURNING id");
            let finished: HashSet<String> = update
                .build_query_scalar()
                .fetch_all(&mut *connection)
                .await?
                .into_iter()
                .collect();
            let recorded: Vec<&&ClaimedEvent> = chunk.iter().filter(|event| finished.contains(&event.id)).collect();
            finished_count += recorded.len() as u64;
            if recorded.is_empty() {
                continue;
            }
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO event_attempts (event_id, attempt, started_at, finished_at, outcome, http_status, error) ",
            );
            insert.push_values(recorded, |mut row, event| {
                row.push_bind(&event.id)
                    .push_bind(event.attempts)
                    .push_bind(attempt.started_at)
                    .push_bind(attempt.finished_at)
                    .push_bind(completion.outcome_name())
                    .push_bind(attempt.http_status)
                    .push_bind(completion.error().or(values.skip_reason));
            });
            insert.build().execute(&mut *connection).await?;
        }
    }
    Ok(finished_count)
}
