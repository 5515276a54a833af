//! Replay (SPEC §11): rebuilds the data tables from the raw store, no API call. Each job
//! run's manifest is read, every listed object is checked against it (size, SHA-256) and
//! the bodies go through exactly the parsers and loads the jobs use. Job runs are replayed
//! in the order their manifests were written, each as observed then (the manifest's
//! time), and loads never let an earlier observation overwrite a later one: replaying a
//! range twice changes nothing. A missing or damaged object is reported and its unit is
//! not loaded; a job run that was over its failure threshold live loaded nothing, and is
//! skipped the same way. Every replayed run is in the ledger with trigger `replay`.

mod load;
mod store;
pub mod units;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use bytes::Bytes;
use chrono::NaiveDate;
use futures_util::{stream, StreamExt};
use tokio_postgres::{Client, GenericClient, Transaction};
use uuid::Uuid;

use crate::config::StalePolicy;
use crate::db::ledger::{self, JobCounts, JobRun, Run};
use crate::jobs::Job;
use crate::rawstore::verify::{read_entry, Problem};
use crate::rawstore::{Manifest, ManifestEntry, RawKeys, RawStore};

use super::ranking::Finding;
use super::{JobError, RowCounts};

/// Objects read from the store at once.
const PARALLEL_READS: usize = 16;

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub env: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// In jobnet order; `IsActive` recomputes the active flags as of its run's date.
    pub jobs: Vec<Job>,
    /// Load everything in one transaction and roll it back: the counts say what would change.
    pub dry_run: bool,
}

/// The settings a load depends on (the rest of the configuration is not needed).
#[derive(Debug, Clone, Copy)]
pub struct ReplaySettings {
    pub stale_policy: StalePolicy,
    pub active_window_days: u32,
}

/// One job run's manifest, replayed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ManifestReplay {
    pub manifest: String,
    pub job: String,
    /// The run that fetched the bodies.
    pub source_run_id: Uuid,
    pub run_date: NaiveDate,
    /// Response bodies the manifest lists (quarantined ones are never loaded).
    pub units: usize,
    pub bytes: u64,
    /// Why nothing of it was loaded, when so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub rows: BTreeMap<String, RowCounts>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<Finding>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayReport {
    pub store: String,
    pub env: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub dry_run: bool,
    pub manifests: Vec<ManifestReplay>,
    /// Manifests that could not be read at all.
    pub bad_manifests: Vec<Problem>,
    /// The ledger runs (trigger `replay`) this replay recorded, one per source run.
    pub replay_runs: Vec<Uuid>,
    pub duration_ms: u64,
}

impl ReplayReport {
    /// Rows per table over every manifest.
    pub fn rows(&self) -> BTreeMap<String, RowCounts> {
        let mut total: BTreeMap<String, RowCounts> = BTreeMap::new();
        for m in &self.manifests {
            for (table, r) in &m.rows {
                total.entry(table.clone()).or_default().add(*r);
            }
        }
        total
    }

    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.bad_manifests
            .iter()
            .chain(self.manifests.iter().flat_map(|m| m.problems.iter()))
    }

    pub fn units(&self) -> usize {
        self.manifests.iter().map(|m| m.units).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.manifests.iter().map(|m| m.bytes).sum()
    }
}

/// Replays the manifests of `request` from `store` into the database behind `client`
/// (migrated). `progress` is called after each manifest.
pub async fn replay(
    client: &mut Client,
    store: &dyn RawStore,
    settings: ReplaySettings,
    request: &ReplayRequest,
    mut progress: impl FnMut(usize, usize, &ManifestReplay),
) -> Result<ReplayReport, JobError> {
    let started = Instant::now();
    let (manifests, bad_manifests) = find(store, request).await?;
    let mut report = ReplayReport {
        store: store.describe(),
        env: request.env.clone(),
        from: request.from,
        to: request.to,
        dry_run: request.dry_run,
        manifests: Vec::new(),
        bad_manifests,
        replay_runs: Vec::new(),
        duration_ms: 0,
    };
    // A dry run loads everything in one transaction (later days see earlier ones, as in a
    // real replay) and rolls it back; a real one commits each job run's load on its own.
    if request.dry_run {
        let mut outer = client.transaction().await?;
        replay_all(
            &mut outer,
            store,
            settings,
            manifests,
            &mut report,
            &mut progress,
        )
        .await?;
        outer.rollback().await?;
        report.replay_runs.clear();
    } else {
        replay_all(
            client,
            store,
            settings,
            manifests,
            &mut report,
            &mut progress,
        )
        .await?;
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Replays `manifests` in order, each job run's load in a transaction of its own.
async fn replay_all<C: GenericClient>(
    client: &mut C,
    store: &dyn RawStore,
    settings: ReplaySettings,
    manifests: Vec<(String, Manifest)>,
    report: &mut ReplayReport,
    progress: &mut impl FnMut(usize, usize, &ManifestReplay),
) -> Result<(), JobError> {
    let mut runs: HashMap<Uuid, Run> = HashMap::new();
    let total = manifests.len();
    for (i, (key, manifest)) in manifests.into_iter().enumerate() {
        let tx = client.transaction().await?;
        let run = match runs.get(&manifest.run_id) {
            Some(run) => run.clone(),
            None => {
                let run = store::open_replay_run(&tx, &manifest).await?;
                report.replay_runs.push(run.run_id);
                runs.insert(manifest.run_id, run.clone());
                run
            }
        };
        let done = replay_manifest(&tx, store, settings, &run, &key, &manifest).await?;
        tx.commit().await?;
        progress(i + 1, total, &done);
        report.manifests.push(done);
    }
    let tx = client.transaction().await?;
    for (source, run) in &runs {
        let problems = report
            .manifests
            .iter()
            .filter(|m| m.source_run_id == *source)
            .map(|m| m.problems.len())
            .sum::<usize>();
        store::close_replay_run(&tx, run.run_id, problems).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The manifests of the request, oldest first (the order they were loaded live), and
/// the ones that could not be read.
async fn find(
    store: &dyn RawStore,
    request: &ReplayRequest,
) -> Result<(Vec<(String, Manifest)>, Vec<Problem>), JobError> {
    let mut found = Vec::new();
    let mut bad = Vec::new();
    let mut date = request.from;
    while date <= request.to {
        for &job in &request.jobs {
            for key in store
                .list(&RawKeys::date_prefix(&request.env, job, date))
                .await?
            {
                let top_level_manifest =
                    RawKeys::parse(&key).is_some_and(|p| p.is_manifest() && !p.name.contains('/'));
                if !top_level_manifest {
                    continue;
                }
                match Manifest::read(store, &key).await {
                    Ok(m) => found.push((key, m)),
                    Err(e) => bad.push(Problem::BadManifest {
                        key,
                        detail: e.to_string(),
                    }),
                }
            }
        }
        date = date.succ_opt().expect("date in range");
    }
    let order = |job: &str| jobnet_order(job);
    found.sort_by(|(ka, a), (kb, b)| {
        (a.created_at, order(&a.job), ka).cmp(&(b.created_at, order(&b.job), kb))
    });
    Ok((found, bad))
}

fn jobnet_order(job: &str) -> usize {
    Job::all()
        .position(|j| j.as_str() == job)
        .unwrap_or(usize::MAX)
}

/// Replays one manifest inside `tx`: its job run in the replay run, its load, its end.
async fn replay_manifest(
    tx: &Transaction<'_>,
    store: &dyn RawStore,
    settings: ReplaySettings,
    run: &Run,
    key: &str,
    manifest: &Manifest,
) -> Result<ManifestReplay, JobError> {
    let job = Job::named(&manifest.job)
        .ok_or_else(|| JobError::InvalidInput(format!("{key}: unknown job {:?}", manifest.job)))?;
    let responses: Vec<&ManifestEntry> = manifest.responses().collect();
    let mut done = ManifestReplay {
        manifest: key.to_string(),
        job: manifest.job.clone(),
        source_run_id: manifest.run_id,
        run_date: manifest.run_date,
        units: responses.len(),
        bytes: responses.iter().map(|e| e.size).sum(),
        skipped: None,
        rows: BTreeMap::new(),
        problems: Vec::new(),
        quality: Vec::new(),
    };
    // Item commits batch by batch, so even a failed Item job run loaded its answers.
    if job != Job::Item
        && manifest
            .verdict
            .as_ref()
            .is_some_and(|v| v.over_threshold())
    {
        done.skipped = Some("the job run was over its failure threshold: it loaded nothing".into());
        return Ok(done);
    }
    let threshold = manifest.verdict.as_ref().map_or(0.0, |v| v.threshold);
    let job_run = ledger::start_job(tx, run, job, threshold).await?;

    // The newest body of each unit (a later answer kept beside an earlier one wins), read
    // and checked against the manifest.
    let mut newest: BTreeMap<&str, &ManifestEntry> = BTreeMap::new();
    for e in &responses {
        let slot = newest.entry(e.unit.as_str()).or_insert(e);
        if e.written_at > slot.written_at {
            *slot = e;
        }
    }
    let reads: Vec<(&ManifestEntry, Result<Bytes, Problem>)> = stream::iter(newest.into_values())
        .map(|e| async move { (e, read_entry(store, e).await) })
        .buffered(PARALLEL_READS)
        .collect()
        .await;
    let mut bodies = Vec::with_capacity(reads.len());
    let mut lost_units = Vec::new();
    for (entry, read) in reads {
        match read {
            Ok(body) => bodies.push((entry, body)),
            Err(p) => {
                tracing::warn!(problem = %p, "replay: object not loaded");
                lost_units.push(entry.unit.clone());
                done.problems.push(p);
            }
        }
    }

    let loaded = load::job(
        tx,
        &job_run,
        manifest,
        &bodies,
        &lost_units,
        settings,
        &mut done.problems,
    )
    .await?;
    done.rows = loaded.rows;
    done.quality = loaded.quality;
    finish(tx, &job_run, key, &done).await?;
    Ok(done)
}

/// Closes the replayed job run with its counts; the output names the manifest replayed.
async fn finish(
    tx: &Transaction<'_>,
    job_run: &JobRun,
    key: &str,
    done: &ManifestReplay,
) -> Result<(), JobError> {
    let mut total = RowCounts::default();
    for r in done.rows.values() {
        total.add(*r);
    }
    let loaded = (done.units - done.problems.len().min(done.units)) as i32;
    let counts = JobCounts {
        attempted: done.units as i32,
        succeeded: loaded,
        failed: done.units as i32 - loaded,
        failure_rate: 0.0,
        rows_inserted: total.inserted,
        rows_updated: total.updated,
        rows_unchanged: total.unchanged,
        rows_deleted: total.deleted,
        raw_written: 0,
        raw_identical: 0,
    };
    let doc = serde_json::to_value(done).expect("replay output serialises");
    let error = (!done.problems.is_empty()).then(|| {
        (
            "ReplayIncomplete",
            format!(
                "{} objects missing or damaged, not loaded",
                done.problems.len()
            ),
        )
    });
    let error = error.as_ref().map(|(t, m)| (*t, m.as_str()));
    ledger::finish_job(tx, job_run, &counts, Some(key), error, &doc).await?;
    Ok(())
}
