//! One suite of `Store` behaviour, run against SQLite always and against PostgreSQL by `make test-postgres`
//! (the PostgreSQL copies are `#[ignore]`d so `cargo test` alone never needs a server; run with `--ignored`).

use std::sync::Arc;

use app::model::{EventQuery, EventStatus};
use server::store::{
    self, mirror_table, now_millis, AttemptTiming, BudgetGrant, BudgetLimits, Completion, Insertion, JobChild,
    MirrorRecord, MirrorWrite, NewEvent, RetryOutcome, Store,
};
use tempfile::TempDir;

use crate::common::{claim, release_expired};

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
    let listed = store.list_events(&EventQuery::default()).await.unwrap().events;
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
    assert_eq!(store.stats().await.unwrap().total, 1);
}

async fn stats_count_by_status_and_object_type(store: Arc<dyn Store>) {
    let empty = store.stats().await.unwrap();
    assert_eq!(empty.total, 0);
    assert_eq!(empty.last_received_at, None);
    let mut company = event("co-1", "k3", 3_000);
    company.object_type = "company".into();
    store
        .insert_events(&[event("job-1", "k1", 1_000), event("job-2", "k2", 2_000), company])
        .await
        .unwrap();
    let stats = store.stats().await.unwrap();
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
        .list_events(&EventQuery {
            limit: Some(2),
            ..EventQuery::default()
        })
        .await
        .unwrap()
        .events;
    let uuids: Vec<_> = two.iter().map(|e| e.object_uuid.as_str()).collect();
    assert_eq!(uuids, ["new", "mid"]);
    let queued = EventQuery {
        status: Some(EventStatus::Queued),
        ..EventQuery::default()
    };
    assert_eq!(store.list_events(&queued).await.unwrap().events.len(), 3);
    let failed = EventQuery {
        status: Some(EventStatus::Failed),
        ..EventQuery::default()
    };
    assert!(store.list_events(&failed).await.unwrap().events.is_empty());
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

async fn claiming_takes_every_due_event_of_one_object_once(store: Arc<dyn Store>) {
    let now = now_millis();
    let mut later = event("job-2", "k3", now);
    later.occurred_at = Some(1);
    store
        .insert_events(&[event("job-1", "k1", now), event("job-1", "k2", now), later])
        .await
        .unwrap();
    let first = claim(store.as_ref(), now, now + 1_000, 1).await;
    assert_eq!(first.len(), 2);
    assert!(first
        .iter()
        .all(|e| e.object_uuid == "job-1" && e.attempts == 1 && e.lease_until == now + 1_000));
    let second = claim(store.as_ref(), now, now + 1_000, 1).await;
    assert_eq!(
        second.iter().map(|e| e.object_uuid.as_str()).collect::<Vec<_>>(),
        ["job-2"]
    );
    assert!(claim(store.as_ref(), now, now + 1_000, 1).await.is_empty());
    // Once the leases have run out the claims are released and the events can be claimed again.
    assert!(
        claim(store.as_ref(), now + 1_001, now + 2_000, 1).await.is_empty(),
        "not before the release"
    );
    assert_eq!(release_expired(store.as_ref(), now + 1_001, 4).await, 3);
    let reclaimed = claim(store.as_ref(), now + 1_001, now + 2_000, 8).await;
    assert_eq!(reclaimed.len(), 3);
    assert!(reclaimed.iter().all(|e| e.attempts == 2));
}

async fn an_interrupted_claim_is_recorded_then_queued_again_or_failed_on_its_last_attempt(store: Arc<dyn Store>) {
    let now = now_millis();
    store.insert_events(&[event("job-1", "k1", now)]).await.unwrap();
    let id = claim(store.as_ref(), now, now + 10, 1).await[0].id.clone();
    assert_eq!(
        release_expired(store.as_ref(), now + 5, 2).await,
        0,
        "the lease still holds"
    );
    assert_eq!(release_expired(store.as_ref(), now + 11, 2).await, 1);
    let record = store.event_record(&id).await.unwrap().unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("queued", 1));
    assert_eq!(record.next_attempt_at, now + 11, "due at once");

    // The second and last allowed attempt is interrupted too: the event fails, nothing claims it again.
    assert_eq!(claim(store.as_ref(), now + 11, now + 20, 1).await.len(), 1);
    assert_eq!(release_expired(store.as_ref(), now + 21, 2).await, 1);
    let record = store.event_record(&id).await.unwrap().unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("failed", 2));
    let reason = record.last_error.unwrap_or_default();
    assert!(
        reason.starts_with("gave up after 2 attempts: the last was interrupted"),
        "{reason}"
    );
    assert!(claim(store.as_ref(), now + 30, now + 40, 1).await.is_empty());
    let attempts = store.event_attempts(&id).await.unwrap();
    let timeline: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.outcome.as_str(), a.started_at, a.finished_at))
        .collect();
    assert_eq!(
        timeline,
        [
            (1, "interrupted", now, now + 11),
            (2, "interrupted", now + 11, now + 21)
        ]
    );
}

async fn a_starting_node_releases_its_own_claims_and_no_one_elses(store: Arc<dyn Store>) {
    let now = now_millis();
    store
        .insert_events(&[event("job-1", "k1", now), event("job-2", "k2", now)])
        .await
        .unwrap();
    let mine = store
        .claim_due_objects(&server::store::Claim {
            now,
            lease_until: now + 60_000,
            objects: 1,
            node: "node-a",
        })
        .await
        .unwrap();
    let theirs = claim(store.as_ref(), now, now + 60_000, 1).await;
    let release = |node| server::store::Release {
        now: now + 1,
        max_attempts: 4,
        whose: server::store::Whose::Node(node),
    };
    assert_eq!(store.release_claims(&release("node-a")).await.unwrap(), 1);
    assert_eq!(store.release_claims(&release("node-a")).await.unwrap(), 0, "once");
    let mine = store.event_record(&mine[0].id).await.unwrap().unwrap();
    let theirs = store.event_record(&theirs[0].id).await.unwrap().unwrap();
    assert_eq!((mine.status.as_str(), theirs.status.as_str()), ("queued", "processing"));
}

async fn one_claim_takes_several_objects_oldest_first_each_with_all_its_due_events(store: Arc<dyn Store>) {
    let now = now_millis();
    // Interleaved as deliveries arrive: each object's events are spread through the queue.
    let events: Vec<NewEvent> = (0..3)
        .flat_map(|round| {
            ["job-a", "job-b", "job-c"]
                .into_iter()
                .map(move |job| event(job, &format!("{job}-{round}"), now + round))
        })
        .collect();
    store.insert_events(&events).await.unwrap();
    let claimed = claim(store.as_ref(), now + 10, now + 1_000, 2).await;
    let mut objects: Vec<&str> = claimed.iter().map(|e| e.object_uuid.as_str()).collect();
    objects.sort_unstable();
    assert_eq!(objects, ["job-a", "job-a", "job-a", "job-b", "job-b", "job-b"]);
    let rest = claim(store.as_ref(), now + 10, now + 1_000, 2).await;
    assert_eq!(rest.len(), 3);
    assert!(rest.iter().all(|e| e.object_uuid == "job-c"));
}

async fn an_object_in_flight_is_passed_over_until_its_lease_ends(store: Arc<dyn Store>) {
    let now = now_millis();
    store
        .insert_events(&[event("job-1", "k1", now), event("job-2", "k2", now)])
        .await
        .unwrap();
    let first = claim(store.as_ref(), now, now + 1_000, 1).await;
    assert_eq!(first.len(), 1);
    let busy = first[0].object_uuid.clone();
    // A new change to the object in flight arrives while its first event is being worked on.
    store.insert_events(&[event(&busy, "k3", now)]).await.unwrap();
    let next = claim(store.as_ref(), now + 1, now + 1_000, 8).await;
    assert!(
        !next.is_empty() && next.iter().all(|e| e.object_uuid != busy),
        "the busy object waits"
    );
    assert!(claim(store.as_ref(), now + 2, now + 1_000, 8).await.is_empty());
    // Once the lease has run out and the claim is released, the object is claimed again, with its newer event.
    release_expired(store.as_ref(), now + 1_001, 4).await;
    let later = claim(store.as_ref(), now + 1_001, now + 2_000, 8).await;
    let busy_events = later.iter().filter(|e| e.object_uuid == busy).count();
    assert_eq!(busy_events, 2, "the expired claim and the newer event");
}

async fn a_lease_is_renewed_only_by_its_holder(store: Arc<dyn Store>) {
    let now = now_millis();
    store
        .insert_events(&[
            event("job-1", "k1", now),
            event("job-1", "k2", now),
            event("job-2", "k3", now),
        ])
        .await
        .unwrap();
    let claimed = claim(store.as_ref(), now, now + 10, 3).await;
    assert_eq!(claimed.len(), 3);
    let renewed = store.renew_lease("job", "job-1", now + 10, now + 500).await.unwrap();
    assert_eq!(renewed, 2, "both events of the object, not the other object's");
    assert_eq!(
        release_expired(store.as_ref(), now + 100, 4).await,
        1,
        "only the unrenewed lease ran out"
    );
    assert!(
        claim(store.as_ref(), now + 100, now + 200, 3)
            .await
            .iter()
            .all(|e| e.object_uuid == "job-2"),
        "the renewed object stays in flight"
    );
    assert_eq!(
        store.renew_lease("job", "job-1", now + 10, now + 900).await.unwrap(),
        0,
        "the old lease no longer holds"
    );
    let held: Vec<_> = claimed
        .into_iter()
        .filter(|e| e.object_uuid == "job-1")
        .map(|e| server::store::ClaimedEvent {
            lease_until: now + 500,
            ..e
        })
        .collect();
    let timing = AttemptTiming {
        started_at: now,
        finished_at: now + 5,
        http_status: Some(200),
    };
    assert_eq!(
        store.finish_events(&held, &Completion::Success, &timing).await.unwrap(),
        2
    );
}

async fn finishing_records_the_attempt_and_ignores_lost_leases(store: Arc<dyn Store>) {
    let now = now_millis();
    store.insert_events(&[event("job-1", "k1", now)]).await.unwrap();
    let claimed = claim(store.as_ref(), now, now + 10, 1).await;
    let timing = AttemptTiming {
        started_at: now,
        finished_at: now + 5,
        http_status: Some(503),
    };
    let retry = Completion::Retry {
        next_attempt_at: now + 50,
        error: "boom".into(),
    };
    store.finish_events(&claimed, &retry, &timing).await.unwrap();
    let listed = store.list_events(&EventQuery::default()).await.unwrap().events;
    assert_eq!(
        (listed[0].status, listed[0].last_error.as_deref()),
        (EventStatus::Queued, Some("boom"))
    );
    assert!(
        claim(store.as_ref(), now + 49, now + 100, 1).await.is_empty(),
        "not due before its time"
    );

    let reclaimed = claim(store.as_ref(), now + 50, now + 100, 1).await;
    // A worker whose lease expired and was taken over cannot finish the event any more.
    let late = store
        .finish_events(&claimed, &Completion::Failed("late".into()), &timing)
        .await
        .unwrap();
    assert_eq!(late, 0, "nothing finished under the lost lease");
    let finished = store
        .finish_events(&reclaimed, &Completion::Success, &timing)
        .await
        .unwrap();
    assert_eq!(finished, 1);
    let listed = store.list_events(&EventQuery::default()).await.unwrap().events;
    assert_eq!((listed[0].status, listed[0].attempts), (EventStatus::Success, 2));
    let attempts = store.event_attempts(&listed[0].id).await.unwrap();
    let outcomes: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.outcome.as_str(), a.http_status))
        .collect();
    assert_eq!(outcomes, [(1, "retry", Some(503)), (2, "success", Some(503))]);
}

async fn a_postponed_event_gets_its_attempt_back_and_keeps_its_place(store: Arc<dyn Store>) {
    let now = now_millis();
    store.insert_events(&[event("job-1", "k1", now - 5)]).await.unwrap();
    let claimed = claim(store.as_ref(), now, now + 10, 1).await;
    let timing = AttemptTiming {
        started_at: now,
        finished_at: now,
        http_status: None,
    };
    let postponed = Completion::Postponed("budget spent".into());
    store.finish_events(&claimed, &postponed, &timing).await.unwrap();
    // A newer event arrives meanwhile; the postponed one still comes first.
    store.insert_events(&[event("job-2", "k2", now + 1)]).await.unwrap();
    let record = store.event_record(&claimed[0].id).await.unwrap().unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("queued", 0));
    assert_eq!(record.next_attempt_at, now - 5, "due as before");
    let next = claim(store.as_ref(), now + 2, now + 20, 1).await;
    assert_eq!(next[0].id, claimed[0].id);
}

async fn failed_events_can_be_retried_one_or_all(store: Arc<dyn Store>) {
    let now = now_millis();
    store
        .insert_events(&[event("job-1", "k1", now), event("job-2", "k2", now)])
        .await
        .unwrap();
    let timing = AttemptTiming {
        started_at: now,
        finished_at: now,
        http_status: None,
    };
    for _ in 0..2 {
        let claimed = claim(store.as_ref(), now, now + 10, 1).await;
        store
            .finish_events(&claimed, &Completion::Failed("gone".into()), &timing)
            .await
            .unwrap();
    }
    let events = store.list_events(&EventQuery::default()).await.unwrap().events;
    assert_eq!(
        store.retry_event(&events[0].id, now).await.unwrap(),
        RetryOutcome::Requeued
    );
    assert_eq!(
        store.retry_event(&events[0].id, now).await.unwrap(),
        RetryOutcome::NotRetryable(EventStatus::Queued)
    );
    assert_eq!(store.retry_event("unknown", now).await.unwrap(), RetryOutcome::NotFound);
    assert_eq!(store.retry_failed_events(now, true).await.unwrap(), 1);
    assert_eq!(store.retry_failed_events(now, false).await.unwrap(), 1);
    assert_eq!(store.stats().await.unwrap().count(EventStatus::Queued), 2);
    assert_eq!(
        store.delete_finished_events_before(now + 1).await.unwrap(),
        0,
        "queued events are kept"
    );
}

async fn a_mirrored_record_is_only_replaced_by_one_at_least_as_new(store: Arc<dyn Store>) {
    let table = mirror_table("job").unwrap();
    let record = |status: &str, edit_date: &str| {
        MirrorRecord::from_record(
            table,
            serde_json::json!({"uuid": "j1", "company_uuid": "c1", "status": status, "edit_date": edit_date, "active": 1}),
        )
        .unwrap()
    };
    assert_eq!(
        store
            .upsert_mirror(&record("Quote", "2024-01-02 00:00:00"), 1)
            .await
            .unwrap(),
        MirrorWrite::Applied
    );
    assert_eq!(
        store
            .upsert_mirror(&record("Old", "2024-01-01 00:00:00"), 2)
            .await
            .unwrap(),
        MirrorWrite::Stale
    );
    assert_eq!(
        store
            .upsert_mirror(&record("Same", "2024-01-02 00:00:00"), 3)
            .await
            .unwrap(),
        MirrorWrite::Applied
    );
    let stored = store.mirror_record("job", "j1").await.unwrap().unwrap();
    assert_eq!(stored["status"], "Same");
    assert_eq!(store.job_company("j1").await.unwrap().as_deref(), Some("c1"));
    assert_eq!(store.mirror_record("job", "nope").await.unwrap(), None);
    assert_eq!(store.mirror_record("widget", "j1").await.unwrap(), None);
}

async fn the_api_budget_holds_in_any_rolling_minute_and_per_day(store: Arc<dyn Store>) {
    let limits = BudgetLimits {
        per_minute: 2,
        per_day: 3,
    };
    let take = |at: i64| {
        let store = store.clone();
        async move { store.take_api_budget(at, limits).await.unwrap() }
    };
    // Two requests late in one clock minute: none more until the first is a minute old, even in the next minute.
    let start = 60_000 * 1_000_000 + 59_000;
    assert_eq!(take(start).await, BudgetGrant::Granted);
    assert_eq!(take(start + 500).await, BudgetGrant::Granted);
    assert_eq!(
        take(start + 1_500).await,
        BudgetGrant::Exhausted {
            retry_at: start + 60_001
        },
        "a new clock minute is not a new budget"
    );
    assert_eq!(take(start + 60_001).await, BudgetGrant::Granted);
    assert!(
        matches!(take(start + 130_000).await, BudgetGrant::Exhausted { .. }),
        "the day allows three"
    );
}

async fn a_pause_after_a_429_holds_every_request_until_it_ends(store: Arc<dyn Store>) {
    let limits = BudgetLimits {
        per_minute: 100,
        per_day: 1_000,
    };
    let now = 60_000 * 2_000_000;
    store.pause_api_budget(now + 2_000).await.unwrap();
    store.pause_api_budget(now + 1_000).await.unwrap();
    assert_eq!(
        store.take_api_budget(now, limits).await.unwrap(),
        BudgetGrant::Exhausted { retry_at: now + 2_000 },
        "the longer pause stands"
    );
    assert_eq!(
        store.take_api_budget(now + 2_000, limits).await.unwrap(),
        BudgetGrant::Granted
    );
}

async fn sync_watermarks_only_move_forward(store: Arc<dyn Store>) {
    assert_eq!(store.sync_watermark("job").await.unwrap(), None);
    store.set_sync_watermark("job", "2024-01-02 00:00:00", 1).await.unwrap();
    store.set_sync_watermark("job", "2024-01-01 00:00:00", 2).await.unwrap();
    assert_eq!(
        store.sync_watermark("job").await.unwrap().as_deref(),
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
        uuids(&store.list_events(&jobs).await.unwrap()),
        ["job-abc-2", "job-xyz", "job-abc-1"]
    );
    let created_only = EventQuery {
        event_type: Some("created".into()),
        ..EventQuery::default()
    };
    assert_eq!(uuids(&store.list_events(&created_only).await.unwrap()), ["job-abc-1"]);
    let search = EventQuery {
        search: Some("ABC".into()),
        ..EventQuery::default()
    };
    assert_eq!(
        uuids(&store.list_events(&search).await.unwrap()),
        ["job-abc-2", "job-abc-1", "Co-ABC"]
    );
    let literal = EventQuery {
        search: Some("%".into()),
        ..EventQuery::default()
    };
    assert!(
        store.list_events(&literal).await.unwrap().events.is_empty(),
        "wildcards match literally"
    );
    let window = EventQuery {
        received_from: Some(2_000),
        received_to: Some(4_000),
        ..EventQuery::default()
    };
    assert_eq!(
        uuids(&store.list_events(&window).await.unwrap()),
        ["job-xyz", "job-abc-1"]
    );

    let first = store
        .list_events(&EventQuery {
            limit: Some(3),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(uuids(&first), ["job-abc-2", "job-xyz", "job-abc-1"]);
    let next = EventQuery {
        limit: Some(3),
        cursor: first.next_cursor.clone(),
        ..EventQuery::default()
    };
    let second = store.list_events(&next).await.unwrap();
    assert_eq!(uuids(&second), ["Co-ABC"]);
    assert_eq!(second.next_cursor, None);
    let by_id = EventQuery {
        search: Some(first.events[0].id.clone()),
        ..EventQuery::default()
    };
    assert_eq!(uuids(&store.list_events(&by_id).await.unwrap()), ["job-abc-2"]);
}

async fn an_event_record_holds_every_column(store: Arc<dyn Store>) {
    let new = event("job-1", "k1", 1_000);
    store.insert_events(std::slice::from_ref(&new)).await.unwrap();
    let record = store.event_record(&new.id.to_string()).await.unwrap().unwrap();
    assert_eq!(record.raw_body, new.raw_body);
    assert_eq!(record.headers, new.headers);
    assert_eq!(record.changes, new.changes);
    assert_eq!(
        (record.format.as_str(), record.verification.as_str()),
        ("seed", "hmac-sha256")
    );
    assert!(store.event_record("missing").await.unwrap().is_none());
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
    store.take_api_budget(now, limits).await.unwrap();

    let health = store.pipeline_health(now, limits).await.unwrap();
    assert_eq!(health.queue_depth, 1);
    assert_eq!(health.oldest_queued_seconds, Some(4));
    assert_eq!(health.success_rate, Some(1.0));
    assert!(health.mean_processing_ms.unwrap() >= 4_000.0);
    assert_eq!((health.api_budget.minute_used, health.api_budget.day_used), (1, 1));

    let buckets = store.minute_buckets(now - 59 * 60_000, now).await.unwrap();
    assert_eq!(buckets.len(), 60);
    assert_eq!(buckets.iter().map(|b| b.received).sum::<i64>(), 2);
    assert_eq!(buckets.iter().map(|b| b.succeeded).sum::<i64>(), 1);
}

async fn a_company_sees_its_active_jobs_and_their_records(store: Arc<dyn Store>) {
    let mirror = |object: &str, record: serde_json::Value| {
        MirrorRecord::from_record(mirror_table(object).unwrap(), record).unwrap()
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
    let jobs = store.company_jobs("c1").await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j["uuid"].as_str().unwrap()).collect::<Vec<_>>(),
        ["j1"]
    );
    assert_eq!(
        store.job_children(JobChild::Activities, "j1").await.unwrap()[0]["uuid"],
        "a1"
    );
    assert_eq!(
        store.job_children(JobChild::Attachments, "j1").await.unwrap()[0]["uuid"],
        "f1"
    );
    assert!(store.job_children(JobChild::Activities, "j3").await.unwrap().is_empty());
}

async fn a_portal_link_opens_one_session_once(store: Arc<dyn Store>) {
    let now = now_millis();
    store.create_portal_link("link", "c1", now + 60_000).await.unwrap();
    store.create_portal_link("stale", "c1", now - 1).await.unwrap();
    assert_eq!(
        store.redeem_portal_link("link", now).await.unwrap().as_deref(),
        Some("c1")
    );
    assert_eq!(
        store.redeem_portal_link("link", now).await.unwrap(),
        None,
        "a link works once"
    );
    assert_eq!(store.redeem_portal_link("stale", now).await.unwrap(), None);
    store
        .create_portal_session("session", "c1", now + 60_000)
        .await
        .unwrap();
    assert_eq!(
        store.portal_session_company("session", now).await.unwrap().as_deref(),
        Some("c1")
    );
    store.delete_portal_session("session").await.unwrap();
    assert_eq!(store.portal_session_company("session", now).await.unwrap(), None);
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
    claiming_takes_every_due_event_of_one_object_once,
    one_claim_takes_several_objects_oldest_first_each_with_all_its_due_events,
    finishing_records_the_attempt_and_ignores_lost_leases,
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
    a_portal_link_opens_one_session_once,
);
