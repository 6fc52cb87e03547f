//! `sm8-webhooks bench`: measures what the product exists for, against baselines in the same run, and reports the
//! figures beside their targets in a table and in `bench/results.json`.
//!
//! Scenarios (each on a fresh database, everything on 127.0.0.1, each bounded in time):
//! `ingest` (receiver against a bare axum handler), `tails` (the receiver's latency tail, stalls and CPU per
//! webhook under closed-loop load at 16 and 64 connections), `end-to-end` (webhook to websocket broadcast),
//! `fanout` (1,000 and 10,000 subscribers of one topic), `processing` (draining 20,000 queued events), `bundle`
//! (WASM size and first render in Chromium), `soak` (five minutes at 200 events/s with workers: log size and
//! memory), `mixed` (closed-loop load on the server with its workers on, against workers off) and `rules`
//! (processing with rules against without, deliveries to a local webhook, transform latency), and `two-nodes`
//! (processing by one PostgreSQL node against two). Targets are reported, never enforced: the command fails only
//! when it cannot measure.
//!
//! The default run is two passes: every scenario but `two-nodes` on SQLite, then [`Scenario::POSTGRES_PASS`] on
//! PostgreSQL with the short steps of `--quick` (so that the whole stays within ten minutes); `--postgres` runs
//! every scenario on PostgreSQL alone, `--sqlite-only` leaves the second pass out.
//! The method behind each figure is in the module of its scenario and in README.md.

mod bundle;
mod end_to_end;
mod fanout;
mod harness;
mod ingest;
mod load;
mod measure;
mod mixed;
mod processing;
mod report;
mod rules;
mod soak;
mod subscriber;
mod tails;
mod two_nodes;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};

use harness::Databases;
use report::{Machine, Outcome, Results, ScenarioReport};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Run every scenario on PostgreSQL (a fresh database each, created beside --postgres-url) instead of SQLite.
    #[arg(long, conflicts_with = "sqlite_only")]
    pub postgres: bool,

    /// Only the SQLite pass: leave out the default run's PostgreSQL pass (for a machine without PostgreSQL).
    #[arg(long)]
    pub sqlite_only: bool,

    /// The PostgreSQL server for --postgres: a URL whose user may create databases.
    #[arg(
        long,
        env = "TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub postgres_url: String,

    /// Shorter steps (3 s instead of 10 s, fewer broadcasts and page loads): quicker, noisier figures.
    #[arg(long)]
    pub quick: bool,

    /// Run only this scenario; repeatable. All of them by default.
    #[arg(long, value_enum)]
    pub only: Vec<Scenario>,

    /// Where to write the results as JSON.
    #[arg(long, default_value = "bench/results.json")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Ingest,
    Tails,
    EndToEnd,
    Fanout,
    Processing,
    Bundle,
    Soak,
    Mixed,
    Rules,
    TwoNodes,
}

impl Scenario {
    /// In the order they run: those that leave workers on a deep queue last, because a server they cannot stop (a
    /// worker stuck in a slow statement) keeps a core busy for a while after its bound.
    const ALL: [Scenario; 10] = [
        Scenario::Ingest,
        Scenario::Tails,
        Scenario::EndToEnd,
        Scenario::Fanout,
        Scenario::Bundle,
        Scenario::Soak,
        Scenario::Mixed,
        Scenario::Processing,
        Scenario::Rules,
        Scenario::TwoNodes,
    ];

    /// What the default run measures again on PostgreSQL: ingest's tail, webhook to browser, processing, and
    /// what a second node adds.
    const POSTGRES_PASS: [Scenario; 4] = [
        Scenario::Tails,
        Scenario::EndToEnd,
        Scenario::Processing,
        Scenario::TwoNodes,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Ingest => "ingest",
            Scenario::Tails => "tails",
            Scenario::EndToEnd => "end-to-end",
            Scenario::Fanout => "fanout",
            Scenario::Processing => "processing",
            Scenario::Bundle => "bundle",
            Scenario::Soak => "soak",
            Scenario::Mixed => "mixed",
            Scenario::Rules => "rules",
            Scenario::TwoNodes => "two-nodes",
        }
    }

    /// The longest the scenario may take before it is stopped and reported as failed; together (both passes of the default run) under the 1,570 s
    /// `make bench` allows (its `timeout`), each several times what it takes on two cores.
    fn bound(self) -> Duration {
        Duration::from_secs(match self {
            Scenario::Ingest => 120,
            Scenario::Tails => 100,
            Scenario::EndToEnd => 60,
            Scenario::Fanout => 80,
            Scenario::Processing => 120,
            Scenario::Bundle => 150,
            Scenario::Soak => 340,
            Scenario::Mixed => 80,
            Scenario::Rules => 80,
            Scenario::TwoNodes => 150,
        })
    }

    async fn run(self, settings: &Settings, databases: &Databases, report: &mut ScenarioReport) -> anyhow::Result<()> {
        match self {
            Scenario::Ingest => ingest::run(settings, databases, report).await,
            Scenario::Tails => tails::run(settings, databases, report).await,
            Scenario::EndToEnd => end_to_end::run(settings, databases, report).await,
            Scenario::Fanout => fanout::run(settings, databases, report).await,
            Scenario::Processing => processing::run(settings, databases, report).await,
            Scenario::Bundle => bundle::run(settings, databases, report).await,
            Scenario::Soak => soak::run(settings, databases, report).await,
            Scenario::Mixed => mixed::run(settings, databases, report).await,
            Scenario::Rules => rules::run(settings, databases, report).await,
            Scenario::TwoNodes => two_nodes::run(settings, databases, report).await,
        }
    }
}

/// How long the steps of the scenarios last.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub quick: bool,
}

impl Settings {
    /// One measured step of a load: a fixed rate, or saturation.
    fn step(&self) -> Duration {
        Duration::from_secs(if self.quick { 3 } else { 10 })
    }

    /// Broadcasts timed at each fan-out level.
    fn broadcasts(&self) -> usize {
        if self.quick {
            3
        } else {
            10
        }
    }

    /// Page loads the first render is the median of.
    fn page_loads(&self) -> usize {
        if self.quick {
            3
        } else {
            5
        }
    }

    /// How long the soak feeds the server.
    fn soak(&self) -> Duration {
        Duration::from_secs(if self.quick { 30 } else { 300 })
    }

    /// The longest the processing scenario waits for the queue to drain.
    fn drain_bound(&self) -> Duration {
        Duration::from_secs(if self.quick { 60 } else { 80 })
    }

    /// Transform calls the rules scenario times.
    fn transform_calls(&self) -> usize {
        if self.quick {
            1_000
        } else {
            5_000
        }
    }
}

/// Scenarios run on one engine, with their settings.
struct Pass {
    databases: Databases,
    scenarios: Vec<Scenario>,
    settings: Settings,
    /// Added to each scenario's name in the report (` (postgres)` for the default run's second pass).
    suffix: &'static str,
}

impl Pass {
    fn new(databases: Databases, scenarios: Vec<Scenario>, settings: Settings, suffix: &'static str) -> Pass {
        Pass {
            databases,
            scenarios,
            settings,
            suffix,
        }
    }

    /// Runs one scenario within its bound.
    async fn measure(&self, scenario: Scenario) -> ScenarioReport {
        let name = format!("{}{}", scenario.name(), self.suffix);
        println!("\n== {name}");
        let mut report = ScenarioReport::new(name);
        let began = Instant::now();
        let run = scenario.run(&self.settings, &self.databases, &mut report);
        match tokio::time::timeout(scenario.bound(), run).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => report.outcome = Outcome::Failed(format!("{error:#}")),
            Err(_) => report.outcome = Outcome::Failed(format!("stopped after {} s", scenario.bound().as_secs())),
        }
        report.seconds = began.elapsed().as_secs_f64();
        if let Outcome::Failed(reason) | Outcome::NotRun(reason) = &report.outcome {
            println!("  {reason}");
        }
        report
    }
}

/// Runs the chosen scenarios, prints the table and writes the JSON.
pub async fn run_cli(args: BenchArgs) -> anyhow::Result<()> {
    // Warnings and errors of the servers under test show up between the figures (not sqlx's slow-statement
    // warnings: slowness is what the figures report); RUST_LOG shows more.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx::query=error"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    let started = Instant::now();
    let open_files = fanout::raise_open_file_limit();
    let settings = Settings { quick: args.quick };
    let chosen = |pass: &[Scenario]| -> Vec<Scenario> {
        pass.iter()
            .copied()
            .filter(|scenario| args.only.is_empty() || args.only.contains(scenario))
            .collect()
    };
    let sqlite_pass: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|scenario| *scenario != Scenario::TwoNodes)
        .collect();
    let passes = if args.postgres {
        vec![Pass::new(
            Databases::postgres(&args.postgres_url),
            chosen(&Scenario::ALL),
            settings,
            "",
        )]
    } else {
        let mut passes = vec![Pass::new(Databases::sqlite()?, chosen(&sqlite_pass), settings, "")];
        if !args.sqlite_only {
            let quick = Settings { quick: true };
            let postgres = Databases::postgres(&args.postgres_url);
            passes.push(Pass::new(
                postgres,
                chosen(&Scenario::POSTGRES_PASS),
                quick,
                " (postgres)",
            ));
        }
        passes
    };
    let mut scenarios = Vec::new();
    for pass in passes.iter().filter(|pass| !pass.scenarios.is_empty()) {
        println!(
            "sm8-webhooks bench: {} on {}, {} mode (open file limit {open_files})",
            pass.scenarios
                .iter()
                .map(|scenario| scenario.name())
                .collect::<Vec<_>>()
                .join(", "),
            pass.databases.engine(),
            if pass.settings.quick { "quick" } else { "full" },
        );
        for scenario in &pass.scenarios {
            scenarios.push(pass.measure(*scenario).await);
        }
        pass.databases.clean_up().await;
    }

    let results = Results {
        date: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .context("formatting the date")?,
        mode: if args.quick { "quick" } else { "full" },
        database: passes[0].databases.engine(),
        machine: Machine::describe(),
        seconds: started.elapsed().as_secs_f64(),
        scenarios,
    };
    println!("\n{}", results.table());
    if let Some(folder) = args.out.parent().filter(|folder| !folder.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    }
    let json = serde_json::to_string_pretty(&results).context("serialising the results")?;
    std::fs::write(&args.out, json + "\n").with_context(|| format!("writing {}", args.out.display()))?;
    println!("Results written to {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn flags_choose_scenarios_mode_and_output() {
        let args = Cli::try_parse_from([
            "bench",
            "--quick",
            "--only",
            "ingest",
            "--only",
            "end-to-end",
            "--only",
            "rules",
            "--out",
            "x.json",
        ])
        .unwrap()
        .bench;
        assert!(args.quick && !args.postgres && !args.sqlite_only);
        assert_eq!(args.only, [Scenario::Ingest, Scenario::EndToEnd, Scenario::Rules]);
        assert_eq!(args.out, PathBuf::from("x.json"));
        let defaults = Cli::try_parse_from(["bench"]).unwrap().bench;
        assert_eq!(defaults.out, PathBuf::from("bench/results.json"));
        assert!(defaults.only.is_empty());
        assert!(Cli::try_parse_from(["bench", "--postgres", "--sqlite-only"]).is_err());
    }

    #[test]
    fn every_scenario_has_a_name_and_the_bounds_fit_in_the_timeout_of_make_bench() {
        let names: Vec<&str> = Scenario::ALL.iter().map(|scenario| scenario.name()).collect();
        assert_eq!(
            names,
            [
                "ingest",
                "tails",
                "end-to-end",
                "fanout",
                "bundle",
                "soak",
                "mixed",
                "processing",
                "rules",
                "two-nodes"
            ]
        );
        // The default run: every scenario but two-nodes on SQLite, then the PostgreSQL pass.
        let sqlite: Duration = Scenario::ALL
            .iter()
            .filter(|scenario| **scenario != Scenario::TwoNodes)
            .map(|scenario| scenario.bound())
            .sum();
        let postgres: Duration = Scenario::POSTGRES_PASS.iter().map(|scenario| scenario.bound()).sum();
        assert!(
            sqlite + postgres < Duration::from_secs(1_570),
            "{:?}",
            sqlite + postgres
        );
        assert!(Settings { quick: false }.soak() >= Duration::from_secs(300));
    }

    #[test]
    fn quick_mode_shortens_every_step() {
        let (quick, full) = (Settings { quick: true }, Settings { quick: false });
        assert!(quick.step() < full.step());
        assert!(quick.broadcasts() < full.broadcasts());
        assert!(quick.page_loads() < full.page_loads());
        assert!(quick.drain_bound() < full.drain_bound());
        assert!(quick.transform_calls() < full.transform_calls());
        assert!(quick.soak() < full.soak());
    }
}
