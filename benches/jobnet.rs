//! The jobs at the real pace: Ranking → Item → Genre ∥ Tag against a sandbox limited to 1
//! request/s per application ID, at the default pace (`RAKUTEN_REQUESTS_PER_SECOND`,
//! 0.98). Genre and Tag run at the same time with a context each (two processes: two
//! pacers, two connections, one budget in PostgreSQL). Prints the requests, the 429s the
//! sandbox answered, the achieved rate (requests over the time from the first send to the
//! last) and the smallest gap between two sends.
//!
//! Beside it, on a sandbox of its own with the same limit, a naive collector: the same
//! Ranking and Item requests through a client paced in-process at the same rate, and one
//! autocommitted INSERT per row; its wall time is compared with our Ranking + Item.
//! Needs PostgreSQL. Not a test: about (requests / rate) seconds.
//!
//!     cargo bench --bench jobnet
//!
//! Env: BENCH_ITEMS (Item requests: `ITEM_DAILY_REQUEST_BUDGET`, default 200; with 34
//! ranking pages and Genre ∥ Tag that is over 300 requests), BENCH_RPS (pace, default
//! the configuration's default), BENCH_LIMIT (sandbox limit per second, default 1).

use std::time::{Duration, Instant};

use collector_core::jobs::ranking::{self, RankingInput};
use collector_core::jobs::{genre, item, tag, AppContext, RunInput};
use ichiba_collector_tests::*;
use rakuten_client::{ClientConfig, RakutenClient, RankingQuery, SentRequest};

struct Paced {
    requests: u64,
    throttled: u64,
    ranking_item_secs: f64,
    first_to_last_secs: f64,
    smallest_gap: Duration,
    /// Gaps between consecutive sends longer than 1.5 intervals: how many, and the time
    /// they add beyond one interval each (job start-up, loads, late wake-ups).
    long_gaps: (usize, f64),
    per_job: Vec<(&'static str, u64)>,
    /// Gaps between consecutive sends of Ranking + Item (one process).
    ranking_item_gaps: Gaps,
}

/// Median and mean of the gaps between consecutive sends.
#[derive(Default)]
struct Gaps {
    median: Duration,
    mean: Duration,
}

fn gaps(sends: &[Instant]) -> Gaps {
    let mut v: Vec<Duration> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    if v.is_empty() {
        return Gaps::default();
    }
    v.sort();
    Gaps {
        median: v[v.len() / 2],
        mean: v.iter().sum::<Duration>() / v.len() as u32,
    }
}

async fn paced(items: usize, rps: Option<String>, limit: f64) -> Paced {
    let db = TestDb::new().await;
    let raw = tempfile::tempdir().unwrap();
    let mut cfg = sandbox_config(3000);
    cfg.rate_limit_per_sec = Some(limit);
    let sandbox = start_sandbox(cfg).await;
    let budget = items.to_string();
    let mut extra = vec![
        ("ITEM_DAILY_REQUEST_BUDGET", budget.as_str()),
        ("RAKUTEN_RETRY_BASE_MS", "1000"),
    ];
    let rps = rps.unwrap_or_else(|| default_rps().to_string());
    extra.push(("RAKUTEN_REQUESTS_PER_SECOND", rps.as_str()));
    let conf = || job_config(&db, &sandbox, raw.path(), &extra);
    let (main_ctx, genre_ctx, tag_ctx): (AppContext, AppContext, AppContext) = (
        context(conf()).await,
        context(conf()).await,
        context(conf()).await,
    );
    let started = Instant::now();
    let r = ranking::run(&main_ctx, RankingInput::default())
        .await
        .expect("ranking");
    let run_id = r.run_id;
    let i = item::run(&main_ctx, RunInput { run_id }, None)
        .await
        .expect("item");
    let ranking_item_secs = started.elapsed().as_secs_f64();
    let (g, t) = tokio::join!(
        genre::run(&genre_ctx, RunInput { run_id }),
        tag::run(&tag_ctx, RunInput { run_id }),
    );
    let (g, t) = (g.expect("genre"), t.expect("tag"));
    let mut sends: Vec<SentRequest> = main_ctx.rakuten.sent_requests();
    let ranking_item_gaps = gaps(&sends.iter().map(|s| s.at).collect::<Vec<_>>());
    sends.extend(genre_ctx.rakuten.sent_requests());
    sends.extend(tag_ctx.rakuten.sent_requests());
    sends.sort_by_key(|s| s.at);
    let smallest_gap = sends
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .min()
        .unwrap_or_default();
    let interval = main_ctx.rakuten.min_send_interval();
    let long: Vec<Duration> = sends
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .filter(|g| g.as_secs_f64() > 1.5 * interval.as_secs_f64())
        .collect();
    let long_gaps = (
        long.len(),
        long.iter().map(|g| (*g - interval).as_secs_f64()).sum(),
    );
    let first_to_last_secs = match (sends.first(), sends.last()) {
        (Some(a), Some(b)) => (b.at - a.at).as_secs_f64(),
        _ => 0.0,
    };
    let stats = sandbox.stats();
    sandbox.shutdown().await;
    Paced {
        requests: stats.requests,
        throttled: stats.rate_limited,
        ranking_item_secs,
        first_to_last_secs,
        smallest_gap,
        long_gaps,
        ranking_item_gaps,
        per_job: vec![
            ("ranking", r.requests),
            ("item", i.requests),
            ("genre", g.requests),
            ("tag", t.requests),
        ],
    }
}

/// The configuration's default pace (`RAKUTEN_REQUESTS_PER_SECOND` unset).
fn default_rps() -> f64 {
    collector_core::config::Config::from_map(&Default::default())
        .expect("default configuration")
        .rakuten
        .requests_per_second
}

/// The naive collector: 34 ranking pages and `items` Item Searches (best-ranked first),
/// paced in-process, one autocommitted INSERT per row. Returns (seconds, requests, 429s,
/// gaps between its sends).
async fn naive(items: usize, rps: f64, limit: f64) -> (f64, u64, u64, Gaps) {
    let db = TestDb::new().await;
    let pg = db.client().await;
    pg.batch_execute(
        "CREATE TABLE naive_rankings (rank int PRIMARY KEY, item_code text, item_name text, price bigint);
         CREATE TABLE naive_items (item_code text PRIMARY KEY, item_name text, price bigint)",
    )
    .await
    .unwrap();
    let mut cfg = sandbox_config(3000);
    cfg.rate_limit_per_sec = Some(limit);
    let sandbox = start_sandbox(cfg).await;
    let mut c = ClientConfig::new(
        sandbox.base_url().parse().unwrap(),
        // Another application ID than ours: a budget of its own.
        "5ec2e7aa-2222-4222-8333-abcdefabcdef".to_string().into(),
        TEST_ACCESS_KEY.to_string().into(),
    );
    c.requests_per_second = rps;
    let client = RakutenClient::new(c).unwrap();
    let started = Instant::now();
    let mut codes = Vec::new();
    for page in 1..=34 {
        let f = match client.ranking(&RankingQuery::daily(0, page)).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("naive collector: {e}");
                continue;
            }
        };
        let short = f.parsed.items.len() < 30;
        for it in &f.parsed.items {
            pg.execute(
                "INSERT INTO naive_rankings VALUES ($1, $2, $3, $4) ON CONFLICT (rank) DO UPDATE SET item_code = EXCLUDED.item_code",
                &[&it.rank, &it.item_code, &it.item_name, &it.item_price],
            )
            .await
            .unwrap();
            codes.push(it.item_code.clone());
        }
        if short {
            break;
        }
    }
    for code in codes.iter().take(items) {
        let f = match client.item_by_code(code).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("naive collector: {e}");
                continue;
            }
        };
        for it in &f.parsed.items {
            pg.execute(
                "INSERT INTO naive_items VALUES ($1, $2, $3) ON CONFLICT (item_code) DO UPDATE SET item_name = EXCLUDED.item_name",
                &[&it.item_code, &it.item_name, &it.item_price],
            )
            .await
            .unwrap();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let sends: Vec<Instant> = client.sent_requests().iter().map(|s| s.at).collect();
    let stats = sandbox.stats();
    sandbox.shutdown().await;
    (secs, stats.requests, stats.rate_limited, gaps(&sends))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let env = |k: &str| std::env::var(k).ok();
    let items: usize = env("BENCH_ITEMS")
        .map(|v| v.parse().expect("BENCH_ITEMS"))
        .unwrap_or(200);
    let limit: f64 = env("BENCH_LIMIT")
        .map(|v| v.parse().expect("BENCH_LIMIT"))
        .unwrap_or(1.0);
    let rps_var = env("BENCH_RPS");
    let rps: f64 = rps_var
        .as_deref()
        .map(|v| v.parse().expect("BENCH_RPS"))
        .unwrap_or_else(default_rps);
    if env("BENCH_NAIVE_ONLY").is_some() {
        let (secs, requests, throttled, _) = naive(items, rps, limit).await;
        println!("naive collector: {requests} requests in {secs:.1} s, {throttled} answers 429");
        return;
    }
    let (ours, (naive_secs, naive_requests, naive_429, naive_gaps)) =
        tokio::join!(paced(items, rps_var, limit), naive(items, rps, limit));
    let per_job = ours
        .per_job
        .iter()
        .map(|(j, n)| format!("{j} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!("\nthe jobs at the real pace: sandbox limit {limit}/s per application ID, pace {rps}/s, Genre ∥ Tag as two processes");
    println!(
        "  requests {} ({per_job}); 429 answers {}; achieved {:.3} request/s (first to last send, {:.1} s); smallest gap between sends {:.1} ms",
        ours.requests,
        ours.throttled,
        ours.requests.saturating_sub(1) as f64 / ours.first_to_last_secs.max(1e-9),
        ours.first_to_last_secs,
        ours.smallest_gap.as_secs_f64() * 1e3
    );
    println!(
        "  gaps longer than 1.5 intervals: {}, adding {:.1} s in all (job start-ups and loads between the jobs' requests)",
        ours.long_gaps.0, ours.long_gaps.1
    );
    println!("Ranking + Item ({} requests) against a naive collector (same requests, same pace, one INSERT per row), each on its own sandbox:",
        ours.per_job[0].1 + ours.per_job[1].1);
    println!(
        "  ours {:.1} s, naive {:.1} s ({naive_requests} requests, {naive_429} answers 429): ours / naive = {:.3}",
        ours.ranking_item_secs,
        naive_secs,
        ours.ranking_item_secs / naive_secs
    );
    println!(
        "  gap between two sends, median / mean: ours {:.1} / {:.1} ms, naive {:.1} / {:.1} ms (interval {:.1} ms)",
        ours.ranking_item_gaps.median.as_secs_f64() * 1e3,
        ours.ranking_item_gaps.mean.as_secs_f64() * 1e3,
        naive_gaps.median.as_secs_f64() * 1e3,
        naive_gaps.mean.as_secs_f64() * 1e3,
        1e3 / rps
    );
}
