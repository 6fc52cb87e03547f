//! Alerts (`Alerts`) on both engines: defaults created once per kind, a step applied only to the version it was
//! computed from (two nodes never both record a transition), its history and messages stored with it, and the
//! nodes' signals.

use serde_json::json;
use server::store::alerts::{AlertStanding, AlertStep, NewAlert, NewHistoryLine};
use server::store::outbound::{DestinationKind, DestinationRow, NewDelivery};
use server::store::Store;
use std::sync::Arc;

fn new_alert(account: &str, kind: &str) -> NewAlert {
    NewAlert {
        id: uuid::Uuid::now_v7().to_string(),
        account: account.into(),
        kind: kind.into(),
        settings: json!({"window_minutes": 5}),
        renotify_minutes: 60,
        created_at: 1,
    }
}

fn firing_step(account: &str, id: &str, version: i64, deliveries: Vec<NewDelivery>, now: i64) -> AlertStep {
    AlertStep {
        account: account.into(),
        id: id.into(),
        kind: "failure_rate".into(),
        version,
        standing: AlertStanding {
            state: "firing",
            summary: Some("100% of 20 processing attempts failed".into()),
            firing_since: Some(now),
            last_notified_at: Some(now),
            acknowledged_at: None,
            acknowledged_by: None,
            silenced_until: None,
        },
        history: Some(NewHistoryLine {
            transition: "fired",
            summary: "100% of 20 processing attempts failed".into(),
            notified: true,
            actor: None,
        }),
        deliveries,
        now,
    }
}

pub async fn alerts_are_created_once_per_kind_and_account(store: Arc<dyn Store>) {
    store
        .ensure_alerts(&[new_alert("alpha", "failure_rate"), new_alert("alpha", "silence")])
        .await
        .unwrap();
    let first = store.list_alerts("alpha").await.unwrap();
    store
        .ensure_alerts(&[new_alert("alpha", "failure_rate"), new_alert("bravo", "failure_rate")])
        .await
        .unwrap();
    let again = store.list_alerts("alpha").await.unwrap();
    assert_eq!(first, again, "an account's existing alerts are left as they are");
    assert_eq!(
        again.iter().map(|alert| alert.kind.as_str()).collect::<Vec<_>>(),
        ["failure_rate", "silence"]
    );
    assert_eq!(again[0].state, "ok");
    assert!(again[0].enabled);
    assert_eq!(again[0].destination_ids, json!([]));
    assert_eq!(store.list_alerts("bravo").await.unwrap().len(), 1);
    assert_eq!(
        store.alert("bravo", &again[0].id).await.unwrap(),
        None,
        "another account's alert is not found"
    );
}

pub async fn a_step_applies_once_to_the_version_it_was_computed_from_with_its_history_and_messages(
    store: Arc<dyn Store>,
) {
    store
        .ensure_alerts(&[new_alert("alpha", "failure_rate")])
        .await
        .unwrap();
    let alert = store.list_alerts("alpha").await.unwrap().remove(0);
    let destination = DestinationRow {
        id: uuid::Uuid::now_v7().to_string(),
        account: "alpha".into(),
        name: "ops".into(),
        kind: DestinationKind::Slack,
        settings: json!({}),
        sealed_secrets: None,
        paused_at: None,
        consecutive_failures: 0,
        circuit_opened_at: None,
        created_at: 1,
        updated_at: 1,
    };
    store.insert_destination(&destination).await.unwrap();
    let message = |dedup: &str| NewDelivery {
        id: uuid::Uuid::now_v7().to_string(),
        account: "alpha".into(),
        destination_id: destination.id.clone(),
        event_id: None,
        rule_id: None,
        rule_name: Some("alert: Failure rate".into()),
        dedup_key: Some(dedup.into()),
        message: json!({"rendered": {"text": "Firing"}}),
        created_at: 10,
        next_attempt_at: 10,
        failed: None,
    };
    // Two nodes read the alert at the same version; the first step applies, the second finds it moved on.
    let first = firing_step("alpha", &alert.id, alert.version, vec![message("node-a")], 10);
    let second = firing_step("alpha", &alert.id, alert.version, vec![message("node-b")], 11);
    assert!(store.apply_alert_step(&first).await.unwrap());
    assert!(!store.apply_alert_step(&second).await.unwrap());

    let stepped = store.alert("alpha", &alert.id).await.unwrap().unwrap();
    assert_eq!(stepped.state, "firing");
    assert_eq!(stepped.firing_since, Some(10));
    assert_eq!(stepped.version, alert.version + 1);
    let history = store.alert_history("alpha", None, 10).await.unwrap();
    assert_eq!(history.len(), 1, "one line for the one transition");
    assert_eq!(
        (history[0].transition.as_str(), history[0].notified, history[0].at),
        ("fired", true, 10)
    );
    assert!(store.alert_history("bravo", None, 10).await.unwrap().is_empty());
    let sent = store
        .list_deliveries("alpha", &Default::default())
        .await
        .unwrap()
        .deliveries;
    assert_eq!(sent.len(), 1, "only the applied step's message is queued");
    assert_eq!(sent[0].dedup_key.as_deref(), Some("node-a"));

    assert_eq!(store.delete_alert_history_before(11).await.unwrap(), 1);
    assert!(store.alert_history("alpha", None, 10).await.unwrap().is_empty());
}

pub async fn node_signals_are_raised_refreshed_and_cleared_per_node(store: Arc<dyn Store>) {
    store
        .raise_node_signal("node-a", "relay_down", "refused", 100, 100)
        .await
        .unwrap();
    store
        .raise_node_signal("node-a", "relay_down", "timed out", 150, 200)
        .await
        .unwrap();
    store
        .raise_node_signal("node-b", "relay_down", "refused", 120, 120)
        .await
        .unwrap();
    let fresh = store.node_signals("relay_down", 150).await.unwrap();
    assert_eq!(fresh.len(), 1, "node-b's signal went stale: {fresh:?}");
    assert_eq!(
        (fresh[0].node.as_str(), fresh[0].since, fresh[0].detail.as_str()),
        ("node-a", 100, "timed out")
    );
    store.clear_node_signal("node-a", "relay_down").await.unwrap();
    assert!(store
        .node_signals("relay_down", 0)
        .await
        .unwrap()
        .iter()
        .all(|signal| signal.node == "node-b"));
}

conformance!(
    alerts_are_created_once_per_kind_and_account,
    a_step_applies_once_to_the_version_it_was_computed_from_with_its_history_and_messages,
    node_signals_are_raised_refreshed_and_cleared_per_node,
);
