//! When a delivery is tried again, and when a destination is given a rest: the retry schedule with jitter, and
//! the circuit breaker that opens a destination's circuit after consecutive failures. While it is open the store
//! holds the destination's deliveries for the cool-down; then one goes as the probe, and its outcome closes the
//! circuit or opens it for another cool-down.

use std::time::Duration;

use rand::Rng;

pub use crate::store::outbound::Circuit;

/// The delays before each retry of a delivery, in order; after the last the delivery fails. The default follows
/// Svix's: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

/// Why a schedule could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid retry schedule {given:?}: {reason}")]
pub struct InvalidSchedule {
    given: String,
    reason: String,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        "0s,5s,5m,30m,2h,5h,10h".parse().expect("the default schedule is valid")
    }
}

impl std::str::FromStr for RetrySchedule {
    type Err = InvalidSchedule;

    /// Comma-separated durations: a number with `ms`, `s`, `m`, `h` or `d` (`0s,5s,5m,30m,2h`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| InvalidSchedule {
            given: text.to_owned(),
            reason,
        };
        let delays = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| parse_duration(part).ok_or_else(|| invalid(format!("{part:?} is not a duration like 5s"))))
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() {
            return Err(invalid("give at least one delay".into()));
        }
        if delays.len() > 20 {
            return Err(invalid("at most 20 attempts".into()));
        }
        Ok(RetrySchedule { delays })
    }
}

fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(number.checked_mul(unit_ms)?))
}

impl RetrySchedule {
    /// How many attempts a delivery gets in all.
    pub fn attempts(&self) -> usize {
        self.delays.len()
    }

    /// The delay before attempt `attempt + 1` after `attempt` failed ones (1-based), or `None` when the delivery
    /// has had every attempt. ±20% jitter spreads deliveries that failed together.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        let nominal = *self.delays.get(attempt as usize)?;
        let factor = rand::rng().random_range(0.8..=1.2);
        Some(nominal.mul_f64(factor))
    }
}

/// After how many consecutive failures a destination is paused, and for how long before a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    pub failure_threshold: i64,
    pub cool_down: Duration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            failure_threshold: 5,
            cool_down: Duration::from_secs(60),
        }
    }
}

/// How an attempt changes a destination's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitChange {
    pub state: Circuit,
    /// The circuit opened with this attempt (an alert is raised).
    pub opened: bool,
    /// The circuit closed with this attempt (a probe succeeded).
    pub closed: bool,
}

impl CircuitBreaker {
    /// The circuit after an attempt that `succeeded` at `now`.
    pub fn after_attempt(&self, state: Circuit, succeeded: bool, now: i64) -> CircuitChange {
        if succeeded {
            return CircuitChange {
                state: Circuit {
                    consecutive_failures: 0,
                    opened_at: None,
                },
                opened: false,
                closed: state.opened_at.is_some(),
            };
        }
        let failures = state.consecutive_failures + 1;
        let opens_now = state.opened_at.is_none() && failures >= self.failure_threshold;
        // A failed probe re-opens the circuit for another cool-down.
        let opened_at = match state.opened_at {
            Some(_) => Some(now),
            None if opens_now => Some(now),
            None => None,
        };
        CircuitChange {
            state: Circuit {
                consecutive_failures: failures,
                opened_at,
            },
            opened: opens_now,
            closed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_is_seven_attempts_from_at_once_to_ten_hours() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.attempts(), 7);
        assert_eq!(schedule.delay_after(0), Some(Duration::ZERO));
        let last = schedule.delay_after(6).unwrap().as_secs_f64();
        assert!((36_000.0 * 0.8..=36_000.0 * 1.2).contains(&last), "{last}");
        assert_eq!(schedule.delay_after(7), None);
    }

    #[test]
    fn a_schedule_is_read_from_durations_and_a_malformed_one_is_refused_with_the_part() {
        let schedule: RetrySchedule = "100ms, 2s,1m".parse().unwrap();
        assert_eq!(schedule.attempts(), 3);
        let error = "5s,soon".parse::<RetrySchedule>().unwrap_err();
        assert!(error.to_string().contains("\"soon\""), "{error}");
        assert!("".parse::<RetrySchedule>().is_err());
        assert!("5x".parse::<RetrySchedule>().is_err());
    }

    #[test]
    fn delays_stay_within_the_jitter_of_their_step() {
        let schedule: RetrySchedule = "0s,10s,100s".parse().unwrap();
        for _ in 0..100 {
            let second = schedule.delay_after(1).unwrap().as_secs_f64();
            let third = schedule.delay_after(2).unwrap().as_secs_f64();
            assert!((8.0..=12.0).contains(&second) && (80.0..=120.0).contains(&third));
        }
    }

    const BREAKER: CircuitBreaker = CircuitBreaker {
        failure_threshold: 3,
        cool_down: Duration::from_secs(60),
    };
    const CLOSED: Circuit = Circuit {
        consecutive_failures: 0,
        opened_at: None,
    };

    #[test]
    fn the_circuit_opens_at_the_threshold_of_consecutive_failures_and_only_once() {
        let mut state = CLOSED;
        let mut openings = 0;
        for now in 1..=5 {
            let change = BREAKER.after_attempt(state, false, now);
            openings += usize::from(change.opened);
            state = change.state;
            if now < 3 {
                assert_eq!(state.opened_at, None);
            }
        }
        assert_eq!(openings, 1);
        assert!(state.opened_at.is_some());
    }

    #[test]
    fn a_success_resets_the_count_before_the_threshold() {
        let failed = BREAKER.after_attempt(CLOSED, false, 1).state;
        let failed = BREAKER.after_attempt(failed, false, 2).state;
        let reset = BREAKER.after_attempt(failed, true, 3);
        assert_eq!(reset.state, CLOSED);
        assert!(!reset.closed, "it was never open");
        let again = BREAKER.after_attempt(reset.state, false, 4).state;
        assert_eq!(again.opened_at, None);
    }

    #[test]
    fn a_failed_probe_reopens_the_circuit_for_another_cool_down_and_a_good_one_closes_it() {
        let open = Circuit {
            consecutive_failures: 3,
            opened_at: Some(1_000),
        };
        let failed_probe = BREAKER.after_attempt(open, false, 61_500);
        assert_eq!(failed_probe.state.opened_at, Some(61_500));
        assert!(!failed_probe.opened, "it was already open: no second alert");
        let good_probe = BREAKER.after_attempt(failed_probe.state, true, 121_600);
        assert!(good_probe.closed);
        assert_eq!(good_probe.state, CLOSED);
    }
}
