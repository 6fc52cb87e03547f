//! A database created before accounts existed (every migration up to 0007) upgrades in place when the store
//! opens it: its events, bodies, mirrored records, sync watermarks and portal links become the `default`
//! account's, and deduplication still recognises its redeliveries.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use app::model::EventQuery;
use server::store::{self, CompanyOf, Insertion, Store, DEFAULT_ACCOUNT};
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;

use crate::common::queued_event;

/// The last migration before accounts.
const BEFORE_ACCOUNTS: i64 = 7;

/// What the old schema holds once filled by `fill_old_database`.
const OLD_EVENT: &str = "0190c0de-0000-7000-8000-000000000001";
const OLD_DEDUP_KEY: &str = "seed:job:job-old:2024-05-01 10:00:00";
const OLD_PORTAL_LINK_HASH: &str = "hash-of-an-old-portal-link";

/// Creates the pre-accounts schema at `url` and fills it the way the release before accounts did.
pub async fn fill_old_database(url: &str) {
    let engine = if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(engine);
    let mut migrator = Migrator::new(directory).await.unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|migration| migration.version <= BEFORE_ACCOUNTS)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let statements = [
        format!(
            "INSERT INTO webhook_bodies (id, raw_body, headers, received_at) \
             VALUES ('{OLD_EVENT}', {}, '{{}}', 1714557600000)",
            if engine == "sqlite" {
                "X'7B7D'"
            } else {
                "'\\x7b7d'::bytea"
            }
        ),
        format!(
            "INSERT INTO webhook_events (id, dedup_key, format, object_type, object_uuid, event_type, changes, \
             verification, status, attempts, next_attempt_at, received_at, updated_at, body_id) \
             VALUES ('{OLD_EVENT}', '{OLD_DEDUP_KEY}', 'seed', 'job', 'job-old', 'updated', '{{}}', \
             'hmac-sha256', 'success', 1, 1714557600000, 1714557600000, 1714557600000, '{OLD_EVENT}')"
        ),
        "INSERT INTO sm8_jobs (uuid, company_uuid, status, generated_job_id, edit_date, active, record, mirrored_at) \
         VALUES ('job-old', 'co-old', 'Work Order', '1001', '2024-05-01 10:00:00', 1, \
         '{\"uuid\":\"job-old\",\"company_uuid\":\"co-old\",\"status\":\"Work Order\",\"active\":1}', 1714557600000)"
            .to_owned(),
        "INSERT INTO sync_watermarks (object_type, edit_date, synced_at) VALUES ('job', '2024-05-01 10:00:00', 1)"
            .to_owned(),
        format!(
            "INSERT INTO portal_links (token_hash, company_uuid, created_at, expires_at) \
             VALUES ('{OLD_PORTAL_LINK_HASH}', 'co-old', 1, 9999999999999)"
        ),
    ];
    if engine == "sqlite" {
        let options = SqliteConnectOptions::from_str(url).unwrap().create_if_missing(true);
        let mut connection = SqliteConnection::connect_with(&options).await.unwrap();
        migrator.run(&mut connection).await.unwrap();
        for statement in &statements {
            sqlx::query(statement).execute(&mut connection).await.unwrap();
        }
        connection.close().await.unwrap();
    } else {
        let mut connection = PgConnection::connect(url).await.unwrap();
        migrator.run(&mut connection).await.unwrap();
        for statement in &statements {
            sqlx::query(statement).execute(&mut connection).await.unwrap();
        }
        connection.close().await.unwrap();
    }
}

/// Opens the filled old database through the store, which upgrades it, and checks nothing was lost.
pub async fn an_old_database_upgrades_in_place_as_the_default_account(url: &str) {
    let store: Arc<dyn Store> = store::connect(url).await.unwrap();

    let events = store
        .list_events(DEFAULT_ACCOUNT, &EventQuery::default())
        .await
        .unwrap()
        .events;
    assert_eq!(events.len(), 1, "the old event is the default account's");
    assert_eq!(events[0].id, OLD_EVENT);
    let record = store.event_record(DEFAULT_ACCOUNT, OLD_EVENT).await.unwrap().unwrap();
    assert_eq!(record.raw_body.as_deref(), Some(&b"{}"[..]), "its body is kept");
    assert!(store
        .list_events("other", &EventQuery::default())
        .await
        .unwrap()
        .events
        .is_empty());

    assert_eq!(
        store.job_company(DEFAULT_ACCOUNT, "job-old").await.unwrap().as_deref(),
        Some("co-old"),
        "mirrored records are the default account's"
    );
    assert_eq!(store.job_company("other", "job-old").await.unwrap(), None);
    assert_eq!(
        store.sync_watermark(DEFAULT_ACCOUNT, "job").await.unwrap().as_deref(),
        Some("2024-05-01 10:00:00")
    );

    assert_eq!(
        store.redeem_portal_link(OLD_PORTAL_LINK_HASH, 2).await.unwrap(),
        Some(CompanyOf {
            account: DEFAULT_ACCOUNT.into(),
            company_uuid: "co-old".into()
        }),
        "portal links are the default account's"
    );

    let mut redelivery = queued_event("job", "job-old", 1_714_557_700_000);
    redelivery.account = DEFAULT_ACCOUNT.into();
    redelivery.dedup_key = OLD_DEDUP_KEY.into();
    let inserted = store.insert_events(std::slice::from_ref(&redelivery)).await.unwrap();
    assert_eq!(
        inserted[0],
        Insertion::Duplicate(OLD_EVENT.parse().unwrap()),
        "a redelivery of an event stored before the upgrade is still a duplicate"
    );
    let mut elsewhere = redelivery.clone();
    elsewhere.id = uuid::Uuid::now_v7();
    elsewhere.account = "other".into();
    let inserted = store.insert_events(std::slice::from_ref(&elsewhere)).await.unwrap();
    assert_eq!(
        inserted[0],
        Insertion::Stored(elsewhere.id),
        "deduplication is per account"
    );
}
