//! The client portal: `/portal` lists a company's jobs and `/portal/jobs/{uuid}` shows one job with its visits and
//! files, both updating live through [`crate::realtime::use_webhook_updates`].
//!
//! A portal user arrives through a one-time link (`sm8-webhooks portal-link --company UUID`) that the server turns
//! into an HttpOnly session cookie; every server function answers only about that session's company. Each page
//! loads its data once through a resource (rendered on the server, hydrated in the browser) and then keeps its own
//! copy fresh: a relevant update refetches it, so the hook lives as long as the page does.

pub mod api;
pub mod model;
mod pages;
mod widgets;

pub use pages::{PortalHomePage, PortalJobPage};
