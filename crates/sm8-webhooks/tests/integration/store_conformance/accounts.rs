//! Two accounts in one store: no query of one returns the other's rows, and the directory (accounts, users,
//! memberships, tokens, invitations, sessions, OAuth states, the audit log) keeps what it is given.

use std::sync::Arc;

use app::model::{EventQuery, EventStatus};
use server::store::directory::{
    AccountRow, ApiTokenRow, AuditQuery, InviteRow, NewAuditEntry, OAuthStateRow, SealedValue, UserRow,
};
use server::store::{now_millis, object_spec, BudgetLimits, CompanyOf, MirrorRecord, Store};

use crate::common::queued_event;

const A: &str = "alpha";
const B: &str = "bravo";

fn event_of(account: &str, uuid: &str, key: &str) -> server::store::NewEvent {
    let mut event = queued_event("job", uuid, 1_000);
    event.account = account.into();
    event.dedup_key = key.into();
    event
}

fn job(account: &str, uuid: &str, company: &str) -> MirrorRecord {
    let record = serde_json::json!({"uuid": uuid, "company_uuid": company, "status": "Quote",
        "edit_date": "2024-01-01 00:00:00", "active": 1});
    MirrorRecord::from_record(account, object_spec("job").unwrap(), record).unwrap()
}

pub async fn no_query_of_one_account_returns_anothers_rows(store: Arc<dyn Store>) {
    // The same dedup key in two accounts is two events: deduplication is per account.
    let a = event_of(A, "job-a", "same-key");
    let b = event_of(B, "job-b", "same-key");
    let inserted = store.insert_events(&[a.clone(), b.clone()]).await.unwrap();
    assert!(inserted
        .iter()
        .all(|i| matches!(i, server::store::Insertion::Stored(_))));
    let again = store.insert_events(std::slice::from_ref(&a)).await.unwrap();
    assert!(matches!(again[0], server::store::Insertion::Duplicate(id) if id == a.id));

    assert_eq!(store.stats(A).await.unwrap().total, 1);
    assert_eq!(store.stats(B).await.unwrap().total, 1);
    let listed = store.list_events(A, &EventQuery::default()).await.unwrap();
    assert_eq!(listed.events.len(), 1);
    assert_eq!(listed.events[0].object_uuid, "job-a");
    let search_b_in_a = EventQuery {
        search: Some(b.id.to_string()),
        ..EventQuery::default()
    };
    assert!(store.list_events(A, &search_b_in_a).await.unwrap().events.is_empty());
    assert!(store.event_record(A, &b.id.to_string()).await.unwrap().is_none());
    assert!(store.event_record(B, &b.id.to_string()).await.unwrap().is_some());
    assert_eq!(
        store.retry_event(A, &b.id.to_string(), now_millis()).await.unwrap(),
        server::store::RetryOutcome::NotFound,
        "account A cannot touch B's event"
    );
    let limits = BudgetLimits {
        per_minute: 10,
        per_day: 100,
    };
    assert_eq!(
        store
            .pipeline_health(A, now_millis(), limits)
            .await
            .unwrap()
            .queue_depth,
        1
    );

    // Mirrored records: the same uuid in two accounts is two rows.
    store.upsert_mirror(&job(A, "shared-job", "co-a"), 1).await.unwrap();
    store.upsert_mirror(&job(B, "shared-job", "co-b"), 1).await.unwrap();
    assert_eq!(
        store.job_company(A, "shared-job").await.unwrap().as_deref(),
        Some("co-a")
    );
    assert_eq!(
        store.job_company(B, "shared-job").await.unwrap().as_deref(),
        Some("co-b")
    );
    assert_eq!(store.company_jobs(A, "co-b").await.unwrap().len(), 0);
    assert_eq!(store.company_jobs(B, "co-b").await.unwrap().len(), 1);
    assert!(store.mirror_record(A, "job", "missing").await.unwrap().is_none());

    // Watermarks and budgets.
    store
        .set_sync_watermark(A, "job", "2024-02-01 00:00:00", 1)
        .await
        .unwrap();
    assert_eq!(store.sync_watermark(B, "job").await.unwrap(), None);
    let tight = BudgetLimits {
        per_minute: 1,
        per_day: 100,
    };
    let now = now_millis();
    assert_eq!(
        store.take_api_budget(A, now, tight).await.unwrap(),
        server::store::BudgetGrant::Granted
    );
    assert!(matches!(
        store.take_api_budget(A, now, tight).await.unwrap(),
        server::store::BudgetGrant::Exhausted { .. }
    ));
    assert_eq!(
        store.take_api_budget(B, now, tight).await.unwrap(),
        server::store::BudgetGrant::Granted,
        "each account has its own budget"
    );
    store.pause_api_budget(A, now + 60_000).await.unwrap();
    let roomy = BudgetLimits {
        per_minute: 100,
        per_day: 100,
    };
    assert_eq!(
        store.take_api_budget(B, now, roomy).await.unwrap(),
        server::store::BudgetGrant::Granted,
        "a pause of A does not hold B"
    );

    // Portal links open a company of their own account.
    let company = CompanyOf {
        account: B.into(),
        company_uuid: "co-b".into(),
    };
    store
        .create_portal_link("link-b", &company, now + 60_000)
        .await
        .unwrap();
    assert_eq!(store.redeem_portal_link("link-b", now).await.unwrap(), Some(company));

    // Retention and retries of one account leave the other's alone.
    store.retry_failed_events(A, now, false).await.unwrap();
    assert_eq!(store.delete_finished_events_before(A, i64::MAX).await.unwrap(), 0);
    assert_eq!(store.stats(B).await.unwrap().count(EventStatus::Queued), 1);
}

fn account_row(slug: &str) -> AccountRow {
    AccountRow {
        slug: slug.into(),
        name: format!("{slug} Ltd"),
        servicem8_account_uuid: Some(format!("sm8-{slug}")),
        disabled_at: None,
        credential_kind: "api_key".into(),
        sealed_secrets: Some(format!("v1.sealed-{slug}")),
        oauth_scopes: None,
        oauth_expires_at: None,
        oauth_error: None,
        requests_per_minute: 180,
        requests_per_day: 20_000,
        sync_interval_seconds: 3_600,
        retention_days: 30,
        created_at: 1,
        updated_at: 1,
    }
}

pub async fn accounts_are_stored_updated_and_versioned(store: Arc<dyn Store>) {
    let before = store.accounts_version().await.unwrap();
    assert!(store.insert_account(&account_row(A)).await.unwrap());
    assert!(
        !store.insert_account(&account_row(A)).await.unwrap(),
        "a slug is taken once"
    );
    let mut changed = account_row(A);
    changed.name = "Alpha Plumbing".into();
    changed.disabled_at = Some(5);
    changed.updated_at = 2;
    assert!(store.update_account(&changed).await.unwrap());
    assert!(!store.update_account(&account_row("missing")).await.unwrap());
    assert_eq!(store.account(A).await.unwrap(), Some(changed));
    assert_ne!(store.accounts_version().await.unwrap(), before);
    store.insert_account(&account_row(B)).await.unwrap();
    let slugs: Vec<String> = store
        .list_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.slug)
        .collect();
    assert!(slugs.contains(&A.to_owned()) && slugs.contains(&B.to_owned()));
    let sealed = store.sealed_values().await.unwrap();
    assert!(sealed.iter().any(|value| value.context == "accounts:alpha:secrets"));
    store
        .replace_sealed_values(&[SealedValue {
            context: "accounts:alpha:secrets".into(),
            sealed: "v1.resealed".into(),
        }])
        .await
        .unwrap();
    assert_eq!(
        store.account(A).await.unwrap().unwrap().sealed_secrets.as_deref(),
        Some("v1.resealed")
    );
}

fn user(email: &str) -> UserRow {
    UserRow {
        id: uuid::Uuid::now_v7().to_string(),
        email: email.into(),
        password_hash: Some("$argon2id$stored".into()),
        instance_owner: 0,
        created_at: 1,
        updated_at: 1,
    }
}

pub async fn users_hold_roles_tokens_and_sessions_and_leave_nothing_behind(store: Arc<dyn Store>) {
    let ann = user("ann@example.test");
    assert!(store.insert_user(&ann).await.unwrap());
    assert!(
        !store.insert_user(&user("ANN@example.test")).await.unwrap(),
        "emails are unique, any case"
    );
    assert_eq!(
        store.user_by_email("Ann@Example.test").await.unwrap().unwrap().id,
        ann.id
    );
    assert_eq!(store.count_users().await.unwrap(), 1);
    store.set_membership(&ann.id, A, "viewer", 1).await.unwrap();
    store.set_membership(&ann.id, A, "admin", 2).await.unwrap();
    store.set_membership(&ann.id, B, "owner", 2).await.unwrap();
    let roles: Vec<(String, String)> = store
        .memberships_of(&ann.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.account, m.role))
        .collect();
    assert_eq!(roles, [(A.into(), "admin".into()), (B.into(), "owner".into())]);
    assert_eq!(store.members(A).await.unwrap()[0].email, "ann@example.test");

    let now = now_millis();
    let token = ApiTokenRow {
        id: "tok-1".into(),
        token_hash: "hash-1".into(),
        user_id: ann.id.clone(),
        user_email: String::new(),
        account: A.into(),
        role: "viewer".into(),
        name: "ci".into(),
        created_at: now,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_api_token(&token).await.unwrap();
    let found = store.api_token_by_hash("hash-1").await.unwrap().unwrap();
    assert_eq!(
        (found.user_email.as_str(), found.account.as_str()),
        ("ann@example.test", A)
    );
    store.touch_api_token("tok-1", now).await.unwrap();
    assert!(store.revoke_api_token("tok-1", now).await.unwrap());
    assert!(!store.revoke_api_token("tok-1", now).await.unwrap(), "revoked once");
    assert!(store
        .api_token_by_hash("hash-1")
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());

    store.create_session("live", &ann.id, now + 60_000).await.unwrap();
    store.create_session("expired", &ann.id, now - 1).await.unwrap();
    assert_eq!(
        store.session_user("live", now).await.unwrap().as_deref(),
        Some(ann.id.as_str())
    );
    assert_eq!(store.session_user("expired", now).await.unwrap(), None);
    assert!(store.set_password(&ann.id, "$argon2id$new", now).await.unwrap());
    assert_eq!(
        store.session_user("live", now).await.unwrap(),
        None,
        "a new password ends sessions"
    );

    assert!(store.remove_membership(&ann.id, B).await.unwrap());
    assert_eq!(store.memberships_of(&ann.id).await.unwrap().len(), 1);
    assert!(store.delete_user(&ann.id).await.unwrap());
    assert!(store.members(A).await.unwrap().is_empty());
    assert!(store.list_api_tokens(None).await.unwrap().is_empty());
}

pub async fn invitations_and_oauth_states_are_used_once_before_they_expire(store: Arc<dyn Store>) {
    let now = now_millis();
    let invite = |hash: &str, expires_at| InviteRow {
        token_hash: hash.into(),
        account: Some(A.into()),
        role: "admin".into(),
        email: Some("bob@example.test".into()),
        created_by: None,
        created_at: now,
        expires_at,
        used_at: None,
    };
    store.insert_invite(&invite("fresh", now + 60_000)).await.unwrap();
    store.insert_invite(&invite("stale", now - 1)).await.unwrap();
    assert!(
        store.invite("fresh", now).await.unwrap().is_some(),
        "looking does not use it up"
    );
    assert_eq!(store.redeem_invite("fresh", now).await.unwrap().unwrap().role, "admin");
    assert_eq!(store.redeem_invite("fresh", now).await.unwrap(), None);
    assert_eq!(store.redeem_invite("stale", now).await.unwrap(), None);
    assert_eq!(store.invite("fresh", now).await.unwrap(), None);

    let state = OAuthStateRow {
        state_hash: "state".into(),
        account: B.into(),
        user_id: None,
        scopes: "read_jobs".into(),
        created_at: now,
        expires_at: now + 60_000,
    };
    store.insert_oauth_state(&state).await.unwrap();
    assert_eq!(store.take_oauth_state("state", now).await.unwrap(), Some(state));
    assert_eq!(
        store.take_oauth_state("state", now).await.unwrap(),
        None,
        "a state is used once"
    );
}

pub async fn the_audit_log_pages_newest_first_by_account_and_filter(store: Arc<dyn Store>) {
    for n in 0..5 {
        let entry = NewAuditEntry {
            at: 1_000 + n,
            account: Some(if n % 2 == 0 { A } else { B }.into()),
            actor_kind: "user".into(),
            actor: Some(format!("user{n}@example.test")),
            action: if n < 3 { "retry_event" } else { "cleanup" }.into(),
            target: Some(format!("target-{n}")),
            outcome: if n == 4 { "denied" } else { "success" }.into(),
            client_address: Some("127.0.0.1".into()),
            detail: Some(serde_json::json!({ "n": n })),
        };
        store.record_audit(&entry).await.unwrap();
    }
    let of_a = store
        .audit_page(&AuditQuery {
            account: Some(A.into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let targets: Vec<&str> = of_a.iter().filter_map(|line| line.target.as_deref()).collect();
    assert_eq!(targets, ["target-4", "target-2", "target-0"], "newest first, only A's");
    let page = store
        .audit_page(&AuditQuery {
            account: Some(A.into()),
            limit: 1,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 2, "one more than the limit says another page follows");
    let next = store
        .audit_page(&AuditQuery {
            account: Some(A.into()),
            before_id: Some(page[0].id),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(next[0].target.as_deref(), Some("target-2"));
    let denied = store
        .audit_page(&AuditQuery {
            outcome: Some("denied".into()),
            actor: Some("USER4".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].detail, Some(serde_json::json!({ "n": 4 })));

    // A line of no account (a sign-in) shows beside an account's lines only when asked for.
    store
        .record_audit(&NewAuditEntry {
            at: 1_010,
            account: None,
            actor_kind: "user".into(),
            actor: Some("owner@example.test".into()),
            action: "sign_in".into(),
            target: Some("owner@example.test".into()),
            outcome: "success".into(),
            client_address: None,
            detail: None,
        })
        .await
        .unwrap();
    let with_instance = store
        .audit_page(&AuditQuery {
            account: Some(A.into()),
            with_instance_lines: true,
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = with_instance.iter().map(|line| line.action.as_str()).collect();
    assert_eq!(actions, ["sign_in", "cleanup", "retry_event", "retry_event"]);
    let only_a = store
        .audit_page(&AuditQuery {
            account: Some(A.into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(only_a.len(), 3);
    assert_eq!(store.delete_audit_before(1_002).await.unwrap(), 2);
}
