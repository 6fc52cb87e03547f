//! An account's people and machines: members and their roles, invitations (and the first-run setup link),
//! personal API tokens, the audit log's reading side, and the account's webhook subscriptions at ServiceM8.

use app::access::{Access, Role};
use app::directory::model::{
    AuditEntryView, AuditFilter, AuditPage, CreatedToken, MemberView, OneTimeLink, SubscriptionView, TokenView,
};
use app::error::AppError;
use serde_json::{json, Value};

use super::access::API_TOKEN_PREFIX;
use super::{unavailable, ServerBackend};
use crate::auth::{random_token, token_hash};
use crate::ingest::payload::parse_timestamp;
use crate::servicem8::subscriptions::{self, default_fields};
use crate::store::directory::{ApiTokenRow, AuditQuery, AuditRow, InviteRow};
use crate::store::{millis_to_rfc3339, now_millis};

/// How long an invitation or the setup link may be used.
const INVITE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// The most audit lines one page holds.
const MAX_AUDIT_PAGE: u32 = 500;

impl ServerBackend {
    /// A one-time link that creates an instance owner, when there is no user yet (the first start); `None`
    /// once someone has set the instance up.
    pub async fn setup_link(&self) -> Result<Option<String>, AppError> {
        if self.store.count_users().await.map_err(unavailable)? > 0 {
            return Ok(None);
        }
        self.invitation(None, None, Role::Owner, None).await.map(Some)
    }

    /// Stores a one-time link into `account` (none: an instance owner) and returns its URL.
    pub async fn invitation(
        &self,
        account: Option<&str>,
        email: Option<&str>,
        role: Role,
        created_by: Option<&str>,
    ) -> Result<String, AppError> {
        let token = random_token();
        let now = now_millis();
        self.store
            .insert_invite(&InviteRow {
                token_hash: token_hash(&token),
                account: account.map(str::to_owned),
                role: role.as_str().into(),
                email: email.map(|email| email.trim().to_lowercase()),
                created_by: created_by.map(str::to_owned),
                created_at: now,
                expires_at: now + INVITE_TTL_MS,
                used_at: None,
            })
            .await
            .map_err(unavailable)?;
        Ok(format!("{}/admin/invite/{token}", self.settings.public_url))
    }

    pub(super) async fn list_members(&self, access: &Access) -> Result<Vec<MemberView>, AppError> {
        let mut members = self.store.members(&access.account).await.map_err(unavailable)?;
        // Instance owners own every account without a membership: listed as its owners.
        for owner in self.store.list_users().await.map_err(unavailable)? {
            if owner.instance_owner != 0 && !members.iter().any(|member| member.user_id == owner.id) {
                members.push(crate::store::directory::MembershipRow {
                    user_id: owner.id,
                    email: owner.email,
                    account: access.account.clone(),
                    role: Role::Owner.as_str().to_owned(),
                    created_at: owner.created_at,
                });
            }
        }
        let mut views = Vec::with_capacity(members.len());
        for member in members {
            let user = self.store.user(&member.user_id).await.map_err(unavailable)?;
            views.push(MemberView {
                user_id: member.user_id,
                email: member.email,
                role: member.role.parse().unwrap_or(Role::Viewer),
                active: user.as_ref().is_some_and(|user| user.password_hash.is_some()),
                instance_owner: user.is_some_and(|user| user.instance_owner != 0),
            });
        }
        Ok(views)
    }

    pub(super) async fn invite_member(
        &self,
        access: &Access,
        email: Option<String>,
        role: Role,
    ) -> Result<OneTimeLink, AppError> {
        self.require(access, Role::Owner, "invite_member").await?;
        let email = email
            .map(|email| email.trim().to_lowercase())
            .filter(|email| !email.is_empty());
        let invited = match &email {
            Some(email) if !email.contains('@') => Err(AppError::InvalidInput("enter an email address".into())),
            _ => {
                self.invitation(
                    Some(&access.account),
                    email.as_deref(),
                    role,
                    access.actor.label().as_deref(),
                )
                .await
            }
        };
        let link = invited.map(|url| OneTimeLink {
            url,
            expires_at: millis_to_rfc3339(now_millis() + INVITE_TTL_MS),
        });
        let detail = json!({ "role": role.as_str() });
        self.audited(access, "invite_member", email.as_deref(), Some(detail), link)
            .await
    }

    pub(super) async fn change_role(&self, access: &Access, user_id: &str, role: Role) -> Result<(), AppError> {
        self.require(access, Role::Owner, "set_role").await?;
        let changed = match self.member_email(access, user_id).await {
            Ok(_) if role < Role::Owner && self.would_leave_no_owner(access, user_id).await? => Err(
                AppError::Conflict("an account keeps at least one owner: make someone else owner first".into()),
            ),
            Ok(_) => self
                .store
                .set_membership(user_id, &access.account, role.as_str(), now_millis())
                .await
                .map_err(unavailable),
            Err(error) => Err(error),
        };
        let target = self.member_email(access, user_id).await.ok();
        let detail = json!({ "role": role.as_str() });
        self.audited(access, "set_role", target.as_deref(), Some(detail), changed)
            .await
    }

    pub(super) async fn drop_member(&self, access: &Access, user_id: &str) -> Result<(), AppError> {
        self.require(access, Role::Owner, "remove_member").await?;
        let email = self.member_email(access, user_id).await;
        let removed = match &email {
            Ok(_) if self.would_leave_no_owner(access, user_id).await? => Err(AppError::Conflict(
                "an account keeps at least one owner: make someone else owner first".into(),
            )),
            Ok(_) => self
                .store
                .remove_membership(user_id, &access.account)
                .await
                .map(|_| ())
                .map_err(unavailable),
            Err(error) => Err(error.clone()),
        };
        let target = email.ok();
        self.audited(access, "remove_member", target.as_deref(), None, removed)
            .await
    }

    /// The email of a member of the account; `NotFound` for anyone else.
    async fn member_email(&self, access: &Access, user_id: &str) -> Result<String, AppError> {
        let members = self.store.members(&access.account).await.map_err(unavailable)?;
        members
            .into_iter()
            .find(|member| member.user_id == user_id)
            .map(|member| member.email)
            .ok_or_else(|| AppError::NotFound(format!("no member {user_id} in account {}", access.account)))
    }

    /// Whether taking the owner role from `user_id` would leave the account without an owner.
    async fn would_leave_no_owner(&self, access: &Access, user_id: &str) -> Result<bool, AppError> {
        let members = self.store.members(&access.account).await.map_err(unavailable)?;
        let other_owners = members
            .iter()
            .filter(|member| member.user_id != user_id && member.role == Role::Owner.as_str())
            .count();
        let is_owner = members
            .iter()
            .any(|member| member.user_id == user_id && member.role == Role::Owner.as_str());
        Ok(is_owner && other_owners == 0)
    }

    pub(super) async fn list_tokens(&self, access: &Access) -> Result<Vec<TokenView>, AppError> {
        let owner_sees_all = access.may(Role::Owner);
        let rows = match access.actor.user_id() {
            Some(user_id) if !owner_sees_all => self.store.list_api_tokens(Some(user_id)).await,
            _ => self.store.list_api_tokens(None).await,
        }
        .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .filter(|row| row.account == access.account)
            .map(token_view)
            .collect())
    }

    pub(super) async fn issue_token(
        &self,
        access: &Access,
        name: &str,
        role: Role,
        expires_in_days: Option<u32>,
    ) -> Result<CreatedToken, AppError> {
        let name = name.trim().to_owned();
        let issued = self.new_token(access, &name, role, expires_in_days).await;
        let detail = json!({ "role": role.as_str(), "expires_in_days": expires_in_days });
        self.audited(access, "create_token", Some(&name), Some(detail), issued)
            .await
    }

    async fn new_token(
        &self,
        access: &Access,
        name: &str,
        role: Role,
        expires_in_days: Option<u32>,
    ) -> Result<CreatedToken, AppError> {
        let Some(user_id) = access.actor.user_id() else {
            return Err(AppError::Forbidden("personal tokens belong to a signed-in user".into()));
        };
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AppError::InvalidInput(
                "a token needs a name of at most 100 characters".into(),
            ));
        }
        access.require(role)?;
        let value = format!("{API_TOKEN_PREFIX}{}", random_token());
        let now = now_millis();
        let row = ApiTokenRow {
            id: uuid::Uuid::now_v7().to_string(),
            token_hash: token_hash(&value),
            user_id: user_id.to_owned(),
            user_email: access.actor.label().unwrap_or_default(),
            account: access.account.clone(),
            role: role.as_str().into(),
            name: name.to_owned(),
            created_at: now,
            expires_at: expires_in_days.map(|days| now + i64::from(days) * DAY_MS),
            last_used_at: None,
            revoked_at: None,
        };
        self.store.insert_api_token(&row).await.map_err(unavailable)?;
        Ok(CreatedToken {
            token: token_view(row),
            value,
        })
    }

    pub(super) async fn withdraw_token(&self, access: &Access, id: &str) -> Result<(), AppError> {
        let tokens = self.list_tokens(access).await?;
        let revoked = match tokens.iter().find(|token| token.id == id) {
            None => Err(AppError::NotFound(format!("no token {id}"))),
            Some(token)
                if token.owner_email != access.actor.label().unwrap_or_default() && !access.may(Role::Owner) =>
            {
                Err(AppError::Forbidden(
                    "only its owner or an account owner revokes a token".into(),
                ))
            }
            Some(_) => self
                .store
                .revoke_api_token(id, now_millis())
                .await
                .map(|_| ())
                .map_err(unavailable),
        };
        let target = tokens
            .iter()
            .find(|token| token.id == id)
            .map(|token| token.name.clone());
        self.audited(access, "revoke_token", target.as_deref(), None, revoked)
            .await
    }

    pub(super) async fn read_audit(&self, access: &Access, filter: AuditFilter) -> Result<AuditPage, AppError> {
        let time = |name: &str, value: &Option<String>| -> Result<Option<i64>, AppError> {
            match value.as_deref().map(str::trim).filter(|value| !value.is_empty()) {
                None => Ok(None),
                Some(text) => parse_timestamp(text)
                    .map(Some)
                    .ok_or_else(|| AppError::InvalidInput(format!("{name} must be an RFC 3339 time, not {text:?}"))),
            }
        };
        let before_id = match filter.cursor.as_deref().filter(|cursor| !cursor.is_empty()) {
            None => None,
            Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| {
                AppError::InvalidInput(format!(
                    "cursor {cursor:?} is not an audit cursor: pass next_cursor back"
                ))
            })?),
        };
        let non_empty = |value: &Option<String>| value.clone().filter(|value| !value.trim().is_empty());
        let limit = filter.limit.unwrap_or(50).clamp(1, MAX_AUDIT_PAGE);
        let query = AuditQuery {
            account: Some(access.account.clone()),
            // Sign-ins and users belong to no account: the instance's owners see them beside each account's.
            with_instance_lines: access.instance_owner,
            action: non_empty(&filter.action),
            actor: non_empty(&filter.actor),
            outcome: non_empty(&filter.outcome),
            from: time("from", &filter.from)?,
            to: time("to", &filter.to)?,
            before_id,
            limit,
        };
        let mut rows = self.store.audit_page(&query).await.map_err(unavailable)?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok(AuditPage {
            next_cursor: more.then(|| rows.last().map(|row| row.id.to_string())).flatten(),
            entries: rows.into_iter().map(audit_view).collect(),
        })
    }

    pub(super) async fn list_subscriptions(&self, access: &Access) -> Result<Vec<SubscriptionView>, AppError> {
        let client = self.client_of(access)?;
        let listed = client.list_subscriptions().await.map_err(api_error)?;
        Ok(listed.iter().filter_map(subscription_view).collect())
    }

    pub(super) async fn add_subscription(
        &self,
        access: &Access,
        kind: &str,
        name: &str,
        fields: Vec<String>,
    ) -> Result<Vec<SubscriptionView>, AppError> {
        let client = self.client_of(access)?;
        let callback = self.callback_url(access)?;
        match kind {
            "object" => {
                let object = crate::ingest::payload::canonical_object_type(name);
                let fields = match fields
                    .into_iter()
                    .filter(|field| !field.trim().is_empty())
                    .collect::<Vec<_>>()
                {
                    chosen if chosen.is_empty() => default_fields(&object)
                        .ok_or_else(|| AppError::InvalidInput(format!("name the fields to watch on {object}")))?,
                    chosen => chosen,
                };
                subscriptions::subscribe(&client, &callback, &[(object, fields)])
                    .await
                    .map_err(api_error)?;
            }
            "event" => {
                let unique_id = format!("sm8-webhooks-{name}");
                client
                    .subscribe_event(name, &callback, &unique_id)
                    .await
                    .map_err(api_error)?;
            }
            other => {
                return Err(AppError::InvalidInput(format!(
                    "kind {other:?}: expected object or event"
                )))
            }
        }
        self.list_subscriptions(access).await
    }

    pub(super) async fn remove_subscription(
        &self,
        access: &Access,
        kind: &str,
        name: &str,
    ) -> Result<Vec<SubscriptionView>, AppError> {
        if !matches!(kind, "object" | "event") {
            return Err(AppError::InvalidInput(format!(
                "kind {kind:?}: expected object or event"
            )));
        }
        let client = self.client_of(access)?;
        let callback = self.callback_url(access)?;
        client
            .delete_subscription(kind, name, &callback)
            .await
            .map_err(api_error)?;
        self.list_subscriptions(access).await
    }

    fn client_of(
        &self,
        access: &Access,
    ) -> Result<std::sync::Arc<crate::servicem8::client::ServiceM8Client>, AppError> {
        self.live_account(access)?.client.clone().ok_or_else(|| {
            AppError::Conflict("the account has no ServiceM8 credentials: add an API key or connect ServiceM8".into())
        })
    }

    /// The account's receiver with its URL token, as ServiceM8 must call it.
    fn callback_url(&self, access: &Access) -> Result<String, AppError> {
        let account = self.live_account(access)?;
        let url = self.receiver_url(&account.slug);
        Ok(
            match account.secrets().url_token.as_deref().filter(|token| !token.is_empty()) {
                Some(token) => format!("{url}?token={token}"),
                None => url,
            },
        )
    }
}

/// A ServiceM8 error as the dashboard and the API show it.
fn api_error(error: crate::servicem8::client::ApiCallError) -> AppError {
    AppError::Unavailable(format!("ServiceM8: {error}"))
}

fn token_view(row: ApiTokenRow) -> TokenView {
    TokenView {
        id: row.id,
        name: row.name,
        account: row.account,
        role: row.role.parse().unwrap_or(Role::Viewer),
        owner_email: row.user_email,
        created_at: millis_to_rfc3339(row.created_at),
        expires_at: row.expires_at.map(millis_to_rfc3339),
        last_used_at: row.last_used_at.map(millis_to_rfc3339),
        revoked: row.revoked_at.is_some(),
    }
}

fn audit_view(row: AuditRow) -> AuditEntryView {
    AuditEntryView {
        id: row.id,
        at: millis_to_rfc3339(row.at),
        account: row.account,
        actor_kind: row.actor_kind,
        actor: row.actor,
        action: row.action,
        target: row.target,
        outcome: row.outcome,
        client_address: row.client_address,
        detail: row.detail,
    }
}

/// A subscription as ServiceM8 lists it (`object` + `fields`, or `event`), as the account page shows it.
fn subscription_view(listed: &Value) -> Option<SubscriptionView> {
    let text = |name: &str| listed.get(name).and_then(Value::as_str).map(str::to_owned);
    let (kind, name) = match (text("object"), text("event")) {
        (Some(object), _) => ("object", object),
        (None, Some(event)) => ("event", event),
        (None, None) => return None,
    };
    let fields = match listed.get("fields") {
        Some(Value::String(list)) => list
            .split(',')
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect(),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    Some(SubscriptionView {
        kind: kind.into(),
        name,
        fields,
        callback_url: text("callback_url").unwrap_or_default(),
        active: listed
            .get("active")
            .map(|active| !matches!(active, Value::Bool(false)) && active != "0" && active != 0)
            .unwrap_or(true),
    })
}
