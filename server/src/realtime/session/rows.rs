//! A session's `postgres_changes`: the bindings of its joins, the accounts whose row changes it follows, and
//! the frames each channel gets (see `changes`).

use serde_json::Value;

use super::Session;
use crate::realtime::bus::Broadcast;
use crate::realtime::changes::{Binding, RowEvent, ROWS_TOPIC};
use crate::realtime::protocol::Outgoing;
use crate::realtime::scope::scoped;

impl Session {
    /// A join's bindings with the ids they get, and the reply's echo of them: the client's, in order, each with
    /// its id; or what is wrong with one of them.
    pub(super) fn bindings(&mut self, requested: &[Value]) -> Result<(Vec<Binding>, Vec<Value>), String> {
        let first = self.next_binding_id;
        let mut bindings = Vec::with_capacity(requested.len());
        let mut echoed = Vec::with_capacity(requested.len());
        for (id, binding) in (first..).zip(requested) {
            bindings.push(Binding::parse(binding, id)?);
            let mut echo = binding.as_object().cloned().unwrap_or_default();
            echo.insert("id".into(), id.into());
            echoed.push(Value::Object(echo));
        }
        self.next_binding_id = first + requested.len() as u64;
        Ok((bindings, echoed))
    }

    /// Follows the row changes of exactly the accounts that channels with bindings are in.
    pub(super) fn follow_rows(&mut self) {
        let wanted: std::collections::BTreeSet<String> = self
            .channels
            .values()
            .filter(|channel| !channel.bindings.is_empty())
            .map(|channel| scoped(channel.credentials.identity.account(), ROWS_TOPIC))
            .collect();
        for gone in self.row_topics.difference(&wanted) {
            self.context.hub.unsubscribe(gone, self.id);
        }
        for new in wanted.difference(&self.row_topics) {
            self.context.hub.subscribe(new, self.id, true, self.outlet.clone());
        }
        self.row_topics = wanted;
    }

    /// One `postgres_changes` frame for each channel of the row's account whose token may see the row and whose
    /// bindings match it.
    pub(super) fn on_row_change(&mut self, broadcast: &Broadcast) -> Vec<Outgoing> {
        let Some(event) = RowEvent::from_payload(&broadcast.payload) else {
            return Vec::new();
        };
        self.channels
            .iter()
            .filter(|(_, channel)| scoped(channel.credentials.identity.account(), ROWS_TOPIC) == broadcast.topic)
            .filter(|(_, channel)| event.visible_to(&channel.credentials.identity))
            .filter_map(|(topic, channel)| {
                let ids: Vec<u64> = channel
                    .bindings
                    .iter()
                    .filter(|binding| binding.matches(&event.change))
                    .map(|binding| binding.id)
                    .collect();
                (!ids.is_empty()).then(|| event.frame(topic, &ids))
            })
            .collect()
    }
}
