//! The delivery queue: enqueueing once per dedup key, each claim by exactly one worker, leases and their expiry,
//! finishes and postponements only by the lease's holder, attempts, retries, paging, counts and retention.

use std::collections::HashSet;
use std::sync::Arc;

use server::store::outbound::{
    AttemptOutcome, AttemptReport, DeliveryOutcome, DeliveryQuery, DeliveryRetry, DeliveryStatus, DESTINATION_DELETED,
    RESPONSE_EXCERPT_BYTES,
};
use server::store::Store;

use super::{claim, delivery, enqueue, ids, ids_of, report, retry_at, stored_destination, A};

pub(super) async fn enqueueing_stores_each_dedup_key_once(store: Arc<dyn Store>) {
    let ops = stored_destination(store.as_ref(), A, "ops").await;
    let first = [
        delivery(&ops, Some("event-1:rule-1:ops"), 1),
        delivery(&ops, Some("event-2:rule-1:ops"), 1),
    ];
    assert_eq!(store.enqueue_deliveries(&first).await.unwrap(), 2);
    // The event is processed again after a crash: the same keys under new ids.
    let again = [
        delivery(&ops, Some("event-1:rule-1:ops"), 2),
        delivery(&ops, Some("event-2:rule-1:ops"), 2),
    ];
    assert_eq!(store.enqueue_deliveries(&again).await.unwrap(), 0);
    let unkeyed = [delivery(&ops, None, 3), delivery(&ops, None, 3)];
    assert_eq!(
        store.enqueue_deliveries(&unkeyed).await.unwrap(),
        2,
        "deliveries without a key are all kept"
    );
    let mut to_nowhere = delivery(&ops, Some("event-3"), 4);
    to_nowhere.destination_id = "deleted-destination".into();
    assert_eq!(store.enqueue_deliveries(&[to_nowhere]).await.unwrap(), 0);

    let listed = store
        .list_deliveries(A, &DeliveryQuery::default())
        .await
        .unwrap()
        .deliveries;
    assert_eq!(listed.len(), 4);
    let kept = listed
        .iter()
        .find(|d| d.id == first[0].id)
        .expect("the first delivery of a key is kept");
    assert_eq!(
        (kept.status, kept.attempts, kept.next_attempt_at),
        (DeliveryStatus::Queued, 0, 1)
    );
    assert_eq!(kept.message, first[0].message);
    assert_eq!(kept.rule_name.as_deref(), Some("Jobs to ops"));
}

pub(super) async fn concurrent_claims_take_each_due_delivery_once(store: Arc<dyn Store>) {
    let ops = stored_destination(store.as_ref(), A, "ops").await;
    let alerts = stored_destination(store.as_ref(), A, "alerts").await;
    let mut due = ids_of(&enqueue(store.as_ref(), &ops, 30, 1_000).await);
    due.extend(ids_of(&enqueue(store.as_ref(), &alerts, 30, 1_000).await));
    enqueue(store.as_ref(), &ops, 5, 50_000).await;

    let claimers = (0..4).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let worker = format!("worker-{n}");
            let mut taken = Vec::new();
            loop {
                let claimed = claim(store.as_ref(), &worker, 10_000, 20_000, 7).await;
                if claimed.is_empty() {
                    return taken;
                }
                assert!(claimed.iter().all(|d| d.lease_owner == worker && d.attempts == 1));
                taken.extend(claimed);
            }
        })
    });
    let mut seen = HashSet::new();
    for claimer in claimers.collect::<Vec<_>>() {
        for delivery in claimer.await.unwrap() {
            assert!(seen.insert(delivery.id.clone()), "{} was claimed twice", delivery.id);
        }
    }
    assert_eq!(seen, due, "every due delivery once, and none not yet due");
}

pub(super) async fn a_delivery_whose_lease_ran_out_is_claimed_again_with_its_attempt_interrupted(
    store: Arc<dyn Store>,
) {
    let ops = stored_destination(store.as_ref(), A, "ops").await;
    let queued = enqueue(store.as_ref(), &ops, 1, 1_000).await;
    let first = claim(store.as_ref(), "stalled", 1_000, 2_000, 10).await;
    assert_eq!(first.len(), 1);
    assert!(
        claim(store.as_ref(), "other", 1_500, 3_000, 10).await.is_empty(),
        "the lease holds"
    );
    let again = claim(store.as_ref(), "other", 2_001, 3_000, 10).await;
    assert_eq!(ids(&again), ids_of(&queued));
    assert_eq!((again[0].attempts, again[0].lease_owner.as_str()), (2, "other"));
    let attempts = store.delivery_attempts(A, &queued[0].id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (
            attempts[0].attempt,
            attempts[0].outcome,
            attempts[0].started_at,
            attempts[0].duration_ms
        ),
        (1, AttemptOutcome::Interrupted, 1_000, 1_000)
    );
}

pub(super) async fn only_the_holder_of_a_lease_finishes_or_postpones_its_delivery(store: Arc<dyn Store>) {
    let ops = stored_destination(store.as_ref(), A, "ops").await;
    let queued = enqueue(store.as_ref(), &ops, 1, 1_000).await;
    let held = claim(store.as_ref(), "first", 1_000, 2_000, 1).await.remove(0);
    let mut impostor = held.clone();
    impostor.lease_owner = "impostor".into();
    assert!(!store
        .finish_delivery(&impostor, &report(1_000, Some(200)), &DeliveryOutcome::Delivered)
        .await
        .unwrap());
    assert!(!store.postpone_delivery(&impostor, 5_000).await.unwrap());

    let taken_over = claim(store.as_ref(), "second", 2_500, 4_000, 1).await.remove(0);
    assert!(
        !store
            .finish_delivery(&held, &report(1_000, Some(200)), &DeliveryOutcome::Delivered)
            .await
            .unwrap(),
        "the first worker lost its lease"
    );
    assert!(store.postpone_delivery(&taken_over, 5_000).await.unwrap());
    let postponed = store.delivery(A, &queued[0].id).await.unwrap().unwrap();
    assert_eq!(
        (
            postponed.status,
            postponed.attempts,
            postponed.next_attempt_at,
            postponed.lease_owner
        ),
        (DeliveryStatus::Queued, 1, 5_000, None),
        "a postponed attempt is given back"
    );
    assert!(claim(store.as_ref(), "third", 4_999, 9_000, 1).await.is_empty());

    let last = claim(store.as_ref(), "third", 5_000, 9_000, 1).await.remove(0);
    assert_eq!(last.attempts, 2);
    assert!(store
        .finish_delivery(&last, &report(5_000, Some(204)), &DeliveryOutcome::Delivered)
        .await
        .unwrap());
    assert!(
        !store
            .finish_delivery(&last, &report(5_000, Some(204)), &DeliveryOutcome::Delivered)
            .await
            .unwrap(),
        "a claim finishes once"
    );
    let delivered = store.delivery(A, &queued[0].id).await.unwrap().unwrap();
    assert_eq!(
        (
            delivered.status,
            delivered.finished_at,
            delivered.lease_owner,
            delivered.lease_until
        ),
        (DeliveryStatus::Delivered, Some(5_025), None, None)
    );
    let attempts = store.delivery_attempts(A, &queued[0].id).await.unwrap();
    let outcomes: Vec<_> = attempts.iter().map(|a| (a.attempt, a.outcome)).collect();
    assert_eq!(
        outcomes,
        [(1, AttemptOutcome::Interrupted), (2, AttemptOutcome::Delivered)]
    );
}

pub(super) async fn attempts_are_recorded_in_order_with_what_each_saw(store: Arc<dyn Store>) {
    let ops = stored_destination(store.as_ref(), A, "ops").await;
    let queued = enqueue(store.as_ref(), &ops, 1, 1_000).await;
    let id = &queued[0].id;
    let first = claim(store.as_ref(), "worker", 1_000, 9_000, 1).await.remove(0);
    let long_answer = AttemptReport {
        response_excerpt: Some("x".repeat(RESPONSE_EXCERPT_BYTES + 100)),
        ..report(1_000, Some(503))
    };
    assert!(store
        .finish_delivery(&first, &long_answer, &retry_at(2_000))
        .await
        .unwrap());
    let waiting = store.delivery(A, id).await.unwrap().unwrap();
    assert_eq!(
        (waiting.status, waiting.next_attempt_at, waiting.last_error.as_deref()),
        (DeliveryStatus::Queued, 2_000, Some("HTTP 503"))
    );
    assert!(
        claim(store.as_ref(), "worker", 1_999, 9_000, 1).await.is_empty(),
        "not before its retry"
    );
    let second = claim(store.as_ref(), "worker", 2_000, 9_000, 1).await.remove(0);
    assert!(store
        .finish_delivery(&second, &report(2_000, None), &retry_at(3_000))
        .await
        .unwrap());
    let third = claim(store.as_ref(), "worker", 3_000, 9_000, 1).await.remove(0);
    assert!(store
        .finish_delivery(&third, &report(3_000, Some(200)), &DeliveryOutcome::Delivered)
        .await
        .unwrap());

    let attempts = store.delivery_attempts(A, id).await.unwrap();
    let seen: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.started_at, a.http_status, a.outcome))
        .collect();
    assert_eq!(
        seen,
        [
            (1, 1_000, Some(503), AttemptOutcome::Retry),
            (2, 2_000, None, AttemptOutcome::Retry),
            (3, 3_000, Some(200), AttemptOutcome::Delivered),
        ]
    );
    assert_eq!(
        attempts[0].response_excerpt.as_ref().map(String::len),
        Some(RESPONSE_EXCERPT_BYTES)
    );
    assert_eq!(attempts[0].error.as_deref(), Some("HTTP 503"));
    assert_eq!((attempts[2].error.as_deref(), attempts[2].duration_ms), (None, 25));
    let delivered = store.delivery(A, id).await.unwrap().unwrap();
    assert_eq!((delivered.attempts, delivered.last_error), (3, None));
}

pub(super) async fn failed_deliveries_are_retried_one_or_all_of_a_destination(store: Arc<dyn Store>) {
    let ops = stored_destination(store.as_ref(), A, "ops").await;
    let alerts = stored_destination(store.as_ref(), A, "alerts").await;
    let mut queued = enqueue(store.as_ref(), &ops, 3, 1_000).await;
    queued.extend(enqueue(store.as_ref(), &alerts, 1, 1_000).await);
    for held in claim(store.as_ref(), "worker", 1_002, 9_000, 10).await {
        let failed = DeliveryOutcome::Failed("HTTP 410".into());
        assert!(store
            .finish_delivery(&held, &report(1_000, Some(410)), &failed)
            .await
            .unwrap());
    }
    let failed = store.delivery(A, &queued[0].id).await.unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.finished_at, failed.last_error.as_deref()),
        (DeliveryStatus::Failed, Some(1_025), Some("HTTP 410"))
    );

    assert_eq!(
        store.retry_delivery(A, &queued[0].id, 2_000).await.unwrap(),
        DeliveryRetry::Requeued
    );
    let requeued = store.delivery(A, &queued[0].id).await.unwrap().unwrap();
    assert_eq!(
        (
            requeued.status,
            requeued.attempts,
            requeued.next_attempt_at,
            requeued.finished_at
        ),
        (DeliveryStatus::Queued, 0, 2_000, None)
    );
    assert_eq!(
        store.retry_delivery(A, &queued[0].id, 2_000).await.unwrap(),
        DeliveryRetry::NotRetryable(DeliveryStatus::Queued)
    );
    assert_eq!(
        store.retry_delivery(A, "missing", 2_000).await.unwrap(),
        DeliveryRetry::NotFound
    );
    assert_eq!(store.retry_failed_deliveries(A, &ops.id, 2_000).await.unwrap(), 2);
    assert_eq!(store.retry_failed_deliveries(A, &ops.id, 2_000).await.unwrap(), 0);
    assert_eq!(
        store.delivery(A, &queued[3].id).await.unwrap().unwrap().status,
        DeliveryStatus::Failed,
        "another destination's failures stay"
    );

    let again = claim(store.as_ref(), "worker", 2_000, 9_000, 10).await;
    assert_eq!(again.len(), 3);
    assert!(
        again.iter().all(|d| d.attempts == 1),
        "a retried delivery gets its attempts afresh"
    );
    let attempts = store.delivery_attempts(A, &queued[0].id).await.unwrap();
    assert_eq!(attempts.len(), 1, "the earlier attempts are kept");
}

pub(super) async fn deliveries_page_newest_first_by_cursor_and_filter(store: Arc<dyn Store>) {
    let ops = stored_destination(store.as_ref(), A, "ops").await;
    let alerts = stored_destination(store.as_ref(), A, "alerts").await;
    let to_ops = enqueue(store.as_ref(), &ops, 5, 1_000).await;
    // Two created in the same millisecond: the id orders them.
    let mut twins = [
        delivery(&alerts, Some("twin-1"), 2_000),
        delivery(&alerts, Some("twin-2"), 2_000),
    ];
    assert_eq!(store.enqueue_deliveries(&twins).await.unwrap(), 2);
    twins.sort_by(|a, b| a.id.cmp(&b.id));

    let mut query = DeliveryQuery {
        limit: 3,
        ..DeliveryQuery::default()
    };
    let mut pages = Vec::new();
    loop {
        let page = store.list_deliveries(A, &query).await.unwrap();
        pages.push(page.deliveries.iter().map(|d| d.id.clone()).collect::<Vec<_>>());
        match page.next {
            Some(next) => query.before = Some(next),
            None => break,
        }
    }
    let newest_first: Vec<String> = [&twins[1], &twins[0]]
        .into_iter()
        .chain(to_ops.iter().rev())
        .map(|d| d.id.clone())
        .collect();
    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), newest_first);

    let of_alerts = DeliveryQuery {
        destination_id: Some(alerts.id.clone()),
        ..DeliveryQuery::default()
    };
    assert_eq!(store.list_deliveries(A, &of_alerts).await.unwrap().deliveries.len(), 2);
    let of_event = DeliveryQuery {
        event_id: to_ops[2].event_id.clone(),
        ..DeliveryQuery::default()
    };
    let found = store.list_deliveries(A, &of_event).await.unwrap();
    assert_eq!((found.deliveries.len(), found.next), (1, None));
    assert_eq!(found.deliveries[0].id, to_ops[2].id);
    let held = claim(store.as_ref(), "worker", 1_000, 9_000, 2).await;
    let delivering = DeliveryQuery {
        status: Some(DeliveryStatus::Delivering),
        ..DeliveryQuery::default()
    };
    let listed = store.list_deliveries(A, &delivering).await.unwrap().deliveries;
    assert_eq!(listed.iter().map(|d| d.id.clone()).collect::<HashSet<_>>(), ids(&held));
}

pub(super) async fn counts_and_retention_cover_each_destination_and_status(store: Arc<dyn Store>) {
    let ops = stored_destination(store.as_ref(), A, "ops").await;
    let alerts = stored_destination(store.as_ref(), A, "alerts").await;
    enqueue(store.as_ref(), &ops, 3, 1_000).await;
    enqueue(store.as_ref(), &alerts, 1, 5_000).await;
    let held = claim(store.as_ref(), "worker", 1_001, 9_000, 2).await;
    let delivered = DeliveryOutcome::Delivered;
    assert!(store
        .finish_delivery(&held[0], &report(1_001, Some(200)), &delivered)
        .await
        .unwrap());
    let counts: HashSet<_> = store
        .delivery_counts(A)
        .await
        .unwrap()
        .into_iter()
        .map(|count| (count.destination_id, count.status, count.count))
        .collect();
    let expected: HashSet<_> = [
        (ops.id.clone(), DeliveryStatus::Delivered, 1),
        (ops.id.clone(), DeliveryStatus::Delivering, 1),
        (ops.id.clone(), DeliveryStatus::Queued, 1),
        (alerts.id.clone(), DeliveryStatus::Queued, 1),
    ]
    .into();
    assert_eq!(counts, expected);

    // Retention deletes only finished deliveries older than the cutoff, with their attempts.
    assert_eq!(store.delete_finished_deliveries_before(A, 1_000).await.unwrap(), 0);
    assert_eq!(store.delete_finished_deliveries_before(A, 6_000).await.unwrap(), 1);
    assert_eq!(store.delivery(A, &held[0].id).await.unwrap(), None);
    assert!(store.delivery_attempts(A, &held[0].id).await.unwrap().is_empty());
    let failed = DeliveryOutcome::Failed("HTTP 400".into());
    assert!(store
        .finish_delivery(&held[1], &report(1_001, Some(400)), &failed)
        .await
        .unwrap());
    assert_eq!(
        store.delete_finished_events_before(A, 6_000).await.unwrap(),
        0,
        "no events, yet the events' retention deletes the finished deliveries"
    );
    assert_eq!(store.delivery(A, &held[1].id).await.unwrap(), None);
    assert_eq!(
        store
            .list_deliveries(A, &DeliveryQuery::default())
            .await
            .unwrap()
            .deliveries
            .len(),
        2
    );
}

pub(super) async fn deleting_a_destination_fails_its_unfinished_deliveries_and_keeps_them(store: Arc<dyn Store>) {
    let ops = stored_destination(store.as_ref(), A, "ops").await;
    let queued = enqueue(store.as_ref(), &ops, 3, 1_000).await;
    let held = claim(store.as_ref(), "worker", 1_000, 9_000, 1).await.remove(0);
    let delivered = claim(store.as_ref(), "worker", 1_001, 9_000, 1).await.remove(0);
    assert!(store
        .finish_delivery(&delivered, &report(1_001, Some(200)), &DeliveryOutcome::Delivered)
        .await
        .unwrap());

    assert_eq!(store.delete_destination(A, &ops.id, 5_000).await.unwrap(), Some(2));
    assert_eq!(store.destination(A, &ops.id).await.unwrap(), None);
    assert_eq!(store.delete_destination(A, &ops.id, 5_000).await.unwrap(), None);
    let listed = store
        .list_deliveries(A, &DeliveryQuery::default())
        .await
        .unwrap()
        .deliveries;
    assert_eq!(listed.len(), 3, "the history stays");
    for delivery in &listed {
        if delivery.id == delivered.id {
            assert_eq!(delivery.status, DeliveryStatus::Delivered);
        } else {
            assert_eq!(
                (delivery.status, delivery.last_error.as_deref(), delivery.finished_at),
                (DeliveryStatus::Failed, Some(DESTINATION_DELETED), Some(5_000))
            );
        }
    }
    assert!(
        !store
            .finish_delivery(&held, &report(1_000, Some(200)), &DeliveryOutcome::Delivered)
            .await
            .unwrap(),
        "a worker holding one finds its lease gone"
    );
    assert!(claim(store.as_ref(), "worker", 10_000, 20_000, 10).await.is_empty());
    assert_eq!(
        store.retry_delivery(A, &queued[2].id, 6_000).await.unwrap(),
        DeliveryRetry::DestinationDeleted
    );
    assert_eq!(store.retry_failed_deliveries(A, &ops.id, 6_000).await.unwrap(), 0);
}

pub(super) async fn a_delivery_enqueued_as_failed_is_kept_with_its_error_and_never_claimed(store: Arc<dyn Store>) {
    let ops = stored_destination(store.as_ref(), A, "ops").await;
    let mut broken = delivery(&ops, Some("event-9:rule-1:0:0"), 5);
    broken.failed = Some("rule \"Jobs to ops\": at transform: boom".into());
    assert_eq!(store.enqueue_deliveries(&[broken.clone()]).await.unwrap(), 1);
    assert!(claim(store.as_ref(), "worker-1", 100, 1_000, 10).await.is_empty());
    let stored = store.delivery(A, &broken.id).await.unwrap().unwrap();
    assert_eq!(stored.status, DeliveryStatus::Failed);
    assert_eq!(stored.last_error.as_deref(), broken.failed.as_deref());
    assert_eq!(stored.finished_at, Some(5));
    assert_eq!(stored.attempts, 0);
}

/// A worker finishes an event and queues what its rules made in one commit; a worker whose lease was lost
/// queues nothing (the one that holds the event now will).
pub(super) async fn a_finish_queues_its_deliveries_only_when_it_finishes_the_events(store: Arc<dyn Store>) {
    let ops = stored_destination(store.as_ref(), crate::common::ACCOUNT, "ops").await;
    let now = server::store::now_millis();
    store
        .insert_events(&[crate::store_conformance::event("job-1", "finish-1", now)])
        .await
        .unwrap();
    let claimed = crate::common::claim(store.as_ref(), now, now + 60_000, 1).await;
    assert_eq!(claimed.len(), 1);
    let attempt = server::store::AttemptTiming {
        started_at: now,
        finished_at: now + 5,
        http_status: Some(200),
    };
    let stale: Vec<_> = claimed
        .iter()
        .map(|event| server::store::ClaimedEvent {
            lease_until: event.lease_until - 1,
            ..event.clone()
        })
        .collect();
    let lost = [delivery(&ops, Some("job-1:lost"), now)];
    let finished = store
        .finish_events_delivering(&stale, &server::store::Completion::Success, &attempt, &lost)
        .await
        .unwrap();
    assert_eq!(finished, 0);
    let kept = [delivery(&ops, Some("job-1:kept"), now)];
    let finished = store
        .finish_events_delivering(&claimed, &server::store::Completion::Success, &attempt, &kept)
        .await
        .unwrap();
    assert_eq!(finished, 1);
    let queued = store
        .list_deliveries(crate::common::ACCOUNT, &DeliveryQuery::default())
        .await
        .unwrap()
        .deliveries;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].dedup_key.as_deref(), Some("job-1:kept"));
    assert_eq!(queued[0].status, DeliveryStatus::Queued);
}
