//! Ingest: what a delivery from ServiceM8 means. Each delivery format is detected and decoded (`decode`,
//! `formats`), verified (`signature`, `standard`), and turned into the events the store keeps (`new_events`). The
//! receiver route that uses it is `receiver.rs`.

mod args;
pub mod decode;
mod form;
pub mod formats;
mod json;
pub mod payload;
pub mod signature;
pub mod standard;

pub use args::{DeliverySecrets, IngestArgs};

use uuid::Uuid;

use crate::store::{NewEvent, ReceivedBody};
use decode::Delivery;

/// Header carrying the seed format's HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-servicem8-signature";

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
