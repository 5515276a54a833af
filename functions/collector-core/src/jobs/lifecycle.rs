//! What every job does around its work: find or open the run, start (or continue) its
//! job run in the ledger, and on the way out leave the ledger consistent.

use std::time::{Duration, Instant};

use rakuten_client::StatsScope;
use uuid::Uuid;

use crate::db::ledger::{self, JobRun};
use crate::jobs::Job;

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
    let db = ctx.db().await?;
    let client = &db.client;
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
    let db = ctx.db().await?;
    let client = &db.client;
    match result {
        Err(e)
            if !matches!(
                e,
                JobError::FailureRateExceeded { .. } | JobError::DataQualityFailed(_)
            ) =>
        {
            ledger::abort_job(
                client,
                &started.job_run,
                e.error_type(),
                &e.to_string(),
                sent,
            )
            .await?;
        }
        _ if !sent.is_zero() => {
            ledger::add_sent(client, &started.job_run, sent).await?;
        }
        _ => {}
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

/// How often the requests a job sent are recorded in the ledger while it works: a killed
/// invocation loses at most this long's count.
const RECORD_SENT_EVERY: Duration = Duration::from_secs(5);

/// Records in the ledger what the job sent and has not recorded yet.
async fn record_sent(
    ctx: &AppContext,
    job_run: &JobRun,
    scope: &StatsScope,
) -> Result<(), JobError> {
    let taken = scope.take_unrecorded();
    let sent = ledger::Sent::from(taken);
    if sent.is_zero() {
        return Ok(());
    }
    let recorded = async {
        let db = ctx.db().await?;
        let client = &db.client;
        ledger::add_sent(client, job_run, sent).await?;
        Ok::<_, JobError>(())
    }
    .await;
    if recorded.is_err() {
        scope.give_back(taken);
    }
    recorded
}

/// While the job works: records its requests every few seconds and renews the run's lease
/// every quarter lease. Runs until dropped (when the job's work ends).
async fn heartbeat(
    ctx: &AppContext,
    job_run: &JobRun,
    scope: &StatsScope,
) -> std::convert::Infallible {
    let lease = ctx.config.run_lease;
    let run_id = job_run.run.run_id;
    let mut renewed_at = Instant::now();
    loop {
        tokio::time::sleep(RECORD_SENT_EVERY.min(lease / 4)).await;
        if let Err(e) = record_sent(ctx, job_run, scope).await {
            tracing::warn!(%run_id, error = %e, "could not record the requests sent so far");
        }
        if renewed_at.elapsed() < lease / 4 {
            continue;
        }
        renewed_at = Instant::now();
        let renewed = async {
            let db = ctx.db().await?;
            let client = &db.client;
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
    may_open: bool,
    work: F,
) -> Result<JobOutput, JobError>
where
    F: FnOnce(JobRun) -> Fut,
    Fut: std::future::Future<Output = Result<JobOutput, JobError>>,
{
    // The threshold recorded with the job run is the job table's.
    let threshold = (job.spec().threshold)(&ctx.config);
    let started = start(ctx, run_id, job, threshold, may_open).await?;
    // The job's own request counters, even when another job shares the client.
    let scope = StatsScope::default();
    let work = ctx.rakuten.scoped_in(&scope, work(started.job_run.clone()));
    // Both futures are polled together, so the heartbeat waiting for the connection
    // never blocks the job that holds it.
    let result = tokio::select! {
        r = work => r,
        never = heartbeat(ctx, &started.job_run, &scope) => match never {},
    };
    // What the job sent and did not record itself (all of it, when it failed).
    let sent = ledger::Sent::from(scope.take_unrecorded());
    if let Err(e) = finish(ctx, &started, &result, sent).await {
        tracing::error!(error = %e, "could not record the job's end in the ledger");
        if result.is_ok() {
            return Err(e);
        }
    }
    result
}
