//! The outcome of a `simulate` run: what was sent, how the receiver answered, and how fast.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// How the receiver answered one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An authentic delivery answered 2xx; `duplicates` events of it were already stored.
    Accepted { duplicates: usize },
    /// A mis-signed delivery answered 401, as it should be.
    RejectedAsExpected,
    /// Anything else: a wrong status, an unreadable receipt, or no answer at all.
    Unexpected(String),
}

/// Ack latencies, from the first byte sent to the status received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulationSummary {
    pub sent: usize,
    /// Authentic deliveries answered 2xx.
    pub accepted: usize,
    /// Deliveries that repeated an earlier one.
    pub duplicates_sent: usize,
    /// Events the receiver reported as already stored.
    pub duplicates_reported: usize,
    /// Deliveries deliberately mis-signed.
    pub bad_signatures_sent: usize,
    /// Mis-signed deliveries answered 401.
    pub rejected_as_expected: usize,
    pub unexpected: usize,
    /// The first few unexpected answers, for the report.
    pub unexpected_samples: Vec<String>,
    pub latency: LatencySummary,
    pub elapsed: Duration,
}

/// Unexpected answers quoted in the report.
const SAMPLES: usize = 5;

impl SimulationSummary {
    /// Whether every answer was the expected one.
    pub fn is_clean(&self) -> bool {
        self.unexpected == 0
    }

    pub(crate) fn count(&mut self, answer: Answer) {
        self.sent += 1;
        match answer {
            Answer::Accepted { duplicates } => {
                self.accepted += 1;
                self.duplicates_reported += duplicates;
            }
            Answer::RejectedAsExpected => self.rejected_as_expected += 1,
            Answer::Unexpected(description) => {
                self.unexpected += 1;
                if self.unexpected_samples.len() < SAMPLES {
                    self.unexpected_samples.push(description);
                }
            }
        }
    }
}

/// Records latencies in microseconds, from 1 µs to 10 minutes, to 3 significant digits.
pub(crate) struct Latencies(Histogram<u64>);

impl Latencies {
    pub fn new() -> Self {
        Latencies(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"))
    }

    pub fn record(&mut self, latency: Duration) {
        self.0
            .saturating_record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1));
    }

    pub fn summary(&self) -> LatencySummary {
        if self.0.is_empty() {
            return LatencySummary::default();
        }
        let at = |quantile: f64| Duration::from_micros(self.0.value_at_quantile(quantile));
        LatencySummary {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: Duration::from_micros(self.0.max()),
        }
    }
}

impl fmt::Display for SimulationSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let seconds = self.elapsed.as_secs_f64();
        let throughput = if seconds > 0.0 { self.sent as f64 / seconds } else { 0.0 };
        writeln!(f, "Sent {} webhooks in {seconds:.2} s ({throughput:.0}/s)", self.sent)?;
        writeln!(f, "  accepted:              {}", self.accepted)?;
        writeln!(f, "  duplicates sent:       {}", self.duplicates_sent)?;
        writeln!(f, "  duplicates reported:   {}", self.duplicates_reported)?;
        writeln!(f, "  bad signatures sent:   {}", self.bad_signatures_sent)?;
        writeln!(f, "  rejected as expected:  {}", self.rejected_as_expected)?;
        writeln!(f, "  unexpected answers:    {}", self.unexpected)?;
        for sample in &self.unexpected_samples {
            writeln!(f, "    {sample}")?;
        }
        write!(
            f,
            "  ack latency (ms):      p50 {:.1}  p95 {:.1}  p99 {:.1}  max {:.1}",
            ms(self.latency.p50),
            ms(self.latency.p95),
            ms(self.latency.p99),
            ms(self.latency.max)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_tallied_by_kind_and_a_few_unexpected_ones_are_kept() {
        let mut summary = SimulationSummary::default();
        summary.count(Answer::Accepted { duplicates: 0 });
        summary.count(Answer::Accepted { duplicates: 1 });
        summary.count(Answer::RejectedAsExpected);
        for i in 0..7 {
            summary.count(Answer::Unexpected(format!("status 500 #{i}")));
        }
        assert_eq!(
            (summary.sent, summary.accepted, summary.duplicates_reported),
            (10, 2, 1)
        );
        assert_eq!((summary.rejected_as_expected, summary.unexpected), (1, 7));
        assert_eq!(summary.unexpected_samples.len(), SAMPLES);
        assert!(!summary.is_clean());
    }

    #[test]
    fn latency_percentiles_come_from_the_recorded_values() {
        let mut latencies = Latencies::new();
        for ms in 1..=100 {
            latencies.record(Duration::from_millis(ms));
        }
        let summary = latencies.summary();
        let near = |d: Duration, ms: f64| (d.as_secs_f64() * 1000.0 - ms).abs() < 0.5;
        assert!(near(summary.p50, 50.0), "{summary:?}");
        assert!(near(summary.p95, 95.0), "{summary:?}");
        assert!(near(summary.p99, 99.0), "{summary:?}");
        assert!(near(summary.max, 100.0), "{summary:?}");
        assert_eq!(Latencies::new().summary(), LatencySummary::default());
    }
}
