//! Loading 1,000 ranking rows: binary COPY into staging + one merge (what the jobs do)
//! beside a baseline of one INSERT … ON CONFLICT round trip per row, in one run against
//! the same PostgreSQL. Prints medians and the ratio (machines here are noisy: compare
//! ratios, not absolute times). Needs PostgreSQL (scripts/start-postgres.sh).
//!
//!     cargo bench --bench load

use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use collector_core::db::ledger::{self, Job};
use collector_core::jobs::ranking::store::{load_rankings, RankingRow};
use ichiba_collector_tests::TestDb;

const ROWS: usize = 1000;
const ROUNDS: usize = 7;

fn rows(date: NaiveDate) -> Vec<RankingRow> {
    (1..=ROWS as i32)
        .map(|rank| RankingRow {
            target: 0,
            snapshot_date: date,
            ranking_genre_id: 0,
            period: "daily".into(),
            rank,
            item_code: format!("shop-{:02}:{:08}", rank % 50, rank),
            item_name: format!("商品 {rank} ギフト セット"),
            item_price: Some(1000 + i64::from(rank)),
            review_count: Some(i64::from(rank) * 3),
            review_average: Some(4.25),
            point_rate: Some(1),
            availability: Some(1),
            shop_code: Some(format!("shop-{:02}", rank % 50)),
            item_genre_id: Some(100_283),
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    let run = ledger::create_run(
        &client,
        "local",
        "bench",
        std::time::Duration::from_secs(180),
    )
    .await
    .unwrap();
    let job_run = ledger::start_job(&client, &run, Job::Ranking, 0.01)
        .await
        .unwrap();
    let day0 = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();

    // Each round loads a new snapshot date, so every row is an insert in both variants.
    let mut copy_times = Vec::new();
    for round in 0..ROUNDS {
        let batch = rows(day0 + Days::new(round as u64));
        let t = Instant::now();
        let tx = client.transaction().await.unwrap();
        let counts = load_rankings(&tx, &job_run, &batch, &[]).await.unwrap();
        tx.commit().await.unwrap();
        copy_times.push(t.elapsed());
        assert_eq!(counts.inserted as usize, ROWS);
    }

    let mut row_times = Vec::new();
    for round in 0..ROUNDS {
        let batch = rows(day0 + Days::new(1000 + round as u64));
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
        for r in &batch {
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
                    &run.run_id,
                ],
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        row_times.push(t.elapsed());
    }

    let (copy, per_row) = (median(copy_times), median(row_times));
    println!("load {ROWS} ranking rows, median of {ROUNDS} rounds (same server, same run):");
    println!(
        "  COPY into staging + one merge   {:>8.1} ms",
        copy.as_secs_f64() * 1e3
    );
    println!(
        "  baseline: one INSERT per row    {:>8.1} ms",
        per_row.as_secs_f64() * 1e3
    );
    println!(
        "  ratio baseline / COPY           {:>8.2}x",
        per_row.as_secs_f64() / copy.as_secs_f64()
    );
}
