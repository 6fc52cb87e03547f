//! One suite of `Store` behaviour, run against SQLite always and against PostgreSQL by `make test-postgres`
//! (the PostgreSQL copies are `#[ignore]`d so `cargo test` alone never needs a server; run with `--ignored`).

use std::sync::Arc;

use app::model::{EventQuery, EventStatus};
use server::store::{self, now_millis, Insertion, NewEvent, Store};
use tempfile::TempDir;

/// A fresh store and whatever must live as long as it.
struct Fresh {
    store: Arc<dyn Store>,
    _data: Option<TempDir>,
}

async fn sqlite() -> Fresh {
    let data = TempDir::new().unwrap();
    let url = format!("sqlite://{}", data.path().join("sm8.db").display());
    Fresh { store: store::connect(&url).await.unwrap(), _data: Some(data) }
}

/// A new, empty database on the server named by `TEST_DATABASE_URL`.
async fn postgres() -> Fresh {
    let base = std::env::var("TEST_DATABASE_URL")
        .expect("TEST_DATABASE_URL must name a PostgreSQL database (make test-postgres sets it)");
    let url = fresh_postgres_database(&base).await;
    Fresh { store: store::connect(&url).await.unwrap(), _data: None }
}

async fn fresh_postgres_database(base: &str) -> String {
    use sqlx::Connection;
    let name = format!("sm8_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(base).await.expect("PostgreSQL at TEST_DATABASE_URL answers");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    let (without_query, query) = base.split_once('?').map_or((base, None), |(url, q)| (url, Some(q)));
    let server = &without_query[..without_query.rfind('/').expect("URL has a database path")];
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

fn event(object_uuid: &str, dedup_key: &str, received_at: i64) -> NewEvent {
    NewEvent {
        id: uuid::Uuid::now_v7(),
        dedup_key: dedup_key.into(),
        format: "seed".into(),
        object_type: "job".into(),
        object_uuid: object_uuid.into(),
        event_type: "updated".into(),
        occurred_at: Some(1_704_067_200_000),
        changes: serde_json::json!({ "status": "Quote" }),
        raw_body: br#"{"raw":true}"#.to_vec(),
        headers: serde_json::json!({ "content-type": "application/json" }),
        verification: "hmac-sha256".into(),
        received_at,
    }
}

async fn an_inserted_event_is_listed_as_queued(store: Arc<dyn Store>) {
    let new = event("job-1", "k1", now_millis());
    let inserted = store.insert_events(std::slice::from_ref(&new)).await.unwrap();
    assert_eq!(inserted, vec![Insertion::Stored(new.id)]);
    let listed = store.list_events(&EventQuery::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, new.id.to_string());
    assert_eq!(listed[0].status, EventStatus::Queued);
    assert_eq!(listed[0].attempts, 0);
    assert_eq!(listed[0].object_uuid, "job-1");
}

async fn a_repeated_dedup_key_is_a_duplicate_of_the_first_event(store: Arc<dyn Store>) {
    let first = event("job-1", "same", now_millis());
    store.insert_events(std::slice::from_ref(&first)).await.unwrap();
    let again = event("job-1", "same", now_millis());
    let inserted = store.insert_events(&[again.clone(), again]).await.unwrap();
    assert_eq!(inserted, vec![Insertion::Duplicate(first.id), Insertion::Duplicate(first.id)]);
    assert_eq!(store.stats().await.unwrap().total, 1);
}

async fn stats_count_by_status_and_object_type(store: Arc<dyn Store>) {
    let empty = store.stats().await.unwrap();
    assert_eq!(empty.total, 0);
    assert_eq!(empty.last_received_at, None);
    let mut company = event("co-1", "k3", 3_000);
    company.object_type = "company".into();
    store.insert_events(&[event("job-1", "k1", 1_000), event("job-2", "k2", 2_000), company]).await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.total, 3);
    assert_eq!(stats.count(EventStatus::Queued), 3);
    assert_eq!(stats.by_object_type.get("job"), Some(&2));
    assert_eq!(stats.by_object_type.get("company"), Some(&1));
    assert_eq!(stats.last_received_at.as_deref(), Some("1970-01-01T00:00:03Z"));
}

async fn events_list_newest_first_within_the_limit_and_status(store: Arc<dyn Store>) {
    store
        .insert_events(&[event("old", "k1", 1_000), event("new", "k2", 3_000), event("mid", "k3", 2_000)])
        .await
        .unwrap();
    let two = store.list_events(&EventQuery { status: None, limit: Some(2) }).await.unwrap();
    let uuids: Vec<_> = two.iter().map(|e| e.object_uuid.as_str()).collect();
    assert_eq!(uuids, ["new", "mid"]);
    let queued = EventQuery { status: Some(EventStatus::Queued), limit: None };
    assert_eq!(store.list_events(&queued).await.unwrap().len(), 3);
    let failed = EventQuery { status: Some(EventStatus::Failed), limit: None };
    assert!(store.list_events(&failed).await.unwrap().is_empty());
}

async fn a_setting_keeps_its_first_value(store: Arc<dyn Store>) {
    assert_eq!(store.setting_or_insert("admin_token", "first").await.unwrap(), "first");
    assert_eq!(store.setting_or_insert("admin_token", "second").await.unwrap(), "first");
}

async fn sessions_expire_and_end_when_deleted(store: Arc<dyn Store>) {
    let now = now_millis();
    store.create_session("live", now + 60_000).await.unwrap();
    store.create_session("expired", now - 1).await.unwrap();
    assert!(store.session_is_active("live", now).await.unwrap());
    assert!(!store.session_is_active("expired", now).await.unwrap());
    assert!(!store.session_is_active("unknown", now).await.unwrap());
    store.delete_session("live").await.unwrap();
    assert!(!store.session_is_active("live", now).await.unwrap());
}

async fn the_database_answers_a_ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite_store {
            $(
                #[tokio::test]
                async fn $case() {
                    let fresh = super::sqlite().await;
                    super::$case(fresh.store.clone()).await;
                }
            )*
        }
        mod postgres_store {
            $(
                #[tokio::test]
                #[ignore = "needs PostgreSQL: run `make test-postgres`"]
                async fn $case() {
                    let fresh = super::postgres().await;
                    super::$case(fresh.store.clone()).await;
                }
            )*
        }
    };
}

conformance!(
    an_inserted_event_is_listed_as_queued,
    a_repeated_dedup_key_is_a_duplicate_of_the_first_event,
    stats_count_by_status_and_object_type,
    events_list_newest_first_within_the_limit_and_status,
    a_setting_keeps_its_first_value,
    sessions_expire_and_end_when_deleted,
    the_database_answers_a_ping,
);
