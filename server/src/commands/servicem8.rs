//! `sync` and `subscribe`: one account's reconciliation pass, and its webhook subscriptions at ServiceM8 (created
//! with their fields merged, listed, deleted).

use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use super::DirectoryArgs;
use crate::accounts::LiveAccount;
use crate::servicem8::client::ServiceM8Client;
use crate::servicem8::{subscriptions, sync};
use crate::store::OBJECTS;
use crate::telemetry;

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub directory: DirectoryArgs,

    /// Reconcile records changed after this ServiceM8 date ("YYYY-MM-DD HH:MM:SS") instead of the stored watermark.
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SubscribeArgs {
    #[command(flatten)]
    pub directory: DirectoryArgs,

    /// The URL ServiceM8 should post to (default: the account's receiver under PUBLIC_URL, with its URL token).
    #[arg(long, env = "WEBHOOK_CALLBACK_URL")]
    pub callback_url: Option<String>,

    /// Object to subscribe, optionally with its fields: `job` or `job:status,job_address`. Repeatable; with no
    /// --object, --event, --list or --delete, job, company, jobactivity, attachment and staff are subscribed with
    /// the fields the mirror uses.
    #[arg(long = "object")]
    pub objects: Vec<String>,

    /// Event webhook to subscribe, e.g. `job.completed`. Repeatable.
    #[arg(long = "event")]
    pub events: Vec<String>,

    /// List the account's subscriptions instead.
    #[arg(long)]
    pub list: bool,

    /// Delete a subscription: `object:job` or `event:job.completed`. Repeatable.
    #[arg(long = "delete")]
    pub deletions: Vec<String>,
}

/// The account's ServiceM8 client, or why there is none.
fn client_of(account: &LiveAccount) -> anyhow::Result<Arc<ServiceM8Client>> {
    account.client.clone().with_context(|| {
        format!(
            "account {} has no ServiceM8 credentials: set an API key (`sm8-webhooks account update --account {} \
             --api-key-stdin`) or connect it on its account page",
            account.slug, account.slug
        )
    })
}

/// `sync`: one reconciliation pass of one account.
pub async fn sync(args: SyncArgs) -> anyhow::Result<()> {
    telemetry::init(crate::telemetry::LogFormat::Text);
    let opened = args.directory.open().await?;
    let account = args.directory.account(&opened)?;
    let client = client_of(&account)?;
    let reports = sync::reconcile(&opened.store, &account.slug, &client, args.since.as_deref()).await;
    // The requests it made count against the budget a running server shares.
    opened.store.save_api_budget().await?;
    let reports = reports?;
    for report in reports {
        println!(
            "{:<12} scanned {:>6}  queued {:>6}  watermark {}",
            report.object_type,
            report.scanned,
            report.queued,
            report.watermark.as_deref().unwrap_or("-")
        );
    }
    println!("Queued events are processed by a running `sm8-webhooks serve` on the same database.");
    Ok(())
}

/// `subscribe`: creates, lists or deletes the account's subscriptions.
pub async fn subscribe(args: SubscribeArgs) -> anyhow::Result<()> {
    telemetry::init(crate::telemetry::LogFormat::Text);
    let opened = args.directory.open().await?;
    let account = args.directory.account(&opened)?;
    let client = client_of(&account)?;
    let callback_url = match &args.callback_url {
        Some(url) => url.clone(),
        None => {
            let receiver = format!("{}/api/webhooks/sm8/{}", args.directory.public_url(), account.slug);
            match account.secrets().url_token.as_deref() {
                Some(token) => format!("{receiver}?token={token}"),
                None => receiver,
            }
        }
    };
    let changed = change_subscriptions(&args, &client, &callback_url).await;
    opened.store.save_api_budget().await?;
    changed
}

/// Deletes, creates and lists what `args` asks for at `callback_url`.
async fn change_subscriptions(
    args: &SubscribeArgs,
    client: &ServiceM8Client,
    callback_url: &str,
) -> anyhow::Result<()> {
    for deletion in &args.deletions {
        let (kind, name) = deletion
            .split_once(':')
            .filter(|(kind, _)| matches!(*kind, "object" | "event"))
            .with_context(|| format!("--delete {deletion:?}: write object:NAME or event:NAME"))?;
        client.delete_subscription(kind, name, callback_url).await?;
        println!("deleted {kind} subscription {name}");
    }
    let subscribing = !(args.objects.is_empty() && args.events.is_empty());
    if subscribing || (!args.list && args.deletions.is_empty()) {
        let objects = if subscribing && args.objects.is_empty() {
            Vec::new()
        } else {
            requested_objects(&args.objects)?
        };
        for subscription in subscriptions::subscribe(client, callback_url, &objects).await? {
            println!(
                "subscribed {:<12} fields {}",
                subscription.object,
                subscription.fields.join(",")
            );
        }
        for event in &args.events {
            client
                .subscribe_event(event, callback_url, &format!("sm8-webhooks-{event}"))
                .await?;
            println!("subscribed event {event}");
        }
        println!("ServiceM8 confirms each subscription by posting a challenge to {callback_url}.");
    }
    if args.list {
        for subscription in client.list_subscriptions().await? {
            println!("{subscription}");
        }
    }
    Ok(())
}

/// `job` or `job:status,job_address` into (object, fields), with the defaults when nothing is given.
fn requested_objects(objects: &[String]) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    if objects.is_empty() {
        return Ok(OBJECTS
            .iter()
            .filter_map(|spec| {
                Some((
                    spec.object_type.to_owned(),
                    subscriptions::default_fields(spec.object_type)?,
                ))
            })
            .collect());
    }
    objects
        .iter()
        .map(|spec| {
            let (object, fields) = spec.split_once(':').unwrap_or((spec, ""));
            let object = crate::ingest::payload::canonical_object_type(object);
            let fields: Vec<String> = fields
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect();
            match (fields.is_empty(), subscriptions::default_fields(&object)) {
                (false, _) => Ok((object, fields)),
                (true, Some(defaults)) => Ok((object, defaults)),
                (true, None) => bail!("no default fields for {object:?}: name them, e.g. --object {object}:name"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_specs_take_their_fields_or_the_defaults() {
        let requested = requested_objects(&["Job:status,job_address".into(), "company".into()]).unwrap();
        assert_eq!(
            requested[0],
            ("job".into(), vec!["status".to_owned(), "job_address".to_owned()])
        );
        assert_eq!(requested[1].0, "company");
        assert!(!requested[1].1.is_empty());
        assert!(requested_objects(&["form".into()]).is_err());
        assert_eq!(requested_objects(&[]).unwrap().len(), OBJECTS.len());
    }
}
