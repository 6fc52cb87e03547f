//! The admin page frame: the title bar with the account switcher, the admin pages' navigation and sign-out, and
//! the sign-in form instead of the page when the visitor has no session.

use leptos::prelude::*;

use super::{AlertBanner, Refresh};
use crate::access::Role;
use crate::components::ErrorNote;
use crate::directory::api::{current_visitor, ChooseAccount, SignIn, SignOut};
use crate::directory::model::{AccountChoice, Visitor};
use crate::error::{answer_with_status, AppError};

/// The signed-in visitor, for the pages inside `AdminShell`: which account they look at, and with what role.
#[derive(Clone, Copy)]
pub struct CurrentVisitor(pub Signal<Option<Visitor>>);

impl CurrentVisitor {
    /// Whether the visitor's role in the account shown is at least `role` (what the page offers; the server
    /// checks again).
    pub fn may(self, role: Role) -> bool {
        self.0
            .get()
            .and_then(|visitor| visitor.current)
            .is_some_and(|current| current.role >= role)
    }

    pub fn instance_owner(self) -> bool {
        self.0.get().is_some_and(|visitor| visitor.instance_owner)
    }
}

/// The admin page frame around `children`, which render only for a signed-in visitor with an account.
#[component]
pub fn AdminShell(children: ChildrenFn) -> impl IntoView {
    let sign_in = ServerAction::<SignIn>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let choose = ServerAction::<ChooseAccount>::new();
    let visitor = Resource::new(
        move || {
            (
                sign_in.version().get(),
                sign_out.version().get(),
                choose.version().get(),
            )
        },
        |_| current_visitor(),
    );
    let refresh = Refresh(RwSignal::new(0));
    provide_context(refresh);
    let signed_in = Signal::derive(move || visitor.get().and_then(Result::ok).flatten());
    provide_context(CurrentVisitor(signed_in));
    let children = StoredValue::new(children);
    // The page is rebuilt only when what it shows changes (another visitor or account), not each time the
    // visitor's resource reports the same visitor again.
    let shown = Memo::new(move |_| {
        visitor.get().map(|found| match found {
            Ok(Some(visitor)) => match visitor.current {
                Some(current) => Shown::Page(visitor.user_id, current),
                None => Shown::NoAccount {
                    instance_owner: visitor.instance_owner,
                },
            },
            Ok(None) => Shown::SignIn,
            Err(error) => Shown::Failed(error.to_string()),
        })
    });

    view! {
        <main class="page">
            <header class="topbar">
                <h1><a href="/admin/webhook-dashboard" class="home">"Webhook dashboard"</a></h1>
                <Transition fallback=|| ()>
                    {move || signed_in.get().map(|visitor| view! {
                        <div class="topbar-actions">
                            <AccountSwitcher visitor=visitor.clone() choose/>
                            <AdminNav instance_owner=visitor.instance_owner/>
                            <span class="muted who">{visitor.email.clone()}</span>
                            <button type="button" class="secondary" on:click=move |_| refresh.now()>"Refresh"</button>
                            <button type="button" class="secondary" on:click=move |_| { sign_out.dispatch(SignOut {}); }>
                                "Sign out"
                            </button>
                        </div>
                    })}
                </Transition>
            </header>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || shown.get().map(|shown| match shown {
                    // Untracked: what the page reads while it is built must not rebuild it (and create its
                    // resources again, which the browser would then not find in the page's data).
                    Shown::Page(..) => untrack(|| {
                        view! {
                            <AlertBanner/>
                            {children.with_value(|children| children())}
                        }
                    })
                    .into_any(),
                    Shown::NoAccount { instance_owner } => view! { <NoAccount instance_owner/> }.into_any(),
                    Shown::SignIn => {
                        answer_with_status(&AppError::NotSignedIn);
                        view! { <SignInForm action=sign_in/> }.into_any()
                    }
                    Shown::Failed(message) => view! { <ErrorNote message/> }.into_any(),
                })}
            </Transition>
        </main>
    }
}

/// What the frame shows below its title bar.
#[derive(Debug, Clone, PartialEq)]
enum Shown {
    /// The page, for this user in this account.
    Page(String, AccountChoice),
    NoAccount {
        instance_owner: bool,
    },
    SignIn,
    Failed(String),
}

/// Chooses the account the dashboard shows, among the visitor's.
#[component]
fn AccountSwitcher(visitor: Visitor, choose: ServerAction<ChooseAccount>) -> impl IntoView {
    let current = visitor.current.map(|current| current.slug).unwrap_or_default();
    let role = visitor
        .accounts
        .iter()
        .find(|choice| choice.slug == current)
        .map(|choice| choice.role.as_str())
        .unwrap_or_default();
    view! {
        <label class="account-switcher">
            <span class="sr-only">"Account"</span>
            <select
                aria-label="Account"
                prop:value=current.clone()
                on:change=move |event| { choose.dispatch(ChooseAccount { account: event_target_value(&event) }); }
            >
                {visitor.accounts.into_iter().map(|choice| {
                    let selected = choice.slug == current;
                    view! { <option value=choice.slug.clone() selected=selected>{choice.name}</option> }
                }).collect_view()}
            </select>
            <span class="badge role" data-role=role>{role}</span>
        </label>
    }
}

/// The admin pages beside the dashboard. Those outside the dashboard are loaded from the server
/// (`rel="external"`): the dashboard's own bundle (`app::Area::Dashboard`) does not hold them.
#[component]
fn AdminNav(instance_owner: bool) -> impl IntoView {
    view! {
        <nav class="admin-nav" aria-label="Administration">
            <a href="/admin/webhook-dashboard">"Events"</a>
            <a href="/admin/rules" rel="external">"Rules"</a>
            <a href="/admin/destinations" rel="external">"Destinations"</a>
            <a href="/admin/alerts" rel="external">"Alerts"</a>
            <a href="/admin/analytics" rel="external">"Analytics"</a>
            <a href="/admin/accounts" rel="external">{if instance_owner { "Accounts" } else { "Account" }}</a>
            <a href="/admin/users" rel="external">"Users"</a>
            <a href="/admin/tokens" rel="external">"API tokens"</a>
            <a href="/admin/audit" rel="external">"Audit"</a>
        </nav>
    }
}

#[component]
fn NoAccount(instance_owner: bool) -> impl IntoView {
    view! {
        <section class="card narrow">
            <h2>"No account yet"</h2>
            {if instance_owner {
                view! { <p>"Create the first account on the "<a href="/admin/accounts" rel="external">"Accounts page"</a>"."</p> }
                    .into_any()
            } else {
                view! { <p class="muted">"You belong to no account yet: ask an owner of one to invite you."</p> }
                    .into_any()
            }}
        </section>
    }
}

#[component]
fn SignInForm(action: ServerAction<SignIn>) -> impl IntoView {
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = move || match action.value().get() {
        Some(Err(error)) => Some(error.to_string()),
        _ => None,
    };
    view! {
        <section class="card signin" aria-labelledby="signin-title">
            <h2 id="signin-title">"Sign in"</h2>
            // Submitted by the hydrated page as JSON: the server takes no form posts (`server/src/csrf.rs`).
            <form on:submit=move |event| {
                event.prevent_default();
                action.dispatch(SignIn { email: email.get_untracked(), password: password.get_untracked() });
            }>
                <label for="signin-email">"Email"</label>
                <input id="signin-email" name="email" type="email" autocomplete="username" required bind:value=email/>
                <label for="signin-password">"Password"</label>
                <input
                    id="signin-password"
                    name="password"
                    type="password"
                    autocomplete="current-password"
                    required
                    bind:value=password
                />
                <button type="submit">"Sign in"</button>
            </form>
            {move || error().map(|message| view! { <ErrorNote message/> })}
            <p class="muted">"No user yet? The server printed a one-time setup link when it first started."</p>
        </section>
    }
}
