//! `/admin/accounts`: every account at a glance and new accounts (instance owners), and the current account's
//! settings, secrets, ServiceM8 connection, subscriptions and whether it is enabled.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::connection::{Connection, Secrets, Subscriptions};
use super::{failure, succeeded, time_or_dash, Failure, ShownOncePanel};
use crate::access::Role;
use crate::admin::{AdminShell, CurrentVisitor, Refresh};
use crate::components::ErrorNote;
use crate::directory::api::{
    accounts_overview, get_account, CreateAccount, GenerateAccountSecret, SetAccountDisabled, SetAccountSecret,
    StartOauth, UpdateAccount,
};
use crate::directory::model::{AccountOverview, AccountSettings, AccountView, NewAccountForm};

#[component]
pub fn AccountsPage() -> impl IntoView {
    view! {
        <Title text="Accounts · SM8 Webhooks"/>
        <AdminShell>
            <Accounts/>
        </AdminShell>
    }
}

#[component]
fn Accounts() -> impl IntoView {
    let visitor = expect_context::<CurrentVisitor>();
    // Read once, untracked: the frame rebuilds the page when the visitor changes, and a closure here would build
    // the overview (and its resource) again whenever the visitor's resource reported the same visitor.
    let instance_owner = untrack(move || visitor.instance_owner());
    view! {
        <ConnectionOutcome/>
        {instance_owner.then(|| view! { <AllAccounts/> })}
        <CurrentAccount/>
    }
}

/// How "Connect ServiceM8" went, when ServiceM8 sent the browser back here (`?oauth=connected` or
/// `?oauth_error=…`, set by the OAuth callback).
#[component]
fn ConnectionOutcome() -> impl IntoView {
    let query = use_query_map();
    move || {
        query.with(|query| {
            if query.get("oauth").as_deref() == Some("connected") {
                Some(view! { <p class="notice" role="status">"ServiceM8 is connected."</p> }.into_any())
            } else {
                query
                    .get("oauth_error")
                    .map(|reason| view! { <ErrorNote message=reason/> }.into_any())
            }
        })
    }
}

/// The instance owners' overview of every account, and the form that adds one.
#[component]
fn AllAccounts() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let create = ServerAction::<CreateAccount>::new();
    let overview = Resource::new(move || (refresh.get(), create.version().get()), |_| accounts_overview());
    view! {
        <section aria-labelledby="all-accounts-title">
            <h2 id="all-accounts-title">"All accounts"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading accounts…"</p> }>
                {move || overview.get().map(|found| match found {
                    Ok(accounts) => view! { <OverviewTable accounts/> }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
        </section>
        <NewAccount create/>
    }
}

#[component]
fn OverviewTable(accounts: Vec<AccountOverview>) -> impl IntoView {
    if accounts.is_empty() {
        return view! { <p class="empty">"No accounts yet."</p> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="accounts">
                <thead>
                    <tr>
                        <th scope="col">"Account"</th>
                        <th scope="col">"Events"</th>
                        <th scope="col">"Failed"</th>
                        <th scope="col">"Queued"</th>
                        <th scope="col">"Success (last hour)"</th>
                        <th scope="col">"Last webhook"</th>
                        <th scope="col">"State"</th>
                    </tr>
                </thead>
                <tbody>
                    {accounts.into_iter().map(|account| view! {
                        <tr data-account=account.slug.clone()>
                            <td>{account.name}" "<span class="muted mono">{account.slug.clone()}</span></td>
                            <td>{account.total_events}</td>
                            <td>{account.failed_events}</td>
                            <td>{account.queue_depth}</td>
                            <td>{account.success_rate.map_or_else(|| "–".to_owned(), |rate| format!("{:.0} %", rate * 100.0))}</td>
                            <td>{time_or_dash(account.last_received_at)}</td>
                            <td>{if account.disabled {
                                view! { <span class="badge status-failed">"disabled"</span> }.into_any()
                            } else {
                                view! { <span class="badge status-success">"enabled"</span> }.into_any()
                            }}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn NewAccount(create: ServerAction<CreateAccount>) -> impl IntoView {
    let slug = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let uuid = RwSignal::new(String::new());
    let api_key = RwSignal::new(String::new());
    let optional = |value: String| Some(value.trim().to_owned()).filter(|value| !value.is_empty());
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        create.dispatch(CreateAccount {
            form: NewAccountForm {
                slug: slug.get_untracked(),
                name: name.get_untracked(),
                servicem8_account_uuid: optional(uuid.get_untracked()),
                api_key: optional(api_key.get_untracked()),
            },
        });
    };
    view! {
        <section class="card">
            <form class="stacked" aria-labelledby="new-account-title" on:submit=submit>
                <h2 id="new-account-title">"New account"</h2>
                <label for="new-account-slug">"Slug"</label>
                <input id="new-account-slug" type="text" required pattern="[a-z0-9][a-z0-9-]*"
                    aria-describedby="new-account-slug-hint" bind:value=slug/>
                <p id="new-account-slug-hint" class="muted">"Lower-case letters, digits and dashes; part of its receiver URL."</p>
                <label for="new-account-name">"Name"</label>
                <input id="new-account-name" type="text" required bind:value=name/>
                <label for="new-account-uuid">"ServiceM8 account UUID (optional)"</label>
                <input id="new-account-uuid" type="text" bind:value=uuid/>
                <label for="new-account-api-key">"API key (optional)"</label>
                <input id="new-account-api-key" type="password" autocomplete="off" bind:value=api_key/>
                <button type="submit" disabled=move || create.pending().get()>"Create account"</button>
            </form>
            <Failure error=failure(create)/>
            {move || match create.value().get() {
                Some(Ok(created)) => Some(view! {
                    <p role="status">{format!("Account {} created. Choose it in the account switcher to set it up.", created.account.slug)}</p>
                    <ShownOncePanel secret=created.url_token title=format!("URL token of {}", created.account.slug)/>
                }),
                _ => None,
            }}
        </section>
    }
}

/// The account the visitor looks at. The actions live here, above the views they refresh, so that a secret
/// shown once survives the refetch its generation causes.
#[component]
fn CurrentAccount() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let actions = AccountActions {
        update: ServerAction::new(),
        set_secret: ServerAction::new(),
        generate: ServerAction::new(),
        disable: ServerAction::new(),
        connect: ServerAction::new(),
    };
    let account = Resource::new(
        move || {
            (
                refresh.get(),
                actions.update.version().get(),
                actions.set_secret.version().get(),
                actions.generate.version().get(),
                actions.disable.version().get(),
            )
        },
        |_| get_account(),
    );
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading the account…"</p> }>
            {move || account.get().map(|found| match found {
                Ok(account) => view! { <AccountDetails account actions/> }.into_any(),
                Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
            })}
        </Transition>
        <Subscriptions/>
    }
}

/// What can be done to the current account.
#[derive(Clone, Copy)]
pub(super) struct AccountActions {
    pub update: ServerAction<UpdateAccount>,
    pub set_secret: ServerAction<SetAccountSecret>,
    pub generate: ServerAction<GenerateAccountSecret>,
    pub disable: ServerAction<SetAccountDisabled>,
    pub connect: ServerAction<StartOauth>,
}

#[component]
fn AccountDetails(account: AccountView, actions: AccountActions) -> impl IntoView {
    let visitor = expect_context::<CurrentVisitor>();
    let owner = visitor.may(Role::Owner);
    let disabled = account.disabled;
    view! {
        <section class="card" aria-labelledby="account-title">
            <div class="section-head">
                <h2 id="account-title">{format!("Account {}", account.name)}</h2>
                {disabled.then(|| view! { <span class="badge status-failed">"disabled"</span> })}
            </div>
            <dl class="facts">
                <dt>"Slug"</dt><dd class="mono">{account.slug.clone()}</dd>
                <dt>"Receiver URL"</dt><dd><code class="secret">{account.receiver_url.clone()}</code></dd>
                <dt>"Created"</dt><dd>{time_or_dash(Some(account.created_at.clone()))}</dd>
            </dl>
            <p class="muted">
                "ServiceM8 posts this account's webhooks to the receiver URL, with "<code>"?token="</code>
                " and the account's URL token when it has one."
            </p>
            {if owner {
                view! { <SettingsForm account=account.clone() update=actions.update/> }.into_any()
            } else {
                view! { <SettingsFacts account=account.clone()/> }.into_any()
            }}
        </section>
        <Secrets account=account.clone() actions owner/>
        <Connection account=account.clone() connect=actions.connect owner/>
        {owner.then(|| view! { <DisableAccount disabled disable=actions.disable/> })}
    }
}

/// The settings as read-only facts, for members who may not change them.
#[component]
fn SettingsFacts(account: AccountView) -> impl IntoView {
    view! {
        <dl class="facts" aria-label="Settings">
            <dt>"ServiceM8 account UUID"</dt>
            <dd class="mono">{account.servicem8_account_uuid.unwrap_or_else(|| "–".into())}</dd>
            <dt>"Requests per minute"</dt><dd>{account.requests_per_minute}</dd>
            <dt>"Requests per day"</dt><dd>{account.requests_per_day}</dd>
            <dt>"Sync interval"</dt><dd>{format!("{} s", account.sync_interval_seconds)}</dd>
            <dt>"Retention"</dt>
            <dd>{match account.retention_days {
                0 => "forever".to_owned(),
                days => format!("{days} days"),
            }}</dd>
        </dl>
        <p class="muted">"Only an owner of the account changes its settings."</p>
    }
}

#[component]
fn SettingsForm(account: AccountView, update: ServerAction<UpdateAccount>) -> impl IntoView {
    let name = RwSignal::new(account.name);
    let uuid = RwSignal::new(account.servicem8_account_uuid.unwrap_or_default());
    let per_minute = RwSignal::new(account.requests_per_minute.to_string());
    let per_day = RwSignal::new(account.requests_per_day.to_string());
    let sync = RwSignal::new(account.sync_interval_seconds.to_string());
    let retention = RwSignal::new(account.retention_days.to_string());
    let invalid = RwSignal::new(None::<String>);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let settings = read_settings([
            name.get_untracked(),
            uuid.get_untracked(),
            per_minute.get_untracked(),
            per_day.get_untracked(),
            sync.get_untracked(),
            retention.get_untracked(),
        ]);
        match settings {
            Ok(settings) => {
                invalid.set(None);
                update.dispatch(UpdateAccount { settings });
            }
            Err(message) => invalid.set(Some(message)),
        }
    };
    view! {
        <form class="stacked" aria-label="Settings" on:submit=submit>
            <h3>"Settings"</h3>
            <label for="account-name">"Account name"</label>
            <input id="account-name" type="text" required bind:value=name/>
            <label for="account-uuid">"ServiceM8 account UUID"</label>
            <input id="account-uuid" type="text" bind:value=uuid/>
            <label for="account-per-minute">"Requests per minute"</label>
            <input id="account-per-minute" type="number" min="1" required bind:value=per_minute/>
            <label for="account-per-day">"Requests per day"</label>
            <input id="account-per-day" type="number" min="1" required bind:value=per_day/>
            <label for="account-sync">"Sync interval (seconds)"</label>
            <input id="account-sync" type="number" min="0" required bind:value=sync/>
            <label for="account-retention">"Retention (days, 0 keeps forever)"</label>
            <input id="account-retention" type="number" min="0" required bind:value=retention/>
            <button type="submit" disabled=move || update.pending().get()>"Save settings"</button>
            {move || succeeded(update).get().then(|| view! { <p role="status">"Saved."</p> })}
            {move || invalid.get().map(|message| view! { <ErrorNote message/> })}
            <Failure error=failure(update)/>
        </form>
    }
}

/// The settings form's fields (name, UUID, requests per minute and per day, sync interval, retention) as
/// settings, or what is wrong with them.
fn read_settings([name, uuid, per_minute, per_day, sync, retention]: [String; 6]) -> Result<AccountSettings, String> {
    let number = |label: &str, value: &str| {
        value
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{label} must be a whole number."))
    };
    Ok(AccountSettings {
        name,
        servicem8_account_uuid: Some(uuid.trim().to_owned()).filter(|uuid| !uuid.is_empty()),
        requests_per_minute: number("Requests per minute", &per_minute)?,
        requests_per_day: number("Requests per day", &per_day)?,
        sync_interval_seconds: u64::try_from(number("Sync interval", &sync)?)
            .map_err(|_| "Sync interval must not be negative.".to_owned())?,
        retention_days: number("Retention", &retention)?,
    })
}

/// Stops (or resumes) taking this account's webhooks and processing its events.
#[component]
fn DisableAccount(disabled: bool, disable: ServerAction<SetAccountDisabled>) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="disable-title">
            <h2 id="disable-title">{if disabled { "Account disabled" } else { "Disable the account" }}</h2>
            <p class="muted">
                "A disabled account's receiver refuses webhooks (410) and none of its events are processed; its data \
                 and settings stay."
            </p>
            <button
                type="button"
                class=if disabled { "" } else { "danger" }
                disabled=move || disable.pending().get()
                on:click=move |_| { disable.dispatch(SetAccountDisabled { disabled: !disabled }); }
            >
                {if disabled { "Enable account" } else { "Disable account" }}
            </button>
            <Failure error=failure(disable)/>
        </section>
    }
}
