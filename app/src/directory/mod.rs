//! The directory: signing in, first-run setup and invitations, accounts, their members and roles, personal API
//! tokens, and the audit log.

pub mod api;
pub mod model;
pub mod pages;
