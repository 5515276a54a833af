//! Pacing against a sandbox limited to 1 request/s per application ID, as Rakuten is.

use collector_core::jobs::ranking::{self, RankingInput};
use ichiba_collector_tests::*;

/// ≥ 60 requests at the default pace (0.95/s): no 429, and ≥ 0.9 request/s achieved.
/// Takes about 70 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_pace_gets_no_429_and_keeps_up() {
    let db = TestDb::new().await;
    let mut cfg = sandbox_config(1000);
    cfg.rate_limit_per_sec = Some(1.0);
    let sandbox = start_sandbox(cfg).await;
    let raw = tempfile::tempdir().unwrap();
    let ctx = context(job_config(
        &db,
        &sandbox,
        raw.path(),
        &[
            ("RAKUTEN_REQUESTS_PER_SECOND", "0.95"),
            ("RANKING_TARGETS", "0,0:realtime"),
        ],
    ))
    .await;
    let started = std::time::Instant::now();
    let out = ranking::run(&ctx, RankingInput::default()).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let rate = out.requests as f64 / secs;
    let stats = sandbox.stats();
    println!(
        "rate limit 1/s: {} requests in {secs:.1} s = {rate:.3} request/s; 429 answers: sandbox {}, client {}",
        out.requests, stats.rate_limited, out.throttled
    );
    assert!(out.requests >= 60, "{} requests", out.requests);
    assert_eq!(stats.rate_limited, 0);
    assert_eq!(out.throttled, 0);
    assert_eq!(out.units.failed, 0);
    assert!(rate >= 0.9, "achieved {rate:.3} request/s");
    sandbox.shutdown().await;
}

/// Sending faster than the limit draws 429s; the client backs off and every unit still succeeds.
#[tokio::test]
async fn too_fast_a_pace_is_throttled_and_retried() {
    let db = TestDb::new().await;
    let mut cfg = sandbox_config(300);
    cfg.rate_limit_per_sec = Some(2.0);
    let sandbox = start_sandbox(cfg).await;
    let raw = tempfile::tempdir().unwrap();
    let ctx = context(job_config(
        &db,
        &sandbox,
        raw.path(),
        &[
            ("RAKUTEN_REQUESTS_PER_SECOND", "20"),
            ("RAKUTEN_RETRY_BASE_MS", "600"),
            ("RAKUTEN_MAX_ATTEMPTS", "6"),
        ],
    ))
    .await;
    let out = ranking::run(&ctx, RankingInput::default()).await.unwrap();
    assert_eq!(out.units.attempted, 11);
    assert_eq!(out.units.failed, 0);
    assert!(
        out.throttled > 0,
        "expected 429 answers at 20/s against a 2/s limit"
    );
    assert_eq!(out.throttled, sandbox.stats().rate_limited);
    sandbox.shutdown().await;
}
