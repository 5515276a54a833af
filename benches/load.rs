//! Loading ranking rows: binary COPY into staging + one merge (what the Ranking job does,
//! `jobs/ranking/store.rs::load_rankings`) beside a baseline of one
//! INSERT … ON CONFLICT round trip per row, in one run against the same PostgreSQL.
//!
//! Two batch sizes: 1,000 rows (one target, the default `RANKING_TARGETS=0`) and 11,000
//! (11 targets: the job loads every target's rows in one call). One warm-up round of
//! each variant is not counted (catalog and plan caches, the first temp table of the
//! session); then the variants alternate round by round, so a burst of load on a busy
//! machine hits both. Prints medians and the ratio (compare ratios, not absolute times).
//! Needs PostgreSQL (scripts/start-postgres.sh).
//!
//!     cargo bench --bench load
//!
//! Env: BENCH_ROUNDS (default 7), BENCH_SIZES (targets per batch, default "1 11").

use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use collector_core::db::ledger::{self, Job, JobRun};
use collector_core::jobs::ranking::store::{load_rankings, RankingRow};
use ichiba_collector_tests::TestDb;
use tokio_postgres::Client;

const RANKS: usize = 1000;

fn rows(date: NaiveDate, targets: usize) -> Vec<RankingRow> {
    (0..targets)
        .flat_map(|t| {
            (1..=RANKS as i32).map(move |rank| RankingRow {
                target: t,
                snapshot_date: date,
                ranking_genre_id: if t == 0 { 0 } else { 100_000 + t as i64 },
                period: "daily".into(),
                rank,
                item_code: format!("shop-{:02}:{:08}", rank % 50, rank + 1000 * t as i32),
                item_name: format!("商品 {rank} ギフト セット"),
                item_price: Some(1000 + i64::from(rank)),
                review_count: Some(i64::from(rank) * 3),
                review_average: Some(4.25),
                point_rate: Some(1),
                availability: Some(1),
                shop_code: Some(format!("shop-{:02}", rank % 50)),
                item_genre_id: Some(100_283),
            })
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn by_copy(client: &mut Client, job_run: &JobRun, batch: &[RankingRow]) -> Duration {
    let t = Instant::now();
    let tx = client.transaction().await.unwrap();
    let counts = load_rankings(&tx, job_run, batch, &[], Utc::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let elapsed = t.elapsed();
    assert_eq!(counts.inserted as usize, batch.len());
    elapsed
}

async fn row_by_row(client: &mut Client, job_run: &JobRun, batch: &[RankingRow]) -> Duration {
    let t = Instant::now();
    let tx = client.transaction().await.unwrap();
    let stmt = tx
        .prepare(
            "INSERT INTO rakuten_rankings AS t (snapshot_date, ranking_genre_id, period, rank, item_code, item_name, item_price,
                 review_count, review_average, point_rate, availability, shop_code, item_genre_id, content_hash, run_id, saved_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, now())
             ON CONFLICT (snapshot_date, ranking_genre_id, period, rank) DO UPDATE SET item_code = EXCLUDED.item_code
             WHERE t.content_hash IS DISTINCT FROM EXCLUDED.content_hash",
        )
        .await
        .unwrap();
    for r in batch {
        let hash = collector_core::jobs::staging::hash_of(r);
        tx.execute(
            &stmt,
            &[
                &r.snapshot_date,
                &r.ranking_genre_id,
                &r.period,
                &r.rank,
                &r.item_code,
                &r.item_name,
                &r.item_price,
                &r.review_count,
                &r.review_average,
                &r.point_rate,
                &r.availability,
                &r.shop_code,
                &r.item_genre_id,
                &hash,
                &job_run.run.run_id,
            ],
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    t.elapsed()
}

#[tokio::main]
async fn main() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let rounds: usize = env("BENCH_ROUNDS", "7").parse().expect("BENCH_ROUNDS");
    let sizes: Vec<usize> = env("BENCH_SIZES", "1 11")
        .split_whitespace()
        .map(|s| s.parse().expect("BENCH_SIZES"))
        .collect();
    let db = TestDb::new().await;
    let mut client = db.client().await;
    let run = ledger::create_run(&client, "local", "bench", Duration::from_secs(180))
        .await
        .unwrap();
    let job_run = ledger::start_job(&client, &run, Job::Ranking, 0.01)
        .await
        .unwrap();
    let day0 = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    // Every round loads a snapshot date of its own, so every row is an insert in both
    // variants.
    let mut day = 0u64;
    let mut next_day = || {
        day += 1;
        day0 + Days::new(day)
    };

    println!(
        "\nload ranking rows, median of {rounds} rounds after one warm-up (same server, same run):"
    );
    println!(
        "{:>8} {:>22} {:>22} {:>10}",
        "rows", "COPY + merge (ms)", "INSERT per row (ms)", "ratio"
    );
    for targets in sizes {
        let (mut copy, mut per_row) = (Vec::new(), Vec::new());
        for round in 0..=rounds {
            let c = by_copy(&mut client, &job_run, &rows(next_day(), targets)).await;
            let r = row_by_row(&mut client, &job_run, &rows(next_day(), targets)).await;
            if round > 0 {
                copy.push(c);
                per_row.push(r);
            }
        }
        let (c, r) = (median(copy), median(per_row));
        println!(
            "{:>8} {:>22.1} {:>22.1} {:>9.1}x",
            targets * RANKS,
            c.as_secs_f64() * 1e3,
            r.as_secs_f64() * 1e3,
            r.as_secs_f64() / c.as_secs_f64()
        );
    }
}
