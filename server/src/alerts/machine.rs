//! One alert as a state machine: `ok → firing → ok` (resolved), notifying on transitions only, again after the
//! re-notify interval while it keeps firing unless acknowledged, and never while silenced. Pure: the monitor
//! reads the condition, steps the machine, and stores the step with the messages it calls for.

use app::alerts::model::{AlertState, AlertTransition};

/// Where an alert stands, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub state: AlertState,
    pub summary: Option<String>,
    pub firing_since: Option<i64>,
    pub last_notified_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub silenced_until: Option<i64>,
}

impl Standing {
    pub fn is_silenced(&self, now: i64) -> bool {
        self.silenced_until.is_some_and(|until| until > now)
    }
}

/// What a reading of the condition found: whether it holds, in a sentence, and the pages it is about (paths
/// under the dashboard, with their labels) for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub firing: bool,
    pub summary: String,
    pub links: Vec<(String, String)>,
}

impl Reading {
    pub fn firing(summary: impl Into<String>) -> Reading {
        Reading {
            firing: true,
            summary: summary.into(),
            links: Vec::new(),
        }
    }

    pub fn ok(summary: impl Into<String>) -> Reading {
        Reading {
            firing: false,
            summary: summary.into(),
            links: Vec::new(),
        }
    }

    pub fn with_links(self, links: Vec<(String, String)>) -> Reading {
        Reading { links, ..self }
    }
}

/// A change to store: the standing after it, the transition to record (none when only the summary changed), and
/// whether the alert's destinations are to be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub standing: Standing,
    pub transition: Option<AlertTransition>,
    pub notify: bool,
}

/// Steps `standing` by `reading` at `now`; `None` when nothing changes. A disabled alert reads `None`: one that
/// was firing resolves, without a message. `renotify_ms` of 0 never notifies again while firing.
pub fn step(standing: &Standing, reading: Option<&Reading>, renotify_ms: i64, now: i64) -> Option<Step> {
    let silenced = standing.is_silenced(now);
    match (standing.state, reading) {
        (AlertState::Ok, Some(reading)) if reading.firing => Some(Step {
            standing: Standing {
                state: AlertState::Firing,
                summary: Some(reading.summary.clone()),
                firing_since: Some(now),
                last_notified_at: (!silenced).then_some(now).or(standing.last_notified_at),
                acknowledged_at: None,
                silenced_until: standing.silenced_until,
            },
            transition: Some(AlertTransition::Fired),
            notify: !silenced,
        }),
        (AlertState::Firing, None) => Some(resolved(standing, "the alert was disabled".into(), false, now)),
        (AlertState::Firing, Some(reading)) if !reading.firing => {
            // Those who heard it fire hear it resolve; a resolution nobody was told of the firing of stays quiet.
            let told = standing
                .last_notified_at
                .is_some_and(|at| standing.firing_since.is_some_and(|since| at >= since));
            Some(resolved(standing, reading.summary.clone(), told && !silenced, now))
        }
        (AlertState::Firing, Some(reading)) => {
            let due = renotify_ms > 0
                && standing.acknowledged_at.is_none()
                && !silenced
                && standing
                    .last_notified_at
                    .max(standing.firing_since)
                    .is_none_or(|at| now - at >= renotify_ms);
            let summary_changed = standing.summary.as_deref() != Some(reading.summary.as_str());
            if !due && !summary_changed {
                return None;
            }
            Some(Step {
                standing: Standing {
                    summary: Some(reading.summary.clone()),
                    last_notified_at: if due { Some(now) } else { standing.last_notified_at },
                    ..standing.clone()
                },
                transition: due.then_some(AlertTransition::Renotified),
                notify: due,
            })
        }
        (AlertState::Ok, Some(reading)) => {
            (standing.summary.as_deref() != Some(reading.summary.as_str())).then(|| Step {
                standing: Standing {
                    summary: Some(reading.summary.clone()),
                    ..standing.clone()
                },
                transition: None,
                notify: false,
            })
        }
        (AlertState::Ok, None) => None,
    }
}

fn resolved(standing: &Standing, summary: String, notify: bool, now: i64) -> Step {
    Step {
        standing: Standing {
            state: AlertState::Ok,
            summary: Some(summary),
            firing_since: None,
            last_notified_at: if notify { Some(now) } else { standing.last_notified_at },
            acknowledged_at: None,
            silenced_until: standing.silenced_until,
        },
        transition: Some(AlertTransition::Resolved),
        notify,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn ok() -> Standing {
        Standing {
            state: AlertState::Ok,
            summary: None,
            firing_since: None,
            last_notified_at: None,
            acknowledged_at: None,
            silenced_until: None,
        }
    }

    fn run(
        readings: &[(i64, Option<Reading>)],
        renotify_ms: i64,
        start: Standing,
    ) -> (Standing, Vec<(i64, AlertTransition, bool)>) {
        let mut standing = start;
        let mut log = Vec::new();
        for (now, reading) in readings {
            if let Some(step) = step(&standing, reading.as_ref(), renotify_ms, *now) {
                if let Some(transition) = step.transition {
                    log.push((*now, transition, step.notify));
                }
                standing = step.standing;
            }
        }
        (standing, log)
    }

    #[test]
    fn a_condition_that_holds_fires_once_and_resolves_once() {
        let readings = [
            (0, Some(Reading::ok("fine"))),
            (1, Some(Reading::firing("bad"))),
            (2, Some(Reading::firing("bad"))),
            (3, Some(Reading::firing("bad"))),
            (4, Some(Reading::ok("fine again"))),
            (5, Some(Reading::ok("fine again"))),
        ];
        let (standing, log) = run(&readings, 0, ok());
        assert_eq!(
            log,
            vec![(1, AlertTransition::Fired, true), (4, AlertTransition::Resolved, true)]
        );
        assert_eq!(standing.state, AlertState::Ok);
        assert_eq!(standing.firing_since, None);
    }

    #[test]
    fn a_firing_alert_is_notified_again_after_the_interval_and_not_before() {
        let readings = [
            (0, Some(Reading::firing("bad"))),
            (30 * MINUTE, Some(Reading::firing("bad"))),
            (60 * MINUTE, Some(Reading::firing("bad"))),
            (90 * MINUTE, Some(Reading::firing("bad"))),
            (120 * MINUTE, Some(Reading::firing("bad"))),
        ];
        let (_, log) = run(&readings, 60 * MINUTE, ok());
        assert_eq!(
            log,
            vec![
                (0, AlertTransition::Fired, true),
                (60 * MINUTE, AlertTransition::Renotified, true),
                (120 * MINUTE, AlertTransition::Renotified, true),
            ]
        );
    }

    #[test]
    fn an_acknowledged_alert_is_not_notified_again_but_still_resolves_and_fires_anew() {
        let firing = step(&ok(), Some(&Reading::firing("bad")), MINUTE, 0).unwrap().standing;
        let acknowledged = Standing {
            acknowledged_at: Some(1),
            ..firing
        };
        let readings = [
            (5 * MINUTE, Some(Reading::firing("bad"))),
            (6 * MINUTE, Some(Reading::ok("fine"))),
            (7 * MINUTE, Some(Reading::firing("bad again"))),
        ];
        let (standing, log) = run(&readings, MINUTE, acknowledged);
        assert_eq!(
            log,
            vec![
                (6 * MINUTE, AlertTransition::Resolved, true),
                (7 * MINUTE, AlertTransition::Fired, true)
            ]
        );
        assert_eq!(
            standing.acknowledged_at, None,
            "a new firing needs a new acknowledgement"
        );
    }

    #[test]
    fn a_silenced_alert_records_its_transitions_without_notifying_until_the_silence_ends() {
        let silenced = Standing {
            silenced_until: Some(10 * MINUTE),
            ..ok()
        };
        let readings = [
            (MINUTE, Some(Reading::firing("bad"))),
            (5 * MINUTE, Some(Reading::firing("bad"))),
            (11 * MINUTE, Some(Reading::firing("bad"))),
            (12 * MINUTE, Some(Reading::ok("fine"))),
        ];
        let (_, log) = run(&readings, MINUTE, silenced);
        assert_eq!(
            log,
            vec![
                (MINUTE, AlertTransition::Fired, false),
                (11 * MINUTE, AlertTransition::Renotified, true),
                (12 * MINUTE, AlertTransition::Resolved, true),
            ]
        );
    }

    #[test]
    fn a_resolution_nobody_heard_the_firing_of_is_not_sent() {
        let silenced = Standing {
            silenced_until: Some(10 * MINUTE),
            ..ok()
        };
        let readings = [
            (MINUTE, Some(Reading::firing("bad"))),
            (20 * MINUTE, Some(Reading::ok("fine"))),
        ];
        let (_, log) = run(&readings, 0, silenced);
        assert_eq!(
            log,
            vec![
                (MINUTE, AlertTransition::Fired, false),
                (20 * MINUTE, AlertTransition::Resolved, false)
            ]
        );
    }

    #[test]
    fn disabling_a_firing_alert_resolves_it_quietly() {
        let (standing, log) = run(&[(0, Some(Reading::firing("bad"))), (1, None)], 0, ok());
        assert_eq!(
            log,
            vec![(0, AlertTransition::Fired, true), (1, AlertTransition::Resolved, false)]
        );
        assert_eq!(standing.state, AlertState::Ok);
        assert_eq!(
            step(&standing, None, 0, 2),
            None,
            "a disabled alert at rest does not change"
        );
    }

    #[test]
    fn a_new_summary_is_kept_without_a_transition() {
        let firing = step(&ok(), Some(&Reading::firing("3 events failed")), 0, 0)
            .unwrap()
            .standing;
        let next = step(&firing, Some(&Reading::firing("12 events failed")), 0, 1).unwrap();
        assert_eq!(next.transition, None);
        assert!(!next.notify);
        assert_eq!(next.standing.summary.as_deref(), Some("12 events failed"));
        assert_eq!(
            step(&next.standing, Some(&Reading::firing("12 events failed")), 0, 2),
            None
        );
    }
}
