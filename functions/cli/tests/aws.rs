//! `collector aws start` / `collector aws status` against moto server's Step Functions
//! (the binary finds moto through `AWS_ENDPOINT_URL`), with the ledger on a real
//! PostgreSQL.

use std::process::Output;

use collector_core::db::ledger;
use ichiba_collector_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

/// The binary with moto's endpoint and dummy credentials, off the async runtime.
async fn collector(env: Vec<(String, String)>, args: Vec<String>) -> Output {
    let endpoint = moto_endpoint();
    let aws = [
        ("RUST_LOG", "warn"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "ap-northeast-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let mut cmd = collector_command(env!("CARGO_BIN_EXE_collector"), aws.into_iter().chain(env));
    cmd.args(args);
    output_of(cmd).await
}

/// The arguments in `line`, split at white space.
fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

/// `collector LINE` with `vars` succeeds: its stdout.
async fn stdout_of(vars: Vec<(String, String)>, line: &str) -> String {
    let out = collector(vars, words(line)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// `collector aws status --env ENV --output json` with `vars`: the document.
async fn status_json(vars: Vec<(String, String)>, env: &str) -> Value {
    let out = collector(
        vars,
        words(&format!("aws status --env {env} --output json")),
    )
    .await;
    json_of(&out)
}

async fn sfn() -> aws_sdk_sfn::Client {
    moto_sfn().await
}

/// A fresh env name and its state machine `ichiba-collector-<env>-jobnet` on moto.
async fn jobnet(sfn: &aws_sdk_sfn::Client) -> (String, String) {
    let env = format!("t{}", unique(10));
    let arn = moto_state_machine(sfn, &format!("ichiba-collector-{env}-jobnet")).await;
    (env, arn)
}

/// A run of `env` in the ledger with a succeeded Ranking and a running Item.
async fn ledger_run(db: &TestDb, env: &str, trigger: &str) -> Uuid {
    let client = db.client().await;
    let run = ledger::create_run(&client, env, trigger, std::time::Duration::from_secs(180))
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO etl_job_runs (run_id, job, status, job_start_at, last_started_at, threshold,
                                       requests, attempted, failed, failure_rate, duration_ms)
             VALUES ($1, 'ranking', 'succeeded', now(), now(), 0.01, 34, 34, 0, 0, 35200),
                    ($1, 'item', 'running', now(), now(), 0.05, 120, 120, 3, 0.025, NULL)",
            &[&run.run_id],
        )
        .await
        .unwrap();
    run.run_id
}

#[tokio::test]
async fn start_sends_guards_input_and_status_shows_the_execution_with_its_run() {
    let sfn = sfn().await;
    let (env, sm) = jobnet(&sfn).await;
    let db = TestDb::new().await;
    let run_id = ledger_run(&db, &env, "stepfunctions").await;

    // Found by name; the input is what Guard accepts.
    let out = collector(
        vec![],
        words(&format!(
            "aws start --env {env} --start-at item --run-id {run_id} --output json"
        )),
    )
    .await;
    let started = json_of(&out);
    assert_eq!(started["state_machine_arn"], json!(sm));
    assert_eq!(
        started["input"],
        json!({"start_at": "item", "run_id": run_id.to_string()})
    );
    let exec = started["execution_arn"].as_str().unwrap().to_string();
    let described = sfn
        .describe_execution()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    let sent: Value = serde_json::from_str(described.input().unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"start_at": "item", "run_id": run_id.to_string()})
    );

    // Status as JSON: the execution, running, with its run and jobs from the ledger.
    let db_env = vec![("DATABASE_URL".to_string(), db.url.clone())];
    let status = status_json(db_env.clone(), &env).await;
    assert_eq!(status["ledger"], "read");
    let ex = &status["executions"][0];
    assert_eq!(ex["execution_arn"], json!(exec));
    assert_eq!(ex["status"], "RUNNING");
    assert_eq!(ex["run_id"], json!(run_id.to_string()));
    assert_eq!(ex["run_id_from"], "input");
    assert_eq!(ex["run"]["status"], "running");
    let jobs = ex["run"]["jobs"].as_array().unwrap();
    let job = |name: &str| jobs.iter().find(|j| j["job"] == name).unwrap().clone();
    assert_eq!(job("ranking")["status"], "succeeded");
    assert_eq!(job("item")["requests"], 120);

    // As text: status, input, the run's jobs and how to stop it.
    let t = stdout_of(db_env.clone(), &format!("aws status --env {env}")).await;
    assert!(t.contains(&format!("state machine {sm}")), "{t}");
    assert!(t.contains("RUNNING"), "{t}");
    assert!(
        t.lines()
            .any(|l| l.trim_start().starts_with("input {") && l.contains(r#""start_at":"item""#)),
        "{t}"
    );
    assert!(t.contains(&format!("run {run_id}")), "{t}");
    assert!(t.contains("matched by input"), "{t}");
    assert!(
        t.lines()
            .any(|l| l.contains("ranking") && l.contains("succeeded") && l.contains("34 requests")),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "stop: aws stepfunctions stop-execution --execution-arn '{exec}'"
        )),
        "{t}"
    );

    // Stopped with an error and cause: ABORTED, the error shown, no stop hint.
    sfn.stop_execution()
        .execution_arn(&exec)
        .error("Operator")
        .cause("stopped by the test")
        .send()
        .await
        .unwrap();
    let t = stdout_of(vec![], &format!("aws status --env {env} --no-ledger")).await;
    assert!(t.contains("ABORTED"), "{t}");
    assert!(!t.contains("stop-execution"), "{t}");
    assert!(t.contains("console: https://ap-northeast-1.console.aws.amazon.com/states/home?region=ap-northeast-1#/v2/executions/details/"), "{t}");
}

#[tokio::test]
async fn a_plain_execution_is_tied_to_the_run_the_ledger_opened_while_it_ran() {
    let sfn = sfn().await;
    let (env, sm) = jobnet(&sfn).await;
    let db = TestDb::new().await;
    // A local run of the same env before the execution is not it.
    ledger_run(&db, &env, "local").await;

    // Text start through an explicit ARN (the flag); the input is {}.
    let t = stdout_of(
        vec![],
        &format!("aws start --env {env} --state-machine-arn {sm}"),
    )
    .await;
    assert!(t.contains("started arn:aws:states:ap-northeast-1:"), "{t}");
    assert!(t.contains("input:   {}"), "{t}");
    assert!(
        t.contains(&format!("follow:  collector aws status --env {env}")),
        "{t}"
    );

    // Before Guard opened a run: none.
    let db_env = vec![("DATABASE_URL".to_string(), db.url.clone())];
    let status = status_json(db_env.clone(), &env).await;
    assert_eq!(status["executions"].as_array().unwrap().len(), 1);
    assert!(status["executions"][0]["run_id"].is_null(), "{status}");

    // Guard opens the run (trigger stepfunctions): the execution gets it.
    let run_id = ledger_run(&db, &env, "stepfunctions").await;
    // The variable works as the flag does.
    let with_arn = vec![
        ("DATABASE_URL".to_string(), db.url.clone()),
        ("STATE_MACHINE_ARN".to_string(), sm.clone()),
    ];
    let status = status_json(with_arn, &env).await;
    let ex = &status["executions"][0];
    assert_eq!(ex["run_id"], json!(run_id.to_string()), "{status}");
    assert_eq!(ex["run_id_from"], "ledger");
    assert_eq!(ex["run"]["trigger"], "stepfunctions");
}

#[tokio::test]
async fn a_missing_state_machine_or_database_is_named() {
    let _ = sfn().await;
    let env = format!("nosuch{}", unique(8));
    let out = collector(vec![], words(&format!("aws status --env {env}"))).await;
    let err = one_line_error(&out, 2);
    assert!(
        err.contains(&format!(
            "no state machine named ichiba-collector-{env}-jobnet in region ap-northeast-1"
        )) && err.contains("--state-machine-arn"),
        "{err}"
    );
    let out = collector(
        vec![],
        words("aws start --env dev --state-machine-arn jobnet"),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not a state machine ARN"));
    let out = collector(vec![], words("aws start --env dev --start-at items")).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("ranking, item, genre_tag, is_active"));

    // A database that does not answer: the executions are still listed, the ledger named.
    let sfn = sfn().await;
    let (env, _) = jobnet(&sfn).await;
    collector(vec![], words(&format!("aws start --env {env}"))).await;
    let t = stdout_of(
        vec![(
            "DATABASE_URL".to_string(),
            "postgresql://postgres@127.0.0.1:9/none".to_string(),
        )],
        &format!("aws status --env {env}"),
    )
    .await;
    assert!(t.contains("RUNNING"), "{t}");
    assert!(t.contains("ledger not read ([DatabaseError]"), "{t}");
}
