//! Realtime topics are per account: clients of two accounts join the same topic names and each receives only
//! its own account's updates; a token of one account cannot move a channel to another.

use serde_json::json;
use server::realtime::Role;
use server::updates::PipelineUpdate;

use crate::common::realtime_client::{account_token, broadcasts, job_update, reason, spawn_relay, RelayApp};
use crate::under_both_serializers;

under_both_serializers!(
    clients_of_two_accounts_on_the_same_topic_each_receive_only_their_accounts_updates,
    a_refreshed_token_of_another_account_closes_the_channel,
    a_viewer_token_joins_its_accounts_topics_but_cannot_broadcast,
);

/// A job update of `account`, told apart by `status`.
fn update_of(relay: &RelayApp, account: &str, status: &str) {
    let PipelineUpdate::Record(mut record) = job_update("job-1", "co-1", status) else {
        unreachable!("a job update is a record update")
    };
    record.account = account.into();
    relay
        .updates
        .send(PipelineUpdate::Record(record))
        .expect("the relay listens");
}

async fn clients_of_two_accounts_on_the_same_topic_each_receive_only_their_accounts_updates(vsn: &str) {
    let relay = spawn_relay().await;
    let mut alpha = relay.client(vsn).await;
    alpha
        .join_ok("realtime:jobs", Some(&account_token("alpha", Role::Admin, None, 3600)))
        .await;
    let mut bravo = relay.client(vsn).await;
    bravo
        .join_ok("realtime:jobs", Some(&account_token("bravo", Role::Admin, None, 3600)))
        .await;
    let mut bravo_portal = relay.client(vsn).await;
    bravo_portal
        .join_ok(
            "realtime:company:co-1",
            Some(&account_token("bravo", Role::Portal, Some("co-1"), 3600)),
        )
        .await;

    // Updates go out in order: had alpha's reached bravo, bravo's first broadcast would be alpha's.
    update_of(&relay, "alpha", "Alpha");
    update_of(&relay, "bravo", "Bravo");

    let seen = broadcasts(&mut alpha, 1).await;
    assert_eq!(
        (seen[0].0.as_str(), seen[0].2["changes"]["status"].clone()),
        ("realtime:jobs", json!("Alpha"))
    );
    let seen = broadcasts(&mut bravo, 1).await;
    assert_eq!(
        (seen[0].0.as_str(), seen[0].2["changes"]["status"].clone()),
        ("realtime:jobs", json!("Bravo")),
        "the client's topic name, and only its account's update"
    );
    let seen = broadcasts(&mut bravo_portal, 1).await;
    assert_eq!(seen[0].2["changes"]["status"], "Bravo");
    assert_eq!(seen[0].2["offset"], 1, "each account's topic has its own offsets");
}

async fn a_refreshed_token_of_another_account_closes_the_channel(vsn: &str) {
    let relay = spawn_relay().await;
    let mut client = relay.client(vsn).await;
    let join_ref = client
        .join_ok("realtime:jobs", Some(&account_token("alpha", Role::Admin, None, 3600)))
        .await;
    client
        .push(
            Some(&join_ref),
            None,
            "realtime:jobs",
            "access_token",
            json!({ "access_token": account_token("bravo", Role::Admin, None, 3600) }),
        )
        .await;
    let system = client
        .receive_where(|r| matches!(r, crate::common::realtime_client::Received::Text(f) if f.event == "system"))
        .await
        .text();
    assert_eq!(system.payload["status"], "error");
    assert!(system.payload["message"].as_str().unwrap().contains("another account"));
}

async fn a_viewer_token_joins_its_accounts_topics_but_cannot_broadcast(vsn: &str) {
    let relay = spawn_relay().await;
    let mut viewer = relay.client(vsn).await;
    let token = account_token("alpha", Role::Viewer, None, 3600);
    let (join_ref, reply) = viewer
        .join(
            "realtime:jobs",
            json!({ "access_token": token, "config": { "broadcast": { "ack": true } } }),
        )
        .await;
    assert_eq!(reply.payload["status"], "ok");
    let push_ref = viewer.make_ref();
    viewer
        .push(
            Some(&join_ref),
            Some(&push_ref),
            "realtime:jobs",
            "broadcast",
            json!({ "type": "broadcast", "event": "fake", "payload": {} }),
        )
        .await;
    let refused = viewer
        .receive_where(|r| matches!(r, crate::common::realtime_client::Received::Text(f) if f.event == "phx_reply"))
        .await
        .text();
    assert!(reason(&refused).contains("viewer"), "{refused:?}");
}
