//! JOB-R-01, Ranking: every configured target × page, raw objects first, then the day's
//! ranking snapshot and the item fields a ranking carries, through staging with a
//! content hash. Fails with `FailureRateExceeded` when more than the threshold (1 %) of
//! its units (pages, after retries) fail.

pub mod store;

use std::collections::{BTreeMap, HashSet};

use futures_util::{stream, StreamExt};
use rakuten_client::{RankingItem, RankingQuery};
use uuid::Uuid;

use crate::config::RankingTarget;
use crate::db::ledger::{Job, JobRun};
use crate::rawstore::RawStoreError;

use super::tally::{self, Tally};
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
        if event.is_null() {
            return Ok(Self::default());
        }
        serde_json::from_value(event)
            .map_err(|e| JobError::InvalidInput(format!("ranking event: {e}")))
    }
}

/// One fetched page, kept until the load.
struct Page {
    target: usize,
    page: u32,
    items: Vec<RankingItem>,
}

/// What fetching one target produced.
struct TargetResult {
    pages: Vec<Page>,
    tally: Tally,
    /// Every page up to the last one was fetched and stored: stale higher ranks may be deleted.
    complete: bool,
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
    let targets = &ctx.config.ranking_targets;
    let mut tally = Tally::new(ctx, job_run);

    // Targets are fetched concurrently; the client's limiters keep the pace. Each target
    // keeps its own tally (pages are sequential within a target), merged afterwards.
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
    let mut complete_targets = Vec::new();
    for (i, r) in results {
        let r = r?;
        if r.complete {
            complete_targets.push(i);
        }
        pages.extend(r.pages);
        tally.attempted += r.tally.attempted;
        tally.manifest.extend(r.tally.manifest);
        tally.failures.extend(r.tally.failures);
    }

    let checked = tally
        .check(ctx, job_run, ctx.config.ranking_failure_threshold)
        .await?;

    let (ranking_rows, item_rows) = build_rows(targets, &pages, job_run);
    let complete: Vec<(i64, String, i32)> = complete_targets
        .iter()
        .map(|&i| {
            let max_rank = ranking_rows
                .iter()
                .filter(|r| r.target == i)
                .map(|r| r.rank)
                .max()
                .unwrap_or(0);
            (
                targets[i].genre_id,
                targets[i].period_name().to_string(),
                max_rank,
            )
        })
        .collect();

    let mut guard = ctx.db().await?;
    let db = guard.as_mut().expect("connected");
    let tx = db.client.transaction().await?;
    let mut rows = BTreeMap::new();
    rows.insert(
        "rakuten_rankings".to_string(),
        store::load_rankings(&tx, job_run, &ranking_rows, &complete).await?,
    );
    rows.insert(
        "rakuten_items".to_string(),
        store::load_items(&tx, job_run, &item_rows).await?,
    );
    let output = checked.commit(&tx, rows).await?;
    tx.commit().await?;
    drop(guard);
    tally::publish(ctx, &output, job_run).await?;
    Ok(output)
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

async fn fetch_pages(
    ctx: &AppContext,
    job_run: &JobRun,
    index: usize,
    target: &RankingTarget,
) -> Result<TargetResult, RawStoreError> {
    let mut out = TargetResult {
        pages: Vec::new(),
        tally: Tally::new(ctx, job_run),
        complete: true,
    };
    for page in 1..=ctx.config.ranking_max_pages {
        out.tally.attempted += 1;
        let q = RankingQuery {
            genre_id: target.genre_id,
            period: target.period.clone(),
            page,
        };
        let slug = format!(
            "genre-{}_{}_page-{page:02}",
            target.genre_id,
            target.period_name()
        );
        match ctx.rakuten.ranking(&q).await {
            Ok(fetched) => {
                let records = fetched.parsed.items.len();
                if out
                    .tally
                    .store_raw(
                        ctx,
                        &slug,
                        &fetched.unit,
                        &fetched.body,
                        records as u64,
                        fetched.attempts,
                    )
                    .await?
                {
                    out.pages.push(Page {
                        target: index,
                        page,
                        items: fetched.parsed.items,
                    });
                } else {
                    out.complete = false;
                }
                if records < PAGE_SIZE {
                    break;
                }
            }
            Err(e) => {
                out.complete = false;
                out.tally.fail(&e, &slug);
            }
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
