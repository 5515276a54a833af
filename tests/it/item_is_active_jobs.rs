//! The Item job (details, gone items, time-boxed resume, threshold) and IsActive
//! (the window, the evidence rule).

use std::time::{Duration, SystemTime};

use collector_core::jobs::is_active;
use collector_core::jobs::item;
use collector_core::jobs::ranking::{self, RankingInput};
use collector_core::jobs::RunInput;
use collector_core::jobs::{AppContext, JobOutput};
use ichiba_collector_tests::*;
use rakuten_sandbox::{ErrorMode, SandboxConfig};
use tokio_postgres::Client;
use uuid::Uuid;

async fn ranked(ctx: &AppContext) -> Uuid {
    ranking::run(ctx, RankingInput::default())
        .await
        .expect("ranking")
        .run_id
}

/// A bigint `sql` answers about run `run_id` (its `$1`).
async fn of_run(c: &Client, sql: &str, run_id: Uuid) -> i64 {
    scalar(c, sql, &[&run_id]).await
}

/// The detail columns of every item, for comparing two databases.
async fn details(c: &Client) -> Vec<String> {
    column(c, "SELECT item_code || '|' || coalesce(array_to_string(tag_ids, ','), '-') || '|' || coalesce(item_price::text, '-') || '|'
                || coalesce(availability::text, '-') || '|' || coalesce(review_average::text, '-') || '|' || (gone_at IS NULL)::text
         FROM rakuten_items ORDER BY item_code",
        &[]).await
}

#[tokio::test]
async fn item_saves_details_and_tags_and_marks_vanished_items_gone() {
    let data = rakuten_sandbox::Dataset::generate(&sandbox_config(300));
    let (db, sandbox, raw, ctx) = job_env(sandbox_config(300), &[]).await;
    let run_id = ranked(&ctx).await;
    let c = db.client().await;
    // An item that was ranked but no longer exists: Item Search answers zero hits.
    c.execute(
        "INSERT INTO rakuten_rankings (snapshot_date, ranking_genre_id, period, rank, item_code, item_name, content_hash, run_id, saved_at)
         SELECT snapshot_date, 999, 'daily', 1, 'vanished-shop:1', 'gone', '\\x00', run_id, now() FROM rakuten_rankings WHERE run_id = $1 LIMIT 1",
        &[&run_id],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO rakuten_items (item_code, item_name, ranking_hash, ranking_saved_at) VALUES ('vanished-shop:1', 'gone', '\\x00', now())",
        &[],
    )
    .await
    .unwrap();

    let out = item::run(&ctx, RunInput { run_id }, None).await.unwrap();
    assert!(out.done);
    assert_eq!(out.extra["queued"], 301);
    assert_eq!(out.extra["saved"], 300);
    assert_eq!(out.extra["gone"], 1);
    assert_eq!(out.units.failed, 0);
    assert_eq!(
        out.rows["rakuten_items"].inserted, 300,
        "first details for 300 items"
    );
    assert_eq!(of_run(&c, "SELECT count(*) FROM rakuten_items WHERE detail_hash IS NOT NULL AND tag_ids IS NOT NULL AND $1::uuid IS NOT NULL", run_id).await, 300);
    assert_eq!(of_run(&c, "SELECT count(*) FROM rakuten_items WHERE gone_at IS NOT NULL AND item_code = 'vanished-shop:1' AND $1::uuid IS NOT NULL", run_id).await, 1);
    // Tag IDs match the source, item by item.
    for it in data.items.iter().take(300) {
        let row = c
            .query_opt(
                "SELECT tag_ids FROM rakuten_items WHERE item_code = $1",
                &[&it.item_code],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            let mut want: Vec<i64> = it.tag_ids.iter().map(|t| *t as i64).collect();
            want.sort_unstable();
            want.dedup();
            assert_eq!(row.get::<_, Vec<i64>>(0), want, "{}", it.item_code);
        }
    }
    // Sold-out items are looked up with availability=0, so they are saved, not gone.
    let sold_out = data.items.iter().filter(|i| i.availability == 0).count();
    assert!(sold_out > 0, "the dataset has sold-out items");
    // A manifest lists every stored response; latest.json points at it.
    let manifest: collector_core::rawstore::Manifest = serde_json::from_slice(
        &std::fs::read(raw.path().join(out.manifest_key.as_ref().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.object_count, 301);
    assert_eq!(manifest.total_records, 300);
    sandbox.shutdown().await;
}

async fn item_until_done(ctx: &AppContext, run_id: Uuid, budget: Duration) -> (JobOutput, usize) {
    let mut invocations = 0;
    loop {
        invocations += 1;
        let out = item::run(ctx, RunInput { run_id }, Some(SystemTime::now() + budget))
            .await
            .unwrap();
        if out.done {
            return (out, invocations);
        }
        assert!(out.extra["remaining"] > 0);
        assert!(invocations < 100, "no progress");
    }
}

#[tokio::test]
async fn a_time_boxed_item_job_equals_one_uninterrupted_run_and_fetches_nothing_twice() {
    let cfg = sandbox_config(240);
    let sandbox = start_sandbox(cfg).await;
    let extra = [
        ("RAKUTEN_REQUESTS_PER_SECOND", "150"),
        ("ITEM_BATCH_SIZE", "5"),
    ];

    // One uninterrupted invocation.
    let (db_a, raw_a) = db_and_raw().await;
    let ctx_a = job_context(&db_a, &sandbox, raw_a.path(), &extra).await;
    let run_a = ranked(&ctx_a).await;
    let whole = item::run(&ctx_a, RunInput { run_id: run_a }, None)
        .await
        .unwrap();
    assert!(whole.done);

    // The same work in invocations of 0.4 s each.
    let (db_b, raw_b) = db_and_raw().await;
    let ctx_b = job_context(&db_b, &sandbox, raw_b.path(), &extra).await;
    let run_b = ranked(&ctx_b).await;
    let before = sandbox.stats().requests;
    let (boxed, invocations) = item_until_done(&ctx_b, run_b, Duration::from_millis(400)).await;
    let item_requests = sandbox.stats().requests - before;
    println!(
        "time-boxed Item job: {invocations} invocations, {item_requests} requests for {} items",
        boxed.extra["queued"]
    );

    assert!(invocations >= 3, "only {invocations} invocations");
    assert_eq!(
        item_requests as i64, boxed.extra["queued"],
        "each item fetched exactly once"
    );
    assert_eq!(boxed.units, whole.units);
    assert_eq!(boxed.rows, whole.rows);
    assert_eq!(boxed.extra["saved"], whole.extra["saved"]);
    assert_eq!(
        details(&db_b.client().await).await,
        details(&db_a.client().await).await
    );
    let c = db_b.client().await;
    let r = one_row(
        &c,
        "SELECT invocations, attempt, status FROM etl_job_runs WHERE run_id = $1 AND job = 'item'",
        &[&run_b],
    )
    .await;
    assert_eq!(r.get::<_, i32>(0) as usize, invocations);
    assert_eq!(r.get::<_, i32>(1), 1, "continuations are not new attempts");
    assert_eq!(r.get::<_, String>(2), "succeeded");
    sandbox.shutdown().await;
}

/// Every genre as a ranking target: about 3,000 ranked items, so a fraction of failures is measurable.
fn many_targets(cfg: &SandboxConfig) -> String {
    let data = rakuten_sandbox::Dataset::generate(cfg);
    let mut ids = vec!["0".to_string()];
    ids.extend(
        data.genres
            .iter()
            .filter(|g| g.level == 1)
            .map(|g| g.id.to_string()),
    );
    ids.join(",")
}

#[tokio::test]
async fn item_threshold_tolerates_four_percent_and_fails_at_seven() {
    let base = sandbox_config(3000);
    let targets = many_targets(&base);
    let clean = start_sandbox(base.clone()).await;
    for (rate, should_fail) in [(0.04, false), (0.07, true)] {
        let (db, raw) = db_and_raw().await;
        let extra = [
            ("RANKING_TARGETS", targets.as_str()),
            ("RAKUTEN_MAX_ATTEMPTS", "2"),
            ("ITEM_BATCH_SIZE", "50"),
        ];
        let run_id = ranked(&job_context(&db, &clean, raw.path(), &extra).await).await;
        // Item Search against a copy of the sandbox that fails `rate` of the units for good.
        let faulty = start_sandbox(SandboxConfig {
            error_rate: rate,
            error_mode: ErrorMode::Persistent,
            ..base.clone()
        })
        .await;
        let ctx = job_context(&db, &faulty, raw.path(), &extra).await;
        let result = item::run(&ctx, RunInput { run_id }, None).await;
        let c = db.client().await;
        let (status, failed, attempted): (String, i32, i32) = {
            let r = one_row(&c, "SELECT status, failed, attempted FROM etl_job_runs WHERE run_id = $1 AND job = 'item'", &[&run_id]).await;
            (r.get(0), r.get(1), r.get(2))
        };
        println!(
            "item with {:.0} % injected failures: {failed} of {attempted} units failed → {status}",
            rate * 100.0
        );
        assert!(attempted >= 2500, "{attempted} units");
        if should_fail {
            let err = result.expect_err("7 % exceeds the 5 % threshold");
            assert_eq!(err.error_type(), "FailureRateExceeded");
            assert!(
                err.to_string()
                    .contains(&format!("{failed} of {attempted} units failed")),
                "{err}"
            );
            assert_eq!(status, "failed");
        } else {
            let out = result.expect("4 % is within the 5 % threshold");
            assert_eq!(out.units.failed, failed);
            assert!(failed > 0);
            assert_eq!(status, "succeeded");
            let recorded = of_run(
                &c,
                "SELECT count(*) FROM etl_failures WHERE run_id = $1 AND job = 'item'",
                run_id,
            )
            .await;
            assert_eq!(recorded, i64::from(failed));
        }
        faulty.shutdown().await;
    }
    clean.shutdown().await;
}

#[tokio::test]
async fn is_active_follows_the_window_and_refuses_without_evidence() {
    let (db, sandbox, raw, ctx) =
        job_env(sandbox_config(200), &[("ACTIVE_WINDOW_DAYS", "7")]).await;
    let run_id = ranked(&ctx).await;
    item::run(&ctx, RunInput { run_id }, None).await.unwrap();
    let c = db.client().await;
    // History: one item last ranked 30 days ago (should turn inactive), one ranked 6 days
    // ago (still active), one ranked today but marked inactive (should turn active).
    c.batch_execute(
        "INSERT INTO rakuten_items (item_code, item_name, ranking_hash, ranking_saved_at, is_active) VALUES
             ('old-shop:1', 'old', '\\x00', now(), true), ('recent-shop:1', 'recent', '\\x00', now(), false);
         INSERT INTO rakuten_rankings (snapshot_date, ranking_genre_id, period, rank, item_code, item_name, content_hash, run_id, saved_at)
         SELECT (SELECT run_date FROM etl_runs LIMIT 1) - 30, 0, 'daily', 1, 'old-shop:1', 'old', '\\x00', run_id, now() FROM etl_runs LIMIT 1;
         INSERT INTO rakuten_rankings (snapshot_date, ranking_genre_id, period, rank, item_code, item_name, content_hash, run_id, saved_at)
         SELECT (SELECT run_date FROM etl_runs LIMIT 1) - 6, 0, 'daily', 1, 'recent-shop:1', 'recent', '\\x00', run_id, now() FROM etl_runs LIMIT 1;
         UPDATE rakuten_items SET is_active = false WHERE item_code IN (SELECT item_code FROM rakuten_items WHERE item_code NOT LIKE '%-shop:1' ORDER BY item_code LIMIT 5);",
    )
    .await
    .unwrap();

    // Evidence rule: without the Item manifest nothing changes.
    let item_manifest: String = scalar(
        &c,
        "SELECT manifest_key FROM etl_job_runs WHERE run_id = $1 AND job = 'item'",
        &[&run_id],
    )
    .await;
    let path = raw.path().join(&item_manifest);
    let saved = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let state = "SELECT string_agg(item_code || is_active::text, ',' ORDER BY item_code) FROM rakuten_items WHERE $1::uuid IS NOT NULL";
    let before: String = scalar(&c, state, &[&run_id]).await;
    let err = is_active::run(&ctx, RunInput { run_id }).await.unwrap_err();
    assert_eq!(err.error_type(), "EvidenceMissing");
    assert!(err.to_string().contains(&item_manifest), "{err}");
    let after: String = scalar(&c, state, &[&run_id]).await;
    assert_eq!(before, after, "a refused IsActive changes nothing");

    // With the evidence back, it applies the window.
    std::fs::write(&path, saved).unwrap();
    let out = is_active::run(&ctx, RunInput { run_id }).await.unwrap();
    assert_eq!(out.extra["deactivated"], 1, "old-shop:1");
    assert_eq!(
        out.extra["activated"], 6,
        "recent-shop:1 and the five reset items"
    );
    // Independent check: active exactly for the items ranked in the window.
    let mismatches = of_run(
        &c,
        "WITH w AS (SELECT DISTINCT item_code FROM rakuten_rankings, etl_runs r
                    WHERE r.run_id = $1 AND snapshot_date > r.run_date - 7 AND snapshot_date <= r.run_date)
         SELECT count(*) FROM rakuten_items i LEFT JOIN w USING (item_code)
         WHERE i.is_active <> (w.item_code IS NOT NULL)",
        run_id,
    )
    .await;
    assert_eq!(mismatches, 0);
    assert_eq!(
        of_run(
            &c,
            "SELECT count(*) FROM rakuten_items WHERE is_active AND $1::uuid IS NOT NULL",
            run_id
        )
        .await,
        201
    );
    // Again: nothing to change.
    let again = is_active::run(&ctx, RunInput { run_id }).await.unwrap();
    assert_eq!(
        (again.extra["activated"], again.extra["deactivated"]),
        (0, 0)
    );
    sandbox.shutdown().await;
}

/// Case 6 of "succeeded means complete": a malformed 200 body is retried like a 5xx, and
/// the last malformed body of a unit that never got a good one is kept under a quarantine
/// key listed in the manifest, whose objects all verify. Truthful counters: Item's
/// retries are counted.
#[tokio::test]
async fn malformed_bodies_are_retried_and_the_last_one_kept_under_quarantine() {
    let (db, raw) = db_and_raw().await;
    // Ranking against a clean sandbox; Item against one with the same data whose Item
    // Search answers some items (the same ones every time) with a cut-short body.
    let clean = start_sandbox(sandbox_config(200)).await;
    let ctx = job_context(&db, &clean, raw.path(), &[]).await;
    let run_id = ranked(&ctx).await;
    clean.shutdown().await;
    let spoiled = start_sandbox(SandboxConfig {
        malformed_rate: 0.02,
        error_mode: ErrorMode::Persistent,
        ..sandbox_config(200)
    })
    .await;
    let ctx = job_context(&db, &spoiled, raw.path(), &[]).await;
    let out = item::run(&ctx, RunInput { run_id }, None).await.unwrap();
    assert!(out.done);
    let failed = out.units.failed as u64;
    assert!(failed > 0, "some items answer malformed bodies");
    // Each failed item was asked 4 times (RAKUTEN_MAX_ATTEMPTS): 3 retries each.
    assert_eq!(out.retries, 3 * failed, "{out:?}");
    assert_eq!(out.requests, 200 + 3 * failed);
    assert_eq!(spoiled.stats().malformed, 4 * failed);
    let c = db.client().await;
    let recorded_retries = of_run(
        &c,
        "SELECT retries::bigint FROM etl_job_runs WHERE run_id = $1 AND job = 'item'",
        run_id,
    )
    .await;
    assert_eq!(recorded_retries as u64, 3 * failed);
    let kinds = of_run(
        &c,
        "SELECT count(*) FROM etl_failures WHERE run_id = $1 AND job = 'item' AND error_kind = 'malformed'",
        run_id,
    )
    .await;
    assert_eq!(kinds as u64, failed);

    let manifest: collector_core::rawstore::Manifest = serde_json::from_slice(
        &std::fs::read(raw.path().join(out.manifest_key.as_ref().unwrap())).unwrap(),
    )
    .unwrap();
    let quarantined: Vec<_> = manifest
        .objects
        .iter()
        .filter(|o| o.is_quarantine())
        .collect();
    assert_eq!(quarantined.len() as u64, failed);
    for q in &quarantined {
        assert!(q.key.contains("/quarantine/"), "{}", q.key);
        let body = std::fs::read(raw.path().join(&q.key)).unwrap();
        assert!(
            serde_json::from_slice::<serde_json::Value>(&body).is_err(),
            "a quarantined body is the malformed one"
        );
    }
    let problems =
        collector_core::rawstore::verify::verify_manifest(ctx.store.as_ref(), &manifest).await;
    assert!(problems.is_empty(), "{problems:?}");
    spoiled.shutdown().await;
}

/// The Item refresh policy: the ranking itself keeps captions and point campaigns (so Item
/// Search is needed only for what the ranking lacks); details are fetched for items that
/// have none or older ones than ITEM_REFRESH_DAYS, best-ranked first, within the day's
/// ITEM_DAILY_REQUEST_BUDGET, which every run of the day shares.
#[tokio::test]
async fn item_details_follow_the_refresh_policy_and_the_daily_budget() {
    let data = rakuten_sandbox::Dataset::generate(&sandbox_config(200));
    let budget = [("ITEM_DAILY_REQUEST_BUDGET", "50")];
    let (db, sandbox, raw, ctx) = job_env(sandbox_config(200), &budget).await;
    let run_id = ranked(&ctx).await;
    let c = db.client().await;
    // Captions and point campaigns come with the ranking, before any Item Search.
    let with_caption = of_run(&c, "SELECT count(*) FROM rakuten_items WHERE item_caption IS NOT NULL AND $1::uuid IS NOT NULL", run_id).await;
    assert_eq!(with_caption, 200);
    let campaigns = data
        .items
        .iter()
        .filter(|i| !i.point_rate_start_time.is_empty())
        .count() as i64;
    assert!(campaigns > 0, "the dataset has point campaigns");
    let saved_campaigns = of_run(&c, "SELECT count(*) FROM rakuten_items WHERE point_rate_start_time IS NOT NULL AND $1::uuid IS NOT NULL", run_id).await;
    assert_eq!(saved_campaigns, campaigns);

    // The budget: 50 Item Search units today, the best-ranked items first.
    let out = item::run(&ctx, RunInput { run_id }, None).await.unwrap();
    assert_eq!(out.extra["queued"], 50);
    assert_eq!(out.requests, 50);
    let worst_fetched = of_run(
        &c,
        "SELECT max(r.rank)::bigint FROM rakuten_rankings r JOIN etl_item_queue q USING (item_code) WHERE q.run_id = $1",
        run_id,
    )
    .await;
    assert_eq!(worst_fetched, 50, "ranks 1-50 were fetched first");

    // A second run of the same day shares the budget: nothing is left.
    let second = ranked(&ctx).await;
    let out = item::run(&ctx, RunInput { run_id: second }, None)
        .await
        .unwrap();
    assert_eq!(out.extra["queued"], 0);
    assert_eq!(out.requests, 0);

    // Without a budget, the day's remaining 150 due items are fetched; the first 50 are
    // fresh (within ITEM_REFRESH_DAYS) and are not fetched again.
    let unbudgeted = job_context(&db, &sandbox, raw.path(), &[]).await;
    let third = ranked(&unbudgeted).await;
    let out = item::run(&unbudgeted, RunInput { run_id: third }, None)
        .await
        .unwrap();
    assert_eq!(out.extra["queued"], 150);
    assert_eq!(of_run(&c, "SELECT count(*) FROM rakuten_items WHERE detail_saved_at IS NOT NULL AND $1::uuid IS NOT NULL", run_id).await, 200);
    sandbox.shutdown().await;
}
