//! Snapshot provenance and quality (issue 9, SPEC §11): a ranking not rebuilt since the
//! previous day is flagged stale (or not stored, RANKING_STALE_POLICY=skip); a ranking
//! rebuilt while read is read again and stored consistent, or, rebuilt on every read,
//! stored as incomplete with the reason and the job failed with DataQualityFailed.

use collector_core::jobs::ranking::{self, Check, RankingInput};
use collector_core::jobs::{JobError, JobOutput};
use collector_core::rawstore::{LocalStore, Manifest, RawStore};
use ichiba_collector_tests::*;
use rakuten_sandbox::{RankingRebuild, SandboxConfig};
use tokio_postgres::Client;
use uuid::Uuid;

const EXTRA: &[(&str, &str)] = &[("RANKING_MAX_PAGES", "12")];

async fn open_run(c: &Client, day: &str) -> Uuid {
    let run_id = Uuid::new_v4();
    let date: chrono::NaiveDate = day.parse().unwrap();
    c.execute(
        "INSERT INTO etl_runs (run_id, env, run_date, trigger, lease_expires_at)
         VALUES ($1, 'local', $2, 'manual', now() + interval '1 hour')",
        &[&run_id, &date],
    )
    .await
    .unwrap();
    run_id
}

/// A fresh database and raw directory where the Ranking job of 2026-11-23 ran against 3,000
/// items whose ranking is rebuilt while it is read (`rebuild`); its outcome and requests.
async fn rebuilt_ranking(
    rebuild: RankingRebuild,
) -> (TestDb, tempfile::TempDir, Result<JobOutput, JobError>, u64) {
    let (db, raw) = db_and_raw().await;
    let cfg = SandboxConfig {
        ranking_rebuild: rebuild,
        ..sandbox_config(3000)
    };
    let (out, requests) = ranking_day(&db, raw.path(), "2026-11-23", cfg, EXTRA).await;
    (db, raw, out, requests)
}

/// Runs the Ranking job dated `day` against a sandbox built from `sandbox`.
async fn ranking_day(
    db: &TestDb,
    raw: &std::path::Path,
    day: &str,
    sandbox: SandboxConfig,
    extra: &[(&str, &str)],
) -> (Result<JobOutput, JobError>, u64) {
    let sandbox = start_sandbox(SandboxConfig {
        date: Some(day.into()),
        ..sandbox
    })
    .await;
    let ctx = job_context(db, &sandbox, raw, extra).await;
    let run_id = open_run(&db.client().await, day).await;
    let out = ranking::run(
        &ctx,
        RankingInput {
            run_id: Some(run_id),
        },
    )
    .await;
    let requests = sandbox.stats().requests;
    sandbox.shutdown().await;
    (out, requests)
}

async fn snapshot(c: &Client, day: &str) -> (bool, bool, i32, Option<String>) {
    let date: chrono::NaiveDate = day.parse().unwrap();
    let r = one_row(
        c,
        "SELECT stale, complete, row_count, missing_ranks FROM rakuten_ranking_snapshots
             WHERE snapshot_date = $1 AND ranking_genre_id = 0",
        &[&date],
    )
    .await;
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

async fn ranks_on(c: &Client, day: &str) -> i64 {
    let date: chrono::NaiveDate = day.parse().unwrap();
    scalar(
        c,
        "SELECT count(*) FROM rakuten_rankings WHERE snapshot_date = $1",
        &[&date],
    )
    .await
}

#[tokio::test]
async fn a_build_date_that_lags_the_run_date_flags_the_second_day_stale_or_skips_it() {
    for policy in ["keep", "skip"] {
        let (db, raw) = db_and_raw().await;
        let extra = [EXTRA[0], ("RANKING_STALE_POLICY", policy)];
        let (first, _) =
            ranking_day(&db, raw.path(), "2026-11-23", sandbox_config(3000), &extra).await;
        first.unwrap();
        // The next day the API still serves the 23rd's build (a day's lag).
        let lagging = SandboxConfig {
            build_date_lag_days: 1,
            ..sandbox_config(3000)
        };
        let (second, _) = ranking_day(&db, raw.path(), "2026-11-24", lagging, &extra).await;
        let second = second.expect("a stale ranking is not a failure");
        let c = db.client().await;
        let stale: Vec<_> = second
            .quality
            .iter()
            .filter(|f| f.check == Check::Stale)
            .collect();
        assert_eq!(stale.len(), 1, "{policy}: {:?}", second.quality);
        assert!(!stale[0].severe);
        assert_eq!(
            snapshot(&c, "2026-11-23").await,
            (false, true, 360, None),
            "{policy}: the first day"
        );
        match policy {
            "keep" => {
                assert_eq!(snapshot(&c, "2026-11-24").await, (true, true, 360, None));
                assert_eq!(ranks_on(&c, "2026-11-24").await, 360);
            }
            _ => {
                let (is_stale, complete, rows, why) = snapshot(&c, "2026-11-24").await;
                assert!(
                    is_stale && !complete && rows == 0,
                    "{is_stale} {complete} {rows}"
                );
                assert!(
                    why.as_deref()
                        .unwrap()
                        .contains("RANKING_STALE_POLICY=skip"),
                    "{why:?}"
                );
                assert_eq!(
                    ranks_on(&c, "2026-11-24").await,
                    0,
                    "no duplicate day stored"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_ranking_rebuilt_after_page_ten_is_read_again_and_stored_consistent() {
    let rebuilt_once = RankingRebuild::Once { after_pages: 10 };
    let (db, raw, out, requests) = rebuilt_ranking(rebuilt_once).await;
    let out = out.expect("a consistent second read succeeds");
    assert_eq!(requests, 24, "12 pages read twice");
    assert!(out.quality.iter().all(|f| !f.severe), "{:?}", out.quality);
    let c = db.client().await;
    assert_eq!(snapshot(&c, "2026-11-23").await, (false, true, 360, None));
    // Every stored page is of the second build: one lastBuildDate, an hour after midnight.
    let build: String = scalar(&c, "SELECT to_char(last_build_date AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM-DD HH24:MI') FROM rakuten_ranking_snapshots",
            &[]).await;
    assert_eq!(build, "2026-11-23 01:00");
    // Both reads are evidence: the first read's pages 11-12 and the second read's pages
    // 1-10 differ from what was kept before, so they are kept beside it.
    let store = LocalStore::new(raw.path().to_path_buf());
    let manifest = Manifest::read(&store, out.manifest_key.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(manifest.objects.len(), 12 + 10, "{:#?}", manifest.objects);
    assert!(store.describe().starts_with("file://"));
}

#[tokio::test]
async fn a_ranking_rebuilt_on_every_read_is_incomplete_with_the_reason_and_fails_the_job() {
    let (db, _raw, out, requests) = rebuilt_ranking(RankingRebuild::Every { pages: 5 }).await;
    let err = out.expect_err("mixed builds fail the job");
    assert_eq!(err.error_type(), "DataQualityFailed", "{err}");
    assert!(err.to_string().contains("mixed_build"), "{err}");
    assert_eq!(requests, 36, "three reads of 12 pages, then given up");
    let c = db.client().await;
    let (stale, complete, rows, why) = snapshot(&c, "2026-11-23").await;
    assert!(!stale && !complete && rows == 0);
    assert!(why.unwrap().contains("rebuilt while read"));
    assert_eq!(
        ranks_on(&c, "2026-11-23").await,
        0,
        "nothing of two builds stored"
    );
    let r = one_row(&c, "SELECT status, error_type, output->'quality'->0->>'check' FROM etl_job_runs WHERE job = 'ranking'",
            &[]).await;
    assert_eq!(
        (
            r.get::<_, String>(0),
            r.get::<_, Option<String>>(1),
            r.get::<_, Option<String>>(2)
        ),
        (
            "failed".into(),
            Some("DataQualityFailed".into()),
            Some("mixed_build".into())
        )
    );
    // `collector runs show` says it too.
    let run_id: Uuid = scalar(&c, "SELECT run_id FROM etl_runs", &[]).await;
    let run = collector_core::db::history::run(&c, run_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        run.jobs[0].quality[0]
            .starts_with("genre 0 daily: SEVERE mixed_build: ranking rebuilt while read"),
        "{:?}",
        run.jobs[0].quality
    );
}

/// The same item at two ranks of one snapshot is a severe finding. The API has not been
/// seen doing it, so the body is made by hand: page 1 of a real run with rank 2's item
/// code set to rank 1's, its manifest entry updated, then replayed through the same load.
#[tokio::test]
async fn an_item_at_two_ranks_is_a_severe_finding() {
    use collector_core::jobs::replay::{self, ReplayRequest, ReplaySettings};
    use collector_core::rawstore::ManifestEntry;

    let (db, raw) = db_and_raw().await;
    let extra = [("RANKING_MAX_PAGES", "2")];
    let (out, _) = ranking_day(&db, raw.path(), "2026-11-23", sandbox_config(3000), &extra).await;
    let out = out.unwrap();
    let store = LocalStore::new(raw.path().to_path_buf());
    let manifest_key = out.manifest_key.unwrap();
    let mut manifest = Manifest::read(&store, &manifest_key).await.unwrap();
    let entry = manifest
        .objects
        .iter_mut()
        .find(|e| e.key.ends_with("page-01.json"))
        .unwrap();
    let path = raw.path().join(&entry.key);
    let mut body: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let items = body["Items"].as_array_mut().unwrap();
    let code = |v: &serde_json::Value| v.get("Item").unwrap_or(v)["itemCode"].clone();
    let first = code(&items[0]);
    match items[1].get_mut("Item") {
        Some(wrapped) => wrapped["itemCode"] = first.clone(),
        None => items[1]["itemCode"] = first.clone(),
    }
    let bytes = serde_json::to_vec(&body).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    *entry = ManifestEntry {
        written_at: entry.written_at,
        ..ManifestEntry::new(
            entry.key.clone(),
            entry.unit.clone(),
            &bytes,
            entry.records,
            entry.outcome,
        )
    };
    std::fs::write(
        raw.path().join(&manifest_key),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();

    let rebuilt = TestDb::new().await;
    let mut c = rebuilt.client().await;
    let report = replay::replay(
        &mut c,
        &store,
        ReplaySettings {
            stale_policy: Default::default(),
            active_window_days: 7,
        },
        &ReplayRequest {
            env: "local".into(),
            from: "2026-11-23".parse().unwrap(),
            to: "2026-11-23".parse().unwrap(),
            jobs: vec![collector_core::jobs::Job::Ranking],
            dry_run: false,
        },
        |_, _, _| {},
    )
    .await
    .unwrap();
    assert_eq!(report.problems().count(), 0);
    let dups: Vec<_> = report.manifests[0]
        .quality
        .iter()
        .filter(|f| f.check == Check::DuplicateItem)
        .collect();
    assert_eq!(dups.len(), 1, "{:?}", report.manifests[0].quality);
    assert!(dups[0].severe);
    // Two ranks of the page (the body lists its items in no particular order).
    let detail = &dups[0].detail;
    let prefix = format!("{} at ranks ", first.as_str().unwrap());
    let ranks: Vec<i32> = detail
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{detail}"))
        .split(", ")
        .map(|r| r.parse().unwrap())
        .collect();
    assert!(
        ranks.len() == 2 && ranks.iter().all(|r| (1..=30).contains(r)),
        "{detail}"
    );
}
