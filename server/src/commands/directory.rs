//! `account add|list|show|update|disable|enable`, `user add|list|passwd|remove` and `rotate-secret-key`: the
//! directory from the shell, for the first owner of an instance and for scripts. Every change is audited as the
//! system's, done from the command line.

use std::io::Read;

use anyhow::{bail, Context};
use app::access::{Actor, Role};
use clap::{Args, Subcommand};
use serde_json::json;

use super::DirectoryArgs;
use crate::accounts::{AccountSecrets, DefaultAccount, NewAccount};
use crate::auth::{hash_password, random_token, token_hash};
use crate::backend::check_new_password;
use crate::sealing::{self, MasterKey};
use crate::startup::Directory;
use crate::store::directory::{AccountRow, InviteRow, NewAuditEntry, SealedValue, UserRow};
use crate::store::{now_millis, Store};

#[derive(Debug, Clone, Subcommand)]
pub enum AccountCommand {
    /// Create an account: prints its receiver URL with a new URL token (shown once).
    Add {
        #[command(flatten)]
        directory: DirectoryArgs,
        /// The new account's slug: 2–40 characters of a-z, 0-9 and '-'.
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        /// The ServiceM8 account UUID its add-on callbacks name.
        #[arg(long)]
        servicem8_account_uuid: Option<String>,
        /// Read a ServiceM8 API key from standard input.
        #[arg(long)]
        api_key_stdin: bool,
    },
    /// List the accounts.
    List {
        #[command(flatten)]
        directory: DirectoryArgs,
    },
    /// Show one account (--account): its settings, and which secrets are set (never their values).
    Show {
        #[command(flatten)]
        directory: DirectoryArgs,
    },
    /// Change one account's settings (--account).
    Update {
        #[command(flatten)]
        directory: DirectoryArgs,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        servicem8_account_uuid: Option<String>,
        #[arg(long)]
        requests_per_minute: Option<i64>,
        #[arg(long)]
        requests_per_day: Option<i64>,
        #[arg(long)]
        sync_interval_seconds: Option<i64>,
        #[arg(long)]
        retention_days: Option<i64>,
        /// Read a new ServiceM8 API key from standard input.
        #[arg(long)]
        api_key_stdin: bool,
    },
    /// Disable one account (--account): its receiver answers 410 and nothing of it is processed.
    Disable {
        #[command(flatten)]
        directory: DirectoryArgs,
    },
    /// Enable a disabled account (--account) again.
    Enable {
        #[command(flatten)]
        directory: DirectoryArgs,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Create a user: an instance owner, or with --account a member with --role. Without --password-stdin, prints
    /// a one-time link where they set their password.
    Add {
        #[command(flatten)]
        directory: DirectoryArgs,
        #[arg(long)]
        email: String,
        /// Their role in --account (given --account only).
        #[arg(long, default_value = "owner")]
        role: Role,
        /// Make them a member of --account only, not an instance owner.
        #[arg(long)]
        member_only: bool,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the users and their roles.
    List {
        #[command(flatten)]
        directory: DirectoryArgs,
    },
    /// Set a user's password, read from standard input (ends their sessions).
    Passwd {
        #[command(flatten)]
        directory: DirectoryArgs,
        #[arg(long)]
        email: String,
    },
    /// Delete a user with their memberships, tokens and sessions.
    Remove {
        #[command(flatten)]
        directory: DirectoryArgs,
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct RotateKeyArgs {
    #[command(flatten)]
    pub directory: DirectoryArgs,

    /// Write the new key to this file (it must not exist) instead of replacing the key file in use.
    #[arg(long)]
    pub new_key_file: Option<std::path::PathBuf>,
}

pub async fn account(command: AccountCommand) -> anyhow::Result<()> {
    match command {
        AccountCommand::Add {
            directory,
            slug,
            name,
            servicem8_account_uuid,
            api_key_stdin,
        } => {
            let opened = directory.open().await?;
            let api_key = if api_key_stdin {
                Some(read_stdin("API key")?)
            } else {
                None
            };
            let url_token = random_token();
            let new = NewAccount {
                slug: slug.clone(),
                name,
                servicem8_account_uuid,
                secrets: AccountSecrets {
                    api_key,
                    url_token: Some(url_token.clone()),
                    ..AccountSecrets::default()
                },
            };
            let defaults = defaults_of(&opened).await?;
            if !opened.accounts.create(new, &defaults).await? {
                bail!("an account {slug} exists already");
            }
            audit(opened.store.as_ref(), Some(&slug), "create_account", Some(&slug)).await;
            println!("Created account {slug}.");
            println!(
                "  Webhooks: POST {}/api/webhooks/sm8/{slug}?token={url_token}",
                directory.public_url()
            );
            println!("  The URL token is shown this once; rotate it on the account page if it is lost.");
            Ok(())
        }
        AccountCommand::List { directory } => {
            let opened = directory.open().await?;
            for account in opened.accounts.all() {
                println!(
                    "{:<20} {:<30} {:<8} {}",
                    account.slug,
                    account.name,
                    account.credential_kind.as_str(),
                    if account.disabled { "disabled" } else { "active" }
                );
            }
            Ok(())
        }
        AccountCommand::Show { directory } => {
            let opened = directory.open().await?;
            let account = directory.account(&opened)?;
            let secrets = account.secrets();
            let set = |value: &Option<String>| if value.is_some() { "set" } else { "not set" };
            println!("slug:                {}", account.slug);
            println!("name:                {}", account.name);
            println!("disabled:            {}", account.disabled);
            println!(
                "servicem8 account:   {}",
                account.servicem8_account_uuid.as_deref().unwrap_or("-")
            );
            println!("credentials:         {}", account.credential_kind.as_str());
            println!("oauth error:         {}", account.oauth.error.as_deref().unwrap_or("-"));
            println!(
                "requests:            {}/minute, {}/day",
                account.requests_per_minute, account.requests_per_day
            );
            println!("sync interval:       {} s", account.sync_interval_seconds);
            println!("retention:           {} days", account.retention_days);
            println!("webhook secret:      {}", set(&secrets.webhook_secret));
            println!("url token:           {}", set(&secrets.url_token));
            println!("add-on app secret:   {}", set(&secrets.app_secret));
            println!("standard secrets:    {}", secrets.standard_webhook_secrets.len());
            println!(
                "receiver:            {}/api/webhooks/sm8/{}",
                directory.public_url(),
                account.slug
            );
            Ok(())
        }
        AccountCommand::Update {
            directory,
            name,
            servicem8_account_uuid,
            requests_per_minute,
            requests_per_day,
            sync_interval_seconds,
            retention_days,
            api_key_stdin,
        } => {
            let opened = directory.open().await?;
            let api_key = if api_key_stdin {
                Some(read_stdin("API key")?)
            } else {
                None
            };
            let change = move |row: &mut AccountRow, secrets: &mut AccountSecrets| {
                if let Some(name) = name {
                    row.name = name;
                }
                if let Some(uuid) = servicem8_account_uuid {
                    row.servicem8_account_uuid = Some(uuid).filter(|uuid| !uuid.is_empty());
                }
                for (to, from) in [
                    (&mut row.requests_per_minute, requests_per_minute),
                    (&mut row.requests_per_day, requests_per_day),
                    (&mut row.sync_interval_seconds, sync_interval_seconds),
                    (&mut row.retention_days, retention_days),
                ] {
                    if let Some(value) = from {
                        *to = value;
                    }
                }
                if let Some(key) = api_key {
                    secrets.api_key = Some(key);
                    secrets.access_token = None;
                    secrets.refresh_token = None;
                }
                Ok(())
            };
            changed(&opened, &directory.account, "update_account", change).await
        }
        AccountCommand::Disable { directory } => {
            let opened = directory.open().await?;
            changed(&opened, &directory.account, "disable_account", |row, _| {
                row.disabled_at = Some(now_millis());
                Ok(())
            })
            .await
        }
        AccountCommand::Enable { directory } => {
            let opened = directory.open().await?;
            changed(&opened, &directory.account, "enable_account", |row, _| {
                row.disabled_at = None;
                Ok(())
            })
            .await
        }
    }
}

/// Applies `change` to account `slug`, audits it, and says so.
async fn changed<F>(opened: &Directory, slug: &str, action: &str, change: F) -> anyhow::Result<()>
where
    F: FnOnce(&mut AccountRow, &mut AccountSecrets) -> Result<(), String> + Send,
{
    if opened.accounts.update(slug, change).await?.is_none() {
        bail!("there is no account {slug:?}: see `sm8-webhooks account list`");
    }
    audit(opened.store.as_ref(), Some(slug), action, Some(slug)).await;
    println!("Account {slug}: {}.", action.replace('_', " "));
    Ok(())
}

/// What a new account starts with: the default account's budget, sync interval and retention.
async fn defaults_of(opened: &Directory) -> anyhow::Result<DefaultAccount> {
    let default = opened
        .accounts
        .get(crate::store::DEFAULT_ACCOUNT)
        .context("the default account is missing")?;
    Ok(DefaultAccount {
        servicem8_account_uuid: None,
        secrets: AccountSecrets::default(),
        requests_per_minute: default.requests_per_minute,
        requests_per_day: default.requests_per_day,
        sync_interval_seconds: default.sync_interval_seconds,
        retention_days: default.retention_days,
    })
}

pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            directory,
            email,
            role,
            member_only,
            password_stdin,
        } => {
            let opened = directory.open().await?;
            let email = email.trim().to_lowercase();
            anyhow::ensure!(email.contains('@'), "--email needs an email address");
            let account = member_only.then(|| directory.account(&opened)).transpose()?;
            if !password_stdin {
                let link = invite_link(
                    opened.store.as_ref(),
                    &directory.public_url(),
                    account.as_ref().map(|a| a.slug.as_str()),
                    &email,
                    role,
                )
                .await?;
                audit(
                    opened.store.as_ref(),
                    account.as_ref().map(|a| a.slug.as_str()),
                    "invite_member",
                    Some(&email),
                )
                .await;
                println!("{link}");
                eprintln!("A one-time link for {email} to set a password (valid 7 days).");
                return Ok(());
            }
            let password = read_stdin("password")?;
            check_new_password(&password).map_err(|error| anyhow::anyhow!("{error}"))?;
            let now = now_millis();
            let user = UserRow {
                id: uuid::Uuid::now_v7().to_string(),
                email: email.clone(),
                password_hash: Some(tokio::task::spawn_blocking(move || hash_password(&password)).await?),
                instance_owner: i64::from(!member_only),
                created_at: now,
                updated_at: now,
            };
            if !opened.store.insert_user(&user).await? {
                bail!("a user {email} exists already");
            }
            if let Some(account) = &account {
                opened
                    .store
                    .set_membership(&user.id, &account.slug, role.as_str(), now)
                    .await?;
            }
            audit(
                opened.store.as_ref(),
                account.as_ref().map(|a| a.slug.as_str()),
                "add_user",
                Some(&email),
            )
            .await;
            match account {
                Some(account) => println!("Created user {email}, {role} of account {}.", account.slug),
                None => println!("Created user {email}, an instance owner."),
            }
            Ok(())
        }
        UserCommand::List { directory } => {
            let opened = directory.open().await?;
            for user in opened.store.list_users().await? {
                let roles: Vec<String> = opened
                    .store
                    .memberships_of(&user.id)
                    .await?
                    .into_iter()
                    .map(|membership| format!("{}:{}", membership.account, membership.role))
                    .collect();
                let owner = if user.instance_owner != 0 { "instance owner" } else { "" };
                println!("{:<40} {:<15} {}", user.email, owner, roles.join(" "));
            }
            Ok(())
        }
        UserCommand::Passwd { directory, email } => {
            let opened = directory.open().await?;
            let user = find_user(opened.store.as_ref(), &email).await?;
            let password = read_stdin("password")?;
            check_new_password(&password).map_err(|error| anyhow::anyhow!("{error}"))?;
            let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await?;
            opened.store.set_password(&user.id, &hash, now_millis()).await?;
            audit(opened.store.as_ref(), None, "set_password", Some(&user.email)).await;
            println!("Password of {} changed; their sessions ended.", user.email);
            Ok(())
        }
        UserCommand::Remove { directory, email } => {
            let opened = directory.open().await?;
            let user = find_user(opened.store.as_ref(), &email).await?;
            opened.store.delete_user(&user.id).await?;
            audit(opened.store.as_ref(), None, "remove_user", Some(&user.email)).await;
            println!("Removed user {}.", user.email);
            Ok(())
        }
    }
}

async fn find_user(store: &dyn Store, email: &str) -> anyhow::Result<UserRow> {
    store
        .user_by_email(email)
        .await?
        .with_context(|| format!("there is no user {email}: see `sm8-webhooks user list`"))
}

/// Stores a one-time link for `email` (an instance owner, or a member of `account`) and returns its URL.
async fn invite_link(
    store: &dyn Store,
    public_url: &str,
    account: Option<&str>,
    email: &str,
    role: Role,
) -> anyhow::Result<String> {
    let token = random_token();
    let now = now_millis();
    store
        .insert_invite(&InviteRow {
            token_hash: token_hash(&token),
            account: account.map(str::to_owned),
            role: role.as_str().into(),
            email: Some(email.to_owned()),
            created_by: None,
            created_at: now,
            expires_at: now + 7 * 24 * 3600 * 1000,
            used_at: None,
        })
        .await?;
    Ok(format!("{public_url}/admin/invite/{token}"))
}

/// `rotate-secret-key`: seals every stored secret under a new master key, in one transaction, and puts the key
/// where the old one was (the key file, replaced whole) or prints it for `SECRET_KEY`.
pub async fn rotate_secret_key(args: RotateKeyArgs) -> anyhow::Result<()> {
    let opened = args.directory.open().await?;
    let old = opened.accounts.sealer().clone();
    let new_key = MasterKey::generate();
    let new = new_key.sealer();
    let mut resealed: Vec<SealedValue> = Vec::new();
    for value in opened.store.sealed_values().await? {
        let plain = old
            .open(&value.sealed, &value.context)
            .with_context(|| format!("opening {}", value.context))?;
        resealed.push(SealedValue {
            sealed: new.seal(&plain, &value.context),
            context: value.context,
        });
    }
    let key_file = args.directory.accounts.key_file(&args.directory.database.database_url);
    let from_environment = args.directory.accounts.secret_key.is_some();
    // The new key is written before anything is sealed under it, so a crash leaves the old key working.
    let written = match (&args.new_key_file, &key_file) {
        (Some(file), _) => {
            sealing::write_key_file(&new_key, file)?;
            Some(file.clone())
        }
        (None, Some(file)) if !from_environment => {
            let staged = file.with_extension("key.new");
            sealing::write_key_file(&new_key, &staged)?;
            Some(staged)
        }
        _ => None,
    };
    let secrets = resealed.len();
    resealed.push(SealedValue {
        context: crate::sealing::CHECK_CONTEXT.into(),
        sealed: new.check_value(),
    });
    opened.store.replace_sealed_values(&resealed).await?;
    audit(opened.store.as_ref(), None, "rotate_secret_key", None).await;
    match (&args.new_key_file, &key_file, written) {
        (None, Some(file), Some(staged)) => {
            std::fs::rename(&staged, file).with_context(|| format!("replacing {}", file.display()))?;
            println!("Re-sealed {secrets} secrets; the new key replaced {}.", file.display());
        }
        (Some(file), _, _) => println!(
            "Re-sealed {secrets} secrets under the key now in {}: point SECRET_KEY_FILE at it.",
            file.display()
        ),
        _ => {
            println!("Re-sealed {secrets} secrets. Set SECRET_KEY to the new key before starting again:");
            println!("{}", new_key.encode().expose());
        }
    }
    println!("Restart every node with the new key.");
    Ok(())
}

/// Reads one line (or the whole of) standard input, trimmed.
fn read_stdin(what: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("reading the {what} from standard input"))?;
    let text = text.trim().to_owned();
    anyhow::ensure!(!text.is_empty(), "standard input holds no {what}");
    Ok(text)
}

/// Audits a change made from the command line.
async fn audit(store: &dyn Store, account: Option<&str>, action: &str, target: Option<&str>) {
    let entry = NewAuditEntry {
        at: now_millis(),
        account: account.map(str::to_owned),
        actor_kind: Actor::System.kind().into(),
        actor: Some("command line".into()),
        action: action.into(),
        target: target.map(str::to_owned),
        outcome: "success".into(),
        client_address: None,
        detail: Some(json!({ "via": "cli" })),
    };
    if let Err(error) = store.record_audit(&entry).await {
        tracing::error!(%error, "could not write an audit line");
    }
}
