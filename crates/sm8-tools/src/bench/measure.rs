//! What the scenarios measure with: a latency histogram with percentiles in milliseconds, ratios, and, as Linux
//! reports them, a process's resident memory and the CPU time of this process's threads by name.

use std::collections::BTreeMap;
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

    /// How many latencies were longer than `threshold`, to the histogram's resolution: those within 0.1 % of it
    /// count as not longer.
    pub fn count_over(&self, threshold: Duration) -> u64 {
        let micros = u64::try_from(threshold.as_micros()).unwrap_or(u64::MAX);
        self.0.len() - self.0.count_between(0, micros)
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
            p999_ms: at(0.999),
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
    pub p999_ms: f64,
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

/// `/proc` CPU times are in clock ticks of USER_HZ, which Linux fixes at 100 a second whatever the kernel's own
/// tick rate.
const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// CPU time (user + system) used so far by some threads of this process, in clock ticks by thread id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThreadCpu(BTreeMap<u32, u64>);

impl ThreadCpu {
    /// The threads whose name (`comm`, cut to 15 bytes by the kernel) starts with one of `prefixes`.
    pub fn read(prefixes: &[&str]) -> ThreadCpu {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return ThreadCpu::default();
        };
        let mut ticks = BTreeMap::new();
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|name| name.parse().ok()) else {
                continue;
            };
            // A thread may end between the listing and these reads; it is then simply not counted.
            let Ok(name) = std::fs::read_to_string(task.path().join("comm")) else {
                continue;
            };
            if !prefixes.iter().any(|prefix| name.trim_end().starts_with(prefix)) {
                continue;
            }
            if let Some(used) = std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .and_then(|stat| cpu_ticks(&stat))
            {
                ticks.insert(tid, used);
            }
        }
        ThreadCpu(ticks)
    }

    /// How many threads were read.
    pub fn threads(&self) -> usize {
        self.0.len()
    }

    /// How many threads of `earlier` are not in this reading: they ended in between, and `since` misses their time.
    pub fn ended_since(&self, earlier: &ThreadCpu) -> usize {
        earlier.0.keys().filter(|tid| !self.0.contains_key(tid)).count()
    }

    /// The CPU time the threads of this reading used since `earlier`: a thread started in between counts from
    /// zero; one that ended in between is not in this reading, and its time since `earlier` is lost.
    pub fn since(&self, earlier: &ThreadCpu) -> Duration {
        let ticks: u64 = self
            .0
            .iter()
            .map(|(tid, used)| used.saturating_sub(earlier.0.get(tid).copied().unwrap_or(0)))
            .sum();
        Duration::from_millis(ticks * 1000 / CLOCK_TICKS_PER_SECOND)
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/…/stat` line. The name (field 2) is in parentheses and may itself
/// hold spaces and parentheses, so the fields are counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
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
        assert!((summary.p999_ms - 100.0).abs() < 0.1, "{summary:?}");
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
    fn latencies_over_a_threshold_are_counted_and_the_threshold_itself_is_not() {
        let mut latencies = Latencies::default();
        for millis in [1, 20, 50, 51, 300] {
            latencies.record(Duration::from_millis(millis));
        }
        assert_eq!(latencies.count_over(Duration::from_millis(50)), 2);
        assert_eq!(latencies.count_over(Duration::from_secs(1)), 0);
        assert_eq!(latencies.count_over(Duration::ZERO), 5);
        assert_eq!(Latencies::default().count_over(Duration::from_millis(50)), 0);
    }

    #[test]
    fn cpu_ticks_are_user_plus_system_time_even_when_the_name_has_spaces_and_parentheses() {
        let stat = "4242 (bench (server) 1) S 1 4242 4242 0 -1 4194368 620 0 0 0 157 43 0 0 20 0 6 0 1234 \
                    1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 -1 0 0 0 0 0 0";
        assert_eq!(cpu_ticks(stat), Some(200));
        assert_eq!(cpu_ticks("4242 (cut short) S 1 2"), None);
        assert_eq!(cpu_ticks("no parentheses at all"), None);
    }

    #[test]
    fn cpu_since_an_earlier_reading_counts_new_threads_from_zero_and_drops_ended_ones() {
        let earlier = ThreadCpu(BTreeMap::from([(1, 100), (2, 50)]));
        // Thread 1 used 30 more ticks, thread 2 ended, thread 3 started and used 20.
        let later = ThreadCpu(BTreeMap::from([(1, 130), (3, 20)]));
        assert_eq!(later.since(&earlier), Duration::from_millis(500));
        assert_eq!(later.threads(), 2);
        assert_eq!(later.ended_since(&earlier), 1);
        assert_eq!(earlier.since(&earlier), Duration::ZERO);
    }

    #[test]
    fn this_process_threads_are_found_by_name() {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel();
        // A thread names itself once it runs, so the test reads only after it has said so.
        let named = std::thread::Builder::new()
            .name("cpu-read-test".into())
            .spawn(move || {
                let _ = started.send(());
                stopped.recv()
            })
            .unwrap();
        running.recv().unwrap();
        assert_eq!(ThreadCpu::read(&["cpu-read-test"]).threads(), 1);
        assert_eq!(ThreadCpu::read(&["no thread is named so"]).threads(), 0);
        drop(stop);
        let _ = named.join();
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
