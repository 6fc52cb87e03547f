//! Whether this node's relay can publish: set by the forwarder as its publications fail and succeed, read by the
//! alert monitor (`relay_down`).

use std::sync::{Arc, Mutex};

use crate::store::now_millis;

/// Since when, and why, this node's relay has been failing to publish; clear while it publishes.
#[derive(Debug, Clone, Default)]
pub struct RelayHealth(Arc<Mutex<Option<(i64, String)>>>);

impl RelayHealth {
    /// A publication failed: down since the first failure in a row, with the latest reason.
    pub fn failed(&self, detail: impl Into<String>) {
        let mut down = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let since = down.as_ref().map_or_else(now_millis, |(since, _)| *since);
        *down = Some((since, detail.into()));
    }

    pub fn published(&self) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    pub fn down_since(&self) -> Option<(i64, String)> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_is_down_from_its_first_failure_in_a_row_until_it_publishes() {
        let health = RelayHealth::default();
        assert_eq!(health.down_since(), None);
        health.failed("connection refused");
        let (since, _) = health.down_since().unwrap();
        health.failed("timed out");
        assert_eq!(health.down_since(), Some((since, "timed out".to_owned())));
        health.published();
        assert_eq!(health.down_since(), None);
    }
}
