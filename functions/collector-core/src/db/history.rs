//! Run history for operators (`collector runs`, `collector runs show`): read-only queries
//! over the ledger (`etl_runs`, `etl_job_runs`, `etl_failures`) and the snapshot table.

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::{DbError, DbResultExt};

/// One run and its job runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    pub run_id: Uuid,
    pub env: String,
    pub run_date: NaiveDate,
    pub trigger: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub resumed_at: Option<DateTime<Utc>>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub jobs: Vec<JobRecord>,
    /// Snapshots of the run's date that are not complete / are stale.
    pub incomplete_snapshots: i64,
    pub stale_snapshots: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRecord {
    pub job: String,
    pub status: String,
    pub attempt: i32,
    pub invocations: i32,
    pub duration_ms: Option<i64>,
    pub attempted: i32,
    pub failed: i32,
    pub failure_rate: f64,
    pub requests: i32,
    pub retries: i32,
    pub throttled: i32,
    pub rows_inserted: i32,
    pub rows_updated: i32,
    pub manifest_key: Option<String>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    /// Quality findings the job recorded in its output (Ranking), one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<String>,
}

/// Failures of one kind in a run: how many, and a few examples.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailureGroup {
    pub job: String,
    pub error_kind: String,
    pub count: i64,
    pub examples: Vec<String>,
}

/// A snapshot of the run's date that is not a clean new day.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotNote {
    pub ranking_genre_id: i64,
    pub period: String,
    pub complete: bool,
    pub missing_ranks: Option<String>,
    pub stale: bool,
}

const RUN_COLUMNS: &str = "r.run_id, r.env, r.run_date, r.trigger, r.status, r.started_at, r.finished_at,
     r.resumed_at, r.error_type, r.error_message,
     (SELECT count(*) FROM rakuten_ranking_snapshots s WHERE s.snapshot_date = r.run_date AND NOT s.complete),
     (SELECT count(*) FROM rakuten_ranking_snapshots s WHERE s.snapshot_date = r.run_date AND s.stale)";

const JOB_COLUMNS: &str = "run_id, job, status, attempt, invocations, duration_ms, attempted, failed,
     failure_rate, requests, retries, throttled, rows_inserted, rows_updated, manifest_key, error_type, error_message,
     output->'quality'";

/// The newest `limit` runs of `env`, newest first, with their job runs.
pub async fn recent_runs(
    client: &impl GenericClient,
    env: &str,
    limit: i64,
) -> Result<Vec<RunRecord>, DbError> {
    let rows = client
        .query(
            &format!("SELECT {RUN_COLUMNS} FROM etl_runs r WHERE r.env = $1 ORDER BY r.started_at DESC LIMIT $2"),
            &[&env, &limit],
        )
        .await
        .context("reading the recent runs")?;
    let mut runs: Vec<RunRecord> = rows.iter().map(run_of).collect();
    let ids: Vec<Uuid> = runs.iter().map(|r| r.run_id).collect();
    let jobs = client
        .query(
            &format!("SELECT {JOB_COLUMNS} FROM etl_job_runs WHERE run_id = ANY($1) ORDER BY job_start_at"),
            &[&ids],
        )
        .await
        .context("reading the runs' jobs")?;
    for j in &jobs {
        let run_id: Uuid = j.get(0);
        if let Some(run) = runs.iter_mut().find(|r| r.run_id == run_id) {
            run.jobs.push(job_of(j));
        }
    }
    Ok(runs)
}

/// One run (any env), or None.
pub async fn run(client: &impl GenericClient, run_id: Uuid) -> Result<Option<RunRecord>, DbError> {
    let row = client
        .query_opt(
            &format!("SELECT {RUN_COLUMNS} FROM etl_runs r WHERE r.run_id = $1"),
            &[&run_id],
        )
        .await
        .context("reading the run")?;
    let Some(row) = row else { return Ok(None) };
    let mut run = run_of(&row);
    let jobs = client
        .query(
            &format!(
                "SELECT {JOB_COLUMNS} FROM etl_job_runs WHERE run_id = $1 ORDER BY job_start_at"
            ),
            &[&run_id],
        )
        .await
        .context("reading the run's jobs")?;
    run.jobs = jobs.iter().map(job_of).collect();
    Ok(Some(run))
}

/// The run's failures grouped by job and kind (latest attempt of each job), with up to
/// `examples` examples each.
pub async fn failures(
    client: &impl GenericClient,
    run_id: Uuid,
    examples: i64,
) -> Result<Vec<FailureGroup>, DbError> {
    let rows = client
        .query(
            "SELECT f.job, f.error_kind, count(*),
                    (array_agg(f.unit || ': ' || f.message ORDER BY f.failure_id))[1:$2]
             FROM etl_failures f JOIN etl_job_runs j USING (run_id, job)
             WHERE f.run_id = $1 AND f.attempt = j.attempt
             GROUP BY f.job, f.error_kind ORDER BY f.job, count(*) DESC",
            &[&run_id, &(examples as i32)],
        )
        .await
        .context("reading the run's failures")?;
    Ok(rows
        .iter()
        .map(|r| FailureGroup {
            job: r.get(0),
            error_kind: r.get(1),
            count: r.get(2),
            examples: r.get(3),
        })
        .collect())
}

/// Snapshots of the run's date that are incomplete or stale.
pub async fn snapshot_notes(
    client: &impl GenericClient,
    run_date: NaiveDate,
) -> Result<Vec<SnapshotNote>, DbError> {
    let rows = client
        .query(
            "SELECT ranking_genre_id, period, complete, missing_ranks, stale FROM rakuten_ranking_snapshots
             WHERE snapshot_date = $1 AND (NOT complete OR stale) ORDER BY ranking_genre_id, period",
            &[&run_date],
        )
        .await
        .context("reading the day's snapshots")?;
    Ok(rows
        .iter()
        .map(|r| SnapshotNote {
            ranking_genre_id: r.get(0),
            period: r.get(1),
            complete: r.get(2),
            missing_ranks: r.get(3),
            stale: r.get(4),
        })
        .collect())
}

fn run_of(r: &tokio_postgres::Row) -> RunRecord {
    RunRecord {
        run_id: r.get(0),
        env: r.get(1),
        run_date: r.get(2),
        trigger: r.get(3),
        status: r.get(4),
        started_at: r.get(5),
        finished_at: r.get(6),
        resumed_at: r.get(7),
        error_type: r.get(8),
        error_message: r.get(9),
        jobs: Vec::new(),
        incomplete_snapshots: r.get(10),
        stale_snapshots: r.get(11),
    }
}

fn job_of(j: &tokio_postgres::Row) -> JobRecord {
    JobRecord {
        job: j.get(1),
        status: j.get(2),
        attempt: j.get(3),
        invocations: j.get(4),
        duration_ms: j.get(5),
        attempted: j.get(6),
        failed: j.get(7),
        failure_rate: j.get(8),
        requests: j.get(9),
        retries: j.get(10),
        throttled: j.get(11),
        rows_inserted: j.get(12),
        rows_updated: j.get(13),
        manifest_key: j.get(14),
        error_type: j.get(15),
        error_message: j.get(16),
        quality: j
            .get::<_, Option<serde_json::Value>>(17)
            .and_then(|v| serde_json::from_value::<Vec<crate::jobs::ranking::Finding>>(v).ok())
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}
