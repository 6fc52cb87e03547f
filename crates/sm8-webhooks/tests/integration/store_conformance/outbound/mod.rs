//! Rules, destinations and deliveries (`Outbound`) on both engines: the cases are in `destinations.rs` and
//! `queue.rs`, the rows they build here.

use std::collections::HashSet;

use serde_json::json;
use server::store::outbound::{
    AttemptReport, Circuit, ClaimedDelivery, DeliveryClaim, DeliveryOutcome, DestinationKind, DestinationRow,
    DestinationSave, NewDelivery, NewRule,
};
use server::store::{self, Store};

mod destinations;
mod queue;

use destinations::*;
use queue::*;

const A: &str = "alpha";
const B: &str = "bravo";
/// Long enough that no claim in these tests waits on a circuit by accident.
const COOL_DOWN_MS: i64 = 60_000;

fn destination(account: &str, name: &str) -> DestinationRow {
    DestinationRow {
        id: uuid::Uuid::now_v7().to_string(),
        account: account.into(),
        name: name.into(),
        kind: DestinationKind::Webhook,
        settings: json!({ "url": format!("https://example.com/{name}") }),
        sealed_secrets: Some(format!("v1.sealed-{name}")),
        paused_at: None,
        consecutive_failures: 0,
        circuit_opened_at: None,
        created_at: 1,
        updated_at: 1,
    }
}

/// A stored destination of `account`.
async fn stored_destination(store: &dyn Store, account: &str, name: &str) -> DestinationRow {
    let row = destination(account, name);
    assert_eq!(store.insert_destination(&row).await.unwrap(), DestinationSave::Saved);
    row
}

fn delivery(destination: &DestinationRow, dedup_key: Option<&str>, created_at: i64) -> NewDelivery {
    NewDelivery {
        id: uuid::Uuid::now_v7().to_string(),
        account: destination.account.clone(),
        destination_id: destination.id.clone(),
        event_id: Some(format!("event-{}", dedup_key.unwrap_or("none"))),
        rule_id: Some("rule-1".into()),
        rule_name: Some("Jobs to ops".into()),
        dedup_key: dedup_key.map(str::to_owned),
        message: json!({ "destination": destination.name, "body": { "json": { "job": 1 } } }),
        created_at,
        next_attempt_at: created_at,
        failed: None,
    }
}

/// Enqueues `count` deliveries to `destination`, created (and due) one millisecond apart from `first_at`.
async fn enqueue(store: &dyn Store, destination: &DestinationRow, count: usize, first_at: i64) -> Vec<NewDelivery> {
    let deliveries: Vec<NewDelivery> = (0..count)
        .map(|n| {
            let key = format!("{}-{n}-{first_at}", destination.name);
            delivery(destination, Some(&key), first_at + n as i64)
        })
        .collect();
    assert_eq!(store.enqueue_deliveries(&deliveries).await.unwrap(), count as u64);
    deliveries
}

async fn claim(store: &dyn Store, worker: &str, now: i64, lease_until: i64, limit: u32) -> Vec<ClaimedDelivery> {
    store
        .claim_deliveries(&DeliveryClaim {
            now,
            lease_until,
            limit,
            worker,
            circuit_cooldown_ms: COOL_DOWN_MS,
        })
        .await
        .unwrap()
}

fn report(started_at: i64, http_status: Option<i32>) -> AttemptReport {
    AttemptReport {
        started_at,
        duration_ms: 25,
        http_status,
        response_excerpt: http_status.map(|status| format!("status {status}")),
    }
}

fn retry_at(next_attempt_at: i64) -> DeliveryOutcome {
    DeliveryOutcome::Retry {
        next_attempt_at,
        error: "HTTP 503".into(),
    }
}

fn ids<'a>(claimed: impl IntoIterator<Item = &'a ClaimedDelivery>) -> HashSet<String> {
    claimed.into_iter().map(|delivery| delivery.id.clone()).collect()
}

fn new_rule(account: &str, name: &str) -> NewRule {
    NewRule {
        id: uuid::Uuid::now_v7().to_string(),
        account: account.into(),
        enabled: true,
        definition: json!({ "name": name, "when": { "stage": "processed" }, "actions": [] }),
        created_at: 1,
    }
}

fn open_at(at: i64) -> Circuit {
    Circuit {
        consecutive_failures: 5,
        opened_at: Some(at),
    }
}

fn ids_of(deliveries: &[NewDelivery]) -> HashSet<String> {
    deliveries.iter().map(|delivery| delivery.id.clone()).collect()
}

conformance!(
    destinations_are_stored_updated_and_unique_by_name_in_their_account,
    no_outbound_query_of_one_account_returns_anothers_rows,
    rules_apply_in_position_order_and_reorder_only_by_a_permutation,
    enqueueing_stores_each_dedup_key_once,
    a_delivery_enqueued_as_failed_is_kept_with_its_error_and_never_claimed,
    concurrent_claims_take_each_due_delivery_once,
    a_delivery_whose_lease_ran_out_is_claimed_again_with_its_attempt_interrupted,
    only_the_holder_of_a_lease_finishes_or_postpones_its_delivery,
    attempts_are_recorded_in_order_with_what_each_saw,
    failed_deliveries_are_retried_one_or_all_of_a_destination,
    deliveries_page_newest_first_by_cursor_and_filter,
    counts_and_retention_cover_each_destination_and_status,
    deleting_a_destination_fails_its_unfinished_deliveries_and_keeps_them,
    paused_destinations_and_open_circuits_hold_their_deliveries,
    destination_secrets_are_resealed_with_every_other_secret,
    a_finish_queues_its_deliveries_only_when_it_finishes_the_events,
);

/// Two nodes, each with its own connections to one PostgreSQL database, claim side by side: every due delivery
/// goes to exactly one of them.
#[tokio::test]
#[ignore = "needs PostgreSQL: run `make test-postgres`"]
async fn two_nodes_claiming_at_once_never_take_the_same_delivery() {
    let url = crate::common::fresh_postgres_database(&crate::common::test_database_url()).await;
    let nodes = [store::connect(&url).await.unwrap(), store::connect(&url).await.unwrap()];
    let ops = stored_destination(nodes[0].as_ref(), A, "ops").await;
    let due = ids_of(&enqueue(nodes[0].as_ref(), &ops, 200, 1_000).await);
    let claimers = nodes.iter().enumerate().flat_map(|(node, store)| {
        (0..3).map(move |worker| {
            let store = store.clone();
            tokio::spawn(async move {
                let worker = format!("node-{node}/worker-{worker}");
                let mut taken = Vec::new();
                loop {
                    let claimed = claim(store.as_ref(), &worker, 10_000, 20_000, 5).await;
                    if claimed.is_empty() {
                        return taken;
                    }
                    taken.extend(claimed.into_iter().map(|delivery| delivery.id));
                }
            })
        })
    });
    let mut seen = HashSet::new();
    for claimer in claimers.collect::<Vec<_>>() {
        for id in claimer.await.unwrap() {
            assert!(seen.insert(id.clone()), "{id} was claimed twice");
        }
    }
    assert_eq!(seen, due);
}
