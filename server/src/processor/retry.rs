//! When to try a failed event again: exponential backoff with jitter, up to a number of retries.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Automatic retries after the first attempt.
    pub max_retries: i32,
    /// Delay before the first retry; each further retry waits twice as long.
    pub base_delay: Duration,
}

impl RetryPolicy {
    /// The delay before the next attempt after `attempts` failed ones, or `None` when the retries are used up.
    pub fn delay_after(&self, attempts: i32) -> Option<Duration> {
        if attempts > self.max_retries {
            return None;
        }
        let exponent = (attempts.max(1) - 1).min(20) as u32;
        let nominal = self.base_delay.saturating_mul(2u32.saturating_pow(exponent));
        // ±25% jitter spreads retries of events that failed together, while each delay stays longer than the
        // previous one.
        let factor = rand::rng().random_range(0.75..=1.25);
        Some(nominal.mul_f64(factor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_secs(10),
    };

    #[test]
    fn delays_grow_exponentially_within_the_jitter() {
        for (attempts, nominal) in [(1, 10.0), (2, 20.0), (3, 40.0)] {
            let delay = POLICY.delay_after(attempts).unwrap().as_secs_f64();
            assert!(
                delay >= nominal * 0.75 && delay <= nominal * 1.25,
                "attempt {attempts}: {delay}"
            );
        }
    }

    #[test]
    fn every_delay_is_longer_than_the_one_before() {
        for _ in 0..100 {
            let delays: Vec<_> = (1..=3).map(|n| POLICY.delay_after(n).unwrap()).collect();
            assert!(delays[0] < delays[1] && delays[1] < delays[2]);
        }
    }

    #[test]
    fn after_the_last_retry_there_is_no_delay() {
        assert_eq!(POLICY.delay_after(4), None);
        let no_retries = RetryPolicy {
            max_retries: 0,
            ..POLICY
        };
        assert_eq!(no_retries.delay_after(1), None);
    }
}
