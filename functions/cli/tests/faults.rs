//! The fault suite of "succeeded means complete", run through the `collector` binary as an
//! operator would: `collector run` killed (`kill -9`) at different moments, the raw-store
//! disk filling up during Item, the database frozen mid-job. After each, the next plain
//! `collector run` must end with the day complete, every recorded object must match its
//! bytes, and no ledger row may stay `running`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use collector_core::db::ledger;
use collector_core::rawstore;
use ichiba_collector_tests::*;

fn env(db: &TestDb, sandbox_url: &str, raw: &std::path::Path) -> Vec<(String, String)> {
    env_for(&db.url, sandbox_url, raw)
}

fn env_for(database_url: &str, sandbox_url: &str, raw: &std::path::Path) -> Vec<(String, String)> {
    let extra = [("RANKING_MAX_PAGES", "4"), ("ITEM_BATCH_SIZE", "5")];
    job_vars(database_url, sandbox_url, raw, &extra)
}

fn command(env: &[(String, String)]) -> Command {
    jobnet_command(
        env!("CARGO_BIN_EXE_collector"),
        env!("CARGO_MANIFEST_DIR"),
        env,
    )
}

async fn run_to_end(env: Vec<(String, String)>) -> Output {
    let mut cmd = command(&env);
    cmd.args(["run", "--item-slice-secs", "1"]);
    output_of(cmd).await
}

/// Polls `query` (a boolean) until it is true or the child has exited.
async fn wait_for(client: &Client, child: &mut std::process::Child, query: &str, what: &str) {
    let started = Instant::now();
    loop {
        // Before the first migration the tables do not exist: keep polling.
        let reached = client
            .query_one(query, &[])
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false);
        if reached || child.try_wait().unwrap().is_some() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what}: never reached"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Ranked items of the day without details, a gone mark or a recorded failure: (ranked, covered).
async fn coverage(client: &Client) -> (i64, i64) {
    let row = one_row(client, "WITH ranked AS (SELECT DISTINCT item_code FROM rakuten_rankings)
             SELECT (SELECT count(*) FROM ranked),
                    (SELECT count(*) FROM ranked r JOIN rakuten_items i USING (item_code)
                     WHERE i.detail_saved_at IS NOT NULL OR i.gone_at IS NOT NULL
                        OR EXISTS (SELECT 1 FROM etl_failures f WHERE f.job = 'item' AND f.unit LIKE '%' || r.item_code || '%'))",
            &[]).await;
    (row.get(0), row.get(1))
}

/// Ledger rows (runs and job runs) still `running`.
async fn still_running(client: &Client) -> i64 {
    scalar(
        client,
        "SELECT (SELECT count(*) FROM etl_runs WHERE status = 'running')
                  + (SELECT count(*) FROM etl_job_runs WHERE status = 'running')",
        &[],
    )
    .await
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
        // Slow enough that each moment lasts long enough to be seen.
        let (db, sandbox, raw) = job_parts(slow_config(100, 15)).await;
        let e = env(&db, &sandbox.base_url(), raw.path());
        let client = db.client().await;

        let mut child = command(&e)
            .args(["run", "--item-slice-secs", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn collector run");
        wait_for(&client, &mut child, query, moment).await;
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
        let running = still_running(&client).await;
        assert_eq!(running, 0, "{moment}: a ledger row stayed running");
        // Every item ranked that day has details, is known gone, or has a recorded failure.
        let (ranked, covered) = coverage(&client).await;
        assert!(ranked > 0, "{moment}: nothing ranked\n{stdout}\n{stderr}");
        assert_eq!(
            covered, ranked,
            "{moment}: ranked items without details\n{stdout}\n{stderr}"
        );
        let incomplete: i64 = scalar(
            &client,
            "SELECT count(*) FROM rakuten_ranking_snapshots WHERE NOT complete",
            &[],
        )
        .await;
        assert_eq!(incomplete, 0, "{moment}: an incomplete snapshot");
        let killed_was_unfinished = at_kill.iter().any(|j| j.ends_with(":running"));
        if killed_was_unfinished {
            assert!(
                stderr.contains("resuming abandoned run"),
                "{moment}: the plain run did not say it resumed\n{stderr}"
            );
            let abandoned_then_done: i64 = scalar(&client, "SELECT count(*) FROM etl_runs WHERE resumed_at IS NOT NULL AND status = 'succeeded'",
                    &[]).await;
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

/// Every raw object the Item queue records matches its bytes on disk: (checked, mismatched keys).
async fn recorded_item_objects(client: &Client, raw: &Path) -> (usize, Vec<String>) {
    let rows = rows(
        client,
        "SELECT raw_key, raw_size, raw_sha256 FROM etl_item_queue WHERE raw_key IS NOT NULL",
        &[],
    )
    .await;
    let mut bad = Vec::new();
    for r in &rows {
        let (key, size, sha): (String, i64, String) = (r.get(0), r.get(1), r.get(2));
        match std::fs::read(raw.join(&key)) {
            Ok(bytes) if bytes.len() as i64 == size && rawstore::sha256_hex(&bytes) == sha => {}
            Ok(bytes) => bad.push(format!(
                "{key}: {} bytes on disk, {size} recorded",
                bytes.len()
            )),
            Err(e) => bad.push(format!("{key}: {e}")),
        }
    }
    (rows.len(), bad)
}

/// Case 1 of the issue: the raw store's disk fills up while Item runs. The job must fail
/// naming the problem, record no object that is not fully stored; after space is freed
/// the next plain run completes the day and `collector verify` passes for every run.
#[tokio::test]
async fn a_full_disk_during_item_fails_cleanly_and_the_next_plain_run_completes_and_verifies() {
    let Some(disk) = SmallDisk::mount("64m") else {
        return;
    };
    let db = TestDb::new().await;
    let sandbox = start_sandbox(slow_config(100, 15)).await;
    let raw = disk.path().join("raw");
    let e = env(&db, &sandbox.base_url(), &raw);
    let client = db.client().await;
    let logs = tempfile::tempdir().unwrap();
    let stderr_path = logs.path().join("stderr");

    let mut child = command(&e)
        .args(["run", "--item-slice-secs", "1"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("spawn collector run");
    wait_for(
        &client,
        &mut child,
        "SELECT count(*) >= 5 FROM etl_item_queue WHERE status <> 'pending'",
        "the Item loop",
    )
    .await;
    let filler = fill(disk.path());
    // Waited for off the runtime: the sandbox answering the child runs on it.
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(
        status.code(),
        Some(4),
        "a full disk is exit status 4\n{stderr}"
    );
    assert!(
        stderr.contains("No space left on device") && stderr.contains("RawStoreError"),
        "the error names the cause\n{stderr}"
    );
    let item: (String, Option<String>) = {
        let r = one_row(
            &client,
            "SELECT status, error_type FROM etl_job_runs WHERE job = 'item'",
            &[],
        )
        .await;
        (r.get(0), r.get(1))
    };
    assert_eq!(item, ("failed".into(), Some("RawStoreError".into())));
    let (checked, bad) = recorded_item_objects(&client, &raw).await;
    assert!(
        checked >= 5,
        "some batches were saved before the disk filled"
    );
    assert!(
        bad.is_empty(),
        "recorded objects that do not match: {bad:?}"
    );

    // Space freed: a plain run completes the day.
    std::fs::remove_file(filler).unwrap();
    let out = run_to_end(e.clone()).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "the plain run after freeing space failed\n{stdout}\n{stderr}"
    );
    let (ranked, covered) = coverage(&client).await;
    assert!(ranked > 0);
    assert_eq!(covered, ranked, "ranked items without details\n{stderr}");
    assert_eq!(still_running(&client).await, 0);
    let (_, bad) = recorded_item_objects(&client, &raw).await;
    assert!(
        bad.is_empty(),
        "recorded objects that do not match: {bad:?}"
    );

    // Every run's manifests verify against the store.
    let runs: Vec<uuid::Uuid> = column(
        &client,
        "SELECT run_id FROM etl_runs ORDER BY started_at",
        &[],
    )
    .await;
    assert_eq!(runs.len(), 2, "the failed run and the plain run after it");
    for run in runs {
        let out = command(&e)
            .args(["verify", "--run-id", &run.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "verify failed for run {run}\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    eprintln!("full disk during Item: exit 4 (RawStoreError), {checked} objects recorded before, all matching; plain run then: {covered}/{ranked} ranked items covered, verify passed for both runs");
    sandbox.shutdown().await;
}

/// Case 4 of the issue: the database server freezes (SIGSTOP) in the middle of a job. The
/// job must end with a named timeout error within the configured bounds, not stall, and
/// once the server is back no ledger row stays `running` (the next start marks the run
/// abandoned, as its process is gone).
#[tokio::test]
async fn a_frozen_database_mid_job_is_a_named_timeout_and_no_ledger_row_stays_running() {
    let pg = TempPostgres::start().await;
    // Ranking's four pages take a few seconds: long enough to freeze the server mid-job.
    let sandbox = start_sandbox(slow_config(100, 700)).await;
    let raw = tempfile::tempdir().unwrap();
    let mut e = env_for(&pg.url(), &sandbox.base_url(), raw.path());
    for (k, v) in [
        ("DATABASE_CONNECT_TIMEOUT_SECS", "2"),
        ("DATABASE_STATEMENT_TIMEOUT_SECS", "2"),
        ("DATABASE_KEEPALIVE_SECS", "3"),
    ] {
        e.push((k.to_string(), v.to_string()));
    }
    let client = connect_plain(&pg.url()).await;
    let logs = tempfile::tempdir().unwrap();
    let stderr_path = logs.path().join("stderr");
    let mut child = command(&e)
        .args(["job", "ranking"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("spawn collector job ranking");
    wait_for(
        &client,
        &mut child,
        "SELECT count(*) > 0 FROM etl_job_runs WHERE job = 'ranking' AND status = 'running'",
        "the Ranking job's start",
    )
    .await;
    drop(client);
    pg.freeze();
    let frozen_at = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        // A stall fails the test rather than hanging it.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                panic!("the job stalled on a frozen database: still running after 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let waited = frozen_at.elapsed();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(
        status.code(),
        Some(4),
        "a database failure is exit status 4\n{stderr}"
    );
    assert!(
        stderr.contains("DatabaseError")
            && (stderr.contains("no answer within 2 s")
                || stderr.contains("did not answer within")),
        "the error names the timeout\n{stderr}"
    );

    pg.thaw();
    let client = connect_plain(&pg.url()).await;
    let swept = ledger::sweep_abandoned(&client, "local", Duration::from_secs(180))
        .await
        .unwrap();
    let statuses: Vec<String> = column(&client, "SELECT 'run:' || status FROM etl_runs UNION ALL SELECT job || ':' || status FROM etl_job_runs ORDER BY 1",
            &[]).await;
    assert!(
        statuses
            .iter()
            .all(|s| s.ends_with(":failed") || s.ends_with(":abandoned")),
        "{statuses:?}"
    );
    eprintln!(
        "frozen database: job exited 4 after {:.1} s (connect 2 s, statement 2 s, keep-alive 3 s); ledger then {statuses:?} ({swept:?} swept)",
        waited.as_secs_f64()
    );
    sandbox.shutdown().await;
}
