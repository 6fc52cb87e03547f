//! `POST /api/webhooks/management {"action": …}`: every change the dashboard can make, for scripts. Field names as
//! in the seed (camelCase), snake_case accepted. Each action is checked against the caller's role and audited by
//! the backend.

use app::access::Role;
use app::alerts::api::AlertsBackend;
use app::alerts::model::AlertForm;
use app::api::DashboardBackend;
use app::directory::api::DirectoryBackend;
use app::directory::model::{AccountSecretKind, AccountSettings, NewAccountForm};
use app::model::TestEvent;
use app::outbound::api::OutboundBackend;
use app::outbound::model::{DestinationForm, RuleForm};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::answers::{
    ChangeAnswer, CleanedUp, Done, MemberRemoved, Requeued, RetriedDeliveries, RetriedFailed, RoleSet, Rules,
    Subscriptions, TestEventSent, TokenRevoked,
};
use super::{Authorized, MAX_ACTION_BYTES};
use crate::error::{bad_request, ApiError, ErrorBody};
use crate::state::AppState;

/// A change, named by `action`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub(super) enum Action {
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
    CreateDestination {
        #[serde(flatten)]
        form: DestinationForm,
    },
    UpdateDestination {
        id: String,
        #[serde(flatten)]
        form: DestinationForm,
    },
    DeleteDestination {
        id: String,
    },
    RotateDestinationSecret {
        id: String,
    },
    PauseDestination {
        id: String,
    },
    ResumeDestination {
        id: String,
    },
    SendTestMessage {
        id: String,
    },
    CreateRule {
        #[serde(flatten)]
        form: RuleForm,
    },
    UpdateRule {
        id: String,
        #[serde(flatten)]
        form: RuleForm,
    },
    DeleteRule {
        id: String,
    },
    ReorderRules {
        ids: Vec<String>,
    },
    TestRule {
        definition: Value,
        #[serde(rename = "eventId", alias = "event_id")]
        event_id: String,
    },
    RetryDelivery {
        id: String,
    },
    RetryDestinationDeliveries {
        #[serde(rename = "destinationId", alias = "destination_id")]
        destination_id: String,
    },
    UpdateAlert {
        id: String,
        #[serde(flatten)]
        form: AlertForm,
    },
    AcknowledgeAlert {
        id: String,
    },
    SilenceAlert {
        id: String,
        /// How long; 0 lifts the silence.
        minutes: i64,
    },
}

const EXPECTED: &str = "expected an action: retry_event, retry_failed_events, cleanup, send_test_event, \
     create_account, update_account, set_account_secret, generate_account_secret, disable_account, enable_account, \
     invite_member, set_role, remove_member, create_token, revoke_token, subscribe, unsubscribe, create_portal_link, \
     create_destination, update_destination, delete_destination, rotate_destination_secret, pause_destination, \
     resume_destination, send_test_message, create_rule, update_rule, delete_rule, reorder_rules, test_rule, \
     retry_delivery, retry_destination_deliveries, update_alert, acknowledge_alert or silence_alert";

#[utoipa::path(
    post,
    path = "/api/webhooks/management",
    operation_id = "management_change",
    tag = "management",
    summary = "Retry, clean up, send a test event, or change the account, its members, tokens or subscriptions",
    params(
        ("account" = Option<String>, Query, description = "The account to change (default: the token's own, the \
                                                            session's chosen one, or `default`)"),
    ),
    request_body(content = Action, content_type = "application/json"),
    security(("bearer" = []), ("dashboard_session" = [])),
    responses(
        (status = 200, description = "What the action did", body = ChangeAnswer),
        (status = 400, description = "Unknown action, malformed body, or not `application/json`", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The caller's role or account does not allow it", body = ErrorBody),
        (status = 404, description = "No such event, member, token or account", body = ErrorBody),
        (status = 409, description = "Conflicts with the current state (a slug taken, the last owner)", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this client; see Retry-After", body = ErrorBody),
        (status = 502, description = "ServiceM8 refused a subscription change", body = ErrorBody),
        (status = 503, description = "Storage unavailable; see Retry-After", body = ErrorBody),
    )
)]
pub(super) async fn act(
    Authorized(access): Authorized,
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<ChangeAnswer>, ApiError> {
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
            ChangeAnswer::Requeued(Requeued {
                success: true,
                event_id,
                status: "queued",
            })
        }
        Action::RetryFailedEvents { dry_run } => {
            let count = backend.retry_failed_events(&access, dry_run).await?;
            ChangeAnswer::RetriedFailed(RetriedFailed {
                success: true,
                dry_run: dry_run.then_some(true),
                would_retry: dry_run.then_some(count),
                retried: (!dry_run).then_some(count),
            })
        }
        Action::Cleanup { older_than_days } => ChangeAnswer::CleanedUp(CleanedUp {
            success: true,
            deleted: backend.cleanup(&access, older_than_days).await?,
            older_than_days,
        }),
        Action::SendTestEvent { event } => ChangeAnswer::TestEventSent(TestEventSent {
            success: true,
            event_id: backend.send_test_event(&access, event).await?,
        }),
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
            ChangeAnswer::CreatedAccount(backend.create_account(&access, form).await?)
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
            ChangeAnswer::Account(backend.update_account(&access, settings).await?)
        }
        Action::SetAccountSecret { secret, value } => {
            ChangeAnswer::Account(backend.set_account_secret(&access, secret, value).await?)
        }
        Action::GenerateAccountSecret { secret } => {
            ChangeAnswer::SecretShown(backend.generate_account_secret(&access, secret).await?)
        }
        Action::DisableAccount => ChangeAnswer::Account(backend.set_account_disabled(&access, true).await?),
        Action::EnableAccount => ChangeAnswer::Account(backend.set_account_disabled(&access, false).await?),
        Action::InviteMember { email, role } => ChangeAnswer::Link(backend.invite(&access, email, role).await?),
        Action::SetRole { user_id, role } => {
            backend.set_role(&access, &user_id, role).await?;
            ChangeAnswer::RoleSet(RoleSet {
                success: true,
                user_id,
                role,
            })
        }
        Action::RemoveMember { user_id } => {
            backend.remove_member(&access, &user_id).await?;
            ChangeAnswer::MemberRemoved(MemberRemoved { success: true, user_id })
        }
        Action::CreateToken {
            name,
            role,
            expires_in_days,
        } => ChangeAnswer::CreatedToken(backend.create_token(&access, &name, role, expires_in_days).await?),
        Action::RevokeToken { token_id } => {
            backend.revoke_token(&access, &token_id).await?;
            ChangeAnswer::TokenRevoked(TokenRevoked {
                success: true,
                token_id,
            })
        }
        Action::Subscribe { kind, name, fields } => ChangeAnswer::Subscriptions(Subscriptions {
            subscriptions: backend.subscribe(&access, &kind, &name, fields).await?,
        }),
        Action::Unsubscribe { kind, name } => ChangeAnswer::Subscriptions(Subscriptions {
            subscriptions: backend.unsubscribe(&access, &kind, &name).await?,
        }),
        Action::CreatePortalLink { company_uuid, ttl_days } => {
            let ttl_days = ttl_days.unwrap_or(app::directory::api::DEFAULT_PORTAL_LINK_DAYS);
            ChangeAnswer::Link(backend.create_portal_link(&access, &company_uuid, ttl_days).await?)
        }
        Action::CreateDestination { form } => {
            ChangeAnswer::CreatedDestination(backend.create_destination(&access, form).await?)
        }
        Action::UpdateDestination { id, form } => {
            ChangeAnswer::Destination(backend.update_destination(&access, &id, form).await?)
        }
        Action::DeleteDestination { id } => {
            backend.delete_destination(&access, &id).await?;
            ChangeAnswer::Done(Done { success: true, id })
        }
        Action::RotateDestinationSecret { id } => {
            ChangeAnswer::SecretShown(backend.rotate_destination_secret(&access, &id).await?)
        }
        Action::PauseDestination { id } => {
            ChangeAnswer::Destination(backend.set_destination_paused(&access, &id, true).await?)
        }
        Action::ResumeDestination { id } => {
            ChangeAnswer::Destination(backend.set_destination_paused(&access, &id, false).await?)
        }
        Action::SendTestMessage { id } => ChangeAnswer::TestSent(backend.send_test_message(&access, &id).await?),
        Action::CreateRule { form } => ChangeAnswer::Rule(backend.create_rule(&access, form).await?),
        Action::UpdateRule { id, form } => ChangeAnswer::Rule(backend.update_rule(&access, &id, form).await?),
        Action::DeleteRule { id } => {
            backend.delete_rule(&access, &id).await?;
            ChangeAnswer::Done(Done { success: true, id })
        }
        Action::ReorderRules { ids } => ChangeAnswer::Rules(Rules {
            rules: backend.reorder_rules(&access, ids).await?,
        }),
        Action::TestRule { definition, event_id } => {
            ChangeAnswer::RuleTest(backend.test_rule(&access, definition, &event_id).await?)
        }
        Action::RetryDelivery { id } => {
            backend.retry_delivery(&access, &id).await?;
            ChangeAnswer::Done(Done { success: true, id })
        }
        Action::RetryDestinationDeliveries { destination_id } => ChangeAnswer::RetriedDeliveries(RetriedDeliveries {
            success: true,
            retried: backend.retry_destination_deliveries(&access, &destination_id).await?,
        }),
        Action::UpdateAlert { id, form } => ChangeAnswer::Alert(backend.update_alert(&access, &id, form).await?),
        Action::AcknowledgeAlert { id } => ChangeAnswer::Alert(backend.acknowledge_alert(&access, &id).await?),
        Action::SilenceAlert { id, minutes } => {
            ChangeAnswer::Alert(backend.silence_alert(&access, &id, minutes).await?)
        }
    };
    Ok(Json(answer))
}
