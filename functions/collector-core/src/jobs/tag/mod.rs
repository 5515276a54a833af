//! JOB-T-01, Tag: the tag ids of this run's items (see [`super::run_items`]) not fetched
//! within `TAG_REFRESH_DAYS`, sorted and asked for in batches of at most
//! [`MAX_TAG_IDS`] (10) per Tag Search request — one request is one unit, its raw body
//! stored first. Saves `rakuten_tag_groups` and `rakuten_tags` through staging with a
//! content hash and records in `etl_refresh` the tags returned. Requested ids the API
//! does not return are counted in `extra.missing` (not failures). Fails with
//! `FailureRateExceeded` when more than `TAG_FAILURE_THRESHOLD` (1 %) of its requests
//! fail after their retries.

pub(crate) mod store;

use std::collections::{BTreeMap, BTreeSet};

use std::time::Instant;

use futures_util::future::BoxFuture;
use rakuten_client::{TagResponse, MAX_TAG_IDS};
use tokio_postgres::Transaction;

use crate::db::ledger::JobRun;
use crate::jobs::Job;

use super::pipeline::{self, Evidence, Loaded, Observed};
use super::{lifecycle, AppContext, JobError, JobOutput, RunInput};

pub use store::{TagGroupRow, TagRow};

/// Tag Search requests in flight at once (the client's limiters set the pace).
const CONCURRENCY: usize = 4;

/// Runs the Tag job in an existing run. The one entry point for the Lambda and the CLI.
pub async fn run(ctx: &AppContext, input: RunInput) -> Result<JobOutput, JobError> {
    lifecycle::run_job(
        ctx,
        Some(input.run_id),
        Job::Tag,
        false,
        |job_run| async move { execute(ctx, &job_run).await },
    )
    .await
}

/// The raw-store key_name of a batch: its first id and size, e.g. `tags-1000317-n10`.
pub fn batch_key_name(batch: &[i64]) -> String {
    format!(
        "tags-{}-n{}",
        batch.first().copied().unwrap_or(0),
        batch.len()
    )
}

async fn execute(ctx: &AppContext, job_run: &JobRun) -> Result<JobOutput, JobError> {
    let started = Instant::now();
    let due = {
        let db = ctx.db().await?;
        let client = &db.client;
        store::due_tags(client, job_run.run.run_id, ctx.config.tag_refresh_days).await?
    };
    let batches: Vec<&[i64]> = due.chunks(MAX_TAG_IDS).collect();
    tracing::info!(
        due = due.len(),
        requests = batches.len(),
        refresh_days = ctx.config.tag_refresh_days,
        "fetching tags"
    );

    let mut evidence = Evidence::new(job_run);
    let answers = pipeline::fetch_each(
        ctx,
        &mut evidence,
        &batches,
        CONCURRENCY,
        |batch| ctx.rakuten.tags(batch),
        |batch| batch_key_name(batch),
        |t: &TagResponse| t.tag_groups.iter().map(|g| g.tags.len() as u64).sum(),
    )
    .await?;
    let answers: Vec<(&[i64], TagResponse)> = answers.into_iter().map(|(&b, t)| (b, t)).collect();
    let (groups, tags, missing) = build_rows(&answers);

    let mut verdict = evidence.into_verdict();
    // `targets` in the output document: the ids due this run.
    verdict.extra.insert("targets".into(), due.len() as i64);
    verdict.extra.insert("missing".into(), missing);
    let threshold = ctx.config.tag_failure_threshold;
    let rows = Observed::now((groups, tags));
    pipeline::conclude(ctx, job_run, verdict, threshold, started, &rows, load).await
}

pub(crate) fn load<'t>(
    tx: &'t Transaction<'t>,
    job_run: &'t JobRun,
    observed: &'t Observed<(Vec<TagGroupRow>, Vec<TagRow>)>,
) -> BoxFuture<'t, Result<Loaded, JobError>> {
    Box::pin(async move {
        let (groups, tags) = &observed.rows;
        let rows = BTreeMap::from([
            (
                "rakuten_tag_groups".to_string(),
                store::load_tag_groups(tx, job_run, groups, observed.at).await?,
            ),
            (
                "rakuten_tags".to_string(),
                store::load_tags(tx, job_run, tags, observed.at).await?,
            ),
        ]);
        Ok(Loaded {
            rows,
            ..Loaded::default()
        })
    })
}

/// Group and tag rows (one per id, the first answer wins) and the number of requested
/// ids no answer returned.
pub fn build_rows(answers: &[(&[i64], TagResponse)]) -> (Vec<TagGroupRow>, Vec<TagRow>, i64) {
    let mut groups: BTreeMap<i64, TagGroupRow> = BTreeMap::new();
    let mut tags: BTreeMap<i64, TagRow> = BTreeMap::new();
    let mut missing = 0;
    for (requested, resp) in answers {
        let mut returned = BTreeSet::new();
        for g in &resp.tag_groups {
            groups.entry(g.tag_group_id).or_insert_with(|| TagGroupRow {
                tag_group_id: g.tag_group_id,
                name: g.name.clone(),
            });
            for t in &g.tags {
                returned.insert(t.tag_id);
                tags.entry(t.tag_id).or_insert_with(|| TagRow {
                    tag_id: t.tag_id,
                    name: t.name.clone(),
                    tag_group_id: g.tag_group_id,
                    parent_tag_id: t.parent_tag_id,
                });
            }
        }
        let absent: Vec<i64> = requested
            .iter()
            .copied()
            .filter(|id| !returned.contains(id))
            .collect();
        if !absent.is_empty() {
            tracing::info!(?absent, "tag ids not returned by Tag Search");
            missing += absent.len() as i64;
        }
    }
    (
        groups.into_values().collect(),
        tags.into_values().collect(),
        missing,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rakuten_client::{Tag, TagGroup};

    #[test]
    fn rows_and_missing_ids() {
        let resp = TagResponse {
            tag_groups: vec![TagGroup {
                tag_group_id: 7,
                name: "size".into(),
                tags: vec![
                    Tag {
                        tag_id: 1,
                        name: "S".into(),
                        parent_tag_id: 0,
                    },
                    Tag {
                        tag_id: 2,
                        name: "M".into(),
                        parent_tag_id: 1,
                    },
                ],
            }],
        };
        let requested = [1, 2, 3];
        let (groups, tags, missing) = build_rows(&[(&requested[..], resp)]);
        assert_eq!(
            groups,
            vec![TagGroupRow {
                tag_group_id: 7,
                name: "size".into()
            }]
        );
        assert_eq!(tags.len(), 2);
        assert_eq!((tags[1].tag_group_id, tags[1].parent_tag_id), (7, 1));
        assert_eq!(missing, 1);
        assert_eq!(batch_key_name(&requested), "tags-1-n3");
    }
}
