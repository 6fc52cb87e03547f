//! A destination's delivery log on `/admin/destinations`: its deliveries newest first, filtered by status and
//! paged by cursor in the URL (`status`, `cursor`, like the events table), and one delivery in full
//! (`delivery`): the message, every attempt, and retrying a failed one. The page's `LiveUpdates` refreshes it as
//! each attempt ends.

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::params::ParamsMap;

use super::{failure, time_or_dash, Failure};
use crate::access::Role;
use crate::admin::{CurrentVisitor, Refresh};
use crate::components::{ErrorNote, JsonBlock, LocalTime};
use crate::outbound::api::{get_delivery_detail, list_deliveries, RetryDelivery, RetryDestinationDeliveries};
use crate::outbound::model::{DeliveryDetail, DeliveryPage, DeliveryQuery};

pub(super) const DESTINATIONS: &str = "/admin/destinations";
const PAGE_SIZE: u32 = 25;
const STATUSES: [&str; 4] = ["queued", "delivering", "delivered", "failed"];

/// The link to a destination's log, with one delivery open when `delivery` names it.
pub fn delivery_log_href(destination_id: &str, delivery: Option<&str>) -> String {
    let mut pairs = vec![("destination", destination_id)];
    pairs.extend(delivery.map(|delivery| ("delivery", delivery)));
    page_href(&pairs)
}

/// The URL's query parameters in order, as the page read them (unescaped).
fn query_of(params: &ParamsMap) -> Vec<(String, String)> {
    params
        .into_iter()
        .map(|(key, value)| (key.to_string(), value.to_owned()))
        .collect()
}

/// The page's URL with the parameters of `query`, `key` set to `value` (or left out when `None`). The router's
/// `ParamsMap` is not changed for this: it unescapes what it is given, which would change an opaque cursor.
fn href_with(query: &[(String, String)], key: &str, value: Option<&str>) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .iter()
        .filter(|(name, _)| name != key)
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    pairs.extend(value.map(|value| (key, value)));
    page_href(&pairs)
}

/// The page's URL with `pairs` as its query. Ids and statuses stay readable: only what a query cannot hold as
/// it is gets escaped (the router's own `to_query_string` escapes every `-` of an id).
fn page_href(pairs: &[(&str, &str)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .map(|(key, value)| format!("{}={}", escape(key), escape(value)))
        .collect();
    if query.is_empty() {
        DESTINATIONS.to_owned()
    } else {
        format!("{DESTINATIONS}?{}", query.join("&"))
    }
}

/// Percent-encodes every byte but RFC 3986's unreserved characters.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => escaped.push(char::from(byte)),
            _ => escaped.push_str(&format!("%{byte:02X}")),
        }
    }
    escaped
}

/// The actions that change deliveries; the log refetches after each.
#[derive(Clone, Copy)]
pub(super) struct DeliveryActions {
    /// Retrying one delivery from its row in the log.
    pub retry_row: ServerAction<RetryDelivery>,
    /// Retrying the delivery opened in full.
    pub retry_opened: ServerAction<RetryDelivery>,
    pub retry_all: ServerAction<RetryDestinationDeliveries>,
}

impl DeliveryActions {
    pub fn new(retry_all: ServerAction<RetryDestinationDeliveries>) -> Self {
        DeliveryActions {
            retry_row: ServerAction::new(),
            retry_opened: ServerAction::new(),
            retry_all,
        }
    }

    fn versions(self) -> (usize, usize, usize) {
        (
            self.retry_row.version().get(),
            self.retry_opened.version().get(),
            self.retry_all.version().get(),
        )
    }
}

#[component]
pub(super) fn DeliveryLog(destination_id: String, actions: DeliveryActions) -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let visitor = expect_context::<CurrentVisitor>();
    let admin = untrack(move || visitor.may(Role::Admin));
    let params = use_query_map();
    let filter = Memo::new(move |_| {
        params.with(|params| {
            let text = |key: &str| params.get(key).filter(|value| !value.trim().is_empty());
            (text("status"), text("cursor"))
        })
    });
    let recheck = RwSignal::new(0_u64);
    let page = Resource::new(
        move || (filter.get(), refresh.get(), recheck.get(), actions.versions()),
        move |((status, cursor), ..)| {
            list_deliveries(DeliveryQuery {
                destination_id: Some(destination_id.clone()),
                status,
                cursor,
                limit: Some(PAGE_SIZE),
                ..DeliveryQuery::default()
            })
        },
    );
    let navigate = use_navigate();
    let set_status = move |status: String| {
        // Another status starts at the newest deliveries.
        let mut query = query_of(&params.get_untracked());
        query.retain(|(key, _)| key != "cursor");
        let status = Some(status.as_str()).filter(|status| !status.is_empty());
        navigate(&href_with(&query, "status", status), Default::default());
    };
    view! {
        <section aria-labelledby="deliveries-title">
            <div class="section-head">
                <h2 id="deliveries-title">"Delivery log"</h2>
                <button type="button" class="secondary" on:click=move |_| recheck.update(|n| *n += 1)>
                    "Reload log"
                </button>
            </div>
            <div class="filters" role="search">
                <div class="field">
                    <label for="delivery-status">"Delivery status"</label>
                    <select id="delivery-status" name="status"
                        prop:value=move || filter.get().0.unwrap_or_default()
                        on:change=move |event| set_status(event_target_value(&event))>
                        <option value="">"All"</option>
                        {STATUSES.map(|status| view! { <option value=status>{status}</option> })}
                    </select>
                </div>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading deliveries…"</p> }>
                {move || page.get().map(|found| match found {
                    Ok(page) => view! {
                        <DeliveryTable page params=params.get_untracked() admin retry=actions.retry_row/>
                    }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
            <Failure error=failure(actions.retry_row)/>
        </section>
    }
}

#[component]
fn DeliveryTable(
    page: DeliveryPage,
    params: ParamsMap,
    admin: bool,
    retry: ServerAction<RetryDelivery>,
) -> impl IntoView {
    let on_later_page = params.get("cursor").is_some();
    let query = query_of(&params);
    let older = page
        .next_cursor
        .map(|cursor| href_with(&query, "cursor", Some(&cursor)));
    let newest = href_with(&query, "cursor", None);
    if page.deliveries.is_empty() {
        let message = if params.get("status").is_some() {
            "No deliveries match."
        } else {
            "No deliveries yet: none of the account's rules has sent a message here."
        };
        return view! {
            <p class="empty">{message}</p>
            {on_later_page.then(|| view! { <a href=newest>"Back to the newest deliveries"</a> })}
        }
        .into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="deliveries">
                <thead>
                    <tr>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Attempts"</th>
                        <th scope="col">"Rule"</th>
                        <th scope="col">"Event"</th>
                        <th scope="col">"Next attempt or finished"</th>
                        <th scope="col">"Last error"</th>
                        {admin.then(|| view! { <th scope="col"><span class="sr-only">"Actions"</span></th> })}
                    </tr>
                </thead>
                <tbody>
                    {page.deliveries.into_iter().map(|delivery| {
                        let open = href_with(&query, "delivery", Some(&delivery.id));
                        let id = delivery.id.clone();
                        let retryable = admin && delivery.status == "failed";
                        view! {
                            <tr data-delivery-id=delivery.id.clone()>
                                <td><a href=open aria-label=format!("Details of delivery {}", delivery.id)>
                                    <LocalTime iso=delivery.created_at.clone()/>
                                </a></td>
                                <td><DeliveryStatus status=delivery.status.clone()/></td>
                                <td>{delivery.attempts}</td>
                                <td>{delivery.rule_name.clone().unwrap_or_else(|| "–".into())}</td>
                                <td>{event_link(delivery.event_id.clone())}</td>
                                <td>{time_or_dash(delivery.finished_at.clone().or(delivery.next_attempt_at.clone()))}</td>
                                <td class="error-cell">{delivery.last_error.clone().unwrap_or_default()}</td>
                                {admin.then(|| view! {
                                    <td>{retryable.then(|| view! {
                                        <button type="button" class="secondary"
                                            aria-label=format!("Retry delivery {}", delivery.id)
                                            disabled=move || retry.pending().get()
                                            on:click=move |_| { retry.dispatch(RetryDelivery { id: id.clone() }); }>
                                            "Retry"
                                        </button>
                                    })}</td>
                                })}
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <nav class="pager" aria-label="Pages of deliveries">
            {on_later_page.then(|| view! { <a class="button secondary" href=newest.clone()>"← Newest"</a> })}
            {older.map(|href| view! { <a class="button secondary" href=href>"Older →"</a> })}
        </nav>
    }
    .into_any()
}

/// A delivery's status as a badge the stylesheet colours.
#[component]
pub fn DeliveryStatus(#[prop(into)] status: String) -> impl IntoView {
    view! { <span class=format!("badge status-{status}")>{status.clone()}</span> }
}

fn event_link(event_id: Option<String>) -> AnyView {
    match event_id {
        Some(id) => view! {
            <a class="mono" href=format!("/admin/webhook-dashboard/events/{id}")>{id.clone()}</a>
        }
        .into_any(),
        None => view! { <span class="muted">"test"</span> }.into_any(),
    }
}

/// The delivery the URL opens (`?delivery=`), in full.
#[component]
pub(super) fn OpenedDelivery(actions: DeliveryActions) -> impl IntoView {
    let params = use_query_map();
    let opened = Memo::new(move |_| params.read().get("delivery").filter(|id| !id.is_empty()));
    move || opened.get().map(|id| view! { <DeliveryCard id actions/> })
}

#[component]
fn DeliveryCard(id: String, actions: DeliveryActions) -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let retry = actions.retry_opened;
    let detail = Resource::new(
        move || (refresh.get(), actions.versions()),
        move |_| get_delivery_detail(id.clone()),
    );
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading the delivery…"</p> }>
            {move || detail.get().map(|found| match found {
                Ok(detail) => view! { <DeliveryDetailView detail retry/> }.into_any(),
                Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
            })}
        </Transition>
    }
}

#[component]
fn DeliveryDetailView(detail: DeliveryDetail, retry: ServerAction<RetryDelivery>) -> impl IntoView {
    let visitor = expect_context::<CurrentVisitor>();
    let params = use_query_map();
    let close = href_with(&query_of(&params.get_untracked()), "delivery", None);
    let DeliveryDetail {
        delivery,
        message,
        attempt_log,
    } = detail;
    let retryable = visitor.may(Role::Admin) && delivery.status == "failed";
    let id = delivery.id.clone();
    view! {
        <section class="card detail delivery" aria-labelledby="delivery-title" data-delivery-id=delivery.id.clone()>
            <div class="section-head">
                <div class="heading-line">
                    <h2 id="delivery-title">{format!("Delivery to {}", delivery.destination_name)}</h2>
                    <DeliveryStatus status=delivery.status.clone()/>
                </div>
                <a href=close>"Close"</a>
            </div>
            <dl class="facts">
                <dt>"webhook-id"</dt><dd class="mono">{format!("msg_{}", delivery.id)}</dd>
                <dt>"Event"</dt><dd>{event_link(delivery.event_id.clone())}</dd>
                <dt>"Rule"</dt><dd>{delivery.rule_name.clone().unwrap_or_else(|| "–".into())}</dd>
                <dt>"Attempts"</dt><dd>{delivery.attempts}</dd>
                <dt>"Created"</dt><dd><LocalTime iso=delivery.created_at.clone()/></dd>
                {delivery.next_attempt_at.clone().map(|at| view! { <dt>"Next attempt"</dt><dd><LocalTime iso=at/></dd> })}
                {delivery.finished_at.clone().map(|at| view! { <dt>"Finished"</dt><dd><LocalTime iso=at/></dd> })}
                {delivery.last_error.clone().map(|error| view! { <dt>"Last error"</dt><dd class="error-text">{error}</dd> })}
            </dl>
            {retryable.then(|| view! {
                <button type="button" disabled=move || retry.pending().get()
                    on:click=move |_| { retry.dispatch(RetryDelivery { id: id.clone() }); }>
                    "Retry this delivery"
                </button>
            })}
            {move || retry.value().get().map(|result| match result {
                Ok(()) => view! { <p role="status">"Queued again."</p> }.into_any(),
                Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
            })}
            <h3>"Attempts"</h3>
            {if attempt_log.is_empty() {
                view! { <p class="empty">"Not attempted yet."</p> }.into_any()
            } else {
                view! {
                    <ol class="timeline">
                        {attempt_log.into_iter().map(|attempt| view! {
                            <li class=format!("attempt outcome-{}", attempt.outcome)>
                                <strong>{format!("Attempt {} · {}", attempt.attempt, attempt.outcome)}</strong>
                                " · " <LocalTime iso=attempt.started_at.clone()/>
                                {format!(" · {} ms", attempt.duration_ms)}
                                {attempt.http_status.map(|status| format!(" · HTTP {status}"))}
                                {attempt.error.clone().map(|error| view! { <div class="error-text">{error}</div> })}
                                {attempt.response_excerpt.clone().filter(|excerpt| !excerpt.is_empty()).map(|excerpt| view! {
                                    <pre class="code excerpt" tabindex="0"
                                        aria-label=format!("Response to attempt {}", attempt.attempt)>{excerpt}</pre>
                                })}
                            </li>
                        }).collect_view()}
                    </ol>
                }.into_any()
            }}
            <h3>"Message"</h3>
            <JsonBlock value=message label="Message"/>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_log_link_names_the_destination_and_the_opened_delivery() {
        assert_eq!(delivery_log_href("d1", None), "/admin/destinations?destination=d1");
        assert_eq!(
            delivery_log_href("d1", Some("x2")),
            "/admin/destinations?destination=d1&delivery=x2"
        );
    }

    #[test]
    fn ids_stay_readable_in_links_and_anything_else_is_escaped() {
        assert_eq!(
            delivery_log_href("01a2-b3", Some("c4-d5")),
            "/admin/destinations?destination=01a2-b3&delivery=c4-d5"
        );
        let query = vec![
            ("destination".to_owned(), "d1".to_owned()),
            ("cursor".to_owned(), "old".to_owned()),
        ];
        assert_eq!(
            href_with(&query, "cursor", Some("a+b/c=%é")),
            "/admin/destinations?destination=d1&cursor=a%2Bb%2Fc%3D%25%C3%A9"
        );
        assert_eq!(href_with(&query[..1], "destination", None), "/admin/destinations");
    }
}
