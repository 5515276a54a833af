//! The fault suite of "succeeded means complete": `collector run` killed (`kill -9`) at
//! different moments, each followed by a plain `collector run`, which must find the
//! killed run abandoned, resume its unfinished work and end with the day complete.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ichiba_collector_tests::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
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
        ("RANKING_MAX_PAGES", "4".to_string()),
        ("ITEM_BATCH_SIZE", "5".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn command(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_collector"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd.envs(env.iter().cloned());
    cmd
}

async fn run_to_end(env: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        command(&env)
            .args(["run", "--item-slice-secs", "1"])
            .output()
            .expect("run collector")
    })
    .await
    .unwrap()
}

/// When to kill: a description and a query that turns true at that moment.
const MOMENTS: [(&str, &str); 5] = [
    (
        "during Ranking",
        "SELECT count(*) > 0 FROM etl_job_runs WHERE job = 'ranking'",
    ),
    (
        "early in the Item loop",
        "SELECT count(*) >= 5 FROM etl_item_queue WHERE status <> 'pending'",
    ),
    (
        "late in the Item loop",
        "SELECT count(*) >= 60 FROM etl_item_queue WHERE status <> 'pending'",
    ),
    (
        "at Genre/Tag",
        "SELECT count(*) > 0 FROM etl_job_runs WHERE job IN ('genre', 'tag')",
    ),
    (
        "at IsActive",
        "SELECT count(*) > 0 FROM etl_job_runs WHERE job = 'is_active'",
    ),
];

#[tokio::test]
async fn killed_runs_are_abandoned_and_the_next_plain_run_completes_the_day() {
    let mut table = vec![format!(
        "{:<24} {:<34} {:>5} {:>7} {:>8} {:>8}",
        "killed", "jobs at the kill", "exit", "ranked", "details", "running"
    )];
    for (moment, query) in MOMENTS {
        let db = TestDb::new().await;
        let mut cfg = sandbox_config(100);
        // Slow enough that each moment lasts long enough to be seen.
        cfg.latency = Duration::from_millis(15);
        let sandbox = start_sandbox(cfg).await;
        let raw = tempfile::tempdir().unwrap();
        let e = env(&db, &sandbox.base_url(), raw.path());
        let client = db.client().await;

        let mut child = command(&e)
            .args(["run", "--item-slice-secs", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn collector run");
        let started = Instant::now();
        loop {
            // Before the first migration the tables do not exist: keep polling.
            let reached = client
                .query_one(query, &[])
                .await
                .map(|r| r.get::<_, bool>(0))
                .unwrap_or(false);
            if reached || child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{moment}: never reached"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().ok();
        child.wait().unwrap();
        let at_kill: Vec<String> = client
            .query(
                "SELECT job || ':' || status FROM etl_job_runs ORDER BY last_started_at",
                &[],
            )
            .await
            .map(|rows| rows.iter().map(|r| r.get(0)).collect())
            .unwrap_or_default();

        let out = run_to_end(e.clone()).await;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "{moment}: the plain run after the kill failed\n{stdout}\n{stderr}"
        );
        let running: i64 = client
            .query_one(
                "SELECT (SELECT count(*) FROM etl_runs WHERE status = 'running')
                      + (SELECT count(*) FROM etl_job_runs WHERE status = 'running')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(running, 0, "{moment}: a ledger row stayed running");
        // Every item ranked that day has details, is known gone, or has a recorded failure.
        let row = client
            .query_one(
                "WITH ranked AS (SELECT DISTINCT item_code FROM rakuten_rankings)
                 SELECT (SELECT count(*) FROM ranked),
                        (SELECT count(*) FROM ranked r JOIN rakuten_items i USING (item_code)
                         WHERE i.detail_saved_at IS NOT NULL OR i.gone_at IS NOT NULL
                            OR EXISTS (SELECT 1 FROM etl_failures f WHERE f.job = 'item' AND f.unit LIKE '%' || r.item_code || '%'))",
                &[],
            )
            .await
            .unwrap();
        let (ranked, covered): (i64, i64) = (row.get(0), row.get(1));
        assert!(ranked > 0, "{moment}: nothing ranked\n{stdout}\n{stderr}");
        assert_eq!(
            covered, ranked,
            "{moment}: ranked items without details\n{stdout}\n{stderr}"
        );
        let incomplete: i64 = client
            .query_one(
                "SELECT count(*) FROM rakuten_ranking_snapshots WHERE NOT complete",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(incomplete, 0, "{moment}: an incomplete snapshot");
        let killed_was_unfinished = at_kill.iter().any(|j| j.ends_with(":running"));
        if killed_was_unfinished {
            assert!(
                stderr.contains("resuming abandoned run"),
                "{moment}: the plain run did not say it resumed\n{stderr}"
            );
            let abandoned_then_done: i64 = client
                .query_one(
                    "SELECT count(*) FROM etl_runs WHERE resumed_at IS NOT NULL AND status = 'succeeded'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(
                abandoned_then_done, 1,
                "{moment}: the killed run was not resumed"
            );
        }
        table.push(format!(
            "{moment:<24} {:<34} {:>5} {ranked:>7} {covered:>8} {running:>8}",
            at_kill.join(" "),
            out.status.code().unwrap_or(-1),
        ));
        sandbox.shutdown().await;
    }
    // The acceptance table: every kill followed by a plain run that completed the day.
    eprintln!("{}", table.join("\n"));
}
