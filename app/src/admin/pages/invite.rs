//! `/admin/invite/:token`: a one-time link, before the visitor has a session. It either sets up the instance's
//! first owner or makes its holder a member of one account; using it signs the visitor in.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};

use super::{failure, RoleBadge};
use crate::components::ErrorNote;
use crate::directory::api::{get_invite_info, AcceptInvite};
use crate::directory::model::InviteInfo;
use crate::error::{answer_with_status, AppError};

/// Where a visitor lands once the link has signed them in.
const AFTER_SIGN_IN: &str = "/admin/webhook-dashboard";

#[component]
pub fn InvitePage() -> impl IntoView {
    let params = use_params_map();
    let token = Memo::new(move |_| params.read().get("token").unwrap_or_default());
    let info = Resource::new(move || token.get(), get_invite_info);
    view! {
        <Title text="Invitation · SM8 Webhooks"/>
        <main class="page narrow">
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || info.get().map(|found| match found {
                    Ok(info) => view! { <InviteForm info token=token.get_untracked()/> }.into_any(),
                    Err(error) => {
                        answer_with_status(&error);
                        view! { <Unusable error/> }.into_any()
                    }
                })}
            </Transition>
        </main>
    }
}

/// A link that cannot be used: unknown, used up or expired (404), or a failure to look it up.
#[component]
fn Unusable(error: AppError) -> impl IntoView {
    match error {
        AppError::NotFound(_) => view! {
            <section class="card">
                <h1>"This link cannot be used"</h1>
                <p>"It has been used already, has expired, or is incomplete. Ask whoever sent it for a new one."</p>
                <p><a href=AFTER_SIGN_IN>"Sign in instead"</a></p>
            </section>
        }
        .into_any(),
        error => view! {
            <section class="card">
                <h1>"The link could not be checked"</h1>
                <ErrorNote message=error.to_string()/>
            </section>
        }
        .into_any(),
    }
}

/// What the link is for, and the form that uses it.
#[component]
fn InviteForm(info: InviteInfo, token: String) -> impl IntoView {
    let accept = ServerAction::<AcceptInvite>::new();
    let setup = info.account.is_none();
    let existing_user = info.existing_user;
    let email_fixed = info.email.is_some();
    let email = RwSignal::new(info.email.clone().unwrap_or_default());
    let password = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let mismatch = RwSignal::new(None::<String>);
    let error = failure(accept);

    let navigate = use_navigate();
    Effect::new(move |_| {
        if matches!(accept.value().get(), Some(Ok(()))) {
            navigate(AFTER_SIGN_IN, Default::default());
        }
    });

    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        if !existing_user && password.get_untracked() != confirm.get_untracked() {
            mismatch.set(Some("The passwords do not match.".into()));
            return;
        }
        mismatch.set(None);
        accept.dispatch(AcceptInvite {
            token: token.clone(),
            email: email.get_untracked(),
            password: password.get_untracked(),
        });
    };

    let heading = if setup {
        "Set up SM8 Webhooks".to_owned()
    } else {
        format!(
            "Join {}",
            info.account_name.clone().or(info.account.clone()).unwrap_or_default()
        )
    };
    let purpose = if setup {
        view! {
            <p>
                "This link makes you the owner of this SM8 Webhooks instance: you will create accounts and invite "
                "their users. Choose the email and password you will sign in with."
            </p>
        }
        .into_any()
    } else {
        let account = info.account.clone().unwrap_or_default();
        let name = info.account_name.clone().unwrap_or_else(|| account.clone());
        view! {
            <p>
                "You are invited to the account "<strong>{name}</strong>" ("<span class="mono">{account}</span>") as "
                <RoleBadge role=info.role/>"."
            </p>
        }
        .into_any()
    };
    let button = if setup { "Create account and sign in" } else { "Join" };

    view! {
        <section class="card signin invite" aria-labelledby="invite-title">
            <h1 id="invite-title">{heading}</h1>
            {purpose}
            {existing_user.then(|| view! {
                <p class="muted">"You have a user already: enter its password to accept."</p>
            })}
            <form on:submit=submit>
                <label for="invite-email">"Email"</label>
                <input
                    id="invite-email"
                    name="email"
                    type="email"
                    autocomplete="username"
                    required
                    readonly=email_fixed
                    bind:value=email
                />
                <label for="invite-password">"Password"</label>
                <input
                    id="invite-password"
                    name="password"
                    type="password"
                    autocomplete=if existing_user { "current-password" } else { "new-password" }
                    required
                    bind:value=password
                />
                {(!existing_user).then(|| view! {
                    <label for="invite-confirm">"Confirm password"</label>
                    <input
                        id="invite-confirm"
                        name="confirm"
                        type="password"
                        autocomplete="new-password"
                        required
                        bind:value=confirm
                    />
                })}
                <button type="submit" disabled=move || accept.pending().get()>{button}</button>
            </form>
            {move || mismatch.get().map(|message| view! { <ErrorNote message/> })}
            <super::Failure error/>
        </section>
    }
}
