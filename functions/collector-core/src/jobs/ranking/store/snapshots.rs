//! The snapshot rows (`rakuten_ranking_snapshots`): one per target and day, written from
//! what `rakuten_rankings` holds after the load, and the queries the quality checks ask.

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::Transaction;

use crate::db::ledger::JobRun;
use crate::jobs::{JobError, RowCounts};

/// What the job knows of one target's day before the snapshot row is written.
#[derive(Debug, Clone)]
pub struct SnapshotInput {
    pub genre_id: i64,
    pub period: String,
    pub last_build_date: Option<DateTime<chrono::FixedOffset>>,
    pub title: Option<String>,
    /// Pages fetched and stored in this run.
    pub pages: i32,
    /// Pages that still failed at the end of the job.
    pub failed_pages: Vec<u32>,
    /// Why the target is incomplete beyond missing ranks (e.g. the genre does not exist).
    pub reason: Option<String>,
}

/// One row of `rakuten_ranking_snapshots`, as written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotState {
    pub ranking_genre_id: i64,
    pub period: String,
    pub row_count: i32,
    pub complete: bool,
    pub missing_ranks: Option<String>,
    pub stale: bool,
}

/// `[1, 2, 3, 7, 9, 10]` → `"1-3,7,9-10"`.
pub fn format_ranges(ranks: &[i32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ranks.len() {
        let start = ranks[i];
        let mut end = start;
        while i + 1 < ranks.len() && ranks[i + 1] == end + 1 {
            i += 1;
            end = ranks[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// The ranks missing from `present` (sorted): every rank up to the highest one stored or
/// covered by a failed page is expected.
pub fn missing_ranks(present: &[i32], failed_pages: &[u32], page_size: i32) -> Vec<i32> {
    let highest_failed = failed_pages
        .iter()
        .map(|&p| (p as i32 * page_size).min(1000))
        .max()
        .unwrap_or(0);
    let upper = present.last().copied().unwrap_or(0).max(highest_failed);
    let have: std::collections::HashSet<i32> = present.iter().copied().collect();
    (1..=upper).filter(|r| !have.contains(r)).collect()
}

/// Writes each target's snapshot row from what `rakuten_rankings` now holds for the day:
/// complete only when no page failed and ranks 1..N have no gap. `stale` when the
/// ranking's `lastBuildDate` equals the one of the target's previous snapshot. A row from
/// a later observation than `at` is left as it is. Returns the rows as stored and counts.
pub async fn upsert_snapshots(
    tx: &Transaction<'_>,
    job_run: &JobRun,
    targets: &[SnapshotInput],
    page_size: i32,
    at: DateTime<Utc>,
) -> Result<(Vec<SnapshotState>, RowCounts), JobError> {
    let date = job_run.run.run_date;
    let mut counts = RowCounts::default();
    let mut states = Vec::with_capacity(targets.len());
    for t in targets {
        let present: Vec<i32> = tx
            .query(
                "SELECT rank FROM rakuten_rankings
                 WHERE snapshot_date = $1 AND ranking_genre_id = $2 AND period = $3 ORDER BY rank",
                &[&date, &t.genre_id, &t.period],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let missing = missing_ranks(&present, &t.failed_pages, page_size);
        let complete = missing.is_empty() && t.failed_pages.is_empty() && t.reason.is_none();
        let missing_text = match (&t.reason, missing.is_empty()) {
            (_, false) => Some(format_ranges(&missing)),
            (Some(r), true) => Some(r.clone()),
            (None, true) => None,
        };
        let row_count = present.len() as i32;
        let written = tx
            .query_opt(
                "INSERT INTO rakuten_ranking_snapshots AS s (snapshot_date, ranking_genre_id, period, last_build_date,
                     title, pages, row_count, complete, missing_ranks, stale, run_id, saved_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                     coalesce($4 = (SELECT p.last_build_date FROM rakuten_ranking_snapshots p
                                    WHERE p.ranking_genre_id = $2 AND p.period = $3 AND p.snapshot_date < $1
                                    ORDER BY p.snapshot_date DESC LIMIT 1), false),
                     $10, $11)
                 ON CONFLICT (snapshot_date, ranking_genre_id, period) DO UPDATE SET
                     last_build_date = EXCLUDED.last_build_date, title = EXCLUDED.title, pages = EXCLUDED.pages,
                     row_count = EXCLUDED.row_count, complete = EXCLUDED.complete,
                     missing_ranks = EXCLUDED.missing_ranks, stale = EXCLUDED.stale,
                     run_id = EXCLUDED.run_id, saved_at = EXCLUDED.saved_at
                 WHERE s.saved_at <= EXCLUDED.saved_at
                   AND (s.last_build_date, s.title, s.pages, s.row_count, s.complete, s.missing_ranks, s.stale)
                       IS DISTINCT FROM (EXCLUDED.last_build_date, EXCLUDED.title, EXCLUDED.pages,
                       EXCLUDED.row_count, EXCLUDED.complete, EXCLUDED.missing_ranks, EXCLUDED.stale)
                 RETURNING (xmax = 0) AS inserted",
                &[
                    &date,
                    &t.genre_id,
                    &t.period,
                    &t.last_build_date,
                    &t.title,
                    &t.pages,
                    &row_count,
                    &complete,
                    &missing_text,
                    &job_run.run.run_id,
                    &at,
                ],
            )
            .await?;
        match written {
            Some(r) if r.get::<_, bool>(0) => counts.inserted += 1,
            Some(_) => counts.updated += 1,
            None => counts.unchanged += 1,
        }
        // As stored: this observation's, or a later one's left in place.
        let r = tx
            .query_one(
                "SELECT row_count, complete, missing_ranks, stale FROM rakuten_ranking_snapshots
                 WHERE snapshot_date = $1 AND ranking_genre_id = $2 AND period = $3",
                &[&date, &t.genre_id, &t.period],
            )
            .await?;
        states.push(SnapshotState {
            ranking_genre_id: t.genre_id,
            period: t.period.clone(),
            row_count: r.get(0),
            complete: r.get(1),
            missing_ranks: r.get(2),
            stale: r.get(3),
        });
    }
    Ok((states, counts))
}

/// The `lastBuildDate` of the target's newest snapshot before `date`, if any.
pub async fn previous_build_date(
    tx: &Transaction<'_>,
    date: NaiveDate,
    genre_id: i64,
    period: &str,
) -> Result<Option<(NaiveDate, Option<DateTime<Utc>>)>, JobError> {
    let row = tx
        .query_opt(
            "SELECT snapshot_date, last_build_date FROM rakuten_ranking_snapshots
             WHERE ranking_genre_id = $2 AND period = $3 AND snapshot_date < $1
             ORDER BY snapshot_date DESC LIMIT 1",
            &[&date, &genre_id, &period],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Item codes stored at more than one rank of the target's snapshot, with their ranks.
pub async fn duplicate_items(
    tx: &Transaction<'_>,
    date: NaiveDate,
    genre_id: i64,
    period: &str,
) -> Result<Vec<(String, Vec<i32>)>, JobError> {
    let rows = tx
        .query(
            "SELECT item_code, array_agg(rank ORDER BY rank) FROM rakuten_rankings
             WHERE snapshot_date = $1 AND ranking_genre_id = $2 AND period = $3
             GROUP BY item_code HAVING count(*) > 1 ORDER BY min(rank)",
            &[&date, &genre_id, &period],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The row count and date of the target's newest complete snapshot before `date`.
pub async fn previous_complete_count(
    tx: &Transaction<'_>,
    date: NaiveDate,
    genre_id: i64,
    period: &str,
) -> Result<Option<(NaiveDate, i32)>, JobError> {
    let row = tx
        .query_opt(
            "SELECT snapshot_date, row_count FROM rakuten_ranking_snapshots
             WHERE ranking_genre_id = $2 AND period = $3 AND snapshot_date < $1 AND complete
             ORDER BY snapshot_date DESC LIMIT 1",
            &[&date, &genre_id, &period],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_missing_ranks() {
        assert_eq!(format_ranges(&[1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
        assert_eq!(format_ranges(&[]), "");
        let present: Vec<i32> = (1..=60).chain(91..=120).collect();
        assert_eq!(format_ranges(&missing_ranks(&present, &[3], 30)), "61-90");
        // The last page failed: its ranks are expected too.
        let present: Vec<i32> = (1..=60).collect();
        assert_eq!(format_ranges(&missing_ranks(&present, &[3], 30)), "61-90");
        assert!(missing_ranks(&(1..=45).collect::<Vec<_>>(), &[], 30).is_empty());
    }
}
