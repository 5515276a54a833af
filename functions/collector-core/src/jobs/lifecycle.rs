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
    let lease = ctx.config.run_lease;
    // Runs whose process died stay `running` for ever unless a later start says otherwise.
    ledger::sweep_abandoned(client, ctx.config.env.as_str(), lease).await?;
    let (run, opened) = match run_id {
        Some(id) => (
            ledger::get_run(client, id)
                .await?
                .ok_or(JobError::RunNotFound(id))?,
            false,
        ),
        None if may_open => (
            ledger::create_run(client, ctx.config.env.as_str(), "manual", lease).await?,
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
        if run.status == "abandoned" {
            tracing::warn!(run_id = %run.run_id, job = job.as_str(), "resuming an abandoned run");
        }
        ledger::reopen_run(client, run.run_id, lease).await?;
    } else {
        ledger::renew_lease(client, run.run_id, lease).await?;
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
    sent: ledger::Sent,
) -> Result<(), JobError> {
    let guard = ctx.db().await?;
    let client = &guard.as_ref().expect("connected").client;
    if let Err(e) = result {
        if !matches!(e, JobError::FailureRateExceeded { .. }) {
            ledger::abort_job(
                client,
                &started.job_run,
                e.error_type(),
                &e.to_string(),
                sent,
            )
            .await?;
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

/// Renews the run's lease every quarter lease until dropped (when the job's work ends).
async fn heartbeat(ctx: &AppContext, run_id: Uuid) -> std::convert::Infallible {
    let lease = ctx.config.run_lease;
    loop {
        tokio::time::sleep(lease / 4).await;
        let renewed = async {
            let guard = ctx.db().await?;
            let client = &guard.as_ref().expect("connected").client;
            ledger::renew_lease(client, run_id, lease).await?;
            Ok::<_, JobError>(())
        }
        .await;
        if let Err(e) = renewed {
            tracing::warn!(%run_id, error = %e, "could not renew the run's lease");
        }
    }
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
    let job_run = started.job_run.clone();
    let work = ctx.rakuten.scoped(async move {
        let r = work(job_run).await;
        // Read inside the scope: what this job sent and has not recorded yet (Item records
        // batch by batch), for the ledger even when it failed.
        let s = ctx.rakuten.take_current_stats();
        let sent = ledger::Sent {
            requests: s.requests as i32,
            retries: s.retries as i32,
            throttled: s.throttled as i32,
        };
        (r, sent)
    });
    // The lease is renewed while the job works; both futures are polled together, so the
    // heartbeat waiting for the connection never blocks the job that holds it.
    let (result, sent) = tokio::select! {
        r = work => r,
        never = heartbeat(ctx, started.job_run.run.run_id) => match never {},
    };
    if let Err(e) = finish(ctx, &started, &result, sent).await {
        tracing::error!(error = %e, "could not record the job's end in the ledger");
        if result.is_ok() {
            return Err(e);
        }
    }
    result
}
