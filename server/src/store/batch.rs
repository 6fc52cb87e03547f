//! Many rows per statement, on either engine. Every statement is a round trip (to SQLite's connection thread, or
//! over the network to PostgreSQL), which costs more than the database's work on a small row: a batch of
//! deliveries, or the events of one claimed object, take one or two statements instead of one or two per event.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::engine::RowsAffected;
use super::outbound::{DeliveryStatus, NewDelivery};
use super::placeholders::{for_engine, numbered, value_rows};
use super::{AttemptTiming, ClaimedEvent, Completion, FinishValues, Insertion, NewEvent, ReceivedBody, StoreError};

/// Rows per statement: 14 parameters per event stay well under SQLite's 32,766 and PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 1_000;

const EVENT_COLUMNS: usize = 14;
const BODY_COLUMNS: usize = 4;
const ATTEMPT_COLUMNS: usize = 7;
/// The parameters of a finish's `SET` and lease, before its ids.
const FINISH_PARAMETERS: usize = 8;
/// The columns a delivery is inserted with; 500 rows of them per statement stay well under SQLite's 32,766
/// parameters.
const DELIVERY_INSERT_COLUMNS: usize = 14;
const DELIVERY_ROWS_PER_STATEMENT: usize = 500;

/// Inserts `events` and their bodies, skipping events whose dedup key is already stored (and bodies none of whose
/// events are new), and says for each event which id holds it.
pub async fn insert_events<DB>(
    connection: &mut DB::Connection,
    events: &[NewEvent],
) -> Result<Vec<Insertion>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> &'q String: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q serde_json::Value: Encode<'q, DB> + Type<DB>,
    for<'q> &'q Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> (String, String): FromRow<'r, DB::Row>,
{
    let mut body_ids: HashSet<uuid::Uuid> = HashSet::new();
    let bodies: Vec<&ReceivedBody> = events
        .iter()
        .filter(|event| body_ids.insert(event.body.id))
        .map(|event| event.body.as_ref())
        .collect();
    // A body stored before (the same delivery handed over again) is left as it is, and not counted as this
    // call's to delete.
    let mut inserted_bodies: HashSet<String> = HashSet::with_capacity(bodies.len());
    for chunk in bodies.chunks(ROWS_PER_STATEMENT) {
        let sql = for_engine::<DB>(format!(
            "INSERT INTO webhook_bodies (id, raw_body, headers, received_at) VALUES {} \
             ON CONFLICT (id) DO NOTHING RETURNING id",
            value_rows(chunk.len(), BODY_COLUMNS)
        ));
        let mut insert = sqlx::query_scalar::<DB, String>(&sql);
        for body in chunk {
            insert = insert
                .bind(body.id.to_string())
                .bind(&body.raw_body)
                .bind(&body.headers)
                .bind(body.received_at);
        }
        inserted_bodies.extend(insert.fetch_all(&mut *connection).await?);
    }
    // Deduplication is per account: the stored key is the account's namespace and the event's own key.
    let stored_keys: Vec<String> = events.iter().map(stored_dedup_key).collect();
    let mut stored: HashSet<String> = HashSet::with_capacity(events.len());
    for (chunk, keys) in events
        .chunks(ROWS_PER_STATEMENT)
        .zip(stored_keys.chunks(ROWS_PER_STATEMENT))
    {
        // Conflicting rows (stored before, or earlier in this batch) are skipped and not returned.
        let sql = for_engine::<DB>(format!(
            "INSERT INTO webhook_events (id, account, dedup_key, format, object_type, object_uuid, event_type,
                 occurred_at, changes, body_id, verification, next_attempt_at, received_at, updated_at)
             VALUES {} ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
            value_rows(chunk.len(), EVENT_COLUMNS)
        ));
        let mut insert = sqlx::query_scalar::<DB, String>(&sql);
        for (event, key) in chunk.iter().zip(keys) {
            insert = insert
                .bind(event.id.to_string())
                .bind(&event.account)
                .bind(key)
                .bind(&event.format)
                .bind(&event.object_type)
                .bind(&event.object_uuid)
                .bind(&event.event_type)
                .bind(event.occurred_at)
                .bind(&event.changes)
                .bind(event.body.id.to_string())
                .bind(&event.verification)
                .bind(event.received_at)
                .bind(event.received_at)
                .bind(event.received_at);
        }
        stored.extend(insert.fetch_all(&mut *connection).await?);
    }
    // A body all of whose events were stored before (a redelivery) is not kept a second time.
    for event in events.iter().filter(|event| stored.contains(&event.id.to_string())) {
        inserted_bodies.remove(&event.body.id.to_string());
    }
    let unreferenced: Vec<String> = inserted_bodies.into_iter().collect();
    for chunk in unreferenced.chunks(ROWS_PER_STATEMENT) {
        let sql = for_engine::<DB>(format!(
            "DELETE FROM webhook_bodies WHERE id IN ({})",
            numbered(1, chunk.len())
        ));
        let mut delete = sqlx::query::<DB>(&sql);
        for id in chunk {
            delete = delete.bind(id);
        }
        delete.execute(&mut *connection).await?;
    }
    let duplicates: Vec<&str> = events
        .iter()
        .zip(&stored_keys)
        .filter(|(event, _)| !stored.contains(&event.id.to_string()))
        .map(|(_, key)| key.as_str())
        .collect();
    let mut holders: HashMap<String, String> = HashMap::with_capacity(duplicates.len());
    for chunk in duplicates.chunks(ROWS_PER_STATEMENT) {
        let sql = for_engine::<DB>(format!(
            "SELECT dedup_key, id FROM webhook_events WHERE dedup_key IN ({})",
            numbered(1, chunk.len())
        ));
        let mut select = sqlx::query_as::<DB, (String, String)>(&sql);
        for key in chunk {
            select = select.bind(*key);
        }
        holders.extend(select.fetch_all(&mut *connection).await?);
    }
    events
        .iter()
        .zip(&stored_keys)
        .map(|(event, key)| {
            if stored.contains(&event.id.to_string()) {
                return Ok(Insertion::Stored(event.id));
            }
            let holder = holders
                .get(key)
                .ok_or_else(|| StoreError::Corrupt(format!("no event holds dedup key {key}")))?;
            Ok(Insertion::Duplicate(
                holder.parse().map_err(|_| StoreError::Corrupt(holder.clone()))?,
            ))
        })
        .collect()
}

/// Records how the attempt on `events` ended, for those whose lease is still theirs; one attempt row each.
pub async fn finish_events<DB>(
    connection: &mut DB::Connection,
    events: &[ClaimedEvent],
    completion: &Completion,
    attempt: &AttemptTiming,
) -> Result<u64, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q String: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i32>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'r> (String,): FromRow<'r, DB::Row>,
{
    let values = FinishValues::new(completion, attempt.finished_at);
    let mut finished_count = 0;
    // The events of one claim share a lease; grouping keeps the id lookup on its index.
    let mut by_lease: BTreeMap<i64, Vec<&ClaimedEvent>> = BTreeMap::new();
    for event in events {
        by_lease.entry(event.lease_until).or_default().push(event);
    }
    for (lease_until, leased) in by_lease {
        for chunk in leased.chunks(ROWS_PER_STATEMENT) {
            let sql = for_engine::<DB>(format!(
                "UPDATE webhook_events
                 SET status = $1, last_error = COALESCE($2, last_error), skip_reason = $3, locked_until = NULL,
                     next_attempt_at = COALESCE($4, next_attempt_at), attempts = attempts - $5,
                     processed_at = COALESCE($6, processed_at), updated_at = $7
                 WHERE status = 'processing' AND locked_until = $8 AND id IN ({})
                 RETURNING id",
                numbered(FINISH_PARAMETERS + 1, chunk.len())
            ));
            let mut update = sqlx::query_scalar::<DB, String>(&sql)
                .bind(values.status)
                .bind(values.last_error)
                .bind(values.skip_reason)
                .bind(values.next_attempt_at)
                .bind(values.refund)
                .bind(values.processed_at)
                .bind(attempt.finished_at)
                .bind(lease_until);
            for event in chunk {
                update = update.bind(&event.id);
            }
            let finished: HashSet<String> = update.fetch_all(&mut *connection).await?.into_iter().collect();
            let recorded: Vec<&&ClaimedEvent> = chunk.iter().filter(|event| finished.contains(&event.id)).collect();
            finished_count += recorded.len() as u64;
            if recorded.is_empty() {
                continue;
            }
            let sql = for_engine::<DB>(format!(
                "INSERT INTO event_attempts (event_id, attempt, started_at, finished_at, outcome, http_status, error)
                 VALUES {}",
                value_rows(recorded.len(), ATTEMPT_COLUMNS)
            ));
            let mut insert = sqlx::query::<DB>(&sql);
            for event in recorded {
                insert = insert
                    .bind(&event.id)
                    .bind(event.attempts)
                    .bind(attempt.started_at)
                    .bind(attempt.finished_at)
                    .bind(completion.outcome_name())
                    .bind(attempt.http_status)
                    .bind(completion.error().or(values.skip_reason));
            }
            insert.execute(&mut *connection).await?;
        }
    }
    Ok(finished_count)
}

/// The dedup key as stored: `account/key` (a slug never holds `/`).
fn stored_dedup_key(event: &NewEvent) -> String {
    format!("{}/{}", event.account, event.dedup_key)
}

/// Inserts `deliveries` on `connection` (inside the caller's transaction): each for one of its account's
/// destinations, once per dedup key; how many it stored. One statement carries many rows: the deliveries of a
/// batch of events are one round trip to the database, not one each.
pub async fn insert_deliveries<DB>(
    connection: &mut DB::Connection,
    deliveries: &[NewDelivery],
) -> Result<u64, StoreError>
where
    DB: Database<QueryResult: RowsAffected>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q serde_json::Value: Encode<'q, DB> + Type<DB>,
    for<'r> (String,): FromRow<'r, DB::Row>,
{
    let mut stored = 0;
    // A delivery for a destination deleted meanwhile is not stored: the destinations that exist, per account.
    let mut existing: HashMap<&str, HashSet<String>> = HashMap::new();
    let mut wanted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for delivery in deliveries {
        wanted
            .entry(&delivery.account)
            .or_default()
            .insert(&delivery.destination_id);
    }
    for (account, ids) in wanted {
        let ids: Vec<&str> = ids.into_iter().collect();
        for chunk in ids.chunks(DELIVERY_ROWS_PER_STATEMENT) {
            let sql = for_engine::<DB>(format!(
                "SELECT id FROM destinations WHERE account = $1 AND id IN ({})",
                numbered(2, chunk.len())
            ));
            let mut select = sqlx::query_as::<DB, (String,)>(&sql).bind(account);
            for id in chunk {
                select = select.bind(*id);
            }
            let found = select.fetch_all(&mut *connection).await?;
            existing
                .entry(account)
                .or_default()
                .extend(found.into_iter().map(|(id,)| id));
        }
    }
    let kept: Vec<&NewDelivery> = deliveries
        .iter()
        .filter(|delivery| {
            existing
                .get(delivery.account.as_str())
                .is_some_and(|ids| ids.contains(&delivery.destination_id))
        })
        .collect();
    for chunk in kept.chunks(DELIVERY_ROWS_PER_STATEMENT) {
        let sql = for_engine::<DB>(format!(
            "INSERT INTO deliveries (id, account, destination_id, event_id, rule_id, rule_name, dedup_key,
                 message, status, attempts, next_attempt_at, created_at, last_error, finished_at)
             VALUES {} ON CONFLICT (account, dedup_key) DO NOTHING",
            value_rows(chunk.len(), DELIVERY_INSERT_COLUMNS)
        ));
        let mut insert = sqlx::query::<DB>(&sql);
        for delivery in chunk {
            insert = insert
                .bind(&delivery.id)
                .bind(&delivery.account)
                .bind(&delivery.destination_id)
                .bind(&delivery.event_id)
                .bind(&delivery.rule_id)
                .bind(&delivery.rule_name)
                .bind(&delivery.dedup_key)
                .bind(&delivery.message)
                .bind(match delivery.failed {
                    Some(_) => DeliveryStatus::Failed.as_str(),
                    None => DeliveryStatus::Queued.as_str(),
                })
                .bind(0_i64)
                .bind(delivery.next_attempt_at)
                .bind(delivery.created_at)
                .bind(&delivery.failed)
                .bind(delivery.failed.as_ref().map(|_| delivery.created_at));
        }
        stored += insert.execute(&mut *connection).await?.rows_affected();
    }
    Ok(stored)
}
