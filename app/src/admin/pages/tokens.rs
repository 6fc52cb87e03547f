//! `/admin/tokens`: personal API tokens for the REST API in the current account — the visitor's own, or every
//! member's for an owner — creating one (shown once) and revoking.

use leptos::prelude::*;
use leptos_meta::Title;

use super::{failure, time_or_dash, Failure, RoleBadge, ShownOncePanel};
use crate::access::Role;
use crate::admin::{AdminShell, CurrentVisitor, Refresh};
use crate::components::ErrorNote;
use crate::directory::api::{list_tokens, CreateToken, RevokeToken};
use crate::directory::model::{ShownOnce, TokenView};

#[component]
pub fn TokensPage() -> impl IntoView {
    view! {
        <Title text="API tokens · SM8 Webhooks"/>
        <AdminShell>
            <Tokens/>
        </AdminShell>
    }
}

#[component]
fn Tokens() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let tokens = Resource::new(
        move || (refresh.get(), create.version().get(), revoke.version().get()),
        |_| list_tokens(),
    );
    view! {
        <section aria-labelledby="tokens-title">
            <h2 id="tokens-title">"API tokens"</h2>
            <p class="muted">
                "A token acts for you in this account with the role it was given, through the REST API: send it as "
                <code>"Authorization: Bearer …"</code>"."
            </p>
            <Transition fallback=|| view! { <p class="muted">"Loading tokens…"</p> }>
                {move || tokens.get().map(|found| match found {
                    Ok(tokens) => view! { <TokensTable tokens revoke/> }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
            <Failure error=failure(revoke)/>
        </section>
        <CreateTokenForm create/>
    }
}

#[component]
fn TokensTable(tokens: Vec<TokenView>, revoke: ServerAction<RevokeToken>) -> impl IntoView {
    let visitor = expect_context::<CurrentVisitor>();
    if tokens.is_empty() {
        return view! { <p class="empty">"No API tokens yet."</p> }.into_any();
    }
    let owner = visitor.may(Role::Owner);
    let email = visitor
        .0
        .get_untracked()
        .map(|visitor| visitor.email)
        .unwrap_or_default();
    view! {
        <div class="table-wrap">
            <table class="tokens">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Role"</th>
                        {owner.then(|| view! { <th scope="col">"Owner"</th> })}
                        <th scope="col">"Created"</th>
                        <th scope="col">"Last used"</th>
                        <th scope="col">"Expires"</th>
                        <th scope="col">"State"</th>
                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {tokens.into_iter().map(|token| {
                        // Its owner or an owner of the account revokes a token (the server checks the same).
                        let revocable = !token.revoked && (owner || token.owner_email == email);
                        let id = token.id.clone();
                        let label = format!("Revoke {}", token.name);
                        view! {
                            <tr data-token-id=token.id.clone()>
                                <td>{token.name.clone()}</td>
                                <td><RoleBadge role=token.role/></td>
                                {owner.then(|| view! { <td>{token.owner_email.clone()}</td> })}
                                <td>{time_or_dash(Some(token.created_at.clone()))}</td>
                                <td>{time_or_dash(token.last_used_at.clone())}</td>
                                <td>{match token.expires_at.clone() {
                                    Some(at) => time_or_dash(Some(at)),
                                    None => "never".into_any(),
                                }}</td>
                                <td>{if token.revoked {
                                    view! { <span class="badge status-failed">"revoked"</span> }.into_any()
                                } else {
                                    view! { <span class="badge status-success">"active"</span> }.into_any()
                                }}</td>
                                <td>{revocable.then(|| view! {
                                    <button type="button" class="secondary" aria-label=label
                                        disabled=move || revoke.pending().get()
                                        on:click=move |_| { revoke.dispatch(RevokeToken { id: id.clone() }); }>
                                        "Revoke"
                                    </button>
                                })}</td>
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
fn CreateTokenForm(create: ServerAction<CreateToken>) -> impl IntoView {
    let visitor = expect_context::<CurrentVisitor>();
    let name = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Viewer);
    let days = RwSignal::new(String::new());
    let invalid = RwSignal::new(None::<String>);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let expires_in_days = match days.get_untracked().trim() {
            "" => None,
            text => match text.parse::<u32>() {
                Ok(days) if days > 0 => Some(days),
                _ => {
                    invalid.set(Some("Expires in days must be a whole number above 0, or empty.".into()));
                    return;
                }
            },
        };
        invalid.set(None);
        create.dispatch(CreateToken {
            name: name.get_untracked(),
            role: role.get_untracked(),
            expires_in_days,
        });
    };
    // A token's role is at most the visitor's own.
    let roles = move || {
        Role::ALL
            .into_iter()
            .filter(|choice| visitor.may(*choice))
            .map(|choice| view! { <option value=choice.as_str()>{choice.as_str()}</option> })
            .collect_view()
    };
    view! {
        <section class="card">
            <form class="stacked" aria-labelledby="create-token-title" on:submit=submit>
                <h2 id="create-token-title">"Create token"</h2>
                <label for="token-name">"Token name"</label>
                <input id="token-name" type="text" required maxlength="100" bind:value=name/>
                <label for="token-role">"Role"</label>
                <select id="token-role" prop:value=move || role.get().as_str()
                    on:change=move |event| {
                        if let Ok(chosen) = event_target_value(&event).parse::<Role>() {
                            role.set(chosen);
                        }
                    }>
                    {roles}
                </select>
                <label for="token-days">"Expires in days (optional)"</label>
                <input id="token-days" type="number" min="1" bind:value=days/>
                <button type="submit" disabled=move || create.pending().get()>"Create token"</button>
            </form>
            {move || invalid.get().map(|message| view! { <ErrorNote message/> })}
            <Failure error=failure(create)/>
            {move || match create.value().get() {
                Some(Ok(created)) => {
                    let secret = ShownOnce {
                        name: "API token".into(),
                        value: created.value,
                        usage: None,
                    };
                    Some(view! { <ShownOncePanel secret title=format!("Token {}", created.token.name)/> })
                }
                _ => None,
            }}
        </section>
    }
}
