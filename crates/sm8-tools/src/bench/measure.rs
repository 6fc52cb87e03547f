//! What the scenarios measure with: a latency histogram with percentiles in milliseconds, ratios, and a
//! process's resident memory as Linux reports it.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies in microseconds, from 1 µs to 10 minutes, to 3 significant digits.
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    pub fn add(&mut self, other: &Latencies) {
        self.0.add(&other.0).expect("histograms with the same bounds add up");
    }

    pub fn summary(&self) -> LatencySummary {
        let at = |quantile: f64| {
            if self.0.is_empty() {
                0.0
            } else {
                self.0.value_at_quantile(quantile) as f64 / 1000.0
            }
        };
        LatencySummary {
            count: self.0.len(),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: if self.0.is_empty() {
                0.0
            } else {
                self.0.max() as f64 / 1000.0
            },
        }
    }
}

/// Percentiles of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// `part / whole`, or 0 when there is no whole to compare with.
pub fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 && part.is_finite() {
        part / whole
    } else {
        0.0
    }
}

/// Events per second over `elapsed`.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    ratio(count as f64, elapsed.as_secs_f64())
}

/// Resident memory of process `pid` in KiB, from `/proc/PID/status` (`VmRSS`).
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    vm_rss_kib(&status)
}

fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let mut latencies = Latencies::default();
        for millis in 1..=100 {
            latencies.record(Duration::from_millis(millis));
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 100);
        // Three significant digits: 50 ms is recorded as 50,000 µs ± 0.1%.
        assert!((summary.p50_ms - 50.0).abs() < 0.1, "{summary:?}");
        assert!((summary.p99_ms - 99.0).abs() < 0.1, "{summary:?}");
        assert!((summary.max_ms - 100.0).abs() < 0.1, "{summary:?}");
    }

    #[test]
    fn an_empty_histogram_summarises_to_zeroes() {
        assert_eq!(Latencies::default().summary(), LatencySummary::default());
    }

    #[test]
    fn histograms_add_up() {
        let (mut a, mut b) = (Latencies::default(), Latencies::default());
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(3));
        a.add(&b);
        assert_eq!(a.summary().count, 2);
        assert!((a.summary().max_ms - 3.0).abs() < 0.01);
    }

    #[test]
    fn ratios_and_rates_guard_against_nothing_to_divide_by() {
        assert_eq!(ratio(3.0, 4.0), 0.75);
        assert_eq!(ratio(3.0, 0.0), 0.0);
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
    }

    #[test]
    fn resident_memory_is_read_from_the_status_file() {
        let status = "Name:\tsm8-webhooks\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_kib(status), Some(12_345));
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
        assert!(resident_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
