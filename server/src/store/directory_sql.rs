//! `Directory` written once for both engines, with `$n` binds. Writes a user relies on end with `synced`.

use async_trait::async_trait;
use sqlx::{Connection, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::directory::{
    AccountRow, ApiTokenRow, AuditQuery, AuditRow, Directory, InviteRow, MembershipRow, NewAuditEntry, OAuthStateRow,
    SealedValue, UserRow,
};
use super::engine::{Engine, RowsAffected};
use super::outbound::destination_secrets_context;
use super::{now_millis, StoreError};

const ACCOUNT_COLUMNS: &str = "slug, name, servicem8_account_uuid, disabled_at, credential_kind, sealed_secrets, \
     oauth_scopes, oauth_expires_at, oauth_error, requests_per_minute, requests_per_day, sync_interval_seconds, \
     retention_days, created_at, updated_at";
const USER_COLUMNS: &str = "id, email, password_hash, instance_owner, created_at, updated_at";
const MEMBERSHIP_SELECT: &str =
    "SELECT m.user_id, u.email, m.account, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id";
const TOKEN_SELECT: &str = "SELECT t.id, t.token_hash, t.user_id, u.email AS user_email, t.account, t.role, t.name, \
     t.created_at, t.expires_at, t.last_used_at, t.revoked_at FROM api_tokens t JOIN users u ON u.id = t.user_id";
const INVITE_COLUMNS: &str = "token_hash, account, role, email, created_by, created_at, expires_at, used_at";
const AUDIT_COLUMNS: &str = "id, at, account, actor_kind, actor, action, target, outcome, client_address, detail";
/// The sealing context of an account's secrets, `accounts:{slug}:secrets`.
pub fn account_secrets_context(slug: &str) -> String {
    format!("accounts:{slug}:secrets")
}

/// Where the sealed secrets of a context live: the statement that replaces them (`$1` the sealed value, `$2` the
/// key) and the row's key, for an account's (`accounts:{slug}:secrets`) or a destination's
/// (`destinations:{id}:secrets`).
fn sealed_secrets_owner(context: &str) -> Option<(&'static str, &str)> {
    let (table, rest) = context.split_once(':')?;
    let key = rest.strip_suffix(":secrets")?;
    match table {
        "accounts" => Some(("UPDATE accounts SET sealed_secrets = $1 WHERE slug = $2", key)),
        "destinations" => Some(("UPDATE destinations SET sealed_secrets = $1 WHERE id = $2", key)),
        _ => None,
    }
}

#[async_trait]
impl<E> Directory for E
where
    E: Engine,
    for<'c> &'c mut <E::Db as Database>::Connection: Executor<'c, Database = E::Db>,
    for<'q> <E::Db as Database>::Arguments<'q>: IntoArguments<'q, E::Db>,
    for<'q> String: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q str: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q String: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> i64: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> Option<i64>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> Option<&'q str>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q Option<String>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> Option<String>: Encode<'q, E::Db> + Type<E::Db>,
    for<'q> &'q Option<serde_json::Value>: Encode<'q, E::Db> + Type<E::Db>,
    for<'r> String: Decode<'r, E::Db> + Type<E::Db>,
    for<'r> i64: Decode<'r, E::Db> + Type<E::Db>,
    for<'r> (i64,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (i64, i64): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (String,): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> (String, Option<String>): FromRow<'r, <E::Db as Database>::Row>,
    for<'r> AccountRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> UserRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> MembershipRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> ApiTokenRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> InviteRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> OAuthStateRow: FromRow<'r, <E::Db as Database>::Row>,
    for<'r> AuditRow: FromRow<'r, <E::Db as Database>::Row>,
{
    async fn list_accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY slug");
        Ok(sqlx::query_as(&sql).fetch_all(self.readers()).await?)
    }

    async fn account(&self, slug: &str) -> Result<Option<AccountRow>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE slug = $1");
        Ok(sqlx::query_as(&sql).bind(slug).fetch_optional(self.readers()).await?)
    }

    async fn accounts_version(&self) -> Result<(i64, i64), StoreError> {
        Ok(
            sqlx::query_as("SELECT COALESCE(MAX(updated_at), 0), COUNT(*) FROM accounts")
                .fetch_one(self.readers())
                .await?,
        )
    }

    async fn insert_account(&self, account: &AccountRow) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             $14, $15) ON CONFLICT (slug) DO NOTHING"
        );
        let mut writer = self.writer().await?;
        let inserted = bind_account(sqlx::query(&sql), account).execute(&mut *writer).await?;
        self.synced(writer).await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn update_account(&self, account: &AccountRow) -> Result<bool, StoreError> {
        let sql =
            "UPDATE accounts SET name = $2, servicem8_account_uuid = $3, disabled_at = $4, credential_kind = $5, \
             sealed_secrets = $6, oauth_scopes = $7, oauth_expires_at = $8, oauth_error = $9, \
             requests_per_minute = $10, requests_per_day = $11, sync_interval_seconds = $12, retention_days = $13, \
             created_at = $14, updated_at = $15 WHERE slug = $1";
        let mut writer = self.writer().await?;
        let updated = bind_account(sqlx::query(sql), account).execute(&mut *writer).await?;
        self.synced(writer).await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn user(&self, id: &str) -> Result<Option<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        Ok(sqlx::query_as(&sql).bind(id).fetch_optional(self.readers()).await?)
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        Ok(sqlx::query_as(&sql)
            .bind(email.trim().to_lowercase())
            .fetch_optional(self.readers())
            .await?)
    }

    async fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY email");
        Ok(sqlx::query_as(&sql).fetch_all(self.readers()).await?)
    }

    async fn count_users(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.readers())
            .await?)
    }

    async fn insert_user(&self, user: &UserRow) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING"
        );
        let mut writer = self.writer().await?;
        let inserted = sqlx::query(&sql)
            .bind(&user.id)
            .bind(user.email.trim().to_lowercase())
            .bind(&user.password_hash)
            .bind(user.instance_owner)
            .bind(user.created_at)
            .bind(user.updated_at)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn set_password(&self, user_id: &str, password_hash: &str, now: i64) -> Result<bool, StoreError> {
        let mut writer = self.writer().await?;
        let updated = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(now)
            .bind(user_id)
            .execute(&mut *writer)
            .await?;
        // A new password ends every session the old one opened.
        sqlx::query("DELETE FROM admin_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError> {
        let mut writer = self.writer().await?;
        let mut transaction = writer.begin_with(Self::BEGIN_WRITE).await?;
        for sql in [
            "DELETE FROM memberships WHERE user_id = $1",
            "DELETE FROM api_tokens WHERE user_id = $1",
            "DELETE FROM admin_sessions WHERE user_id = $1",
        ] {
            sqlx::query(sql).bind(user_id).execute(&mut *transaction).await?;
        }
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        self.synced(writer).await?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn memberships_of(&self, user_id: &str) -> Result<Vec<MembershipRow>, StoreError> {
        let sql = format!("{MEMBERSHIP_SELECT} WHERE m.user_id = $1 ORDER BY m.account");
        Ok(sqlx::query_as(&sql).bind(user_id).fetch_all(self.readers()).await?)
    }

    async fn members(&self, account: &str) -> Result<Vec<MembershipRow>, StoreError> {
        let sql = format!("{MEMBERSHIP_SELECT} WHERE m.account = $1 ORDER BY u.email");
        Ok(sqlx::query_as(&sql).bind(account).fetch_all(self.readers()).await?)
    }

    async fn set_membership(&self, user_id: &str, account: &str, role: &str, now: i64) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        sqlx::query(
            "INSERT INTO memberships (user_id, account, role, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, account) DO UPDATE SET role = excluded.role",
        )
        .bind(user_id)
        .bind(account)
        .bind(role)
        .bind(now)
        .execute(&mut *writer)
        .await?;
        self.synced(writer).await
    }

    async fn remove_membership(&self, user_id: &str, account: &str) -> Result<bool, StoreError> {
        let mut writer = self.writer().await?;
        let removed = sqlx::query("DELETE FROM memberships WHERE user_id = $1 AND account = $2")
            .bind(user_id)
            .bind(account)
            .execute(&mut *writer)
            .await?;
        // Tokens of that account stop working with the role that granted them.
        sqlx::query("DELETE FROM api_tokens WHERE user_id = $1 AND account = $2")
            .bind(user_id)
            .bind(account)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await?;
        Ok(removed.rows_affected() == 1)
    }

    async fn insert_api_token(&self, token: &ApiTokenRow) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, token_hash, user_id, account, role, name, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&token.id)
        .bind(&token.token_hash)
        .bind(&token.user_id)
        .bind(&token.account)
        .bind(&token.role)
        .bind(&token.name)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut *writer)
        .await?;
        self.synced(writer).await
    }

    async fn api_token_by_hash(&self, token_hash: &str) -> Result<Option<ApiTokenRow>, StoreError> {
        let sql = format!("{TOKEN_SELECT} WHERE t.token_hash = $1");
        Ok(sqlx::query_as(&sql)
            .bind(token_hash)
            .fetch_optional(self.readers())
            .await?)
    }

    async fn list_api_tokens(&self, user_id: Option<&str>) -> Result<Vec<ApiTokenRow>, StoreError> {
        let sql = format!("{TOKEN_SELECT} WHERE ($1 IS NULL OR t.user_id = $1) ORDER BY t.created_at DESC");
        Ok(sqlx::query_as(&sql).bind(user_id).fetch_all(self.readers()).await?)
    }

    async fn revoke_api_token(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let mut writer = self.writer().await?;
        let revoked = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await?;
        Ok(revoked.rows_affected() == 1)
    }

    async fn touch_api_token(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        // Bookkeeping: once a minute is enough, and it need not wait for the disk.
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND COALESCE(last_used_at, 0) < $1 - 60000")
            .bind(now)
            .bind(id)
            .execute(&mut *writer)
            .await?;
        Ok(())
    }

    async fn insert_invite(&self, invite: &InviteRow) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO invites ({INVITE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        let mut writer = self.writer().await?;
        sqlx::query(&sql)
            .bind(&invite.token_hash)
            .bind(&invite.account)
            .bind(&invite.role)
            .bind(&invite.email)
            .bind(&invite.created_by)
            .bind(invite.created_at)
            .bind(invite.expires_at)
            .bind(invite.used_at)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await
    }

    async fn invite(&self, token_hash: &str, now: i64) -> Result<Option<InviteRow>, StoreError> {
        let sql = format!(
            "SELECT {INVITE_COLUMNS} FROM invites WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2"
        );
        Ok(sqlx::query_as(&sql)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(self.readers())
            .await?)
    }

    async fn redeem_invite(&self, token_hash: &str, now: i64) -> Result<Option<InviteRow>, StoreError> {
        let sql = format!(
            "UPDATE invites SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
             RETURNING {INVITE_COLUMNS}"
        );
        let mut writer = self.writer().await?;
        let invite = sqlx::query_as(&sql)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut *writer)
            .await?;
        self.synced(writer).await?;
        Ok(invite)
    }

    async fn create_session(&self, token_hash: &str, user_id: &str, expires_at: i64) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        sqlx::query("INSERT INTO admin_sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now_millis())
            .bind(expires_at)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await
    }

    async fn session_user(&self, token_hash: &str, now: i64) -> Result<Option<String>, StoreError> {
        let found: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT token_hash, user_id FROM admin_sessions WHERE token_hash = $1 AND expires_at > $2")
                .bind(token_hash)
                .bind(now)
                .fetch_optional(self.readers())
                .await?;
        Ok(found.and_then(|(_, user)| user))
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1 OR expires_at <= $2")
            .bind(token_hash)
            .bind(now_millis())
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await
    }

    async fn insert_oauth_state(&self, state: &OAuthStateRow) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        sqlx::query("DELETE FROM oauth_states WHERE expires_at <= $1")
            .bind(state.created_at)
            .execute(&mut *writer)
            .await?;
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, account, user_id, scopes, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&state.state_hash)
        .bind(&state.account)
        .bind(&state.user_id)
        .bind(&state.scopes)
        .bind(state.created_at)
        .bind(state.expires_at)
        .execute(&mut *writer)
        .await?;
        self.synced(writer).await
    }

    async fn take_oauth_state(&self, state_hash: &str, now: i64) -> Result<Option<OAuthStateRow>, StoreError> {
        let mut writer = self.writer().await?;
        let state = sqlx::query_as(
            "DELETE FROM oauth_states WHERE state_hash = $1 AND expires_at > $2
             RETURNING state_hash, account, user_id, scopes, created_at, expires_at",
        )
        .bind(state_hash)
        .bind(now)
        .fetch_optional(&mut *writer)
        .await?;
        self.synced(writer).await?;
        Ok(state)
    }

    async fn record_audit(&self, entry: &NewAuditEntry) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        sqlx::query(
            "INSERT INTO audit_log (at, account, actor_kind, actor, action, target, outcome, client_address, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(entry.at)
        .bind(&entry.account)
        .bind(&entry.actor_kind)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.outcome)
        .bind(&entry.client_address)
        .bind(&entry.detail)
        .execute(&mut *writer)
        .await?;
        self.synced(writer).await
    }

    async fn audit_page(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let actor_pattern = query.actor.as_ref().map(|actor| format!("%{}%", actor.to_lowercase()));
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log
             WHERE ($1 IS NULL OR account = $1 OR ($9 = 1 AND account IS NULL)) AND ($2 IS NULL OR action = $2)
               AND ($3 IS NULL OR LOWER(COALESCE(actor, '')) LIKE $3) AND ($4 IS NULL OR outcome = $4)
               AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) AND ($7 IS NULL OR id < $7)
             ORDER BY id DESC LIMIT $8"
        );
        Ok(sqlx::query_as(&sql)
            .bind(&query.account)
            .bind(&query.action)
            .bind(actor_pattern)
            .bind(&query.outcome)
            .bind(query.from)
            .bind(query.to)
            .bind(query.before_id)
            .bind(i64::from(query.limit) + 1)
            .bind(i64::from(query.with_instance_lines))
            .fetch_all(self.readers())
            .await?)
    }

    async fn delete_audit_before(&self, cutoff: i64) -> Result<u64, StoreError> {
        let mut writer = self.writer().await?;
        let deleted = sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(cutoff)
            .execute(&mut *writer)
            .await?;
        self.synced(writer).await?;
        Ok(deleted.rows_affected())
    }

    async fn sealed_values(&self) -> Result<Vec<SealedValue>, StoreError> {
        let mut values = Vec::new();
        for (sql, context) in [
            (
                "SELECT slug, sealed_secrets FROM accounts WHERE sealed_secrets IS NOT NULL",
                account_secrets_context as fn(&str) -> String,
            ),
            (
                "SELECT id, sealed_secrets FROM destinations WHERE sealed_secrets IS NOT NULL",
                destination_secrets_context,
            ),
        ] {
            let rows: Vec<(String, Option<String>)> = sqlx::query_as(sql).fetch_all(self.readers()).await?;
            values.extend(rows.into_iter().filter_map(|(key, sealed)| {
                Some(SealedValue {
                    context: context(&key),
                    sealed: sealed?,
                })
            }));
        }
        Ok(values)
    }

    async fn replace_sealed_values(&self, values: &[SealedValue]) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        let mut transaction = writer.begin_with(Self::BEGIN_WRITE).await?;
        for value in values {
            if value.context == crate::sealing::CHECK_CONTEXT {
                sqlx::query("UPDATE settings SET value = $1 WHERE key = $2")
                    .bind(&value.sealed)
                    .bind(crate::sealing::CHECK_SETTING)
                    .execute(&mut *transaction)
                    .await?;
                continue;
            }
            let (sql, key) = sealed_secrets_owner(&value.context)
                .ok_or_else(|| StoreError::Corrupt(format!("no sealed value lives at {:?}", value.context)))?;
            sqlx::query(sql)
                .bind(&value.sealed)
                .bind(key)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        self.synced(writer).await
    }
}

/// Binds every column of an account in `ACCOUNT_COLUMNS` order.
fn bind_account<'q, DB>(
    query: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    account: &'q AccountRow,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    for<'a> &'a String: Encode<'a, DB> + Type<DB>,
    for<'a> &'a Option<String>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    query
        .bind(&account.slug)
        .bind(&account.name)
        .bind(&account.servicem8_account_uuid)
        .bind(account.disabled_at)
        .bind(&account.credential_kind)
        .bind(&account.sealed_secrets)
        .bind(&account.oauth_scopes)
        .bind(account.oauth_expires_at)
        .bind(&account.oauth_error)
        .bind(account.requests_per_minute)
        .bind(account.requests_per_day)
        .bind(account.sync_interval_seconds)
        .bind(account.retention_days)
        .bind(account.created_at)
        .bind(account.updated_at)
}
