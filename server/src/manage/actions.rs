//! `POST /api/webhooks/management {"action": …}`: every change the dashboard can make, for scripts. Field names as
//! in the seed (camelCase), snake_case accepted. Each action is checked against the caller's role and audited by
//! the backend.

use app::access::Role;
use app::api::DashboardBackend;
use app::directory::api::DirectoryBackend;
use app::directory::model::{AccountSecretKind, AccountSettings, NewAccountForm};
use app::model::TestEvent;
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Authorized, MAX_ACTION_BYTES};
use crate::error::{bad_request, ApiError};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Action {
    RetryEvent {
        #[serde(rename = "eventId", alias = "event_id")]
        event_id: String,
    },
    RetryFailedEvents {
        #[serde(default, rename = "dryRun", alias = "dry_run")]
        dry_run: bool,
    },
    Cleanup {
        #[serde(rename = "olderThanDays", alias = "older_than_days")]
        older_than_days: i64,
    },
    SendTestEvent {
        event: TestEvent,
    },
    CreateAccount {
        slug: String,
        name: String,
        #[serde(default, rename = "servicem8AccountUuid", alias = "servicem8_account_uuid")]
        servicem8_account_uuid: Option<String>,
        #[serde(default, rename = "apiKey", alias = "api_key")]
        api_key: Option<String>,
    },
    UpdateAccount {
        name: String,
        #[serde(default, rename = "servicem8AccountUuid", alias = "servicem8_account_uuid")]
        servicem8_account_uuid: Option<String>,
        #[serde(rename = "requestsPerMinute", alias = "requests_per_minute")]
        requests_per_minute: i64,
        #[serde(rename = "requestsPerDay", alias = "requests_per_day")]
        requests_per_day: i64,
        #[serde(rename = "syncIntervalSeconds", alias = "sync_interval_seconds")]
        sync_interval_seconds: u64,
        #[serde(rename = "retentionDays", alias = "retention_days")]
        retention_days: i64,
    },
    SetAccountSecret {
        secret: AccountSecretKind,
        #[serde(default)]
        value: Option<String>,
    },
    GenerateAccountSecret {
        secret: AccountSecretKind,
    },
    DisableAccount,
    EnableAccount,
    InviteMember {
        #[serde(default)]
        email: Option<String>,
        role: Role,
    },
    SetRole {
        #[serde(rename = "userId", alias = "user_id")]
        user_id: String,
        role: Role,
    },
    RemoveMember {
        #[serde(rename = "userId", alias = "user_id")]
        user_id: String,
    },
    CreateToken {
        name: String,
        role: Role,
        #[serde(default, rename = "expiresInDays", alias = "expires_in_days")]
        expires_in_days: Option<u32>,
    },
    RevokeToken {
        #[serde(rename = "tokenId", alias = "token_id")]
        token_id: String,
    },
    Subscribe {
        kind: String,
        name: String,
        #[serde(default)]
        fields: Vec<String>,
    },
    Unsubscribe {
        kind: String,
        name: String,
    },
    CreatePortalLink {
        #[serde(rename = "companyUuid", alias = "company_uuid")]
        company_uuid: String,
        #[serde(default, rename = "ttlDays", alias = "ttl_days")]
        ttl_days: Option<u32>,
    },
}

const EXPECTED: &str = "expected an action: retry_event, retry_failed_events, cleanup, send_test_event, \
     create_account, update_account, set_account_secret, generate_account_secret, disable_account, enable_account, \
     invite_member, set_role, remove_member, create_token, revoke_token, subscribe, unsubscribe or create_portal_link";

pub(super) async fn act(
    Authorized(access): Authorized,
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(MAX_ACTION_BYTES),
        _ => bad_request(rejection),
    })?;
    let action: Action =
        serde_json::from_value(body).map_err(|error| ApiError::BadRequest(format!("{error}: {EXPECTED}")))?;
    let backend = state.backend.as_ref();
    let answer = match action {
        Action::RetryEvent { event_id } => {
            backend.retry_event(&access, &event_id).await?;
            json!({ "success": true, "eventId": event_id, "status": "queued" })
        }
        Action::RetryFailedEvents { dry_run } => {
            let count = backend.retry_failed_events(&access, dry_run).await?;
            if dry_run {
                json!({ "success": true, "dryRun": true, "wouldRetry": count })
            } else {
                json!({ "success": true, "retried": count })
            }
        }
        Action::Cleanup { older_than_days } => {
            let deleted = backend.cleanup(&access, older_than_days).await?;
            json!({ "success": true, "deleted": deleted, "olderThanDays": older_than_days })
        }
        Action::SendTestEvent { event } => {
            let id = backend.send_test_event(&access, event).await?;
            json!({ "success": true, "eventId": id })
        }
        Action::CreateAccount {
            slug,
            name,
            servicem8_account_uuid,
            api_key,
        } => {
            let form = NewAccountForm {
                slug,
                name,
                servicem8_account_uuid,
                api_key,
            };
            json!(backend.create_account(&access, form).await?)
        }
        Action::UpdateAccount {
            name,
            servicem8_account_uuid,
            requests_per_minute,
            requests_per_day,
            sync_interval_seconds,
            retention_days,
        } => {
            let settings = AccountSettings {
                name,
                servicem8_account_uuid,
                requests_per_minute,
                requests_per_day,
                sync_interval_seconds,
                retention_days,
            };
            json!(backend.update_account(&access, settings).await?)
        }
        Action::SetAccountSecret { secret, value } => json!(backend.set_account_secret(&access, secret, value).await?),
        Action::GenerateAccountSecret { secret } => json!(backend.generate_account_secret(&access, secret).await?),
        Action::DisableAccount => json!(backend.set_account_disabled(&access, true).await?),
        Action::EnableAccount => json!(backend.set_account_disabled(&access, false).await?),
        Action::InviteMember { email, role } => json!(backend.invite(&access, email, role).await?),
        Action::SetRole { user_id, role } => {
            backend.set_role(&access, &user_id, role).await?;
            json!({ "success": true, "userId": user_id, "role": role })
        }
        Action::RemoveMember { user_id } => {
            backend.remove_member(&access, &user_id).await?;
            json!({ "success": true, "userId": user_id })
        }
        Action::CreateToken {
            name,
            role,
            expires_in_days,
        } => json!(backend.create_token(&access, &name, role, expires_in_days).await?),
        Action::RevokeToken { token_id } => {
            backend.revoke_token(&access, &token_id).await?;
            json!({ "success": true, "tokenId": token_id })
        }
        Action::Subscribe { kind, name, fields } => {
            json!({ "subscriptions": backend.subscribe(&access, &kind, &name, fields).await? })
        }
        Action::Unsubscribe { kind, name } => {
            json!({ "subscriptions": backend.unsubscribe(&access, &kind, &name).await? })
        }
        Action::CreatePortalLink { company_uuid, ttl_days } => {
            let ttl_days = ttl_days.unwrap_or(app::directory::api::DEFAULT_PORTAL_LINK_DAYS);
            json!(backend.create_portal_link(&access, &company_uuid, ttl_days).await?)
        }
    };
    Ok(Json(answer))
}
