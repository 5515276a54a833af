//! JOB-R-01, Ranking: every configured target × page, raw objects first, then the day's
//! ranking snapshot and the item fields a ranking carries, through staging with a
//! content hash. Fails with `FailureRateExceeded` when more than the threshold (1 %) of
//! its units (pages, after retries) fail.

pub mod quality;
pub mod store;

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::future::BoxFuture;
use futures_util::{stream, StreamExt};
use rakuten_client::{ApiError, ErrorKind, RankingItem, RankingQuery};
use tokio_postgres::Transaction;
use uuid::Uuid;

use crate::config::{RankingTarget, StalePolicy};
use crate::db::ledger::{Job, JobRun};
use crate::rawstore::RawStoreError;

use super::pipeline::{self, Evidence, Loaded};
use super::{lifecycle, AppContext, JobError, JobOutput};

pub use quality::{Check, Finding};
pub use store::{ItemRow, RankingRow};

/// Rows per ranking page; a shorter page is the last one.
pub const PAGE_SIZE: usize = 30;

/// The Ranking job's event (Lambda) / arguments (CLI).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RankingInput {
    /// The run to work in; a new run is opened when absent.
    #[serde(default)]
    pub run_id: Option<Uuid>,
}

impl RankingInput {
    /// Parses an event, with an `InvalidInput` error that says what is wrong.
    pub fn from_event(event: serde_json::Value) -> Result<Self, JobError> {
        super::input::parse_event(Job::Ranking, event)
    }
}

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

/// One live read of a target: its pages and the evidence kept on the way.
struct TargetFetch {
    read: TargetRead,
    evidence: Evidence,
    /// Pages whose request failed after the client's retries: tried again at the end.
    failed: Vec<(u32, ApiError)>,
}

/// Reads of a target whose pages carry two builds (the ranking was rebuilt while read)
/// before it is given up as incomplete.
const MAX_READS: u32 = 3;

/// Runs the Ranking job. The one entry point for the Lambda and the CLI.
pub async fn run(ctx: &AppContext, input: RankingInput) -> Result<JobOutput, JobError> {
    let threshold = ctx.config.ranking_failure_threshold;
    lifecycle::run_job(
        ctx,
        input.run_id,
        Job::Ranking,
        threshold,
        true,
        |job_run| async move {
            tracing::info!(
                targets = ctx.config.ranking_targets.len(),
                "fetching rankings"
            );
            execute(ctx, &job_run).await
        },
    )
    .await
}

async fn execute(ctx: &AppContext, job_run: &JobRun) -> Result<JobOutput, JobError> {
    let started = Instant::now();
    let targets = &ctx.config.ranking_targets;

    // Targets are fetched concurrently; the client's limiters keep the pace. Each target
    // keeps its own evidence (pages are sequential within a target), merged afterwards.
    // (Futures are built eagerly: a closure inside the stream trips the Send check.)
    let fetches: Vec<_> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| fetch_target(ctx, job_run, i, t))
        .collect();
    let mut results: Vec<(usize, Result<TargetFetch, RawStoreError>)> =
        stream::iter(fetches).buffer_unordered(4).collect().await;
    results.sort_by_key(|(i, _)| *i);
    let mut fetched = Vec::with_capacity(targets.len());
    for (_, r) in results {
        fetched.push(r?);
    }

    // A page that failed after the client's retries gets one more try at the end, when a
    // short outage has likely passed: a hole in the day's snapshot is the worst outcome.
    for (i, f) in fetched.iter_mut().enumerate() {
        retry_failed(ctx, f, &targets[i]).await?;
    }

    // Pages of two builds mean the ranking was rebuilt while we read it: read the target
    // again (a rebuild is rare and quick), up to MAX_READS reads in all.
    let mut evidence = Evidence::new(job_run);
    let mut reads = Vec::with_capacity(targets.len());
    for (i, mut f) in fetched.into_iter().enumerate() {
        let mut read_no = 1;
        while build_dates(&f.read.pages).len() > 1 && read_no < MAX_READS {
            read_no += 1;
            tracing::warn!(
                genre_id = targets[i].genre_id,
                read = read_no,
                builds = ?build_dates(&f.read.pages),
                "ranking rebuilt while read; reading the target again"
            );
            evidence.absorb(f.evidence);
            f = fetch_pages(ctx, job_run, &targets[i]).await?;
            retry_failed(ctx, &mut f, &targets[i]).await?;
        }
        evidence.absorb(f.evidence);
        reads.push(f.read);
    }

    let day = assemble(
        targets,
        reads,
        job_run.run.run_date,
        chrono::Utc::now(),
        ctx.config.ranking_stale_policy,
    );
    let threshold = ctx.config.ranking_failure_threshold;
    let verdict = evidence.into_verdict();
    pipeline::conclude(ctx, job_run, verdict, threshold, started, &day, load).await
}

/// Tries a target's failed pages once more; a page that fails again is lost.
async fn retry_failed(
    ctx: &AppContext,
    f: &mut TargetFetch,
    target: &RankingTarget,
) -> Result<(), RawStoreError> {
    for (page, first_error) in std::mem::take(&mut f.failed) {
        tracing::info!(
            genre_id = target.genre_id,
            page,
            "trying a failed ranking page again"
        );
        match fetch_page(ctx, &mut f.evidence, target, page).await? {
            Ok(p) => f.read.pages.push(p),
            Err(e) => {
                tracing::warn!(first = %first_error, "ranking page failed again at the end of the job");
                f.evidence.fail(ctx, &e, &page_slug(target, page)).await?;
                f.read.lost.push(page);
            }
        }
    }
    f.read.pages.sort_by_key(|p| p.page);
    Ok(())
}

/// The distinct `lastBuildDate` values of a target's pages, in page order.
fn build_dates(pages: &[Page]) -> Vec<&str> {
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

/// Fetches one target's pages in order until a short page; stores each body before anything else.
async fn fetch_target(
    ctx: &AppContext,
    job_run: &JobRun,
    index: usize,
    target: &RankingTarget,
) -> (usize, Result<TargetFetch, RawStoreError>) {
    (index, fetch_pages(ctx, job_run, target).await)
}

fn page_slug(target: &RankingTarget, page: u32) -> String {
    format!(
        "genre-{}_{}_page-{page:02}",
        target.genre_id,
        target.period_name()
    )
}

/// One request for one page, its body kept before anything else. The outer error stops
/// the job (the raw store failed); the inner one is the request's.
async fn fetch_page(
    ctx: &AppContext,
    evidence: &mut Evidence,
    target: &RankingTarget,
    page: u32,
) -> Result<Result<Page, ApiError>, RawStoreError> {
    let q = RankingQuery {
        genre_id: target.genre_id,
        period: target.period.clone(),
        page,
    };
    let fetched = match ctx.rakuten.ranking(&q).await {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    let records = fetched.parsed.items.len() as u64;
    evidence
        .kept(ctx, &page_slug(target, page), &fetched, records)
        .await?;
    Ok(Ok(Page {
        page,
        items: fetched.parsed.items,
        last_build_date: fetched.parsed.last_build_date,
        title: fetched.parsed.title,
    }))
}

/// A 4xx other than 429 is the API refusing the request itself: asking again, or for the
/// next page, gets the same answer.
pub(crate) fn refused(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::ClientError | ErrorKind::InvalidRequest)
}

/// [`refused`] for an error kind as recorded (`client_error`, …).
pub(crate) fn refused_kind(kind: &str) -> bool {
    [ErrorKind::ClientError, ErrorKind::InvalidRequest]
        .iter()
        .any(|k| k.as_str() == kind)
}

/// Why a target refused on its first page is incomplete (the genre does not exist).
pub(crate) fn refused_reason(genre_id: i64, kind: &str) -> String {
    format!("genre {genre_id} refused: {kind}")
}

async fn fetch_pages(
    ctx: &AppContext,
    job_run: &JobRun,
    target: &RankingTarget,
) -> Result<TargetFetch, RawStoreError> {
    let mut out = TargetFetch {
        read: TargetRead {
            pages: Vec::new(),
            lost: Vec::new(),
            stopped: None,
        },
        evidence: Evidence::new(job_run),
        failed: Vec::new(),
    };
    for page in 1..=ctx.config.ranking_max_pages {
        out.evidence.attempted += 1;
        match fetch_page(ctx, &mut out.evidence, target, page).await? {
            Ok(p) => {
                let last = p.items.len() < PAGE_SIZE;
                out.read.pages.push(p);
                if last {
                    break;
                }
            }
            Err(e) if page == 1 && refused(e.kind()) => {
                // The genre does not exist (or has no ranking): one request, one failure.
                tracing::warn!(
                    genre_id = target.genre_id,
                    "ranking genre {} ({}) refused by the API: {e}",
                    target.genre_id,
                    target.period_name()
                );
                out.evidence.fail(ctx, &e, &page_slug(target, page)).await?;
                out.read.stopped = Some(refused_reason(target.genre_id, e.kind().as_str()));
                break;
            }
            Err(e) if refused(e.kind()) => {
                out.evidence.fail(ctx, &e, &page_slug(target, page)).await?;
                out.read.lost.push(page);
            }
            Err(e) => out.failed.push((page, e)),
        }
    }
    Ok(out)
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
