//! `collector run`: the whole jobnet on this machine, from the same
//! `statemachine/jobnet.asl.json` AWS Step Functions runs.
//!
//! The definition is executed by asl-runner (a strict interpreter of the ASL subset it
//! uses). Its `${…}` substitutions name local functions, and every Task
//! (`arn:aws:states:::lambda:invoke` with a `FunctionName`) is dispatched here to the same
//! library entry points the Lambdas call: Guard and Notify from `collector_core::jobs`,
//! the jobs through `collector_core::jobs::dispatch`. Guard's concurrency check is a
//! PostgreSQL advisory lock per environment held by this process for the whole run.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use asl_runner::{
    ExecutionOptions, ExecutionResult, Observer, RealClock, TaskContext, TaskError, TaskHandler,
    TraceEvent,
};
use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use clap::Args;
use collector_core::config::{AppEnv, Config};
use collector_core::db::ledger;
use collector_core::db::Db;
use collector_core::jobs::guard::{self, GuardRequest, LocalLock};
use collector_core::jobs::notify::{self, Notifier};
use collector_core::jobs::{self, AppContext, Job, JobError, JobOutput};
use rakuten_sandbox::SandboxHandle;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::terminal::{self, say, JobLines};
use crate::OutputFormat;

/// The definition built into the binary, used when the file is not found.
const EMBEDDED_DEFINITION: &str = include_str!("../../../statemachine/jobnet.asl.json");
const DEFINITION_PATH: &str = "statemachine/jobnet.asl.json";
const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Start at this job (a manual rerun; with --run-id, inside that run)
    #[arg(long, value_parser = guard::START_AT)]
    pub start_at: Option<String>,
    /// Resume this existing run instead of opening a new one
    #[arg(long)]
    pub run_id: Option<Uuid>,
    /// Environment (sets APP_ENV for this run: local, dev, prod)
    #[arg(long)]
    pub env: Option<String>,
    /// The state machine definition (default: statemachine/jobnet.asl.json found from the
    /// current directory upwards, else the copy built into this binary)
    #[arg(long)]
    pub definition: Option<PathBuf>,
    /// How many times Guard waits 60 s for another local run to end before refusing
    /// (0: refuse at once)
    #[arg(long, default_value_t = 10)]
    pub guard_max_waits: u32,
    /// Seconds of work per Item invocation before it checkpoints and the loop calls it again
    #[arg(long, default_value_t = 60)]
    pub item_slice_secs: u64,
    /// Run as if on this JST day (env local only): the run's date is that day, the
    /// built-in sandbox serves that day's ranking, and the refresh windows (Item, Genre,
    /// Tag) are judged as of that day; a week can be simulated in minutes
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: Option<NaiveDate>,
    /// What to print on stdout at the end: the summary table, or (json) the run's summary
    /// document (the one Notify sends)
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Where `--as-of` notes the refresh-clock shift it is applying (removed when the run
/// ends; a run killed on the way leaves it, and the next `--as-of` run undoes the shift).
const AS_OF_MARKER: &str = ".local/as-of-refresh-shift";

/// A run as of another JST day (`--as-of`).
///
/// The jobs judge refresh windows with the database clock (`checked_at > now() - window`)
/// and stamp `etl_refresh.checked_at` with the process clock. To judge as of day D
/// (`T` = D at the current JST time of day, `offset` = `T - now`), every refresh time is
/// moved by `-offset` before the jobnet runs and by `+offset` after it: during the run
/// every age reads as it would at `T`, and the times stamped during the run end up at
/// their simulated instants. The run itself is opened here with `run_date` = D and handed
/// to Guard as its `run_id`.
struct AsOf {
    date: NaiveDate,
    offset_us: i64,
    run_id: Uuid,
}

impl AsOf {
    async fn begin(
        ctx: &AppContext,
        date: NaiveDate,
        sandbox: Option<&SandboxHandle>,
    ) -> Result<Self, JobError> {
        match sandbox {
            Some(s) => s
                .set_date(&date.to_string())
                .map_err(|e| JobError::InvalidInput(e.to_string()))?,
            None => eprintln!(
                "warning: --as-of {date} with RAKUTEN_APPLICATION_ID set: the API answers with today's data, stored as {date}'s"
            ),
        }
        let now = Utc::now();
        let time_of_day = now.with_timezone(&ledger::jst()).time();
        let simulated = date
            .and_time(time_of_day)
            .and_local_timezone(ledger::jst())
            .single()
            .expect("JST has no gaps")
            .with_timezone(&Utc);
        let offset_us = (simulated - now)
            .num_microseconds()
            .ok_or_else(|| JobError::InvalidInput(format!("--as-of {date} is too far away")))?;
        let db = ctx.db().await?;
        let client = &db.client;
        if let Some((target, pending)) = read_marker() {
            if target == db.target {
                shift_refresh(&db, pending).await?;
                eprintln!(
                    "as-of: undid the refresh-clock shift a killed --as-of run left ({} s)",
                    pending / 1_000_000
                );
            }
        }
        write_marker(&db.target, -offset_us)?;
        shift_refresh(&db, -offset_us).await?;
        let env = ctx.config.env.as_str();
        let run = ledger::create_run(client, env, "local as-of", ctx.config.run_lease).await?;
        client
            .execute(
                "UPDATE etl_runs SET run_date = $2 WHERE run_id = $1",
                &[&run.run_id, &date],
            )
            .await?;
        eprintln!(
            "as of {date} (JST): run {} dated {date}{}; refresh windows judged as of {}",
            run.run_id,
            if sandbox.is_some() {
                ", the sandbox serves that day"
            } else {
                ""
            },
            simulated
                .with_timezone(&ledger::jst())
                .format("%Y-%m-%d %H:%M JST")
        );
        Ok(AsOf {
            date,
            offset_us,
            run_id: run.run_id,
        })
    }

    /// Moves the refresh times to their simulated instants (every path out of the run).
    async fn end(&self, ctx: &AppContext) -> Result<(), JobError> {
        let guard = ctx.db().await?;
        shift_refresh(&guard, self.offset_us).await?;
        let _ = std::fs::remove_file(AS_OF_MARKER);
        tracing::debug!(date = %self.date, "refresh clock restored");
        Ok(())
    }
}

/// Why `--as-of` cannot be used with these arguments in `env`, if it cannot.
fn as_of_refusal(args: &RunArgs, env: AppEnv) -> Option<String> {
    let d = args.as_of?;
    if env != AppEnv::Local {
        return Some(format!(
            "--as-of {d} simulates a day on this machine and is refused in env {}: it works only in env local",
            env.as_str()
        ));
    }
    if args.run_id.is_some() || args.start_at.is_some() {
        return Some(
            "--as-of opens a new run of that day; it cannot be combined with --run-id or --start-at"
                .into(),
        );
    }
    None
}

/// Moves every `etl_refresh.checked_at` by `by_us` microseconds, in one statement.
async fn shift_refresh(db: &Db, by_us: i64) -> Result<(), JobError> {
    if by_us != 0 {
        db.client
            .execute(
                "UPDATE etl_refresh SET checked_at = checked_at + $1::int8 * interval '1 microsecond'",
                &[&by_us],
            )
            .await
            ?;
    }
    Ok(())
}

/// (database target, shift applied in µs) of a pending `--as-of` shift.
fn read_marker() -> Option<(String, i64)> {
    let text = std::fs::read_to_string(AS_OF_MARKER).ok()?;
    let (shift, target) = text.trim().split_once(' ')?;
    Some((target.to_string(), -shift.parse::<i64>().ok()?))
}

fn write_marker(target: &str, shift_us: i64) -> Result<(), JobError> {
    let path = Path::new(AS_OF_MARKER);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(path, format!("{shift_us} {target}\n"))
        .map_err(|e| JobError::InvalidInput(format!("--as-of cannot write {AS_OF_MARKER}: {e}")))
}

/// Finds and loads the definition text; says where it came from.
fn load_definition(path: Option<&Path>) -> Result<(String, String), String> {
    if let Some(p) = path {
        return std::fs::read_to_string(p)
            .map(|t| (t, p.display().to_string()))
            .map_err(|e| format!("cannot read --definition {}: {e}", p.display()));
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let p = dir.join(DEFINITION_PATH);
            if p.is_file() {
                if let Ok(t) = std::fs::read_to_string(&p) {
                    return Ok((t, p.display().to_string()));
                }
            }
        }
    }
    Ok((
        EMBEDDED_DEFINITION.to_string(),
        "the definition built into this binary".to_string(),
    ))
}

/// `DefinitionSubstitutions` for local execution: statemachine/substitutions.json (the one
/// list: each function's name as the handler knows it), with Guard's wait limit.
pub fn local_substitutions(guard_max_waits: u32) -> HashMap<String, String> {
    let mut m: HashMap<String, String> =
        serde_json::from_str(include_str!("../../../statemachine/substitutions.json"))
            .expect("statemachine/substitutions.json is a map of strings");
    m.insert("GuardMaxWaits".into(), guard_max_waits.to_string());
    m
}

/// Dispatches the definition's Tasks to the library.
struct LocalTasks {
    ctx: Arc<AppContext>,
    lock: Arc<LocalLock>,
    notifier: Notifier,
    item_slice: Duration,
    progress: Arc<Progress>,
    notify_report: Mutex<Option<Value>>,
}

fn task_error(e: JobError) -> TaskError {
    TaskError::new(e.error_type(), e.to_string())
}

#[async_trait]
impl TaskHandler for LocalTasks {
    async fn invoke(
        &self,
        state: &str,
        resource: &str,
        input: Value,
        _tctx: &TaskContext,
    ) -> Result<Value, TaskError> {
        if resource != LAMBDA_INVOKE {
            return Err(TaskError::new(
                "States.Runtime",
                format!("state {state}: local runs support only Resource {LAMBDA_INVOKE}, got {resource}"),
            ));
        }
        let function = input
            .get("FunctionName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let payload = input.get("Payload").cloned().unwrap_or(json!({}));
        let out = match function.as_str() {
            "guard" => {
                let req = GuardRequest::from_event(&payload).map_err(task_error)?;
                let out = guard::run(&self.ctx, req, self.lock.as_ref(), "local")
                    .await
                    .map_err(task_error)?;
                if !out.proceed {
                    say(format!(
                        "waiting: {} — checking again in {} s ({}/{} waits before refusing)",
                        out.waiting_for.join("; "),
                        guard::WAIT_SECONDS,
                        out.waits,
                        payload
                            .get("max_waits")
                            .and_then(Value::as_str)
                            .unwrap_or("?"),
                    ));
                } else if let Some(id) = out.run_id {
                    if let Some(r) = &out.resumed {
                        say(format!("resuming {r}"));
                    }
                    say(format!(
                        "run {id} (env {}), starting at {}",
                        self.ctx.config.env, out.start_at
                    ));
                }
                serde_json::to_value(out).expect("serialises")
            }
            "notify" => {
                let report = notify::run(&self.ctx, &payload, &self.notifier)
                    .await
                    .map_err(task_error)?;
                let v = serde_json::to_value(report).expect("serialises");
                *self.notify_report.lock().expect("lock") = Some(v.clone());
                v
            }
            name => {
                let job: Job = name.parse().map_err(task_error)?;
                let deadline = (job == Job::Item).then(|| {
                    SystemTime::now() + self.item_slice + self.ctx.config.item.deadline_margin
                });
                // Counted on the job's line too (its requests, 429s).
                let line = self.progress.line(job.spec());
                let work = jobs::dispatch(&self.ctx, job, payload, deadline);
                self.ctx
                    .rakuten
                    .scoped_in(&line.scope, work)
                    .await
                    .map_err(task_error)?
            }
        };
        Ok(json!({"Payload": out, "StatusCode": 200, "ExecutedVersion": "$LATEST"}))
    }
}

/// Progress on the terminal: one line per job (crate::terminal).
struct Progress {
    lines: JobLines,
    /// Ranking's units: targets × pages.
    ranking_pages: u64,
}

impl Progress {
    /// The line of the job, started on first use.
    fn line(&self, spec: &'static jobs::JobSpec) -> Arc<terminal::JobLine> {
        let total = (spec.job == Job::Ranking).then_some(self.ranking_pages);
        self.lines.line(spec.name, spec.fetches, total)
    }
}

/// The job a Task state runs (None for Guard and Notify).
fn job_spec(state: &str) -> Option<&'static jobs::JobSpec> {
    jobs::JOBS
        .iter()
        .find(|s| s.state == state)
        .map(|s| s.job.spec())
}

/// The job a Task state runs (None for Guard and Notify).
fn job_label(state: &str) -> Option<&'static str> {
    job_spec(state).map(|s| s.name)
}

impl Observer for Progress {
    fn on_event(&self, e: &TraceEvent) {
        match e {
            TraceEvent::TaskScheduled { name, .. } => {
                if let Some(spec) = job_spec(name) {
                    self.line(spec);
                }
            }
            TraceEvent::TaskSucceeded { name, output, .. } => {
                let Some(spec) = job_spec(name) else { return };
                let Some(out) = output
                    .get("Payload")
                    .and_then(|p| serde_json::from_value::<JobOutput>(p.clone()).ok())
                else {
                    return;
                };
                let line = self.line(spec);
                if spec.job == Job::Item {
                    let queued = out.extra.get("queued").copied().unwrap_or(0).max(0) as u64;
                    let remaining = out.extra.get("remaining").copied().unwrap_or(0).max(0) as u64;
                    let done = queued.saturating_sub(remaining);
                    line.set_done(done, queued);
                    if !out.done {
                        line.note(format!(
                            "{done}/{queued} items done, {remaining} left, continuing"
                        ));
                        return;
                    }
                }
                line.succeeded(&out);
            }
            TraceEvent::TaskFailed {
                name, error, cause, ..
            } => {
                if let Some(spec) = job_spec(name) {
                    self.line(spec).attempt_failed(error, cause);
                }
            }
            TraceEvent::TaskRetried {
                name,
                attempt,
                delay_ms,
                error,
                ..
            } => say(format!(
                "↻ {name}: {error}, retry {attempt} in {:.1} s",
                *delay_ms as f64 / 1000.0
            )),
            TraceEvent::StateCaught {
                name, error, cause, ..
            } => match job_spec(name) {
                Some(spec) => self.line(spec).failed(error, cause),
                None if name == "Guard" => say(format!("✘ {name}: {error}: {cause}")),
                None => {}
            },
            _ => {}
        }
    }
}

/// One row of the end-of-run table, from the trace.
#[derive(Debug, Default)]
struct Row {
    output: Option<JobOutput>,
    error: Option<(String, String)>,
    invocations: usize,
    duration_ms: i64,
}

fn rows_from_trace(result: &ExecutionResult) -> BTreeMap<usize, (&'static str, Row)> {
    let mut rows: BTreeMap<usize, (&'static str, Row)> = BTreeMap::new();
    let idx = |name: &str| jobs::JOBS.iter().position(|s| s.state == name);
    for e in &result.trace {
        match e {
            TraceEvent::TaskScheduled { name, .. } => {
                if let Some(i) = idx(name) {
                    rows.entry(i)
                        .or_insert((jobs::JOBS[i].name, Row::default()))
                        .1
                        .invocations += 1;
                }
            }
            TraceEvent::TaskSucceeded { name, output, .. } => {
                if let Some(i) = idx(name) {
                    let row = &mut rows
                        .entry(i)
                        .or_insert((jobs::JOBS[i].name, Row::default()))
                        .1;
                    if let Some(o) = output
                        .get("Payload")
                        .and_then(|p| serde_json::from_value::<JobOutput>(p.clone()).ok())
                    {
                        row.duration_ms += o.duration_ms;
                        row.output = Some(o);
                    }
                    row.error = None;
                }
            }
            TraceEvent::TaskFailed {
                name, error, cause, ..
            } => {
                if let Some(i) = idx(name) {
                    rows.entry(i)
                        .or_insert((jobs::JOBS[i].name, Row::default()))
                        .1
                        .error = Some((error.clone(), cause.clone()));
                }
            }
            _ => {}
        }
    }
    rows
}

fn print_table(result: &ExecutionResult) {
    let rows = rows_from_trace(result);
    if rows.is_empty() {
        println!("no job ran");
        return;
    }
    println!(
        "{:<10} {:<10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "job", "status", "units", "failed", "rate", "inserted", "updated", "requests", "duration"
    );
    for (job, row) in rows.values() {
        let status = if row.error.is_some() {
            "FAILED".to_string()
        } else {
            row.output
                .as_ref()
                .map(|o| o.status.clone())
                .unwrap_or_else(|| "-".into())
        };
        match &row.output {
            Some(o) if row.error.is_none() => {
                let t = o.total_rows();
                println!(
                    "{job:<10} {status:<10} {:>8} {:>8} {:>7.2}% {:>9} {:>9} {:>9} {:>8.1}s",
                    o.units.attempted,
                    o.units.failed,
                    o.failure_rate * 100.0,
                    t.inserted,
                    t.updated,
                    o.requests,
                    row.duration_ms as f64 / 1000.0
                );
            }
            _ => println!(
                "{job:<10} {status:<10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}",
                "-", "-", "-", "-", "-", "-", "-"
            ),
        }
        if let Some((e, c)) = &row.error {
            println!("           {e}: {c}");
        }
        if row.invocations > 1 && *job == "item" {
            println!("           ({} invocations)", row.invocations);
        }
    }
}

/// The state whose error ended the execution (the last catch of that error, else the
/// last failed Task).
fn failing_state(result: &ExecutionResult) -> Option<String> {
    let err = result.error.as_deref()?;
    result.trace.iter().rev().find_map(|e| match e {
        TraceEvent::StateCaught { name, error, .. }
            if error == err && !name.starts_with("Notify") =>
        {
            Some(name.clone())
        }
        TraceEvent::TaskFailed { name, error, .. }
            if error == err && !name.starts_with("Notify") =>
        {
            Some(name.clone())
        }
        _ => None,
    })
}

fn config_for(args: &RunArgs, config: Config) -> Result<Config, String> {
    let Some(env) = &args.env else {
        return Ok(config);
    };
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    vars.insert("APP_ENV".into(), env.clone());
    Config::from_map(&vars).map_err(|e| e.to_string())
}

pub async fn run(config: Config, args: RunArgs) -> ExitCode {
    let config = match config_for(&args, config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(e) = as_of_refusal(&args, config.env) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let (text, source) = match load_definition(args.definition.as_deref()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let def = asl_runner::substitute(&text, &local_substitutions(args.guard_max_waits))
        .map_err(|e| e.to_string())
        .and_then(|t| asl_runner::Definition::from_json(&t).map_err(|e| e.to_string()));
    let def = match def {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: the state machine definition ({source}) is not usable: {e}");
            return ExitCode::from(2);
        }
    };
    // A fresh machine: no DATABASE_URL and nothing at the default address (private_pg.rs).
    let config = match crate::private_pg::ensure(config).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    eprintln!("jobnet: {source}");
    let database_url = match collector_core::secrets::resolve(&config).await {
        Ok(s) => s.database_url,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let env = config.env.as_str().to_string();
    let (ctx, sandbox) = match crate::job::prepare(config).await {
        Ok(v) => v,
        Err(e) => return crate::job::fail(&e),
    };
    let notifier = match Notifier::from_env().await {
        Ok(n) => n,
        Err(e) => return crate::job::fail(&e),
    };
    let as_of = match args.as_of {
        Some(d) => match AsOf::begin(&ctx, d, sandbox.as_ref()).await {
            Ok(a) => Some(a),
            Err(e) => return crate::job::fail(&e),
        },
        None => None,
    };
    let progress = Arc::new(Progress {
        lines: JobLines::default(),
        ranking_pages: ctx.config.ranking_targets.len() as u64
            * u64::from(ctx.config.ranking_max_pages),
    });
    let lock = Arc::new(LocalLock::new(database_url, env.clone()));
    let tasks = LocalTasks {
        ctx: Arc::new(ctx),
        lock: Arc::clone(&lock),
        notifier,
        item_slice: Duration::from_secs(args.item_slice_secs.max(1)),
        progress: Arc::clone(&progress),
        notify_report: Mutex::new(None),
    };
    let mut input = serde_json::Map::new();
    if let Some(s) = &args.start_at {
        input.insert("start_at".into(), json!(s));
    }
    if let Some(r) = args.run_id.or(as_of.as_ref().map(|a| a.run_id)) {
        input.insert("run_id".into(), json!(r.to_string()));
    }
    let execution = Uuid::new_v4();
    let opts = ExecutionOptions {
        execution_id: format!("local:{env}:jobnet:{execution}"),
        execution_name: execution.to_string(),
        state_machine_id: format!("local:{env}:jobnet"),
        state_machine_name: "jobnet".into(),
    };
    let result = asl_runner::run(
        &def,
        Value::Object(input),
        &tasks,
        &RealClock,
        opts,
        Some(progress.as_ref()),
    )
    .await;
    progress.lines.end_all();
    if let Some(a) = &as_of {
        if let Err(e) = a.end(&tasks.ctx).await {
            eprintln!("error: --as-of could not restore the refresh clock ({e}); the next --as-of run does ({AS_OF_MARKER})");
        }
    }
    lock.release().await;
    if let Some(s) = sandbox {
        s.shutdown().await;
    }

    let report = tasks.notify_report.lock().expect("lock").clone();
    if args.output == OutputFormat::Json {
        // The run's summary document (Notify's), else what is known without it.
        let summary = report
            .as_ref()
            .and_then(|r| r.get("summary").cloned())
            .unwrap_or_else(|| {
                json!({
                    "status": if result.succeeded() { "succeeded" } else { "failed" },
                    "env": env,
                    "error": result.error.as_ref().map(|e| json!({
                        "Error": e,
                        "Cause": result.cause.clone().unwrap_or_default(),
                    })),
                })
            });
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("serialises")
        );
    } else {
        println!();
        print_table(&result);
    }
    if let Some(r) = report
        .as_ref()
        .filter(|_| args.output == OutputFormat::Text)
    {
        let delivered = r.get("delivered").and_then(Value::as_bool).unwrap_or(false);
        let channels = r
            .get("channels")
            .and_then(Value::as_array)
            .map(|c| c.len())
            .unwrap_or(0);
        if channels > 0 {
            println!(
                "notification: {}",
                if delivered {
                    "delivered"
                } else {
                    "NOT delivered (see the log)"
                }
            );
        }
    }
    if result.succeeded() {
        let run_id = result
            .output
            .as_ref()
            .and_then(|o| o.pointer("/guard/Payload/run_id"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        if args.output == OutputFormat::Text {
            println!("jobnet succeeded — run {run_id}");
        }
        ExitCode::SUCCESS
    } else {
        let error = result.error.clone().unwrap_or_default();
        let cause = result.cause.clone().unwrap_or_default();
        let state = failing_state(&result).unwrap_or_else(|| "?".into());
        let job = job_label(&state).unwrap_or(state.as_str());
        eprintln!("error: jobnet failed in {job} [{error}]: {cause}");
        ExitCode::from(jobs::exit_code(&error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> RunArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            run: RunArgs,
        }
        let argv = std::iter::once("run").chain(extra.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv).unwrap().run
    }

    #[test]
    fn as_of_is_local_only_and_opens_its_own_run() {
        let a = args(&["--as-of", "2026-11-24"]);
        assert_eq!(a.as_of, NaiveDate::from_ymd_opt(2026, 11, 24));
        assert_eq!(as_of_refusal(&a, AppEnv::Local), None);
        for env in [AppEnv::Dev, AppEnv::Prod] {
            let e = as_of_refusal(&a, env).unwrap();
            assert!(
                e.contains("refused in env") && e.contains("only in env local"),
                "{e}"
            );
        }
        let with_run = args(&["--as-of", "2026-11-24", "--start-at", "item"]);
        assert!(as_of_refusal(&with_run, AppEnv::Local).is_some());
        assert_eq!(as_of_refusal(&args(&[]), AppEnv::Prod), None);
        let bad = ["run", "--as-of", "24/11/2026"];
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            run: RunArgs,
        }
        assert!(<Cli as clap::Parser>::try_parse_from(bad).is_err());
    }

    #[test]
    fn embedded_definition_loads_with_local_substitutions() {
        let text = asl_runner::substitute(EMBEDDED_DEFINITION, &local_substitutions(3)).unwrap();
        let def = asl_runner::Definition::from_json(&text).unwrap();
        for t in def.tasks() {
            assert_eq!(t.resource, LAMBDA_INVOKE, "{}", t.name);
        }
    }
}
