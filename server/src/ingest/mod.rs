//! Ingest: what a delivery from ServiceM8 means. Each delivery format is detected and decoded (`decode`,
//! `formats`), verified (`signature`, `standard`), and turned into the events the store keeps (`new_events`). The
//! receiver route that uses it is `receiver.rs`.
//!
//! The decoding and verification are the `sm8-wire` crate's, re-exported here under their old paths; this module
//! adds the receiver's settings (`IngestArgs`) and what needs the store.

mod args;

pub use args::IngestArgs;
pub use sm8_wire::ingest::{decode, formats, payload, signature, standard, DeliverySecrets, SIGNATURE_HEADER};

use uuid::Uuid;

use crate::store::{NewEvent, ReceivedBody};
use decode::Delivery;

/// The events of a delivery to `account` as they are stored: one per parsed event, all referring to the one body
/// and headers.
pub fn new_events(
    account: &str,
    delivery: Delivery,
    stored_headers: serde_json::Value,
    body: &[u8],
    received_at: i64,
) -> Vec<NewEvent> {
    let verification = delivery.verification.as_str();
    let body = ReceivedBody::new(body.to_vec(), stored_headers, received_at);
    delivery
        .events
        .into_iter()
        .enumerate()
        .map(|(index, event)| NewEvent {
            id: Uuid::now_v7(),
            account: account.to_owned(),
            dedup_key: match &delivery.delivery_id {
                Some(id) => format!("{}:{id}:{index}", delivery.format),
                None => event.dedup_key(delivery.format),
            },
            format: delivery.format.into(),
            object_type: event.object_type,
            object_uuid: event.object_uuid,
            event_type: event.event_type,
            occurred_at: event.occurred_at,
            changes: event.changes,
            body: body.clone(),
            verification: verification.into(),
            received_at,
        })
        .collect()
}
