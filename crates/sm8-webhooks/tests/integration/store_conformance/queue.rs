//! The processing side of the `Store` contract: claims, leases and their release, finishes, retries, mirror
//! writes and the ServiceM8 budget.

use std::sync::Arc;

use app::model::{EventQuery, EventStatus};
use server::store::{
    now_millis, object_spec, AttemptTiming, BudgetGrant, BudgetLimits, Completion, MirrorRecord, MirrorWrite, NewEvent,
    RetryOutcome, Store,
};

use super::event;
use crate::common::ACCOUNT;
use crate::common::{claim, release_expired};

pub(super) async fn claiming_takes_every_due_event_of_one_object_once(store: Arc<dyn Store>) {
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

pub(super) async fn an_interrupted_claim_is_recorded_then_queued_again_or_failed_on_its_last_attempt(
    store: Arc<dyn Store>,
) {
    let now = now_millis();
    store.insert_events(&[event("job-1", "k1", now)]).await.unwrap();
    let id = claim(store.as_ref(), now, now + 10, 1).await[0].id.clone();
    assert_eq!(
        release_expired(store.as_ref(), now + 5, 2).await,
        0,
        "the lease still holds"
    );
    assert_eq!(release_expired(store.as_ref(), now + 11, 2).await, 1);
    let record = store.event_record(ACCOUNT, &id).await.unwrap().unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("queued", 1));
    assert_eq!(record.next_attempt_at, now + 11, "due at once");

    // The second and last allowed attempt is interrupted too: the event fails, nothing claims it again.
    assert_eq!(claim(store.as_ref(), now + 11, now + 20, 1).await.len(), 1);
    assert_eq!(release_expired(store.as_ref(), now + 21, 2).await, 1);
    let record = store.event_record(ACCOUNT, &id).await.unwrap().unwrap();
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

pub(super) async fn a_starting_node_releases_its_own_claims_and_no_one_elses(store: Arc<dyn Store>) {
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
    let mine = store.event_record(ACCOUNT, &mine[0].id).await.unwrap().unwrap();
    let theirs = store.event_record(ACCOUNT, &theirs[0].id).await.unwrap().unwrap();
    assert_eq!((mine.status.as_str(), theirs.status.as_str()), ("queued", "processing"));
}

pub(super) async fn one_claim_takes_several_objects_oldest_first_each_with_all_its_due_events(store: Arc<dyn Store>) {
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

pub(super) async fn an_object_in_flight_is_passed_over_until_its_lease_ends(store: Arc<dyn Store>) {
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

pub(super) async fn a_lease_is_renewed_only_by_its_holder(store: Arc<dyn Store>) {
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
    let renewed = store
        .renew_lease(ACCOUNT, "job", "job-1", now + 10, now + 500)
        .await
        .unwrap();
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
        store
            .renew_lease(ACCOUNT, "job", "job-1", now + 10, now + 900)
            .await
            .unwrap(),
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

pub(super) async fn a_finish_of_more_events_than_one_statement_takes_records_each(store: Arc<dyn Store>) {
    let now = now_millis();
    // Three objects of 400 events, claimed one by one under one lease and finished together: 1,200 events span
    // two update statements.
    let events: Vec<_> = (0..1_200)
        .map(|n| event(&format!("job-{}", n / 400), &format!("k{n}"), now - 10_000 + n))
        .collect();
    store.insert_events(&events).await.unwrap();
    let mut claimed = Vec::new();
    for _ in 0..3 {
        claimed.extend(claim(store.as_ref(), now, now + 60_000, 1).await);
    }
    assert_eq!(claimed.len(), 1_200);
    let timing = AttemptTiming {
        started_at: now,
        finished_at: now + 5,
        http_status: Some(200),
    };
    let finished = store
        .finish_events(&claimed, &Completion::Success, &timing)
        .await
        .unwrap();
    assert_eq!(finished, 1_200);
    assert_eq!(store.stats(ACCOUNT).await.unwrap().count(EventStatus::Success), 1_200);
    for event in [&claimed[0], &claimed[1_199]] {
        let attempts = store.event_attempts(&event.id).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            (attempts[0].outcome.as_str(), attempts[0].http_status),
            ("success", Some(200))
        );
    }
}

pub(super) async fn finishing_records_the_attempt_and_ignores_lost_leases(store: Arc<dyn Store>) {
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
    let listed = store.list_events(ACCOUNT, &EventQuery::default()).await.unwrap().events;
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
    let listed = store.list_events(ACCOUNT, &EventQuery::default()).await.unwrap().events;
    assert_eq!((listed[0].status, listed[0].attempts), (EventStatus::Success, 2));
    let attempts = store.event_attempts(&listed[0].id).await.unwrap();
    let outcomes: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.outcome.as_str(), a.http_status))
        .collect();
    assert_eq!(outcomes, [(1, "retry", Some(503)), (2, "success", Some(503))]);
}

pub(super) async fn a_postponed_event_gets_its_attempt_back_and_keeps_its_place(store: Arc<dyn Store>) {
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
    let record = store.event_record(ACCOUNT, &claimed[0].id).await.unwrap().unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("queued", 0));
    assert_eq!(record.next_attempt_at, now - 5, "due as before");
    let next = claim(store.as_ref(), now + 2, now + 20, 1).await;
    assert_eq!(next[0].id, claimed[0].id);
}

pub(super) async fn failed_events_can_be_retried_one_or_all(store: Arc<dyn Store>) {
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
    let events = store.list_events(ACCOUNT, &EventQuery::default()).await.unwrap().events;
    assert_eq!(
        store.retry_event(ACCOUNT, &events[0].id, now).await.unwrap(),
        RetryOutcome::Requeued
    );
    assert_eq!(
        store.retry_event(ACCOUNT, &events[0].id, now).await.unwrap(),
        RetryOutcome::NotRetryable(EventStatus::Queued)
    );
    assert_eq!(
        store.retry_event(ACCOUNT, "unknown", now).await.unwrap(),
        RetryOutcome::NotFound
    );
    assert_eq!(store.retry_failed_events(ACCOUNT, now, true).await.unwrap(), 1);
    assert_eq!(store.retry_failed_events(ACCOUNT, now, false).await.unwrap(), 1);
    assert_eq!(store.stats(ACCOUNT).await.unwrap().count(EventStatus::Queued), 2);
    assert_eq!(
        store.delete_finished_events_before(ACCOUNT, now + 1).await.unwrap(),
        0,
        "queued events are kept"
    );
}

pub(super) async fn a_mirrored_record_is_only_replaced_by_one_at_least_as_new(store: Arc<dyn Store>) {
    let table = object_spec("job").unwrap();
    let record = |status: &str, edit_date: &str, active: i32| {
        MirrorRecord::from_record(ACCOUNT, table,
            serde_json::json!({"uuid": "j1", "company_uuid": "c1", "status": status, "edit_date": edit_date, "active": active}),
        )
        .unwrap()
    };
    let first = record("Quote", "2024-01-02 00:00:00", 1);
    assert_eq!(store.upsert_mirror(&first, 1).await.unwrap(), MirrorWrite::Inserted);
    assert_eq!(
        store
            .upsert_mirror(&record("Old", "2024-01-01 00:00:00", 1), 2)
            .await
            .unwrap(),
        MirrorWrite::Stale
    );
    // The write says what it replaced, so that table subscribers see the row before and after.
    let MirrorWrite::Updated { previous } = store
        .upsert_mirror(&record("Same", "2024-01-02 00:00:00", 0), 3)
        .await
        .unwrap()
    else {
        panic!("an update at the same edit_date is applied")
    };
    assert!(previous.active);
    assert_eq!(previous.row, first.row(1));
    let MirrorWrite::Updated { previous } = store
        .upsert_mirror(&record("Same", "2024-01-02 00:00:00", 1), 4)
        .await
        .unwrap()
    else {
        panic!("an update at the same edit_date is applied")
    };
    assert!(!previous.active, "the record was deleted (active = 0) before");
    assert_eq!(previous.row["mirrored_at"], 3);
    let stored = store.mirror_record(ACCOUNT, "job", "j1").await.unwrap().unwrap();
    assert_eq!(stored["status"], "Same");
    assert_eq!(store.job_company(ACCOUNT, "j1").await.unwrap().as_deref(), Some("c1"));
    assert_eq!(store.mirror_record(ACCOUNT, "job", "nope").await.unwrap(), None);
    assert_eq!(store.mirror_record(ACCOUNT, "widget", "j1").await.unwrap(), None);
}

pub(super) async fn the_api_budget_holds_in_any_rolling_minute_and_per_day(store: Arc<dyn Store>) {
    let limits = BudgetLimits {
        per_minute: 2,
        per_day: 3,
    };
    let take = |at: i64| {
        let store = store.clone();
        async move { store.take_api_budget(ACCOUNT, at, limits).await.unwrap() }
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

pub(super) async fn a_pause_after_a_429_holds_every_request_until_it_ends(store: Arc<dyn Store>) {
    let limits = BudgetLimits {
        per_minute: 100,
        per_day: 1_000,
    };
    let now = 60_000 * 2_000_000;
    store.pause_api_budget(ACCOUNT, now + 2_000).await.unwrap();
    store.pause_api_budget(ACCOUNT, now + 1_000).await.unwrap();
    assert_eq!(
        store.take_api_budget(ACCOUNT, now, limits).await.unwrap(),
        BudgetGrant::Exhausted { retry_at: now + 2_000 },
        "the longer pause stands"
    );
    assert_eq!(
        store.take_api_budget(ACCOUNT, now + 2_000, limits).await.unwrap(),
        BudgetGrant::Granted
    );
}
