//! The Item job survives being killed mid-invocation: the rerun loses nothing, duplicates
//! nothing, and fetches again at most the one batch that was in flight.

use std::process::Stdio;
use std::time::{Duration, Instant};

use collector_core::jobs::ranking::{self, RankingInput};
use ichiba_collector_tests::*;

#[tokio::test]
async fn killed_mid_invocation_then_rerun_loses_and_duplicates_nothing() {
    let data = rakuten_sandbox::Dataset::generate(&sandbox_config(200));
    let (db, sandbox, raw, ctx) = job_env(sandbox_config(200), &[]).await;
    let run_id = ranking::run(&ctx, RankingInput::default())
        .await
        .unwrap()
        .run_id;
    let c = db.client().await;

    let store = format!("file://{}", raw.path().display());
    let run = run_id.to_string();
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("RAW_STORE", store.as_str()),
        ("RAKUTEN_API_BASE_URL", &sandbox.base_url()),
        ("RAKUTEN_APPLICATION_ID", TEST_APP_ID),
        ("RAKUTEN_ACCESS_KEY", TEST_ACCESS_KEY),
        ("RAKUTEN_REQUESTS_PER_SECOND", "40"),
        ("ITEM_BATCH_SIZE", "5"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let spawn = move || {
        let mut cmd = collector_command(env!("CARGO_BIN_EXE_collector"), env.iter().cloned());
        cmd.args(["job", "item", "--run-id", &run, "--output", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("spawn collector")
    };

    // Kill -9 once some batches are saved and while more are in flight.
    let requests_before = sandbox.stats().requests;
    let mut child = spawn();
    let started = Instant::now();
    let saved = "SELECT count(*) FROM etl_item_queue WHERE run_id = $1 AND status <> 'pending'";
    loop {
        if scalar::<i64>(&c, saved, &[&run_id]).await >= 40 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the item job made no progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("kill");
    let _ = child.wait();
    let saved_at_kill: i64 = scalar(&c, saved, &[&run_id]).await;
    assert!(
        saved_at_kill < 200,
        "killed before the end ({saved_at_kill} saved)"
    );
    let status: String = scalar(
        &c,
        "SELECT status FROM etl_job_runs WHERE run_id = $1 AND job = 'item'",
        &[&run_id],
    )
    .await;
    assert_eq!(
        status, "running",
        "a killed invocation leaves its job run open"
    );
    // Requests are recorded as they go: what the ledger has at the kill, against what
    // the sandbox received; the difference is the count lost with the process.
    let recorded_at_kill = recorded_requests(&c, run_id).await;
    let sent_at_kill = sandbox.stats().requests - requests_before;
    assert!(recorded_at_kill > 0 && recorded_at_kill as u64 <= sent_at_kill);
    let lost = sent_at_kill - recorded_at_kill as u64;

    // Rerun to completion.
    let rerun = spawn.clone();
    let out = tokio::task::spawn_blocking(move || rerun().wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["done"], true);
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["extra"]["saved"], 200);
    let requests = sandbox.stats().requests - requests_before;
    println!(
        "killed after {saved_at_kill} saved items; {requests} item requests in all for 200 items"
    );
    assert!(
        (200..=205).contains(&requests),
        "at most the in-flight batch of 5 is fetched again ({requests})"
    );
    // The ledger's total is everything sent but the count lost with the killed process.
    let recorded = recorded_requests(&c, run_id).await;
    println!("ledger: {recorded} requests recorded, {lost} lost with the killed process");
    assert_eq!(recorded as u64, requests - lost);
    assert_eq!(doc["requests"], recorded);

    // Nothing lost: every ranked item has its details, with the source's tag IDs.
    let rows = rows(
        &c,
        "SELECT item_code, tag_ids FROM rakuten_items WHERE detail_hash IS NOT NULL",
        &[],
    )
    .await;
    assert_eq!(rows.len(), 200);
    for r in &rows {
        let code: String = r.get(0);
        let item = data
            .items
            .iter()
            .find(|i| i.item_code == code)
            .expect("a sandbox item");
        let mut want: Vec<i64> = item.tag_ids.iter().map(|t| *t as i64).collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(r.get::<_, Vec<i64>>(1), want, "{code}");
    }
    // Nothing duplicated: one queue row and one raw object per item; two invocations, one attempt.
    let (queue, distinct): (i64, i64) = {
        let r = one_row(
            &c,
            "SELECT count(*), count(DISTINCT raw_key) FROM etl_item_queue WHERE run_id = $1",
            &[&run_id],
        )
        .await;
        (r.get(0), r.get(1))
    };
    assert_eq!((queue, distinct), (200, 200));
    let objects = files_under(raw.path())
        .into_iter()
        .filter(|(k, _)| k.contains("/item/") && k.contains("/item-"))
        .count();
    assert_eq!(objects, 200);
    let r = one_row(
        &c,
        "SELECT invocations, attempt FROM etl_job_runs WHERE run_id = $1 AND job = 'item'",
        &[&run_id],
    )
    .await;
    assert_eq!((r.get::<_, i32>(0), r.get::<_, i32>(1)), (2, 1));
    sandbox.shutdown().await;
}

/// The requests the ledger has recorded for the run's Item job run.
async fn recorded_requests(c: &Client, run_id: uuid::Uuid) -> i32 {
    scalar(
        c,
        "SELECT requests FROM etl_job_runs WHERE run_id = $1 AND job = 'item'",
        &[&run_id],
    )
    .await
}
