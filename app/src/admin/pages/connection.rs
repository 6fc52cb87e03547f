//! The current account's link to ServiceM8 on `/admin/accounts`: which secrets it holds (never their values),
//! generating and setting them, connecting through OAuth, and its webhook subscriptions.

use leptos::prelude::*;

use super::accounts::AccountActions;
use super::{failure, succeeded, time_or_dash, Failure, ShownOncePanel};
use crate::access::Role;
use crate::admin::{CurrentVisitor, Refresh};
use crate::components::ErrorNote;
use crate::directory::api::{
    list_subscriptions, GenerateAccountSecret, SetAccountSecret, StartOauth, Subscribe, Unsubscribe,
};
use crate::directory::model::{AccountSecretKind, AccountView, SubscriptionView, DEFAULT_OAUTH_SCOPES};

/// Every secret kind, in the order the page lists them.
const SECRET_KINDS: [AccountSecretKind; 5] = [
    AccountSecretKind::ApiKey,
    AccountSecretKind::AppSecret,
    AccountSecretKind::WebhookSecret,
    AccountSecretKind::UrlToken,
    AccountSecretKind::StandardWebhookSecret,
];

fn secret_label(kind: AccountSecretKind) -> &'static str {
    match kind {
        AccountSecretKind::ApiKey => "ServiceM8 API key",
        AccountSecretKind::AppSecret => "ServiceM8 app secret",
        AccountSecretKind::WebhookSecret => "Webhook secret",
        AccountSecretKind::UrlToken => "URL token",
        AccountSecretKind::StandardWebhookSecret => "Standard Webhooks secrets",
    }
}

/// Whether the server can make this secret; the others come from ServiceM8.
fn generated_here(kind: AccountSecretKind) -> bool {
    matches!(
        kind,
        AccountSecretKind::WebhookSecret | AccountSecretKind::UrlToken | AccountSecretKind::StandardWebhookSecret
    )
}

/// Whether the account holds `kind`, as the page says it.
fn secret_state(account: &AccountView, kind: AccountSecretKind) -> String {
    let set = |held: bool| if held { "set" } else { "not set" }.to_owned();
    match kind {
        AccountSecretKind::ApiKey => set(account.secrets.api_key),
        AccountSecretKind::AppSecret => set(account.secrets.app_secret),
        AccountSecretKind::WebhookSecret => set(account.secrets.webhook_secret),
        AccountSecretKind::UrlToken => set(account.secrets.url_token),
        AccountSecretKind::StandardWebhookSecret => match account.secrets.standard_webhook_secrets {
            0 => "not set".into(),
            count => format!("{count} set"),
        },
    }
}

#[component]
pub(super) fn Secrets(account: AccountView, actions: AccountActions, owner: bool) -> impl IntoView {
    let AccountActions {
        set_secret, generate, ..
    } = actions;
    let rows = SECRET_KINDS.map(|kind| {
        let state = secret_state(&account, kind);
        let held = state != "not set";
        let label = secret_label(kind);
        let generate_label = match kind {
            AccountSecretKind::StandardWebhookSecret => "Add a new secret".to_owned(),
            _ if held => format!("Generate a new {}", label.to_lowercase()),
            _ => format!("Generate a {}", label.to_lowercase()),
        };
        view! {
            <tr data-secret=kind.as_str()>
                <th scope="row">{label}</th>
                <td>{state}</td>
                {owner.then(|| view! {
                    <td class="row-actions">
                        {generated_here(kind).then(|| view! {
                            <button type="button" class="secondary" disabled=move || generate.pending().get()
                                on:click=move |_| { generate.dispatch(GenerateAccountSecret { kind }); }>
                                {generate_label.clone()}
                            </button>
                        })}
                        {held.then(|| view! {
                            <button type="button" class="secondary" aria-label=format!("Clear {label}")
                                on:click=move |_| { set_secret.dispatch(SetAccountSecret { kind, value: None }); }>
                                "Clear"
                            </button>
                        })}
                    </td>
                })}
            </tr>
        }
    });
    view! {
        <section class="card" aria-labelledby="secrets-title">
            <h2 id="secrets-title">"Secrets"</h2>
            <p class="muted">
                "Their values are never shown after they are set. A new Standard Webhooks secret is added beside the \
                 ones there, so that senders can move to it before the old ones are cleared."
            </p>
            <div class="table-wrap">
                <table class="secrets">
                    <tbody>{rows.into_iter().collect_view()}</tbody>
                </table>
            </div>
            <Failure error=failure(generate)/>
            {move || match generate.value().get() {
                Some(Ok(secret)) => {
                    let title = SECRET_KINDS
                        .into_iter()
                        .find(|kind| kind.as_str() == secret.name)
                        .map_or_else(|| secret.name.clone(), |kind| format!("New {}", secret_label(kind).to_lowercase()));
                    Some(view! { <ShownOncePanel secret title/> })
                }
                _ => None,
            }}
            {owner.then(|| view! { <SetSecretForm set_secret/> })}
        </section>
    }
}

/// Sets a secret from a pasted value (an API key or app secret from ServiceM8, or a known secret).
#[component]
fn SetSecretForm(set_secret: ServerAction<SetAccountSecret>) -> impl IntoView {
    let kind = RwSignal::new(AccountSecretKind::ApiKey);
    let value = RwSignal::new(String::new());
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        set_secret.dispatch(SetAccountSecret {
            kind: kind.get_untracked(),
            value: Some(value.get_untracked()),
        });
        value.set(String::new());
    };
    let choose = move |event: leptos::ev::Event| {
        let chosen = event_target_value(&event);
        if let Some(found) = SECRET_KINDS.into_iter().find(|kind| kind.as_str() == chosen) {
            kind.set(found);
        }
    };
    view! {
        <form class="inline-fields set-secret" aria-label="Set a secret" on:submit=submit>
            <label for="secret-kind">"Secret"</label>
            <select id="secret-kind" prop:value=move || kind.get().as_str() on:change=choose>
                {SECRET_KINDS.map(|kind| view! { <option value=kind.as_str()>{secret_label(kind)}</option> })}
            </select>
            <label for="secret-value">"Value"</label>
            <input id="secret-value" type="password" autocomplete="off" required bind:value=value/>
            <button type="submit" disabled=move || set_secret.pending().get()>"Set secret"</button>
        </form>
        {move || succeeded(set_secret).get().then(|| view! { <p role="status">"Secret saved."</p> })}
        <Failure error=failure(set_secret)/>
    }
}

/// How the account reaches ServiceM8, and "Connect ServiceM8" through OAuth.
#[component]
pub(super) fn Connection(account: AccountView, connect: ServerAction<StartOauth>, owner: bool) -> impl IntoView {
    let credential = match account.credential_kind.as_str() {
        "oauth" => "OAuth",
        "api_key" => "API key",
        _ => "none: events are applied from their own payloads",
    };
    let scopes = RwSignal::new(
        account
            .oauth_scopes
            .clone()
            .filter(|scopes| !scopes.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_OAUTH_SCOPES.to_owned()),
    );
    // The server answers with ServiceM8's authorization page; the browser goes there and comes back to the
    // server's OAuth callback.
    Effect::new(move |_| {
        if let Some(Ok(url)) = connect.value().get() {
            #[cfg(feature = "hydrate")]
            if let Some(window) = web_sys::window() {
                let _ = window.location().set_href(&url);
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = url;
        }
    });
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        connect.dispatch(StartOauth {
            scopes: scopes.get_untracked(),
        });
    };
    view! {
        <section class="card" aria-labelledby="connection-title">
            <h2 id="connection-title">"ServiceM8 connection"</h2>
            <dl class="facts">
                <dt>"Credentials"</dt><dd data-field="credential">{credential}</dd>
                {account.oauth_scopes.clone().map(|scopes| view! { <dt>"Scopes granted"</dt><dd class="mono">{scopes}</dd> })}
                {account.oauth_expires_at.clone().map(|at| view! {
                    <dt>"Access token expires"</dt><dd>{time_or_dash(Some(at))}</dd>
                })}
                {account.oauth_error.clone().map(|error| view! {
                    <dt>"Last refresh failed"</dt><dd class="error-text" data-field="oauth-error">{error}</dd>
                })}
            </dl>
            {match (owner, account.oauth_available) {
                (false, _) => view! { <p class="muted">"Only an owner of the account connects it."</p> }.into_any(),
                (true, false) => view! {
                    <p class="muted">"Connecting through OAuth needs a ServiceM8 OAuth application configured on the server; \
                        until then, set an API key above."</p>
                }.into_any(),
                (true, true) => view! {
                    <form class="stacked" aria-label="Connect ServiceM8" on:submit=submit>
                        <label for="oauth-scopes">"Scopes"</label>
                        <input id="oauth-scopes" type="text" aria-describedby="oauth-scopes-hint" bind:value=scopes/>
                        <p id="oauth-scopes-hint" class="muted">"Separated by spaces. ServiceM8 asks you to approve them."</p>
                        <button type="submit" disabled=move || connect.pending().get()>"Connect ServiceM8"</button>
                    </form>
                    <Failure error=failure(connect)/>
                }.into_any(),
            }}
        </section>
    }
}

/// The account's webhook subscriptions at ServiceM8.
#[component]
pub(super) fn Subscriptions() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let visitor = expect_context::<CurrentVisitor>();
    let subscribe = ServerAction::<Subscribe>::new();
    let unsubscribe = ServerAction::<Unsubscribe>::new();
    let subscriptions = Resource::new(
        move || (refresh.get(), subscribe.version().get(), unsubscribe.version().get()),
        |_| list_subscriptions(),
    );
    let owner = move || visitor.may(Role::Owner);
    view! {
        <section class="card" aria-labelledby="subscriptions-title">
            <h2 id="subscriptions-title">"Webhook subscriptions"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading subscriptions…"</p> }>
                {move || subscriptions.get().map(|found| match found {
                    Ok(list) => view! { <SubscriptionTable list owner=owner() unsubscribe/> }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
            <Failure error=failure(unsubscribe)/>
            {move || owner().then(|| view! { <SubscribeForm subscribe/> })}
        </section>
    }
}

#[component]
fn SubscriptionTable(
    list: Vec<SubscriptionView>,
    owner: bool,
    unsubscribe: ServerAction<Unsubscribe>,
) -> impl IntoView {
    if list.is_empty() {
        return view! { <p class="empty">"No subscriptions: ServiceM8 sends this account no webhooks yet."</p> }
            .into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="subscriptions">
                <thead>
                    <tr>
                        <th scope="col">"Kind"</th>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Fields"</th>
                        <th scope="col">"Callback URL"</th>
                        <th scope="col">"Active"</th>
                        {owner.then(|| view! { <th scope="col"><span class="sr-only">"Actions"</span></th> })}
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().map(|subscription| {
                        let SubscriptionView { kind, name, fields, callback_url, active } = subscription;
                        let remove = Unsubscribe { kind: kind.clone(), name: name.clone() };
                        view! {
                            <tr>
                                <td>{kind.clone()}</td>
                                <td class="mono">{name.clone()}</td>
                                <td class="mono">{fields.join(", ")}</td>
                                <td class="mono">{callback_url}</td>
                                <td>{if active { "yes" } else { "no" }}</td>
                                {owner.then(|| view! {
                                    <td>
                                        <button type="button" class="secondary" aria-label=format!("Delete {kind} {name}")
                                            on:click=move |_| { unsubscribe.dispatch(remove.clone()); }>
                                            "Delete"
                                        </button>
                                    </td>
                                })}
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn SubscribeForm(subscribe: ServerAction<Subscribe>) -> impl IntoView {
    let kind = RwSignal::new("object".to_owned());
    let name = RwSignal::new(String::new());
    let fields = RwSignal::new(String::new());
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let fields = fields
            .get_untracked()
            .split(',')
            .map(|field| field.trim().to_owned())
            .filter(|field| !field.is_empty())
            .collect();
        subscribe.dispatch(Subscribe {
            kind: kind.get_untracked(),
            name: name.get_untracked().trim().to_owned(),
            fields,
        });
    };
    view! {
        <form class="stacked" aria-label="Add a subscription" on:submit=submit>
            <h3>"Add a subscription"</h3>
            <label for="subscription-kind">"Kind"</label>
            <select id="subscription-kind" prop:value=move || kind.get() on:change=move |ev| kind.set(event_target_value(&ev))>
                <option value="object">"object"</option>
                <option value="event">"event"</option>
            </select>
            <label for="subscription-name">"Object or event name"</label>
            <input id="subscription-name" type="text" required placeholder="job, or job.completed" bind:value=name/>
            <label for="subscription-fields">"Fields (comma-separated)"</label>
            <input id="subscription-fields" type="text" placeholder="uuid, status, job_address"
                disabled=move || kind.get() == "event" bind:value=fields/>
            <button type="submit" disabled=move || subscribe.pending().get()>"Subscribe"</button>
            <Failure error=failure(subscribe)/>
        </form>
    }
}
