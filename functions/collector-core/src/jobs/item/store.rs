//! The Item job's SQL: the work queue, the per-batch save (details, gone items, queue
//! marks, refresh bookkeeping and failures in one transaction) and the final tallies.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rakuten_client::SearchItem;
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use crate::db::ledger::{self, JobRun, Sent, UnitFailure};
use crate::db::DbResultExt;
use crate::jobs::pipeline::describe_failure;
use crate::jobs::run_items::RANKED_ITEMS_CTE;
use crate::jobs::staging::{hash_of, mark_refreshed};
use crate::jobs::{JobError, RowCounts};
use crate::rawstore::{EntryKind, ManifestEntry};

/// The Item Search fields saved on `rakuten_items`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DetailRow {
    pub item_code: String,
    pub item_caption: Option<String>,
    pub tag_ids: Vec<i64>,
    pub item_price: Option<i64>,
    pub availability: Option<i16>,
    pub point_rate: Option<i32>,
    pub point_rate_start_time: Option<String>,
    pub point_rate_end_time: Option<String>,
    pub gift_flag: Option<i16>,
    pub review_count: Option<i64>,
    pub review_average: Option<f64>,
}

impl DetailRow {
    pub fn new(item_code: &str, it: &SearchItem) -> Self {
        let small = |v: Option<i32>| v.and_then(|v| i16::try_from(v).ok());
        let mut tag_ids = it.tag_ids.clone();
        tag_ids.sort_unstable();
        tag_ids.dedup();
        Self {
            item_code: item_code.to_string(),
            item_caption: it.item_caption.clone(),
            tag_ids,
            item_price: it.item_price,
            availability: small(it.availability),
            point_rate: it.point_rate,
            point_rate_start_time: it.point_rate_start_time.clone(),
            point_rate_end_time: it.point_rate_end_time.clone(),
            gift_flag: small(it.gift_flag),
            review_count: it.review_count,
            review_average: it.review_average,
        }
    }

    fn hash(&self) -> Vec<u8> {
        hash_of(self)
    }
}

/// What happened to one queued item.
pub enum Outcome {
    Saved {
        detail: DetailRow,
        raw: ManifestEntry,
    },
    Gone {
        item_code: String,
        raw: ManifestEntry,
    },
    Failed {
        item_code: String,
        failure: UnitFailure,
        /// The last malformed body it got, kept under quarantine.
        quarantined: Option<ManifestEntry>,
    },
}

/// Builds the run's queue once: the items ranked on the run's date whose details were not
/// fetched within the refresh window, best-ranked first, at most what is left of the
/// day's request budget (when one is set). A new attempt (rerun) puts failed items back
/// in the queue. Returns the queue size.
pub async fn ensure_queue(
    tx: &Transaction<'_>,
    job_run: &JobRun,
    refresh: Duration,
    daily_budget: Option<u32>,
) -> Result<i32, JobError> {
    let run_id = job_run.run.run_id;
    let row = tx
        .query_one(
            "SELECT queue_size FROM etl_job_runs WHERE run_id = $1 AND job = 'item' FOR UPDATE",
            &[&run_id],
        )
        .await?;
    if let Some(size) = row.get::<_, Option<i32>>(0) {
        if !job_run.continuing {
            tx.execute("UPDATE etl_item_queue SET status = 'pending', finished_at = NULL WHERE run_id = $1 AND status = 'failed'", &[&run_id])
                .await?;
            reset_counters(tx, run_id).await?;
        }
        return Ok(size);
    }
    // What is left of the day's budget after the other runs of the same JST day.
    let limit: Option<i64> = match daily_budget {
        None => None,
        Some(budget) => {
            let used: i64 = tx
                .query_one(
                    "SELECT count(*) FROM etl_item_queue q JOIN etl_runs r USING (run_id)
                     WHERE r.env = $1 AND r.run_date = $2 AND q.run_id <> $3 AND q.status <> 'pending'",
                    &[&job_run.run.env, &job_run.run.run_date, &run_id],
                )
                .await
                .context("counting the day's Item requests so far")?
                .get(0);
            Some((i64::from(budget) - used).max(0))
        }
    };
    let inserted = tx
        .execute(
            &format!(
                "WITH {RANKED_ITEMS_CTE}
                 INSERT INTO etl_item_queue (run_id, item_code)
                 SELECT $1, r.item_code FROM ranked r
                 WHERE NOT EXISTS (
                     SELECT 1 FROM etl_refresh f
                     WHERE f.entity = 'item' AND f.key = r.item_code
                       AND f.checked_at > now() - make_interval(secs => $2))
                 ORDER BY r.best_rank, r.item_code
                 LIMIT $3
                 ON CONFLICT DO NOTHING"
            ),
            &[&run_id, &refresh.as_secs_f64(), &limit],
        )
        .await
        .context("building the item queue")? as i32;
    if let Some(limit) = limit.filter(|l| i64::from(inserted) >= *l) {
        tracing::warn!(
            limit,
            "ITEM_DAILY_REQUEST_BUDGET reached: the remaining due items wait for the next day"
        );
    }
    tx.execute(
        "UPDATE etl_job_runs SET queue_size = $2 WHERE run_id = $1 AND job = 'item'",
        &[&run_id, &inserted],
    )
    .await?;
    reset_counters(tx, run_id).await?;
    Ok(inserted)
}

async fn reset_counters(tx: &Transaction<'_>, run_id: Uuid) -> Result<(), JobError> {
    tx.execute(
        "UPDATE etl_job_runs SET rows_inserted = 0, rows_updated = 0, rows_unchanged = 0,
             raw_written = 0, raw_identical = 0
         WHERE run_id = $1 AND job = 'item'",
        &[&run_id],
    )
    .await?;
    Ok(())
}

/// The next pending item codes, in a stable order.
pub async fn next_batch(
    client: &impl GenericClient,
    run_id: Uuid,
    limit: usize,
) -> Result<Vec<String>, JobError> {
    let rows = client
        .query(
            "SELECT item_code FROM etl_item_queue WHERE run_id = $1 AND status = 'pending' ORDER BY item_code LIMIT $2",
            &[&run_id, &(limit as i64)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Saves one batch: details (only when their hash changed), gone marks, the queue rows,
/// refresh times and failures, and adds to the job run's counters — all in `tx`.
pub async fn save_batch(
    tx: &Transaction<'_>,
    job_run: &JobRun,
    outcomes: &[Outcome],
    sent: Sent,
) -> Result<RowCounts, JobError> {
    let run_id = job_run.run.run_id;
    let now: DateTime<Utc> = Utc::now();
    let mut counts = RowCounts::default();
    let all: Vec<&str> = outcome_codes(outcomes).collect();
    let pending: i64 = tx
        .query_one(
            "SELECT count(*) FROM etl_item_queue WHERE run_id = $1 AND item_code = ANY($2) AND status = 'pending'",
            &[&run_id, &all],
        )
        .await
        .context("checking the batch's queue rows")?
        .get(0);
    if pending == 0 && !all.is_empty() {
        // Saved by a commit whose answer was lost (this is the retry): nothing to do twice.
        return Ok(counts);
    }

    let details: Vec<&DetailRow> = outcomes
        .iter()
        .filter_map(|o| {
            if let Outcome::Saved { detail, .. } = o {
                Some(detail)
            } else {
                None
            }
        })
        .collect();
    let gone: Vec<&str> = outcomes
        .iter()
        .zip(outcome_codes(outcomes))
        .filter_map(|(o, code)| matches!(o, Outcome::Gone { .. }).then_some(code))
        .collect();
    counts.add(load_details(tx, &details, &gone, now).await?);

    // Queue marks and refresh times.
    let mut codes = Vec::new();
    let mut statuses = Vec::new();
    let (mut keys, mut sizes, mut md5s, mut shas, mut results) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut failures = Vec::new();
    for (o, code) in outcomes.iter().zip(outcome_codes(outcomes)) {
        codes.push(code);
        let raw = match o {
            Outcome::Saved { raw, .. } => {
                statuses.push("saved");
                Some(raw)
            }
            Outcome::Gone { raw, .. } => {
                statuses.push("gone");
                Some(raw)
            }
            Outcome::Failed {
                failure,
                quarantined,
                ..
            } => {
                statuses.push("failed");
                failures.push(failure.clone());
                quarantined.as_ref()
            }
        };
        keys.push(raw.map(|r| r.key.as_str()));
        sizes.push(raw.map(|r| r.size as i64));
        md5s.push(raw.map(|r| r.md5.as_str()));
        shas.push(raw.map(|r| r.sha256.as_str()));
        results.push(raw.map(|r| {
            if r.outcome == crate::rawstore::PutOutcome::Created {
                "created"
            } else {
                "identical"
            }
        }));
    }
    tx.execute(
        "UPDATE etl_item_queue q SET status = u.status, raw_key = u.raw_key, raw_size = u.raw_size, raw_md5 = u.raw_md5,
             raw_sha256 = u.raw_sha256, raw_outcome = u.raw_outcome, finished_at = $8
         FROM unnest($2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[], $9::text[])
              AS u(item_code, status, raw_key, raw_size, raw_md5, raw_sha256, raw_outcome)
         WHERE q.run_id = $1 AND q.item_code = u.item_code",
        &[&run_id, &codes, &statuses, &keys, &sizes, &md5s, &shas, &now, &results],
    )
    .await?;
    let checked: Vec<String> = outcomes
        .iter()
        .zip(outcome_codes(outcomes))
        .filter(|(o, _)| !matches!(o, Outcome::Failed { .. }))
        .map(|(_, c)| c.to_string())
        .collect();
    mark_refreshed(tx, "item", &checked, now).await?;
    ledger::record_failures(tx, job_run, &failures).await?;

    let written = results.iter().filter(|r| **r == Some("created")).count() as i32;
    let identical = results.iter().filter(|r| **r == Some("identical")).count() as i32;
    tx.execute(
        "UPDATE etl_job_runs SET requests = requests + $2, throttled = throttled + $3, rows_inserted = rows_inserted + $4,
             rows_updated = rows_updated + $5, rows_unchanged = rows_unchanged + $6, raw_written = raw_written + $7,
             raw_identical = raw_identical + $8, retries = retries + $9
         WHERE run_id = $1 AND job = 'item'",
        &[&run_id, &sent.requests, &sent.throttled, &counts.inserted, &counts.updated, &counts.unchanged, &written, &identical, &sent.retries],
    )
    .await?;
    Ok(counts)
}

/// Saves Item Search answers observed at `at`: the details of found items, `gone_at` for
/// items the search no longer finds. A later observation already saved is never
/// overwritten by an earlier one, so a replay changes nothing twice. Used by the Item job
/// batch by batch and by replay.
pub async fn load_details(
    tx: &Transaction<'_>,
    details: &[&DetailRow],
    gone: &[&str],
    at: DateTime<Utc>,
) -> Result<RowCounts, JobError> {
    let now = at;
    let mut counts = RowCounts::default();
    if !details.is_empty() {
        let codes: Vec<&str> = details.iter().map(|d| d.item_code.as_str()).collect();
        let docs: Vec<serde_json::Value> = details
            .iter()
            .map(|d| serde_json::to_value(d).expect("row serialises"))
            .collect();
        let hashes: Vec<Vec<u8>> = details.iter().map(|d| d.hash()).collect();
        // One statement for the batch; `first` is read from the pre-update snapshot.
        let row = tx
            .query_one(
                "WITH s AS (
                     SELECT u.item_code, u.doc, u.hash, i.detail_hash IS NULL AS first
                     FROM unnest($1::text[], $2::jsonb[], $3::bytea[]) AS u(item_code, doc, hash)
                     JOIN rakuten_items i USING (item_code)
                 ), upd AS (
                     UPDATE rakuten_items t SET
                         item_caption = s.doc->>'item_caption',
                         tag_ids = ARRAY(SELECT jsonb_array_elements_text(s.doc->'tag_ids')::bigint),
                         item_price = (s.doc->>'item_price')::bigint,
                         availability = (s.doc->>'availability')::smallint,
                         point_rate = (s.doc->>'point_rate')::int,
                         point_rate_start_time = s.doc->>'point_rate_start_time',
                         point_rate_end_time = s.doc->>'point_rate_end_time',
                         gift_flag = (s.doc->>'gift_flag')::smallint,
                         review_count = (s.doc->>'review_count')::bigint,
                         review_average = (s.doc->>'review_average')::float8,
                         detail_hash = s.hash, detail_saved_at = $4, gone_at = NULL
                     FROM s
                     WHERE t.item_code = s.item_code AND (t.detail_hash IS DISTINCT FROM s.hash OR t.gone_at IS NOT NULL)
                       AND coalesce(t.detail_saved_at, '-infinity') <= $4 AND coalesce(t.gone_at, '-infinity') <= $4
                     RETURNING s.first
                 )
                 SELECT (SELECT count(*) FROM s), count(*) FILTER (WHERE first), count(*) FILTER (WHERE NOT first) FROM upd",
                &[&codes, &docs, &hashes, &now],
            )
            .await?;
        let (matched, first, changed): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        counts.inserted += first as i32;
        counts.updated += changed as i32;
        counts.unchanged += (matched - first - changed) as i32;
    }

    if !gone.is_empty() {
        let marked = tx
            .execute("UPDATE rakuten_items SET gone_at = $2 WHERE item_code = ANY($1) AND gone_at IS NULL
                      AND coalesce(detail_saved_at, '-infinity') <= $2", &[&gone, &now])
            .await? as i32;
        counts.updated += marked;
        counts.unchanged += gone.len() as i32 - marked;
    }
    Ok(counts)
}

fn outcome_codes(outcomes: &[Outcome]) -> impl Iterator<Item = &str> {
    outcomes.iter().map(|o| match o {
        Outcome::Saved { detail, .. } => detail.item_code.as_str(),
        Outcome::Gone { item_code, .. } | Outcome::Failed { item_code, .. } => item_code.as_str(),
    })
}

/// The queue's state: (queued, saved, gone, failed, pending).
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub queued: i64,
    pub saved: i64,
    pub gone: i64,
    pub failed: i64,
    pub pending: i64,
}

pub async fn progress(client: &impl GenericClient, run_id: Uuid) -> Result<Progress, JobError> {
    let r = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE status = 'saved'), count(*) FILTER (WHERE status = 'gone'),
                    count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'pending')
             FROM etl_item_queue WHERE run_id = $1",
            &[&run_id],
        )
        .await?;
    Ok(Progress {
        queued: r.get(0),
        saved: r.get(1),
        gone: r.get(2),
        failed: r.get(3),
        pending: r.get(4),
    })
}

/// The job run's accumulated counters: requests sent and rows.
pub async fn counters(
    client: &impl GenericClient,
    run_id: Uuid,
) -> Result<(Sent, RowCounts), JobError> {
    let r = client
        .query_one(
            "SELECT requests, retries, throttled, rows_inserted, rows_updated, rows_unchanged
             FROM etl_job_runs WHERE run_id = $1 AND job = 'item'",
            &[&run_id],
        )
        .await
        .context("reading the item job run's counters")?;
    Ok((
        Sent {
            requests: r.get(0),
            retries: r.get(1),
            throttled: r.get(2),
        },
        RowCounts {
            inserted: r.get(3),
            updated: r.get(4),
            unchanged: r.get(5),
            deleted: 0,
        },
    ))
}

/// The attempt's first recorded failure, for the `FailureRateExceeded` message.
pub async fn first_failure(
    client: &impl GenericClient,
    job_run: &JobRun,
) -> Result<Option<String>, JobError> {
    let row = client
        .query_opt(
            "SELECT unit, message FROM etl_failures WHERE run_id = $1 AND job = 'item' AND attempt = $2
             ORDER BY failure_id LIMIT 1",
            &[&job_run.run.run_id, &job_run.attempt],
        )
        .await
        .context("reading the item job's first failure")?;
    Ok(row.map(|r| describe_failure(&r.get::<_, String>(0), &r.get::<_, String>(1))))
}

/// Every raw object the job run stored, for the manifest.
pub async fn stored_objects(
    client: &impl GenericClient,
    run_id: Uuid,
) -> Result<Vec<ManifestEntry>, JobError> {
    let rows = client
        .query(
            "SELECT item_code, status, raw_key, raw_size, raw_md5, raw_sha256, raw_outcome, finished_at
             FROM etl_item_queue WHERE run_id = $1 AND raw_key IS NOT NULL ORDER BY raw_key",
            &[&run_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let status: String = r.get(1);
            ManifestEntry {
                unit: format!("item itemCode={}", r.get::<_, String>(0)),
                records: u64::from(status == "saved"),
                key: r.get(2),
                size: r.get::<_, i64>(3) as u64,
                md5: r.get(4),
                sha256: r.get(5),
                // A failed item's object is the malformed body it got (see `Outcome::Failed`).
                kind: if status == "failed" {
                    EntryKind::Quarantine
                } else {
                    EntryKind::Response
                },
                detail: (status == "failed")
                    .then(|| "malformed body; the item failed (see etl_failures)".to_string()),
                outcome: if r.get::<_, Option<String>>(6).as_deref() == Some("identical") {
                    crate::rawstore::PutOutcome::Identical
                } else {
                    crate::rawstore::PutOutcome::Created
                },
                written_at: r
                    .get::<_, Option<DateTime<Utc>>>(7)
                    .unwrap_or_else(Utc::now),
            }
        })
        .collect())
}
