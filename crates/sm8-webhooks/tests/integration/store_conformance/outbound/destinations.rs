//! Destinations and rules as stored: names unique per account, updates, pauses, circuits, the rules' order, the
//! secrets' re-sealing, and no query of one account answering with another's rows.

use std::sync::Arc;

use serde_json::json;
use server::store::directory::SealedValue;
use server::store::outbound::{
    Circuit, DeliveryOutcome, DeliveryQuery, DeliveryRetry, DeliveryStatus, DestinationKind, DestinationSave,
    RuleOrder, RuleRow,
};
use server::store::{self, Store};

use super::{
    claim, delivery, destination, enqueue, ids, ids_of, new_rule, open_at, report, stored_destination, A, B,
    COOL_DOWN_MS,
};

pub(super) async fn destinations_are_stored_updated_and_unique_by_name_in_their_account(store: Arc<dyn Store>) {
    let ops = stored_destination(store.as_ref(), A, "ops").await;
    assert_eq!(
        store.insert_destination(&destination(A, "ops")).await.unwrap(),
        DestinationSave::NameTaken,
        "rules name destinations by name: one per name in an account"
    );
    stored_destination(store.as_ref(), B, "ops").await;
    let alerts = stored_destination(store.as_ref(), A, "alerts").await;
    assert_eq!(store.destination(A, &ops.id).await.unwrap(), Some(ops.clone()));
    assert_eq!(store.destination_by_name(A, "ops").await.unwrap(), Some(ops.clone()));
    let names: Vec<String> = store
        .list_destinations(A)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["alerts", "ops"]);

    let mut renamed = ops.clone();
    renamed.name = "alerts".into();
    assert_eq!(
        store.update_destination(&renamed).await.unwrap(),
        DestinationSave::NameTaken
    );
    renamed.name = "operations".into();
    renamed.kind = DestinationKind::Sms;
    renamed.settings = json!({ "url": "https://example.com/v2" });
    renamed.sealed_secrets = None;
    renamed.updated_at = 2;
    assert_eq!(
        store.update_destination(&renamed).await.unwrap(),
        DestinationSave::Saved
    );
    let stored = store.destination(A, &ops.id).await.unwrap().unwrap();
    assert_eq!(stored.kind, DestinationKind::Webhook, "the kind is fixed at creation");
    renamed.kind = DestinationKind::Webhook;
    assert_eq!(stored, renamed);
    assert_eq!(
        store.update_destination(&destination(A, "missing")).await.unwrap(),
        DestinationSave::NotFound
    );

    assert!(store.pause_destination(A, &alerts.id, 10).await.unwrap());
    assert!(store.pause_destination(A, &alerts.id, 20).await.unwrap());
    let paused = store.destination(A, &alerts.id).await.unwrap().unwrap();
    assert_eq!(
        paused.paused_at,
        Some(10),
        "pausing again keeps when it was first paused"
    );
    assert!(store.resume_destination(A, &alerts.id, 30).await.unwrap());
    assert_eq!(store.destination(A, &alerts.id).await.unwrap().unwrap().paused_at, None);
    assert!(!store.pause_destination(A, "missing", 40).await.unwrap());
}

pub(super) async fn no_outbound_query_of_one_account_returns_anothers_rows(store: Arc<dyn Store>) {
    let theirs = stored_destination(store.as_ref(), B, "ops").await;
    let their_rule = store.insert_rule(&new_rule(B, "b-rule")).await.unwrap();
    let their_deliveries = enqueue(store.as_ref(), &theirs, 2, 1_000).await;
    let their_delivery = &their_deliveries[0].id;
    let ours = stored_destination(store.as_ref(), A, "ours").await;
    store.insert_rule(&new_rule(A, "a-rule")).await.unwrap();

    assert_eq!(store.destination(A, &theirs.id).await.unwrap(), None);
    assert_eq!(store.destination_by_name(A, "ops").await.unwrap(), None);
    assert!(store.list_destinations(A).await.unwrap().iter().all(|d| d.account == A));
    let mut hijack = theirs.clone();
    hijack.account = A.into();
    hijack.name = "hijacked".into();
    assert_eq!(
        store.update_destination(&hijack).await.unwrap(),
        DestinationSave::NotFound
    );
    assert!(!store.pause_destination(A, &theirs.id, 1).await.unwrap());
    assert!(!store
        .record_circuit(A, &theirs.id, theirs.circuit(), open_at(1))
        .await
        .unwrap());
    assert_eq!(store.delete_destination(A, &theirs.id, 1).await.unwrap(), None);

    assert_eq!(store.rule(A, &their_rule.id).await.unwrap(), None);
    assert!(store.list_rules(A).await.unwrap().iter().all(|rule| rule.account == A));
    assert!(!store
        .update_rule(A, &their_rule.id, &json!({}), false, 1)
        .await
        .unwrap());
    assert!(!store.delete_rule(A, &their_rule.id).await.unwrap());
    let mine = store.list_rules(A).await.unwrap()[0].id.clone();
    assert_eq!(
        store.reorder_rules(A, &[mine, their_rule.id.clone()], 1).await.unwrap(),
        RuleOrder::NotAPermutation
    );

    let mut misdirected = delivery(&theirs, Some("misdirected"), 1_000);
    misdirected.account = A.into();
    assert_eq!(
        store.enqueue_deliveries(&[misdirected]).await.unwrap(),
        0,
        "A cannot queue a message for B's destination"
    );
    let mut same_key = delivery(&ours, their_deliveries[0].dedup_key.as_deref(), 1_000);
    same_key.account = A.into();
    assert_eq!(
        store.enqueue_deliveries(&[same_key]).await.unwrap(),
        1,
        "dedup keys are per account"
    );
    let listed = store.list_deliveries(A, &DeliveryQuery::default()).await.unwrap();
    assert_eq!(listed.deliveries.len(), 1);
    assert!(listed.deliveries.iter().all(|d| d.account == A));
    let by_their_destination = DeliveryQuery {
        destination_id: Some(theirs.id.clone()),
        ..DeliveryQuery::default()
    };
    assert!(store
        .list_deliveries(A, &by_their_destination)
        .await
        .unwrap()
        .deliveries
        .is_empty());
    assert_eq!(store.delivery(A, their_delivery).await.unwrap(), None);

    // B's delivery fails; A can neither see its attempts nor retry it.
    let claimed = claim(store.as_ref(), "worker", 2_000, 3_000, 10).await;
    let theirs_claimed = claimed.iter().find(|d| &d.id == their_delivery).unwrap();
    store
        .finish_delivery(
            theirs_claimed,
            &report(2_000, Some(500)),
            &DeliveryOutcome::Failed("HTTP 500".into()),
        )
        .await
        .unwrap();
    assert!(store.delivery_attempts(A, their_delivery).await.unwrap().is_empty());
    assert_eq!(store.delivery_attempts(B, their_delivery).await.unwrap().len(), 1);
    assert_eq!(
        store.retry_delivery(A, their_delivery, 4_000).await.unwrap(),
        DeliveryRetry::NotFound
    );
    assert_eq!(store.retry_failed_deliveries(A, &theirs.id, 4_000).await.unwrap(), 0);
    assert!(store
        .delivery_counts(A)
        .await
        .unwrap()
        .iter()
        .all(|c| c.destination_id == ours.id));
    assert_eq!(store.delete_finished_deliveries_before(A, i64::MAX).await.unwrap(), 0);
    assert_eq!(
        store.delivery(B, their_delivery).await.unwrap().unwrap().status,
        DeliveryStatus::Failed,
        "A's retention leaves B's deliveries alone"
    );
}

pub(super) async fn rules_apply_in_position_order_and_reorder_only_by_a_permutation(store: Arc<dyn Store>) {
    let mut created = Vec::new();
    for name in ["first", "second", "third"] {
        created.push(store.insert_rule(&new_rule(A, name)).await.unwrap());
    }
    assert_eq!(created.iter().map(|r| r.position).collect::<Vec<_>>(), [1, 2, 3]);
    let [first, second, third] = [0, 1, 2].map(|n| created[n].id.clone());
    let order = |rules: Vec<RuleRow>| rules.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        order(store.list_rules(A).await.unwrap()),
        [first.clone(), second.clone(), third.clone()]
    );

    let reordered = [third.clone(), first.clone(), second.clone()];
    assert_eq!(
        store.reorder_rules(A, &reordered, 2).await.unwrap(),
        RuleOrder::Reordered
    );
    assert_eq!(order(store.list_rules(A).await.unwrap()), reordered);
    for refused in [
        vec![first.clone(), second.clone()],
        vec![first.clone(), first.clone(), second.clone()],
        vec![first.clone(), second.clone(), third.clone(), "unknown".into()],
    ] {
        assert_eq!(
            store.reorder_rules(A, &refused, 3).await.unwrap(),
            RuleOrder::NotAPermutation
        );
    }
    assert_eq!(
        order(store.list_rules(A).await.unwrap()),
        reordered,
        "a refused order changes nothing"
    );

    let definition = json!({ "name": "first, renamed", "when": { "stage": "received" }, "actions": [] });
    assert!(store.update_rule(A, &first, &definition, false, 4).await.unwrap());
    let updated = store.rule(A, &first).await.unwrap().unwrap();
    assert_eq!(
        (updated.definition, updated.enabled, updated.updated_at),
        (definition, false, 4)
    );

    assert!(store.delete_rule(A, &first).await.unwrap());
    assert!(!store.delete_rule(A, &first).await.unwrap());
    let left = store.list_rules(A).await.unwrap();
    assert_eq!(
        left.iter().map(|r| (r.id.clone(), r.position)).collect::<Vec<_>>(),
        [(third, 1), (second, 2)],
        "the rules after a deleted one move up"
    );
    let appended = store.insert_rule(&new_rule(A, "fourth")).await.unwrap();
    assert_eq!(appended.position, 3, "a new rule goes last");
}

pub(super) async fn paused_destinations_and_open_circuits_hold_their_deliveries(store: Arc<dyn Store>) {
    let ops = stored_destination(store.as_ref(), A, "ops").await;
    let alerts = stored_destination(store.as_ref(), A, "alerts").await;
    let to_ops = ids_of(&enqueue(store.as_ref(), &ops, 2, 1_000).await);
    let to_alerts = ids_of(&enqueue(store.as_ref(), &alerts, 2, 1_000).await);

    store.pause_destination(A, &ops.id, 1_500).await.unwrap();
    let failing = Circuit {
        consecutive_failures: 4,
        opened_at: None,
    };
    assert!(store
        .record_circuit(A, &alerts.id, alerts.circuit(), failing)
        .await
        .unwrap());
    assert!(
        !store
            .record_circuit(A, &alerts.id, alerts.circuit(), open_at(1))
            .await
            .unwrap(),
        "a circuit changed since it was read is not overwritten"
    );
    assert!(store
        .record_circuit(A, &alerts.id, failing, open_at(2_000))
        .await
        .unwrap());
    let stored = store.destination(A, &alerts.id).await.unwrap().unwrap();
    assert_eq!(stored.circuit(), open_at(2_000));
    assert!(claim(store.as_ref(), "worker", 2_000 + COOL_DOWN_MS - 1, i64::MAX, 10)
        .await
        .is_empty());

    let probes = claim(store.as_ref(), "worker", 2_000 + COOL_DOWN_MS, i64::MAX, 10).await;
    assert_eq!(ids(&probes), to_alerts, "after the cool-down the circuit is half-open");
    store.resume_destination(A, &ops.id, 3_000).await.unwrap();
    let resumed = claim(store.as_ref(), "worker", 2_000 + COOL_DOWN_MS, i64::MAX, 10).await;
    assert_eq!(ids(&resumed), to_ops);

    let closed = Circuit {
        consecutive_failures: 0,
        opened_at: None,
    };
    assert!(store
        .record_circuit(A, &alerts.id, open_at(2_000), closed)
        .await
        .unwrap());
    assert_eq!(
        store.destination(A, &alerts.id).await.unwrap().unwrap().circuit(),
        closed
    );
    assert!(!store.record_circuit(A, "missing", closed, closed).await.unwrap());
}

pub(super) async fn destination_secrets_are_resealed_with_every_other_secret(store: Arc<dyn Store>) {
    let ops = stored_destination(store.as_ref(), A, "ops").await;
    let mut unsealed = destination(A, "no-secrets");
    unsealed.sealed_secrets = None;
    store.insert_destination(&unsealed).await.unwrap();
    let context = store::destination_secrets_context(&ops.id);
    assert_eq!(context, format!("destinations:{}:secrets", ops.id));
    let sealed = store.sealed_values().await.unwrap();
    let found: Vec<_> = sealed
        .iter()
        .filter(|value| value.context.starts_with("destinations:"))
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].context.as_str(), found[0].sealed.as_str()),
        (context.as_str(), "v1.sealed-ops")
    );
    store
        .replace_sealed_values(&[SealedValue {
            context,
            sealed: "v1.resealed".into(),
        }])
        .await
        .unwrap();
    let resealed = store.destination(A, &ops.id).await.unwrap().unwrap();
    assert_eq!(resealed.sealed_secrets.as_deref(), Some("v1.resealed"));
}
