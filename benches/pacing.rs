//! Pacing at the real pace: two clients in parallel (two pacers, two database
//! connections, as Genre ∥ Tag in two Lambdas), one application ID, against the sandbox
//! limited to 1 request/s. Prints, side by side, the send-window pacer (`pacing.rs`) and
//! the claim-then-send pacer it replaced (re-created below): requests, achieved rate,
//! 429s, smallest gap between sends, database round trips per request. Needs PostgreSQL.
//! Not a test: it takes about 2 × BENCH_REQUESTS / rate seconds.
//!
//!     cargo bench --bench pacing                      # 300 requests per pacer, both
//!     BENCH_REQUESTS=60 BENCH_MODE=new cargo bench --bench pacing
//!
//! Env: BENCH_REQUESTS (default 300), BENCH_RPS (client pace, default 0.95),
//! BENCH_LIMIT (sandbox limit per second, default 1), BENCH_MODE (new|old|both).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use collector_core::pacing::PgPacer;
use ichiba_collector_tests::*;
use rakuten_client::{ClientConfig, Pacer, RakutenClient, RankingQuery, SentRequest, Slot};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The pacer before send windows: claim the budget when the last claim is one interval
/// old, else sleep and claim again; the request leaves whenever the claim's reply
/// arrives and the task runs.
struct ClaimPacer {
    client: tokio_postgres::Client,
    key: String,
    interval: Duration,
    round_trips: AtomicU64,
}

impl ClaimPacer {
    async fn new(url: &str, app: &SecretString, rps: f64) -> Self {
        let digest = Sha256::digest(app.expose_secret().as_bytes());
        ClaimPacer {
            client: connect_plain(url).await,
            key: format!("app-{}", &hex::encode(digest)[..16]),
            interval: Duration::from_secs_f64(1.0 / rps),
            round_trips: AtomicU64::new(0),
        }
    }

    async fn claim(&self) {
        loop {
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            let row = self
                .client
                .query_one(
                    "WITH seed AS (
                         INSERT INTO etl_rate_slots (budget_key, last_sent_at) VALUES ($1, 'epoch')
                         ON CONFLICT (budget_key) DO NOTHING
                     ), claim AS (
                         UPDATE etl_rate_slots SET last_sent_at = clock_timestamp()
                         WHERE budget_key = $1 AND last_sent_at <= clock_timestamp() - make_interval(secs => $2)
                         RETURNING 1
                     )
                     SELECT EXISTS (SELECT 1 FROM claim),
                            coalesce(extract(epoch FROM (SELECT last_sent_at FROM etl_rate_slots WHERE budget_key = $1)
                                     + make_interval(secs => $2) - clock_timestamp())::float8, 0)",
                    &[&self.key, &self.interval.as_secs_f64()],
                )
                .await
                .expect("claim");
            if row.get::<_, bool>(0) {
                return;
            }
            let wait = Duration::from_secs_f64(row.get::<_, f64>(1).max(0.0));
            let jitter = Duration::from_millis(rand_ms());
            tokio::time::sleep(wait + jitter).await;
        }
    }
}

/// 1..=5 ms, as the old pacer's jitter.
fn rand_ms() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    u64::from(nanos % 5) + 1
}

impl Pacer for ClaimPacer {
    fn reserve<'a>(
        &'a self,
        _missed: Option<&'a Slot>,
    ) -> Pin<Box<dyn Future<Output = Slot> + Send + 'a>> {
        Box::pin(async move {
            self.claim().await;
            Slot::unpaced()
        })
    }
}

fn client(base: &str, rps: f64, pacer: Arc<dyn Pacer>) -> RakutenClient {
    let mut c = ClientConfig::new(
        base.parse().unwrap(),
        TEST_APP_ID.to_string().into(),
        TEST_ACCESS_KEY.to_string().into(),
    );
    c.requests_per_second = rps;
    c.send_log_capacity = 100_000;
    RakutenClient::with_pacer(c, pacer).unwrap()
}

/// `n` ranking requests, cycling through pages 1..=34 of the overall ranking.
async fn work(c: RakutenClient, n: usize) {
    for i in 0..n {
        let page = (i % 34) as u32 + 1;
        let _ = c.ranking(&RankingQuery::daily(0, page)).await;
    }
}

const NEW: &str = "send windows";
const OLD: &str = "claim then send (old)";

struct Row {
    name: &'static str,
    requests: u64,
    secs: f64,
    throttled: u64,
    smallest_gap_ms: f64,
    round_trips: u64,
}

async fn run(name: &'static str, requests: usize, rps: f64, limit: f64) -> Row {
    let db = TestDb::new().await;
    let mut cfg = sandbox_config(1020);
    cfg.rate_limit_per_sec = Some(limit);
    let sandbox = start_sandbox(cfg).await;
    let app: SecretString = TEST_APP_ID.to_string().into();
    type Trips = Box<dyn Fn() -> u64>;
    let (pa, pb, round_trips): (Arc<dyn Pacer>, Arc<dyn Pacer>, Trips) = if name == NEW {
        let a = Arc::new(PgPacer::new(db.url.clone().into(), &app, rps));
        let b = Arc::new(PgPacer::new(db.url.clone().into(), &app, rps));
        let (a2, b2) = (a.clone(), b.clone());
        (a, b, Box::new(move || a2.round_trips() + b2.round_trips()))
    } else {
        let a = Arc::new(ClaimPacer::new(&db.url, &app, rps).await);
        let b = Arc::new(ClaimPacer::new(&db.url, &app, rps).await);
        let (a2, b2) = (a.clone(), b.clone());
        (
            a,
            b,
            Box::new(move || {
                a2.round_trips.load(Ordering::Relaxed) + b2.round_trips.load(Ordering::Relaxed)
            }),
        )
    };
    let (ca, cb) = (
        client(&sandbox.base_url(), rps, pa),
        client(&sandbox.base_url(), rps, pb),
    );
    let started = Instant::now();
    let (x, y) = tokio::join!(
        tokio::spawn(work(ca.clone(), requests / 2)),
        tokio::spawn(work(cb.clone(), requests - requests / 2))
    );
    x.unwrap();
    y.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let mut all: Vec<SentRequest> = ca.sent_requests();
    all.extend(cb.sent_requests());
    all.sort_by_key(|r| r.at);
    let smallest = all
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .min()
        .unwrap_or_default();
    let stats = sandbox.stats();
    sandbox.shutdown().await;
    Row {
        name,
        requests: stats.requests,
        secs,
        throttled: stats.rate_limited,
        smallest_gap_ms: smallest.as_secs_f64() * 1000.0,
        round_trips: round_trips(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let requests: usize = env("BENCH_REQUESTS", "300")
        .parse()
        .expect("BENCH_REQUESTS");
    let rps: f64 = env("BENCH_RPS", "0.95").parse().expect("BENCH_RPS");
    let limit: f64 = env("BENCH_LIMIT", "1").parse().expect("BENCH_LIMIT");
    let mode = env("BENCH_MODE", "both");
    let mut rows = Vec::new();
    if mode != "old" {
        rows.push(run(NEW, requests, rps, limit).await);
    }
    if mode != "new" {
        rows.push(run(OLD, requests, rps, limit).await);
    }
    println!(
        "\ntwo clients in parallel, one application ID, client pace {rps}/s, sandbox limit {limit}/s"
    );
    println!(
        "{:<24} {:>8} {:>8} {:>10} {:>6} {:>14} {:>16}",
        "pacer", "requests", "secs", "request/s", "429s", "min gap (ms)", "DB trips/request"
    );
    for r in rows {
        println!(
            "{:<24} {:>8} {:>8.1} {:>10.3} {:>6} {:>14.1} {:>16.2}",
            r.name,
            r.requests,
            r.secs,
            r.requests as f64 / r.secs,
            r.throttled,
            r.smallest_gap_ms,
            r.round_trips as f64 / r.requests.max(1) as f64
        );
    }
}
