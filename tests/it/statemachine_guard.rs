//! Guard against moto server's Step Functions API (RUNNING executions present and
//! absent) and the local advisory lock, with the ledger on a real PostgreSQL.

use std::time::Duration;

use collector_core::db::ledger;
use collector_core::jobs::guard::{
    self, Concurrency, GuardRequest, LocalLock, StepFunctionsConcurrency,
};
use ichiba_collector_tests::*;
use serde_json::json;
use uuid::Uuid;

async fn state_machine(sfn: &aws_sdk_sfn::Client) -> String {
    moto_state_machine(sfn, &format!("icx-jobnet-{}", unique(10))).await
}

async fn start(sfn: &aws_sdk_sfn::Client, sm: &str) -> (String, chrono::DateTime<chrono::Utc>) {
    let out = sfn
        .start_execution()
        .state_machine_arn(sm)
        .input("{}")
        .send()
        .await
        .expect("start execution on moto");
    let d = out.start_date();
    (
        out.execution_arn().to_string(),
        chrono::DateTime::from_timestamp(d.secs(), d.subsec_nanos()).unwrap(),
    )
}

fn event(
    sm: &str,
    exec: &str,
    started: chrono::DateTime<chrono::Utc>,
    input: serde_json::Value,
    max_waits: u32,
) -> serde_json::Value {
    json!({
        "input": input,
        "state_machine_arn": sm,
        "execution_arn": exec,
        "execution_start_time": started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "max_waits": max_waits.to_string(),
    })
}

#[tokio::test]
async fn guard_waits_for_an_older_running_execution_then_refuses_and_proceeds_when_alone() {
    let sfn = moto_sfn().await;
    let (db, sandbox, _raw, ctx) = job_env(sandbox_config(5), &[]).await;
    let conc = StepFunctionsConcurrency::new(sfn.clone());

    // Absent: a state machine with only this execution running.
    let sm = state_machine(&sfn).await;
    let (me, my_start) = start(&sfn, &sm).await;
    let t0 = std::time::Instant::now();
    let out = guard::handle(&ctx, event(&sm, &me, my_start, json!({}), 3), &conc)
        .await
        .unwrap();
    eprintln!("guard (alone) took {} ms", t0.elapsed().as_millis());
    assert_eq!(out["proceed"], true);
    let run_id: Uuid = out["run_id"].as_str().unwrap().parse().unwrap();
    let client = db.client().await;
    let run = ledger::get_run(&client, run_id)
        .await
        .unwrap()
        .expect("Guard opened the run");
    assert_eq!(
        (run.env.as_str(), run.status.as_str()),
        ("local", "running")
    );

    // Present: a second execution, started later, waits for the first…
    // (more than a second: start dates must differ even at second precision)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (second, second_start) = start(&sfn, &sm).await;
    let out = guard::handle(&ctx, event(&sm, &second, second_start, json!({}), 2), &conc)
        .await
        .unwrap();
    assert_eq!(out["proceed"], false);
    assert_eq!(out["waits"], 1);
    assert!(out["run_id"].is_null());
    assert!(
        out["waiting_for"][0].as_str().unwrap().contains(&me),
        "{out}"
    );
    // …counts its waits from the previous answer (as the definition passes it back)…
    let input = json!({"guard": {"Payload": out}});
    let out = guard::handle(
        &ctx,
        event(&sm, &second, second_start, input.clone(), 2),
        &conc,
    )
    .await
    .unwrap();
    assert_eq!(
        (out["proceed"].clone(), out["waits"].clone()),
        (json!(false), json!(2))
    );
    // …and refuses once its waits are used up.
    let input = json!({"guard": {"Payload": out}});
    let e = guard::handle(&ctx, event(&sm, &second, second_start, input, 2), &conc)
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "ConcurrentExecution");
    assert!(e.to_string().contains(&me), "{e}");
    // The older execution does not wait for the younger one (no deadlock).
    let out = guard::handle(
        &ctx,
        event(
            &sm,
            &me,
            my_start,
            json!({"run_id": run_id.to_string(), "start_at": "item"}),
            2,
        ),
        &conc,
    )
    .await
    .unwrap();
    assert_eq!(out["proceed"], true);
    assert_eq!(out["run_id"], run_id.to_string(), "resumes the given run");
    assert_eq!(out["start_at"], "item");

    // Once the first one stops, the second proceeds and opens its own run.
    sfn.stop_execution()
        .execution_arn(&me)
        .send()
        .await
        .expect("stop on moto");
    let out = guard::handle(&ctx, event(&sm, &second, second_start, json!({}), 2), &conc)
        .await
        .unwrap();
    assert_eq!(out["proceed"], true);
    assert_ne!(out["run_id"], run_id.to_string());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn guard_validates_input_and_the_run_to_resume() {
    let (db, sandbox, _raw, ctx) = job_env(sandbox_config(5), &[]).await;
    struct Nobody;
    #[async_trait::async_trait]
    impl Concurrency for Nobody {
        async fn others(
            &self,
            _r: &GuardRequest,
        ) -> Result<Vec<String>, collector_core::jobs::JobError> {
            Ok(vec![])
        }
    }
    let missing = Uuid::new_v4();
    let e = guard::handle(
        &ctx,
        json!({"input": {"run_id": missing.to_string()}}),
        &Nobody,
    )
    .await
    .unwrap_err();
    assert_eq!(e.error_type(), "RunNotFound");
    let e = guard::handle(&ctx, json!({"input": {"start_at": "everything"}}), &Nobody)
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "InvalidInput");
    assert!(
        e.to_string()
            .contains("ranking, item, genre_tag, is_active"),
        "{e}"
    );
    // Resuming a finished run reopens it.
    let client = db.client().await;
    let run = open_run(&client, "local").await;
    ledger::finish_run(
        &client,
        run.run_id,
        false,
        Some(("FailureRateExceeded", "x")),
    )
    .await
    .unwrap();
    let out = guard::handle(
        &ctx,
        json!({"input": {"run_id": run.run_id.to_string(), "start_at": "genre_tag"}}),
        &Nobody,
    )
    .await
    .unwrap();
    assert_eq!(out["proceed"], true);
    assert_eq!(run_status(&client, run.run_id).await, "running");
    // start_at without run_id: the newest run of the env, never a new empty one.
    ledger::finish_run(&client, run.run_id, false, Some(("X", "y")))
        .await
        .unwrap();
    let out = guard::handle(&ctx, json!({"input": {"start_at": "item"}}), &Nobody)
        .await
        .unwrap();
    assert_eq!(out["run_id"], run.run_id.to_string());
    assert_eq!(out["start_at"], "item");
    assert!(
        out["resumed"].as_str().unwrap().contains("newest run"),
        "{out}"
    );
    // A run whose process is gone (here: a lease owner on this machine that does not
    // exist) is abandoned by the next start; a plain start resumes it at its first
    // unfinished job.
    client
        .execute(
            "UPDATE etl_runs SET lease_owner = split_part($2, '|', 1) || '|' || split_part($2, '|', 2) || '|'
                 || split_part($2, '|', 3) || '|999999999|1', lease_expires_at = now() + interval '1 hour'
             WHERE run_id = $1",
            &[&run.run_id, &collector_core::db::lease::owner()],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO etl_job_runs (run_id, job, status, job_start_at, last_started_at, threshold)
             VALUES ($1, 'ranking', 'succeeded', now(), now(), 0.01), ($1, 'item', 'running', now(), now(), 0.05)",
            &[&run.run_id],
        )
        .await
        .unwrap();
    let out = guard::handle(&ctx, json!({"input": {}}), &Nobody)
        .await
        .unwrap();
    assert_eq!(out["run_id"], run.run_id.to_string(), "{out}");
    assert_eq!(out["start_at"], "item");
    assert!(
        out["resumed"].as_str().unwrap().contains("abandoned run"),
        "{out}"
    );
    let item_status: String = scalar(
        &client,
        "SELECT status FROM etl_job_runs WHERE run_id = $1 AND job = 'item'",
        &[&run.run_id],
    )
    .await;
    assert_eq!(item_status, "abandoned");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn local_lock_admits_one_run_per_env_and_a_crash_releases_it() {
    let db = TestDb::new().await;
    let env = format!("local-{}", unique(8));
    let req = GuardRequest::from_event(&json!({"input": {}})).unwrap();
    let first = LocalLock::new(db.url.clone().into(), env.clone());
    let second = LocalLock::new(db.url.clone().into(), env.clone());
    let other_env = LocalLock::new(db.url.clone().into(), format!("{env}-b"));
    assert!(first.others(&req).await.unwrap().is_empty());
    assert!(first.is_held().await);
    let waiting = second.others(&req).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert!(waiting[0].contains("holds the jobnet lock"), "{waiting:?}");
    assert!(
        other_env.others(&req).await.unwrap().is_empty(),
        "envs do not block each other"
    );
    first.release().await;
    assert!(second.others(&req).await.unwrap().is_empty());
    // A process that dies without releasing: its session closes and the lock goes with it.
    drop(second);
    let third = LocalLock::new(db.url.clone().into(), env.clone());
    let mut free = false;
    for _ in 0..50 {
        if third.try_acquire().await.unwrap() {
            free = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(free, "the lock of a dropped session was not released");
}
