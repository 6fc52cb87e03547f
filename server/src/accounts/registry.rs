//! `Accounts`: every account with its secrets opened and its ServiceM8 client built, kept in memory because the
//! receiver needs an account's secrets on every delivery. Reads take a snapshot; a change made here replaces it at
//! once, and a change made by another node is picked up within `REFRESH_INTERVAL` (one cheap query).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use super::{slug_problem, AccountSecrets, CredentialKind, ProcessingMode};
use crate::analytics::tally::Tallies;
use crate::ingest::DeliverySecrets;
use crate::sealing::{SealError, Sealer};
use crate::secret::Secret;
use crate::servicem8::client::{Budget, Credentials, ServiceM8Args, ServiceM8Client};
use crate::servicem8::oauth::{OAuthApp, OAuthSession, OAuthTokens, RefreshOutcome, TokenKeeper};
use crate::store::directory::{AccountRow, NewAuditEntry};
use crate::store::{account_secrets_context, now_millis, BudgetLimits, Store, StoreError, DEFAULT_ACCOUNT};

/// How often the registry asks whether another node changed an account.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// The OAuth connection of an account, as its page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthStatus {
    pub scopes: Option<String>,
    pub expires_at: Option<i64>,
    /// The last refresh that failed; cleared by the next that succeeds.
    pub error: Option<String>,
}

/// One account, ready to use.
pub struct LiveAccount {
    pub slug: String,
    pub name: String,
    pub servicem8_account_uuid: Option<String>,
    pub disabled: bool,
    pub credential_kind: CredentialKind,
    pub oauth: OAuthStatus,
    /// ServiceM8's limits as configured for the account, before the margin.
    pub requests_per_minute: i64,
    pub requests_per_day: i64,
    pub sync_interval_seconds: u64,
    pub retention_days: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// What its deliveries are verified with.
    pub delivery: DeliverySecrets,
    /// Its ServiceM8 API, when it has credentials.
    pub client: Option<Arc<ServiceM8Client>>,
    pub(super) secrets: AccountSecrets,
}

impl LiveAccount {
    /// Which of its secrets are set (never their values).
    pub fn secrets(&self) -> &AccountSecrets {
        &self.secrets
    }

    pub fn processing_mode(&self) -> ProcessingMode {
        if self.client.is_some() {
            ProcessingMode::Fetch
        } else {
            ProcessingMode::PayloadOnly
        }
    }
}

/// What a new account starts with.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub slug: String,
    pub name: String,
    pub servicem8_account_uuid: Option<String>,
    pub secrets: AccountSecrets,
}

/// The default account as the environment describes it.
#[derive(Debug, Clone)]
pub struct DefaultAccount {
    pub servicem8_account_uuid: Option<String>,
    pub secrets: AccountSecrets,
    pub requests_per_minute: i64,
    pub requests_per_day: i64,
    pub sync_interval_seconds: u64,
    pub retention_days: i64,
}

#[derive(Default)]
struct Snapshot {
    by_slug: HashMap<String, Arc<LiveAccount>>,
    /// The stored version it was built from: newest `updated_at` and count.
    version: (i64, i64),
}

/// Every account of the deployment.
pub struct Accounts {
    store: Arc<dyn Store>,
    sealer: Sealer,
    api: ServiceM8Args,
    oauth_app: Option<OAuthApp>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// What this node counts for the accounts' analytics between rollup passes.
    tallies: Tallies,
    /// Handed to each OAuth session, so a refresh can reach back to seal its tokens.
    me: std::sync::Weak<Accounts>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the secrets of account {slug} do not open: {source}")]
    Sealed { slug: String, source: SealError },
    #[error("{0}")]
    Invalid(String),
    #[error("building the ServiceM8 client of account {slug}: {reason}")]
    Client { slug: String, reason: String },
}

impl Accounts {
    /// Loads every account. `api` says how to reach ServiceM8 (base URL, timeout, margin); `oauth_app` is the
    /// registered OAuth application, if any.
    pub async fn load(
        store: Arc<dyn Store>,
        sealer: Sealer,
        api: ServiceM8Args,
        oauth_app: Option<OAuthApp>,
    ) -> Result<Arc<Accounts>, AccountError> {
        let accounts = Arc::new_cyclic(|me| Accounts {
            store,
            sealer,
            api,
            oauth_app,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            tallies: Tallies::default(),
            me: me.clone(),
        });
        accounts.reload().await?;
        Ok(accounts)
    }

    /// What this node counted for the accounts' analytics since its last rollup pass: the requests their budgets
    /// granted, and what the receiver and the relay count into it.
    pub fn tallies(&self) -> &Tallies {
        &self.tallies
    }

    pub fn get(&self, slug: &str) -> Option<Arc<LiveAccount>> {
        self.current().by_slug.get(slug).cloned()
    }

    /// The account a ServiceM8 account UUID (an add-on JWT's `auth.accountUUID`) belongs to.
    pub fn by_servicem8_uuid(&self, uuid: &str) -> Option<Arc<LiveAccount>> {
        self.current()
            .by_slug
            .values()
            .find(|account| {
                account
                    .servicem8_account_uuid
                    .as_deref()
                    .is_some_and(|known| known.eq_ignore_ascii_case(uuid))
            })
            .cloned()
    }

    /// Every account, by slug.
    pub fn all(&self) -> Vec<Arc<LiveAccount>> {
        let mut all: Vec<_> = self.current().by_slug.values().cloned().collect();
        all.sort_by(|a, b| a.slug.cmp(&b.slug));
        all
    }

    pub fn oauth_app(&self) -> Option<&OAuthApp> {
        self.oauth_app.as_ref()
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .expect("the snapshot lock is never poisoned")
            .clone()
    }

    /// Reads every account again, keeping the live state (clients, sessions) of those that did not change.
    pub async fn reload(&self) -> Result<(), AccountError> {
        let version = self.store.accounts_version().await?;
        let rows = self.store.list_accounts().await?;
        let previous = self.current();
        let mut by_slug = HashMap::with_capacity(rows.len());
        for row in rows {
            let live = match previous.by_slug.get(&row.slug) {
                Some(known) if known.updated_at == row.updated_at => known.clone(),
                _ => Arc::new(self.open(row)?),
            };
            by_slug.insert(live.slug.clone(), live);
        }
        *self.snapshot.write().expect("the snapshot lock is never poisoned") = Arc::new(Snapshot { by_slug, version });
        Ok(())
    }

    /// Reloads whenever another node changed an account, until `shutdown`.
    pub fn spawn_refresh(self: &Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let accounts = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(REFRESH_INTERVAL);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = shutdown.cancelled() => return,
                }
                let changed = match accounts.store.accounts_version().await {
                    Ok(version) => version != accounts.current().version,
                    Err(error) => {
                        tracing::warn!(%error, "could not check the accounts for changes");
                        false
                    }
                };
                if changed {
                    if let Err(error) = accounts.reload().await {
                        tracing::error!(%error, "reloading the accounts failed");
                    }
                }
            }
        })
    }

    /// Creates the default account from the environment, or brings its settings in line with it: what the
    /// environment sets wins; a secret it leaves unset keeps its stored value.
    pub async fn apply_default(&self, default: &DefaultAccount) -> Result<(), AccountError> {
        let now = now_millis();
        let stored = self.store.account(DEFAULT_ACCOUNT).await?;
        let mut secrets = match &stored {
            Some(row) => self.open_secrets(row)?,
            None => AccountSecrets::default(),
        };
        merge_configured(&mut secrets, &default.secrets);
        let kind = credential_kind_of(&secrets);
        let mut row = stored.clone().unwrap_or_else(|| AccountRow {
            slug: DEFAULT_ACCOUNT.into(),
            name: "Default".into(),
            servicem8_account_uuid: None,
            disabled_at: None,
            credential_kind: CredentialKind::None.as_str().into(),
            sealed_secrets: None,
            oauth_scopes: None,
            oauth_expires_at: None,
            oauth_error: None,
            requests_per_minute: default.requests_per_minute,
            requests_per_day: default.requests_per_day,
            sync_interval_seconds: 0,
            retention_days: 0,
            created_at: now,
            updated_at: now,
        });
        if default.servicem8_account_uuid.is_some() {
            row.servicem8_account_uuid = default.servicem8_account_uuid.clone();
        }
        row.credential_kind = kind.as_str().into();
        row.requests_per_minute = default.requests_per_minute;
        row.requests_per_day = default.requests_per_day;
        row.sync_interval_seconds = i64::try_from(default.sync_interval_seconds).unwrap_or(i64::MAX);
        row.retention_days = default.retention_days;
        row.sealed_secrets = Some(self.seal_secrets(DEFAULT_ACCOUNT, &secrets));
        let unchanged = stored.as_ref().is_some_and(|stored| {
            same_settings(stored, &row) && self.open_secrets(stored).is_ok_and(|old| old == secrets)
        });
        if !unchanged {
            row.updated_at = now.max(row.updated_at + 1);
            if stored.is_some() {
                self.store.update_account(&row).await?;
            } else {
                self.store.insert_account(&row).await?;
            }
        }
        self.reload().await
    }

    /// Creates an account with the budget, sync interval and retention of the default; false when the slug is
    /// taken.
    pub async fn create(&self, new: NewAccount, defaults: &DefaultAccount) -> Result<bool, AccountError> {
        if let Some(problem) = slug_problem(&new.slug) {
            return Err(AccountError::Invalid(problem));
        }
        if new.name.trim().is_empty() {
            return Err(AccountError::Invalid("an account needs a name".into()));
        }
        let now = now_millis();
        let row = AccountRow {
            slug: new.slug.clone(),
            name: new.name.trim().to_owned(),
            servicem8_account_uuid: new.servicem8_account_uuid.filter(|uuid| !uuid.trim().is_empty()),
            disabled_at: None,
            credential_kind: credential_kind_of(&new.secrets).as_str().into(),
            sealed_secrets: Some(self.seal_secrets(&new.slug, &new.secrets)),
            oauth_scopes: None,
            oauth_expires_at: None,
            oauth_error: None,
            requests_per_minute: defaults.requests_per_minute,
            requests_per_day: defaults.requests_per_day,
            sync_interval_seconds: i64::try_from(defaults.sync_interval_seconds).unwrap_or(i64::MAX),
            retention_days: defaults.retention_days,
            created_at: now,
            updated_at: now,
        };
        let created = self.store.insert_account(&row).await?;
        self.reload().await?;
        Ok(created)
    }

    /// Applies `change` to the stored account (its settings and opened secrets) and saves it; `None` when there
    /// is no such account.
    pub async fn update<F>(&self, slug: &str, change: F) -> Result<Option<Arc<LiveAccount>>, AccountError>
    where
        F: FnOnce(&mut AccountRow, &mut AccountSecrets) -> Result<(), String> + Send,
    {
        let Some(mut row) = self.store.account(slug).await? else {
            return Ok(None);
        };
        let mut secrets = self.open_secrets(&row)?;
        change(&mut row, &mut secrets).map_err(AccountError::Invalid)?;
        row.credential_kind = credential_kind_of(&secrets).as_str().into();
        row.sealed_secrets = Some(self.seal_secrets(slug, &secrets));
        row.updated_at = now_millis().max(row.updated_at + 1);
        self.store.update_account(&row).await?;
        self.reload().await?;
        Ok(self.get(slug))
    }

    /// Stores the tokens an OAuth connection (or refresh) produced, and clears any refresh failure.
    pub async fn store_oauth_tokens(&self, slug: &str, tokens: &OAuthTokens) -> Result<(), AccountError> {
        self.update(slug, |row, secrets| {
            secrets.access_token = Some(tokens.access_token.expose().to_owned());
            secrets.refresh_token = Some(tokens.refresh_token.expose().to_owned());
            secrets.api_key = None;
            row.oauth_scopes = Some(tokens.scopes.clone());
            row.oauth_expires_at = Some(tokens.expires_at);
            row.oauth_error = None;
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// Records a failed refresh on the account, for its page; true when the account was not failing already.
    async fn record_refresh_failure(&self, slug: &str, reason: &str) -> Result<bool, AccountError> {
        let mut newly_failing = false;
        self.update(slug, |row, _| {
            newly_failing = row.oauth_error.is_none();
            row.oauth_error = Some(reason.chars().take(500).collect());
            Ok(())
        })
        .await?;
        Ok(newly_failing)
    }

    /// Audits a refresh, by the server itself: each success (new tokens are a credential change), and a failure
    /// when it starts (while failing, every API call tries again; one line says it).
    async fn audit_refresh(&self, slug: &str, outcome: &RefreshOutcome) {
        let (result, detail) = match outcome {
            RefreshOutcome::Refreshed(tokens) => (
                "success",
                serde_json::json!({ "scopes": tokens.scopes, "expires_at": tokens.expires_at }),
            ),
            RefreshOutcome::Failed(reason) => ("failure", serde_json::json!({ "reason": reason })),
        };
        let entry = NewAuditEntry {
            at: now_millis(),
            account: Some(slug.to_owned()),
            actor_kind: "system".into(),
            actor: None,
            action: "refresh_oauth".into(),
            target: Some(slug.to_owned()),
            outcome: result.into(),
            client_address: None,
            detail: Some(detail),
        };
        if let Err(error) = self.store.record_audit(&entry).await {
            tracing::error!(%error, account = %slug, "could not write an audit line");
        }
    }

    fn seal_secrets(&self, slug: &str, secrets: &AccountSecrets) -> String {
        let json = serde_json::to_vec(secrets).expect("account secrets serialize");
        self.sealer.seal(&json, &account_secrets_context(slug))
    }

    fn open_secrets(&self, row: &AccountRow) -> Result<AccountSecrets, AccountError> {
        let Some(sealed) = row.sealed_secrets.as_deref() else {
            return Ok(AccountSecrets::default());
        };
        let sealed_error = |source| AccountError::Sealed {
            slug: row.slug.clone(),
            source,
        };
        let opened = self
            .sealer
            .open(sealed, &account_secrets_context(&row.slug))
            .map_err(sealed_error)?;
        serde_json::from_slice(&opened).map_err(|_| sealed_error(SealError::Malformed))
    }

    /// The live form of a stored account: secrets opened, ServiceM8 client built.
    fn open(&self, row: AccountRow) -> Result<LiveAccount, AccountError> {
        let secrets = self.open_secrets(&row)?;
        let kind = CredentialKind::parse(&row.credential_kind);
        let limits = self.limits(row.requests_per_minute, row.requests_per_day);
        let credentials = self.credentials(&row, &secrets, kind);
        let client = match credentials {
            Some(credentials) => {
                let budget = Budget::new(self.store.clone(), &row.slug, limits, self.tallies.clone());
                let client =
                    ServiceM8Client::new(&self.api, credentials, budget).map_err(|error| AccountError::Client {
                        slug: row.slug.clone(),
                        reason: error.to_string(),
                    })?;
                Some(Arc::new(client))
            }
            None => None,
        };
        Ok(LiveAccount {
            delivery: secrets.delivery(),
            disabled: row.disabled_at.is_some(),
            credential_kind: kind,
            oauth: OAuthStatus {
                scopes: row.oauth_scopes,
                expires_at: row.oauth_expires_at,
                error: row.oauth_error,
            },
            requests_per_minute: row.requests_per_minute,
            requests_per_day: row.requests_per_day,
            sync_interval_seconds: u64::try_from(row.sync_interval_seconds).unwrap_or(0),
            retention_days: row.retention_days,
            created_at: row.created_at,
            updated_at: row.updated_at,
            slug: row.slug,
            name: row.name,
            servicem8_account_uuid: row.servicem8_account_uuid,
            client,
            secrets,
        })
    }

    /// The limits the budget keeps: the account's, less the instance's margin.
    pub fn limits(&self, per_minute: i64, per_day: i64) -> BudgetLimits {
        ServiceM8Args {
            servicem8_requests_per_minute: per_minute,
            servicem8_requests_per_day: per_day,
            ..self.api.clone()
        }
        .budget_limits()
    }

    fn credentials(&self, row: &AccountRow, secrets: &AccountSecrets, kind: CredentialKind) -> Option<Credentials> {
        let present = |value: &Option<String>| value.clone().filter(|v| !v.is_empty()).map(Secret::new);
        match kind {
            CredentialKind::None => None,
            CredentialKind::ApiKey => present(&secrets.api_key).map(Credentials::ApiKey),
            CredentialKind::OAuth => {
                let access_token = present(&secrets.access_token)?;
                let (Some(app), Some(refresh_token)) = (self.oauth_app.clone(), present(&secrets.refresh_token)) else {
                    // A bearer token without a way to refresh it (SERVICEM8_ACCESS_TOKEN) is used as it is.
                    return Some(Credentials::AccessToken(access_token));
                };
                let tokens = OAuthTokens {
                    access_token,
                    refresh_token,
                    expires_at: row.oauth_expires_at.unwrap_or(0),
                    scopes: row.oauth_scopes.clone().unwrap_or_default(),
                };
                Some(Credentials::OAuth(Arc::new(OAuthSession::new(
                    app,
                    tokens,
                    self.token_keeper(&row.slug),
                ))))
            }
        }
    }

    /// Where an account's OAuth session hands refreshed tokens: sealed into the account.
    fn token_keeper(&self, slug: &str) -> TokenKeeper {
        let accounts = self.me.clone();
        let slug = slug.to_owned();
        Arc::new(move |outcome| {
            let (accounts, slug) = (accounts.clone(), slug.clone());
            async move {
                let Some(accounts) = accounts.upgrade() else { return };
                let kept = match &outcome {
                    RefreshOutcome::Refreshed(tokens) => {
                        accounts.store_oauth_tokens(&slug, tokens).await.map(|()| true)
                    }
                    RefreshOutcome::Failed(reason) => accounts.record_refresh_failure(&slug, reason).await,
                };
                match kept {
                    Ok(true) => accounts.audit_refresh(&slug, &outcome).await,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::error!(%error, account = %slug, "could not store the outcome of an OAuth refresh")
                    }
                }
            }
            .boxed()
        })
    }
}

/// Copies every secret `configured` sets (non-empty) over `stored`.
fn merge_configured(stored: &mut AccountSecrets, configured: &AccountSecrets) {
    let set = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
    if let Some(key) = set(&configured.api_key) {
        stored.api_key = Some(key);
        stored.access_token = None;
        stored.refresh_token = None;
    }
    if let Some(token) = set(&configured.access_token) {
        stored.access_token = Some(token);
        stored.refresh_token = None;
    }
    for (to, from) in [
        (&mut stored.webhook_secret, &configured.webhook_secret),
        (&mut stored.url_token, &configured.url_token),
        (&mut stored.app_secret, &configured.app_secret),
    ] {
        if let Some(value) = set(from) {
            *to = Some(value);
        }
    }
    if !configured.standard_webhook_secrets.is_empty() {
        stored.standard_webhook_secrets = configured.standard_webhook_secrets.clone();
    }
}

/// How an account reaches ServiceM8, from what it holds: an API key wins, then OAuth tokens.
fn credential_kind_of(secrets: &AccountSecrets) -> CredentialKind {
    let set = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
    if set(&secrets.api_key) {
        CredentialKind::ApiKey
    } else if set(&secrets.access_token) {
        CredentialKind::OAuth
    } else {
        CredentialKind::None
    }
}

/// Whether two rows of the same account hold the same settings (secrets aside).
fn same_settings(a: &AccountRow, b: &AccountRow) -> bool {
    (
        &a.servicem8_account_uuid,
        &a.credential_kind,
        a.requests_per_minute,
        a.requests_per_day,
        a.sync_interval_seconds,
        a.retention_days,
    ) == (
        &b.servicem8_account_uuid,
        &b.credential_kind,
        b.requests_per_minute,
        b.requests_per_day,
        b.sync_interval_seconds,
        b.retention_days,
    )
}
