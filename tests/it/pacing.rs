//! The request budget shared through PostgreSQL. Pass/fail checks are on what the code
//! controls — the send instants the clients record — never on how fast a busy machine
//! schedules them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use collector_core::pacing::PgPacer;
use ichiba_collector_tests::*;
use rakuten_client::{Pacer, RakutenClient, RankingQuery, SentRequest};

fn client(base: &str, rps: f64, pacer: Option<Arc<PgPacer>>) -> RakutenClient {
    let mut c = client_config(base, TEST_ACCESS_KEY);
    c.requests_per_second = rps;
    c.retry_base_delay = Duration::from_millis(5);
    match pacer {
        Some(p) => RakutenClient::with_pacer(c, p).unwrap(),
        None => RakutenClient::new(c).unwrap(),
    }
}

/// Every recorded send of all `logs` together, in time order.
fn merged(logs: &[Vec<SentRequest>]) -> Vec<SentRequest> {
    let mut all: Vec<SentRequest> = logs.iter().flatten().cloned().collect();
    all.sort_by_key(|r| r.at);
    all
}

/// The smallest gap between consecutive sends.
fn min_gap(all: &[SentRequest]) -> Duration {
    all.windows(2)
        .map(|w| w[1].at - w[0].at)
        .min()
        .unwrap_or(Duration::MAX)
}

async fn pages(c: RakutenClient, n: u32) {
    for page in 1..=n {
        c.ranking(&RankingQuery::daily(0, page)).await.unwrap();
    }
}

/// Two clients, each with its own pacer and database connection (as two processes
/// would be), on two threads: their sends together stay one interval apart, and each
/// request costs one database round trip, plus one per window missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_on_one_budget_send_one_interval_apart() {
    let db = TestDb::new().await;
    let sandbox = start_sandbox(sandbox_config(900)).await;
    let app: secrecy::SecretString = TEST_APP_ID.to_string().into();
    let rps = 20.0;
    let pa = Arc::new(PgPacer::new(db.url.clone().into(), &app, rps));
    let pb = Arc::new(PgPacer::new(db.url.clone().into(), &app, rps));
    let (a, b) = (
        client(&sandbox.base_url(), rps, Some(pa.clone())),
        client(&sandbox.base_url(), rps, Some(pb.clone())),
    );
    let (ra, rb) = tokio::join!(
        tokio::spawn(pages(a.clone(), 15)),
        tokio::spawn(pages(b.clone(), 15))
    );
    ra.unwrap();
    rb.unwrap();
    let all = merged(&[a.sent_requests(), b.sent_requests()]);
    assert_eq!(all.len(), 30);
    let gap = min_gap(&all);
    let switches = all
        .windows(2)
        .filter(|w| a.sent_requests().contains(&w[0]) != a.sent_requests().contains(&w[1]))
        .count();
    println!(
        "30 sends by two clients at {rps}/s: smallest gap {:.1} ms, {switches} hand-overs between clients, round trips {} + {}",
        gap.as_secs_f64() * 1000.0,
        pa.round_trips(),
        pb.round_trips()
    );
    assert!(gap >= Duration::from_millis(50), "smallest gap {gap:?}");
    assert_eq!(sandbox.stats().requests, 30);
    let rt = pa.round_trips() + pb.round_trips();
    assert!(rt >= 30, "one round trip per request at least: {rt}");
    assert_eq!(
        rt,
        30 + pa.missed() + pb.missed(),
        "and one more per missed window only"
    );
    sandbox.shutdown().await;
}

/// A process that wakes up after its window closed books again; the booking knows
/// whether anybody booked after it, and the gap to the others' windows holds.
#[tokio::test]
async fn a_late_window_is_booked_again_behind_the_others() {
    let db = TestDb::new().await;
    let app: secrecy::SecretString = TEST_APP_ID.to_string().into();
    let a = PgPacer::new(db.url.clone().into(), &app, 10.0);
    let b = PgPacer::new(db.url.clone().into(), &app, 10.0);
    let interval = Duration::from_millis(100);

    // Nobody booked after a's missed window: its new window opens at once.
    let first = a.reserve(None).await;
    tokio::time::sleep_until(first.deadline.unwrap().into()).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = a.reserve(Some(&first)).await;
    assert!(again.not_before <= Instant::now() + Duration::from_millis(2));
    assert!(again.not_before > first.deadline.unwrap());

    // b books behind it; a misses again: a's next window comes after b's, an interval on.
    let theirs = b.reserve(None).await;
    assert!(theirs.not_before >= again.deadline.unwrap() + interval);
    tokio::time::sleep_until(again.deadline.unwrap().into()).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let third = a.reserve(Some(&again)).await;
    assert!(third.not_before >= theirs.deadline.unwrap() + interval);
    assert_eq!(a.missed(), 2);
}

/// Without a database the pacer falls back to the process-local limiter at once (no
/// wait for each request) and the client's sends are still spaced.
#[tokio::test]
async fn unreachable_database_falls_back_to_local_pacing() {
    let sandbox = start_sandbox(sandbox_config(300)).await;
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let url = format!("postgresql://postgres@127.0.0.1:{port}/postgres");
    let app: secrecy::SecretString = TEST_APP_ID.to_string().into();
    let pacer = Arc::new(PgPacer::new(url.into(), &app, 20.0));
    let c = client(&sandbox.base_url(), 20.0, Some(pacer.clone()));
    pages(c.clone(), 6).await;
    let sent = c.sent_requests();
    assert_eq!(sent.len(), 6);
    assert!(min_gap(&sent) >= Duration::from_millis(50));
    assert_eq!(pacer.round_trips(), 0);
    sandbox.shutdown().await;
}

/// One database connection per process: the pacer books on the job's connection, which
/// the job then uses too; nothing is connected before the first request needs it.
#[tokio::test]
async fn the_pacer_shares_the_jobs_connection() {
    let (db, sandbox, raw) = job_parts(sandbox_config(300)).await;
    let url = format!("{}?application_name=icx-pacer-share", db.url);
    let shared = [
        ("DATABASE_URL", url.as_str()),
        ("RAKUTEN_SHARED_BUDGET", "postgres"),
    ];
    let ctx = job_context(&db, &sandbox, raw.path(), &shared).await;
    let observer = db.client().await;
    let connections = || async {
        one_row(
            &observer,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'icx-pacer-share'",
            &[],
        )
        .await
        .get::<_, i64>(0)
    };
    assert_eq!(connections().await, 0, "nothing opened at start");
    for page in 1..=3 {
        ctx.rakuten
            .ranking(&RankingQuery::daily(0, page))
            .await
            .unwrap();
    }
    assert_eq!(connections().await, 1);
    {
        let guard = ctx.db().await.unwrap();
        let c = &guard.client;
        let n: i64 = scalar(c, "SELECT count(*) FROM etl_rate_slots", &[]).await;
        assert_eq!(n, 1, "the pacer booked on this connection's database");
    }
    ctx.rakuten.genre(0).await.unwrap();
    assert_eq!(connections().await, 1);
    assert_eq!(ctx.rakuten.sent_requests().len(), 4);
    sandbox.shutdown().await;
}
