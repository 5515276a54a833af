//! JOB-A-01, IsActive: one transaction that marks an item active when it appeared in a
//! ranking within the active window (JST dates, the run's date included) and inactive
//! otherwise. Before it changes anything it checks the evidence rule: this run's Ranking
//! and Item manifests must exist in the raw store (S3 is the source of truth), else it
//! refuses with `EvidenceMissing` and changes nothing. No API calls, so no failure rate:
//! it fails only when its SQL (or the evidence check) does.

pub(crate) mod store;

use std::collections::BTreeMap;
use std::time::Instant;

use crate::db::ledger::{self, JobCounts, JobRun};
use crate::jobs::Job;
use crate::rawstore::{Manifest, RawKeys};

use super::{
    lifecycle, pipeline, AppContext, JobError, JobOutput, RowCounts, RunInput, UnitCounts,
};

pub async fn run(ctx: &AppContext, input: RunInput) -> Result<JobOutput, JobError> {
    lifecycle::run_job(
        ctx,
        Some(input.run_id),
        Job::IsActive,
        false,
        |job_run| async move { execute(ctx, &job_run).await },
    )
    .await
}

/// The evidence rule: the run's Ranking and Item job runs succeeded and their manifests
/// are in the raw store, readable and about this run.
async fn check_evidence(ctx: &AppContext, job_run: &JobRun) -> Result<Vec<String>, JobError> {
    let run_id = job_run.run.run_id;
    let rows = {
        let guard = ctx.db().await?;
        guard.client
            .query("SELECT job, status, manifest_key FROM etl_job_runs WHERE run_id = $1 AND job IN ('ranking', 'item')", &[&run_id])
            .await?
    };
    let mut keys = Vec::new();
    for job in [Job::Ranking, Job::Item] {
        let row = rows.iter().find(|r| r.get::<_, String>(0) == job.as_str());
        let key = match row {
            None => {
                return Err(JobError::EvidenceMissing(format!(
                    "run {run_id} has no {job} job run"
                )))
            }
            Some(r) if r.get::<_, String>(1) != "succeeded" => {
                return Err(JobError::EvidenceMissing(format!(
                    "the {job} job of run {run_id} has not succeeded (status {})",
                    r.get::<_, String>(1)
                )))
            }
            Some(r) => r.get::<_, Option<String>>(2).ok_or_else(|| {
                JobError::EvidenceMissing(format!(
                    "the {job} job of run {run_id} recorded no manifest"
                ))
            })?,
        };
        let body = ctx.store.get(&key).await?.ok_or_else(|| {
            JobError::EvidenceMissing(format!(
                "the {job} manifest {key} of run {run_id} is not in the raw store {}",
                ctx.store.describe()
            ))
        })?;
        let manifest: Manifest = serde_json::from_slice(&body).map_err(|e| {
            JobError::EvidenceMissing(format!("the {job} manifest {key} is unreadable: {e}"))
        })?;
        if manifest.run_id != run_id || manifest.job != job.as_str() {
            return Err(JobError::EvidenceMissing(format!(
                "{key} is not the {job} manifest of run {run_id}"
            )));
        }
        keys.push(key);
    }
    Ok(keys)
}

async fn execute(ctx: &AppContext, job_run: &JobRun) -> Result<JobOutput, JobError> {
    let started = Instant::now();
    let evidence = check_evidence(ctx, job_run).await?;
    let window = i32::try_from(ctx.config.active_window_days).expect("window fits i32");

    let mut db = ctx.db().await?;
    let tx = db.client.transaction().await?;
    let (total, activated, deactivated) =
        store::mark_active(&tx, job_run.run.run_date, window).await?;
    let unchanged = total - activated - deactivated;
    let rows = RowCounts {
        inserted: 0,
        updated: (activated + deactivated) as i32,
        unchanged: unchanged as i32,
        deleted: 0,
    };

    // The job's manifest records the evidence it relied on (it stores no objects itself).
    let keys = RawKeys::for_job_run(job_run);
    let manifest_key = Manifest::new(job_run, Vec::new(), true)
        .write(ctx.store.as_ref(), &keys)
        .await?;
    let output = JobOutput {
        job: Job::IsActive.as_str().into(),
        run_id: job_run.run.run_id,
        attempt: job_run.attempt,
        status: "succeeded".into(),
        done: true,
        units: UnitCounts::default(),
        failure_rate: 0.0,
        threshold: 0.0,
        requests: 0,
        retries: 0,
        throttled: 0,
        rows: BTreeMap::from([("rakuten_items".to_string(), rows)]),
        raw_written: 0,
        raw_identical: 0,
        manifest_key: Some(manifest_key.clone()),
        snapshot_date: Some(job_run.run.run_date),
        duration_ms: started.elapsed().as_millis() as i64,
        incomplete: Vec::new(),
        quality: Vec::new(),
        extra: BTreeMap::from([
            ("activated".to_string(), activated),
            ("deactivated".to_string(), deactivated),
            ("unchanged".to_string(), unchanged),
            ("window_days".to_string(), i64::from(window)),
        ]),
    };
    let counts = JobCounts {
        rows_updated: rows.updated,
        rows_unchanged: rows.unchanged,
        ..Default::default()
    };
    let doc = serde_json::to_value(&output).expect("output serialises");
    ledger::finish_job(&tx, job_run, &counts, Some(&manifest_key), None, &doc).await?;
    tx.commit().await?;
    drop(db);
    tracing::info!(evidence = ?evidence, activated, deactivated, unchanged, "is_active applied");
    pipeline::publish(ctx, &output, job_run).await?;
    Ok(output)
}
