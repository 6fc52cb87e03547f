//! Portal attachment downloads over real HTTP: the bytes come from the simulated ServiceM8 account, only for an
//! attachment of the session's company, always as a download.

use std::time::Duration;

use reqwest::header::{CONTENT_DISPOSITION, COOKIE, X_CONTENT_TYPE_OPTIONS};
use serde_json::Value;
use server::secret::Secret;
use server::store;
use servicem8_mock::{self as mock, MockConfig, MockHandle, ObjectKind};

use crate::common::portal::portal_session;
use crate::common::ACCOUNT;
use crate::common::{serve_args, spawn_app_with, TestApp};

/// A server that mirrored its simulated account (two companies, one job each, two attachments per job).
async fn mirrored_account() -> (TestApp, MockHandle) {
    let account = mock::start(MockConfig {
        change_interval_ms: 0,
        companies: 2,
        jobs_per_company: 1,
        attachments_per_job: 2,
        ..MockConfig::on_free_port()
    })
    .await
    .unwrap();
    let mut args = serve_args("sqlite::memory:");
    args.servicem8.servicem8_api_key = Some(Secret::new(account.api_key()));
    args.servicem8.servicem8_base_url = account.base_url();
    // The reconciliation pass at start mirrors every record, attachments included.
    args.processor.sync_interval_seconds = 3_600;
    args.processor.poll_interval_ms = 20;
    let app = spawn_app_with(args).await;
    let store = store::connect(&app.database_url).await.unwrap();
    let last = account.uuids(ObjectKind::Attachment).pop().unwrap();
    for _ in 0..400 {
        if store
            .mirror_record(ACCOUNT, "attachment", &last)
            .await
            .unwrap()
            .is_some()
        {
            return (app, account);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the attachments were not mirrored");
}

/// An attachment of each company: (company, attachment) pairs.
fn attachment_per_company(account: &MockHandle) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for attachment in account.uuids(ObjectKind::Attachment) {
        let record = account.record(ObjectKind::Attachment, &attachment).unwrap();
        let job = record["related_object_uuid"].as_str().unwrap();
        let company = account.record(ObjectKind::Job, job).unwrap()["company_uuid"]
            .as_str()
            .unwrap()
            .to_owned();
        if !pairs.iter().any(|(known, _)| *known == company) {
            pairs.push((company, attachment));
        }
    }
    assert_eq!(pairs.len(), 2, "two companies with attachments");
    pairs
}

async fn download(app: &TestApp, attachment: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(app.url(&format!("/portal/attachments/{attachment}")));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_portal_user_downloads_their_companys_attachment_from_servicem8() {
    let (app, account) = mirrored_account().await;
    let [(company, own), (_, _)] = <[_; 2]>::try_from(attachment_per_company(&account)).unwrap();
    let cookie = portal_session(&app, &company).await;
    let response = download(&app, &own, Some(&cookie)).await;
    assert_eq!(response.status(), 200);
    let name = account.record(ObjectKind::Attachment, &own).unwrap()["attachment_name"]
        .as_str()
        .unwrap()
        .to_owned();
    let disposition = response.headers()[CONTENT_DISPOSITION].to_str().unwrap().to_owned();
    assert!(
        disposition.starts_with(&format!("attachment; filename=\"{name}\"")),
        "{disposition}"
    );
    assert_eq!(response.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
    let body = response.text().await.unwrap();
    assert!(body.contains(&own), "the bytes ServiceM8 served: {body}");
}

#[tokio::test]
async fn another_companys_attachment_an_unknown_one_and_no_session_are_refused() {
    let (app, account) = mirrored_account().await;
    let [(company, _), (_, theirs)] = <[_; 2]>::try_from(attachment_per_company(&account)).unwrap();
    let cookie = portal_session(&app, &company).await;
    for attachment in [theirs.as_str(), "no-such-attachment"] {
        let response = download(&app, attachment, Some(&cookie)).await;
        assert_eq!(response.status(), 404);
        let reason: Value = response.json().await.unwrap();
        assert!(reason["error"].as_str().unwrap().contains("no attachment"));
    }
    assert_eq!(download(&app, &theirs, None).await.status(), 401);
    assert_eq!(
        download(&app, &theirs, Some("sm8_portal_session=forged"))
            .await
            .status(),
        401
    );
}
