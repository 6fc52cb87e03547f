//! The digest on `/admin/analytics`: where and how often a summary of the last day's or week's analytics goes.
//! Every member sees it; admins choose the destination and the cadence, or stop it.

use leptos::prelude::*;

use super::{failure, succeeded, Failure};
use crate::access::Role;
use crate::admin::CurrentVisitor;
use crate::analytics::api::{get_analytics_digest, SaveAnalyticsDigest};
use crate::analytics::model::{AnalyticsDigest, DigestCadence};
use crate::components::ErrorNote;
use crate::outbound::api::list_destinations;
use crate::outbound::model::DestinationView;

#[component]
pub fn DigestPanel() -> impl IntoView {
    let save = ServerAction::<SaveAnalyticsDigest>::new();
    let digest = Resource::new(move || save.version().get(), |_| get_analytics_digest());
    let destinations = Resource::new(|| (), |_| list_destinations());
    view! {
        <section class="card digest" aria-labelledby="digest-title">
            <h3 id="digest-title">"Digest"</h3>
            <p class="muted">
                "A summary of the last day (UTC) or week (from Monday), sent to one of the account's destinations."
            </p>
            <Transition fallback=|| view! { <p class="muted">"Loading the digest…"</p> }>
                {move || match (digest.get(), destinations.get()) {
                    (Some(Ok(digest)), Some(Ok(destinations))) => {
                        view! { <DigestForm digest destinations save/> }.into_any()
                    }
                    (Some(Err(error)), _) | (_, Some(Err(error))) => {
                        view! { <ErrorNote message=error.to_string()/> }.into_any()
                    }
                    _ => ().into_any(),
                }}
            </Transition>
            <Failure error=failure(save)/>
            {move || succeeded(save).get().then(|| view! { <p role="status">"Digest saved."</p> })}
        </section>
    }
}

/// What the digest does now, in words.
fn describe(digest: &Option<AnalyticsDigest>, destinations: &[DestinationView]) -> String {
    match digest {
        None => "No digest is sent.".to_owned(),
        Some(digest) => {
            let name = destinations
                .iter()
                .find(|destination| destination.id == digest.destination_id)
                .map_or("a deleted destination", |destination| destination.name.as_str());
            format!("Sent {} to {name}.", digest.cadence.as_str())
        }
    }
}

#[component]
fn DigestForm(
    digest: Option<AnalyticsDigest>,
    destinations: Vec<DestinationView>,
    save: ServerAction<SaveAnalyticsDigest>,
) -> impl IntoView {
    let visitor = expect_context::<CurrentVisitor>();
    let summary = describe(&digest, &destinations);
    if !untrack(move || visitor.may(Role::Admin)) {
        return view! { <p>{summary}</p> }.into_any();
    }
    let destination = RwSignal::new(digest.as_ref().map(|d| d.destination_id.clone()).unwrap_or_default());
    let cadence = RwSignal::new(digest.as_ref().map(|d| d.cadence).unwrap_or_default());
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let chosen = destination.get_untracked();
        save.dispatch(SaveAnalyticsDigest {
            digest: (!chosen.is_empty()).then(|| AnalyticsDigest {
                destination_id: chosen,
                cadence: cadence.get_untracked(),
            }),
        });
    };
    view! {
        <p>{summary}</p>
        <form class="filters" aria-label="Digest" on:submit=submit>
            <div class="field">
                <label for="digest-destination">"Destination"</label>
                <select id="digest-destination" prop:value=move || destination.get()
                    on:change=move |event| destination.set(event_target_value(&event))>
                    <option value="">"None: no digest"</option>
                    {destinations.into_iter().map(|choice| view! {
                        <option value=choice.id.clone()>{choice.name}</option>
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="digest-cadence">"How often"</label>
                <select id="digest-cadence" prop:value=move || cadence.get().as_str()
                    on:change=move |event| cadence.set(match event_target_value(&event).as_str() {
                        "weekly" => DigestCadence::Weekly,
                        _ => DigestCadence::Daily,
                    })>
                    <option value="daily">"Daily"</option>
                    <option value="weekly">"Weekly"</option>
                </select>
            </div>
            <button type="submit" disabled=move || save.pending().get()>"Save digest"</button>
        </form>
    }
    .into_any()
}
