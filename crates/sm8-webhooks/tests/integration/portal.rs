//! The client portal over HTTP and websockets: one-time links, the session cookie, and isolation: a portal
//! session sees its own company's jobs and nothing of another's, through the server functions and the relay.

use std::time::Duration;

use crate::common::portal::{client, portal_link, portal_session};
use crate::common::realtime_client::{reason, spawn_relay, spawn_relay_with, RealtimeClient, RelayApp, JWT_SECRET};
use crate::common::TestApp;
use crate::common::ACCOUNT;
use reqwest::header::{ACCEPT, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{json, Value};
use server::auth::token_hash;
use server::realtime::auth::{Identity, TokenKeys};
use server::secret::Secret;
use server::store::{self, now_millis};

const COMPANY: &str = "company-a";
const OTHER_COMPANY: &str = "company-b";
const JOB: &str = "job-of-a";
const OTHER_JOB: &str = "job-of-b";

/// Posts a seed-format job change for `company` and waits until the mirror has applied it.
async fn seed_job(app: &TestApp, job: &str, company: &str, status: &str) {
    let body = json!({
        "object_type": "Job", "object_uuid": job, "event_type": "updated", "timestamp": "2024-05-01T09:30:00Z",
        "changes": {"company_uuid": company, "status": status, "job_address": format!("1 {job} Street"),
                    "generated_job_id": "1042", "date": "2024-05-03 00:00:00"},
    })
    .to_string();
    assert_eq!(app.post_signed(&body).await.status(), 200);
    let store = store::connect(&app.database_url).await.unwrap();
    for _ in 0..100 {
        if store.job_company(ACCOUNT, job).await.unwrap().as_deref() == Some(company) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job} was not mirrored");
}

/// Calls a portal or realtime server function with `cookie`; returns status and JSON body.
async fn call(app: &TestApp, endpoint: &str, body: Option<Value>, cookie: Option<&str>) -> (u16, Value) {
    let mut request = client().post(app.url(endpoint)).header(ACCEPT, "application/json");
    request = match body {
        Some(body) => request.json(&body),
        None => request.json(&json!({})),
    };
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Two companies with a job each.
async fn two_companies() -> RelayApp {
    let relay = spawn_relay().await;
    seed_job(&relay.app, JOB, COMPANY, "Work Order").await;
    seed_job(&relay.app, OTHER_JOB, OTHER_COMPANY, "Quote").await;
    relay
}

#[tokio::test]
async fn a_portal_link_opens_an_http_only_lax_session_and_redirects_to_the_portal() {
    let relay = spawn_relay().await;
    let response = client()
        .get(portal_link(&relay.app, COMPANY).await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/portal");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("sm8_portal_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=2592000"] {
        assert!(cookie.contains(flag), "{flag} missing from {cookie}");
    }
    assert!(!cookie.contains("Secure"), "no Secure over plain http: {cookie}");
    let session = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("sm8_portal_session=");
    let store = store::connect(&relay.app.database_url).await.unwrap();
    let company = store
        .portal_session_company(&token_hash(session), now_millis())
        .await
        .unwrap();
    assert_eq!(
        company.map(|company| company.company_uuid).as_deref(),
        Some(COMPANY),
        "only the token's hash is stored, and it opens the session"
    );
}

#[tokio::test]
async fn a_portal_link_works_once_and_a_used_or_unknown_link_gets_a_friendly_410() {
    let relay = spawn_relay().await;
    let link = portal_link(&relay.app, COMPANY).await;
    assert_eq!(client().get(&link).send().await.unwrap().status(), 303);
    let again = client().get(&link).send().await.unwrap();
    assert_eq!(again.status(), 410);
    assert!(again.headers().get(SET_COOKIE).is_none());
    let page = again.text().await.unwrap();
    assert!(page.contains("This link cannot be used again"), "{page}");
    let unknown = client()
        .get(relay.app.url("/portal/enter?token=not-a-token"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 410);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"], "This link cannot be used again");
    let missing = client().get(relay.app.url("/portal/enter")).send().await.unwrap();
    assert_eq!(missing.status(), 400);
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_public_url_is_https() {
    let relay = spawn_relay_with(|args| args.public_url = Some("https://portal.example.com".into())).await;
    let response = client()
        .get(portal_link(&relay.app, COMPANY).await)
        .send()
        .await
        .unwrap();
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cookie.split("; ").any(|attribute| attribute == "Secure"), "{cookie}");
}

#[tokio::test]
async fn portal_pages_answer_the_status_they_show_on_every_request() {
    let relay = two_companies().await;
    let cookie = portal_session(&relay.app, COMPANY).await;
    // A render that misses the page deadline is answered 503 with Retry-After, which a browser's reload (and
    // this test) tries again; what is asserted is the status of the page once rendered.
    let page = |path: String, cookie: Option<String>| {
        let relay = &relay;
        async move {
            let mut attempts = 0;
            loop {
                let mut request = client().get(relay.app.url(&path));
                if let Some(cookie) = &cookie {
                    request = request.header(COOKIE, cookie.clone());
                }
                let response = request.send().await?;
                attempts += 1;
                if response.status() != 503 || attempts == 3 {
                    return Ok::<_, reqwest::Error>(response);
                }
            }
        }
    };
    // Resolved before the head is sent, so never a 200 that says "not found", however fast the data comes.
    for _ in 0..10 {
        let foreign = page(format!("/portal/jobs/{OTHER_JOB}"), Some(cookie.clone()))
            .await
            .unwrap();
        assert_eq!(foreign.status(), 404);
        assert!(foreign.text().await.unwrap().contains("Job not found"));
        let own = page(format!("/portal/jobs/{JOB}"), Some(cookie.clone())).await.unwrap();
        assert_eq!(own.status(), 200);
    }
    assert_eq!(page("/portal".into(), None).await.unwrap().status(), 401);
    assert_eq!(page("/no/such/page".into(), None).await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_portal_session_lists_only_its_companys_jobs() {
    let relay = two_companies().await;
    let cookie = portal_session(&relay.app, COMPANY).await;
    let (status, overview) = call(&relay.app, "/api/portal/jobs", None, Some(&cookie)).await;
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["company_uuid"], COMPANY);
    let jobs = overview["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{overview}");
    assert_eq!(jobs[0]["uuid"], JOB);
    assert_eq!(jobs[0]["status"], "Work Order");
    assert_eq!(jobs[0]["job_address"], "1 job-of-a Street");
    assert_eq!(jobs[0]["date"], "2024-05-03T00:00:00Z");
}

#[tokio::test]
async fn another_companys_job_is_not_found_exactly_like_a_missing_one() {
    let relay = two_companies().await;
    let cookie = portal_session(&relay.app, COMPANY).await;
    let (status, detail) = call(
        &relay.app,
        "/api/portal/job",
        Some(json!({"job_uuid": JOB})),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["job"]["uuid"], JOB);
    assert_eq!(detail["activities"], json!([]));
    let ask = |job: &str| {
        call(
            &relay.app,
            "/api/portal/job",
            Some(json!({ "job_uuid": job })),
            Some(&cookie),
        )
    };
    let (status, other) = ask(OTHER_JOB).await;
    assert_eq!(status, 404);
    assert!(other["NotFound"].is_string(), "{other}");
    let (status, missing) = ask("no-such-job").await;
    assert_eq!(status, 404);
    assert_eq!(
        other.to_string().replace(OTHER_JOB, "JOB"),
        missing.to_string().replace("no-such-job", "JOB"),
        "nothing tells another company's job from a missing one"
    );
}

#[tokio::test]
async fn without_a_session_the_portal_functions_answer_401() {
    let relay = two_companies().await;
    for (endpoint, body) in [
        ("/api/portal/jobs", None),
        ("/api/portal/job", Some(json!({"job_uuid": JOB}))),
        ("/api/realtime/credentials", None),
    ] {
        let (status, error) = call(&relay.app, endpoint, body.clone(), None).await;
        assert_eq!((status, error), (401, json!("NotSignedIn")), "{endpoint}");
        let (status, _) = call(&relay.app, endpoint, body, Some("sm8_portal_session=forged")).await;
        assert_eq!(status, 401, "{endpoint} with a forged session");
    }
}

#[tokio::test]
async fn signing_out_ends_the_session_and_clears_the_cookie() {
    let relay = two_companies().await;
    let cookie = portal_session(&relay.app, COMPANY).await;
    let response = client()
        .post(relay.app.url("/api/portal/sign_out"))
        .header(COOKIE, &cookie)
        .header(ACCEPT, "application/json")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cleared = response.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("sm8_portal_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (status, _) = call(&relay.app, "/api/portal/jobs", None, Some(&cookie)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn realtime_credentials_follow_the_session_and_a_portal_token_cannot_join_another_company() {
    let relay = two_companies().await;
    let cookie = portal_session(&relay.app, COMPANY).await;
    let (status, credentials) = call(&relay.app, "/api/realtime/credentials", None, Some(&cookie)).await;
    assert_eq!(status, 200, "{credentials}");
    let token = credentials["access_token"].as_str().unwrap();
    let verified = TokenKeys::new(&Secret::new(JWT_SECRET)).verify(token).unwrap();
    assert_eq!(
        verified.identity,
        Identity::Portal {
            account: server::store::DEFAULT_ACCOUNT.into(),
            company_uuid: COMPANY.into()
        }
    );
    assert_eq!(verified.expires_at, credentials["expires_at"].as_i64());

    let apikey = credentials["apikey"].as_str().unwrap();
    let mut socket = RealtimeClient::try_connect(relay.app.address, apikey, "1.0.0")
        .await
        .unwrap();
    let join = json!({"config": {"broadcast": {"self": false}}, "access_token": token});
    for topic in [
        format!("realtime:company:{OTHER_COMPANY}"),
        format!("realtime:job:{OTHER_JOB}"),
        "realtime:jobs".into(),
    ] {
        let (_, reply) = socket.join(&topic, join.clone()).await;
        assert!(reason(&reply).starts_with("Unauthorized"), "{topic}: {reply:?}");
    }
    for topic in [format!("realtime:company:{COMPANY}"), format!("realtime:job:{JOB}")] {
        let (_, reply) = socket.join(&topic, join.clone()).await;
        assert_eq!(reply.payload["status"], "ok", "{topic}: {reply:?}");
    }
}

#[tokio::test]
async fn an_admin_session_gets_an_admin_token() {
    let relay = spawn_relay().await;
    let cookie = relay.app.admin_session_cookie().await;
    let (status, credentials) = call(&relay.app, "/api/realtime/credentials", None, Some(&cookie)).await;
    assert_eq!(status, 200, "{credentials}");
    let verified = TokenKeys::new(&Secret::new(JWT_SECRET)).verify(credentials["access_token"].as_str().unwrap());
    assert_eq!(
        verified.unwrap().identity,
        Identity::Admin {
            account: server::store::DEFAULT_ACCOUNT.into()
        }
    );
}

#[tokio::test]
async fn a_viewers_session_gets_a_viewer_token_for_its_account() {
    let relay = spawn_relay().await;
    let cookie = crate::common::users::member_session(
        &relay.app,
        "viewer@example.com",
        server::store::DEFAULT_ACCOUNT,
        app::access::Role::Viewer,
    )
    .await;
    let (status, credentials) = call(&relay.app, "/api/realtime/credentials", None, Some(&cookie)).await;
    assert_eq!(status, 200, "{credentials}");
    let verified = TokenKeys::new(&Secret::new(JWT_SECRET)).verify(credentials["access_token"].as_str().unwrap());
    assert_eq!(
        verified.unwrap().identity,
        Identity::Viewer {
            account: server::store::DEFAULT_ACCOUNT.into()
        }
    );
}

#[tokio::test]
async fn the_portal_link_command_prints_a_link_that_opens_the_portal() {
    let relay = spawn_relay().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sm8-webhooks"))
        .args([
            "portal-link",
            "--company",
            COMPANY,
            "--ttl",
            "1h",
            "--database-url",
            &relay.app.database_url,
        ])
        .env("PUBLIC_URL", relay.app.url(""))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let url = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(
        url.starts_with(&format!("{}/portal/enter?token=", relay.app.url(""))),
        "{url}"
    );
    assert_eq!(client().get(&url).send().await.unwrap().status(), 303);
}
