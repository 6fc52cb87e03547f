//! Users for tests: created straight in the app's database (as `sm8-webhooks user add` would), and signed in
//! through the dashboard's own sign-in server function.

use app::access::Role;
use leptos::server_fn::ServerFn;
use reqwest::header::SET_COOKIE;
use server::auth::hash_password;
use server::store::directory::UserRow;
use server::store::{self, now_millis, Store};

use super::TestApp;

/// The instance owner `admin_session_cookie` signs in as.
pub const OWNER_EMAIL: &str = "owner@example.test";
/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// The user with `email`, created if missing: an instance owner, or a member of each account with its role.
pub async fn ensure_user(app: &TestApp, email: &str, instance_owner: bool, roles: &[(&str, Role)]) -> String {
    let store = store::connect(&app.database_url).await.unwrap();
    let user = match store.user_by_email(email).await.unwrap() {
        Some(user) => user,
        None => {
            let now = now_millis();
            let user = UserRow {
                id: uuid::Uuid::now_v7().to_string(),
                email: email.into(),
                password_hash: Some(hash_password(PASSWORD)),
                instance_owner: i64::from(instance_owner),
                created_at: now,
                updated_at: now,
            };
            assert!(store.insert_user(&user).await.unwrap());
            user
        }
    };
    for (account, role) in roles {
        store
            .set_membership(&user.id, account, role.as_str(), now_millis())
            .await
            .unwrap();
    }
    user.id
}

/// The answer to a sign-in through the dashboard's server function.
pub async fn try_sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url(app::directory::api::SignIn::PATH))
        .header("sec-fetch-site", "same-origin")
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

/// Signs in and returns the session cookie (`name=value`).
pub async fn sign_in(app: &TestApp, email: &str, password: &str) -> String {
    let signed_in = try_sign_in(app, email, password).await;
    assert!(signed_in.status().is_success(), "{}", signed_in.status());
    let cookie = signed_in.headers()[SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// A member of `account` with `role`, signed in: their session cookie with the account chosen.
pub async fn member_session(app: &TestApp, email: &str, account: &str, role: Role) -> String {
    ensure_user(app, email, false, &[(account, role)]).await;
    let session = sign_in(app, email, PASSWORD).await;
    format!("{session}; sm8_account={account}")
}

/// The store behind `app`, opened beside it.
pub async fn store_of(app: &TestApp) -> std::sync::Arc<dyn Store> {
    store::connect(&app.database_url).await.unwrap()
}

/// Who a role matrix asks: an owner, an admin and a viewer of the default account (their session cookies, with
/// the default account chosen), and the owner of a second account, `other`, made for it (whose cookie also names
/// its own account).
pub struct MatrixCallers {
    pub members: [(Role, String); 3],
    pub stranger: String,
}

/// Creates account `other` and the callers of a role matrix, their emails under `domain`.
pub async fn matrix_callers(app: &TestApp, domain: &str) -> MatrixCallers {
    let created = app
        .client
        .post(app.url("/api/webhooks/management"))
        .bearer_auth(super::ADMIN_TOKEN)
        .json(&serde_json::json!({"action": "create_account", "slug": "other", "name": "Other Ltd"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let member = |role: Role| async move {
        let email = format!("{}@{domain}", role.as_str());
        (role, member_session(app, &email, "default", role).await)
    };
    MatrixCallers {
        members: [
            member(Role::Owner).await,
            member(Role::Admin).await,
            member(Role::Viewer).await,
        ],
        stranger: member_session(app, &format!("stranger@{domain}"), "other", Role::Owner).await,
    }
}
