//! `collector aws start` and `collector aws status`: the deployed jobnet of an environment
//! through the Step Functions API (StartExecution, ListExecutions, DescribeExecution),
//! with each execution's run from the ledger (`etl_runs`, `etl_job_runs`).
//!
//! The state machine is `--state-machine-arn` / `STATE_MACHINE_ARN` when given, else the
//! one named `ichiba-collector-<env>-jobnet` (see `collector_core::aws_sfn`). AWS
//! credentials, region and endpoint come from the default chain (`AWS_PROFILE`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`).

use std::process::ExitCode;

use chrono::{DateTime, FixedOffset, Utc};
use clap::{Args, Subcommand};
use collector_core::aws_sfn::{self, Execution, Jobnet, SfnError};
use collector_core::config::{Config, Var};
use collector_core::db::{self, history, history::RunRecord};
use collector_core::jobs::JobError;
use collector_core::secrets;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::OutputFormat;

/// The variables read here, for `collector --help`.
pub const VARIABLES: &[Var] = &[Var::text(
    "STATE_MACHINE_ARN",
    "collector aws: the jobnet's state machine (default: ichiba-collector-<env>-jobnet, found by name)",
)];

#[derive(Args, Debug)]
pub struct AwsArgs {
    #[command(subcommand)]
    pub command: AwsCommand,
}

#[derive(Subcommand, Debug)]
pub enum AwsCommand {
    /// Start an execution of the environment's jobnet (StartExecution) with the input Guard
    /// accepts: {} (a new run, or the day's abandoned run resumed), {"start_at": J} (rerun
    /// from J in the newest run) or {"start_at": J, "run_id": R} (inside run R). Prints the
    /// execution ARN and its console link; follow it with `collector aws status`
    Start(StartArgs),
    /// The environment's recent executions, newest first (ListExecutions and
    /// DescribeExecution): status, start, duration, input, error and cause, and each one's
    /// run from the ledger with its jobs (DATABASE_URL or its SSM parameter of that env;
    /// --no-ledger skips the database). Running executions get the command that stops them
    Status(StatusArgs),
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// The environment (dev, prod): its state machine is ichiba-collector-<env>-jobnet
    #[arg(long)]
    pub env: String,
    /// Start at this job (a rerun; without --run-id in the newest run of the env)
    #[arg(long, value_parser = ["ranking", "item", "genre_tag", "is_active"])]
    pub start_at: Option<String>,
    /// Work in this existing run (resume it)
    #[arg(long)]
    pub run_id: Option<Uuid>,
    /// The execution's name (default: one Step Functions chooses)
    #[arg(long)]
    pub name: Option<String>,
    /// The state machine ARN (the stack output StateMachineArn) instead of finding
    /// ichiba-collector-<env>-jobnet by name
    #[arg(long, env = "STATE_MACHINE_ARN")]
    pub state_machine_arn: Option<String>,
    /// Text, or the started execution as JSON
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The environment (dev, prod): its state machine is ichiba-collector-<env>-jobnet
    #[arg(long)]
    pub env: String,
    /// How many executions, newest first
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub limit: u16,
    /// The state machine ARN (the stack output StateMachineArn) instead of finding
    /// ichiba-collector-<env>-jobnet by name
    #[arg(long, env = "STATE_MACHINE_ARN")]
    pub state_machine_arn: Option<String>,
    /// Do not read the ledger (no database needed)
    #[arg(long)]
    pub no_ledger: bool,
    /// Text, or the executions (with their runs) as JSON
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub async fn run(config: Config, args: AwsArgs) -> ExitCode {
    match args.command {
        AwsCommand::Start(a) => start(a).await,
        AwsCommand::Status(a) => status(config, a).await,
    }
}

fn sfn_fail(e: &SfnError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

/// The region of an ARN (`arn:aws:states:REGION:…`).
fn region_of(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or_default()
}

fn console_url(execution_arn: &str) -> String {
    let region = region_of(execution_arn);
    format!("https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}")
}

fn jst(t: DateTime<Utc>) -> String {
    let jst = FixedOffset::east_opt(9 * 3600).expect("JST");
    t.with_timezone(&jst)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

async fn start(args: StartArgs) -> ExitCode {
    let input = match aws_sfn::execution_input(args.start_at.as_deref(), args.run_id) {
        Ok(i) => i,
        Err(e) => return sfn_fail(&e),
    };
    let jobnet = Jobnet::from_env().await;
    let result = async {
        let sm = jobnet
            .resolve(&args.env, args.state_machine_arn.as_deref())
            .await?;
        jobnet.start(&sm, input, args.name.as_deref()).await
    }
    .await;
    let started = match result {
        Ok(s) => s,
        Err(e) => return sfn_fail(&e),
    };
    if args.output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&started).expect("serialises")
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "started {} (env {}) at {} JST",
        started.execution_arn,
        args.env,
        jst(started.start_date)
    );
    println!("input:   {}", started.input);
    println!("console: {}", console_url(&started.execution_arn));
    println!("follow:  collector aws status --env {}", args.env);
    ExitCode::SUCCESS
}

/// What the ledger said, for the output.
enum Ledger {
    Skipped,
    Read(Vec<RunRecord>),
    Failed(String),
}

async fn read_ledger(config: &Config, env: &str, executions: &[Execution]) -> Ledger {
    let result = async {
        let secrets = secrets::resolve(config).await?;
        let db = db::connect(&secrets.database_url).await?;
        let mut runs = history::recent_runs(&db.client, env, 50).await?;
        // Runs named by an execution that are older than the recent ones.
        for id in executions.iter().filter_map(|e| e.run_id) {
            if !runs.iter().any(|r| r.run_id == id) {
                if let Some(r) = history::run(&db.client, id).await? {
                    runs.push(r);
                }
            }
        }
        Ok::<_, JobError>(runs)
    }
    .await;
    match result {
        Ok(runs) => Ledger::Read(runs),
        Err(e) => Ledger::Failed(format!("[{}] {e}", e.error_type())),
    }
}

async fn status(config: Config, args: StatusArgs) -> ExitCode {
    let jobnet = Jobnet::from_env().await;
    let result = async {
        let sm = jobnet
            .resolve(&args.env, args.state_machine_arn.as_deref())
            .await?;
        let executions = jobnet.recent(&sm, usize::from(args.limit)).await?;
        Ok::<_, SfnError>((sm, executions))
    }
    .await;
    let (sm, mut executions) = match result {
        Ok(v) => v,
        Err(e) => return sfn_fail(&e),
    };
    let ledger = if args.no_ledger {
        Ledger::Skipped
    } else {
        read_ledger(&config, &args.env, &executions).await
    };
    if let Ledger::Read(runs) = &ledger {
        aws_sfn::match_runs(&mut executions, runs, Utc::now());
    }
    let runs: &[RunRecord] = match &ledger {
        Ledger::Read(r) => r,
        _ => &[],
    };
    let run_of = |e: &Execution| e.run_id.and_then(|id| runs.iter().find(|r| r.run_id == id));
    if args.output == OutputFormat::Json {
        let doc = json!({
            "env": args.env,
            "state_machine_arn": sm,
            "ledger": match &ledger {
                Ledger::Skipped => json!("skipped"),
                Ledger::Read(_) => json!("read"),
                Ledger::Failed(e) => json!({"error": e}),
            },
            "executions": executions.iter().map(|e| {
                let mut v = serde_json::to_value(e).expect("serialises");
                v["run"] = run_of(e).map(|r| serde_json::to_value(r).expect("serialises")).unwrap_or(Value::Null);
                v
            }).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serialises")
        );
        return ExitCode::SUCCESS;
    }
    println!("state machine {sm}");
    match &ledger {
        Ledger::Skipped => {}
        Ledger::Read(_) => {}
        Ledger::Failed(e) => println!(
            "ledger not read ({e}); set DATABASE_URL or DATABASE_URL_SSM_PARAMETER of env {}, or pass --no-ledger",
            args.env
        ),
    }
    if executions.is_empty() {
        println!("no executions");
        return ExitCode::SUCCESS;
    }
    let now = Utc::now();
    for e in &executions {
        let took = (e.stop_date.unwrap_or(now) - e.start_date).num_milliseconds();
        println!();
        println!(
            "{:<10} {}  started {} JST, {} {}",
            e.status,
            e.name,
            jst(e.start_date),
            if e.stop_date.is_some() {
                "took"
            } else {
                "running for"
            },
            span(took)
        );
        println!(
            "           input {}",
            e.input
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_else(|| "-".into())
        );
        if let Some(err) = &e.error {
            let cause = e.cause.as_deref().unwrap_or_default();
            let cause: String = cause.chars().take(300).collect();
            println!("           error {err}: {cause}");
        }
        match (e.run_id, run_of(e)) {
            (Some(_), Some(r)) => print_run(r, e.run_id_from.as_deref()),
            (Some(id), None) => println!(
                "           run {id} ({}){}",
                e.run_id_from.as_deref().unwrap_or("?"),
                if matches!(ledger, Ledger::Read(_)) {
                    ", not in the ledger"
                } else {
                    ""
                }
            ),
            (None, _) if matches!(ledger, Ledger::Read(_)) => {
                println!(
                    "           run: {}",
                    if e.status == "RUNNING" {
                        "none in the ledger yet (Guard has not opened it: starting, or waiting for another execution)"
                    } else {
                        "none in the ledger (the execution ended before Guard opened one)"
                    }
                )
            }
            (None, _) => {}
        }
        if e.status == "RUNNING" {
            println!(
                "           stop: aws stepfunctions stop-execution --execution-arn '{}'",
                e.execution_arn
            );
        }
        if e.status != "SUCCEEDED" {
            println!("           console: {}", console_url(&e.execution_arn));
        }
    }
    ExitCode::SUCCESS
}

fn print_run(r: &RunRecord, from: Option<&str>) {
    println!(
        "           run {} ({} JST, {}{}): {}",
        r.run_id,
        r.run_date,
        r.trigger,
        from.map(|f| format!(", matched by {f}"))
            .unwrap_or_default(),
        r.status
    );
    if let (Some(t), Some(m)) = (&r.error_type, &r.error_message) {
        let m: String = m.chars().take(300).collect();
        println!("             {t}: {m}");
    }
    for j in &r.jobs {
        println!(
            "             {:<10} {:<10} {:>6} requests {:>6.2}% failed  {}",
            j.job,
            j.status,
            j.requests,
            j.failure_rate * 100.0,
            j.duration_ms.map(span).unwrap_or_else(|| "-".into())
        );
    }
    if r.incomplete_snapshots > 0 || r.stale_snapshots > 0 {
        println!(
            "             snapshots of the day: {} incomplete, {} stale",
            r.incomplete_snapshots, r.stale_snapshots
        );
    }
}
