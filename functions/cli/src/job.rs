//! `collector migrate` and `collector job …`: set-up shared by the jobs, then the job's
//! library entry point (the same one its Lambda calls).

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;
use collector_core::config::{AppEnv, Config};
use collector_core::db::{self, ledger};
use collector_core::jobs::{self, Job, JobOutput};
use collector_core::jobs::{AppContext, JobError, RakutenEndpoint};
use collector_core::secrets::{self, Secrets};
use rakuten_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use uuid::Uuid;

use crate::summary;
use crate::terminal::JobLine;
use crate::OutputFormat;

#[derive(Args, Debug)]
pub struct JobArgs {
    /// Work in this existing run (default: ranking opens a new run; the other jobs use the
    /// newest run of the environment, named on stderr)
    #[arg(long)]
    pub run_id: Option<Uuid>,
    /// What to print on stdout when the job ends
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub(crate) fn fail(e: &JobError) -> ExitCode {
    eprintln!("error [{}]: {e}", e.error_type());
    ExitCode::from(jobs::exit_code(e.error_type()))
}

/// Resolves secrets, prepares the database (locally: creates it and migrates) and, when
/// no Rakuten credentials are configured locally, starts the built-in sandbox.
/// Requests per second the built-in sandbox allows when the pace is not set explicitly;
/// we send at half that, leaving room for timer and connection jitter (the sandbox's
/// limiter is strict: no early arrival is tolerated).
const SANDBOX_RATE_LIMIT: f64 = 40.0;

pub(crate) async fn prepare(
    config: Config,
) -> Result<(AppContext, Option<SandboxHandle>), JobError> {
    let secrets: Secrets = secrets::resolve(&config).await?;
    if config.env == AppEnv::Local {
        if db::ensure_database(&secrets.database_url).await? {
            eprintln!("created the local database");
        }
        let ctx_db = db::connect(&secrets.database_url).await?;
        let mut client = ctx_db.client;
        let report = db::migrate(&mut client).await?;
        if !report.applied.is_empty() {
            eprintln!("applied migrations: {}", report.applied.join(", "));
        }
    }
    let mut config = config;
    let mut sandbox = None;
    let endpoint = if secrets.rakuten.is_none() {
        // The real API allows about 1 request/s; the built-in sandbox is ours, so unless
        // the pace is set explicitly it allows (and we use) 20/s to keep local runs short.
        let explicit_rate = std::env::var_os("RAKUTEN_REQUESTS_PER_SECOND").is_some();
        let limit = if explicit_rate {
            1.0
        } else {
            SANDBOX_RATE_LIMIT
        };
        if !explicit_rate {
            config.rakuten.requests_per_second = SANDBOX_RATE_LIMIT / 2.0;
        }
        let sandbox_config = SandboxConfig {
            rate_limit_per_sec: Some(limit),
            ..SandboxConfig::default()
        };
        let access_key = sandbox_config.access_key.clone();
        let handle = Sandbox::start(sandbox_config)
            .await
            .map_err(|e| JobError::InvalidInput(format!("cannot start the sandbox: {e}")))?;
        eprintln!(
            "no RAKUTEN_APPLICATION_ID configured: using the built-in Rakuten sandbox at {} \
             (synthetic data; it allows {limit} request/s, we send {:.2}/s)",
            handle.base_url(),
            config.rakuten.requests_per_second
        );
        let endpoint = RakutenEndpoint {
            base_url: handle.base_url().parse().expect("sandbox URL"),
            application_id: "00000000-0000-4000-8000-000000000001".to_string().into(),
            access_key: access_key.into(),
        };
        sandbox = Some(handle);
        Some(endpoint)
    } else {
        None
    };
    let ctx = AppContext::new(config, secrets, endpoint).await?;
    Ok((ctx, sandbox))
}

pub async fn migrate(config: &Config) -> ExitCode {
    let result = async {
        let secrets = secrets::resolve(config).await?;
        if config.env == AppEnv::Local && db::ensure_database(&secrets.database_url).await? {
            eprintln!("created the local database");
        }
        let db = db::connect(&secrets.database_url).await?;
        let target = db.target.clone();
        let mut client = db.client;
        let report = db::migrate(&mut client).await?;
        Ok::<_, JobError>((target, report))
    }
    .await;
    match result {
        Ok((target, report)) => {
            if report.applied.is_empty() {
                println!(
                    "{target}: schema up to date (version {})",
                    report.current_version.unwrap_or(0)
                );
            } else {
                println!("{target}: applied {}", report.applied.join(", "));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Options of `collector job item`.
#[derive(Args, Debug)]
pub struct ItemArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Stop taking new items after this many seconds and return `done: false` (as the
    /// Lambda does before its deadline); run it again to continue. Default: until done.
    #[arg(long, value_name = "SECONDS")]
    pub budget: Option<u64>,
}

impl ItemArgs {
    /// When to stop taking new items (`--budget` from now).
    pub fn stop_at(&self) -> Option<SystemTime> {
        self.budget
            .map(|s| SystemTime::now() + Duration::from_secs(s))
    }
}

/// Runs one job through the job table's door (what its Lambda calls): Ranking opens a new
/// run unless given one; the others work in `--run-id` or the newest run.
pub async fn run_job(
    config: Config,
    job: Job,
    args: JobArgs,
    stop_at: Option<SystemTime>,
) -> ExitCode {
    let pages = config.ranking_targets.len() as u64 * u64::from(config.ranking_max_pages);
    let total = (job == Job::Ranking).then_some(pages);
    let run_id = args.run_id;
    execute(config, args.output, job, total, move |ctx| {
        Box::pin(async move {
            let run_id = match job {
                Job::Ranking => run_id,
                _ => Some(resolve_run_id(ctx, run_id).await?),
            };
            (job.spec().run)(ctx, serde_json::json!({ "run_id": run_id }), stop_at).await
        })
    })
    .await
}

/// `--run-id`, or the newest run of this env (said on stderr).
pub async fn resolve_run_id(ctx: &AppContext, run_id: Option<Uuid>) -> Result<Uuid, JobError> {
    if let Some(id) = run_id {
        return Ok(id);
    }
    let db = ctx.db().await?;
    let client = &db.client;
    let run = ledger::newest_run(client, ctx.config.env.as_str()).await?;
    let id = run.map(|r| r.run_id).ok_or_else(|| {
        JobError::InvalidInput(format!(
            "no run in env {} yet: run `collector job ranking` first, or pass --run-id",
            ctx.config.env
        ))
    })?;
    eprintln!("using the newest run of env {}: {id}", ctx.config.env);
    Ok(id)
}

type JobFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<JobOutput, JobError>> + 'a>>;

/// Prepares the context, shows the job's line (crate::terminal) while `work` runs, prints
/// the outcome.
async fn execute<F>(
    config: Config,
    output: OutputFormat,
    job: Job,
    total: Option<u64>,
    work: F,
) -> ExitCode
where
    F: for<'a> FnOnce(&'a AppContext) -> JobFuture<'a>,
{
    let (ctx, sandbox) = match prepare(config).await {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    let spec = job.spec();
    let line = JobLine::start(spec.name, spec.fetches, total);
    let result = ctx.rakuten.scoped_in(&line.scope, work(&ctx)).await;
    match &result {
        Ok(out) => {
            if let (Some(&queued), Some(&remaining)) =
                (out.extra.get("queued"), out.extra.get("remaining"))
            {
                let queued = queued.max(0) as u64;
                line.set_done(queued.saturating_sub(remaining.max(0) as u64), queued);
            }
            line.succeeded(out);
        }
        Err(e) => line.failed(e.error_type(), &e.to_string()),
    }
    if let Some(s) = sandbox {
        s.shutdown().await;
    }
    match result {
        Ok(out) => {
            match output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&out).expect("serialises")
                ),
                OutputFormat::Text => summary::print(&out, &ctx.store.describe()),
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}
