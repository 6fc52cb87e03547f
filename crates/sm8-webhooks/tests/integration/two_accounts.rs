//! Two accounts in one server, side by side, each against its own simulated ServiceM8 account. As with the real
//! ServiceM8, both simulated accounts sit behind the one `SERVICEM8_BASE_URL` (a `MockFront`) and are told apart
//! by their API keys. Each server account receives at its own URL, is processed with its own key and budget, and
//! mirrors only its own records; add-on callbacks on the shared endpoint go to the account their JWT names.

use std::collections::BTreeSet;
use std::sync::Arc;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use server::ingest::signature::sign;
use server::secret::Secret;
use server::store::{self, Store};
use servicem8_mock::{self as mock, MockConfig, MockFront, MockHandle, ObjectKind};

use crate::common::{eventually, serve_args, spawn_app_with, TestApp, ADMIN_TOKEN, WEBHOOK_SECRET};

const ACME: &str = "acme";
const DEFAULT: &str = crate::common::ACCOUNT;
const APP_SECRET: &str = "shared-add-on-app-secret";

/// One server whose accounts `default` and `acme` each reach their own simulated account through one front.
struct TwoAccounts {
    app: TestApp,
    store: Arc<dyn Store>,
    default_account: MockHandle,
    acme_account: MockHandle,
    front: MockFront,
}

impl TwoAccounts {
    fn simulated(&self, slug: &str) -> &MockHandle {
        match slug {
            DEFAULT => &self.default_account,
            _ => &self.acme_account,
        }
    }
}

async fn simulated_account(api_key: &str, seed: u64) -> MockHandle {
    mock::start(MockConfig {
        api_key: Secret::new(api_key),
        seed,
        companies: 2,
        jobs_per_company: 2,
        change_interval_ms: 0,
        ..MockConfig::on_free_port()
    })
    .await
    .unwrap()
}

async fn two_accounts() -> TwoAccounts {
    let default_account = simulated_account("default-account-key", 1).await;
    let acme_account = simulated_account("acme-account-key", 2).await;
    let front = mock::start_front(MockConfig::on_free_port().bind, &[&default_account, &acme_account])
        .await
        .unwrap();
    let mut args = serve_args("");
    args.processor.workers = 2;
    args.processor.poll_interval_ms = 20;
    args.processor.sync_interval_seconds = 0;
    args.servicem8.servicem8_base_url = front.base_url();
    args.servicem8.servicem8_api_key = Some(Secret::new(default_account.api_key()));
    let app = spawn_app_with(args).await;
    let create = json!({"action": "create_account", "slug": ACME, "name": "Acme Ltd"});
    manage_account(&app, DEFAULT, create).await;
    set_secret(&app, ACME, "api_key", acme_account.api_key()).await;
    set_secret(&app, ACME, "webhook_secret", WEBHOOK_SECRET).await;
    let store = store::connect(&app.database_url).await.unwrap();
    TwoAccounts {
        app,
        store,
        default_account,
        acme_account,
        front,
    }
}

async fn set_secret(app: &TestApp, slug: &str, secret: &str, value: &str) {
    let action = json!({"action": "set_account_secret", "secret": secret, "value": value});
    manage_account(app, slug, action).await;
}

/// Posts a management action on `slug` with `ADMIN_TOKEN`, as an instance owner's script would.
async fn manage_account(app: &TestApp, slug: &str, action: Value) {
    let answer = app
        .client
        .post(app.url(&format!("/api/webhooks/management?account={slug}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&action)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{action}: {}", answer.text().await.unwrap());
}

fn receiver(slug: &str) -> String {
    match slug {
        DEFAULT => "/api/webhooks/sm8".into(),
        slug => format!("/api/webhooks/sm8/{slug}"),
    }
}

/// Posts one signed seed delivery changing each of `jobs` to `slug`'s receiver; returns the event ids.
async fn post_job_changes(app: &TestApp, slug: &str, jobs: &[String]) -> Vec<String> {
    let delivery: Vec<Value> = jobs
        .iter()
        .map(|uuid| {
            json!({"object_type": "job", "object_uuid": uuid, "event_type": "updated",
                   "timestamp": "2024-03-01T10:00:00Z", "changes": {"status": "Work Order"}})
        })
        .collect();
    let body = Value::Array(delivery).to_string();
    let answer = app
        .client
        .post(app.url(&receiver(slug)))
        .header("content-type", "application/json")
        .header(
            "x-servicem8-signature",
            sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let receipt: Value = answer.json().await.unwrap();
    receipt["event_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

/// `(object_uuid, status)` of every event of `slug`.
async fn events_of(app: &TestApp, slug: &str) -> BTreeSet<(String, String)> {
    let listed = app
        .manage_json(&format!("action=events&account={slug}&limit=500"))
        .await;
    listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            let text = |field: &str| event[field].as_str().unwrap().to_owned();
            (text("object_uuid"), text("status"))
        })
        .collect()
}

fn statuses(jobs: &[String], status: &str) -> BTreeSet<(String, String)> {
    jobs.iter().map(|uuid| (uuid.clone(), status.to_owned())).collect()
}

#[tokio::test]
async fn two_accounts_process_side_by_side_each_with_its_own_key_budget_and_mirror() {
    let t = two_accounts().await;
    let default_jobs = t.default_account.uuids(ObjectKind::Job);
    let acme_jobs = t.acme_account.uuids(ObjectKind::Job);
    assert!(
        default_jobs.iter().all(|uuid| !acme_jobs.contains(uuid)),
        "each simulated account holds records only it has"
    );

    let (default_ids, acme_ids) = tokio::join!(
        post_job_changes(&t.app, DEFAULT, &default_jobs),
        post_job_changes(&t.app, ACME, &acme_jobs),
    );
    assert_eq!(
        (default_ids.len(), acme_ids.len()),
        (default_jobs.len(), acme_jobs.len())
    );
    for (slug, jobs) in [(DEFAULT, &default_jobs), (ACME, &acme_jobs)] {
        eventually(&format!("every event of {slug} to succeed"), || async {
            let events = events_of(&t.app, slug).await;
            (events == statuses(jobs, "success")).then_some(())
        })
        .await;
    }

    for (slug, other, jobs) in [(DEFAULT, ACME, &default_jobs), (ACME, DEFAULT, &acme_jobs)] {
        let simulated = t.simulated(slug);
        for uuid in jobs {
            let record = simulated.record(ObjectKind::Job, uuid).unwrap();
            let mirrored = t.store.mirror_record(slug, "job", uuid).await.unwrap();
            assert_eq!(
                mirrored,
                Some(Value::Object(record.clone())),
                "{slug} mirrors its job {uuid}"
            );
            assert_eq!(
                t.store.job_company(slug, uuid).await.unwrap().as_deref(),
                record["company_uuid"].as_str()
            );
            assert_eq!(
                t.store.mirror_record(other, "job", uuid).await.unwrap(),
                None,
                "{other} does not mirror {slug}'s job"
            );
        }
        let fetched: BTreeSet<String> = simulated.stats().fetches_by_record.into_keys().collect();
        let own: BTreeSet<String> = jobs.iter().map(|uuid| format!("job/{uuid}")).collect();
        assert_eq!(
            fetched, own,
            "{slug}'s simulated account was asked only for its own records"
        );

        let health = t.app.manage_json(&format!("action=health&account={slug}")).await;
        let requests = i64::try_from(simulated.request_count()).unwrap();
        assert!(requests > 0);
        assert_eq!(
            health["api_budget"]["day_used"], requests,
            "{slug}'s budget counts the requests to its simulated account, and only those"
        );
    }
    assert_eq!(t.front.refused_count(), 0, "every request carried one account's key");
}

fn addon_callback(account_uuid: &str, job_uuid: &str) -> String {
    let claims = json!({
        "eventVersion": "1.0",
        "eventName": "webhook_subscription",
        "auth": {"accountUUID": account_uuid, "staffUUID": "staff-1", "accessToken": "live-access-token",
                 "accessTokenExpiry": 1_900_000_000},
        "eventArgs": {"object": "Job", "entry": [{"uuid": job_uuid, "changed_fields": ["status"],
                                                   "time": "2024-03-01 10:00:00"}],
                      "resource_url": format!("https://api.servicem8.com/api_1.0/Job/{job_uuid}.json")},
    });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(APP_SECRET.as_bytes()),
    )
    .unwrap()
}

async fn post_to_addon_endpoint(app: &TestApp, jwt: String) -> reqwest::Response {
    app.client
        .post(app.url("/api/webhooks/sm8"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(jwt)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_addon_callback_goes_to_the_account_its_jwt_names_and_an_unknown_account_uuid_is_refused() {
    let mut args = serve_args("");
    args.processor.workers = 0;
    args.ingest.servicem8_app_secret = Some(Secret::new(APP_SECRET));
    args.accounts.servicem8_account_uuid = Some("default-account-uuid".into());
    let app = spawn_app_with(args).await;
    let create = json!({"action": "create_account", "slug": ACME, "name": "Acme Ltd",
                        "servicem8AccountUuid": "acme-account-uuid"});
    manage_account(&app, DEFAULT, create).await;
    // Every account that installed the add-on has its one App Secret.
    set_secret(&app, ACME, "app_secret", APP_SECRET).await;

    let to_acme = post_to_addon_endpoint(&app, addon_callback("acme-account-uuid", "acme-job")).await;
    assert_eq!(to_acme.status(), 200);
    let to_default = post_to_addon_endpoint(&app, addon_callback("default-account-uuid", "default-job")).await;
    assert_eq!(to_default.status(), 200);
    let queued = |uuid: &str| statuses(&[uuid.to_owned()], "queued");
    assert_eq!(events_of(&app, ACME).await, queued("acme-job"));
    assert_eq!(events_of(&app, DEFAULT).await, queued("default-job"));

    let unknown = post_to_addon_endpoint(&app, addon_callback("another-account-uuid", "another-job")).await;
    assert_eq!(unknown.status(), 404);
    let refusal: Value = unknown.json().await.unwrap();
    assert_eq!(
        refusal["error"], "no account has ServiceM8 account UUID another-account-uuid",
        "{refusal}"
    );
    assert_eq!(events_of(&app, ACME).await, queued("acme-job"), "nothing stored");
    assert_eq!(events_of(&app, DEFAULT).await, queued("default-job"), "nothing stored");
}
