//! The bookkeeping every fetching job shares: store each response raw before anything
//! else, count units and failures, write the manifest, apply the failure threshold, and
//! close the job run in the same transaction as the job's load.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use rakuten_client::{ApiError, ClientStats};
use tokio_postgres::Transaction;

use crate::db::ledger::{self, JobCounts, JobRun, UnitFailure};
use crate::rawstore::{Latest, Manifest, ManifestEntry, PutOutcome, RawKeys, RawStoreError};

use super::{AppContext, JobError, JobOutput, RowCounts, UnitCounts};

/// Units, raw objects and failures of one job invocation.
pub struct Tally {
    pub keys: RawKeys,
    pub manifest: Vec<ManifestEntry>,
    pub failures: Vec<UnitFailure>,
    pub attempted: i32,
    stats_before: ClientStats,
    started: Instant,
}

impl Tally {
    pub fn new(ctx: &AppContext, job_run: &JobRun) -> Self {
        Self {
            keys: RawKeys::for_job_run(job_run),
            manifest: Vec::new(),
            failures: Vec::new(),
            attempted: 0,
            stats_before: ctx.rakuten.current_stats(),
            started: Instant::now(),
        }
    }

    /// Stores a response body under `slug`. A different body already stored under the key
    /// (a rerun that got another answer) is recorded as a failed unit and returns false;
    /// any other store error stops the job.
    pub async fn store_raw(
        &mut self,
        ctx: &AppContext,
        slug: &str,
        unit: &str,
        body: &Bytes,
        records: u64,
        tries: u32,
    ) -> Result<bool, RawStoreError> {
        let key = self.keys.unit(slug);
        match ctx.store.put_new(&key, Bytes::clone(body)).await {
            Ok(outcome) => {
                self.manifest.push(ManifestEntry::new(
                    key,
                    unit.to_string(),
                    body,
                    records,
                    outcome,
                ));
                Ok(true)
            }
            Err(e @ RawStoreError::Conflict { .. }) => {
                self.failures.push(UnitFailure {
                    unit: unit.to_string(),
                    error_kind: "raw_conflict".into(),
                    http_status: None,
                    message: e.to_string(),
                    tries: Some(tries as i32),
                });
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Records a unit whose request failed after its retries. A malformed body it got (the
    /// last one) is kept under a quarantine key and listed in the manifest: every response
    /// is evidence, the ones we could not read most of all.
    pub async fn fail(
        &mut self,
        ctx: &AppContext,
        e: &ApiError,
        slug: &str,
    ) -> Result<(), RawStoreError> {
        tracing::warn!(unit = e.unit().unwrap_or(slug), kind = e.kind().as_str(), error = %e, "unit failed");
        if let Some(body) = e.malformed_body() {
            let key = self.keys.quarantine(slug, body);
            let outcome = ctx.store.put_new(&key, Bytes::clone(body)).await?;
            self.manifest.push(ManifestEntry::quarantine(
                key,
                e.unit().unwrap_or(slug).to_string(),
                body,
                outcome,
                e.to_string(),
            ));
        }
        self.failures.push(failure_of(e, slug));
        Ok(())
    }

    pub fn failed(&self) -> i32 {
        self.failures.len() as i32
    }

    /// Writes the manifest and applies the threshold. Over it, the failures and the failed
    /// job run are recorded and `FailureRateExceeded` returned; nothing is loaded.
    pub async fn check(
        self,
        ctx: &AppContext,
        job_run: &JobRun,
        threshold: f64,
    ) -> Result<Checked, JobError> {
        let failed = self.failed();
        let attempted = self.attempted;
        let failure_rate = if attempted == 0 {
            0.0
        } else {
            f64::from(failed) / f64::from(attempted)
        };
        let stats = ctx.rakuten.current_stats();
        let raw_written = self
            .manifest
            .iter()
            .filter(|m| m.outcome == PutOutcome::Created)
            .count() as i32;
        let raw_identical = self.manifest.len() as i32 - raw_written;
        let manifest_key = Manifest::new(job_run, self.manifest, failed == 0)
            .write(ctx.store.as_ref(), &self.keys)
            .await?;
        let counts = JobCounts {
            attempted,
            succeeded: attempted - failed,
            failed,
            failure_rate,
            requests: (stats.requests - self.stats_before.requests) as i32,
            retries: (stats.retries - self.stats_before.retries) as i32,
            throttled: (stats.throttled - self.stats_before.throttled) as i32,
            raw_written,
            raw_identical,
            ..Default::default()
        };
        let output = JobOutput {
            job: job_run.job.as_str().into(),
            run_id: job_run.run.run_id,
            attempt: job_run.attempt,
            status: "succeeded".into(),
            done: true,
            units: UnitCounts {
                attempted,
                succeeded: attempted - failed,
                failed,
            },
            failure_rate,
            threshold,
            requests: stats.requests - self.stats_before.requests,
            retries: stats.retries - self.stats_before.retries,
            throttled: stats.throttled - self.stats_before.throttled,
            rows: BTreeMap::new(),
            raw_written,
            raw_identical,
            manifest_key: Some(manifest_key.clone()),
            snapshot_date: Some(job_run.run.run_date),
            duration_ms: 0,
            incomplete: Vec::new(),
            extra: BTreeMap::new(),
        };
        let checked = Checked {
            job_run: job_run.clone(),
            counts,
            output,
            failures: self.failures,
            manifest_key,
            started: self.started,
        };
        if failure_rate > threshold {
            return Err(checked.reject(ctx).await);
        }
        Ok(checked)
    }
}

/// A job invocation that passed its threshold, ready to be committed with its load.
pub struct Checked {
    pub job_run: JobRun,
    pub counts: JobCounts,
    pub output: JobOutput,
    pub failures: Vec<UnitFailure>,
    pub manifest_key: String,
    started: Instant,
}

impl Checked {
    async fn reject(mut self, ctx: &AppContext) -> JobError {
        let c = &self.counts;
        let err = JobError::FailureRateExceeded {
            job: self.job_run.job.as_str().into(),
            failed: c.failed,
            attempted: c.attempted,
            failure_rate: c.failure_rate,
            threshold: self.output.threshold,
            first_failure: self
                .failures
                .first()
                .map(|f| describe_failure(&f.unit, &f.message)),
        };
        self.output.status = "failed".into();
        self.output.duration_ms = self.started.elapsed().as_millis() as i64;
        let recorded = async {
            let mut guard = ctx.db().await?;
            let db = guard.as_mut().expect("connected");
            let tx = db.client.transaction().await?;
            ledger::record_failures(&tx, &self.job_run, &self.failures).await?;
            let doc = serde_json::to_value(&self.output).expect("output serialises");
            ledger::finish_job(
                &tx,
                &self.job_run,
                &self.counts,
                Some(&self.manifest_key),
                Some((err.error_type(), &err.to_string())),
                &doc,
            )
            .await?;
            tx.commit().await?;
            Ok::<_, JobError>(())
        }
        .await;
        match recorded {
            Ok(()) => {
                tracing::error!(run_id = %self.job_run.run.run_id, job = %self.job_run.job, failed = c.failed, attempted = c.attempted, "failure rate exceeded");
                err
            }
            Err(db_err) => db_err,
        }
    }

    /// Inside the job's load transaction: records the failures and closes the job run.
    pub async fn commit(
        mut self,
        tx: &Transaction<'_>,
        rows: BTreeMap<String, RowCounts>,
    ) -> Result<JobOutput, JobError> {
        self.output.rows = rows;
        let total = self.output.total_rows();
        self.counts.rows_inserted = total.inserted;
        self.counts.rows_updated = total.updated;
        self.counts.rows_unchanged = total.unchanged;
        self.counts.rows_deleted = total.deleted;
        self.output.duration_ms = self.started.elapsed().as_millis() as i64;
        ledger::record_failures(tx, &self.job_run, &self.failures).await?;
        let doc = serde_json::to_value(&self.output).expect("output serialises");
        ledger::finish_job(
            tx,
            &self.job_run,
            &self.counts,
            Some(&self.manifest_key),
            None,
            &doc,
        )
        .await?;
        Ok(self.output)
    }
}

/// After the load committed: point latest.json at the manifest.
pub async fn publish(ctx: &AppContext, out: &JobOutput, job_run: &JobRun) -> Result<(), JobError> {
    if let Some(key) = &out.manifest_key {
        Latest::record(ctx.store.as_ref(), job_run, key).await?;
    }
    tracing::info!(
        run_id = %out.run_id, job = %out.job, attempted = out.units.attempted, failed = out.units.failed,
        requests = out.requests, rows = ?out.total_rows(), duration_ms = out.duration_ms,
        "job succeeded"
    );
    Ok(())
}

pub fn failure_of(e: &ApiError, fallback_unit: &str) -> UnitFailure {
    let tries = Some(e.attempts() as i32);
    UnitFailure {
        unit: e.unit().unwrap_or(fallback_unit).to_string(),
        error_kind: e.kind().as_str().to_string(),
        http_status: e.http_status().map(i32::from),
        message: e.to_string(),
        tries,
    }
}

/// A failure for messages: the unit, then what happened (client errors already name their unit).
pub fn describe_failure(unit: &str, message: &str) -> String {
    if message.contains(unit) {
        message.to_string()
    } else {
        format!("{unit}: {message}")
    }
}
