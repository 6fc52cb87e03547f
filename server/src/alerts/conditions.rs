//! Reading each alert's condition from the store at one moment: what the pipeline's tables say about the last
//! minutes, in a sentence.

use app::model::PipelineHealth;
use time::{OffsetDateTime, UtcOffset};
use tokio::sync::OnceCell;

use super::machine::Reading;
use super::settings::{Condition, Silence, DAYS};
use crate::store::{BudgetLimits, Store, StoreError};

/// The signal a node raises while its realtime relay cannot publish.
pub const RELAY_DOWN: &str = "relay_down";
/// How many failed events a message links to.
const LINKED_EVENTS: u32 = 10;
const MINUTE_MS: i64 = 60_000;

/// What a condition is read against: one account's tables at `now`.
pub struct Probe<'a> {
    pub store: &'a dyn Store,
    pub account: &'a str,
    pub limits: BudgetLimits,
    pub now: i64,
    /// A node's signal not refreshed within this long is from a node that stopped.
    pub signal_lifetime_ms: i64,
    /// The pipeline's health at `now`, read once for the alerts that look at it (queue age, API budget).
    pub health: OnceCell<PipelineHealth>,
}

impl Probe<'_> {
    async fn health(&self) -> Result<&PipelineHealth, StoreError> {
        self.health
            .get_or_try_init(|| self.store.pipeline_health(self.account, self.now, self.limits))
            .await
    }
}

impl Condition {
    pub async fn read(&self, probe: &Probe<'_>) -> Result<Reading, StoreError> {
        let (store, account, now) = (probe.store, probe.account, probe.now);
        Ok(match self {
            Condition::ExhaustedRetries(settings) => {
                let window = i64::from(settings.window_minutes);
                let failed = store
                    .failed_events_since(account, now - window * MINUTE_MS, LINKED_EVENTS)
                    .await?;
                if failed.count >= i64::from(settings.min_events) {
                    let links = failed
                        .newest
                        .into_iter()
                        .map(|(id, object_type, object_uuid)| {
                            (
                                format!("{object_type} {object_uuid}"),
                                format!("/admin/webhook-dashboard/events/{id}"),
                            )
                        })
                        .collect();
                    Reading::firing(format!(
                        "{} failed in the last {}",
                        plural(failed.count, "event"),
                        plural(window, "minute")
                    ))
                    .with_links(links)
                } else {
                    Reading::ok(format!(
                        "no events failed for good in the last {}",
                        plural(window, "minute")
                    ))
                }
            }
            Condition::FailureRate(settings) => {
                let window = i64::from(settings.window_minutes);
                let tally = store.attempts_since(account, now - window * MINUTE_MS).await?;
                let percent = if tally.total == 0 {
                    0.0
                } else {
                    tally.failed as f64 * 100.0 / tally.total as f64
                };
                if tally.total >= i64::from(settings.min_attempts) && percent >= settings.percent {
                    Reading::firing(format!(
                        "{percent:.0}% of {} failed in the last {} (threshold {}%)",
                        plural(tally.total, "processing attempt"),
                        plural(window, "minute"),
                        settings.percent
                    ))
                    .with_links(vec![(
                        "failed events".into(),
                        "/admin/webhook-dashboard?status=failed".into(),
                    )])
                } else {
                    Reading::ok(format!(
                        "under {}% of processing attempts failed in the last {}",
                        settings.percent,
                        plural(window, "minute")
                    ))
                }
            }
            Condition::QueueAge(settings) => {
                let health = probe.health().await?;
                match health.oldest_queued_seconds {
                    Some(age) if age > i64::from(settings.max_seconds) => Reading::firing(format!(
                        "the oldest queued event has waited {} ({} queued; limit {})",
                        duration(age),
                        health.queue_depth,
                        duration(i64::from(settings.max_seconds))
                    )),
                    _ => Reading::ok(format!(
                        "no queued event older than {}",
                        duration(i64::from(settings.max_seconds))
                    )),
                }
            }
            Condition::ApiBudget(settings) => {
                let budget = &probe.health().await?.api_budget;
                let share = |used: i64, limit: i64| {
                    if limit > 0 {
                        used as f64 * 100.0 / limit as f64
                    } else {
                        0.0
                    }
                };
                let minute = share(budget.minute_used, budget.minute_limit);
                let day = share(budget.day_used, budget.day_limit);
                if minute >= settings.percent {
                    Reading::firing(format!(
                        "the API budget of the minute is {minute:.0}% used ({} of {} requests)",
                        budget.minute_used, budget.minute_limit
                    ))
                } else if day >= settings.percent {
                    Reading::firing(format!(
                        "the API budget of the day is {day:.0}% used ({} of {} requests)",
                        budget.day_used, budget.day_limit
                    ))
                } else {
                    Reading::ok(format!("the API budget is under {}% used", settings.percent))
                }
            }
            Condition::Silence(settings) => {
                if !watched(settings, now) {
                    Reading::ok("outside the watched hours")
                } else {
                    match store.last_webhook_at(account).await? {
                        None => Reading::ok("no webhook received yet"),
                        Some(last) if now - last >= i64::from(settings.minutes) * MINUTE_MS => {
                            Reading::firing(format!(
                                "no webhook from ServiceM8 for {}; check the subscriptions (ServiceM8 turns one off \
                                 after repeated failures)",
                                plural((now - last) / MINUTE_MS, "minute")
                            ))
                        }
                        Some(_) => Reading::ok("webhooks are arriving"),
                    }
                }
            }
            Condition::MissedWebhooks(settings) => {
                let window = i64::from(settings.window_minutes);
                let missed = store.reconciled_since(account, now - window * MINUTE_MS).await?;
                if missed >= i64::from(settings.min_changes) {
                    Reading::firing(format!(
                        "reconciliation found {} that no webhook announced in the last {}",
                        plural(missed, "change"),
                        plural(window, "minute")
                    ))
                } else {
                    Reading::ok(format!("no missed changes in the last {}", plural(window, "minute")))
                }
            }
            Condition::CircuitOpen(_) => {
                let open: Vec<String> = store
                    .list_destinations(account)
                    .await?
                    .into_iter()
                    .filter(|destination| destination.circuit_opened_at.is_some())
                    .map(|destination| {
                        format!(
                            "{} (after {} failures in a row)",
                            destination.name, destination.consecutive_failures
                        )
                    })
                    .collect();
                if open.is_empty() {
                    Reading::ok("every destination's circuit is closed")
                } else {
                    Reading::firing(format!("circuit open: {}", open.join(", ")))
                        .with_links(vec![("destinations".into(), "/admin/destinations".into())])
                }
            }
            Condition::RelayDown(settings) => {
                let failing: Vec<String> = store
                    .node_signals(RELAY_DOWN, now - probe.signal_lifetime_ms)
                    .await?
                    .into_iter()
                    .filter(|signal| now - signal.since >= i64::from(settings.after_seconds) * 1000)
                    .map(|signal| {
                        format!(
                            "{} since {} ({})",
                            signal.node,
                            duration((now - signal.since) / 1000),
                            signal.detail
                        )
                    })
                    .collect();
                if failing.is_empty() {
                    Reading::ok("every node's realtime relay is publishing")
                } else {
                    Reading::firing(format!("the realtime relay cannot publish on {}", failing.join("; ")))
                }
            }
        })
    }
}

/// Whether `now` falls in the silence alert's watched hours, in its time zone.
fn watched(settings: &Silence, now: i64) -> bool {
    let offset = UtcOffset::from_whole_seconds(settings.utc_offset_minutes * 60).unwrap_or(UtcOffset::UTC);
    let Ok(utc) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now) * 1_000_000) else {
        return false;
    };
    let local = utc.to_offset(offset);
    let day = DAYS[usize::from(local.weekday().number_days_from_monday())];
    settings.days.iter().any(|watched| watched == day) && (settings.from_hour..settings.to_hour).contains(&local.hour())
}

fn plural(count: i64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Seconds as people say them: `45 s`, `7 min 12 s`, `3 h 5 min`.
fn duration(seconds: i64) -> String {
    match seconds {
        ..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-07 was a Monday; 10:30 UTC.
    const MONDAY_10_30_UTC: i64 = 1_796_639_400_000;

    #[test]
    fn the_silence_alert_watches_only_its_days_and_hours_in_its_time_zone() {
        let settings = Silence::default();
        assert!(watched(&settings, MONDAY_10_30_UTC));
        assert!(
            !watched(&settings, MONDAY_10_30_UTC + 9 * 3_600_000),
            "19:30 is after hours"
        );
        assert!(
            !watched(&settings, MONDAY_10_30_UTC - 2 * 86_400_000),
            "Saturday is not watched"
        );
        let brisbane = Silence {
            utc_offset_minutes: 600,
            ..Silence::default()
        };
        assert!(!watched(&brisbane, MONDAY_10_30_UTC), "20:30 in Brisbane");
        assert!(
            watched(&brisbane, MONDAY_10_30_UTC - 8 * 3_600_000),
            "12:30 in Brisbane"
        );
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(432), "7 min 12 s");
        assert_eq!(duration(11_100), "3 h 5 min");
        assert_eq!(plural(1, "event"), "1 event");
        assert_eq!(plural(12, "event"), "12 events");
    }
}
