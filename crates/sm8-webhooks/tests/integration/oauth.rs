//! Connecting an account to ServiceM8 through OAuth, end to end over real HTTP against the simulated account: the
//! owner starts the connection from the dashboard's server function, allows it on the account's consent page, and
//! the browser's way back through `/oauth/servicem8/callback` leaves the account with tokens that processing then
//! uses; forged and replayed `state`s are refused; expiring tokens are refreshed; a refresh that fails is shown on
//! the account and audited, while accounts with an API key carry on.

use std::time::Duration;

use app::directory::api::{GetAccount, StartOauth};
use app::directory::model::{AccountView, DEFAULT_OAUTH_SCOPES};
use leptos::server_fn::ServerFn;
use reqwest::header::{COOKIE, LOCATION};
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use server::config::ServeArgs;
use server::ingest::signature::sign;
use server::secret::Secret;
use servicem8_mock::{self as mock, MockConfig, MockHandle, ObjectKind};

use crate::common::{eventually, serve_args, spawn_app_with, TestApp, ADMIN_TOKEN, WEBHOOK_SECRET};

const CALLBACK_PATH: &str = "/oauth/servicem8/callback";

/// A server whose OAuth application is registered with its own simulated ServiceM8 account, and an instance
/// owner signed in to it.
struct OAuthSetup {
    app: TestApp,
    account: MockHandle,
    owner: String,
    /// A client that, like a test of a browser's hops, follows no redirect by itself.
    browser: reqwest::Client,
}

async fn setup(configure: impl FnOnce(&mut MockConfig)) -> OAuthSetup {
    let mut config = MockConfig {
        companies: 2,
        jobs_per_company: 3,
        ..MockConfig::on_free_port()
    };
    configure(&mut config);
    let account = mock::start(config).await.unwrap();
    let mut args: ServeArgs = serve_args("sqlite::memory:");
    args.processor.workers = 2;
    args.processor.poll_interval_ms = 20;
    args.processor.retry_base_delay_ms = 200;
    args.processor.sync_interval_seconds = 0;
    args.servicem8.servicem8_base_url = account.base_url();
    args.oauth.servicem8_oauth_client_id = Some(account.oauth_client_id());
    args.oauth.servicem8_oauth_client_secret = Some(Secret::new(account.oauth_client_secret()));
    args.oauth.servicem8_oauth_authorize_url = account.oauth_authorize_url();
    args.oauth.servicem8_oauth_token_url = account.oauth_token_url();
    let app = spawn_app_with(args).await;
    // The account the owner's pages act on, as the account switcher remembers it.
    let owner = format!("{}; sm8_account=default", app.admin_session_cookie().await);
    OAuthSetup {
        app,
        account,
        owner,
        browser: reqwest::Client::builder().redirect(Policy::none()).build().unwrap(),
    }
}

/// Calls a dashboard server function as the owner's page does.
async fn server_fn(setup: &OAuthSetup, path: &str, body: Value) -> reqwest::Response {
    setup
        .app
        .client
        .post(setup.app.url(path))
        .header(COOKIE, &setup.owner)
        .header("sec-fetch-site", "same-origin")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn account_view(setup: &OAuthSetup) -> AccountView {
    let answer = server_fn(setup, GetAccount::PATH, json!({})).await;
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

/// "Connect ServiceM8": the authorize URL the browser is sent to.
async fn start_oauth(setup: &OAuthSetup) -> String {
    let answer = server_fn(setup, StartOauth::PATH, json!({ "scopes": "" })).await;
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

/// The hidden fields of the consent page's form, unescaped.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|rest| {
            let (name, rest) = rest.split_once("\" value=\"").unwrap();
            let value = rest.split_once('"').unwrap().0;
            let value = value
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            (name.to_owned(), value)
        })
        .collect()
}

/// Opens the consent page at `authorize_url` and presses `decision` ("allow" or "deny"); returns where the
/// simulated account sends the browser.
async fn decide(setup: &OAuthSetup, authorize_url: &str, decision: &str) -> String {
    let page = setup.browser.get(authorize_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(">Allow</button>") && html.contains(">Deny</button>"),
        "{html}"
    );
    let mut form = hidden_fields(&html);
    form.push(("decision".into(), decision.into()));
    let answer = setup
        .browser
        .post(setup.account.oauth_authorize_url())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    answer.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// Follows the way back to the server's callback; returns where the server's page sends the browser then. The
/// page moves on by itself rather than by a redirect, so that the browser sends its SameSite=Strict session
/// cookie on the next request, which a redirect from ServiceM8's site would not.
async fn follow_callback(setup: &OAuthSetup, callback_url: &str) -> String {
    let answer = setup.browser.get(callback_url).send().await.unwrap();
    assert_eq!(answer.status(), 200, "{callback_url}");
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let page = answer.text().await.unwrap();
    let target = page
        .split_once("content=\"0;url=")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(target, _)| target.replace("&amp;", "&"))
        .unwrap_or_else(|| panic!("the page moves on: {page}"));
    target
}

/// The whole connection, as a browser makes it; returns the callback URL the account sent the browser to.
async fn connect(setup: &OAuthSetup) -> String {
    let authorize_url = start_oauth(setup).await;
    let callback_url = decide(setup, &authorize_url, "allow").await;
    assert!(
        callback_url.starts_with(&setup.app.url(CALLBACK_PATH)),
        "the account returns to {callback_url}"
    );
    let landing = follow_callback(setup, &callback_url).await;
    assert_eq!(landing, "/admin/accounts?account=default&oauth=connected");
    callback_url
}

/// Posts a signed change of job `uuid` to `account`'s receiver; returns the event id.
async fn post_job_change(app: &TestApp, account: &str, uuid: &str) -> String {
    let body = json!({
        "object_type": "job",
        "object_uuid": uuid,
        "event_type": "updated",
        "timestamp": "2024-03-01T10:00:00Z",
        "changes": { "status": "Work Order" },
    })
    .to_string();
    let path = match account {
        "default" => "/api/webhooks/sm8".to_owned(),
        slug => format!("/api/webhooks/sm8/{slug}"),
    };
    let answer = app
        .client
        .post(app.url(&path))
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
    receipt["event_ids"][0].as_str().unwrap().to_owned()
}

async fn event(app: &TestApp, account: &str, id: &str) -> Value {
    let listed = app
        .manage_json(&format!("action=events&account={account}&limit=500"))
        .await;
    listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["id"] == id)
        .cloned()
        .expect("the event is listed")
}

async fn event_status(app: &TestApp, account: &str, id: &str) -> String {
    event(app, account, id).await["status"].as_str().unwrap().to_owned()
}

async fn wait_for_success(app: &TestApp, account: &str, id: &str) {
    let mut last = Value::Null;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        last = event(app, account, id).await;
        if last["status"] == "success" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("event {id} of {account} did not succeed: {last}");
}

/// The outcomes of the audit lines of `action`, newest first.
async fn audit_outcomes(app: &TestApp, action: &str) -> Vec<String> {
    let audit = app.manage_json(&format!("action=audit&auditAction={action}")).await;
    audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["outcome"].as_str().unwrap().to_owned())
        .collect()
}

fn jobs(account: &MockHandle) -> Vec<String> {
    account.uuids(ObjectKind::Job)
}

#[tokio::test]
async fn an_owner_connects_an_account_and_its_events_are_fetched_with_the_bearer_token() {
    let setup = setup(|_| {}).await;
    let before = account_view(&setup).await;
    assert!(before.oauth_available);
    assert_eq!(before.credential_kind, "none");

    connect(&setup).await;

    let after = account_view(&setup).await;
    assert_eq!(after.credential_kind, "oauth");
    assert_eq!(after.oauth_scopes.as_deref(), Some(DEFAULT_OAUTH_SCOPES));
    assert!(after.oauth_expires_at.is_some());
    assert_eq!(after.oauth_error, None);
    assert_eq!(audit_outcomes(&setup.app, "connect_oauth").await, ["success"]);
    assert_eq!(setup.account.oauth_stats().codes_exchanged, 1);

    let job = &jobs(&setup.account)[0];
    let id = post_job_change(&setup.app, "default", job).await;
    wait_for_success(&setup.app, "default", &id).await;
    assert!(setup.account.fetch_count(ObjectKind::Job, job) >= 1);
    let stats = setup.account.oauth_stats();
    assert!(stats.bearer_accepted >= 1, "{stats:?}");
    assert_eq!(stats.bearer_refused, 0);
}

#[tokio::test]
async fn a_forged_replayed_or_denied_callback_connects_nothing() {
    let setup = setup(|_| {}).await;

    let forged = format!("{}?code=made-up&state=forged-state", setup.app.url(CALLBACK_PATH));
    let landing = follow_callback(&setup, &forged).await;
    assert!(landing.starts_with("/admin/accounts?oauth_error="), "{landing}");
    assert!(landing.contains("OAuth+state"), "{landing}");
    assert_eq!(account_view(&setup).await.credential_kind, "none");

    let authorize_url = start_oauth(&setup).await;
    let denied = decide(&setup, &authorize_url, "deny").await;
    assert!(denied.contains("error=access_denied"), "{denied}");
    let landing = follow_callback(&setup, &denied).await;
    assert!(landing.starts_with("/admin/accounts?oauth_error="), "{landing}");
    assert_eq!(account_view(&setup).await.credential_kind, "none");

    let used = connect(&setup).await;
    let replayed = follow_callback(&setup, &used).await;
    assert!(replayed.starts_with("/admin/accounts?oauth_error="), "{replayed}");
    assert_eq!(
        setup.account.oauth_stats().codes_exchanged,
        1,
        "a replayed state is refused before its code reaches ServiceM8"
    );
    assert_eq!(account_view(&setup).await.credential_kind, "oauth");
    assert_eq!(audit_outcomes(&setup.app, "connect_oauth").await, ["success"]);
}

#[tokio::test]
async fn an_access_token_about_to_expire_is_refreshed_before_it_is_sent() {
    // Tokens that live less than the minute the server refreshes ahead of expiry are refreshed before every use.
    let setup = setup(|config| config.oauth_token_ttl_seconds = 30).await;
    connect(&setup).await;

    for job in &jobs(&setup.account)[..2] {
        let id = post_job_change(&setup.app, "default", job).await;
        wait_for_success(&setup.app, "default", &id).await;
    }
    let stats = setup.account.oauth_stats();
    assert!(stats.refreshes >= 1, "{stats:?}");
    assert_eq!(stats.bearer_refused, 0, "no expired token was ever sent");
    assert!(audit_outcomes(&setup.app, "refresh_oauth")
        .await
        .iter()
        .all(|outcome| outcome == "success"));
    assert_eq!(account_view(&setup).await.oauth_error, None);
}

#[tokio::test]
async fn an_access_token_refused_with_401_is_refreshed_and_processing_goes_on() {
    let setup = setup(|_| {}).await;
    connect(&setup).await;
    let jobs = jobs(&setup.account);
    let first = post_job_change(&setup.app, "default", &jobs[0]).await;
    wait_for_success(&setup.app, "default", &first).await;
    assert_eq!(setup.account.oauth_stats().refreshes, 0);

    setup.account.expire_access_tokens();
    let second = post_job_change(&setup.app, "default", &jobs[1]).await;
    wait_for_success(&setup.app, "default", &second).await;
    let stats = setup.account.oauth_stats();
    assert!(stats.bearer_refused >= 1, "{stats:?}");
    assert!(stats.refreshes >= 1, "{stats:?}");
    assert_eq!(audit_outcomes(&setup.app, "refresh_oauth").await[0], "success");
    assert_eq!(account_view(&setup).await.oauth_error, None);
}

#[tokio::test]
async fn a_failed_refresh_is_shown_and_audited_while_an_api_key_account_keeps_working() {
    let setup = setup(|_| {}).await;
    connect(&setup).await;
    let jobs = jobs(&setup.account);

    // A second account reaches the same ServiceM8 account with its API key.
    let manage = |slug: &str, body: Value| {
        setup
            .app
            .client
            .post(setup.app.url(&format!("/api/webhooks/management?account={slug}")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let created = manage(
        "default",
        json!({"action": "create_account", "slug": "acme", "name": "Acme"}),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 200);
    for (secret, value) in [("webhook_secret", WEBHOOK_SECRET), ("api_key", setup.account.api_key())] {
        let set = manage(
            "acme",
            json!({"action": "set_account_secret", "secret": secret, "value": value}),
        )
        .await
        .unwrap();
        assert_eq!(set.status(), 200, "{}", set.text().await.unwrap());
    }

    setup.account.set_refresh_failing(true);
    setup.account.expire_access_tokens();
    let stuck = post_job_change(&setup.app, "default", &jobs[0]).await;
    let error = eventually("the failed refresh to show on the account", || async {
        account_view(&setup).await.oauth_error
    })
    .await;
    assert!(error.contains("invalid_grant"), "{error}");
    assert_ne!(event_status(&setup.app, "default", &stuck).await, "success");
    let failures = eventually("the failed refresh to be audited", || async {
        let outcomes = audit_outcomes(&setup.app, "refresh_oauth").await;
        (!outcomes.is_empty()).then_some(outcomes)
    })
    .await;
    assert_eq!(
        failures,
        ["failure"],
        "one line when failing starts, however often it is retried"
    );

    let keyed = post_job_change(&setup.app, "acme", &jobs[1]).await;
    wait_for_success(&setup.app, "acme", &keyed).await;

    // Connecting again clears the failure.
    setup.account.set_refresh_failing(false);
    connect(&setup).await;
    assert_eq!(account_view(&setup).await.oauth_error, None);
}
