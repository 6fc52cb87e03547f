//! What a joining client is owed from the retained log: what it missed after the offset it resumes from, or
//! upstream's `config.broadcast.replay`, the broadcasts since a time.

use super::Session;
use crate::realtime::channel::{refetch_frame, Channel, ReplaySince};
use crate::realtime::outbox::Replay;
use crate::realtime::protocol::Outgoing;

impl Session {
    /// What the client missed on `topic` (its name for the channel's topic) after `after`.
    pub(super) async fn replay(&self, topic: &str, after: i64, channel: &mut Channel) -> Vec<Outgoing> {
        match self.context.bus.replay(&channel.hub_topic, after).await {
            Ok(Replay::Missed(broadcasts)) => {
                channel.last_offset = after;
                broadcasts
                    .iter()
                    .map(|broadcast| {
                        channel.last_offset = channel.last_offset.max(broadcast.offset.unwrap_or_default());
                        broadcast.render(self.vsn)
                    })
                    .collect()
            }
            Ok(Replay::Refetch { latest }) => {
                channel.last_offset = latest;
                vec![refetch_frame(topic, Some(latest))]
            }
            Err(error) => {
                tracing::error!(%error, topic, "reading the retained record for a resume failed");
                vec![refetch_frame(topic, None)]
            }
        }
    }

    /// The retained broadcasts of the channel's topic since `since.since` (unix ms), the latest `since.limit`,
    /// oldest first; later live ones follow on from the last of them.
    pub(super) async fn replay_since(&self, topic: &str, since: ReplaySince, channel: &mut Channel) -> Vec<Outgoing> {
        match self
            .context
            .bus
            .replay_since(&channel.hub_topic, since.since, since.limit)
            .await
        {
            Ok(broadcasts) => broadcasts
                .iter()
                .map(|broadcast| {
                    channel.last_offset = channel.last_offset.max(broadcast.offset.unwrap_or_default());
                    broadcast.render(self.vsn)
                })
                .collect(),
            Err(error) => {
                tracing::error!(%error, topic, "reading the retained record for a replay failed");
                Vec::new()
            }
        }
    }
}
