//! The two portal pages and their states: loading, signed out, not found, failed, empty, and live.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use super::api::{portal_job, portal_jobs, PortalSignOut};
use super::model::{format_amount, PortalActivity, PortalAttachment, PortalJob, PortalJobDetail, PortalOverview};
use super::widgets::{LiveIndicator, LocalTime, StatusBadge};
use crate::error::AppError;
use crate::realtime::{use_webhook_updates, ConnectionStatus, UseWebhookUpdatesOptions, WebhookUpdate};

/// `/portal`: the jobs of the session's company.
#[component]
pub fn PortalHomePage() -> impl IntoView {
    let sign_out = ServerAction::<PortalSignOut>::new();
    let overview = Resource::new(move || sign_out.version().get(), |_| portal_jobs());
    let retry = Callback::new(move |()| overview.refetch());
    view! {
        <Title text="Your jobs · Client portal"/>
        <Transition fallback=|| view! { <Loading what="your jobs"/> }>
            {move || overview.get().map(|result| match result {
                Ok(overview) => view! { <CompanyJobs initial=overview sign_out/> }.into_any(),
                Err(error) => {
                    let signed_out = sign_out.version().get_untracked() > 0;
                    view! { <Problem error signed_out retry/> }.into_any()
                }
            })}
        </Transition>
    }
}

/// `/portal/jobs/{uuid}`: one job with its visits and files.
#[component]
pub fn PortalJobPage() -> impl IntoView {
    let params = use_params_map();
    let job_uuid = Memo::new(move |_| params.read().get("uuid").unwrap_or_default());
    let sign_out = ServerAction::<PortalSignOut>::new();
    let detail = Resource::new(
        move || (job_uuid.get(), sign_out.version().get()),
        |(uuid, _)| portal_job(uuid),
    );
    let retry = Callback::new(move |()| detail.refetch());
    view! {
        <Title text="Job · Client portal"/>
        <Transition fallback=|| view! { <Loading what="this job"/> }>
            {move || detail.get().map(|result| match result {
                Ok(detail) => view! { <JobDetail initial=detail sign_out/> }.into_any(),
                Err(error) => {
                    let signed_out = sign_out.version().get_untracked() > 0;
                    view! { <Problem error signed_out retry/> }.into_any()
                }
            })}
        </Transition>
    }
}

/// Refetches into `target` when asked; when answers overtake each other, only the newest request's is kept.
#[derive(Clone, Copy)]
struct Refresher {
    latest: StoredValue<u64>,
}

impl Refresher {
    fn new() -> Refresher {
        Refresher {
            latest: StoredValue::new(0),
        }
    }

    fn refresh<T, F, Fut>(self, fetch: F, apply: impl Fn(Result<T, AppError>) + 'static)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, AppError>> + 'static,
        T: 'static,
    {
        let Some(ticket) = self.latest.try_update_value(|latest| {
            *latest += 1;
            *latest
        }) else {
            return;
        };
        let answer = fetch();
        leptos::task::spawn_local(async move {
            let result = answer.await;
            if self.latest.try_get_value() == Some(ticket) {
                apply(result);
            }
        });
    }
}

/// The job list of one company, kept current by live updates.
#[component]
fn CompanyJobs(initial: PortalOverview, sign_out: ServerAction<PortalSignOut>) -> impl IntoView {
    let company_uuid = initial.company_uuid.clone();
    let overview = RwSignal::new(initial);
    let changed = RwSignal::new(None::<String>);
    let refresher = Refresher::new();
    let refetch = move || {
        refresher.refresh(portal_jobs, move |result| {
            if let Ok(fresh) = result {
                overview.try_set(fresh);
            }
        })
    };
    let on_change = Callback::new(move |update: WebhookUpdate| {
        changed.try_set(Some(update.job_uuid.unwrap_or(update.object_uuid)));
        refetch();
    });
    let live = use_webhook_updates(UseWebhookUpdatesOptions {
        company_uuid: Some(company_uuid),
        on_job_update: Some(on_change),
        on_company_update: Some(on_change),
        on_refetch: Some(Callback::new(move |()| refetch())),
        ..Default::default()
    });
    let company_name = Signal::derive(move || overview.with(|o| o.company_name.clone()));
    let jobs = move || overview.with(|o| o.jobs.clone());
    let count = move || overview.with(|o| o.jobs.len());

    view! {
        <PortalHeader company_name status=live.status sign_out/>
        <main id="portal-main" class="portal-main" tabindex="-1">
            <div class="portal-heading">
                <h1>"Your jobs"</h1>
                <p class="muted">
                    {move || match count() {
                        0 => "No jobs yet".to_owned(),
                        1 => "1 job".to_owned(),
                        n => format!("{n} jobs"),
                    }}
                    {move || (live.status.get() == ConnectionStatus::Connected).then_some(" · changes appear as they happen")}
                </p>
            </div>
            <Show
                when=move || { count() > 0 }
                fallback=|| view! {
                    <section class="portal-empty">
                        <h2>"Nothing here yet"</h2>
                        <p>"When work is booked for you, the job appears here, and this page updates on its own."</p>
                    </section>
                }
            >
                <ul class="job-list" role="list">
                    <For each=jobs key=|job| job.clone() let:job>
                        <JobCard job changed/>
                    </For>
                </ul>
            </Show>
            <LastChange live_update=live.last_update/>
        </main>
    }
    .into_any()
}

#[component]
fn JobCard(job: PortalJob, changed: RwSignal<Option<String>>) -> impl IntoView {
    let uuid = job.uuid.clone();
    let class = move || {
        if changed.with(|changed| changed.as_deref() == Some(uuid.as_str())) {
            "job-card just-updated"
        } else {
            "job-card"
        }
    };
    let href = format!("/portal/jobs/{}", job.uuid);
    let title = job.title();
    view! {
        <li class=class data-job-uuid=job.uuid.clone()>
            <div class="job-card-head">
                <h2 class="job-title"><A href=href>{title}</A></h2>
                <StatusBadge status=job.status.clone()/>
            </div>
            {job.job_address.map(|address| view! { <p class="job-address">{address}</p> })}
            {job.job_description.map(|description| view! { <p class="job-description">{description}</p> })}
            <dl class="job-facts">
                {job.date.map(|date| view! { <div><dt>"Scheduled"</dt><dd><LocalTime iso=date/></dd></div> })}
                {job.completion_date.map(|date| view! { <div><dt>"Completed"</dt><dd><LocalTime iso=date/></dd></div> })}
                {job.total_invoice_amount.map(|amount| view! {
                    <div><dt>"Invoice total"</dt><dd>{format_amount(&amount)}</dd></div>
                })}
            </dl>
        </li>
    }
    .into_any()
}

/// One job, kept current by live updates of the job, its visits and its files.
#[component]
fn JobDetail(initial: PortalJobDetail, sign_out: ServerAction<PortalSignOut>) -> impl IntoView {
    let job_uuid = initial.job.uuid.clone();
    let company_uuid = initial.company_uuid.clone();
    let title = initial.job.title();
    let detail = RwSignal::new(initial);
    // Set when a refetch finds the job gone (deleted, or moved to another company).
    let gone = RwSignal::new(false);
    let refresher = Refresher::new();
    let refetch = {
        let job_uuid = job_uuid.clone();
        move || {
            let job_uuid = job_uuid.clone();
            refresher.refresh(
                move || portal_job(job_uuid),
                move |result| match result {
                    Ok(fresh) => {
                        detail.try_set(fresh);
                    }
                    Err(AppError::NotFound(_)) => {
                        gone.try_set(true);
                    }
                    Err(_) => {}
                },
            )
        }
    };
    let on_change = {
        let refetch = refetch.clone();
        Callback::new(move |_: WebhookUpdate| refetch())
    };
    let live = use_webhook_updates(UseWebhookUpdatesOptions {
        company_uuid: Some(company_uuid),
        job_uuid: Some(job_uuid),
        on_job_update: Some(on_change),
        on_activity_update: Some(on_change),
        on_attachment_update: Some(on_change),
        on_refetch: Some(Callback::new(move |()| refetch())),
        ..Default::default()
    });
    let company_name = Signal::derive(move || detail.with(|d| d.company_name.clone()));
    let job = move || detail.with(|d| d.job.clone());

    view! {
        <Title text=format!("{title} · Client portal")/>
        <PortalHeader company_name status=live.status sign_out/>
        <main id="portal-main" class="portal-main" tabindex="-1">
            <nav class="breadcrumb" aria-label="Breadcrumb">
                <A href="/portal">"← All jobs"</A>
            </nav>
            {move || gone.get().then(|| view! {
                <p class="portal-alert" role="alert">"This job is no longer shared with you."</p>
            })}
            {move || {
                let job = job();
                let (uuid, title, status) = (job.uuid.clone(), job.title(), job.status.clone());
                let address = job.job_address.clone().map(|address| view! { <p class="job-address">{address}</p> });
                let description =
                    job.job_description.clone().map(|text| view! { <p class="job-description full">{text}</p> });
                view! {
                    <article class="job-detail" data-job-uuid=uuid>
                        <header class="job-detail-head">
                            <h1>{title}</h1>
                            <StatusBadge status/>
                        </header>
                        {address}
                        {description}
                        <JobFacts job/>
                    </article>
                }
            }}
            <section class="job-section" aria-labelledby="visits-title">
                <h2 id="visits-title">"Visits"</h2>
                {move || {
                    let activities = detail.with(|d| d.activities.clone());
                    if activities.is_empty() {
                        view! { <p class="portal-empty-line">"No visits booked yet."</p> }.into_any()
                    } else {
                        view! {
                            <ol class="visit-list" role="list">
                                {activities.into_iter().map(|activity| view! { <Visit activity/> }).collect_view()}
                            </ol>
                        }
                        .into_any()
                    }
                }}
            </section>
            <section class="job-section" aria-labelledby="files-title">
                <h2 id="files-title">"Files"</h2>
                {move || {
                    let attachments = detail.with(|d| d.attachments.clone());
                    if attachments.is_empty() {
                        view! { <p class="portal-empty-line">"No files attached yet."</p> }.into_any()
                    } else {
                        view! {
                            <ul class="file-list" role="list">
                                {attachments.into_iter().map(|file| view! { <File file/> }).collect_view()}
                            </ul>
                        }
                        .into_any()
                    }
                }}
            </section>
            <LastChange live_update=live.last_update/>
        </main>
    }
    .into_any()
}

#[component]
fn JobFacts(job: PortalJob) -> impl IntoView {
    let yes_no = |value: Option<bool>| value.map(|value| if value { "Yes" } else { "No" });
    let dates = [
        ("Scheduled", job.date),
        ("Quoted", job.quote_date),
        ("Work order", job.work_order_date),
        ("Completed", job.completion_date),
    ];
    view! {
        <dl class="job-facts job-facts-wide">
            {dates
                .into_iter()
                .filter_map(|(label, date)| Some((label, date?)))
                .map(|(label, date)| view! { <div><dt>{label}</dt><dd><LocalTime iso=date/></dd></div> })
                .collect_view()}
            {job.total_invoice_amount.map(|amount| view! {
                <div><dt>"Invoice total"</dt><dd>{format_amount(&amount)}</dd></div>
            })}
            {yes_no(job.invoice_sent).map(|text| view! { <div><dt>"Invoice sent"</dt><dd>{text}</dd></div> })}
            {yes_no(job.payment_received).map(|text| view! { <div><dt>"Paid"</dt><dd>{text}</dd></div> })}
        </dl>
    }
    .into_any()
}

#[component]
fn Visit(activity: PortalActivity) -> impl IntoView {
    let state = if activity.recorded {
        ("visit-state done", "Done")
    } else if activity.scheduled {
        ("visit-state booked", "Booked")
    } else {
        ("visit-state", "Noted")
    };
    let start = activity.start_date.clone();
    let end = activity.end_date.map(move |end| {
        view! { <span class="muted">" – "</span><LocalTime iso=end same_day_as=start/> }
    });
    view! {
        <li class="visit" data-activity-uuid=activity.uuid.clone()>
            <p class="visit-when">
                {match activity.start_date {
                    Some(start) => view! { <LocalTime iso=start/> }.into_any(),
                    None => view! { <span>"Time to be confirmed"</span> }.into_any(),
                }}
                {end}
            </p>
            <p class="visit-who">
                <span class=state.0>{state.1}</span>
                {activity.staff_name.map(|name| view! { <span>{format!(" with {name}")}</span> })}
            </p>
        </li>
    }
    .into_any()
}

#[component]
fn File(file: PortalAttachment) -> impl IntoView {
    let kind = file
        .file_type
        .as_deref()
        .map(|kind| kind.trim_start_matches('.').to_ascii_uppercase())
        .filter(|kind| !kind.is_empty())
        .unwrap_or_else(|| "FILE".into());
    view! {
        <li class="file" data-attachment-uuid=file.uuid.clone()>
            <span class="file-kind" aria-hidden="true">{kind.clone()}</span>
            <a class="file-name" href=format!("/portal/attachments/{}", file.uuid) download=file.name.clone()>
                {file.name.clone()}
            </a>
            <span class="visually-hidden">{format!(" ({kind} file)")}</span>
            {file.timestamp.map(|added| view! { <span class="file-added muted">"Added "<LocalTime iso=added/></span> })}
        </li>
    }
    .into_any()
}

/// The portal's top bar: where you are, whether it is live, and the way out.
#[component]
fn PortalHeader(
    company_name: Signal<Option<String>>,
    status: Signal<ConnectionStatus>,
    sign_out: ServerAction<PortalSignOut>,
) -> impl IntoView {
    view! {
        <a class="skip-link" href="#portal-main">"Skip to content"</a>
        <header class="portal-header">
            <div class="portal-brand">
                <A href="/portal">"Client portal"</A>
                {move || company_name.get().map(|name| view! { <span class="portal-company">{name}</span> })}
            </div>
            <div class="portal-header-tools">
                <LiveIndicator status/>
                <button type="button" class="secondary" on:click=move |_| { sign_out.dispatch(PortalSignOut {}); }>
                    "Sign out"
                </button>
            </div>
        </header>
    }
    .into_any()
}

/// The top bar when there is nothing live to show: loading, signed out, not found.
#[component]
fn PlainHeader() -> impl IntoView {
    view! {
        <header class="portal-header">
            <div class="portal-brand">
                <A href="/portal">"Client portal"</A>
            </div>
        </header>
    }
}

/// Tells screen-reader users what just changed, without moving their focus.
#[component]
fn LastChange(live_update: Signal<Option<WebhookUpdate>>) -> impl IntoView {
    let text = move || {
        live_update.get().map(|update| {
            let what = match update.kind {
                crate::realtime::UpdateKind::ActivityUpdate => "A visit",
                crate::realtime::UpdateKind::AttachmentUpdate => "A file",
                crate::realtime::UpdateKind::CompanyUpdate => "Your company details",
                _ => "A job",
            };
            format!("{what} was updated.")
        })
    };
    view! { <p class="visually-hidden" aria-live="polite">{text}</p> }.into_any()
}

#[component]
fn Loading(what: &'static str) -> impl IntoView {
    view! {
        <PlainHeader/>
        <main class="portal-main" aria-busy="true">
            <p class="muted" role="status">{format!("Loading {what}…")}</p>
            <div class="skeleton-list" aria-hidden="true">
                <div class="skeleton"></div>
                <div class="skeleton"></div>
                <div class="skeleton"></div>
            </div>
        </main>
    }
    .into_any()
}

/// What to show when the data cannot be: no session, not found, or a failure to retry.
#[component]
fn Problem(error: AppError, signed_out: bool, retry: Callback<()>) -> impl IntoView {
    crate::error::answer_with_status(&error);
    let body = match error {
        AppError::NotSignedIn if signed_out => view! {
            <h1>"You have signed out"</h1>
            <p>"To come back, open a portal link from your contact. Each link works once."</p>
        }
        .into_any(),
        AppError::NotSignedIn => view! {
            <h1>"Open your portal link"</h1>
            <p>
                "This portal shows your jobs to you alone, so it needs the link you were sent. "
                "If that link has already been used or has expired, ask your contact for a new one."
            </p>
        }
        .into_any(),
        AppError::NotFound(_) => view! {
            <h1>"Job not found"</h1>
            <p>"There is no such job among yours. It may have been removed, or the address may be mistyped."</p>
            <p><A href="/portal">"See all your jobs"</A></p>
        }
        .into_any(),
        error => view! {
            <h1>"Something went wrong"</h1>
            <p class="portal-alert" role="alert">{error.to_string()}</p>
            <button type="button" on:click=move |_| retry.run(())>"Try again"</button>
        }
        .into_any(),
    };
    view! {
        <PlainHeader/>
        <main id="portal-main" class="portal-main">
            <section class="portal-message">{body}</section>
        </main>
    }
    .into_any()
}
