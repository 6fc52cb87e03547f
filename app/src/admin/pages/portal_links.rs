//! Client portal links: an admin makes a one-time link that opens the portal for one company of the account.

use leptos::prelude::*;

use super::{failure, Failure, OneTimeLinkPanel};
use crate::access::Role;
use crate::admin::CurrentVisitor;
use crate::directory::api::{CreatePortalLink, DEFAULT_PORTAL_LINK_DAYS};

/// The form that makes a portal link, for admins and owners.
#[component]
pub fn PortalLinkForm() -> impl IntoView {
    let visitor = expect_context::<CurrentVisitor>();
    let create = ServerAction::<CreatePortalLink>::new();
    let company = RwSignal::new(String::new());
    let days = RwSignal::new(DEFAULT_PORTAL_LINK_DAYS.to_string());
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        create.dispatch(CreatePortalLink {
            company_uuid: company.get_untracked().trim().to_owned(),
            ttl_days: days.get_untracked().trim().parse().ok(),
        });
    };
    move || {
        visitor.may(Role::Admin).then(|| {
            view! {
                <section class="card">
                    <form class="stacked" aria-labelledby="portal-link-title" on:submit=submit>
                        <h2 id="portal-link-title">"Client portal link"</h2>
                        <p class="muted">
                            "Opens the portal, where a client follows their jobs live, for one company of this account."
                        </p>
                        <label for="portal-link-company">"Company UUID"</label>
                        <input id="portal-link-company" type="text" required bind:value=company/>
                        <label for="portal-link-days">"Valid for (days)"</label>
                        <input id="portal-link-days" type="number" min="1" max="90" required bind:value=days/>
                        <button type="submit" disabled=move || create.pending().get()>"Create portal link"</button>
                    </form>
                    <Failure error=failure(create)/>
                    {move || match create.value().get() {
                        Some(Ok(link)) => Some(view! {
                            <OneTimeLinkPanel link title="Portal link" advice="send it to your client."/>
                        }),
                        _ => None,
                    }}
                </section>
            }
        })
    }
}
