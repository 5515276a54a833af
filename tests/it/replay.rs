//! Replay (issue 9): the raw store is enough to rebuild the data tables. Two simulated
//! days of the jobnet against the sandbox, then `replay` into an empty database gives the
//! same rows (up to run ids and timestamps); a second replay changes nothing; a dry run
//! keeps nothing; a damaged object is reported and its unit not loaded; S3 works alike.

use std::sync::Arc;

use chrono::NaiveDate;
use collector_core::config::StalePolicy;
use collector_core::jobs::ranking::{self, RankingInput};
use collector_core::jobs::replay::{self, ReplayReport, ReplayRequest, ReplaySettings};
use collector_core::jobs::Job;
use collector_core::jobs::{genre, is_active, item, tag, AppContext, RunInput};
use collector_core::rawstore::verify::{self, Problem, Selection};
use collector_core::rawstore::{LocalStore, RawStore, S3Store};
use ichiba_collector_tests::*;
use rakuten_sandbox::SandboxConfig;
use tokio_postgres::Client;
use uuid::Uuid;

const DAY1: &str = "2026-11-23";
const DAY2: &str = "2026-11-24";
/// 10 pages (300 ranks) a day keeps the test quick; the churn still changes members.
const EXTRA: &[(&str, &str)] = &[("RANKING_MAX_PAGES", "10")];

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Opens a run dated `day` (as the jobnet would on that JST day).
async fn open_run(c: &Client, day: &str) -> Uuid {
    let run_id = Uuid::new_v4();
    c.execute(
        "INSERT INTO etl_runs (run_id, env, run_date, trigger, lease_expires_at)
         VALUES ($1, 'local', $2, 'manual', now() + interval '1 hour')",
        &[&run_id, &date(day)],
    )
    .await
    .unwrap();
    run_id
}

/// One simulated day of the jobnet: Ranking, Item, Genre, Tag, IsActive.
async fn live_day(ctx: &AppContext, c: &Client, day: &str) -> Uuid {
    let run_id = open_run(c, day).await;
    ranking::run(
        ctx,
        RankingInput {
            run_id: Some(run_id),
        },
    )
    .await
    .expect("ranking");
    let out = item::run(ctx, RunInput { run_id }, None)
        .await
        .expect("item");
    assert!(out.done);
    genre::run(ctx, RunInput { run_id }).await.expect("genre");
    tag::run(ctx, RunInput { run_id }).await.expect("tag");
    is_active::run(ctx, RunInput { run_id })
        .await
        .expect("is_active");
    run_id
}

fn day_sandbox(day: &str) -> SandboxConfig {
    SandboxConfig {
        date: Some(day.into()),
        ..sandbox_config(3000)
    }
}

/// The data tables as comparable text, without run ids and timestamps.
async fn tables(c: &Client) -> Vec<(String, Vec<String>)> {
    let queries = [
        ("rakuten_rankings", "SELECT to_jsonb(t) - 'run_id' - 'saved_at' FROM rakuten_rankings t ORDER BY snapshot_date, ranking_genre_id, period, rank"),
        ("rakuten_items", "SELECT to_jsonb(t) - 'ranking_saved_at' - 'first_seen_at' - 'detail_saved_at' - 'gone_at' || jsonb_build_object('gone', gone_at IS NOT NULL) FROM rakuten_items t ORDER BY item_code"),
        ("rakuten_genres", "SELECT to_jsonb(t) - 'run_id' - 'saved_at' FROM rakuten_genres t ORDER BY genre_id"),
        ("rakuten_tags", "SELECT to_jsonb(t) - 'run_id' - 'saved_at' FROM rakuten_tags t ORDER BY tag_id"),
        ("rakuten_tag_groups", "SELECT to_jsonb(t) - 'run_id' - 'saved_at' FROM rakuten_tag_groups t ORDER BY tag_group_id"),
        ("rakuten_ranking_snapshots", "SELECT to_jsonb(t) - 'run_id' - 'saved_at' FROM rakuten_ranking_snapshots t ORDER BY snapshot_date, ranking_genre_id, period"),
    ];
    let mut out = Vec::new();
    for (table, sql) in queries {
        let rows = rows(c, sql, &[]).await;
        out.push((
            table.to_string(),
            rows.iter()
                .map(|r| r.get::<_, serde_json::Value>(0).to_string())
                .collect(),
        ));
    }
    out
}

fn request(from: &str, to: &str, dry_run: bool) -> ReplayRequest {
    ReplayRequest {
        env: "local".into(),
        from: date(from),
        to: date(to),
        jobs: vec![Job::Ranking, Job::Item, Job::Genre, Job::Tag, Job::IsActive],
        dry_run,
    }
}

const SETTINGS: ReplaySettings = ReplaySettings {
    stale_policy: StalePolicy::Keep,
    active_window_days: 7,
};

async fn replay_into(db: &TestDb, store: &dyn RawStore, req: &ReplayRequest) -> ReplayReport {
    let mut c = db.client().await;
    replay::replay(&mut c, store, SETTINGS, req, |_, _, _| {})
        .await
        .expect("replay")
}

fn changed(r: &ReplayReport) -> (i32, i32, i32) {
    r.rows().values().fold((0, 0, 0), |(i, u, d), c| {
        (i + c.inserted, u + c.updated, d + c.deleted)
    })
}

#[tokio::test]
async fn replay_of_two_days_reproduces_the_live_tables_and_a_second_replay_changes_nothing() {
    let (live, raw) = db_and_raw().await;
    let c = live.client().await;
    for day in [DAY1, DAY2] {
        let sandbox = start_sandbox(day_sandbox(day)).await;
        let ctx = job_context(&live, &sandbox, raw.path(), EXTRA).await;
        live_day(&ctx, &c, day).await;
        sandbox.shutdown().await;
    }
    let expected = tables(&c).await;
    let ranked: usize = expected[0].1.len();
    assert_eq!(ranked, 600, "two days of 300 ranks");
    assert!(
        expected.iter().all(|(_, rows)| !rows.is_empty()),
        "every table has rows"
    );

    let store = LocalStore::new(raw.path().to_path_buf());
    // A dry run into an empty database says what would change and keeps nothing.
    let empty = TestDb::new().await;
    let dry = replay_into(&empty, &store, &request(DAY1, DAY2, true)).await;
    assert!(
        dry.rows()["rakuten_rankings"].inserted == 600,
        "{:?}",
        dry.rows()
    );
    let e = empty.client().await;
    assert_eq!(
        tables(&e).await.iter().map(|(_, r)| r.len()).sum::<usize>(),
        0
    );

    let rebuilt = TestDb::new().await;
    let first = replay_into(&rebuilt, &store, &request(DAY1, DAY2, false)).await;
    assert_eq!(
        first.problems().count(),
        0,
        "{:?}",
        first.problems().collect::<Vec<_>>()
    );
    assert_eq!(first.manifests.len(), 10, "5 job runs a day");
    assert_eq!(dry.rows(), first.rows(), "the dry run predicted the replay");
    let r = rebuilt.client().await;
    let got = tables(&r).await;
    for ((table, want), (_, have)) in expected.iter().zip(&got) {
        assert_eq!(want.len(), have.len(), "{table}: row count");
        for (w, h) in want.iter().zip(have) {
            assert_eq!(w, h, "{table}");
        }
    }
    // The ledger says what was rebuilt: one replay run per source run, on its date.
    let runs: Vec<(NaiveDate, String)> = rows(
        &r,
        "SELECT run_date, status FROM etl_runs WHERE trigger = 'replay' ORDER BY run_date",
        &[],
    )
    .await
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect();
    assert_eq!(
        runs,
        vec![
            (date(DAY1), "succeeded".to_string()),
            (date(DAY2), "succeeded".to_string())
        ]
    );

    let second = replay_into(&rebuilt, &store, &request(DAY1, DAY2, false)).await;
    assert_eq!(changed(&second), (0, 0, 0), "{:?}", second.rows());
    assert_eq!(tables(&r).await, got);
    // Replaying into the live database itself changes nothing either.
    let onto_live = replay_into(&live, &store, &request(DAY1, DAY2, false)).await;
    assert_eq!(changed(&onto_live), (0, 0, 0), "{:?}", onto_live.rows());
    eprintln!(
        "replay of two days: {} objects, {} rows in {} ms",
        first.units(),
        first
            .rows()
            .values()
            .map(|c| c.inserted + c.updated)
            .sum::<i32>(),
        first.duration_ms
    );
}

#[tokio::test]
async fn a_damaged_object_is_reported_by_replay_and_verify_and_its_page_is_not_loaded() {
    let (live, raw) = db_and_raw().await;
    let c = live.client().await;
    let sandbox = start_sandbox(day_sandbox(DAY1)).await;
    let ctx = job_context(&live, &sandbox, raw.path(), EXTRA).await;
    let run_id = open_run(&c, DAY1).await;
    ranking::run(
        &ctx,
        RankingInput {
            run_id: Some(run_id),
        },
    )
    .await
    .unwrap();
    // One byte of page 4 changed (same size, different SHA-256).
    let page = walkdir(raw.path())
        .into_iter()
        .find(|p| p.ends_with("genre-0_daily_page-04.json"))
        .expect("page 4 stored");
    let mut bytes = std::fs::read(&page).unwrap();
    let i = bytes.iter().position(|&b| b == b'"').unwrap();
    bytes[i + 1] ^= 0x01;
    std::fs::write(&page, &bytes).unwrap();

    let store = LocalStore::new(raw.path().to_path_buf());
    let report = verify::verify(&store, "local", &Selection::Date(date(DAY1)))
        .await
        .unwrap();
    let problems: Vec<&Problem> = report.problems().collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        matches!(problems[0], Problem::Sha256Mismatch { key, .. } if key.ends_with("page-04.json"))
    );

    let rebuilt = TestDb::new().await;
    let mut req = request(DAY1, DAY1, false);
    req.jobs = vec![Job::Ranking];
    let out = replay_into(&rebuilt, &store, &req).await;
    let problems: Vec<&Problem> = out.problems().collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        matches!(problems[0], Problem::Sha256Mismatch { key, .. } if key.ends_with("page-04.json"))
    );
    let r = rebuilt.client().await;
    let ranks: Vec<i32> = column(&r, "SELECT rank FROM rakuten_rankings ORDER BY rank", &[]).await;
    let want: Vec<i32> = (1..=90).chain(121..=300).collect();
    assert_eq!(ranks, want, "page 4 (ranks 91-120) is not loaded");
    let (complete, missing): (bool, Option<String>) = {
        let row = one_row(
            &r,
            "SELECT complete, missing_ranks FROM rakuten_ranking_snapshots",
            &[],
        )
        .await;
        (row.get(0), row.get(1))
    };
    assert_eq!((complete, missing.as_deref()), (false, Some("91-120")));
    let status: String = scalar(
        &r,
        "SELECT status FROM etl_runs WHERE trigger = 'replay'",
        &[],
    )
    .await;
    assert_eq!(status, "failed");
}

#[tokio::test]
async fn replay_of_a_day_from_s3_on_moto_matches_the_live_tables() {
    let s3 = moto_s3().await;
    let bucket = moto_bucket(&s3).await;
    let store: Arc<dyn RawStore> = Arc::new(S3Store::new(s3.clone(), bucket, "raw".into()));
    let (live, raw) = db_and_raw().await;
    let c = live.client().await;
    let sandbox = start_sandbox(day_sandbox(DAY1)).await;
    let ctx = job_context(&live, &sandbox, raw.path(), EXTRA)
        .await
        .with_store(Arc::clone(&store));
    live_day(&ctx, &c, DAY1).await;
    assert!(files_under(raw.path()).is_empty(), "everything went to S3");

    let rebuilt = TestDb::new().await;
    let out = replay_into(&rebuilt, store.as_ref(), &request(DAY1, DAY1, false)).await;
    assert_eq!(out.problems().count(), 0);
    assert_eq!(out.manifests.len(), 5);
    assert_eq!(tables(&rebuilt.client().await).await, tables(&c).await);
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .map(|(k, _)| dir.join(k))
        .collect()
}
