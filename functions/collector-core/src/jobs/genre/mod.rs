//! JOB-G-01, Genre: the genre ids of this run's items (see [`super::run_items`]) not
//! fetched within `GENRE_REFRESH_DAYS`, one Genre Search each, raw bodies first. Saves
//! each genre and every ancestor its answer lists in `rakuten_genres` (id, names, level,
//! parent, root-first path) through staging with a content hash, and records in
//! `etl_refresh` that they were checked. Fails with `FailureRateExceeded` when more than
//! `GENRE_FAILURE_THRESHOLD` (1 %) of its requests fail after their retries.
//!
//! Both response shapes (2014/2017 `current`/`parents` and the 2026 flat
//! `genre`/`ancestors`) arrive normalised by the client.

mod store;

use std::collections::BTreeMap;

use std::time::Instant;

use futures_util::future::BoxFuture;
use rakuten_client::GenreResponse;
use tokio_postgres::Transaction;

use crate::db::ledger::JobRun;
use crate::jobs::Job;

use super::pipeline::{self, Evidence, Loaded, Observed};
use super::{lifecycle, AppContext, JobError, JobOutput, RunInput};

pub use store::GenreRow;

/// Genre Search requests in flight at once (the client's limiters set the pace).
const CONCURRENCY: usize = 4;

/// Runs the Genre job in an existing run. The one entry point for the Lambda and the CLI.
pub async fn run(ctx: &AppContext, input: RunInput) -> Result<JobOutput, JobError> {
    lifecycle::run_job(
        ctx,
        Some(input.run_id),
        Job::Genre,
        false,
        |job_run| async move { execute(ctx, &job_run).await },
    )
    .await
}

async fn execute(ctx: &AppContext, job_run: &JobRun) -> Result<JobOutput, JobError> {
    let started = Instant::now();
    let due = {
        let db = ctx.db().await?;
        let client = &db.client;
        store::due_genres(client, job_run.run.run_id, ctx.config.genre_refresh_days).await?
    };
    tracing::info!(
        due = due.len(),
        refresh_days = ctx.config.genre_refresh_days,
        "fetching genres"
    );

    let mut evidence = Evidence::new(job_run);
    let answers = pipeline::fetch_each(
        ctx,
        &mut evidence,
        &due,
        CONCURRENCY,
        |&id| ctx.rakuten.genre(id),
        |id| format!("genre-{id}"),
        |g: &GenreResponse| u64::from(g.current.is_some()) + g.parents.len() as u64,
    )
    .await?;
    let answers: Vec<(i64, GenreResponse)> = answers.into_iter().map(|(&id, g)| (id, g)).collect();
    let (rows, missing) = build_rows(&answers);

    let mut verdict = evidence.into_verdict();
    // `targets` in the output document: the ids due this run.
    verdict.extra.insert("targets".into(), due.len() as i64);
    if missing > 0 {
        verdict.extra.insert("missing".into(), missing);
    }
    let threshold = ctx.config.genre_failure_threshold;
    let rows = Observed::now(rows);
    pipeline::conclude(ctx, job_run, verdict, threshold, started, &rows, load).await
}

pub(crate) fn load<'t>(
    tx: &'t Transaction<'t>,
    job_run: &'t JobRun,
    rows: &'t Observed<Vec<GenreRow>>,
) -> BoxFuture<'t, Result<Loaded, JobError>> {
    Box::pin(async move {
        let counts = store::load_genres(tx, job_run, &rows.rows, rows.at).await?;
        Ok(Loaded {
            rows: BTreeMap::from([("rakuten_genres".to_string(), counts)]),
            ..Loaded::default()
        })
    })
}

/// Rows for every requested genre and each ancestor its answer lists, one per id (the
/// genre's own answer wins over an entry derived from another genre's ancestors), and
/// the number of answers that did not describe the requested genre.
pub fn build_rows(answers: &[(i64, GenreResponse)]) -> (Vec<GenreRow>, i64) {
    let mut own: BTreeMap<i64, GenreRow> = BTreeMap::new();
    let mut derived: BTreeMap<i64, GenreRow> = BTreeMap::new();
    let mut missing = 0;
    for (requested, resp) in answers {
        let Some(current) = resp
            .current
            .as_ref()
            .filter(|c| c.genre_id == *requested && c.genre_id > 0)
        else {
            tracing::warn!(
                genre_id = requested,
                "Genre Search answer does not describe the requested genre; skipped"
            );
            missing += 1;
            continue;
        };
        let mut chain: Vec<_> = resp
            .parents
            .iter()
            .filter(|p| p.genre_id > 0 && p.level > 0)
            .collect();
        chain.sort_by_key(|p| p.level);
        chain.push(current);
        let mut path_ids = Vec::with_capacity(chain.len());
        let mut path_names = Vec::with_capacity(chain.len());
        let mut parent_id = 0;
        for (i, node) in chain.iter().enumerate() {
            path_ids.push(node.genre_id);
            path_names.push(node.name.clone());
            let row = GenreRow {
                genre_id: node.genre_id,
                name: node.name.clone(),
                english_name: node.english_name.clone().filter(|s| !s.is_empty()),
                level: node.level,
                parent_id,
                path_ids: path_ids.clone(),
                path_names: path_names.clone(),
            };
            parent_id = node.genre_id;
            if i + 1 == chain.len() {
                own.insert(row.genre_id, row);
            } else {
                derived.entry(row.genre_id).or_insert(row);
            }
        }
    }
    for (id, row) in derived {
        own.entry(id).or_insert(row);
    }
    (own.into_values().collect(), missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rakuten_client::GenreNode;

    fn node(id: i64, level: i32, name: &str) -> GenreNode {
        GenreNode {
            genre_id: id,
            name: name.into(),
            level,
            english_name: Some(format!("{name}-en")),
        }
    }

    #[test]
    fn rows_carry_root_first_paths_for_the_genre_and_its_ancestors() {
        let resp = GenreResponse {
            current: Some(node(300, 3, "c")),
            // out of order and with the root: both are normalised away
            parents: vec![node(200, 2, "b"), node(0, 0, ""), node(100, 1, "a")],
            siblings: vec![],
            children: vec![],
            tag_groups: vec![],
        };
        let other = GenreResponse {
            current: Some(node(101, 1, "z")),
            parents: vec![],
            ..resp.clone()
        };
        let (rows, missing) = build_rows(&[
            (300, resp),
            (101, other),
            (
                5,
                GenreResponse {
                    current: None,
                    parents: vec![],
                    siblings: vec![],
                    children: vec![],
                    tag_groups: vec![],
                },
            ),
        ]);
        assert_eq!(missing, 1);
        let ids: Vec<i64> = rows.iter().map(|r| r.genre_id).collect();
        assert_eq!(ids, vec![100, 101, 200, 300]);
        let c = rows.iter().find(|r| r.genre_id == 300).unwrap();
        assert_eq!((c.level, c.parent_id), (3, 200));
        assert_eq!(c.path_ids, vec![100, 200, 300]);
        assert_eq!(c.path_names, vec!["a", "b", "c"]);
        let a = rows.iter().find(|r| r.genre_id == 100).unwrap();
        assert_eq!(
            (a.level, a.parent_id, a.path_ids.clone()),
            (1, 0, vec![100])
        );
        let b = rows.iter().find(|r| r.genre_id == 200).unwrap();
        assert_eq!((b.parent_id, b.path_ids.clone()), (100, vec![100, 200]));
        assert_eq!(
            rows.iter().find(|r| r.genre_id == 101).unwrap().parent_id,
            0
        );
    }
}
