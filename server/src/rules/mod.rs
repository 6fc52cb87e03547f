//! The rules engine: what an account's rules decide about each event, as pure logic with no store and no HTTP.
//! `filter` is the JSON filter language.

pub mod filter;
