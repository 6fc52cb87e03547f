//! The directory: signing in, first-run setup and invitations, accounts, their members and roles, personal API
//! tokens, and the audit log — the server functions and what they answer (the pages are `admin`'s).

pub mod api;
pub mod model;
