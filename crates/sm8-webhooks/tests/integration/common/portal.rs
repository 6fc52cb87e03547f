//! Portal sessions for tests: a one-time link stored in the app's database, and the cookie it opens.

use reqwest::header::SET_COOKIE;
use reqwest::redirect::Policy;
use server::store::{self, now_millis, CompanyOf};

use super::TestApp;

/// A client that shows redirects instead of following them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Stores a one-time portal link for `company` of the default account in the app's database and returns its URL.
pub async fn portal_link(app: &TestApp, company: &str) -> String {
    portal_link_of(app, super::ACCOUNT, company).await
}

/// Stores a one-time portal link for `company` of `account` in the app's database and returns its URL.
pub async fn portal_link_of(app: &TestApp, account: &str, company: &str) -> String {
    let store = store::connect(&app.database_url).await.unwrap();
    let company = CompanyOf {
        account: account.into(),
        company_uuid: company.into(),
    };
    let link = server::backend::create_link(store.as_ref(), &company, 60_000, &app.url(""), now_millis())
        .await
        .unwrap();
    link.url
}

/// Follows a fresh link for `company` and returns the session cookie (`name=value`).
pub async fn portal_session(app: &TestApp, company: &str) -> String {
    let response = client().get(portal_link(app, company).await).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}
