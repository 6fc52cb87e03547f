//! One suite of `Store` behaviour, run against SQLite always and against PostgreSQL by `make test-postgres`
//! (the PostgreSQL copies are `#[ignore]`d so `cargo test` alone never needs a server; run with `--ignored`).

use std::sync::Arc;

use app::model::{EventQuery, EventStatus};
use app::objects::{JobLink, ATTACHMENT, JOB_ACTIVITY, OBJECTS};
use server::store::{
    self, now_millis, object_spec, AttemptTiming, BudgetLimits, CompanyOf, Completion, Insertion, MirrorRecord,
    MirrorWrite, NewEvent, ReceivedBody, Store,
};
use tempfile::TempDir;

/// Runs each case, an `async fn(Arc<dyn Store>)` of the module invoking it, on a fresh SQLite store
/// (`sqlite_store::`) and, `#[ignore]`d, on a fresh PostgreSQL database (`postgres_store::`). Defined before the
/// modules so that they can run their own cases.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite_store {
            $(
                #[tokio::test]
                async fn $case() {
                    let fresh = crate::store_conformance::sqlite().await;
                    super::$case(fresh.store.clone()).await;
                }
            )*
        }
        mod postgres_store {
            $(
                #[tokio::test]
                #[ignore = "needs PostgreSQL: run `make test-postgres`"]
                async fn $case() {
                    let fresh = crate::store_conformance::postgres().await;
                    super::$case(fresh.store.clone()).await;
                }
            )*
        }
    };
}

mod accounts;
mod alerts;
mod analytics;
mod outbound;
mod queue;
mod upgrade;

use crate::common::claim;
use crate::common::ACCOUNT;
use accounts::*;
use analytics::*;
use queue::*;

/// A fresh store and whatever must live as long as it.
struct Fresh {
    store: Arc<dyn Store>,
    _data: Option<TempDir>,
}

async fn sqlite() -> Fresh {
    let data = TempDir::new().unwrap();
    let url = format!("sqlite://{}", data.path().join("sm8.db").display());
    Fresh {
        store: store::connect(&url).await.unwrap(),
        _data: Some(data),
    }
}

/// A new, empty database on the server named by `TEST_DATABASE_URL`.
async fn postgres() -> Fresh {
    let url = crate::common::fresh_postgres_database(&crate::common::test_database_url()).await;
    Fresh {
        store: store::connect(&url).await.unwrap(),
        _data: None,
    }
}

/// An event of the default account for job `object_uuid`, as the receiver stores it.
pub(crate) fn event(object_uuid: &str, dedup_key: &str, received_at: i64) -> NewEvent {
    NewEvent {
        id: uuid::Uuid::now_v7(),
        account: ACCOUNT.into(),
        dedup_key: dedup_key.into(),
        format: "seed".into(),
        object_type: "job".into(),
        object_uuid: object_uuid.into(),
        event_type: "updated".into(),
        occurred_at: Some(1_704_067_200_000),
        changes: serde_json::json!({ "status": "Quote" }),
        body: ReceivedBody::new(
            br#"{"raw":true}"#.to_vec(),
            serde_json::json!({ "content-type": "application/json" }),
            received_at,
        ),
        verification: "hmac-sha256".into(),
        received_at,
    }
}

async fn an_inserted_event_is_listed_as_queued(store: Arc<dyn Store>) {
    let new = event("job-1", "k1", now_millis());
    let inserted = store.insert_events(std::slice::from_ref(&new)).await.unwrap();
    assert_eq!(inserted, vec![Insertion::Stored(new.id)]);
    let listed = store.list_events(ACCOUNT, &EventQuery::default()).await.unwrap().events;
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
    assert_eq!(
        inserted,
        vec![Insertion::Duplicate(first.id), Insertion::Duplicate(first.id)]
    );
    assert_eq!(store.stats(ACCOUNT).await.unwrap().total, 1);
}

async fn a_delivery_larger_than_one_statement_is_stored_whole_with_its_own_repeats_as_duplicates(
    store: Arc<dyn Store>,
) {
    // 2,500 events span three insert statements; keys repeat within the batch and across its statements.
    let events: Vec<NewEvent> = (0..2_500)
        .map(|n| event(&format!("job-{}", n % 50), &format!("k{}", n % 2_000), 1_000 + n))
        .collect();
    let inserted = store.insert_events(&events).await.unwrap();
    assert_eq!(inserted.len(), 2_500);
    for (n, insertion) in inserted.iter().enumerate() {
        let first_with_key = &events[n % 2_000];
        if n < 2_000 {
            assert_eq!(*insertion, Insertion::Stored(first_with_key.id));
        } else {
            assert_eq!(*insertion, Insertion::Duplicate(first_with_key.id));
        }
    }
    assert_eq!(store.stats(ACCOUNT).await.unwrap().total, 2_000);
}

async fn stats_count_by_status_and_object_type(store: Arc<dyn Store>) {
    let empty = store.stats(ACCOUNT).await.unwrap();
    assert_eq!(empty.total, 0);
    assert_eq!(empty.last_received_at, None);
    let mut company = event("co-1", "k3", 3_000);
    company.object_type = "company".into();
    store
        .insert_events(&[event("job-1", "k1", 1_000), event("job-2", "k2", 2_000), company])
        .await
        .unwrap();
    let stats = store.stats(ACCOUNT).await.unwrap();
    assert_eq!(stats.total, 3);
    assert_eq!(stats.count(EventStatus::Queued), 3);
    assert_eq!(stats.by_object_type.get("job"), Some(&2));
    assert_eq!(stats.by_object_type.get("company"), Some(&1));
    assert_eq!(stats.last_received_at.as_deref(), Some("1970-01-01T00:00:03Z"));
}

async fn events_list_newest_first_within_the_limit_and_status(store: Arc<dyn Store>) {
    store
        .insert_events(&[
            event("old", "k1", 1_000),
            event("new", "k2", 3_000),
            event("mid", "k3", 2_000),
        ])
        .await
        .unwrap();
    let two = store
        .list_events(
            ACCOUNT,
            &EventQuery {
                limit: Some(2),
                ..EventQuery::default()
            },
        )
        .await
        .unwrap()
        .events;
    let uuids: Vec<_> = two.iter().map(|e| e.object_uuid.as_str()).collect();
    assert_eq!(uuids, ["new", "mid"]);
    let queued = EventQuery {
        status: Some(EventStatus::Queued),
        ..EventQuery::default()
    };
    assert_eq!(store.list_events(ACCOUNT, &queued).await.unwrap().events.len(), 3);
    let failed = EventQuery {
        status: Some(EventStatus::Failed),
        ..EventQuery::default()
    };
    assert!(store.list_events(ACCOUNT, &failed).await.unwrap().events.is_empty());
}

async fn a_setting_keeps_its_first_value(store: Arc<dyn Store>) {
    assert_eq!(store.setting_or_insert("admin_token", "first").await.unwrap(), "first");
    assert_eq!(store.setting_or_insert("admin_token", "second").await.unwrap(), "first");
}

async fn the_database_answers_a_ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

async fn sync_watermarks_only_move_forward(store: Arc<dyn Store>) {
    assert_eq!(store.sync_watermark(ACCOUNT, "job").await.unwrap(), None);
    store
        .set_sync_watermark(ACCOUNT, "job", "2024-01-02 00:00:00", 1)
        .await
        .unwrap();
    store
        .set_sync_watermark(ACCOUNT, "job", "2024-01-01 00:00:00", 2)
        .await
        .unwrap();
    assert_eq!(
        store.sync_watermark(ACCOUNT, "job").await.unwrap().as_deref(),
        Some("2024-01-02 00:00:00")
    );
}

async fn events_filter_by_type_and_search_and_page_by_cursor(store: Arc<dyn Store>) {
    let mut company = event("Co-ABC", "k1", 1_000);
    company.object_type = "company".into();
    let mut created = event("job-abc-1", "k2", 2_000);
    created.event_type = "created".into();
    store
        .insert_events(&[
            company,
            created,
            event("job-xyz", "k3", 3_000),
            event("job-abc-2", "k4", 4_000),
        ])
        .await
        .unwrap();
    let uuids = |page: &app::model::EventPage| page.events.iter().map(|e| e.object_uuid.clone()).collect::<Vec<_>>();

    let jobs = EventQuery {
        object_type: Some("job".into()),
        ..EventQuery::default()
    };
    assert_eq!(
        uuids(&store.list_events(ACCOUNT, &jobs).await.unwrap()),
        ["job-abc-2", "job-xyz", "job-abc-1"]
    );
    let created_only = EventQuery {
        event_type: Some("created".into()),
        ..EventQuery::default()
    };
    assert_eq!(
        uuids(&store.list_events(ACCOUNT, &created_only).await.unwrap()),
        ["job-abc-1"]
    );
    let search = EventQuery {
        search: Some("ABC".into()),
        ..EventQuery::default()
    };
    assert_eq!(
        uuids(&store.list_events(ACCOUNT, &search).await.unwrap()),
        ["job-abc-2", "job-abc-1", "Co-ABC"]
    );
    let literal = EventQuery {
        search: Some("%".into()),
        ..EventQuery::default()
    };
    assert!(
        store.list_events(ACCOUNT, &literal).await.unwrap().events.is_empty(),
        "wildcards match literally"
    );
    let window = EventQuery {
        received_from: Some(2_000),
        received_to: Some(4_000),
        ..EventQuery::default()
    };
    assert_eq!(
        uuids(&store.list_events(ACCOUNT, &window).await.unwrap()),
        ["job-xyz", "job-abc-1"]
    );

    let first = store
        .list_events(
            ACCOUNT,
            &EventQuery {
                limit: Some(3),
                ..EventQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(uuids(&first), ["job-abc-2", "job-xyz", "job-abc-1"]);
    let next = EventQuery {
        limit: Some(3),
        cursor: first.next_cursor.clone(),
        ..EventQuery::default()
    };
    let second = store.list_events(ACCOUNT, &next).await.unwrap();
    assert_eq!(uuids(&second), ["Co-ABC"]);
    assert_eq!(second.next_cursor, None);
    let by_id = EventQuery {
        search: Some(first.events[0].id.clone()),
        ..EventQuery::default()
    };
    assert_eq!(uuids(&store.list_events(ACCOUNT, &by_id).await.unwrap()), ["job-abc-2"]);
}

async fn an_event_record_holds_every_column(store: Arc<dyn Store>) {
    let new = event("job-1", "k1", 1_000);
    store.insert_events(std::slice::from_ref(&new)).await.unwrap();
    let record = store.event_record(ACCOUNT, &new.id.to_string()).await.unwrap().unwrap();
    assert_eq!(record.raw_body.as_ref(), Some(&new.body.raw_body));
    assert_eq!(record.headers.as_ref(), Some(&new.body.headers));
    assert_eq!(record.changes, new.changes);
    assert_eq!(
        (record.format.as_str(), record.verification.as_str()),
        ("seed", "hmac-sha256")
    );
    assert!(store.event_record(ACCOUNT, "missing").await.unwrap().is_none());
}

async fn health_and_throughput_describe_the_last_hour(store: Arc<dyn Store>) {
    let now = now_millis();
    store
        .insert_events(&[event("job-1", "k1", now - 5_000), event("job-2", "k2", now - 4_000)])
        .await
        .unwrap();
    let claimed = claim(store.as_ref(), now, now + 1_000, 1).await;
    let timing = AttemptTiming {
        started_at: now,
        finished_at: now,
        http_status: Some(200),
    };
    store
        .finish_events(&claimed, &Completion::Success, &timing)
        .await
        .unwrap();
    let limits = BudgetLimits {
        per_minute: 180,
        per_day: 20_000,
    };
    store.take_api_budget(ACCOUNT, now, limits).await.unwrap();

    let health = store.pipeline_health(ACCOUNT, now, limits).await.unwrap();
    assert_eq!(health.queue_depth, 1);
    assert_eq!(health.oldest_queued_seconds, Some(4));
    assert_eq!(health.success_rate, Some(1.0));
    assert!(health.mean_processing_ms.unwrap() >= 4_000.0);
    assert_eq!((health.api_budget.minute_used, health.api_budget.day_used), (1, 1));

    let buckets = store.minute_buckets(ACCOUNT, now - 59 * 60_000, now).await.unwrap();
    assert_eq!(buckets.len(), 60);
    assert_eq!(buckets.iter().map(|b| b.received).sum::<i64>(), 2);
    assert_eq!(buckets.iter().map(|b| b.succeeded).sum::<i64>(), 1);
}

async fn every_registered_object_type_is_mirrored_in_its_table_and_found_under_its_job(store: Arc<dyn Store>) {
    for spec in OBJECTS {
        let mut record = serde_json::json!({"uuid": format!("{}-1", spec.object_type),
            "edit_date": "2024-01-01 00:00:00", "active": 1});
        for column in spec.key_columns {
            record[*column] = serde_json::json!(format!("{column}-value"));
        }
        match spec.job {
            JobLink::Field(field) => record[field] = serde_json::json!("job-1"),
            JobLink::Related { kind_field, uuid_field } => {
                record[kind_field] = serde_json::json!("Job");
                record[uuid_field] = serde_json::json!("job-1");
            }
            JobLink::Itself | JobLink::None => {}
        }
        let row = MirrorRecord::from_record(ACCOUNT, spec, record.clone()).unwrap();
        assert_eq!(row.key_values().len(), spec.key_columns.len());
        assert_eq!(
            store.upsert_mirror(&row, 1).await.unwrap(),
            MirrorWrite::Inserted,
            "{}",
            spec.table
        );
        let stored = store.mirror_record(ACCOUNT, spec.object_type, &row.uuid).await.unwrap();
        assert_eq!(stored, Some(record), "{}", spec.table);
        let children = store.job_children(ACCOUNT, spec, "job-1").await.unwrap();
        assert_eq!(children.len(), usize::from(spec.is_job_child()), "{}", spec.table);
    }
}

async fn a_company_sees_its_active_jobs_and_their_records(store: Arc<dyn Store>) {
    let mirror = |object: &str, record: serde_json::Value| {
        MirrorRecord::from_record(ACCOUNT, object_spec(object).unwrap(), record).unwrap()
    };
    for record in [
        mirror(
            "job",
            serde_json::json!({"uuid": "j1", "company_uuid": "c1", "edit_date": "2024-01-01 00:00:00", "active": 1}),
        ),
        mirror(
            "job",
            serde_json::json!({"uuid": "j2", "company_uuid": "c1", "edit_date": "2024-01-02 00:00:00", "active": 0}),
        ),
        mirror(
            "job",
            serde_json::json!({"uuid": "j3", "company_uuid": "c2", "edit_date": "2024-01-02 00:00:00", "active": 1}),
        ),
        mirror(
            "jobactivity",
            serde_json::json!({"uuid": "a1", "job_uuid": "j1", "edit_date": "2024-01-01 00:00:00", "active": 1}),
        ),
        mirror(
            "attachment",
            serde_json::json!({"uuid": "f1", "related_object": "job", "related_object_uuid": "j1", "edit_date": "2024-01-01 00:00:00", "active": 1}),
        ),
    ] {
        store.upsert_mirror(&record, 1).await.unwrap();
    }
    let jobs = store.company_jobs(ACCOUNT, "c1").await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j["uuid"].as_str().unwrap()).collect::<Vec<_>>(),
        ["j1"]
    );
    assert_eq!(
        store.job_children(ACCOUNT, &JOB_ACTIVITY, "j1").await.unwrap()[0]["uuid"],
        "a1"
    );
    assert_eq!(
        store.job_children(ACCOUNT, &ATTACHMENT, "j1").await.unwrap()[0]["uuid"],
        "f1"
    );
    assert!(store
        .job_children(ACCOUNT, &JOB_ACTIVITY, "j3")
        .await
        .unwrap()
        .is_empty());
}

async fn a_portal_link_opens_one_session_once(store: Arc<dyn Store>) {
    let now = now_millis();
    let company = CompanyOf {
        account: "acme".into(),
        company_uuid: "c1".into(),
    };
    store.create_portal_link("link", &company, now + 60_000).await.unwrap();
    store.create_portal_link("stale", &company, now - 1).await.unwrap();
    assert_eq!(
        store.redeem_portal_link("link", now).await.unwrap(),
        Some(company.clone())
    );
    assert_eq!(
        store.redeem_portal_link("link", now).await.unwrap(),
        None,
        "a link works once"
    );
    assert_eq!(store.redeem_portal_link("stale", now).await.unwrap(), None);
    store
        .create_portal_session("session", &company, now + 60_000)
        .await
        .unwrap();
    assert_eq!(
        store.portal_session_company("session", now).await.unwrap(),
        Some(company),
        "the session opens the company of its account"
    );
    store.delete_portal_session("session").await.unwrap();
    assert_eq!(store.portal_session_company("session", now).await.unwrap(), None);
}

conformance!(
    finished_events_are_rolled_up_by_hour_and_day_once_and_outlive_their_deletion,
    seven_daily_sketches_merge_into_the_percentiles_of_every_sample,
    what_nodes_count_in_memory_adds_to_its_hour_from_every_node,
    two_passes_at_once_add_a_window_once,
    rollups_of_buckets_before_the_cutoff_are_deleted,
    an_accounts_digest_is_set_replaced_and_removed,
    an_inserted_event_is_listed_as_queued,
    a_repeated_dedup_key_is_a_duplicate_of_the_first_event,
    a_delivery_larger_than_one_statement_is_stored_whole_with_its_own_repeats_as_duplicates,
    stats_count_by_status_and_object_type,
    events_list_newest_first_within_the_limit_and_status,
    a_setting_keeps_its_first_value,
    the_database_answers_a_ping,
    claiming_takes_every_due_event_of_one_object_once,
    one_claim_takes_several_objects_oldest_first_each_with_all_its_due_events,
    finishing_records_the_attempt_and_ignores_lost_leases,
    a_finish_of_more_events_than_one_statement_takes_records_each,
    a_lease_is_renewed_only_by_its_holder,
    an_interrupted_claim_is_recorded_then_queued_again_or_failed_on_its_last_attempt,
    a_starting_node_releases_its_own_claims_and_no_one_elses,
    an_object_in_flight_is_passed_over_until_its_lease_ends,
    a_postponed_event_gets_its_attempt_back_and_keeps_its_place,
    failed_events_can_be_retried_one_or_all,
    a_mirrored_record_is_only_replaced_by_one_at_least_as_new,
    the_api_budget_holds_in_any_rolling_minute_and_per_day,
    a_pause_after_a_429_holds_every_request_until_it_ends,
    sync_watermarks_only_move_forward,
    events_filter_by_type_and_search_and_page_by_cursor,
    an_event_record_holds_every_column,
    health_and_throughput_describe_the_last_hour,
    a_company_sees_its_active_jobs_and_their_records,
    every_registered_object_type_is_mirrored_in_its_table_and_found_under_its_job,
    a_portal_link_opens_one_session_once,
    no_query_of_one_account_returns_anothers_rows,
    accounts_are_stored_updated_and_versioned,
    users_hold_roles_tokens_and_sessions_and_leave_nothing_behind,
    invitations_and_oauth_states_are_used_once_before_they_expire,
    the_audit_log_pages_newest_first_by_account_and_filter,
);

#[tokio::test]
async fn sqlite_an_old_database_upgrades_in_place_as_the_default_account() {
    let data = TempDir::new().unwrap();
    let url = format!("sqlite://{}", data.path().join("sm8.db").display());
    upgrade::fill_old_database(&url).await;
    upgrade::an_old_database_upgrades_in_place_as_the_default_account(&url).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: make test-postgres"]
async fn postgres_an_old_database_upgrades_in_place_as_the_default_account() {
    let url = crate::common::fresh_postgres_database(&crate::common::test_database_url()).await;
    upgrade::fill_old_database(&url).await;
    upgrade::an_old_database_upgrades_in_place_as_the_default_account(&url).await;
}
