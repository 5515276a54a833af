//! Pacing against a sandbox limited per application ID, as Rakuten is (1 request/s).

use collector_core::jobs::ranking::{self, RankingInput};
use ichiba_collector_tests::*;
use rakuten_sandbox::SandboxConfig;

/// `items` items, at most `per_sec` requests a second per application ID.
fn limited(items: usize, per_sec: f64) -> SandboxConfig {
    SandboxConfig {
        rate_limit_per_sec: Some(per_sec),
        ..sandbox_config(items)
    }
}

/// Against a sandbox limited per application ID, a ranking at a pace just under the
/// limit: every unit succeeds and the client's recorded sends are at least one interval
/// apart; its 429 counter matches what the sandbox answered. Whether a busy machine's
/// network jitter draws a 429 at the real pace is the benchmark's business
/// (`cargo bench --bench pacing`), so the 429s and the achieved rate are printed here,
/// not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pace_under_the_limit_sends_one_interval_apart() {
    let pace = [
        ("RAKUTEN_REQUESTS_PER_SECOND", "4.75"),
        ("RANKING_TARGETS", "0"),
    ];
    let (_db, sandbox, _raw, ctx) = job_env(limited(1000, 5.0), &pace).await;
    let started = std::time::Instant::now();
    let out = ranking::run(&ctx, RankingInput::default()).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let stats = sandbox.stats();
    let sent = ctx.rakuten.sent_requests();
    let interval = ctx.rakuten.min_send_interval();
    let smallest = sent
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .min()
        .unwrap_or_default();
    println!(
        "rate limit 5/s, pace 4.75/s: {} requests in {secs:.1} s = {:.3} request/s; smallest gap {:.1} ms; 429 answers: sandbox {}, client {}",
        out.requests,
        out.requests as f64 / secs,
        smallest.as_secs_f64() * 1000.0,
        stats.rate_limited,
        out.throttled
    );
    assert!(out.requests >= 34, "{} requests", out.requests);
    assert_eq!(out.units.failed, 0);
    assert_eq!(sent.len() as u64, out.requests, "every send recorded");
    assert_eq!(stats.requests, out.requests);
    assert_eq!(out.throttled, stats.rate_limited, "429s counted truthfully");
    assert!(smallest >= interval, "{smallest:?} < {interval:?}");
    sandbox.shutdown().await;
}

/// Sending faster than the limit draws 429s; the client backs off and every unit still succeeds.
#[tokio::test]
async fn too_fast_a_pace_is_throttled_and_retried() {
    let pace = [
        ("RAKUTEN_REQUESTS_PER_SECOND", "20"),
        ("RAKUTEN_RETRY_BASE_MS", "600"),
        ("RAKUTEN_MAX_ATTEMPTS", "6"),
    ];
    let (_db, sandbox, _raw, ctx) = job_env(limited(300, 2.0), &pace).await;
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
