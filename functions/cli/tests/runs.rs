//! `collector runs` and `runs show` over a history holding a succeeded, a failed and an
//! incomplete run.

use ichiba_collector_tests::*;
use rakuten_sandbox::{ErrorMode, SandboxConfig};
use uuid::Uuid;

/// `collector job ranking` against a sandbox serving `cfg`; returns the run it opened.
async fn ranking_run(
    db: &TestDb,
    raw: &std::path::Path,
    cfg: SandboxConfig,
    extra: &[(&str, &str)],
) -> Uuid {
    let sandbox = start_sandbox(cfg).await;
    let env = job_vars(&db.url, &sandbox.base_url(), raw, extra);
    let mut cmd = collector_command(env!("CARGO_BIN_EXE_collector"), env);
    cmd.args(["job", "ranking"]);
    output_of(cmd).await;
    sandbox.shutdown().await;
    let c = db.client().await;
    scalar(
        &c,
        "SELECT run_id FROM etl_runs ORDER BY started_at DESC LIMIT 1",
        &[],
    )
    .await
}

/// Moves a run and the snapshots it wrote `days` days back: each run then has a JST day of
/// its own (the day's snapshot notes belong to the day).
async fn move_back(db: &TestDb, run: Uuid, days: i32) {
    let c = db.client().await;
    c.execute(
        "UPDATE etl_runs SET run_date = run_date - $2::int WHERE run_id = $1",
        &[&run, &days],
    )
    .await
    .unwrap();
    c.execute(
        "UPDATE rakuten_ranking_snapshots SET snapshot_date = snapshot_date - $2::int WHERE run_id = $1",
        &[&run, &days],
    )
    .await
    .unwrap();
}

fn collector(db: &TestDb, args: &[&str]) -> (i32, String) {
    let env = [("DATABASE_URL", db.url.as_str())];
    let mut cmd = collector_command(env!("CARGO_BIN_EXE_collector"), env);
    let out = cmd.args(args).output().expect("run collector");
    assert!(out.status.code().is_some(), "{}", text(&out.stderr));
    (out.status.code().unwrap(), text(&out.stdout))
}

#[tokio::test]
async fn runs_and_runs_show_tell_succeeded_failed_and_incomplete_runs_apart() {
    let (db, raw) = db_and_raw().await;
    let raw = raw.path();
    // Incomplete: page 2 of the overall ranking always fails, under a lenient threshold.
    let mut cfg = sandbox_config(300);
    cfg.fail_ranking_pages = vec!["0:2".parse().unwrap()];
    let incomplete = ranking_run(&db, raw, cfg, &[("RANKING_FAILURE_THRESHOLD", "0.5")]).await;
    move_back(&db, incomplete, 2).await;
    // Failed: every request fails.
    let failed = ranking_run(
        &db,
        raw,
        failing_config(300, 1.0, ErrorMode::Persistent),
        &[],
    )
    .await;
    move_back(&db, failed, 1).await;
    // Succeeded, complete.
    // (A ranking built since: the same build as the day before would be flagged stale.)
    let mut cfg = sandbox_config(300);
    cfg.date = Some("2026-11-25".into());
    let succeeded = ranking_run(&db, raw, cfg, &[]).await;

    let (code, listed) = collector(&db, &["runs"]);
    assert_eq!(code, 0, "{listed}");
    let line = |run: Uuid| {
        listed
            .lines()
            .find(|l| l.starts_with(&run.to_string()))
            .unwrap_or_else(|| panic!("{run} not listed:\n{listed}"))
            .to_string()
    };
    let (s, f, i) = (line(succeeded), line(failed), line(incomplete));
    assert!(
        s.contains(" succeeded ") && s.contains("ok ") && s.ends_with("complete"),
        "{s}"
    );
    assert!(f.contains(" failed ") && f.contains("FAIL "), "{f}");
    assert!(
        i.contains(" succeeded ") && i.ends_with("1 incomplete"),
        "{i}"
    );
    // Newest first.
    let order: Vec<usize> = [&s, &f, &i]
        .iter()
        .map(|l| listed.find(l.as_str()).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{listed}");

    let (code, shown) = collector(&db, &["runs", "show", &failed.to_string()]);
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains(&format!("run {failed} (env local")) && shown.contains("): failed"),
        "{shown}"
    );
    assert!(
        shown.contains("failures (latest attempt of each job), by kind:"),
        "{shown}"
    );
    assert!(
        shown.contains("      e.g. "),
        "examples of the failures: {shown}"
    );

    let (code, shown) = collector(&db, &["runs", "show", &incomplete.to_string()]);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("that are not a clean new day:"), "{shown}");
    assert!(
        shown.contains("genre 0 daily: incomplete (missing 31-60)"),
        "{shown}"
    );

    let (code, shown) = collector(&db, &["runs", "show", &succeeded.to_string()]);
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("): succeeded") && !shown.contains("not a clean new day"),
        "{shown}"
    );
}
