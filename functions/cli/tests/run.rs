//! `collector run`: the whole jobnet from statemachine/jobnet.asl.json, end to end,
//! against a real PostgreSQL and a test sandbox.

use std::process::{Command, Output};

use collector_core::jobs::guard::{Concurrency, GuardRequest, LocalLock};
use ichiba_collector_tests::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Runs the binary off the async runtime (the test's sandbox keeps serving meanwhile).
async fn collector(env: Vec<(String, String)>, args: Vec<&'static str>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_collector"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn")
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.arg("run").args(args).output().expect("run collector")
    })
    .await
    .unwrap()
}

fn env(db: &TestDb, sandbox_url: &str, raw: &std::path::Path) -> Vec<(String, String)> {
    [
        ("APP_ENV", "local".to_string()),
        ("DATABASE_URL", db.url.clone()),
        ("RAW_STORE", format!("file://{}", raw.display())),
        ("RAKUTEN_API_BASE_URL", sandbox_url.to_string()),
        ("RAKUTEN_APPLICATION_ID", TEST_APP_ID.to_string()),
        ("RAKUTEN_ACCESS_KEY", TEST_ACCESS_KEY.to_string()),
        ("RAKUTEN_REQUESTS_PER_SECOND", "1000".to_string()),
        ("RAKUTEN_RETRY_BASE_MS", "5".to_string()),
        ("RANKING_MAX_PAGES", "2".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[tokio::test]
async fn runs_the_whole_jobnet_and_prints_the_summary() {
    let db = TestDb::new().await;
    // 60 items at 40 ms each and 1 s Item slices: the Item loop runs several times.
    let mut cfg = sandbox_config(60);
    cfg.latency = std::time::Duration::from_millis(40);
    let sandbox = start_sandbox(cfg).await;
    let raw = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = collector(
        env(&db, &sandbox.base_url(), raw.path()),
        vec!["--item-slice-secs", "1"],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    eprintln!(
        "collector run took {} ms\n{stdout}\n{stderr}",
        started.elapsed().as_millis()
    );
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stderr.contains("statemachine/jobnet.asl.json"), "{stderr}");
    for job in ["ranking", "item", "genre", "tag", "is_active"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(job)),
            "no {job} row:\n{stdout}"
        );
    }
    assert!(stdout.contains("jobnet succeeded"), "{stdout}");
    assert!(
        stderr.contains("… item: "),
        "no Item loop progress:\n{stderr}"
    );
    let loops: usize = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix('(')?
                .strip_suffix(" invocations)")?
                .parse()
                .ok()
        })
        .unwrap_or(1);
    assert!(loops >= 2, "the Item loop ran {loops} time(s):\n{stdout}");
    let client = db.client().await;
    let row = client
        .query_one("SELECT status, count(*) OVER () FROM etl_runs", &[])
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "succeeded",
        "Notify closed the run"
    );
    let jobs: i64 = client
        .query_one(
            "SELECT count(*) FROM etl_job_runs WHERE status = 'succeeded'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 5);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_second_run_refuses_while_one_holds_the_lock() {
    let db = TestDb::new().await;
    let sandbox = start_sandbox(sandbox_config(5)).await;
    let raw = tempfile::tempdir().unwrap();
    // This test plays the first run: it holds the env's jobnet lock.
    let first = LocalLock::new(db.url.clone().into(), "local");
    let req = GuardRequest::from_event(&serde_json::json!({"input": {}})).unwrap();
    assert!(first.others(&req).await.unwrap().is_empty());
    let out = collector(
        env(&db, &sandbox.base_url(), raw.path()),
        vec!["--guard-max-waits", "0"],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("ConcurrentExecution"), "{stderr}");
    assert!(stderr.contains("holds the jobnet lock"), "{stderr}");
    let runs: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM etl_runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 0, "a refused run opens nothing");
    first.release().await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_failing_job_exits_non_zero_naming_job_error_and_counts() {
    let db = TestDb::new().await;
    let mut cfg = sandbox_config(20);
    cfg.error_rate = 1.0;
    let sandbox = start_sandbox(cfg).await;
    let raw = tempfile::tempdir().unwrap();
    let mut e = env(&db, &sandbox.base_url(), raw.path());
    e.push(("RAKUTEN_MAX_ATTEMPTS".into(), "1".into()));
    let out = collector(e, vec![]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let last = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        last.contains("ranking") && last.contains("FailureRateExceeded"),
        "{stderr}"
    );
    assert!(
        last.contains(" of ") && last.contains("units failed"),
        "counts: {last}"
    );
    assert!(stdout.contains("FAILED"), "{stdout}");
    let client = db.client().await;
    let row = client
        .query_one("SELECT status, error_type FROM etl_runs", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("FailureRateExceeded")
    );
    sandbox.shutdown().await;
}
