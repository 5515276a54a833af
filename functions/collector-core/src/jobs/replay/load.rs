//! Each job's bodies, parsed by the client's own parsers, turned into rows by the job's
//! own builders and written by the job's own load: the only replay-specific code is
//! finding each body's request (its unit) and what the job run lost live.

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio_postgres::Transaction;

use crate::config::RankingTarget;
use crate::db::ledger::JobRun;
use crate::jobs::pipeline::{Loaded, Observed};
use crate::jobs::ranking::{self, Page, TargetRead};
use crate::jobs::Job;
use crate::jobs::{genre, is_active, item, tag, JobError, RowCounts};
use crate::rawstore::verify::Problem;
use crate::rawstore::{Manifest, ManifestEntry};

use super::units::{self, Unit};
use super::{store, ReplaySettings};

/// Loads one job run's checked bodies (`lost_units`: damaged or missing now) as observed
/// when its manifest was written; units that cannot be read are added to `problems`.
pub(super) async fn job(
    tx: &Transaction<'_>,
    job_run: &JobRun,
    manifest: &Manifest,
    bodies: &[(&ManifestEntry, Bytes)],
    lost_units: &[String],
    settings: ReplaySettings,
    problems: &mut Vec<Problem>,
) -> Result<Loaded, JobError> {
    let at = manifest.created_at;
    Ok(match job_run.job {
        Job::Ranking => {
            let day = ranking_day(manifest, bodies, lost_units, settings, problems);
            ranking::load(tx, job_run, &day).await?
        }
        Job::Item => {
            let mut details = Vec::new();
            let mut gone = Vec::new();
            for (entry, body) in bodies {
                let Some(Unit::Item { item_code }) = units::parse(&entry.unit) else {
                    problems.push(unknown_unit(entry));
                    continue;
                };
                match rakuten_client::models::parse_item_search(body) {
                    Ok(answer) => match item::detail_of(&item_code, &answer) {
                        Some(d) => details.push(d),
                        None => gone.push(item_code),
                    },
                    Err(e) => problems.push(unparsable(entry, &e)),
                }
            }
            let details: Vec<&item::DetailRow> = details.iter().collect();
            let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
            let counts = item::store::load_details(tx, &details, &gone, at).await?;
            Loaded {
                rows: BTreeMap::from([("rakuten_items".to_string(), counts)]),
                ..Loaded::default()
            }
        }
        Job::Genre => {
            let mut answers = Vec::new();
            for (entry, body) in bodies {
                let Some(Unit::Genre { genre_id }) = units::parse(&entry.unit) else {
                    problems.push(unknown_unit(entry));
                    continue;
                };
                match rakuten_client::models::parse_genre(body) {
                    Ok(g) => answers.push((genre_id, g)),
                    Err(e) => problems.push(unparsable(entry, &e)),
                }
            }
            let (rows, _missing) = genre::build_rows(&answers);
            genre::load(tx, job_run, &Observed { rows, at }).await?
        }
        Job::Tag => {
            let mut answers = Vec::new();
            for (entry, body) in bodies {
                let Some(Unit::Tags { tag_ids }) = units::parse(&entry.unit) else {
                    problems.push(unknown_unit(entry));
                    continue;
                };
                match rakuten_client::models::parse_tags(body) {
                    Ok(t) => answers.push((tag_ids, t)),
                    Err(e) => problems.push(unparsable(entry, &e)),
                }
            }
            let answers: Vec<(&[i64], _)> = answers
                .iter()
                .map(|(ids, t)| (&ids[..], t.clone()))
                .collect();
            let (groups, tags, _missing) = tag::build_rows(&answers);
            tag::load(
                tx,
                job_run,
                &Observed {
                    rows: (groups, tags),
                    at,
                },
            )
            .await?
        }
        Job::IsActive => {
            // As of the newest ranked day already loaded, never earlier: replaying an old
            // day must not turn back the active flags a later day set.
            let as_of = store::newest_snapshot_date(tx)
                .await?
                .map_or(manifest.run_date, |d| d.max(manifest.run_date));
            let window = i32::try_from(settings.active_window_days).unwrap_or(i32::MAX);
            let (total, activated, deactivated) =
                is_active::store::mark_active(tx, as_of, window).await?;
            let counts = RowCounts {
                updated: (activated + deactivated) as i32,
                unchanged: (total - activated - deactivated) as i32,
                ..RowCounts::default()
            };
            Loaded {
                rows: BTreeMap::from([("rakuten_items".to_string(), counts)]),
                ..Loaded::default()
            }
        }
    })
}

/// The Ranking job's day from a manifest: its targets from the units, each page's newest
/// body, and the pages that were lost live (the manifest's failures) or are damaged now.
fn ranking_day(
    manifest: &Manifest,
    bodies: &[(&ManifestEntry, Bytes)],
    lost_units: &[String],
    settings: ReplaySettings,
    problems: &mut Vec<Problem>,
) -> ranking::Day {
    type Reads = BTreeMap<(i64, String), (RankingTarget, TargetRead)>;
    fn slot(reads: &mut Reads, target: RankingTarget) -> &mut TargetRead {
        let key = (target.genre_id, target.period_name().to_string());
        let empty = TargetRead {
            pages: Vec::new(),
            lost: Vec::new(),
            stopped: None,
        };
        &mut reads.entry(key).or_insert((target, empty)).1
    }
    let mut reads = Reads::new();
    let mut answered = std::collections::HashSet::new();
    for (entry, body) in bodies {
        let Some(Unit::Ranking { target, page }) = units::parse(&entry.unit) else {
            problems.push(unknown_unit(entry));
            continue;
        };
        match rakuten_client::models::parse_ranking(body) {
            Ok(p) => {
                answered.insert(entry.unit.as_str());
                slot(&mut reads, target).pages.push(Page {
                    page,
                    items: p.items,
                    last_build_date: p.last_build_date,
                    title: p.title,
                });
            }
            Err(e) => {
                problems.push(unparsable(entry, &e));
                slot(&mut reads, target).lost.push(page);
            }
        }
    }
    for unit in lost_units {
        if let Some(Unit::Ranking { target, page }) = units::parse(unit) {
            slot(&mut reads, target).lost.push(page);
        }
    }
    let failures = manifest.verdict.iter().flat_map(|v| v.failures.iter());
    for f in failures.filter(|f| !answered.contains(f.unit.as_str())) {
        if let Some(Unit::Ranking { target, page }) = units::parse(&f.unit) {
            let genre_id = target.genre_id;
            let read = slot(&mut reads, target);
            if page == 1 && ranking::refused_kind(&f.error_kind) {
                read.stopped = Some(ranking::refused_reason(genre_id, &f.error_kind));
            } else {
                read.lost.push(page);
            }
        }
    }
    let (targets, reads): (Vec<RankingTarget>, Vec<TargetRead>) = reads.into_values().unzip();
    ranking::assemble(
        &targets,
        reads,
        manifest.run_date,
        manifest.created_at,
        settings.stale_policy,
    )
}

fn unknown_unit(entry: &ManifestEntry) -> Problem {
    Problem::Unreadable {
        key: entry.key.clone(),
        detail: format!("unit {:?} is not a request replay knows", entry.unit),
    }
}

fn unparsable(entry: &ManifestEntry, e: &serde_json::Error) -> Problem {
    Problem::Unreadable {
        key: entry.key.clone(),
        detail: format!("the body does not parse: {e}"),
    }
}
