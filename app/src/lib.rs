//! The SM8 Webhooks user interface: server-rendered Leptos pages hydrated in the browser, the server functions
//! they call, and the data types shared with the server.

// Leptos views are deeply nested types; the portal's pages go past the compiler's default depth of 128.
#![recursion_limit = "256"]

pub mod access;
pub mod admin;
pub mod alerts;
pub mod analytics;
pub mod api;
pub mod components;
pub mod dashboard;
pub mod directory;
pub mod error;
pub mod model;
pub mod objects;
pub mod outbound;
pub mod portal;
pub mod realtime;
pub mod session;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::any_nested_route::IntoAnyNestedRoute;
use leptos_router::components::{Route, RouteChildren, Router, Routes, RoutesProps, A};
use leptos_router::{MatchNestedRoutes, ParamSegment, SsrMode, StaticSegment};

/// The file names of the browser bundle under `/pkg` as built: `sm8-webhooks.js`, `sm8-webhooks_bg.wasm`,
/// `sm8-webhooks.css`. `make build` then packs them as `sm8-webhooks.{hash}…`, the names pages use.
pub const OUTPUT_NAME: &str = "sm8-webhooks";

/// The parts of the site with a browser bundle of their own, which holds their pages alone: a portal user
/// downloads no admin page, and the dashboard none of the other admin pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Portal,
    Dashboard,
}

impl Area {
    pub const ALL: [Area; 2] = [Area::Portal, Area::Dashboard];

    /// What the area's bundle adds to the site bundle's name: `sm8-webhooks-portal`, `sm8-webhooks.{hash}-portal`.
    pub fn suffix(self) -> &'static str {
        match self {
            Area::Portal => "-portal",
            Area::Dashboard => "-dashboard",
        }
    }

    /// The area whose bundle a page at `path` loads, if not the whole site's.
    pub fn of_path(path: &str) -> Option<Area> {
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/portal") {
            Some(Area::Portal)
        } else if under("/admin/webhook-dashboard") {
            Some(Area::Dashboard)
        } else {
            None
        }
    }
}

/// The names under `/pkg` of the areas' own bundles that the server has: their pages load them instead of the
/// whole site's. The server provides it to every page's context.
#[derive(Debug, Clone, Default)]
pub struct AreaBundles(pub Vec<(Area, String)>);

impl AreaBundles {
    fn name_of(&self, area: Area) -> Option<String> {
        self.0
            .iter()
            .find(|(bundle_area, _)| *bundle_area == area)
            .map(|(_, name)| name.clone())
    }
}

/// The HTML document around every page.
pub fn shell(mut options: LeptosOptions) -> impl IntoView {
    let own_bundle = page_area().and_then(|area| use_context::<AreaBundles>()?.name_of(area));
    if let Some(name) = own_bundle {
        options.output_name = name.into();
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <link rel="stylesheet" id="leptos" href=format!("/pkg/{}.css", options.output_name)/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    framed(
        view! {
            <Route path=StaticSegment("") view=Home/>
            // Every page that can answer an error is rendered whole before the head is sent, so that the
            // status is the one the page shows on every request: 401 without a session, 404 for an event that
            // does not exist or a job that is not the visitor's, an invitation link that cannot be used.
            <DashboardRoutes/>
            <Route
                path=(StaticSegment("admin"), StaticSegment("invite"), ParamSegment("token"))
                view=admin::InvitePage
                ssr=SsrMode::Async
            />
            <Route path=(StaticSegment("admin"), StaticSegment("rules")) view=admin::RulesPage ssr=SsrMode::Async/>
            <Route
                path=(StaticSegment("admin"), StaticSegment("destinations"))
                view=admin::DestinationsPage
                ssr=SsrMode::Async
            />
            <Route path=(StaticSegment("admin"), StaticSegment("alerts")) view=admin::AlertsPage ssr=SsrMode::Async/>
            <Route
                path=(StaticSegment("admin"), StaticSegment("analytics"))
                view=admin::AnalyticsPage
                ssr=SsrMode::Async
            />
            <Route
                path=(StaticSegment("admin"), StaticSegment("accounts"))
                view=admin::AccountsPage
                ssr=SsrMode::Async
            />
            <Route path=(StaticSegment("admin"), StaticSegment("users")) view=admin::UsersPage ssr=SsrMode::Async/>
            <Route path=(StaticSegment("admin"), StaticSegment("tokens")) view=admin::TokensPage ssr=SsrMode::Async/>
            <Route path=(StaticSegment("admin"), StaticSegment("audit")) view=admin::AuditLogPage ssr=SsrMode::Async/>
            <PortalRoutes/>
        }
        .into_inner()
        .into_any_nested_route(),
    )
}

/// The frame of every bundle's pages around `routes`: the title, the router and the page for an unknown path.
/// The server renders `App`'s; an area's bundle hydrates the same frame with its own routes alone.
fn framed(routes: impl MatchNestedRoutes + Clone + Send + 'static) -> impl IntoView {
    provide_meta_context();
    // Built inside the router's children, where its context is; the `view!` form takes only literal routes.
    let routes = move || {
        Routes(
            RoutesProps::builder()
                .fallback(NotFound)
                .children(RouteChildren::to_children(move || routes))
                .build(),
        )
    };
    view! {
        <Title text="SM8 Webhooks"/>
        <Router>{routes()}</Router>
    }
}

/// The client portal's pages: its jobs, and one job.
#[component(transparent)]
fn PortalRoutes() -> impl MatchNestedRoutes + Clone {
    view! {
        <Route path=StaticSegment("portal") view=portal::PortalHomePage ssr=SsrMode::Async/>
        <Route
            path=(StaticSegment("portal"), StaticSegment("jobs"), ParamSegment("uuid"))
            view=portal::PortalJobPage
            ssr=SsrMode::Async
        />
    }
    .into_inner()
    .into_any_nested_route()
}

/// The webhook dashboard's pages: the events, and one event.
#[component(transparent)]
fn DashboardRoutes() -> impl MatchNestedRoutes + Clone {
    view! {
        <Route
            path=(StaticSegment("admin"), StaticSegment("webhook-dashboard"))
            view=dashboard::DashboardPage
            ssr=SsrMode::Async
        />
        <Route
            path=(
                StaticSegment("admin"),
                StaticSegment("webhook-dashboard"),
                StaticSegment("events"),
                ParamSegment("id"),
            )
            view=dashboard::EventPage
            ssr=SsrMode::Async
        />
    }
    .into_inner()
    .into_any_nested_route()
}

/// The area of the page being rendered, if it has a bundle of its own.
fn page_area() -> Option<Area> {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>().and_then(|parts| Area::of_path(parts.uri.path()))
    }
    #[cfg(not(feature = "ssr"))]
    {
        None
    }
}

/// The client portal's pages alone, in `App`'s frame, so that a portal page the server rendered with `App`
/// hydrates with this. The portal's bundle is built from it and holds none of the admin pages.
#[component]
pub fn PortalApp() -> impl IntoView {
    framed(view! { <PortalRoutes/> }.into_inner())
}

/// The webhook dashboard's pages alone (the events and one event), in `App`'s frame; its links to the other
/// admin pages load them from the server (`rel="external"`), with the site's bundle.
#[component]
pub fn DashboardApp() -> impl IntoView {
    framed(view! { <DashboardRoutes/> }.into_inner())
}

#[component]
fn Home() -> impl IntoView {
    view! {
        <main class="page narrow">
            <h1>"SM8 Webhooks"</h1>
            <p>"Receives ServiceM8 webhooks, stores every event durably and processes it."</p>
            <p><A href="/admin/webhook-dashboard">"Open the webhook dashboard"</A></p>
        </main>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    error::answer_with_status(&error::AppError::NotFound(String::new()));
    view! {
        <main class="page narrow">
            <h1>"Page not found"</h1>
            <p><A href="/">"Back to the start page"</A></p>
        </main>
    }
}

/// Entry point of the whole site's browser bundle: attaches to the server-rendered page.
#[cfg(feature = "hydrate")]
pub fn hydrate() {
    leptos::mount::hydrate_body(App);
    mark_hydrated();
}

/// Entry point of the client portal's browser bundle.
#[cfg(feature = "hydrate")]
pub fn hydrate_portal() {
    leptos::mount::hydrate_body(PortalApp);
    mark_hydrated();
}

/// Entry point of the webhook dashboard's browser bundle.
#[cfg(feature = "hydrate")]
pub fn hydrate_dashboard() {
    leptos::mount::hydrate_body(DashboardApp);
    mark_hydrated();
}

#[cfg(feature = "hydrate")]
fn mark_hydrated() {
    // Browser tests wait for this marker instead of guessing when the page became interactive.
    if let Some(body) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body()) {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}

#[cfg(test)]
mod tests {
    use super::Area;

    #[test]
    fn a_page_loads_the_bundle_of_the_area_its_path_is_under() {
        assert_eq!(Area::of_path("/portal"), Some(Area::Portal));
        assert_eq!(Area::of_path("/portal/jobs/j1"), Some(Area::Portal));
        assert_eq!(Area::of_path("/portals"), None);
        assert_eq!(Area::of_path("/admin/webhook-dashboard"), Some(Area::Dashboard));
        assert_eq!(
            Area::of_path("/admin/webhook-dashboard/events/e1"),
            Some(Area::Dashboard)
        );
        assert_eq!(Area::of_path("/admin/rules"), None);
        assert_eq!(Area::of_path("/"), None);
    }
}
