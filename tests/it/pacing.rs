//! The request budget shared through PostgreSQL: claimants in separate connections
//! together never go faster than the configured rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use collector_core::pacing::PgPacer;
use ichiba_collector_tests::*;
use rakuten_client::Pacer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pacers_on_one_budget_keep_the_combined_rate() {
    let db = TestDb::new().await;
    let app: secrecy::SecretString = TEST_APP_ID.to_string().into();
    let a = Arc::new(PgPacer::new(db.url.clone().into(), &app, 10.0));
    let b = Arc::new(PgPacer::new(db.url.clone().into(), &app, 10.0));
    let start = Instant::now();
    let run = |p: Arc<PgPacer>| async move {
        let mut times = Vec::new();
        for _ in 0..10 {
            p.wait().await;
            times.push(start.elapsed());
        }
        times
    };
    let (ta, tb) = tokio::join!(tokio::spawn(run(a)), tokio::spawn(run(b)));
    let mut all: Vec<Duration> = ta.unwrap().into_iter().chain(tb.unwrap()).collect();
    all.sort();
    let gaps: Vec<f64> = all
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .collect();
    let min = gaps.iter().cloned().fold(f64::MAX, f64::min);
    println!(
        "20 claims by two pacers at 10/s: {:.2} s, smallest gap {min:.1} ms",
        all.last().unwrap().as_secs_f64()
    );
    assert!(min >= 95.0, "gaps {gaps:?}");
    assert!(all.last().unwrap().as_secs_f64() >= 1.85);
}
