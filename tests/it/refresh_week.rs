//! The Item refresh policy over a simulated week (issue 10): the same seven days of the
//! sandbox's churning ranking (34 pages a day), collected once with the old policy (every
//! ranked item looked up again after 20 hours: `ITEM_REFRESH_HOURS=20`) and once with the
//! default (`ITEM_REFRESH_DAYS=7`). Requests are counted, not timed: each day is a fresh
//! sandbox for that date, and between days every refresh time is moved one day back, as
//! a day passing would.

use chrono::{Duration as Days, NaiveDate};
use collector_core::jobs::ranking::{self, RankingInput};
use collector_core::jobs::{genre, item, tag, RunInput};
use ichiba_collector_tests::*;
use rakuten_sandbox::SandboxConfig;

const DAYS: i64 = 7;

/// Requests of each simulated day, and the oldest details of an item ranked that day (days).
async fn week(extra: &[(&str, &str)]) -> (Vec<u64>, f64) {
    let (db, raw) = db_and_raw().await;
    let c = db.client().await;
    let first = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let mut per_day = Vec::new();
    let mut oldest: f64 = 0.0;
    for d in 0..DAYS {
        let date = (first + Days::days(d)).to_string();
        let sandbox = start_sandbox(SandboxConfig {
            date: Some(date),
            ..sandbox_config(3000)
        })
        .await;
        let ctx = job_context(&db, &sandbox, raw.path(), extra).await;
        let run_id = ranking::run(&ctx, RankingInput::default())
            .await
            .unwrap()
            .run_id;
        let out = item::run(&ctx, RunInput { run_id }, None).await.unwrap();
        assert!(out.done && out.status == "succeeded", "{out:?}");
        genre::run(&ctx, RunInput { run_id }).await.unwrap();
        tag::run(&ctx, RunInput { run_id }).await.unwrap();
        per_day.push(sandbox.stats().requests);
        // The details of the day's ranked items are never older than the window.
        let age: f64 = scalar(
            &c,
            "SELECT coalesce(max(extract(epoch FROM now() - f.checked_at)) / 86400, 0)::float8
                 FROM (SELECT DISTINCT item_code FROM rakuten_rankings) r
                 JOIN etl_refresh f ON f.entity = 'item' AND f.key = r.item_code",
            &[],
        )
        .await;
        oldest = oldest.max(age);
        sandbox.shutdown().await;
        // A day passes.
        c.execute(
            "UPDATE etl_refresh SET checked_at = checked_at - interval '1 day'",
            &[],
        )
        .await
        .unwrap();
    }
    (per_day, oldest)
}

#[tokio::test]
async fn a_steady_day_needs_at_most_a_third_of_the_requests_of_daily_refetching() {
    let (daily, _) = week(&[("ITEM_REFRESH_HOURS", "20")]).await;
    let (weekly, oldest) = week(&[]).await;
    eprintln!("requests per simulated day (Ranking + Item + Genre + Tag, 34 ranking pages):");
    eprintln!("  ITEM_REFRESH_HOURS=20 (before): {daily:?}");
    eprintln!("  ITEM_REFRESH_DAYS=7 (default):  {weekly:?}");
    let steady = |v: &[u64]| v[1..].iter().sum::<u64>() as f64 / (v.len() - 1) as f64;
    let ratio = steady(&weekly) / steady(&daily);
    eprintln!(
        "  steady day (days 2-{DAYS}, mean): {:.0} vs {:.0} requests = {:.1} %; oldest details of a ranked item: {oldest:.2} days",
        steady(&weekly),
        steady(&daily),
        ratio * 100.0
    );
    assert!(
        ratio <= 0.35,
        "a steady day needs {:.1} % of today's requests",
        ratio * 100.0
    );
    assert!(oldest <= 7.0, "details {oldest:.2} days old");
}
