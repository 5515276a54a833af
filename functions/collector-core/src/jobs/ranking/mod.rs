//! JOB-R-01, Ranking: every configured target × page, raw objects first, then the day's
//! ranking snapshot and the item fields a ranking carries, through staging with a
//! content hash. Fails with `FailureRateExceeded` when more than the threshold (1 %) of
//! its units (pages, after retries) fail.

pub mod store;

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::{stream, StreamExt};
use rakuten_client::{ApiError, ErrorKind, RankingItem, RankingQuery};
use tokio_postgres::Transaction;
use uuid::Uuid;

use crate::config::RankingTarget;
use crate::db::ledger::{Job, JobRun};
use crate::rawstore::RawStoreError;

use super::pipeline::{self, Evidence, Loaded};
use super::{lifecycle, AppContext, JobError, JobOutput};

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

/// One fetched page, kept until the load.
struct Page {
    target: usize,
    page: u32,
    items: Vec<RankingItem>,
    last_build_date: Option<String>,
    title: Option<String>,
}

/// What fetching one target produced.
struct TargetResult {
    pages: Vec<Page>,
    evidence: Evidence,
    /// Pages whose request failed after the client's retries: tried again at the end.
    failed: Vec<(u32, ApiError)>,
    /// Pages given up on, already recorded as failures.
    lost: Vec<u32>,
    /// Set when the target stopped early for good (the genre does not exist).
    stopped: Option<String>,
}

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
    let mut results: Vec<(usize, Result<TargetResult, RawStoreError>)> =
        stream::iter(fetches).buffer_unordered(4).collect().await;
    results.sort_by_key(|(i, _)| *i);

    let mut pages = Vec::new();
    let mut per_target: Vec<TargetResult> = Vec::with_capacity(targets.len());
    for (_, r) in results {
        let mut r = r?;
        pages.append(&mut r.pages);
        per_target.push(r);
    }

    // A page that failed after the client's retries gets one more try at the end, when a
    // short outage has likely passed: a hole in the day's snapshot is the worst outcome.
    for (i, r) in per_target.iter_mut().enumerate() {
        for (page, first_error) in std::mem::take(&mut r.failed) {
            tracing::info!(
                genre_id = targets[i].genre_id,
                page,
                "trying a failed ranking page again"
            );
            match fetch_page(ctx, &mut r.evidence, i, &targets[i], page).await? {
                Ok(p) => pages.push(p),
                Err(e) => {
                    tracing::warn!(first = %first_error, "ranking page failed again at the end of the job");
                    r.evidence
                        .fail(ctx, &e, &page_slug(&targets[i], page))
                        .await?;
                    r.lost.push(page);
                }
            }
        }
    }

    let mut evidence = Evidence::new(job_run);
    let mut snapshots = Vec::with_capacity(targets.len());
    for (i, r) in per_target.into_iter().enumerate() {
        let target_pages: Vec<&Page> = pages.iter().filter(|p| p.target == i).collect();
        let first = target_pages.iter().min_by_key(|p| p.page);
        snapshots.push(store::SnapshotInput {
            genre_id: targets[i].genre_id,
            period: targets[i].period_name().to_string(),
            last_build_date: first
                .and_then(|p| p.last_build_date.as_deref())
                .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok()),
            title: first.and_then(|p| p.title.clone()),
            pages: target_pages.len() as i32,
            failed_pages: r.lost.clone(),
            reason: r.stopped.clone(),
        });
        evidence.absorb(r.evidence);
    }

    let (ranking_rows, item_rows) = build_rows(targets, &pages, job_run);
    // Stale higher ranks of an earlier same-day run are deleted only for targets read to
    // their end without a gap.
    let complete: Vec<(i64, String, i32)> = snapshots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.failed_pages.is_empty() && s.reason.is_none())
        .map(|(i, s)| {
            let max_rank = ranking_rows
                .iter()
                .filter(|r| r.target == i)
                .map(|r| r.rank)
                .max()
                .unwrap_or(0);
            (s.genre_id, s.period.clone(), max_rank)
        })
        .collect();

    let verdict = evidence.into_verdict();
    let threshold = ctx.config.ranking_failure_threshold;
    let day = Day {
        ranking_rows,
        item_rows,
        complete,
        snapshots,
    };
    pipeline::conclude(ctx, job_run, verdict, threshold, started, &day, load).await
}

/// What the job loads: the day's ranking rows, the item fields they carry, the snapshots.
struct Day {
    ranking_rows: Vec<RankingRow>,
    item_rows: Vec<ItemRow>,
    /// Targets read to their end without a gap: (genre id, period, highest rank).
    complete: Vec<(i64, String, i32)>,
    snapshots: Vec<store::SnapshotInput>,
}

fn load<'t>(
    tx: &'t Transaction<'t>,
    job_run: &'t JobRun,
    day: &'t Day,
) -> BoxFuture<'t, Result<Loaded, JobError>> {
    Box::pin(async move {
        let rows = BTreeMap::from([
            (
                "rakuten_rankings".to_string(),
                store::load_rankings(tx, job_run, &day.ranking_rows, &day.complete).await?,
            ),
            (
                "rakuten_items".to_string(),
                store::load_items(tx, job_run, &day.item_rows).await?,
            ),
        ]);
        let states = store::upsert_snapshots(tx, job_run, &day.snapshots, PAGE_SIZE as i32).await?;
        let mut incomplete = Vec::new();
        for s in states.iter().filter(|s| !s.complete) {
            let text = format!(
                "genre {} {}: incomplete, missing {}",
                s.ranking_genre_id,
                s.period,
                s.missing_ranks.as_deref().unwrap_or("?")
            );
            tracing::warn!(snapshot = %text, "incomplete ranking snapshot");
            incomplete.push(text);
        }
        for s in states.iter().filter(|s| s.stale) {
            tracing::warn!(genre_id = s.ranking_genre_id, period = %s.period, "stale ranking: same lastBuildDate as the previous snapshot");
        }
        Ok(Loaded { rows, incomplete })
    })
}

/// Fetches one target's pages in order until a short page; stores each body before anything else.
async fn fetch_target(
    ctx: &AppContext,
    job_run: &JobRun,
    index: usize,
    target: &RankingTarget,
) -> (usize, Result<TargetResult, RawStoreError>) {
    (index, fetch_pages(ctx, job_run, index, target).await)
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
    index: usize,
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
        target: index,
        page,
        items: fetched.parsed.items,
        last_build_date: fetched.parsed.last_build_date,
        title: fetched.parsed.title,
    }))
}

/// A 4xx other than 429 is the API refusing the request itself: asking again, or for the
/// next page, gets the same answer.
fn refused(e: &ApiError) -> bool {
    matches!(e.kind(), ErrorKind::ClientError | ErrorKind::InvalidRequest)
}

async fn fetch_pages(
    ctx: &AppContext,
    job_run: &JobRun,
    index: usize,
    target: &RankingTarget,
) -> Result<TargetResult, RawStoreError> {
    let mut out = TargetResult {
        pages: Vec::new(),
        evidence: Evidence::new(job_run),
        failed: Vec::new(),
        lost: Vec::new(),
        stopped: None,
    };
    for page in 1..=ctx.config.ranking_max_pages {
        out.evidence.attempted += 1;
        match fetch_page(ctx, &mut out.evidence, index, target, page).await? {
            Ok(p) => {
                let last = p.items.len() < PAGE_SIZE;
                out.pages.push(p);
                if last {
                    break;
                }
            }
            Err(e) if page == 1 && refused(&e) => {
                // The genre does not exist (or has no ranking): one request, one failure.
                tracing::warn!(
                    genre_id = target.genre_id,
                    "ranking genre {} ({}) refused by the API: {e}",
                    target.genre_id,
                    target.period_name()
                );
                out.evidence.fail(ctx, &e, &page_slug(target, page)).await?;
                out.stopped = Some(format!("genre {} refused: {}", target.genre_id, e.kind()));
                break;
            }
            Err(e) if refused(&e) => {
                out.evidence.fail(ctx, &e, &page_slug(target, page)).await?;
                out.lost.push(page);
            }
            Err(e) => out.failed.push((page, e)),
        }
    }
    Ok(out)
}

/// Turns pages into snapshot rows (ranks sorted, duplicates dropped) and item rows (one per item code).
fn build_rows(
    targets: &[RankingTarget],
    pages: &[Page],
    job_run: &JobRun,
) -> (Vec<RankingRow>, Vec<ItemRow>) {
    let mut ranking_rows = Vec::new();
    let mut seen_ranks: HashSet<(usize, i32)> = HashSet::new();
    let mut items: BTreeMap<String, ItemRow> = BTreeMap::new();
    let mut sorted: Vec<&Page> = pages.iter().collect();
    sorted.sort_by_key(|p| (p.target, p.page));
    for p in sorted {
        let target = &targets[p.target];
        for it in &p.items {
            if it.item_code.is_empty() || !(1..=1000).contains(&it.rank) {
                tracing::warn!(
                    rank = it.rank,
                    "skipping a ranking entry without item code or with an out-of-range rank"
                );
                continue;
            }
            if !seen_ranks.insert((p.target, it.rank)) {
                tracing::warn!(
                    rank = it.rank,
                    genre_id = target.genre_id,
                    "duplicate rank in ranking; keeping the first"
                );
                continue;
            }
            ranking_rows.push(RankingRow::new(job_run.run.run_date, p.target, target, it));
            items
                .entry(it.item_code.clone())
                .or_insert_with(|| ItemRow::from_ranking(it));
        }
    }
    (ranking_rows, items.into_values().collect())
}
