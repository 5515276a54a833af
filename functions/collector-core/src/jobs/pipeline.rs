//! The one path every fetching job (Ranking, Item, Genre, Tag) takes, SPEC §11:
//! fetch → keep the raw body → check → load → commit → publish the manifest. Each
//! guarantee is written here once and holds for every job:
//!
//! - a body is kept (durably, verified by the store) before anything is done with it, and
//!   a different body for a unit already kept goes beside it, never over it;
//! - a request that failed after its retries is a recorded unit failure, its last
//!   malformed body kept under quarantine;
//! - the manifest is written before the verdict; over the threshold nothing more is
//!   loaded and the failed job run is recorded with its counts;
//! - the load, the failures and the job run's end commit in one transaction, retried
//!   once on a fresh connection when the connection was lost;
//! - `latest.json` points at the manifest only after that commit.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{stream, StreamExt};
use rakuten_client::{ApiError, Fetched};
use tokio_postgres::Transaction;

use crate::db::ledger::{self, JobCounts, JobRun, Sent, UnitFailure};
use crate::jobs::ranking::Finding;
use crate::rawstore::{
    FailedUnit, Latest, Manifest, ManifestEntry, ManifestVerdict, PutOutcome, RawKeys,
    RawStoreError,
};

use super::{AppContext, JobError, JobOutput, RowCounts, UnitCounts};

/// Keeps a response body under its unit's key. When a different body is already there (a
/// rerun or a resumed run got another answer), the new one goes beside it under a key
/// carrying its hash: evidence is never overwritten and never refused.
pub async fn keep(
    ctx: &AppContext,
    keys: &RawKeys,
    key_name: &str,
    unit: &str,
    body: &Bytes,
    records: u64,
) -> Result<ManifestEntry, RawStoreError> {
    let key = keys.unit(key_name);
    let (key, outcome) = match ctx.store.put_new(&key, Bytes::clone(body)).await {
        Ok(outcome) => (key, outcome),
        Err(RawStoreError::Conflict { .. }) => {
            let key = keys.revision(key_name, body);
            tracing::info!(%key, "a different answer than the one kept for this unit; kept beside it");
            let outcome = ctx.store.put_new(&key, Bytes::clone(body)).await?;
            (key, outcome)
        }
        Err(e) => return Err(e),
    };
    Ok(ManifestEntry::new(
        key,
        unit.to_string(),
        body,
        records,
        outcome,
    ))
}

/// A request that failed after its retries: the failure to record and, when its last
/// answer was a malformed body, that body kept under quarantine — every response is
/// evidence, the ones we could not read most of all.
pub async fn keep_failure(
    ctx: &AppContext,
    keys: &RawKeys,
    e: &ApiError,
    key_name: &str,
) -> Result<(UnitFailure, Option<ManifestEntry>), RawStoreError> {
    tracing::warn!(unit = e.unit().unwrap_or(key_name), kind = e.kind().as_str(), error = %e, "unit failed");
    let quarantined = match e.malformed_body() {
        Some(body) => {
            let key = keys.quarantine(key_name, body);
            let outcome = ctx.store.put_new(&key, Bytes::clone(body)).await?;
            Some(ManifestEntry::quarantine(
                key,
                e.unit().unwrap_or(key_name).to_string(),
                body,
                outcome,
                e.to_string(),
            ))
        }
        None => None,
    };
    Ok((failure_of(e, key_name), quarantined))
}

/// What a job invocation fetched and kept so far: units tried, raw objects, failures.
pub struct Evidence {
    pub keys: RawKeys,
    pub manifest: Vec<ManifestEntry>,
    pub failures: Vec<UnitFailure>,
    pub attempted: i32,
}

impl Evidence {
    pub fn new(job_run: &JobRun) -> Self {
        Self {
            keys: RawKeys::for_job_run(job_run),
            manifest: Vec::new(),
            failures: Vec::new(),
            attempted: 0,
        }
    }

    /// Keeps a successful answer's body (see [`keep`]).
    pub async fn kept<T>(
        &mut self,
        ctx: &AppContext,
        key_name: &str,
        fetched: &Fetched<T>,
        records: u64,
    ) -> Result<(), RawStoreError> {
        let entry = keep(
            ctx,
            &self.keys,
            key_name,
            &fetched.unit,
            &fetched.body,
            records,
        )
        .await?;
        self.manifest.push(entry);
        Ok(())
    }

    /// Records a unit whose request failed after its retries (see [`keep_failure`]).
    pub async fn fail(
        &mut self,
        ctx: &AppContext,
        e: &ApiError,
        key_name: &str,
    ) -> Result<(), RawStoreError> {
        let (failure, quarantined) = keep_failure(ctx, &self.keys, e, key_name).await?;
        self.manifest.extend(quarantined);
        self.failures.push(failure);
        Ok(())
    }

    /// Adds what another part of the same invocation kept (a Ranking target's pages).
    pub fn absorb(&mut self, other: Evidence) {
        self.attempted += other.attempted;
        self.manifest.extend(other.manifest);
        self.failures.extend(other.failures);
    }

    /// The invocation's verdict inputs.
    pub fn into_verdict(self) -> Verdict {
        Verdict {
            attempted: self.attempted,
            failed: self.failures.len() as i32,
            first_failure: self
                .failures
                .first()
                .map(|f| describe_failure(&f.unit, &f.message)),
            unrecorded: self.failures,
            manifest: self.manifest,
            extra: BTreeMap::new(),
        }
    }
}

/// Requests every unit (`concurrency` in flight; the client's limiters set the pace) and
/// keeps each answer's body as soon as it arrives. Returns the answers whose bodies were
/// kept, in `units` order; failures are recorded in `evidence`.
pub async fn fetch_each<'u, U, T, Req, Fut>(
    ctx: &AppContext,
    evidence: &mut Evidence,
    units: &'u [U],
    concurrency: usize,
    request: Req,
    key_name: impl Fn(&U) -> String,
    records: impl Fn(&T) -> u64,
) -> Result<Vec<(&'u U, T)>, RawStoreError>
where
    Req: Fn(&'u U) -> Fut,
    Fut: std::future::Future<Output = Result<Fetched<T>, ApiError>>,
{
    // Futures are built eagerly: a closure inside the stream trips the Send check.
    let fetches: Vec<_> = units
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let fut = request(u);
            async move { (i, fut.await) }
        })
        .collect();
    let mut results = stream::iter(fetches).buffer_unordered(concurrency);
    let mut answers = Vec::new();
    while let Some((i, result)) = results.next().await {
        evidence.attempted += 1;
        let key_name = key_name(&units[i]);
        match result {
            Ok(f) => {
                evidence
                    .kept(ctx, &key_name, &f, records(&f.parsed))
                    .await?;
                answers.push((i, f.parsed));
            }
            Err(e) => evidence.fail(ctx, &e, &key_name).await?,
        }
    }
    answers.sort_by_key(|(i, _)| *i);
    Ok(answers.into_iter().map(|(i, t)| (&units[i], t)).collect())
}

/// Everything the verdict on a job run needs.
pub struct Verdict {
    pub attempted: i32,
    pub failed: i32,
    pub first_failure: Option<String>,
    /// Failures not yet in the ledger (Item records its own batch by batch).
    pub unrecorded: Vec<UnitFailure>,
    /// Every object the job run kept, for its manifest.
    pub manifest: Vec<ManifestEntry>,
    /// Job-specific counts for the output (`targets`, `missing`, `queued`, …).
    pub extra: BTreeMap<String, i64>,
}

impl Verdict {
    pub fn failure_rate(&self) -> f64 {
        if self.attempted == 0 {
            0.0
        } else {
            f64::from(self.failed) / f64::from(self.attempted)
        }
    }
}

/// What a job's load returns.
#[derive(Debug, Default)]
pub struct Loaded {
    pub rows: BTreeMap<String, RowCounts>,
    /// Incomplete snapshots, one line each (Ranking).
    pub incomplete: Vec<String>,
    /// Quality findings on the loaded data (Ranking).
    pub quality: Vec<Finding>,
    /// Set when a finding is severe: the rows stay committed, flagged, and the job run
    /// fails with `DataQualityFailed`.
    pub violation: Option<String>,
}

/// Rows and when they were observed: now for a live job, when the job run loaded them for
/// a replay. Loads never let an earlier observation overwrite a later one.
pub struct Observed<T> {
    pub rows: T,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl<T> Observed<T> {
    pub fn now(rows: T) -> Self {
        Self {
            rows,
            at: chrono::Utc::now(),
        }
    }
}

/// A job's load: its rows (`D`) into the database, inside the job's commit.
pub type LoadFn<D> =
    for<'t> fn(&'t Transaction<'t>, &'t JobRun, &'t D) -> BoxFuture<'t, Result<Loaded, JobError>>;

/// Writes the manifest, judges the failure rate and, below the threshold, runs `load`,
/// records the failures and closes the job run in one transaction, then publishes.
/// Over the threshold `load` is not called and `FailureRateExceeded` is returned.
pub async fn conclude<D: Sync + ?Sized>(
    ctx: &AppContext,
    job_run: &JobRun,
    verdict: Verdict,
    threshold: f64,
    started: Instant,
    data: &D,
    load: LoadFn<D>,
) -> Result<JobOutput, JobError> {
    let failure_rate = verdict.failure_rate();
    let (attempted, failed) = (verdict.attempted, verdict.failed);
    let raw_written = verdict
        .manifest
        .iter()
        .filter(|m| m.outcome == PutOutcome::Created)
        .count() as i32;
    let raw_identical = verdict.manifest.len() as i32 - raw_written;
    let keys = RawKeys::for_job_run(job_run);
    let judged = ManifestVerdict {
        attempted,
        failed,
        threshold,
        failures: verdict
            .unrecorded
            .iter()
            .map(|f| FailedUnit {
                unit: f.unit.clone(),
                error_kind: f.error_kind.clone(),
            })
            .collect(),
    };
    let manifest_key = Manifest::new(job_run, verdict.manifest, failed == 0)
        .with_verdict(judged)
        .write(ctx.store.as_ref(), &keys)
        .await?;
    let counts = JobCounts {
        attempted,
        succeeded: attempted - failed,
        failed,
        failure_rate,
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
        // Set when the job run closes: the job run's totals.
        requests: 0,
        retries: 0,
        throttled: 0,
        rows: BTreeMap::new(),
        raw_written,
        raw_identical,
        manifest_key: Some(manifest_key),
        snapshot_date: Some(job_run.run.run_date),
        duration_ms: 0,
        incomplete: Vec::new(),
        quality: Vec::new(),
        extra: verdict.extra,
    };
    // What the job sent and has not recorded yet goes into the closing transaction.
    let scope = ctx.rakuten.current_scope().unwrap_or_default();
    let taken = scope.take_unrecorded();
    let mut closing = Closing {
        job_run,
        sent: Sent::from(taken),
        counts,
        output,
        failures: verdict.unrecorded,
        error: None,
        started,
        data,
        load,
    };

    if failure_rate > threshold {
        let err = JobError::FailureRateExceeded {
            job: job_run.job.as_str().into(),
            failed,
            attempted,
            failure_rate,
            threshold,
            first_failure: verdict.first_failure,
        };
        closing.error = Some((err.error_type(), err.to_string()));
        closing.output.status = "failed".into();
        ctx.transact("recording the failed job run", &closing, close_job::<D>)
            .await
            .inspect_err(|_| scope.give_back(taken))?;
        tracing::error!(run_id = %job_run.run.run_id, job = %job_run.job, failed, attempted, "failure rate exceeded");
        return Err(err);
    }
    let output = ctx
        .transact("loading the job's rows", &closing, close_job::<D>)
        .await
        .inspect_err(|_| scope.give_back(taken))?;
    if let Some(e) = output.quality_violation() {
        // Committed and recorded failed; latest.json keeps pointing at the last good run.
        tracing::error!(run_id = %job_run.run.run_id, job = %job_run.job, error = %e, "severe data quality finding");
        return Err(e);
    }
    publish(ctx, &output, job_run).await?;
    Ok(output)
}

/// A job run being closed: with its load (succeeded) or without (`error`).
struct Closing<'a, D: ?Sized> {
    job_run: &'a JobRun,
    /// Requests not recorded yet.
    sent: Sent,
    counts: JobCounts,
    output: JobOutput,
    failures: Vec<UnitFailure>,
    error: Option<(&'static str, String)>,
    started: Instant,
    data: &'a D,
    load: LoadFn<D>,
}

/// One transaction: the load (unless failed), the failures, the job run's end.
fn close_job<'t, 'a, D: Sync + ?Sized>(
    tx: &'t Transaction<'t>,
    c: &'t Closing<'a, D>,
) -> BoxFuture<'t, Result<JobOutput, JobError>> {
    Box::pin(async move {
        let mut out = c.output.clone();
        let mut counts = c.counts.clone();
        let mut error = c.error.as_ref().map(|(t, m)| (*t, m.clone()));
        if !ledger::job_is_open(tx, c.job_run).await? {
            // A retry after a commit whose answer was lost: it is all in already.
            return Ok(out);
        }
        if c.error.is_none() {
            let loaded = (c.load)(tx, c.job_run, c.data).await?;
            out.rows = loaded.rows;
            out.incomplete = loaded.incomplete;
            out.quality = loaded.quality;
            if let Some(v) = loaded.violation {
                out.status = "failed".into();
                error = Some(("DataQualityFailed", v));
            }
            let total = out.total_rows();
            counts.rows_inserted = total.inserted;
            counts.rows_updated = total.updated;
            counts.rows_unchanged = total.unchanged;
            counts.rows_deleted = total.deleted;
        }
        out.duration_ms = c.started.elapsed().as_millis() as i64;
        let total = ledger::add_sent(tx, c.job_run, c.sent).await?;
        (out.requests, out.retries, out.throttled) = (
            total.requests as u64,
            total.retries as u64,
            total.throttled as u64,
        );
        ledger::record_failures(tx, c.job_run, &c.failures).await?;
        let doc = serde_json::to_value(&out).expect("output serialises");
        let error = error.as_ref().map(|(t, m)| (*t, m.as_str()));
        ledger::finish_job(
            tx,
            c.job_run,
            &counts,
            out.manifest_key.as_deref(),
            error,
            &doc,
        )
        .await?;
        Ok(out)
    })
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
    UnitFailure {
        unit: e.unit().unwrap_or(fallback_unit).to_string(),
        error_kind: e.kind().as_str().to_string(),
        http_status: e.http_status().map(i32::from),
        message: e.to_string(),
        tries: Some(e.attempts() as i32),
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
