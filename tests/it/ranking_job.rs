//! The Ranking job end to end: sandbox over HTTP → local raw store → PostgreSQL.

use collector_core::jobs::ranking::{self, RankingInput};
use collector_core::rawstore::{Latest, Manifest};
use ichiba_collector_tests::*;
use md5::Md5;
use rakuten_sandbox::{ErrorMode, SandboxConfig};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn loads_the_snapshot_items_raw_objects_and_manifest() {
    let (db, sandbox, raw, ctx) = job_env(sandbox_config(1500), &[]).await;

    let out = ranking::run(&ctx, RankingInput::default())
        .await
        .expect("ranking job");
    let c = db.client().await;

    // 1000 ranks of the overall ranking: 33 full pages and a page of 10.
    assert_eq!(out.units.attempted, 34);
    assert_eq!(out.units.failed, 0);
    let snapshot = out.snapshot_date.unwrap();
    let rows: i64 = scalar(
        &c,
        "SELECT count(*) FROM rakuten_rankings WHERE snapshot_date = $1 AND ranking_genre_id = 0",
        &[&snapshot],
    )
    .await;
    assert_eq!(rows, 1000);
    assert_eq!(
        count(
            &c,
            "SELECT count(DISTINCT rank) FROM rakuten_rankings WHERE rank BETWEEN 1 AND 1000"
        )
        .await,
        1000
    );
    assert_eq!(count(&c, "SELECT count(*) FROM rakuten_items").await, 1000);
    assert_eq!(out.rows["rakuten_rankings"].inserted, 1000);
    assert_eq!(out.rows["rakuten_items"].inserted, 1000);
    // Every ranked item has its item row.
    assert_eq!(
        count(&c, "SELECT count(*) FROM rakuten_rankings r LEFT JOIN rakuten_items i USING (item_code) WHERE i.item_code IS NULL").await,
        0
    );

    // Raw objects: one per page plus the manifest and latest.json, checksums as listed.
    let files = files_under(raw.path());
    let pages: Vec<_> = files
        .iter()
        .filter(|(k, _)| k.contains("/genre-0_daily_page-"))
        .collect();
    assert_eq!(pages.len(), 34);
    let manifest_key = out.manifest_key.clone().unwrap();
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(raw.path().join(&manifest_key)).unwrap()).unwrap();
    assert_eq!(manifest.object_count, 34);
    assert!(manifest.complete);
    assert_eq!(manifest.total_records, 1000);
    for entry in &manifest.objects {
        let body = std::fs::read(raw.path().join(&entry.key)).unwrap();
        assert_eq!(entry.size, body.len() as u64, "{}", entry.key);
        assert_eq!(entry.sha256, hex::encode(Sha256::digest(&body)));
        assert_eq!(entry.md5, hex::encode(Md5::digest(&body)));
    }
    let latest: Latest =
        serde_json::from_slice(&std::fs::read(raw.path().join("local/latest.json")).unwrap())
            .unwrap();
    assert_eq!(latest.jobs["ranking"].manifest, manifest_key);
    assert_eq!(latest.jobs["ranking"].run_id, out.run_id);

    // The ledger: a succeeded run and job run with the counts.
    let r = one_row(&c, "SELECT j.status, j.attempted, j.failed, j.rows_inserted, j.raw_written, j.manifest_key, r.status
             FROM etl_job_runs j JOIN etl_runs r USING (run_id) WHERE j.run_id = $1 AND j.job = 'ranking'",
            &[&out.run_id]).await;
    assert_eq!(r.get::<_, String>(0), "succeeded");
    assert_eq!(r.get::<_, i32>(1), 34);
    assert_eq!(r.get::<_, i32>(2), 0);
    // 1,000 ranks, 1,000 items and the snapshot row.
    assert_eq!(r.get::<_, i32>(3), 2001);
    assert_eq!(r.get::<_, i32>(4), 34);
    assert_eq!(r.get::<_, String>(5), manifest_key);
    assert_eq!(r.get::<_, String>(6), "succeeded");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_second_run_the_same_day_rewrites_nothing_and_overwrites_no_object() {
    let (db, sandbox, raw, ctx) = job_env(sandbox_config(1200), &[]).await;

    let first = ranking::run(&ctx, RankingInput::default()).await.unwrap();
    let before = files_under(raw.path());
    let c = db.client().await;
    let last_write = "SELECT max(ranking_saved_at)::text || '/' || max(r.saved_at)::text FROM rakuten_items, rakuten_rankings r";
    let written_before: String = scalar(&c, last_write, &[]).await;

    // A new run the same day: every row unchanged.
    let second = ranking::run(&ctx, RankingInput::default()).await.unwrap();
    assert_ne!(first.run_id, second.run_id);
    let all_unchanged = collector_core::jobs::RowCounts {
        inserted: 0,
        updated: 0,
        unchanged: 1000,
        deleted: 0,
    };
    assert_eq!(second.rows["rakuten_rankings"], all_unchanged);
    assert_eq!(second.rows["rakuten_items"], all_unchanged);
    let ledger = one_row(
        &c,
        "SELECT rows_inserted, rows_updated, rows_unchanged FROM etl_job_runs WHERE run_id = $1",
        &[&second.run_id],
    )
    .await;
    assert_eq!(
        (
            ledger.get::<_, i32>(0),
            ledger.get::<_, i32>(1),
            ledger.get::<_, i32>(2)
        ),
        (0, 0, 2001)
    );
    // No row was rewritten: the newest write times are still the first run's.
    let written_after: String = scalar(&c, last_write, &[]).await;
    assert_eq!(written_after, written_before);

    // The first run's objects are untouched; the second run wrote its own.
    let after = files_under(raw.path());
    for (key, bytes) in before.iter().filter(|(k, _)| !k.ends_with("latest.json")) {
        let now = after
            .iter()
            .find(|(k, _)| k == key)
            .expect("object still there");
        assert_eq!(&now.1, bytes, "{key} changed");
    }

    // Rerunning the job inside the first run: identical bytes, nothing written, attempt 2.
    let rerun = ranking::run(&ctx, in_run(first.run_id)).await.unwrap();
    assert_eq!(rerun.attempt, 2);
    assert_eq!(rerun.raw_written, 0);
    assert_eq!(rerun.raw_identical, 34);
    assert!(rerun
        .manifest_key
        .unwrap()
        .ends_with("manifest.attempt-2.json"));
    let attempt: i32 = scalar(
        &c,
        "SELECT attempt FROM etl_job_runs WHERE run_id = $1 AND job = 'ranking'",
        &[&first.run_id],
    )
    .await;
    assert_eq!(attempt, 2);
    sandbox.shutdown().await;
}

/// Every genre of the sandbox as a ranking target: many units, so a fraction of failures is measurable.
fn all_genre_targets(config: &rakuten_sandbox::SandboxConfig) -> String {
    let data = rakuten_sandbox::Dataset::generate(config);
    let mut ids: Vec<String> = vec!["0".into()];
    ids.extend(
        data.genres
            .iter()
            .filter(|g| g.id != 0)
            .map(|g| g.id.to_string()),
    );
    ids.join(",")
}

#[tokio::test]
async fn failure_threshold_half_a_percent_succeeds_five_percent_fails() {
    // 0.5 % of units fail on every retry: below the 1 % threshold.
    let cfg = failing_config(6000, 0.005, ErrorMode::Persistent);
    let targets = all_genre_targets(&cfg);
    let extra = [
        ("RANKING_TARGETS", targets.as_str()),
        ("RAKUTEN_MAX_ATTEMPTS", "2"),
    ];
    let (db, sandbox, raw, ctx) = job_env(cfg, &extra).await;
    let c = db.client().await;
    let ok = ranking::run(&ctx, RankingInput::default())
        .await
        .expect("0.5 % failures are tolerated");
    println!(
        "0.5 %: {} of {} units failed ({:.3} %)",
        ok.units.failed,
        ok.units.attempted,
        ok.failure_rate * 100.0
    );
    assert!(ok.units.attempted >= 500, "{} units", ok.units.attempted);
    assert!(ok.units.failed > 0, "expected some injected failures");
    assert!(ok.failure_rate <= 0.01);
    let recorded: i64 = scalar(
        &c,
        "SELECT count(*) FROM etl_failures WHERE run_id = $1 AND error_kind = 'server_error'",
        &[&ok.run_id],
    )
    .await;
    assert_eq!(recorded, i64::from(ok.units.failed));
    sandbox.shutdown().await;

    // 5 %: the job fails with FailureRateExceeded naming the counts, and loads nothing.
    let sandbox = start_sandbox(SandboxConfig {
        date: Some("2026-11-24".into()),
        ..failing_config(6000, 0.05, ErrorMode::Persistent)
    })
    .await;
    let ctx = job_context(&db, &sandbox, raw.path(), &extra).await;
    let rows_before = count(&c, "SELECT count(*) FROM rakuten_rankings").await;
    let err = ranking::run(&ctx, RankingInput::default())
        .await
        .expect_err("5 % failures exceed the threshold");
    println!("5 %: {err}");
    let (failed, _) = &assert_failure_rate_exceeded(&err, 0.01);
    assert_eq!(
        count(&c, "SELECT count(*) FROM rakuten_rankings").await,
        rows_before,
        "a failed job loads nothing"
    );

    // The ledger shows both runs.
    let runs = rows(&c, "SELECT r.status, j.status, j.failed, j.error_type FROM etl_runs r JOIN etl_job_runs j USING (run_id) ORDER BY r.started_at", &[]).await;
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0].get::<_, String>(0), runs[0].get::<_, String>(1)),
        ("succeeded".into(), "succeeded".into())
    );
    assert_eq!(
        (runs[1].get::<_, String>(0), runs[1].get::<_, String>(1)),
        ("failed".into(), "failed".into())
    );
    assert_eq!(runs[1].get::<_, i32>(2), *failed);
    assert_eq!(
        runs[1].get::<_, Option<String>>(3).as_deref(),
        Some("FailureRateExceeded")
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn transient_server_errors_are_retried_away() {
    let (_db, sandbox, _raw, ctx) = job_env(
        failing_config(1000, 0.2, ErrorMode::Transient),
        &[("RAKUTEN_MAX_ATTEMPTS", "8")],
    )
    .await;
    let out = ranking::run(&ctx, RankingInput::default()).await.unwrap();
    assert_eq!(out.units.failed, 0);
    assert!(out.retries > 0, "20 % transient errors must cause retries");
    assert_eq!(out.requests, 34 + out.retries);
    assert_eq!(sandbox.stats().server_errors, out.retries);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_run_of_another_env_or_an_unknown_run_is_refused() {
    let (_db, sandbox, _raw, ctx) = job_env(sandbox_config(100), &[]).await;
    let missing = uuid::Uuid::new_v4();
    let err = ranking::run(&ctx, in_run(missing)).await.unwrap_err();
    assert_eq!(err.error_type(), "RunNotFound");
    assert!(err.to_string().contains(&missing.to_string()));
    let err = RankingInput::from_event(serde_json::json!({"run_id": "not-a-uuid"})).unwrap_err();
    assert_eq!(err.error_type(), "InvalidInput");
    let err = RankingInput::from_event(serde_json::json!({"runid": "x"})).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    assert_eq!(sandbox.stats().requests, 0);
}

#[tokio::test]
async fn a_genre_that_does_not_exist_costs_one_request_and_leaves_an_incomplete_snapshot() {
    // 200 items: the overall ranking has 7 pages (6 full, one of 20).
    let (db, sandbox, _raw, ctx) = job_env(
        sandbox_config(200),
        &[
            ("RANKING_TARGETS", "0,987654321"),
            ("RANKING_FAILURE_THRESHOLD", "0.5"),
        ],
    )
    .await;
    let before = sandbox.stats().requests;
    let out = ranking::run(&ctx, RankingInput::default())
        .await
        .expect("ranking job");
    // 7 pages of the overall ranking and one request for the unknown genre.
    assert_eq!(sandbox.stats().requests - before, 8);
    assert_eq!((out.units.attempted, out.units.failed), (8, 1));
    assert_eq!(out.incomplete.len(), 1, "{:?}", out.incomplete);
    assert!(
        out.incomplete[0].contains("genre 987654321"),
        "{:?}",
        out.incomplete
    );
    let c = db.client().await;
    let unit: String = scalar(&c, "SELECT unit FROM etl_failures", &[]).await;
    assert!(unit.contains("987654321"), "{unit}");
    let rows = rows(
        &c,
        "SELECT ranking_genre_id, complete, missing_ranks, row_count, pages, title IS NOT NULL
             FROM rakuten_ranking_snapshots ORDER BY ranking_genre_id",
        &[],
    )
    .await;
    assert_eq!(rows.len(), 2);
    let overall = &rows[0];
    assert_eq!(overall.get::<_, i64>(0), 0);
    assert!(overall.get::<_, bool>(1), "the overall ranking is complete");
    assert_eq!(overall.get::<_, Option<String>>(2), None);
    assert_eq!(overall.get::<_, i32>(3), 200);
    assert_eq!(overall.get::<_, i32>(4), 7);
    let unknown = &rows[1];
    assert!(!unknown.get::<_, bool>(1));
    assert!(
        unknown
            .get::<_, Option<String>>(2)
            .unwrap_or_default()
            .contains("refused"),
        "the reason is recorded"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn events_that_are_not_objects_are_refused() {
    let (db, sandbox, _raw, ctx) = job_env(sandbox_config(5), &[]).await;
    let id = uuid::Uuid::new_v4().to_string();
    for event in [
        serde_json::json!(null),
        serde_json::json!([]),
        serde_json::json!([id]),
    ] {
        let e = collector_core::jobs::dispatch(
            &ctx,
            collector_core::jobs::Job::Ranking,
            event.clone(),
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(e.error_type(), "InvalidInput", "{event}: {e}");
        assert!(e.to_string().contains("must be a JSON object"), "{e}");
    }
    let runs = count(&db.client().await, "SELECT count(*) FROM etl_runs").await;
    assert_eq!(runs, 0, "a refused event opens no run");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_page_that_keeps_failing_is_tried_again_at_the_end_and_named_as_missing_ranks() {
    let (db, sandbox, _raw, ctx) = page_three_fails("2").await;
    let out = ranking::run(&ctx, RankingInput::default())
        .await
        .expect("one page in seven is under the 20 % threshold");
    assert_eq!((out.units.attempted, out.units.failed), (7, 1));
    // Page 3: two tries in the pass, two more at the end of the job.
    let page3 = sandbox
        .requests()
        .iter()
        .filter(|r| r.query().contains("page=3") && r.status >= 500)
        .count();
    assert_eq!(page3, 4);
    assert_eq!(out.requests, 6 + 4, "requests are counted when sent");
    assert_eq!(out.retries, 2);
    assert_eq!(
        out.incomplete,
        vec!["genre 0 daily: incomplete, missing 61-90".to_string()]
    );
    // The incomplete snapshot holds every rank but the missing ones.
    let expected: Vec<i32> = (1..=200).filter(|r| !(61..=90).contains(r)).collect();
    assert_snapshot(&db, (false, Some("61-90"), 170), expected).await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_ranking_rerun_in_the_same_run_fills_the_hole() {
    let (db, sandbox, raw, ctx) = page_three_fails("1").await;
    let first = ranking::run(&ctx, RankingInput::default()).await.unwrap();
    assert_eq!(first.incomplete.len(), 1);
    sandbox.shutdown().await;
    // The same day again against a healthy sandbox: the hole is filled, the snapshot complete.
    let sandbox = start_sandbox(sandbox_config(200)).await;
    let ctx = job_context(&db, &sandbox, raw.path(), &[]).await;
    let second = ranking::run(&ctx, in_run(first.run_id)).await.unwrap();
    assert!(second.incomplete.is_empty(), "{:?}", second.incomplete);
    // A complete snapshot has ranks 1..N without a gap.
    assert_snapshot(&db, (true, None, 200), (1..=200).collect()).await;
    sandbox.shutdown().await;
}

/// Case 7 of "succeeded means complete": a Ranking that fails on the raw store still
/// records the requests it sent.
#[tokio::test]
async fn a_ranking_that_fails_on_the_raw_store_records_its_requests() {
    let (db, sandbox, dir) = job_parts(sandbox_config(100)).await;
    // The raw store's directory is a file: the first write fails.
    let raw = dir.path().join("not-a-directory");
    std::fs::write(&raw, b"x").unwrap();
    let ctx = job_context(&db, &sandbox, &raw, &[]).await;
    let err = ranking::run(&ctx, RankingInput::default())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "RawStoreError", "{err}");
    let c = db.client().await;
    let row = one_row(
        &c,
        "SELECT status, requests FROM etl_job_runs WHERE job = 'ranking'",
        &[],
    )
    .await;
    let (status, requests): (String, i32) = (row.get(0), row.get(1));
    assert_eq!(status, "failed");
    assert!(requests > 0);
    assert_eq!(requests as u64, sandbox.stats().requests);
    sandbox.shutdown().await;
}

/// The Ranking job's input for (another attempt in) run `run_id`.
fn in_run(run_id: uuid::Uuid) -> RankingInput {
    RankingInput {
        run_id: Some(run_id),
    }
}

/// 200 items whose overall ranking's page 3 always fails; a 20 % threshold and
/// `max_attempts` tries a request.
async fn page_three_fails(max_attempts: &str) -> JobEnv {
    let cfg = SandboxConfig {
        fail_ranking_pages: vec!["0:3".parse().unwrap()],
        ..sandbox_config(200)
    };
    job_env(
        cfg,
        &[
            ("RANKING_FAILURE_THRESHOLD", "0.2"),
            ("RAKUTEN_MAX_ATTEMPTS", max_attempts),
        ],
    )
    .await
}

/// The one snapshot row is (complete, missing_ranks, row_count) and the ranks stored are
/// `ranks`, in order.
async fn assert_snapshot(db: &TestDb, row: (bool, Option<&str>, i32), ranks: Vec<i32>) {
    let c = db.client().await;
    let r = one_row(
        &c,
        "SELECT complete, missing_ranks, row_count FROM rakuten_ranking_snapshots",
        &[],
    )
    .await;
    let got = (
        r.get::<_, bool>(0),
        r.get::<_, Option<String>>(1),
        r.get::<_, i32>(2),
    );
    assert_eq!((got.0, got.1.as_deref(), got.2), row);
    let stored: Vec<i32> = column(&c, "SELECT rank FROM rakuten_rankings ORDER BY rank", &[]).await;
    assert_eq!(stored, ranks);
}
