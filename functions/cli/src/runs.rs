//! `collector runs` (recent runs, one line each) and `collector runs show RUN_ID` (one run:
//! its jobs, failures grouped by kind with examples, incomplete or stale snapshots, the
//! manifests). Reads the ledger of any `DATABASE_URL` (Supabase included); before
//! listing it marks abandoned the runs whose process is gone, as every start does, so a
//! dead run never shows as `running`.

use std::process::ExitCode;

use chrono::{DateTime, FixedOffset, Utc};
use clap::{Args, Subcommand};
use collector_core::config::Config;
use collector_core::db::history::{self, JobRecord, RunRecord};
use collector_core::db::{self, ledger};
use collector_core::jobs::{JobError, JOBS};
use collector_core::secrets;
use uuid::Uuid;

use crate::job::fail;
use crate::OutputFormat;

#[derive(Args, Debug)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub show: Option<RunsCommand>,
    /// The environment whose runs to list (default: APP_ENV)
    #[arg(long)]
    pub env: Option<String>,
    /// How many runs, newest first
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub limit: i64,
    /// A table, or the runs as JSON
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// One run: its jobs, failures grouped by kind with examples, incomplete or stale
    /// snapshots of its day, its manifests
    Show {
        run_id: Uuid,
        /// Text, or the run as JSON
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
}

pub async fn run(config: Config, args: RunsArgs) -> ExitCode {
    let env = args
        .env
        .clone()
        .unwrap_or_else(|| config.env.as_str().to_string());
    let result = async {
        let secrets = secrets::resolve(&config).await?;
        let db = db::connect(&secrets.database_url).await?;
        ledger::sweep_abandoned(&db.client, &env, config.run_lease).await?;
        match args.show {
            None => {
                let runs = history::recent_runs(&db.client, &env, args.limit).await?;
                print_runs(&env, &runs, args.output);
                Ok::<_, JobError>(())
            }
            Some(RunsCommand::Show { run_id, output }) => {
                let Some(run) = history::run(&db.client, run_id).await? else {
                    return Err(JobError::RunNotFound(run_id));
                };
                let failures = history::failures(&db.client, run_id, 3).await?;
                let snapshots = history::snapshot_notes(&db.client, run.run_date).await?;
                print_run(&run, &failures, &snapshots, output);
                Ok(())
            }
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn jst(t: DateTime<Utc>) -> String {
    let jst = FixedOffset::east_opt(9 * 3600).expect("JST");
    t.with_timezone(&jst).format("%m-%d %H:%M").to_string()
}

fn secs(ms: Option<i64>) -> String {
    match ms {
        Some(ms) if ms >= 60_000 => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
        Some(ms) => format!("{:.1}s", ms as f64 / 1000.0),
        None => "-".into(),
    }
}

/// A job's cell in the runs table: status mark, requests, failure rate, duration.
fn cell(j: Option<&JobRecord>) -> String {
    let Some(j) = j else { return "-".into() };
    let mark = match j.status.as_str() {
        "succeeded" => "ok",
        "failed" => "FAIL",
        "running" => "run",
        "abandoned" => "ABND",
        other => other,
    };
    format!(
        "{mark} {}r {:.1}% {}",
        j.requests,
        j.failure_rate * 100.0,
        secs(j.duration_ms)
    )
}

fn print_runs(env: &str, runs: &[RunRecord], output: OutputFormat) {
    if output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(runs).expect("serialises")
        );
        return;
    }
    if runs.is_empty() {
        println!("no runs in env {env}");
        return;
    }
    print!(
        "{:<36}  {:<10}  {:<11}  {:<9}  {:<10}",
        "run", "date (JST)", "started", "trigger", "status"
    );
    for spec in &JOBS {
        print!("  {:<22}", spec.name);
    }
    println!("  snapshots");
    for r in runs {
        print!(
            "{}  {}  {:<11}  {:<9}  {:<10}",
            r.run_id,
            r.run_date,
            jst(r.started_at),
            r.trigger,
            r.status
        );
        for spec in &JOBS {
            print!("  {:<22}", cell(r.jobs.iter().find(|j| j.job == spec.name)));
        }
        let mut notes = Vec::new();
        if r.incomplete_snapshots > 0 {
            notes.push(format!("{} incomplete", r.incomplete_snapshots));
        }
        if r.stale_snapshots > 0 {
            notes.push(format!("{} stale", r.stale_snapshots));
        }
        println!(
            "  {}",
            if notes.is_empty() {
                "complete".to_string()
            } else {
                notes.join(", ")
            }
        );
    }
    println!("cells: status (ok, FAIL, run = running, ABND = abandoned), requests, failure rate, duration");
}

fn print_run(
    run: &RunRecord,
    failures: &[history::FailureGroup],
    snapshots: &[history::SnapshotNote],
    output: OutputFormat,
) {
    if output == OutputFormat::Json {
        let doc = serde_json::json!({ "run": run, "failures": failures, "snapshots": snapshots });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serialises")
        );
        return;
    }
    println!(
        "run {} (env {}, {} JST, trigger {}): {}",
        run.run_id, run.env, run.run_date, run.trigger, run.status
    );
    println!(
        "started {} JST{}{}",
        jst(run.started_at),
        run.finished_at
            .map(|t| format!(", finished {} JST", jst(t)))
            .unwrap_or_default(),
        run.resumed_at
            .map(|t| format!(", resumed {} JST", jst(t)))
            .unwrap_or_default()
    );
    if let (Some(t), Some(m)) = (&run.error_type, &run.error_message) {
        println!("error [{t}]: {m}");
    }
    println!();
    println!(
        "{:<10} {:<10} {:>7} {:>6} {:>6} {:>7} {:>8} {:>7} {:>9} {:>8} {:>8} {:>9}",
        "job",
        "status",
        "attempt",
        "units",
        "failed",
        "rate",
        "requests",
        "retries",
        "throttled",
        "inserted",
        "updated",
        "duration"
    );
    for j in &run.jobs {
        println!(
            "{:<10} {:<10} {:>7} {:>6} {:>6} {:>6.2}% {:>8} {:>7} {:>9} {:>8} {:>8} {:>9}",
            j.job,
            j.status,
            j.attempt,
            j.attempted,
            j.failed,
            j.failure_rate * 100.0,
            j.requests,
            j.retries,
            j.throttled,
            j.rows_inserted,
            j.rows_updated,
            secs(j.duration_ms)
        );
        if let (Some(t), Some(m)) = (&j.error_type, &j.error_message) {
            println!("           error [{t}]: {m}");
        }
        for q in &j.quality {
            println!("           quality: {q}");
        }
    }
    if !failures.is_empty() {
        println!("\nfailures (latest attempt of each job), by kind:");
        for g in failures {
            println!("  {} {} × {}", g.job, g.error_kind, g.count);
            for e in &g.examples {
                println!("      e.g. {e}");
            }
        }
    }
    if !snapshots.is_empty() {
        println!(
            "\nsnapshots of {} that are not a clean new day:",
            run.run_date
        );
        for s in snapshots {
            let what = match (&s.missing_ranks, s.stale) {
                (Some(m), true) => format!("incomplete (missing {m}), stale"),
                (Some(m), false) => format!("incomplete (missing {m})"),
                (None, _) if !s.complete => "incomplete".to_string(),
                (None, _) => "stale (same lastBuildDate as the day before)".to_string(),
            };
            println!("  genre {} {}: {what}", s.ranking_genre_id, s.period);
        }
    }
    let manifests: Vec<&str> = run
        .jobs
        .iter()
        .filter_map(|j| j.manifest_key.as_deref())
        .collect();
    if !manifests.is_empty() {
        println!(
            "\nmanifests (check them with: collector verify --run-id {}):",
            run.run_id
        );
        for m in manifests {
            println!("  {m}");
        }
    }
}
