//! Process start to first Rakuten request: a Ranking binary is started with `--event '{}'`
//! (open a run, then fetch page 1) against a fresh database, with and without TLS to
//! PostgreSQL (`sslmode=require` / `disable`), and the time from `spawn` to the moment its
//! first API request connects to a listener standing in for the API is taken; the process
//! is then killed. Every binary named in `BENCH_BINS` is measured in the same run, rounds
//! interleaved, so an old build and the current one can be compared side by side
//! (`scripts/bench.sh` builds both). Prints medians. Needs PostgreSQL with TLS enabled
//! (the Debian cluster of scripts/start-postgres.sh has it). Not a test.
//!
//!     cargo build --release -p ranking
//!     BENCH_BINS="new=target/release/ranking" cargo bench --bench startup
//!
//! Env: BENCH_BINS (space-separated `label=path`, default `new=target/release/ranking`),
//! BENCH_ROUNDS (default 15).

use std::process::Stdio;
use std::time::{Duration, Instant};

use ichiba_collector_tests::*;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Starts `bin` and returns the time until its first API request connects (`None`: it
/// exited or took longer than 10 s; its stderr is printed).
async fn first_request(bin: &str, db_url: &str, app_id: &str, raw: &str) -> Option<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--event")
        .arg("{}")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_ENV", "local")
        .env("DATABASE_URL", db_url)
        .env("RAKUTEN_APPLICATION_ID", app_id)
        .env("RAKUTEN_ACCESS_KEY", TEST_ACCESS_KEY)
        .env("RAKUTEN_API_BASE_URL", format!("http://127.0.0.1:{port}"))
        .env("RAW_STORE", format!("file://{raw}"))
        .env("RANKING_TARGETS", "0")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let outcome = tokio::select! {
        accepted = listener.accept() => accepted.ok().map(|_| started.elapsed()),
        _ = child.wait() => None,
        _ = tokio::time::sleep(Duration::from_secs(10)) => None,
    };
    if outcome.is_none() {
        let _ = child.start_kill();
        if let Ok(out) = child.wait_with_output().await {
            eprintln!(
                "{bin}: no request: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        return None;
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    outcome
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let rounds: usize = env("BENCH_ROUNDS", "15").parse().expect("BENCH_ROUNDS");
    let bins: Vec<(String, String)> = env("BENCH_BINS", "new=target/release/ranking")
        .split_whitespace()
        .map(|s| {
            let (label, path) = s.split_once('=').expect("BENCH_BINS: label=path");
            (label.to_string(), path.to_string())
        })
        .collect();
    let db = TestDb::new().await;
    let raw = tempfile::tempdir().unwrap();
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let modes = [("TLS", "require"), ("plain", "disable")];
    let mut times: Vec<Vec<Vec<Duration>>> = vec![vec![Vec::new(); modes.len()]; bins.len()];
    let mut failed = 0usize;
    for round in 0..rounds + 1 {
        for (b, (_, path)) in bins.iter().enumerate() {
            for (m, (_, sslmode)) in modes.iter().enumerate() {
                let url = format!("{}{sep}sslmode={sslmode}", db.url);
                // A new application ID each time: a process must not wait for the budget
                // the previous one booked.
                let app = format!("bench-startup-{round}-{b}-{m}-{}", std::process::id());
                match first_request(path, &url, &app, &raw.path().display().to_string()).await {
                    // Round 0 warms the page cache and the server; not counted.
                    Some(t) if round > 0 => times[b][m].push(t),
                    Some(_) => {}
                    None => failed += 1,
                }
            }
        }
    }
    println!("\nprocess start to first Rakuten request (Ranking binary, fresh process each time), median of {rounds}:");
    println!("{:<10} {:>12} {:>12}", "binary", "TLS (ms)", "plain (ms)");
    for (b, (label, _)) in bins.iter().enumerate() {
        let cell = |m: usize| {
            let v = times[b][m].clone();
            if v.is_empty() {
                "-".to_string()
            } else {
                format!("{:.1}", median(v).as_secs_f64() * 1e3)
            }
        };
        println!("{label:<10} {:>12} {:>12}", cell(0), cell(1));
    }
    if failed > 0 {
        println!("({failed} starts made no request; see above)");
    }
}
