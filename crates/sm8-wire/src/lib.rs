//! The wire formats of SM8 Webhooks, apart from the server so that they can be fuzzed and tested on their own:
//! what a webhook delivery means and whether it is authentic (`ingest`), and the realtime relay's frames
//! (`realtime::protocol`). Pure functions over bytes, headers and secrets: no I/O, no clock but where a function
//! says so.

pub mod fuzzing;
pub mod ingest;
pub mod secret;

/// The realtime relay's side of the wire.
pub mod realtime {
    pub mod protocol;
}
