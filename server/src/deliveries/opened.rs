//! A stored destination made ready to send to: its settings read and its secrets unsealed.

use crate::destinations::{Destination, DestinationSecrets, DestinationSettings};
use crate::sealing::Sealer;
use crate::store::outbound::{destination_secrets_context, DestinationRow};

/// Why a stored destination cannot be sent to (its secrets do not open, or its settings no longer read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationUnusable(pub String);

/// The secrets of a stored destination.
pub fn open_secrets(row: &DestinationRow, sealer: &Sealer) -> Result<DestinationSecrets, DestinationUnusable> {
    let sealed = row
        .sealed_secrets
        .as_deref()
        .ok_or_else(|| DestinationUnusable("it has no secrets".into()))?;
    let opened = sealer
        .open(sealed, &destination_secrets_context(&row.id))
        .map_err(|error| DestinationUnusable(format!("its secrets do not open: {error}")))?;
    let json = String::from_utf8(opened).map_err(|_| DestinationUnusable("its secrets are not text".into()))?;
    DestinationSecrets::from_json(&json).map_err(|error| DestinationUnusable(error.to_string()))
}

pub fn open_destination(row: &DestinationRow, sealer: &Sealer) -> Result<Destination, DestinationUnusable> {
    let settings = DestinationSettings::from_value(row.settings.clone())
        .map_err(|error| DestinationUnusable(error.to_string()))?;
    let secrets = open_secrets(row, sealer)?;
    Destination::new(row.name.clone(), settings, secrets).map_err(|error| DestinationUnusable(error.to_string()))
}
