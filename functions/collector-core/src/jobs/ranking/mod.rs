//! JOB-R-01, Ranking: every configured target × page, raw objects first, then the day's
//! ranking snapshot and the item fields a ranking carries, through staging with a
//! content hash. Fails with `FailureRateExceeded` when more than the threshold (1 %) of
//! its units (pages, after retries) fail.

mod day;
pub mod quality;
pub mod store;

use std::time::Instant;

use futures_util::{stream, StreamExt};
use rakuten_client::{ApiError, ErrorKind, RankingQuery};
use uuid::Uuid;

use crate::config::RankingTarget;
use crate::db::ledger::JobRun;
use crate::jobs::Job;
use crate::rawstore::RawStoreError;

use super::pipeline::{self, Evidence};
use super::{lifecycle, AppContext, JobError, JobOutput};

use day::build_dates;
pub(crate) use day::{assemble, load, Day, Page, TargetRead};
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
    lifecycle::run_job(
        ctx,
        input.run_id,
        Job::Ranking,
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
                f.evidence
                    .fail(ctx, &e, &page_key_name(target, page))
                    .await?;
                f.read.lost.push(page);
            }
        }
    }
    f.read.pages.sort_by_key(|p| p.page);
    Ok(())
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

fn page_key_name(target: &RankingTarget, page: u32) -> String {
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
        .kept(ctx, &page_key_name(target, page), &fetched, records)
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
                out.evidence
                    .fail(ctx, &e, &page_key_name(target, page))
                    .await?;
                out.read.stopped = Some(refused_reason(target.genre_id, e.kind().as_str()));
                break;
            }
            Err(e) if refused(e.kind()) => {
                out.evidence
                    .fail(ctx, &e, &page_key_name(target, page))
                    .await?;
                out.read.lost.push(page);
            }
            Err(e) => out.failed.push((page, e)),
        }
    }
    Ok(out)
}
