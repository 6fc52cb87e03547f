//! The session state machine, driven frame by frame and clock tick by clock tick.

use serde_json::json;

use super::*;

fn sent(outputs: &[Output]) -> Vec<&Frame> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send(frame) => Some(frame),
            _ => None,
        })
        .collect()
}

fn reply(join: &Frame, status: &str) -> Frame {
    let payload = match status {
        "ok" => json!({"status": "ok", "response": {}}),
        _ => json!({"status": "error", "response": {"reason": status}}),
    };
    Frame::new(
        join.join_ref.clone(),
        join.msg_ref.clone(),
        &join.topic,
        "phx_reply",
        payload,
    )
}

fn webhook(topic: &str, event_id: &str, offset: i64) -> Frame {
    let payload = json!({"type": "broadcast", "event": "webhook_update", "payload": {
        "type": "job_update", "object_uuid": "j1", "event_type": "updated", "changes": {"status": "Done"},
        "company_uuid": "c1", "job_uuid": "j1", "event_id": event_id, "offset": offset}});
    Frame::new(None, None, topic, "broadcast", payload)
}

/// A session on `topics` whose joins all succeeded at time 0.
fn joined(topics: &[&str]) -> Session {
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    let mut session = Session::new(&topics);
    for join in sent(&session.open("t1", 0)).into_iter().cloned().collect::<Vec<_>>() {
        session.receive(reply(&join, "ok"), 0, 0.5);
    }
    assert!(session.is_live());
    session
}

#[test]
fn backoff_doubles_from_one_second_to_thirty_with_jitter() {
    assert_eq!(backoff_ms(0, 0.5), 1_000);
    assert_eq!(backoff_ms(1, 0.5), 2_000);
    assert_eq!(backoff_ms(4, 0.5), 16_000);
    assert_eq!(backoff_ms(5, 0.5), 30_000);
    assert_eq!(backoff_ms(60, 0.5), 30_000);
    assert_eq!(backoff_ms(0, 0.0), 750);
    assert_eq!(backoff_ms(0, 1.0), 1_250);
    assert_eq!(backoff_ms(9, 1.0), 30_000);
}

#[test]
fn opening_joins_every_topic_and_is_live_once_all_replied_ok() {
    let topics = vec!["realtime:company:c1".to_owned(), "realtime:job:j1".to_owned()];
    let mut session = Session::new(&topics);
    let out = session.open("jwt", 0);
    let joins = sent(&out);
    assert_eq!(joins.len(), 2);
    assert!(joins
        .iter()
        .all(|join| join.event == "phx_join" && join.payload["access_token"] == "jwt"));
    assert_ne!(joins[0].join_ref, joins[1].join_ref);
    let joins: Vec<Frame> = joins.into_iter().cloned().collect();
    session.receive(reply(&joins[0], "ok"), 10, 0.5);
    assert!(!session.is_live());
    session.receive(reply(&joins[1], "ok"), 10, 0.5);
    assert!(session.is_live());
}

#[test]
fn a_refused_join_is_retried_with_backoff() {
    let mut session = Session::new(&["realtime:company:c2".to_owned()]);
    let join = sent(&session.open("jwt", 0))[0].clone();
    session.receive(
        reply(&join, "Unauthorized: this portal token cannot join company:c2"),
        100,
        0.5,
    );
    assert!(!session.is_live());
    assert_eq!(
        session.refusals().next().map(|(topic, _)| topic),
        Some("realtime:company:c2")
    );
    assert_eq!(session.next_deadline(), 1_100);
    assert!(sent(&session.tick(1_000, 0.5).unwrap()).is_empty());
    let again = sent(&session.tick(1_100, 0.5).unwrap())[0].clone();
    assert_eq!(again.event, "phx_join");
    session.receive(reply(&again, "refused"), 1_200, 0.5);
    assert_eq!(session.next_deadline(), 3_200, "the second retry waits twice as long");
}

#[test]
fn heartbeats_go_out_every_25_seconds_and_a_missed_reply_kills_the_connection() {
    let mut session = joined(&["realtime:jobs"]);
    assert_eq!(session.next_deadline(), HEARTBEAT_INTERVAL_MS);
    let out = session.tick(HEARTBEAT_INTERVAL_MS, 0.5).unwrap();
    let heartbeat = sent(&out)[0].clone();
    assert_eq!(
        (heartbeat.topic.as_str(), heartbeat.event.as_str()),
        ("phoenix", "heartbeat")
    );
    let answer = Frame::new(
        None,
        heartbeat.msg_ref.clone(),
        "phoenix",
        "phx_reply",
        json!({"status": "ok"}),
    );
    session.receive(answer, HEARTBEAT_INTERVAL_MS + 5, 0.5);
    assert!(session.tick(2 * HEARTBEAT_INTERVAL_MS, 0.5).is_ok());
    assert_eq!(session.tick(3 * HEARTBEAT_INTERVAL_MS, 0.5), Err(ConnectionDead));
}

#[test]
fn updates_advance_the_offset_and_a_rejoin_resumes_after_it() {
    let mut session = joined(&["realtime:jobs"]);
    let out = session.receive(webhook("realtime:jobs", "e1", 7), 5, 0.5);
    assert!(matches!(&out[..], [Output::Update(update)] if update.offset == Some(7)));
    session.receive(webhook("realtime:jobs", "e2", 9), 6, 0.5);
    session.disconnected();
    assert!(!session.is_live());
    let rejoin = sent(&session.open("t2", 1_000))[0].clone();
    assert_eq!(rejoin.payload["config"]["resume"]["offset"], 9);
    assert_eq!(rejoin.payload["access_token"], "t2");
}

#[test]
fn a_rejoin_with_nothing_to_resume_from_asks_for_a_refetch_and_the_first_join_does_not() {
    let mut session = joined(&["realtime:jobs"]);
    session.disconnected();
    let rejoin = sent(&session.open("t1", 1_000))[0].clone();
    assert!(rejoin.payload["config"].get("resume").is_none());
    assert_eq!(session.receive(reply(&rejoin, "ok"), 1_001, 0.5), vec![Output::Refetch]);
}

#[test]
fn the_relays_refetch_message_is_passed_on_and_moves_the_offset() {
    let mut session = joined(&["realtime:jobs"]);
    let refetch = Frame::new(
        None,
        None,
        "realtime:jobs",
        "system",
        json!({"status": "ok", "message": "refetch", "offset": 57, "extension": "system"}),
    );
    assert_eq!(session.receive(refetch, 1, 0.5), vec![Output::Refetch]);
    session.disconnected();
    let rejoin = sent(&session.open("t1", 2))[0].clone();
    assert_eq!(rejoin.payload["config"]["resume"]["offset"], 57);
}

#[test]
fn the_same_change_on_two_topics_is_delivered_once() {
    let mut session = joined(&["realtime:company:c1", "realtime:job:j1"]);
    assert_eq!(
        session.receive(webhook("realtime:company:c1", "e1", 3), 1, 0.5).len(),
        1
    );
    assert!(session.receive(webhook("realtime:job:j1", "e1", 8), 1, 0.5).is_empty());
    assert_eq!(session.receive(webhook("realtime:job:j1", "e2", 9), 1, 0.5).len(), 1);
}

#[test]
fn frames_of_an_earlier_join_are_dropped() {
    let mut session = joined(&["realtime:jobs"]);
    let stale = Frame::new(
        Some("999".into()),
        Some("999".into()),
        "realtime:jobs",
        "phx_close",
        json!({}),
    );
    session.receive(stale, 1, 0.5);
    assert!(session.is_live());
}

#[test]
fn an_expired_token_closes_the_channel_and_the_rejoin_waits_for_a_new_token() {
    let mut session = joined(&["realtime:jobs"]);
    let error = Frame::new(
        None,
        None,
        "realtime:jobs",
        "system",
        json!({"extension": "system", "status": "error", "message": "Token has expired"}),
    );
    session.receive(error, 10, 0.5);
    let close = Frame::new(
        Some("1".into()),
        Some("1".into()),
        "realtime:jobs",
        "phx_close",
        json!({}),
    );
    session.receive(close, 10, 0.5);
    assert!(!session.is_live());
    assert!(session.wants_token());
    assert_eq!(
        session.next_deadline(),
        HEARTBEAT_INTERVAL_MS,
        "nothing to do but heartbeat until then"
    );
    assert!(
        sent(&session.tick(5_000, 0.5).unwrap()).is_empty(),
        "no rejoin with the expired token"
    );
    assert!(
        session.set_token("fresh").is_empty(),
        "no channel is joined to hand the token to"
    );
    let rejoin = sent(&session.tick(5_001, 0.5).unwrap())[0].clone();
    assert_eq!(rejoin.payload["access_token"], "fresh");
}

#[test]
fn a_fresh_token_is_handed_to_each_joined_channel_and_leaving_names_each_join() {
    let mut session = joined(&["realtime:jobs", "realtime:staff"]);
    let out = session.set_token("fresh");
    let refreshes = sent(&out);
    assert_eq!(refreshes.len(), 2);
    assert!(refreshes
        .iter()
        .all(|frame| frame.event == "access_token" && frame.payload["access_token"] == "fresh"));
    let leaves = session.leave_all();
    assert_eq!(leaves.len(), 2);
    assert!(leaves
        .iter()
        .all(|frame| frame.event == "phx_leave" && frame.join_ref.is_some()));
}

#[test]
fn a_join_without_reply_is_tried_again() {
    let mut session = Session::new(&["realtime:jobs".to_owned()]);
    session.open("t", 0);
    assert_eq!(session.next_deadline(), JOIN_TIMEOUT_MS);
    assert!(sent(&session.tick(JOIN_TIMEOUT_MS, 0.5).unwrap()).is_empty());
    let again = session.tick(JOIN_TIMEOUT_MS + 1_000, 0.5).unwrap();
    assert_eq!(sent(&again)[0].event, "phx_join");
}
