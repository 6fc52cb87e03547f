//! The results of a bench run: figures with their targets and verdicts, the machine they were measured on, the
//! table printed at the end and the JSON written to `bench/results.json`.
//!
//! Targets are reported, never asserted: a missed target is a finding for the table, not a failed run.

use std::fmt::Write as _;

use serde::Serialize;

/// What a figure should be.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    AtLeast(f64),
    /// The bound itself passes: a count that must be zero is `AtMost(0.0)`.
    AtMost(f64),
    Below(f64),
}

impl Target {
    pub fn is_met_by(self, value: f64) -> bool {
        match self {
            Target::AtLeast(bound) => value >= bound,
            Target::AtMost(bound) => value <= bound,
            Target::Below(bound) => value < bound,
        }
    }

    fn describe(self, unit: &str) -> String {
        match self {
            Target::AtLeast(bound) => format!(">= {}{}", number(bound), spaced(unit)),
            Target::AtMost(bound) => format!("<= {}{}", number(bound), spaced(unit)),
            Target::Below(bound) => format!("< {}{}", number(bound), spaced(unit)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    Missed,
    /// A figure without a target, reported for context.
    Info,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
    pub target: Option<Target>,
    pub verdict: Verdict,
}

impl Figure {
    pub fn info(metric: impl Into<String>, value: f64, unit: &'static str) -> Figure {
        Figure {
            metric: metric.into(),
            value,
            unit,
            target: None,
            verdict: Verdict::Info,
        }
    }

    pub fn against(metric: impl Into<String>, value: f64, unit: &'static str, target: Target) -> Figure {
        let verdict = if target.is_met_by(value) {
            Verdict::Met
        } else {
            Verdict::Missed
        };
        Figure {
            metric: metric.into(),
            value,
            unit,
            target: Some(target),
            verdict,
        }
    }
}

/// How a scenario went.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    Ran,
    /// Something it needs is missing (a browser, the built bundle).
    NotRun(String),
    /// It started and broke; the figures gathered before are kept.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioReport {
    /// The scenario's name, with ` (postgres)` in the default run's PostgreSQL pass.
    pub scenario: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub seconds: f64,
    pub figures: Vec<Figure>,
    /// What a reader of the figures should know: something not measured, a server that would not stop.
    pub notes: Vec<String>,
    /// Raw measurements behind the figures (latency summaries, counts), for whoever digs deeper.
    pub details: serde_json::Value,
}

impl ScenarioReport {
    pub fn new(scenario: impl Into<String>) -> ScenarioReport {
        ScenarioReport {
            scenario: scenario.into(),
            outcome: Outcome::Ran,
            seconds: 0.0,
            figures: Vec::new(),
            notes: Vec::new(),
            details: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn push(&mut self, figure: Figure) {
        self.figures.push(figure);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        println!("  {note}");
        self.notes.push(note);
    }

    pub fn detail(&mut self, key: &str, value: impl Serialize) {
        self.details[key] = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    }
}

/// What the figures were measured on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: Option<String>,
    pub memory_mib: Option<u64>,
    pub kernel: Option<String>,
    pub rustc: Option<String>,
}

impl Machine {
    pub fn describe() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |cores| cores.get()),
            cpu_model: read("/proc/cpuinfo").and_then(|info| field(&info, "model name")),
            memory_mib: read("/proc/meminfo")
                .and_then(|info| field(&info, "MemTotal"))
                .and_then(|total| total.split_whitespace().next()?.parse::<u64>().ok())
                .map(|kib| kib / 1024),
            kernel: read("/proc/sys/kernel/osrelease").map(|release| release.trim().to_owned()),
            rustc: std::process::Command::new("rustc")
                .arg("--version")
                .output()
                .ok()
                .filter(|output| output.status.success())
                .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned()),
        }
    }

    fn summary(&self) -> String {
        format!(
            "{} cores ({}), {} MiB memory, Linux {}",
            self.cores,
            self.cpu_model.as_deref().unwrap_or("unknown CPU"),
            self.memory_mib.map_or("?".into(), |mib| mib.to_string()),
            self.kernel.as_deref().unwrap_or("?"),
        )
    }
}

/// The value of `name: value` in a `/proc` file.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find(|line| line.split(':').next().is_some_and(|key| key.trim() == name))
        .and_then(|line| line.split_once(':'))
        .map(|(_, value)| value.trim().to_owned())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Results {
    /// RFC 3339, UTC.
    pub date: String,
    /// `full` or `quick`.
    pub mode: &'static str,
    pub database: &'static str,
    pub machine: Machine,
    pub seconds: f64,
    pub scenarios: Vec<ScenarioReport>,
}

impl Results {
    /// One row per figure: scenario, metric, value, target, verdict; then the scenarios that did not run.
    pub fn table(&self) -> String {
        let mut rows = vec![[
            "scenario".to_owned(),
            "metric".into(),
            "value".into(),
            "target".into(),
            "".into(),
        ]];
        for scenario in &self.scenarios {
            for figure in &scenario.figures {
                rows.push([
                    scenario.scenario.clone(),
                    figure.metric.clone(),
                    format!("{}{}", number(figure.value), spaced(figure.unit)),
                    figure
                        .target
                        .map(|target| target.describe(figure.unit))
                        .unwrap_or_default(),
                    match figure.verdict {
                        Verdict::Met => "met".into(),
                        Verdict::Missed => "MISSED".into(),
                        Verdict::Info => String::new(),
                    },
                ]);
            }
        }
        let widths: Vec<usize> = (0..5)
            .map(|column| rows.iter().map(|row| row[column].chars().count()).max().unwrap_or(0))
            .collect();
        let mut table = String::new();
        for (index, row) in rows.iter().enumerate() {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            let _ = writeln!(table, "{}", cells.join("  ").trim_end());
            if index == 0 {
                let _ = writeln!(
                    table,
                    "{}",
                    widths
                        .iter()
                        .map(|width| "-".repeat(*width))
                        .collect::<Vec<_>>()
                        .join("  ")
                );
            }
        }
        for scenario in &self.scenarios {
            for note in &scenario.notes {
                let _ = writeln!(table, "{}: {note}", scenario.scenario);
            }
            match &scenario.outcome {
                Outcome::Ran => {}
                Outcome::NotRun(reason) => {
                    let _ = writeln!(table, "{}: not run: {reason}", scenario.scenario);
                }
                Outcome::Failed(reason) => {
                    let _ = writeln!(table, "{}: FAILED: {reason}", scenario.scenario);
                }
            }
        }
        let _ = writeln!(
            table,
            "\n{} mode on {}, {}; {:.0} s.",
            self.mode,
            self.database,
            self.machine.summary(),
            self.seconds
        );
        table
    }
}

/// A figure as people read it: integers plainly, small values to three significant digits.
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn spaced(unit: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let mut ingest = ScenarioReport::new("ingest");
        ingest.push(Figure::against("ack p99 at 2000 req/s", 3.21, "ms", Target::Below(5.0)));
        ingest.push(Figure::against("stored/baseline ratio", 0.42, "", Target::AtLeast(0.6)));
        ingest.push(Figure::info("stored per second", 2345.0, "/s"));
        ingest.detail("rates", [500, 2000]);
        let mut bundle = ScenarioReport::new("bundle");
        bundle.outcome = Outcome::NotRun("chromium is not installed".into());
        ingest.note("the receiver ran receive-only");
        Results {
            date: "2026-01-01T00:00:00Z".into(),
            mode: "quick",
            database: "sqlite",
            machine: Machine {
                cores: 2,
                cpu_model: Some("Test CPU".into()),
                memory_mib: Some(4096),
                kernel: None,
                rustc: None,
            },
            seconds: 12.0,
            scenarios: vec![ingest, bundle],
        }
    }

    #[test]
    fn targets_are_met_or_missed_on_the_right_side() {
        assert!(Target::Below(5.0).is_met_by(4.99));
        assert!(!Target::Below(5.0).is_met_by(5.0));
        assert!(Target::AtLeast(0.6).is_met_by(0.6));
        assert!(!Target::AtLeast(0.6).is_met_by(0.59));
        assert!(Target::AtMost(0.0).is_met_by(0.0));
        assert!(!Target::AtMost(25.0).is_met_by(25.01));
        assert_eq!(Target::AtMost(25.0).describe("µs"), "<= 25 µs");
        assert_eq!(
            Figure::against("x", 7.0, "ms", Target::Below(5.0)).verdict,
            Verdict::Missed
        );
        assert_eq!(Figure::info("x", 7.0, "ms").verdict, Verdict::Info);
    }

    #[test]
    fn the_json_carries_machine_scenarios_figures_and_verdicts() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["mode"], "quick");
        assert_eq!(json["machine"]["cores"], 2);
        let ingest = &json["scenarios"][0];
        assert_eq!(ingest["scenario"], "ingest");
        assert_eq!(ingest["status"], "ran");
        assert_eq!(ingest["figures"][0]["target"], serde_json::json!({"below": 5.0}));
        assert_eq!(ingest["figures"][0]["verdict"], "met");
        assert_eq!(ingest["figures"][1]["verdict"], "missed");
        assert_eq!(ingest["figures"][2]["target"], serde_json::Value::Null);
        assert_eq!(ingest["details"]["rates"], serde_json::json!([500, 2000]));
        assert_eq!(ingest["notes"][0], "the receiver ran receive-only");
        assert_eq!(json["scenarios"][1]["status"], "not_run");
        assert_eq!(json["scenarios"][1]["reason"], "chromium is not installed");
    }

    #[test]
    fn the_table_lines_up_values_targets_and_verdicts() {
        let table = sample().table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("scenario"), "{table}");
        assert!(
            lines[2].contains("3.21 ms") && lines[2].contains("< 5 ms") && lines[2].ends_with("met"),
            "{table}"
        );
        assert!(
            lines[3].contains("0.42") && lines[3].contains(">= 0.60") && lines[3].ends_with("MISSED"),
            "{table}"
        );
        assert!(table.contains("bundle: not run: chromium is not installed"), "{table}");
        assert!(table.contains("ingest: the receiver ran receive-only"), "{table}");
        assert!(table.contains("2 cores (Test CPU)"), "{table}");
    }

    #[test]
    fn numbers_read_naturally() {
        assert_eq!(number(2345.0), "2345");
        assert_eq!(number(2345.67), "2346");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(0.4567), "0.46");
    }

    #[test]
    fn proc_fields_are_found_by_name() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n";
        assert_eq!(field(cpuinfo, "model name").as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(
            field("MemTotal:       24684000 kB\n", "MemTotal").as_deref(),
            Some("24684000 kB")
        );
        assert_eq!(field(cpuinfo, "missing"), None);
    }
}
