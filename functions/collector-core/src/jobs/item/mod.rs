//! JOB-I-01, Item: Item Search by `itemCode` (`availability=0`, so sold-out items still
//! answer) for this run's ranked items whose details are older than the refresh window.
//! Zero hits marks the item gone — an outcome, not a failure.
//!
//! Time-boxed: an invocation works through the run's queue (`etl_item_queue`) in
//! batches, saving each batch and marking its queue rows in one transaction, and stops
//! before its deadline minus a margin with `done: false`; the next invocation continues
//! with what is still pending. A killed invocation loses at most its unsaved batch,
//! which the next one fetches again; nothing saved is fetched twice. The job's failure
//! rate (threshold 5 %) is judged when the queue is empty, over the whole job run.

pub(crate) mod store;

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use rakuten_client::ItemSearchPage;
use uuid::Uuid;

use crate::db::ledger::{self, JobRun};
use crate::jobs::Job;
use crate::rawstore::RawKeys;

use super::pipeline::{self, Loaded, Verdict};
use super::{lifecycle, AppContext, JobError, JobOutput, RunInput, UnitCounts};

use store::Outcome;
pub use store::{DetailRow, Progress};

/// Runs one invocation of the Item job. `stop_at`: when to stop taking new items (the
/// Lambda deadline minus the configured margin, or the CLI's budget); None = until done.
pub async fn run(
    ctx: &AppContext,
    input: RunInput,
    stop_at: Option<SystemTime>,
) -> Result<JobOutput, JobError> {
    lifecycle::run_job(
        ctx,
        Some(input.run_id),
        Job::Item,
        false,
        |job_run| async move { execute(ctx, &job_run, stop_at).await },
    )
    .await
}

/// The raw-store key name of an item: its code made path-safe, plus a short hash so two codes
/// that differ only in unsafe characters never share a key.
fn key_name(item_code: &str) -> String {
    use sha2::{Digest, Sha256};
    let safe: String = item_code
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect();
    let h = hex::encode(Sha256::digest(item_code.as_bytes()));
    format!("item-{safe}-{}", &h[..8])
}

fn out_of_time(stop_at: Option<SystemTime>) -> bool {
    stop_at.is_some_and(|t| SystemTime::now() >= t)
}

async fn execute(
    ctx: &AppContext,
    job_run: &JobRun,
    stop_at: Option<SystemTime>,
) -> Result<JobOutput, JobError> {
    let started = Instant::now();
    let run_id = job_run.run.run_id;
    let keys = RawKeys::for_job_run(job_run);
    let queued = ctx
        .transact(
            "building the item queue",
            &(job_run, &ctx.config.item),
            |tx, (job_run, item)| {
                Box::pin(store::ensure_queue(
                    tx,
                    job_run,
                    item.refresh,
                    item.daily_request_budget,
                ))
            },
        )
        .await?;
    tracing::info!(%run_id, queued, invocation = job_run.invocations, "item queue ready");

    loop {
        if out_of_time(stop_at) {
            break;
        }
        let batch = {
            let guard = ctx.db().await?;
            store::next_batch(&guard.client, run_id, ctx.config.item.batch_size).await?
        };
        if batch.is_empty() {
            break;
        }
        let mut paused = false;
        let mut outcomes = Vec::with_capacity(batch.len());
        for code in &batch {
            if out_of_time(stop_at) {
                paused = true;
                break;
            }
            outcomes.push(fetch_one(ctx, &keys, code).await?);
        }
        // What this batch sent is recorded with it (taken from the job's counters once).
        let scope = ctx.rakuten.current_scope().unwrap_or_default();
        let taken = scope.take_unrecorded();
        let sent = ledger::Sent::from(taken);
        ctx.transact(
            "saving an item batch",
            &(job_run, outcomes, sent),
            |tx, (job_run, outcomes, sent)| {
                Box::pin(store::save_batch(tx, job_run, outcomes, *sent))
            },
        )
        .await
        .inspect_err(|_| scope.give_back(taken))?;
        if paused {
            break;
        }
    }

    let db = ctx.db().await?;
    let client = &db.client;
    let p = store::progress(client, run_id).await?;
    let extra = BTreeMap::from([
        ("queued".to_string(), p.queued),
        ("saved".to_string(), p.saved),
        ("gone".to_string(), p.gone),
        ("failed".to_string(), p.failed),
        ("remaining".to_string(), p.pending),
        ("invocation".to_string(), i64::from(job_run.invocations)),
    ]);
    let (sent, rows) = store::counters(client, run_id).await?;
    let attempted = (p.saved + p.gone + p.failed) as i32;
    let failed = p.failed as i32;

    if p.pending > 0 {
        // Stopped by the time box: the job run stays running; the next invocation continues.
        let output = JobOutput {
            job: Job::Item.as_str().into(),
            run_id,
            attempt: job_run.attempt,
            status: "running".into(),
            done: false,
            units: UnitCounts {
                attempted,
                succeeded: attempted - failed,
                failed,
            },
            failure_rate: 0.0,
            threshold: ctx.config.item.failure_threshold,
            requests: sent.requests as u64,
            retries: sent.retries as u64,
            throttled: sent.throttled as u64,
            rows: BTreeMap::from([("rakuten_items".to_string(), rows)]),
            raw_written: 0,
            raw_identical: 0,
            manifest_key: None,
            snapshot_date: Some(job_run.run.run_date),
            duration_ms: started.elapsed().as_millis() as i64,
            incomplete: Vec::new(),
            quality: Vec::new(),
            extra,
        };
        let doc = serde_json::to_value(&output).expect("output serialises");
        ledger::pause_job(client, job_run, &doc).await?;
        tracing::info!(%run_id, remaining = p.pending, saved = p.saved, "item invocation paused before its deadline");
        return Ok(output);
    }

    // The queue is empty: the job run ends here, judged over all its invocations. Its
    // rows and failures were committed batch by batch (a time-boxed job cannot hold one
    // transaction across invocations), so above the threshold they stay: see docs/jobs.md.
    let verdict = Verdict {
        attempted,
        failed,
        first_failure: store::first_failure(client, job_run).await?,
        unrecorded: Vec::new(),
        manifest: store::stored_objects(client, run_id).await?,
        extra,
    };
    drop(db);
    let threshold = ctx.config.item.failure_threshold;
    pipeline::conclude(
        ctx,
        job_run,
        verdict,
        threshold,
        started,
        &rows,
        |_, _, rows| {
            // Loaded batch by batch already: the rows are the job run's running totals.
            let rows = BTreeMap::from([("rakuten_items".to_string(), *rows)]);
            Box::pin(async move {
                Ok(Loaded {
                    rows,
                    ..Loaded::default()
                })
            })
        },
    )
    .await
}

/// Fetches one item and keeps its body raw; failures are outcomes, store errors stop the job.
async fn fetch_one(ctx: &AppContext, keys: &RawKeys, item_code: &str) -> Result<Outcome, JobError> {
    let key_name = key_name(item_code);
    let fetched = match ctx.rakuten.item_by_code(item_code).await {
        Ok(f) => f,
        Err(e) => {
            let (failure, quarantined) = pipeline::keep_failure(ctx, keys, &e, &key_name).await?;
            return Ok(Outcome::Failed {
                item_code: item_code.to_string(),
                failure,
                quarantined,
            });
        }
    };
    let detail = detail_of(item_code, &fetched.parsed);
    let records = u64::from(detail.is_some());
    let raw = pipeline::keep(ctx, keys, &key_name, &fetched.unit, &fetched.body, records).await?;
    Ok(match detail {
        Some(detail) => Outcome::Saved { detail, raw },
        None => Outcome::Gone {
            item_code: item_code.to_string(),
            raw,
        },
    })
}

/// The details an Item Search answer gives for `item_code` (the matching hit, else the
/// first), `None` when it found nothing: the item is gone.
pub(crate) fn detail_of(item_code: &str, answer: &ItemSearchPage) -> Option<DetailRow> {
    answer
        .items
        .iter()
        .find(|i| i.item_code == item_code)
        .or(answer.items.first())
        .map(|it| DetailRow::new(item_code, it))
}

/// The counts an Item job run has so far (for progress displays).
pub async fn progress(ctx: &AppContext, run_id: Uuid) -> Result<Progress, JobError> {
    let guard = ctx.db().await?;
    store::progress(&guard.client, run_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_path_safe_and_distinct() {
        let a = key_name("shop-01:10000123");
        assert!(a.starts_with("item-shop-01-10000123-"), "{a}");
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(key_name("a:b"), key_name("a-b"));
    }
}
