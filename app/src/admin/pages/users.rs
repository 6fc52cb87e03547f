//! `/admin/users`: the current account's members and their roles, invitations (owners), and changing one's own
//! password.

use leptos::prelude::*;
use leptos_meta::Title;

use super::portal_links::PortalLinkForm;
use super::{failure, succeeded, Failure, OneTimeLinkPanel, RoleBadge};
use crate::access::Role;
use crate::admin::{AdminShell, CurrentVisitor, Refresh};
use crate::components::ErrorNote;
use crate::directory::api::{list_members, ChangePassword, InviteMember, RemoveMember, SetMemberRole};
use crate::directory::model::MemberView;

#[component]
pub fn UsersPage() -> impl IntoView {
    view! {
        <Title text="Users · SM8 Webhooks"/>
        <AdminShell>
            <Members/>
            <PortalLinkForm/>
            <ChangePasswordForm/>
        </AdminShell>
    }
}

#[component]
fn Members() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let visitor = expect_context::<CurrentVisitor>();
    let set_role = ServerAction::<SetMemberRole>::new();
    let remove = ServerAction::<RemoveMember>::new();
    let members = Resource::new(
        move || (refresh.get(), set_role.version().get(), remove.version().get()),
        |_| list_members(),
    );
    let owner = move || visitor.may(Role::Owner);
    let account = move || {
        visitor
            .0
            .get()
            .and_then(|visitor| visitor.current)
            .map(|current| current.name)
            .unwrap_or_default()
    };
    view! {
        <section aria-labelledby="members-title">
            <h2 id="members-title">{move || format!("Users of {}", account())}</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading users…"</p> }>
                {move || members.get().map(|found| match found {
                    Ok(members) => view! { <MembersTable members owner=owner() set_role remove/> }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
            <Failure error=failure(set_role)/>
            <Failure error=failure(remove)/>
        </section>
        {move || owner().then(|| view! { <InviteForm/> })}
    }
}

#[component]
fn MembersTable(
    members: Vec<MemberView>,
    owner: bool,
    set_role: ServerAction<SetMemberRole>,
    remove: ServerAction<RemoveMember>,
) -> impl IntoView {
    if members.is_empty() {
        return view! { <p class="empty">"No users yet."</p> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="members">
                <thead>
                    <tr>
                        <th scope="col">"Email"</th>
                        <th scope="col">"Role"</th>
                        <th scope="col">"State"</th>
                        {owner.then(|| view! { <th scope="col"><span class="sr-only">"Actions"</span></th> })}
                    </tr>
                </thead>
                <tbody>
                    {members.into_iter().map(|member| {
                        let MemberView { user_id, email, role, active, instance_owner } = member;
                        let role_cell = if owner {
                            let user_id = user_id.clone();
                            view! {
                                <select aria-label=format!("Role of {email}") prop:value=role.as_str()
                                    on:change=move |event| {
                                        if let Ok(role) = event_target_value(&event).parse::<Role>() {
                                            set_role.dispatch(SetMemberRole { user_id: user_id.clone(), role });
                                        }
                                    }>
                                    {Role::ALL.map(|choice| view! {
                                        <option value=choice.as_str() selected=choice == role>{choice.as_str()}</option>
                                    })}
                                </select>
                            }.into_any()
                        } else {
                            view! { <RoleBadge role/> }.into_any()
                        };
                        let label = format!("Remove {email}");
                        let remove_button = owner.then(move || {
                            view! {
                                <td>
                                    <button type="button" class="secondary" aria-label=label
                                        on:click=move |_| { remove.dispatch(RemoveMember { user_id: user_id.clone() }); }>
                                        "Remove"
                                    </button>
                                </td>
                            }
                        });
                        view! {
                            <tr>
                                <td>{email.clone()}</td>
                                <td>{role_cell}</td>
                                <td>
                                    {if active { "active" } else { "invited" }}
                                    {instance_owner.then(|| view! { " " <span class="badge">"instance owner"</span> })}
                                </td>
                                {remove_button}
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// A one-time link that makes whoever opens it (or only `email`) a member with a role.
#[component]
fn InviteForm() -> impl IntoView {
    let invite = ServerAction::<InviteMember>::new();
    let email = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Viewer);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let email = Some(email.get_untracked().trim().to_owned()).filter(|email| !email.is_empty());
        invite.dispatch(InviteMember {
            email,
            role: role.get_untracked(),
        });
    };
    view! {
        <section class="card">
            <form class="stacked" aria-labelledby="invite-title" on:submit=submit>
                <h2 id="invite-title">"Invite"</h2>
                <label for="invite-email">"Email (optional)"</label>
                <input id="invite-email" type="email" aria-describedby="invite-email-hint" bind:value=email/>
                <p id="invite-email-hint" class="muted">"With an email, only that person can use the link."</p>
                <label for="invite-role">"Role"</label>
                <select id="invite-role" prop:value=move || role.get().as_str()
                    on:change=move |event| {
                        if let Ok(chosen) = event_target_value(&event).parse::<Role>() {
                            role.set(chosen);
                        }
                    }>
                    {Role::ALL.map(|choice| view! { <option value=choice.as_str()>{choice.as_str()}</option> })}
                </select>
                <button type="submit" disabled=move || invite.pending().get()>"Create invitation link"</button>
            </form>
            <Failure error=failure(invite)/>
            {move || match invite.value().get() {
                Some(Ok(link)) => Some(view! {
                    <OneTimeLinkPanel link title="Invitation link" advice="send it to the person you invite."/>
                }),
                _ => None,
            }}
        </section>
    }
}

/// The visitor's own password.
#[component]
fn ChangePasswordForm() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    let current = RwSignal::new(String::new());
    let new_password = RwSignal::new(String::new());
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        change.dispatch(ChangePassword {
            current: current.get_untracked(),
            new_password: new_password.get_untracked(),
        });
    };
    Effect::new(move |_| {
        if succeeded(change).get() {
            current.set(String::new());
            new_password.set(String::new());
        }
    });
    view! {
        <section class="card signin">
            <form aria-labelledby="password-title" on:submit=submit>
                <h2 id="password-title">"Change password"</h2>
                <label for="password-current">"Current password"</label>
                <input id="password-current" type="password" autocomplete="current-password" required
                    bind:value=current/>
                <label for="password-new">"New password"</label>
                <input id="password-new" type="password" autocomplete="new-password" required bind:value=new_password/>
                <button type="submit" disabled=move || change.pending().get()>"Change password"</button>
            </form>
            {move || succeeded(change).get().then(|| view! { <p role="status">"Password changed."</p> })}
            <Failure error=failure(change)/>
        </section>
    }
}
