//! The rules engine: what an account's rules decide about each event, as pure logic with no store and no HTTP.
//! `filter` is the JSON filter language; `sandbox` runs JavaScript transforms; `template` renders messages.

pub mod filter;
pub mod sandbox;
pub mod template;
