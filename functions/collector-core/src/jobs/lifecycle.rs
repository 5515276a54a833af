//! What every job does around its work: find or open the run, start (or continue) its
//! job run in the ledger, and on the way out leave the ledger consistent.

use uuid::Uuid;

use crate::db::ledger::{self, Job, JobRun};

use super::{AppContext, JobError, JobOutput};

/// A started job run, and whether this job must close the run when it ends (it opened
/// the run itself, or it reran a job in a run that had already finished).
pub struct Started {
    pub job_run: JobRun,
    pub closes_run: bool,
}

/// Finds the run (or opens one when `run_id` is None and `may_open` is true) and starts the job in it.
pub async fn start(
    ctx: &AppContext,
    run_id: Option<Uuid>,
    job: Job,
    threshold: f64,
    may_open: bool,
) -> Result<Started, JobError> {
    let guard = ctx.db().await?;
    let client = &guard.as_ref().expect("connected").client;
    let (run, opened) = match run_id {
        Some(id) => (
            ledger::get_run(client, id)
                .await?
                .ok_or(JobError::RunNotFound(id))?,
            false,
        ),
        None if may_open => (
            ledger::create_run(client, ctx.config.env.as_str(), "manual").await?,
            true,
        ),
        None => return Err(JobError::InvalidInput(format!("{job}: run_id is required"))),
    };
    if run.env != ctx.config.env.as_str() {
        return Err(JobError::InvalidInput(format!(
            "run {} belongs to env {}, this process is configured for {}",
            run.run_id, run.env, ctx.config.env
        )));
    }
    let reopened = !opened && run.status != "running";
    if reopened {
        ledger::reopen_run(client, run.run_id).await?;
    }
    let job_run = ledger::start_job(client, &run, job, threshold).await?;
    tracing::info!(run_id = %run.run_id, job = job.as_str(), attempt = job_run.attempt, invocation = job_run.invocations, "job started");
    Ok(Started {
        job_run,
        closes_run: opened || reopened,
    })
}

/// Records an error that stopped the job (the job itself records FailureRateExceeded with
/// its counts) and closes the run when this job owns it.
pub async fn finish(
    ctx: &AppContext,
    started: &Started,
    result: &Result<JobOutput, JobError>,
) -> Result<(), JobError> {
    let guard = ctx.db().await?;
    let client = &guard.as_ref().expect("connected").client;
    if let Err(e) = result {
        if !matches!(e, JobError::FailureRateExceeded { .. }) {
            ledger::abort_job(client, &started.job_run, e.error_type(), &e.to_string()).await?;
        }
    }
    let done = result.as_ref().map(|o| o.done).unwrap_or(true);
    if started.closes_run && done {
        let err = result
            .as_ref()
            .err()
            .map(|e| (e.error_type(), e.to_string()));
        ledger::finish_run(
            client,
            started.job_run.run.run_id,
            result.is_ok(),
            err.as_ref().map(|(t, m)| (*t, m.as_str())),
        )
        .await?;
    }
    Ok(())
}

/// Runs `work` inside start/finish.
pub async fn run_job<F, Fut>(
    ctx: &AppContext,
    run_id: Option<Uuid>,
    job: Job,
    threshold: f64,
    may_open: bool,
    work: F,
) -> Result<JobOutput, JobError>
where
    F: FnOnce(JobRun) -> Fut,
    Fut: std::future::Future<Output = Result<JobOutput, JobError>>,
{
    let started = start(ctx, run_id, job, threshold, may_open).await?;
    // The job's own request counters, even when another job shares the client.
    let result = ctx.rakuten.scoped(work(started.job_run.clone())).await;
    if let Err(e) = finish(ctx, &started, &result).await {
        tracing::error!(error = %e, "could not record the job's end in the ledger");
        if result.is_ok() {
            return Err(e);
        }
    }
    result
}
