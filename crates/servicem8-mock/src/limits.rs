//! What can stand between a request and its answer: the account's rate limits, and faults injected on purpose.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Whether a request fits the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    MinuteExceeded,
    DayExceeded,
}

/// Requests counted per API key, like ServiceM8's 180 per minute and 20,000 per day: the minute is a rolling
/// window (the stricter reading of ServiceM8's limit: no more than the limit in any 60 s), the day a fixed one.
/// Refused requests are not counted.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    per_day: u32,
    keys: HashMap<String, KeyWindows>,
}

#[derive(Debug)]
struct KeyWindows {
    /// When the requests of the last minute were allowed, oldest first; never more than the limit.
    minute: VecDeque<Instant>,
    day: Window,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    count: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Window { started: now, count: 0 }
    }

    fn roll(&mut self, now: Instant, length: Duration) {
        if now.duration_since(self.started) >= length {
            *self = Window::new(now);
        }
    }
}

impl RateLimiter {
    pub fn new(per_minute: u32, per_day: u32) -> Self {
        RateLimiter {
            per_minute,
            per_day,
            keys: HashMap::new(),
        }
    }

    /// Counts one request by `key` at `now`, unless it is over a limit.
    pub fn check(&mut self, key: &str, now: Instant) -> RateDecision {
        let windows = self.keys.entry(key.to_owned()).or_insert_with(|| KeyWindows {
            minute: VecDeque::new(),
            day: Window::new(now),
        });
        while windows
            .minute
            .front()
            .is_some_and(|&at| now.duration_since(at) >= MINUTE)
        {
            windows.minute.pop_front();
        }
        windows.day.roll(now, DAY);
        if windows.day.count >= self.per_day {
            return RateDecision::DayExceeded;
        }
        if windows.minute.len() >= self.per_minute as usize {
            return RateDecision::MinuteExceeded;
        }
        windows.minute.push_back(now);
        windows.day.count += 1;
        RateDecision::Allowed
    }
}

/// Faults injected into API requests; change them at run time with `MockHandle::set_faults` or
/// `POST /_mock/faults`. Rates are fractions of requests, from 0 to 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Answered 500 or 503.
    pub error_rate: f64,
    /// Answered 429 whatever the counters say.
    pub rate_limit_rate: f64,
    /// Delay before every answer.
    pub latency_ms: u64,
    /// Left hanging, long enough for a client to time out.
    pub timeout_rate: f64,
}

/// What befalls one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOutcome {
    None,
    Hang,
    ServerError,
    Unavailable,
    RateLimited,
}

impl Faults {
    pub fn none() -> Self {
        Faults::default()
    }

    /// Picks the fault for one request from `roll`, a uniform number in [0, 1), and `coin` (500 or 503).
    pub fn draw(&self, roll: f64, coin: bool) -> FaultOutcome {
        let hang_until = self.timeout_rate;
        let error_until = hang_until + self.error_rate;
        let limit_until = error_until + self.rate_limit_rate;
        if roll < hang_until {
            FaultOutcome::Hang
        } else if roll < error_until {
            if coin {
                FaultOutcome::ServerError
            } else {
                FaultOutcome::Unavailable
            }
        } else if roll < limit_until {
            FaultOutcome::RateLimited
        } else {
            FaultOutcome::None
        }
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_over_the_minute_limit_is_refused_until_the_next_minute() {
        let mut limiter = RateLimiter::new(3, 100);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("key", start), RateDecision::Allowed);
        }
        assert_eq!(
            limiter.check("key", start + Duration::from_secs(59)),
            RateDecision::MinuteExceeded
        );
        assert_eq!(limiter.check("key", start + MINUTE), RateDecision::Allowed);
    }

    #[test]
    fn the_minute_rolls_request_by_request_not_by_the_clock() {
        let mut limiter = RateLimiter::new(2, 100);
        let start = Instant::now();
        assert_eq!(limiter.check("key", start), RateDecision::Allowed);
        assert_eq!(
            limiter.check("key", start + Duration::from_secs(50)),
            RateDecision::Allowed
        );
        assert_eq!(
            limiter.check("key", start + Duration::from_secs(59)),
            RateDecision::MinuteExceeded
        );
        assert_eq!(
            limiter.check("key", start + MINUTE),
            RateDecision::Allowed,
            "the first is a minute old"
        );
        assert_eq!(
            limiter.check("key", start + Duration::from_secs(61)),
            RateDecision::MinuteExceeded,
            "the second is not"
        );
    }

    #[test]
    fn keys_are_counted_apart() {
        let mut limiter = RateLimiter::new(1, 100);
        let now = Instant::now();
        assert_eq!(limiter.check("a", now), RateDecision::Allowed);
        assert_eq!(limiter.check("b", now), RateDecision::Allowed);
        assert_eq!(limiter.check("a", now), RateDecision::MinuteExceeded);
    }

    #[test]
    fn the_daily_limit_holds_across_minutes() {
        let mut limiter = RateLimiter::new(10, 4);
        let start = Instant::now();
        for minute in 0..4 {
            assert_eq!(limiter.check("key", start + MINUTE * minute), RateDecision::Allowed);
        }
        assert_eq!(limiter.check("key", start + MINUTE * 10), RateDecision::DayExceeded);
        assert_eq!(limiter.check("key", start + DAY), RateDecision::Allowed);
    }

    #[test]
    fn refused_requests_do_not_use_up_the_next_window() {
        let mut limiter = RateLimiter::new(1, 100);
        let start = Instant::now();
        limiter.check("key", start);
        for _ in 0..5 {
            assert_eq!(limiter.check("key", start), RateDecision::MinuteExceeded);
        }
        assert_eq!(limiter.check("key", start + MINUTE), RateDecision::Allowed);
    }

    #[test]
    fn fault_rates_split_the_unit_interval() {
        let faults = Faults {
            timeout_rate: 0.1,
            error_rate: 0.2,
            rate_limit_rate: 0.3,
            latency_ms: 0,
        };
        assert_eq!(faults.draw(0.05, true), FaultOutcome::Hang);
        assert_eq!(faults.draw(0.15, true), FaultOutcome::ServerError);
        assert_eq!(faults.draw(0.25, false), FaultOutcome::Unavailable);
        assert_eq!(faults.draw(0.45, true), FaultOutcome::RateLimited);
        assert_eq!(faults.draw(0.65, true), FaultOutcome::None);
        assert_eq!(Faults::none().draw(0.0, true), FaultOutcome::None);
    }

    #[test]
    fn an_error_rate_of_one_fails_every_request() {
        let faults = Faults {
            error_rate: 1.0,
            ..Faults::none()
        };
        assert!((0..100).all(|i| faults.draw(f64::from(i) / 100.0, i % 2 == 0) != FaultOutcome::None));
    }
}
