//! The Genre (JOB-G-01) and Tag (JOB-T-01) jobs end to end: sandbox over HTTP → local raw
//! store → PostgreSQL, after a Ranking job so the run has items.
//!
//! The Item job is what fills `rakuten_items.tag_ids` in the jobnet. These tests do not
//! depend on it: after Ranking they copy each ranked item's tag ids from the sandbox's
//! own data set (`Dataset::generate`, same config → same data) with one UPDATE
//! ([`fill_tag_ids`]). `genre_id` comes from the ranking itself.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use collector_core::jobs::genre;
use collector_core::jobs::ranking::{self, RankingInput};
use collector_core::jobs::tag;
use collector_core::jobs::{AppContext, JobError, JobOutput, RowCounts, RunInput};
use ichiba_collector_tests::*;
use rakuten_sandbox::{Dataset, ErrorMode, SandboxConfig};
use uuid::Uuid;

/// Copies every item's tag ids from the data set into `rakuten_items.tag_ids` (the Item
/// job's work, done directly here), plus `extra` per item code.
async fn fill_tag_ids(db: &TestDb, data: &Dataset, extra: &[(&str, i64)]) {
    let mut map: BTreeMap<String, Vec<i64>> = data
        .items
        .iter()
        .map(|i| {
            (
                i.item_code.clone(),
                i.tag_ids.iter().map(|&t| t as i64).collect(),
            )
        })
        .collect();
    for (code, id) in extra {
        map.get_mut(*code).expect("known item").push(*id);
    }
    let doc = serde_json::to_value(&map).unwrap();
    db.client()
        .await
        .execute(
            "UPDATE rakuten_items i
             SET tag_ids = ARRAY(SELECT jsonb_array_elements_text(d.value)::bigint)
             FROM jsonb_each($1::jsonb) AS d WHERE i.item_code = d.key",
            &[&doc],
        )
        .await
        .unwrap();
}

/// A fresh database and raw directory where Ranking ran against an unlimited, fault-free
/// sandbox serving `cfg`'s data set, and the items' tag ids filled; the run.
async fn ranked_run(cfg: &SandboxConfig) -> (TestDb, tempfile::TempDir, Uuid, Dataset) {
    let (db, raw) = db_and_raw().await;
    let mut clean = cfg.clone();
    clean.rate_limit_per_sec = None;
    clean.error_rate = 0.0;
    let sandbox = start_sandbox(clean).await;
    let ctx = job_context(&db, &sandbox, raw.path(), &[]).await;
    let out = ranking::run(&ctx, RankingInput::default())
        .await
        .expect("ranking job");
    sandbox.shutdown().await;
    let data = Dataset::generate(cfg);
    fill_tag_ids(&db, &data, &[]).await;
    (db, raw, out.run_id, data)
}

/// The genre ids and tag ids of the items ranked in `run_id` (independent SQL).
async fn referenced(db: &TestDb, run_id: Uuid) -> (BTreeSet<i64>, BTreeSet<i64>) {
    let c = db.client().await;
    let genres = column(&c, "SELECT DISTINCT i.genre_id FROM rakuten_items i
             WHERE i.genre_id > 0 AND i.item_code IN (SELECT item_code FROM rakuten_rankings WHERE run_id = $1)",
            &[&run_id]).await;
    let tags = column(
        &c,
        "SELECT DISTINCT t FROM rakuten_items i, unnest(i.tag_ids) t
             WHERE i.item_code IN (SELECT item_code FROM rakuten_rankings WHERE run_id = $1)",
        &[&run_id],
    )
    .await;
    (genres, tags)
}

fn unchanged(n: i32) -> RowCounts {
    RowCounts {
        unchanged: n,
        ..RowCounts::default()
    }
}

async fn ledger_rows(db: &TestDb, run_id: Uuid, job: &str) -> (String, i32, i32, i32, i32) {
    let r = one_row(
        &db.client().await,
        "SELECT status, rows_inserted, rows_updated, rows_unchanged, attempt FROM etl_job_runs WHERE run_id = $1 AND job = $2",
        &[&run_id, &job],
    )
    .await;
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

#[tokio::test]
async fn genre_saves_every_referenced_genre_with_its_ancestors_and_reruns_rewrite_nothing() {
    let cfg = sandbox_config(1000);
    let (db, raw, run_id, data) = ranked_run(&cfg).await;
    let (genres, _) = referenced(&db, run_id).await;
    assert!(genres.len() > 20, "{} genres", genres.len());

    let sandbox = start_sandbox(cfg.clone()).await;
    let ctx = job_context(&db, &sandbox, raw.path(), &[]).await;
    let out = genre::run(&ctx, RunInput { run_id })
        .await
        .expect("genre job");
    println!(
        "genre: {} targets, {} requests, rows {:?}",
        out.extra["targets"], out.requests, out.rows
    );
    assert_eq!(out.extra["targets"], genres.len() as i64);
    assert_eq!(out.units.attempted as usize, genres.len());
    assert_eq!(out.units.failed, 0);
    assert_eq!(sandbox.stats().requests, genres.len() as u64);

    // Expected: every referenced genre and each of its ancestors (the root excluded).
    let mut expected = BTreeSet::new();
    for &g in &genres {
        expected.insert(g);
        for a in data.ancestors(g as u64) {
            expected.insert(a.id as i64);
        }
    }
    assert!(expected.len() > genres.len(), "some genres have ancestors");
    let c = db.client().await;
    let rows = rows(&c, "SELECT genre_id, name, english_name, level, parent_id, path_ids, path_names, run_id FROM rakuten_genres ORDER BY genre_id",
            &[]).await;
    let saved: BTreeSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(saved, expected);
    assert_eq!(out.rows["rakuten_genres"].inserted as usize, expected.len());
    for r in &rows {
        let id: i64 = r.get(0);
        let g = data.genre(id as u64).expect("a sandbox genre");
        assert_eq!(r.get::<_, String>(1), g.name, "{id}");
        assert_eq!(
            r.get::<_, Option<String>>(2).as_deref(),
            Some(g.english_name.as_str())
        );
        assert_eq!(r.get::<_, i32>(3), g.level as i32, "{id}");
        assert_eq!(r.get::<_, i64>(4), g.parent as i64, "{id}");
        let mut path: Vec<i64> = data.ancestors(g.id).iter().map(|a| a.id as i64).collect();
        path.push(id);
        let mut names: Vec<String> = data
            .ancestors(g.id)
            .iter()
            .map(|a| a.name.clone())
            .collect();
        names.push(g.name.clone());
        assert_eq!(r.get::<_, Vec<i64>>(5), path, "{id}");
        assert_eq!(r.get::<_, Vec<String>>(6), names, "{id}");
        assert_eq!(r.get::<_, Uuid>(7), run_id);
        assert_eq!(path.len(), g.level as usize);
    }
    // Every parent is itself saved (level 1 → 0 = the root).
    assert_eq!(
        count(&c, "SELECT count(*) FROM rakuten_genres g WHERE g.parent_id <> 0 AND NOT EXISTS (SELECT 1 FROM rakuten_genres p WHERE p.genre_id = g.parent_id)").await,
        0
    );
    // Refresh bookkeeping for every genre saved; raw objects one per request.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM etl_refresh WHERE entity = 'genre'"
        )
        .await,
        expected.len() as i64
    );
    let objects = files_under(raw.path())
        .into_iter()
        .filter(|(k, _)| k.contains("/genre/") && k.contains("/genre-") && !k.contains("manifest"))
        .count();
    assert_eq!(objects, genres.len());
    assert_eq!(ledger_rows(&db, run_id, "genre").await.0, "succeeded");

    let last_write = "SELECT max(saved_at)::text FROM rakuten_genres";
    let written: String = scalar(&c, last_write, &[]).await;

    // Rerun in the same run: everything was refreshed just now → no targets, no request.
    let before = sandbox.stats().requests;
    let rerun = genre::run(&ctx, RunInput { run_id }).await.unwrap();
    assert_eq!(rerun.attempt, 2);
    assert_eq!(rerun.extra["targets"], 0);
    assert_eq!(rerun.units.attempted, 0);
    assert_eq!(rerun.rows["rakuten_genres"], RowCounts::default());
    assert_eq!(sandbox.stats().requests, before);

    // With GENRE_REFRESH_DAYS=0 every genre is fetched again: all unchanged, none rewritten.
    let ctx0 = job_context(&db, &sandbox, raw.path(), &[("GENRE_REFRESH_DAYS", "0")]).await;
    let again = genre::run(&ctx0, RunInput { run_id }).await.unwrap();
    assert_eq!(again.extra["targets"], genres.len() as i64);
    assert_eq!(
        again.rows["rakuten_genres"],
        unchanged(expected.len() as i32)
    );
    let (status, ins, upd, unch, attempt) = ledger_rows(&db, run_id, "genre").await;
    assert_eq!(
        (status.as_str(), ins, upd, unch, attempt),
        ("succeeded", 0, 0, expected.len() as i32, 3)
    );
    let written_after: String = scalar(&c, last_write, &[]).await;
    assert_eq!(written_after, written, "no genre row rewritten");
    assert_eq!(
        again.raw_identical as usize,
        genres.len(),
        "same answers, same bytes"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn tag_saves_every_referenced_tag_with_its_group_in_batches_of_ten() {
    let cfg = sandbox_config(600);
    let (db, raw, run_id, data) = ranked_run(&cfg).await;
    // One id the API does not know: counted as missing, not as a failure.
    let unknown = 999_999_999_i64;
    fill_tag_ids(&db, &data, &[(&data.items[0].item_code, unknown)]).await;
    let (_, tags) = referenced(&db, run_id).await;
    assert!(tags.len() > 50, "{} tags", tags.len());

    let sandbox = start_sandbox(cfg.clone()).await;
    let ctx = job_context(&db, &sandbox, raw.path(), &[]).await;
    let out = tag::run(&ctx, RunInput { run_id }).await.expect("tag job");
    let batches = tags.len().div_ceil(10);
    println!(
        "tag: {} targets in {} requests, missing {}, rows {:?}",
        out.extra["targets"], out.requests, out.extra["missing"], out.rows
    );
    assert_eq!(out.extra["targets"], tags.len() as i64);
    assert_eq!(out.units.attempted as usize, batches);
    assert_eq!(out.requests as usize, batches);
    assert_eq!(sandbox.stats().requests as usize, batches);
    assert_eq!(out.units.failed, 0);
    assert_eq!(out.extra["missing"], 1);

    let c = db.client().await;
    let rows = rows(
        &c,
        "SELECT t.tag_id, t.name, t.tag_group_id, t.parent_tag_id, g.name
             FROM rakuten_tags t JOIN rakuten_tag_groups g USING (tag_group_id) ORDER BY t.tag_id",
        &[],
    )
    .await;
    let saved: BTreeSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    let known: BTreeSet<i64> = tags.iter().copied().filter(|&t| t != unknown).collect();
    assert_eq!(saved, known, "every referenced tag, nothing else");
    for r in &rows {
        let id: i64 = r.get(0);
        let t = data.tag(id as u64).expect("a sandbox tag");
        let g = data.tag_group(t.group_id).expect("its group");
        assert_eq!(r.get::<_, String>(1), t.name);
        assert_eq!(r.get::<_, i64>(2), t.group_id as i64);
        assert_eq!(r.get::<_, i64>(3), t.parent_tag_id as i64);
        assert_eq!(r.get::<_, String>(4), g.name);
    }
    let groups: BTreeSet<u64> = known
        .iter()
        .map(|&t| data.tag(t as u64).unwrap().group_id)
        .collect();
    assert_eq!(
        count(&c, "SELECT count(*) FROM rakuten_tag_groups").await,
        groups.len() as i64
    );
    assert_eq!(out.rows["rakuten_tags"].inserted as usize, known.len());
    assert_eq!(
        out.rows["rakuten_tag_groups"].inserted as usize,
        groups.len()
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM etl_refresh WHERE entity = 'tag'").await,
        known.len() as i64
    );
    // Every request asked for ≤ 10 ids: the raw objects name their batch size.
    let objects: Vec<String> = files_under(raw.path())
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.contains("/tag/") && k.contains("/tags-"))
        .collect();
    assert_eq!(objects.len(), batches);
    for k in &objects {
        let n: usize = k
            .rsplit("-n")
            .next()
            .unwrap()
            .trim_end_matches(".json")
            .parse()
            .unwrap();
        assert!((1..=10).contains(&n), "{k}");
    }

    // Rerun in the same run: only the unknown id is still due; nothing rewritten.
    let last_write = "SELECT max(saved_at)::text FROM rakuten_tags";
    let written: String = scalar(&c, last_write, &[]).await;
    let rerun = tag::run(&ctx, RunInput { run_id }).await.unwrap();
    assert_eq!(rerun.extra["targets"], 1);
    assert_eq!(rerun.extra["missing"], 1);
    assert_eq!(rerun.total_rows(), RowCounts::default());

    // TAG_REFRESH_DAYS=0: every tag fetched again, all unchanged.
    let ctx0 = job_context(&db, &sandbox, raw.path(), &[("TAG_REFRESH_DAYS", "0")]).await;
    let again = tag::run(&ctx0, RunInput { run_id }).await.unwrap();
    assert_eq!(again.units.attempted as usize, batches);
    assert_eq!(again.rows["rakuten_tags"], unchanged(known.len() as i32));
    assert_eq!(
        again.rows["rakuten_tag_groups"],
        unchanged(groups.len() as i32)
    );
    let (status, ins, upd, _, attempt) = ledger_rows(&db, run_id, "tag").await;
    assert_eq!((status.as_str(), ins, upd, attempt), ("succeeded", 0, 0, 3));
    let written_after: String = scalar(&c, last_write, &[]).await;
    assert_eq!(written_after, written, "no tag row rewritten");
    sandbox.shutdown().await;
}

/// Asserts a FailureRateExceeded with the counts in its message, a failed ledger row and nothing loaded.
async fn assert_rejected(db: &TestDb, run_id: Uuid, job: &str, table: &str, err: JobError) {
    println!("{job} at 2 %: {err}");
    let (failed, attempted) = &assert_failure_rate_exceeded(&err, 0.01);
    let c = db.client().await;
    let r = one_row(&c, "SELECT status, failed, attempted, error_type FROM etl_job_runs WHERE run_id = $1 AND job = $2",
            &[&run_id, &job]).await;
    assert_eq!(r.get::<_, String>(0), "failed");
    assert_eq!(r.get::<_, i32>(1), *failed);
    assert_eq!(r.get::<_, i32>(2), *attempted);
    assert_eq!(
        r.get::<_, Option<String>>(3).as_deref(),
        Some("FailureRateExceeded")
    );
    let failures: i64 = scalar(
        &c,
        "SELECT count(*) FROM etl_failures WHERE run_id = $1 AND job = $2",
        &[&run_id, &job],
    )
    .await;
    assert_eq!(failures, i64::from(*failed));
    assert_eq!(
        count(&c, &format!("SELECT count(*) FROM {table}")).await,
        0,
        "nothing loaded"
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM etl_refresh").await,
        0,
        "nothing marked refreshed"
    );
}

#[tokio::test]
async fn genre_and_tag_fail_at_two_percent_persistent_failures_and_succeed_at_zero() {
    // Many genres and tags so that 2 % of the units is several units.
    let mut cfg = sandbox_config(1000);
    cfg.genres = 3000;
    cfg.tags = 30000;
    let (db, raw, run_id, _) = ranked_run(&cfg).await;
    let (genres, tags) = referenced(&db, run_id).await;
    println!(
        "{} genre units, {} tag units",
        genres.len(),
        tags.len().div_ceil(10)
    );

    let sandbox = start_sandbox(SandboxConfig {
        error_rate: 0.02,
        error_mode: ErrorMode::Persistent,
        ..cfg.clone()
    })
    .await;
    let ctx = job_context(&db, &sandbox, raw.path(), &[("RAKUTEN_MAX_ATTEMPTS", "2")]).await;
    let err = genre::run(&ctx, RunInput { run_id })
        .await
        .expect_err("2 % failures exceed the 1 % threshold");
    assert_rejected(&db, run_id, "genre", "rakuten_genres", err).await;
    let err = tag::run(&ctx, RunInput { run_id })
        .await
        .expect_err("2 % failures exceed the 1 % threshold");
    assert_rejected(&db, run_id, "tag", "rakuten_tags", err).await;
    sandbox.shutdown().await;

    // 0 %: both succeed when rerun in the same run.
    let sandbox = start_sandbox(cfg.clone()).await;
    let ctx = job_context(&db, &sandbox, raw.path(), &[]).await;
    let g = genre::run(&ctx, RunInput { run_id }).await.unwrap();
    let t = tag::run(&ctx, RunInput { run_id }).await.unwrap();
    assert_eq!((g.units.failed, t.units.failed), (0, 0));
    assert_eq!(g.units.attempted as usize, genres.len());
    assert_eq!(t.units.attempted as usize, tags.len().div_ceil(10));
    assert_eq!((g.attempt, t.attempt), (2, 2));
    assert_eq!(ledger_rows(&db, run_id, "genre").await.0, "succeeded");
    assert_eq!(ledger_rows(&db, run_id, "tag").await.0, "succeeded");
    sandbox.shutdown().await;
}

/// Genre and Tag at the same time, each in a context of its own (as two Lambdas are),
/// share one request budget through PostgreSQL: all their sends together are at least
/// one interval apart. Asserted on the send instants the clients record — what the code
/// controls — so a busy machine can slow the test down but not fail it. How many 429s
/// the sandbox's 1 request/s limit draws at the real pace is measured by
/// `scripts/bench-pacing.sh`, not here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genre_and_tag_concurrently_share_one_rate_budget() {
    let mut cfg = sandbox_config(90);
    cfg.genres = 30;
    cfg.tags = 200;
    let (db, raw, run_id, _) = ranked_run(&cfg).await;
    let (genres, tags) = referenced(&db, run_id).await;
    let expected_requests = genres.len() + tags.len().div_ceil(10);

    let sandbox = start_sandbox(cfg).await;
    let conf = || {
        job_config(
            &db,
            &sandbox,
            raw.path(),
            &[
                ("RAKUTEN_REQUESTS_PER_SECOND", "5"),
                ("RAKUTEN_SHARED_BUDGET", "postgres"),
            ],
        )
    };
    let (genre_ctx, tag_ctx): (AppContext, AppContext) =
        (context(conf()).await, context(conf()).await);

    let started = Instant::now();
    let (g, t) = tokio::join!(
        genre::run(&genre_ctx, RunInput { run_id }),
        tag::run(&tag_ctx, RunInput { run_id }),
    );
    let secs = started.elapsed().as_secs_f64();
    let (g, t): (JobOutput, JobOutput) = (g.unwrap(), t.unwrap());
    let (genre_sends, tag_sends) = (
        genre_ctx.rakuten.sent_requests(),
        tag_ctx.rakuten.sent_requests(),
    );
    let mut sends: Vec<(Instant, &str)> = genre_sends
        .iter()
        .map(|r| (r.at, "genre"))
        .chain(tag_sends.iter().map(|r| (r.at, "tag")))
        .collect();
    sends.sort();
    let interval = genre_ctx.rakuten.min_send_interval();
    let gaps: Vec<std::time::Duration> = sends.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let smallest = gaps.iter().min().copied().unwrap_or_default();
    let requests = g.requests + t.requests;
    println!(
        "concurrent Genre + Tag at 5 request/s: {} + {} = {requests} requests in {secs:.1} s; smallest gap between sends {:.1} ms (interval {:.1} ms)",
        g.requests,
        t.requests,
        smallest.as_secs_f64() * 1000.0,
        interval.as_secs_f64() * 1000.0,
    );
    assert_eq!(requests as usize, expected_requests);
    assert!((25..=45).contains(&requests), "{requests} requests");
    assert_eq!(sandbox.stats().requests, requests);
    assert_eq!((g.units.failed, t.units.failed), (0, 0));
    assert_eq!(
        (genre_sends.len() as u64, tag_sends.len() as u64),
        (g.requests, t.requests),
        "every request sent is recorded"
    );
    assert!(!genre_sends.is_empty() && !tag_sends.is_empty());
    assert_eq!(interval, std::time::Duration::from_millis(200));
    for (i, gap) in gaps.iter().enumerate() {
        assert!(
            *gap >= interval,
            "sends {i} ({}) and {} ({}) only {gap:?} apart",
            sends[i].1,
            i + 1,
            sends[i + 1].1
        );
    }
    sandbox.shutdown().await;
}
