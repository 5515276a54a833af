//! The run ledger: `etl_runs`, `etl_job_runs` and `etl_failures`.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use tokio_postgres::{Client, GenericClient};
use uuid::Uuid;

use super::{lease, DbError, DbResultExt};
use crate::jobs::Job;

/// Rakuten's calendar: snapshot dates and raw-store folders use Japan time (no DST).
pub fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("valid offset")
}

pub fn jst_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&jst()).date_naive()
}

/// A row of `etl_runs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Run {
    pub run_id: Uuid,
    pub env: String,
    pub run_date: NaiveDate,
    pub status: String,
    pub started_at: DateTime<Utc>,
}

fn run_from_row(r: &tokio_postgres::Row) -> Run {
    Run {
        run_id: r.get("run_id"),
        env: r.get("env"),
        run_date: r.get("run_date"),
        status: r.get("status"),
        started_at: r.get("started_at"),
    }
}

/// Opens a new run in `env`, leased to this process for `lease`.
pub async fn create_run(
    client: &impl GenericClient,
    env: &str,
    trigger: &str,
    lease: Duration,
) -> Result<Run, DbError> {
    let run_id = Uuid::new_v4();
    let now = Utc::now();
    let row = client
        .query_one(
            "INSERT INTO etl_runs (run_id, env, run_date, trigger, started_at, lease_owner, lease_expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $5::timestamptz + make_interval(secs => $7))
             RETURNING run_id, env, run_date, status, started_at",
            &[&run_id, &env, &jst_date(now), &trigger, &now, &lease::owner(), &lease.as_secs_f64()],
        )
        .await?;
    Ok(run_from_row(&row))
}

/// Renews this process's lease on a run (called while a job works).
pub async fn renew_lease(
    client: &impl GenericClient,
    run_id: Uuid,
    lease: Duration,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE etl_runs SET lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3)
             WHERE run_id = $1 AND status = 'running'",
            &[&run_id, &lease::owner(), &lease.as_secs_f64()],
        )
        .await?;
    Ok(())
}

/// Marks abandoned every running run of `env` whose process is gone: its local process no
/// longer exists, or its lease expired and its owner is not a live process of this
/// machine. Their running job runs become abandoned too. Returns the runs marked.
pub async fn sweep_abandoned(
    client: &impl GenericClient,
    env: &str,
    lease: Duration,
) -> Result<Vec<Uuid>, DbError> {
    let rows = client
        .query(
            "SELECT run_id, lease_owner,
                    coalesce(lease_expires_at, started_at + make_interval(secs => $2)) < now()
             FROM etl_runs WHERE env = $1 AND status = 'running'",
            &[&env, &lease.as_secs_f64()],
        )
        .await?;
    let mut marked = Vec::new();
    for r in rows {
        let run_id: Uuid = r.get(0);
        let owner: Option<String> = r.get(1);
        let expired: bool = r.get(2);
        let why = match owner.as_deref().map(lease::liveness) {
            Some(lease::Liveness::Gone) => "its process is gone",
            Some(lease::Liveness::Alive) => continue,
            _ if expired => "its lease expired (process or execution gone)",
            _ => continue,
        };
        let message = format!("abandoned: {why}; found by a later start");
        client
            .execute(
                "UPDATE etl_job_runs SET status = 'abandoned', finished_at = now(), error_type = 'Abandoned', error_message = $2
                 WHERE run_id = $1 AND status = 'running'",
                &[&run_id, &message],
            )
            .await?;
        let n = client
            .execute(
                "UPDATE etl_runs SET status = 'abandoned', finished_at = now(), error_type = 'Abandoned', error_message = $2
                 WHERE run_id = $1 AND status = 'running'",
                &[&run_id, &message],
            )
            .await?;
        if n > 0 {
            tracing::warn!(%run_id, reason = why, "marked an unfinished run abandoned");
            marked.push(run_id);
        }
    }
    Ok(marked)
}

/// The newest run of `env` (any status) that fetched: replays are not runs to continue.
pub async fn newest_run(client: &impl GenericClient, env: &str) -> Result<Option<Run>, DbError> {
    let row = client
        .query_opt(
            "SELECT run_id, env, run_date, status, started_at FROM etl_runs WHERE env = $1 AND trigger <> 'replay'
             ORDER BY started_at DESC LIMIT 1",
            &[&env],
        )
        .await?;
    Ok(row.as_ref().map(run_from_row))
}

/// The newest abandoned run of `env` on JST day `date`, if any: its work is unfinished.
pub async fn abandoned_run_of_day(
    client: &impl GenericClient,
    env: &str,
    date: NaiveDate,
) -> Result<Option<Run>, DbError> {
    let row = client
        .query_opt(
            "SELECT run_id, env, run_date, status, started_at FROM etl_runs
             WHERE env = $1 AND run_date = $2 AND status = 'abandoned'
             ORDER BY started_at DESC LIMIT 1",
            &[&env, &date],
        )
        .await?;
    Ok(row.as_ref().map(run_from_row))
}

/// The jobs of a run that have succeeded.
pub async fn succeeded_jobs(
    client: &impl GenericClient,
    run_id: Uuid,
) -> Result<Vec<Job>, DbError> {
    let rows = client
        .query(
            "SELECT job FROM etl_job_runs WHERE run_id = $1 AND status = 'succeeded'",
            &[&run_id],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| Job::named(r.get::<_, &str>(0)))
        .collect())
}

pub async fn get_run(client: &impl GenericClient, run_id: Uuid) -> Result<Option<Run>, DbError> {
    let row = client
        .query_opt(
            "SELECT run_id, env, run_date, status, started_at FROM etl_runs WHERE run_id = $1",
            &[&run_id],
        )
        .await?;
    Ok(row.as_ref().map(run_from_row))
}

/// Marks a run finished (succeeded or failed).
pub async fn finish_run(
    client: &impl GenericClient,
    run_id: Uuid,
    succeeded: bool,
    error: Option<(&str, &str)>,
) -> Result<(), DbError> {
    let status = if succeeded { "succeeded" } else { "failed" };
    client
        .execute(
            "UPDATE etl_runs SET status = $2, finished_at = now(), error_type = $3, error_message = $4 WHERE run_id = $1",
            &[&run_id, &status, &error.map(|e| e.0), &error.map(|e| e.1)],
        )
        .await?;
    Ok(())
}

/// One job of one run, as started.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub run: Run,
    pub job: Job,
    /// 1 for the first start of this job in this run, +1 for each rerun.
    pub attempt: i32,
    /// Start of the job's first invocation in this run (kept across loop iterations and reruns).
    pub job_start_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    /// Invocations of this job in this run so far, this one included.
    pub invocations: i32,
    /// True when this invocation continues an unfinished one (a loop iteration or a
    /// restart after a crash) rather than starting a new attempt.
    pub continuing: bool,
    /// The Item job's queue size once built.
    pub queue_size: Option<i32>,
}

/// Starts `job` in `run`. A job run still marked running or abandoned (a loop iteration,
/// or one whose invocation died) is continued; a finished one is rerun as a new attempt. Either way
/// `job_start_at` stays the start of the first invocation.
pub async fn start_job(
    client: &impl GenericClient,
    run: &Run,
    job: Job,
    threshold: f64,
) -> Result<JobRun, DbError> {
    let now = Utc::now();
    let row = client
        .query_one(
            "WITH prev AS (SELECT status FROM etl_job_runs WHERE run_id = $1 AND job = $2)
             INSERT INTO etl_job_runs AS j (run_id, job, status, job_start_at, last_started_at, threshold)
             VALUES ($1, $2, 'running', $3, $3, $4)
             ON CONFLICT (run_id, job) DO UPDATE SET
                 status = 'running',
                 attempt = j.attempt + CASE WHEN j.status IN ('running', 'abandoned') THEN 0 ELSE 1 END,
                 invocations = j.invocations + 1, last_started_at = EXCLUDED.last_started_at,
                 requests = CASE WHEN j.status IN ('running', 'abandoned') THEN j.requests ELSE 0 END,
                 retries = CASE WHEN j.status IN ('running', 'abandoned') THEN j.retries ELSE 0 END,
                 throttled = CASE WHEN j.status IN ('running', 'abandoned') THEN j.throttled ELSE 0 END,
                 duration_ms = CASE WHEN j.status IN ('running', 'abandoned') THEN j.duration_ms END,
                 threshold = EXCLUDED.threshold, finished_at = NULL, error_type = NULL, error_message = NULL
             RETURNING attempt, job_start_at, invocations, (SELECT status FROM prev), queue_size",
            &[&run.run_id, &job.as_str(), &now, &threshold],
        )
        .await?;
    let previous: Option<String> = row.get(3);
    Ok(JobRun {
        run: run.clone(),
        job,
        attempt: row.get(0),
        job_start_at: row.get(1),
        started_at: now,
        invocations: row.get(2),
        // An abandoned job run (its process died) is continued where it stopped, like a
        // loop iteration: same attempt, same counters, same Item queue.
        continuing: matches!(previous.as_deref(), Some("running" | "abandoned")),
        queue_size: row.get(4),
    })
}

/// Marks a run running again, leased to this process (a job rerun in a run that had
/// finished, or the resumption of an abandoned run).
pub async fn reopen_run(
    client: &impl GenericClient,
    run_id: Uuid,
    lease: Duration,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE etl_runs SET status = 'running', finished_at = NULL, error_type = NULL, error_message = NULL,
                 resumed_at = CASE WHEN status = 'abandoned' THEN now() ELSE resumed_at END,
                 lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3)
             WHERE run_id = $1",
            &[&run_id, &lease::owner(), &lease.as_secs_f64()],
        )
        .await?;
    Ok(())
}

/// Marks a job run as still running after an invocation that stopped before its end
/// (the Item job's time box): counts so far and the output document.
pub async fn pause_job(
    client: &impl GenericClient,
    job_run: &JobRun,
    output: &serde_json::Value,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE etl_job_runs SET output = $3, duration_ms = coalesce(duration_ms, 0) + $4 WHERE run_id = $1 AND job = $2",
            &[&job_run.run.run_id, &job_run.job.as_str(), output, &(Utc::now() - job_run.started_at).num_milliseconds()],
        )
        .await?;
    Ok(())
}

/// A failed unit: one API request (after its retries) or one raw object.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnitFailure {
    pub unit: String,
    pub error_kind: String,
    pub http_status: Option<i32>,
    pub message: String,
    pub tries: Option<i32>,
}

/// Records failures in one statement.
pub async fn record_failures(
    client: &impl GenericClient,
    job_run: &JobRun,
    failures: &[UnitFailure],
) -> Result<(), DbError> {
    if failures.is_empty() {
        return Ok(());
    }
    let units: Vec<&str> = failures.iter().map(|f| f.unit.as_str()).collect();
    let kinds: Vec<&str> = failures.iter().map(|f| f.error_kind.as_str()).collect();
    let statuses: Vec<Option<i32>> = failures.iter().map(|f| f.http_status).collect();
    let messages: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
    let tries: Vec<Option<i32>> = failures.iter().map(|f| f.tries).collect();
    client
        .execute(
            "INSERT INTO etl_failures (run_id, job, attempt, unit, error_kind, http_status, message, tries)
             SELECT $1, $2, $3, u.unit, u.kind, u.status, u.message, u.tries
             FROM unnest($4::text[], $5::text[], $6::int4[], $7::text[], $8::int4[]) AS u(unit, kind, status, message, tries)",
            &[&job_run.run.run_id, &job_run.job.as_str(), &job_run.attempt, &units, &kinds, &statuses, &messages, &tries],
        )
        .await?;
    Ok(())
}

/// True while this attempt of the job run is still open: a transaction retried after a
/// lost commit answer checks it first, so nothing is recorded twice.
pub async fn job_is_open(client: &impl GenericClient, job_run: &JobRun) -> Result<bool, DbError> {
    let open = client
        .query_opt(
            "SELECT 1 FROM etl_job_runs WHERE run_id = $1 AND job = $2 AND attempt = $3 AND status IN ('running', 'abandoned')",
            &[&job_run.run.run_id, &job_run.job.as_str(), &job_run.attempt],
        )
        .await
        .context("checking whether the job run is still open")?;
    Ok(open.is_some())
}

/// Counts and outcome of a finished job invocation (requests are recorded as they go:
/// [`add_sent`]).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct JobCounts {
    pub attempted: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub failure_rate: f64,
    pub rows_inserted: i32,
    pub rows_updated: i32,
    pub rows_unchanged: i32,
    pub rows_deleted: i32,
    pub raw_written: i32,
    pub raw_identical: i32,
}

/// Closes a job run with its counts, status and output document.
pub async fn finish_job(
    client: &impl GenericClient,
    job_run: &JobRun,
    counts: &JobCounts,
    manifest_key: Option<&str>,
    error: Option<(&str, &str)>,
    output: &serde_json::Value,
) -> Result<(), DbError> {
    let status = if error.is_none() {
        "succeeded"
    } else {
        "failed"
    };
    let finished = Utc::now();
    let duration_ms = (finished - job_run.started_at).num_milliseconds();
    client
        .execute(
            "UPDATE etl_job_runs SET status = $3, finished_at = $4, duration_ms = coalesce(duration_ms, 0) + $5,
                 attempted = $6, succeeded = $7, failed = $8, failure_rate = $9,
                 rows_inserted = $10, rows_updated = $11, rows_unchanged = $12, rows_deleted = $13,
                 raw_written = $14, raw_identical = $15, manifest_key = $16, error_type = $17, error_message = $18,
                 output = $19
             WHERE run_id = $1 AND job = $2",
            &[
                &job_run.run.run_id,
                &job_run.job.as_str(),
                &status,
                &finished,
                &duration_ms,
                &counts.attempted,
                &counts.succeeded,
                &counts.failed,
                &counts.failure_rate,
                &counts.rows_inserted,
                &counts.rows_updated,
                &counts.rows_unchanged,
                &counts.rows_deleted,
                &counts.raw_written,
                &counts.raw_identical,
                &manifest_key,
                &error.map(|e| e.0),
                &error.map(|e| e.1),
                output,
            ],
        )
        .await?;
    Ok(())
}

/// Adds requests the job sent to its job run's counters (recorded as the job goes, so a
/// killed invocation loses at most the last few seconds' count); returns the totals.
pub async fn add_sent(
    client: &impl GenericClient,
    job_run: &JobRun,
    sent: Sent,
) -> Result<Sent, DbError> {
    let row = client
        .query_one(
            "UPDATE etl_job_runs SET requests = requests + $3, retries = retries + $4, throttled = throttled + $5
             WHERE run_id = $1 AND job = $2 RETURNING requests, retries, throttled",
            &[&job_run.run.run_id, &job_run.job.as_str(), &sent.requests, &sent.retries, &sent.throttled],
        )
        .await
        .context("recording the requests sent")?;
    Ok(Sent {
        requests: row.get(0),
        retries: row.get(1),
        throttled: row.get(2),
    })
}

/// Requests an invocation sent, as counted by the client when sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sent {
    pub requests: i32,
    pub retries: i32,
    pub throttled: i32,
}

/// Fails a job run that could not finish normally (database or store trouble mid-way),
/// keeping the requests it sent. The Item job's counters accumulate over invocations
/// (its finished batches are already counted); every other job's are this invocation's.
pub async fn abort_job(
    client: &Client,
    job_run: &JobRun,
    error_type: &str,
    message: &str,
    sent: Sent,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE etl_job_runs SET status = 'failed', finished_at = now(),
                 duration_ms = coalesce(duration_ms, 0) + (extract(epoch FROM now() - last_started_at) * 1000)::bigint,
                 error_type = $3, error_message = $4,
                 requests = requests + $5, retries = retries + $6, throttled = throttled + $7
             WHERE run_id = $1 AND job = $2",
            &[
                &job_run.run.run_id,
                &job_run.job.as_str(),
                &error_type,
                &message,
                &sent.requests,
                &sent.retries,
                &sent.throttled,
            ],
        )
        .await?;
    Ok(())
}

impl From<rakuten_client::ClientStats> for Sent {
    fn from(s: rakuten_client::ClientStats) -> Self {
        Sent {
            requests: s.requests as i32,
            retries: s.retries as i32,
            throttled: s.throttled as i32,
        }
    }
}

impl Sent {
    pub fn is_zero(&self) -> bool {
        *self == Sent::default()
    }
}
