//! `collector run`: the whole jobnet from statemachine/jobnet.asl.json, end to end,
//! against a real PostgreSQL and a test sandbox.

use std::process::Output;

use collector_core::jobs::guard::{Concurrency, GuardRequest, LocalLock};
use ichiba_collector_tests::*;

/// `collector run ARGS`, off the async runtime (the test's sandbox keeps serving meanwhile).
async fn collector(env: Vec<(String, String)>, args: Vec<&'static str>) -> Output {
    let bin = env!("CARGO_BIN_EXE_collector");
    let mut cmd = jobnet_command(bin, env!("CARGO_MANIFEST_DIR"), &env);
    cmd.arg("run").args(args);
    output_of(cmd).await
}

fn env(db: &TestDb, sandbox_url: &str, raw: &std::path::Path) -> Vec<(String, String)> {
    job_vars(&db.url, sandbox_url, raw, &[("RANKING_MAX_PAGES", "2")])
}

#[tokio::test]
async fn runs_the_whole_jobnet_and_prints_the_summary() {
    // 60 items at 40 ms each and 1 s Item slices: the Item loop runs several times.
    let (db, sandbox, raw) = job_parts(slow_config(60, 40)).await;
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
    let row = one_row(
        &client,
        "SELECT status, count(*) OVER () FROM etl_runs",
        &[],
    )
    .await;
    assert_eq!(
        row.get::<_, String>(0),
        "succeeded",
        "Notify closed the run"
    );
    let jobs: i64 = scalar(
        &client,
        "SELECT count(*) FROM etl_job_runs WHERE status = 'succeeded'",
        &[],
    )
    .await;
    assert_eq!(jobs, 5);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_second_run_refuses_while_one_holds_the_lock() {
    let (db, sandbox, raw) = job_parts(sandbox_config(5)).await;
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
    let failing = failing_config(20, 1.0, rakuten_sandbox::ErrorMode::Transient);
    let (db, sandbox, raw) = job_parts(failing).await;
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
    let row = one_row(&client, "SELECT status, error_type FROM etl_runs", &[]).await;
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("FailureRateExceeded")
    );
    sandbox.shutdown().await;
}
