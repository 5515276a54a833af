//! `collector replay`: rebuilds the data tables from the raw store (RAW_STORE: a local
//! directory or S3) through the jobs' own parsers and loads, with no API call. See
//! `collector_core::jobs::replay` and docs/runbook.md, "Replay".
//!
//! Exit status: 0 everything listed was loaded; 1 an object or manifest was missing,
//! damaged or unparsable (reported, its unit not loaded) or nothing matched; 2 invalid
//! arguments or configuration; 4 the database or raw store failed.

use std::process::ExitCode;

use chrono::NaiveDate;
use clap::Args;
use collector_core::config::{AppEnv, Config};
use collector_core::jobs::replay::{self, ReplayReport, ReplayRequest, ReplaySettings};
use collector_core::jobs::Job;
use collector_core::jobs::JobError;
use collector_core::secrets::{self, SecretNeeds};
use collector_core::{db, rawstore};

use crate::job::fail;
use crate::OutputFormat;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// First JST run date to replay (YYYY-MM-DD)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: NaiveDate,
    /// Last JST run date to replay (default: --from)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: Option<NaiveDate>,
    /// The environment whose raw objects to replay (default: APP_ENV)
    #[arg(long)]
    pub env: Option<String>,
    /// Jobs to replay, comma-separated (default: all, in jobnet order)
    #[arg(long, value_delimiter = ',', value_parser = parse_job, value_name = "ranking,item,genre,tag,is_active")]
    pub job: Vec<Job>,
    /// Load in one transaction and roll it back: print what would change per table
    #[arg(long)]
    pub dry_run: bool,
    /// Text, or the report as JSON
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

fn parse_job(s: &str) -> Result<Job, String> {
    s.parse::<Job>().map_err(|e| e.to_string())
}

pub async fn run(config: Config, args: ReplayArgs) -> ExitCode {
    let env = args
        .env
        .clone()
        .unwrap_or_else(|| config.env.as_str().to_string());
    let to = args.to.unwrap_or(args.from);
    if to < args.from {
        eprintln!("error: --to {to} is before --from {}", args.from);
        return ExitCode::from(2);
    }
    // In jobnet order whatever the order given (IsActive recomputes from the rows replayed).
    let jobs: Vec<Job> = Job::all()
        .filter(|j| args.job.is_empty() || args.job.contains(j))
        .collect();
    let request = ReplayRequest {
        env: env.clone(),
        from: args.from,
        to,
        jobs,
        dry_run: args.dry_run,
    };
    let settings = ReplaySettings {
        stale_policy: config.ranking_stale_policy,
        active_window_days: config.active_window_days,
    };
    let text = args.output == OutputFormat::Text;
    let result = async {
        let store = rawstore::open(&config.raw_store).await?;
        let secrets = secrets::resolve_needed(&config, SecretNeeds::Database).await?;
        let url = &secrets.database_url;
        if config.env == AppEnv::Local && db::ensure_database(url).await? {
            eprintln!("created the local database");
        }
        let mut db = db::connect(url).await?;
        db::migrate(&mut db.client).await?;
        if text {
            eprintln!(
                "replaying {} {}{} of env {env} from {} into {}{}",
                request.from,
                if to == request.from { "" } else { "to " },
                if to == request.from {
                    String::new()
                } else {
                    to.to_string()
                },
                store.describe(),
                db.target,
                if args.dry_run {
                    " (dry run: nothing is kept)"
                } else {
                    ""
                }
            );
        }
        let report = replay::replay(
            &mut db.client,
            store.as_ref(),
            settings,
            &request,
            |i, n, m| {
                if text {
                    let rows = m
                        .rows
                        .values()
                        .fold((0, 0), |(a, b), r| (a + r.inserted, b + r.updated));
                    let note = match (&m.skipped, m.problems.len()) {
                        (Some(why), _) => format!(" — skipped: {why}"),
                        (None, 0) => String::new(),
                        (None, p) => format!(" — {p} objects NOT loaded (missing or damaged)"),
                    };
                    eprintln!(
                        "[{i}/{n}] {} {} run {}: {} units, +{} ~{} rows{note}",
                        m.run_date, m.job, m.source_run_id, m.units, rows.0, rows.1
                    );
                }
            },
        )
        .await?;
        Ok::<_, JobError>(report)
    }
    .await;
    let report = match result {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        ),
        OutputFormat::Text => print(&report),
    }
    if report.manifests.is_empty() && report.bad_manifests.is_empty() {
        eprintln!(
            "error: no manifest of env {env} from {} to {to} in {}",
            report.from, report.store
        );
        return ExitCode::from(1);
    }
    if report.problems().next().is_some() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn print(r: &ReplayReport) {
    let verb = if r.dry_run { "would change" } else { "changed" };
    println!(
        "replay of env {} {}..{}: {} manifests, {} objects ({:.1} MB) in {:.1} s{}",
        r.env,
        r.from,
        r.to,
        r.manifests.len(),
        r.units(),
        r.bytes() as f64 / 1e6,
        r.duration_ms as f64 / 1000.0,
        if r.dry_run {
            " — dry run, nothing kept"
        } else {
            ""
        }
    );
    let rows = r.rows();
    let width = rows.keys().map(String::len).max().unwrap_or(0);
    for (table, c) in &rows {
        println!(
            "  {table:<width$}  {verb}: {:>6} inserted, {:>6} updated, {:>6} unchanged, {:>4} deleted",
            c.inserted, c.updated, c.unchanged, c.deleted
        );
    }
    for m in r.manifests.iter().filter(|m| m.skipped.is_some()) {
        println!(
            "  skipped   {}: {}",
            m.manifest,
            m.skipped.as_deref().unwrap_or("")
        );
    }
    for f in r.manifests.iter().flat_map(|m| m.quality.iter()) {
        println!("  quality   {f}");
    }
    let problems: Vec<_> = r.problems().collect();
    if !problems.is_empty() {
        println!("  {} objects NOT loaded:", problems.len());
        for p in problems {
            println!("    {p}");
        }
    }
    if !r.replay_runs.is_empty() {
        println!(
            "  ledger    {} replay runs (trigger replay): collector runs",
            r.replay_runs.len()
        );
    }
}
