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
//! Both variants are measured twice: on the local socket, and through a proxy that delays
//! every packet by half of `BENCH_RTT_MS` each way (default 1 ms round trip: a Lambda
//! function and its database in one region; Supabase from Lambda is usually more). The
//! local figure is the floor of the ratio: there a round trip costs almost nothing. The
//! round trip printed is the one measured through the proxy (`SELECT 1`, median; the
//! timer's 1 ms granularity makes it longer than the nominal one).
//!
//! Env: BENCH_ROUNDS (default 7), BENCH_SIZES (targets per batch, default "1 11"),
//! BENCH_RTT_MS (default 1; 0 skips the proxied rows).

use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use collector_core::db::ledger::{self, JobRun};
use collector_core::jobs::ranking::store::{load_rankings, RankingRow};
use collector_core::jobs::Job;
use ichiba_collector_tests::{connect_plain, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// Forwards TCP connections to `upstream`, delivering every chunk `one_way` after it was
/// read (in order, without limiting throughput). Returns the local address.
async fn latency_proxy(upstream: String, one_way: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, one_way));
            tokio::spawn(pump(sr, cw, one_way));
        }
    });
    addr
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0
            || tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

#[tokio::main]
async fn main() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let rounds: usize = env("BENCH_ROUNDS", "7").parse().expect("BENCH_ROUNDS");
    let sizes: Vec<usize> = env("BENCH_SIZES", "1 11")
        .split_whitespace()
        .map(|s| s.parse().expect("BENCH_SIZES"))
        .collect();
    let rtt_ms: f64 = env("BENCH_RTT_MS", "1").parse().expect("BENCH_RTT_MS");
    let db = TestDb::new().await;
    let mut client = db.client().await;
    let run = ledger::create_run(&client, "local", "bench", Duration::from_secs(180))
        .await
        .unwrap();
    let job_run = ledger::start_job(&client, &run, Job::Ranking, 0.01)
        .await
        .unwrap();
    let mut proxied = if rtt_ms > 0.0 {
        let mut url = url::Url::parse(&db.url).expect("database URL");
        let upstream = format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(5432)
        );
        let addr = latency_proxy(upstream, Duration::from_secs_f64(rtt_ms / 2000.0)).await;
        url.set_port(Some(addr.port())).unwrap();
        Some(connect_plain(url.as_str()).await)
    } else {
        None
    };
    // The round trip the proxy really gives (timer granularity adds to the nominal one).
    let mut measured_rtt = Duration::ZERO;
    if let Some(p) = &proxied {
        let mut v = Vec::new();
        for _ in 0..30 {
            let t = Instant::now();
            p.simple_query("SELECT 1").await.unwrap();
            v.push(t.elapsed());
        }
        measured_rtt = median(v);
    }
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
        "{:>8} {:>12} {:>22} {:>22} {:>10}",
        "rows", "round trip", "COPY + merge (ms)", "INSERT per row (ms)", "ratio"
    );
    for targets in sizes {
        for (label, conn) in [("local", Some(&mut client)), ("proxied", proxied.as_mut())] {
            let Some(conn) = conn else { continue };
            let (mut copy, mut per_row) = (Vec::new(), Vec::new());
            for round in 0..=rounds {
                let c = by_copy(conn, &job_run, &rows(next_day(), targets)).await;
                let r = row_by_row(conn, &job_run, &rows(next_day(), targets)).await;
                if round > 0 {
                    copy.push(c);
                    per_row.push(r);
                }
            }
            let (c, r) = (median(copy), median(per_row));
            let rt = if label == "local" {
                "local".to_string()
            } else {
                format!("{:.1} ms", measured_rtt.as_secs_f64() * 1e3)
            };
            println!(
                "{:>8} {:>12} {:>22.1} {:>22.1} {:>9.1}x",
                targets * RANKS,
                rt,
                c.as_secs_f64() * 1e3,
                r.as_secs_f64() * 1e3,
                r.as_secs_f64() / c.as_secs_f64()
            );
        }
    }
}
