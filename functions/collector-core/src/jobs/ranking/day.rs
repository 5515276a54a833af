//! The Ranking job's day: each target's pages (fetched live or read back by replay) turned
//! into rows and snapshot rows, and the load that writes them with its quality checks.
//! Live and replayed rankings take exactly this path.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::future::BoxFuture;
use rakuten_client::RankingItem;
use tokio_postgres::Transaction;

use crate::config::{RankingTarget, StalePolicy};
use crate::db::ledger::JobRun;
use crate::jobs::pipeline::Loaded;
use crate::jobs::JobError;

use super::quality::{self, Check, Finding};
use super::store::{self, ItemRow, RankingRow};
use super::PAGE_SIZE;

/// One fetched (or replayed) page, kept until the load.
pub(crate) struct Page {
    pub page: u32,
    pub items: Vec<RankingItem>,
    pub last_build_date: Option<String>,
    pub title: Option<String>,
}

/// What reading one target produced.
pub(crate) struct TargetRead {
    pub pages: Vec<Page>,
    /// Pages given up on, already recorded as failures.
    pub lost: Vec<u32>,
    /// Set when the target stopped early for good (the genre does not exist).
    pub stopped: Option<String>,
}

/// The distinct `lastBuildDate` values of a target's pages, in page order.
pub(crate) fn build_dates(pages: &[Page]) -> Vec<&str> {
    let mut seen: Vec<&str> = Vec::new();
    for d in pages.iter().filter_map(|p| p.last_build_date.as_deref()) {
        if !seen.contains(&d) {
            seen.push(d);
        }
    }
    seen
}

/// What the job loads: the day's ranking rows, the item fields they carry, the snapshots.
pub(crate) struct Day {
    ranking_rows: Vec<RankingRow>,
    item_rows: Vec<ItemRow>,
    snapshots: Vec<store::SnapshotInput>,
    /// Per target: the highest rank read (for deleting higher ranks of an earlier run).
    max_ranks: Vec<i32>,
    /// Targets whose pages carried two builds (nothing of them is stored).
    mixed: Vec<Option<String>>,
    /// When the rows were observed: now, or when a replayed job run loaded them.
    observed_at: DateTime<Utc>,
    stale_policy: StalePolicy,
}

/// Turns each target's pages (live or replayed) into the day's rows and snapshots. A
/// target whose pages carry two builds contributes no rows: its snapshot is incomplete
/// with the reason, a severe quality finding.
pub(crate) fn assemble(
    targets: &[RankingTarget],
    reads: Vec<TargetRead>,
    run_date: NaiveDate,
    observed_at: DateTime<Utc>,
    stale_policy: StalePolicy,
) -> Day {
    let mut snapshots = Vec::with_capacity(targets.len());
    let mut mixed = Vec::with_capacity(targets.len());
    let mut kept: Vec<(usize, Page)> = Vec::new();
    for (i, mut r) in reads.into_iter().enumerate() {
        r.pages.sort_by_key(|p| p.page);
        let builds = build_dates(&r.pages);
        let mut reason = r.stopped.clone();
        let mut mixed_reason = None;
        if builds.len() > 1 {
            let text = format!(
                "ranking rebuilt while read: its pages carry {} lastBuildDate values ({}); none of its rows stored",
                builds.len(),
                builds.join(" / ")
            );
            reason = Some(text.clone());
            mixed_reason = Some(text);
        }
        let first = r.pages.first();
        snapshots.push(store::SnapshotInput {
            genre_id: targets[i].genre_id,
            period: targets[i].period_name().to_string(),
            last_build_date: first
                .and_then(|p| p.last_build_date.as_deref())
                .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok()),
            title: first.and_then(|p| p.title.clone()),
            pages: r.pages.len() as i32,
            failed_pages: r.lost.clone(),
            reason,
        });
        if mixed_reason.is_none() {
            kept.extend(r.pages.into_iter().map(|p| (i, p)));
        }
        mixed.push(mixed_reason);
    }
    let (ranking_rows, item_rows) = build_rows(targets, &kept, run_date);
    let max_ranks = (0..targets.len())
        .map(|i| {
            ranking_rows
                .iter()
                .filter(|r| r.target == i)
                .map(|r| r.rank)
                .max()
                .unwrap_or(0)
        })
        .collect();
    Day {
        ranking_rows,
        item_rows,
        snapshots,
        max_ranks,
        mixed,
        observed_at,
        stale_policy,
    }
}

pub(crate) fn load<'t>(
    tx: &'t Transaction<'t>,
    job_run: &'t JobRun,
    day: &'t Day,
) -> BoxFuture<'t, Result<Loaded, JobError>> {
    Box::pin(async move {
        let date = job_run.run.run_date;
        let at = day.observed_at;
        // RANKING_STALE_POLICY=skip: a target not rebuilt since its previous snapshot
        // stores no duplicate day, only its snapshot row saying so.
        let mut snapshots = day.snapshots.clone();
        let mut skipped = vec![false; snapshots.len()];
        if day.stale_policy == StalePolicy::Skip {
            for (i, s) in snapshots.iter_mut().enumerate() {
                let prev = store::previous_build_date(tx, date, s.genre_id, &s.period).await?;
                if let (Some((prev_date, Some(prev_build))), Some(build)) =
                    (prev, s.last_build_date)
                {
                    if prev_build == build && s.reason.is_none() {
                        s.reason = Some(format!(
                            "stale: same lastBuildDate as {prev_date}; not stored (RANKING_STALE_POLICY=skip)"
                        ));
                        skipped[i] = true;
                    }
                }
            }
        }
        let ranking_rows: Vec<RankingRow> = day
            .ranking_rows
            .iter()
            .filter(|r| !skipped[r.target])
            .cloned()
            .collect();
        // Stale higher ranks of an earlier same-day run are deleted only for targets read
        // to their end without a gap.
        let complete: Vec<(i64, String, i32)> = snapshots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.failed_pages.is_empty() && s.reason.is_none())
            .map(|(i, s)| (s.genre_id, s.period.clone(), day.max_ranks[i]))
            .collect();

        let mut rows = BTreeMap::from([
            (
                "rakuten_rankings".to_string(),
                store::load_rankings(tx, job_run, &ranking_rows, &complete, at).await?,
            ),
            (
                "rakuten_items".to_string(),
                store::load_items(tx, job_run, &day.item_rows, at).await?,
            ),
        ]);
        let (states, counts) =
            store::upsert_snapshots(tx, job_run, &snapshots, PAGE_SIZE as i32, at).await?;
        rows.insert("rakuten_ranking_snapshots".to_string(), counts);

        let mut loaded = Loaded {
            rows,
            ..Loaded::default()
        };
        for (i, s) in states.iter().enumerate() {
            let label = quality::target_label(s.ranking_genre_id, &s.period);
            let mut finding = |check, severe, detail: String| {
                tracing::warn!(target = %label, check = ?check, severe, %detail, "ranking quality finding");
                loaded.quality.push(Finding {
                    target: label.clone(),
                    check,
                    severe,
                    detail,
                });
            };
            if let Some(reason) = &day.mixed[i] {
                finding(Check::MixedBuild, true, reason.clone());
            }
            if !s.complete {
                let missing = s.missing_ranks.as_deref().unwrap_or("?");
                loaded
                    .incomplete
                    .push(format!("{label}: incomplete, missing {missing}"));
                finding(Check::Incomplete, false, format!("missing {missing}"));
            }
            if s.stale {
                finding(
                    Check::Stale,
                    false,
                    "same lastBuildDate as the previous snapshot: not rebuilt since".into(),
                );
            }
            for (code, ranks) in
                store::duplicate_items(tx, date, s.ranking_genre_id, &s.period).await?
            {
                let ranks: Vec<String> = ranks.iter().map(ToString::to_string).collect();
                finding(
                    Check::DuplicateItem,
                    true,
                    format!("{code} at ranks {}", ranks.join(", ")),
                );
            }
            if let Some((prev_date, prev)) =
                store::previous_complete_count(tx, date, s.ranking_genre_id, &s.period).await?
            {
                if quality::dropped_by_more_than_half(prev, s.row_count) {
                    finding(
                        Check::RowCountDrop,
                        false,
                        format!("{} rows, {prev} on {prev_date}", s.row_count),
                    );
                }
            }
        }
        loaded.violation = quality::severe_summary(&loaded.quality);
        Ok(loaded)
    })
}

/// Turns pages (target index, page) into snapshot rows (ranks sorted, duplicates dropped)
/// and item rows (one per item code).
fn build_rows(
    targets: &[RankingTarget],
    pages: &[(usize, Page)],
    run_date: NaiveDate,
) -> (Vec<RankingRow>, Vec<ItemRow>) {
    let mut ranking_rows = Vec::new();
    let mut seen_ranks: HashSet<(usize, i32)> = HashSet::new();
    let mut items: BTreeMap<String, ItemRow> = BTreeMap::new();
    let mut sorted: Vec<&(usize, Page)> = pages.iter().collect();
    sorted.sort_by_key(|(t, p)| (*t, p.page));
    for (t, p) in sorted {
        let target = &targets[*t];
        for it in &p.items {
            if it.item_code.is_empty() || !(1..=1000).contains(&it.rank) {
                tracing::warn!(
                    rank = it.rank,
                    "skipping a ranking entry without item code or with an out-of-range rank"
                );
                continue;
            }
            if !seen_ranks.insert((*t, it.rank)) {
                tracing::warn!(
                    rank = it.rank,
                    genre_id = target.genre_id,
                    "duplicate rank in ranking; keeping the first"
                );
                continue;
            }
            ranking_rows.push(RankingRow::new(run_date, *t, target, it));
            items
                .entry(it.item_code.clone())
                .or_insert_with(|| ItemRow::from_ranking(it));
        }
    }
    (ranking_rows, items.into_values().collect())
}
