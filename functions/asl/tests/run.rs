mod common;

use std::sync::Mutex;
use std::time::Duration;

use asl_runner::{
    run, Clock, ExecutionStatus, InstantClock, Observer, RealClock, StateSequence, TaskError,
    TraceEvent,
};
use common::*;
use serde_json::{json, Value};

/// The AWS docs' InputPath / ResultPath / OutputPath example ("Example: Manipulating state
/// data with paths in Step Functions workflows").
#[tokio::test]
async fn input_result_output_path_docs_example() {
    let handler = Scripted::new(|_, input, _| {
        Ok(json!(format!("Hello, {}!", input["who"].as_str().unwrap())))
    });
    let (r, _) = run_instant(
        r#"{
          "StartAt": "HelloWorld",
          "States": {
            "HelloWorld": {
              "Type": "Task",
              "Resource": "arn:aws:lambda:us-east-1:123456789012:function:HelloFunction",
              "InputPath": "$.lambda",
              "ResultPath": "$.data.lambdaresult",
              "OutputPath": "$.data",
              "End": true
            }
          }
        }"#,
        json!({
            "comment": "An input comment.",
            "data": {"val1": 23, "val2": 17},
            "extra": "foo",
            "lambda": {"who": "AWS Step Functions"}
        }),
        &handler,
    )
    .await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");
    assert_eq!(
        handler.calls()[0].input,
        json!({"who": "AWS Step Functions"})
    );
    assert_eq!(
        handler.calls()[0].resource,
        "arn:aws:lambda:us-east-1:123456789012:function:HelloFunction"
    );
    assert_eq!(
        r.output,
        Some(json!({"val1": 23, "val2": 17, "lambdaresult": "Hello, AWS Step Functions!"}))
    );
}

/// A linear chain using the AWS docs' Parameters and ResultSelector examples, then
/// ResultPath null and OutputPath.
#[tokio::test]
async fn linear_chain_parameters_result_selector_result_path() {
    let handler = Scripted::new(|state, input, _| match state {
        "Select" => Ok(input.clone()),
        "CreateCluster" => Ok(json!({
            "resourceType": "elasticmapreduce",
            "resource": "createCluster.sync",
            "output": {
                "SdkHttpMetadata": {"HttpHeaders": {"Content-Length": "1112"}, "HttpStatusCode": 200},
                "SdkResponseMetadata": {"RequestId": "1234-5678-9012"},
                "ClusterId": "AKIAIOSFODNN7EXAMPLE"
            }
        })),
        "Discard" => Ok(json!({"ignored": true})),
        _ => unreachable!(),
    });
    let (r, _) = run_instant(
        r#"{
          "Comment": "linear chain",
          "QueryLanguage": "JSONPath",
          "StartAt": "Select",
          "States": {
            "Select": {
              "Type": "Task", "Resource": "select",
              "Parameters": {
                "comment": "Selecting what I care about.",
                "MyDetails": {
                  "size.$": "$.product.details.size",
                  "exists.$": "$.product.availability",
                  "StaticValue": "foo"
                }
              },
              "ResultPath": "$.selected",
              "Next": "CreateCluster"
            },
            "CreateCluster": {
              "Type": "Task", "Resource": "emr",
              "ResultSelector": {
                "ClusterId.$": "$.output.ClusterId",
                "ResourceType.$": "$.resourceType",
                "Static": [1, {"nested.$": "$.resource"}]
              },
              "ResultPath": "$.EMROutput",
              "Next": "Discard"
            },
            "Discard": {
              "Type": "Task", "Resource": "discard",
              "InputPath": "$.EMROutput",
              "ResultPath": null,
              "OutputPath": "$.EMROutput",
              "End": true
            }
          }
        }"#,
        json!({
            "comment": "Example for Parameters.",
            "product": {
                "details": {"color": "blue", "size": "small", "material": "cotton"},
                "availability": "in stock",
                "sku": "2317",
                "cost": "$23"
            }
        }),
        &handler,
    )
    .await;
    assert!(r.succeeded(), "{r:?}");
    let calls = handler.calls();
    assert_eq!(
        calls[0].input,
        json!({
            "comment": "Selecting what I care about.",
            "MyDetails": {"size": "small", "exists": "in stock", "StaticValue": "foo"}
        })
    );
    // CreateCluster got Select's whole output (input + $.selected).
    assert_eq!(
        calls[1].input["selected"]["MyDetails"]["size"],
        json!("small")
    );
    assert_eq!(calls[1].input["product"]["sku"], json!("2317"));
    // Discard: InputPath applies to its input; ResultPath null keeps the raw input.
    assert_eq!(
        calls[2].input,
        json!({"ClusterId": "AKIAIOSFODNN7EXAMPLE", "ResourceType": "elasticmapreduce",
               "Static": [1, {"nested": "createCluster.sync"}]})
    );
    assert_eq!(
        r.output,
        Some(json!({
            "ClusterId": "AKIAIOSFODNN7EXAMPLE",
            "ResourceType": "elasticmapreduce",
            "Static": [1, {"nested": "createCluster.sync"}]
        }))
    );
    assert_eq!(
        r.entered_states(),
        vec!["Select", "CreateCluster", "Discard"]
    );
}

const LOOP: &str = r#"{
  "StartAt": "Item",
  "States": {
    "Item": {"Type": "Task", "Resource": "item", "ResultPath": "$.item", "Next": "Done?"},
    "Done?": {
      "Type": "Choice",
      "Choices": [
        {"Variable": "$.item.done", "IsPresent": false, "Next": "Broken"},
        {"Variable": "$.item.done", "BooleanEquals": true, "Next": "Finished"}
      ],
      "Default": "Item"
    },
    "Broken": {"Type": "Pass", "Result": {"Error": "Broken", "Cause": "no done flag"},
               "ResultPath": "$.error", "Next": "Failed"},
    "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
    "Finished": {"Type": "Succeed", "OutputPath": "$.item"}
  }
}"#;

#[tokio::test]
async fn choice_loop_runs_until_done() {
    let handler = Scripted::new(|_, _, n| Ok(json!({"done": n >= 2, "page": n + 1})));
    let (r, _) = run_instant(LOOP, json!({"run_id": 7}), &handler).await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(handler.calls().len(), 3);
    assert_eq!(r.output, Some(json!({"done": true, "page": 3})));
    assert_eq!(
        r.entered_states(),
        vec!["Item", "Done?", "Item", "Done?", "Item", "Done?", "Finished"]
    );
    // Each iteration sees the previous state's output (run_id kept, item replaced).
    assert_eq!(
        handler.calls()[2].input,
        json!({"run_id": 7, "item": {"done": false, "page": 2}})
    );
}

#[tokio::test]
async fn choice_default_and_no_match() {
    let handler = Scripted::new(|_, _, _| Ok(json!({"other": 1})));
    let (r, _) = run_instant(LOOP, json!({}), &handler).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error.as_deref(), Some("Broken"));
    assert_eq!(r.cause.as_deref(), Some("no done flag"));

    let handler = Scripted::echo();
    assert_fails(
        r#"{"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "StringEquals": "go", "Next": "S"}]},
            "S": {"Type": "Succeed"}}}"#,
        json!({"x": "stop"}),
        &handler,
        "States.NoChoiceMatched",
    )
    .await;
}

const RETRY: &str = r#"{
  "StartAt": "Ranking",
  "States": {
    "Ranking": {
      "Type": "Task",
      "Resource": "arn:aws:lambda:ap-northeast-1:123456789012:function:ranking",
      "Parameters": {"retry.$": "$$.State.RetryCount", "run_id.$": "$.run_id"},
      "Retry": [
        {"ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException"],
         "IntervalSeconds": 1, "MaxAttempts": 5, "BackoffRate": 2.0, "MaxDelaySeconds": 5},
        {"ErrorEquals": ["Other"], "MaxAttempts": 0}
      ],
      "End": true
    }
  }
}"#;

#[tokio::test]
async fn retry_with_backoff_and_max_delay() {
    let handler = Scripted::new(|_, input, n| {
        if n < 4 {
            Err(TaskError::new(
                "Lambda.ServiceException",
                format!("attempt {n}"),
            ))
        } else {
            Ok(json!({"ok": true, "saw": input.clone()}))
        }
    });
    let (r, clock) = run_instant(RETRY, json!({"run_id": "r1"}), &handler).await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(clock.sleeps(), secs(&[1, 2, 4, 5]));
    let calls = handler.calls();
    assert_eq!(calls.len(), 5);
    assert_eq!(
        calls.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    // $$.State.RetryCount is re-evaluated on each attempt.
    assert_eq!(calls[3].input, json!({"retry": 3, "run_id": "r1"}));
    assert_eq!(
        r.output,
        Some(json!({"ok": true, "saw": {"retry": 4, "run_id": "r1"}}))
    );
    let retried: Vec<(u32, u64)> = r
        .trace
        .iter()
        .filter_map(|e| match e {
            TraceEvent::TaskRetried {
                attempt,
                delay_ms,
                error,
                ..
            } => {
                assert_eq!(error, "Lambda.ServiceException");
                Some((*attempt, *delay_ms))
            }
            _ => None,
        })
        .collect();
    assert_eq!(retried, vec![(1, 1000), (2, 2000), (3, 4000), (4, 5000)]);
    // The state is entered once; retries happen inside it.
    assert_eq!(r.entered_states(), vec!["Ranking"]);
}

#[tokio::test]
async fn retries_exhausted_then_fails_with_last_error() {
    let handler = Scripted::new(|_, _, n| {
        Err(TaskError::new(
            "Lambda.TooManyRequestsException",
            format!("try {n}"),
        ))
    });
    let (r, clock) = run_instant(RETRY, json!({"run_id": "r1"}), &handler).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(handler.calls().len(), 6);
    assert_eq!(clock.sleeps(), secs(&[1, 2, 4, 5, 5]));
    assert_eq!(r.error.as_deref(), Some("Lambda.TooManyRequestsException"));
    assert_eq!(r.cause.as_deref(), Some("try 5"));
}

#[tokio::test]
async fn unlisted_and_max_attempts_zero_errors_are_not_retried() {
    for error in ["FailureRateExceeded", "Other"] {
        let handler = Scripted::new(move |_, _, _| Err(TaskError::new(error, "rate 0.31 > 0.10")));
        let (r, clock) = run_instant(RETRY, json!({"run_id": "r1"}), &handler).await;
        assert_eq!(handler.calls().len(), 1, "{error}");
        assert!(clock.sleeps().is_empty());
        assert_eq!(r.error.as_deref(), Some(error));
        assert_eq!(r.cause.as_deref(), Some("rate 0.31 > 0.10"));
    }
}

#[tokio::test]
async fn retry_defaults_and_full_jitter() {
    let handler = Scripted::new(|_, _, _| Err(TaskError::new("Boom", "x")));
    let (r, clock) = run_instant(
        r#"{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "t",
            "Retry": [{"ErrorEquals": ["States.ALL"]}], "End": true}}}"#,
        json!({}),
        &handler,
    )
    .await;
    // Defaults: IntervalSeconds 1, MaxAttempts 3, BackoffRate 2.0.
    assert_eq!(clock.sleeps(), secs(&[1, 2, 4]));
    assert_eq!(r.error.as_deref(), Some("Boom"));

    let handler = Scripted::new(|_, _, _| Err(TaskError::new("Boom", "x")));
    let (_, clock) = run_instant(
        r#"{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "t",
            "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 10, "MaxAttempts": 4,
                       "JitterStrategy": "FULL"}], "End": true}}}"#,
        json!({}),
        &handler,
    )
    .await;
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 4);
    for (s, cap) in sleeps.iter().zip([10u64, 20, 40, 80]) {
        assert!(*s <= Duration::from_secs(cap), "{s:?} > {cap}s");
    }
}

#[tokio::test]
async fn catch_routes_to_notify_then_fail_preserving_error_and_cause() {
    let handler = Scripted::new(|state, input, _| match state {
        "Ranking" => Err(TaskError::new(
            "FailureRateExceeded",
            "failure rate 0.31 exceeds 0.10",
        )),
        "Notify" => Ok(json!({"notified": input["error"]["Error"].clone()})),
        _ => unreachable!(),
    });
    let (r, _) = run_instant(
        r#"{
          "StartAt": "Ranking",
          "States": {
            "Ranking": {
              "Type": "Task", "Resource": "ranking",
              "Retry": [{"ErrorEquals": ["Lambda.ServiceException"]}],
              "Catch": [
                {"ErrorEquals": ["ConcurrentExecution"], "Next": "Notify"},
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Notify"}
              ],
              "Next": "Done"
            },
            "Notify": {"Type": "Task", "Resource": "notify", "ResultPath": null, "Next": "Failed"},
            "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
            "Done": {"Type": "Succeed"}
          }
        }"#,
        json!({"run_id": "r9"}),
        &handler,
    )
    .await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error.as_deref(), Some("FailureRateExceeded"));
    assert_eq!(r.cause.as_deref(), Some("failure rate 0.31 exceeds 0.10"));
    assert_eq!(r.output, None);
    assert_eq!(r.entered_states(), vec!["Ranking", "Notify", "Failed"]);
    assert_eq!(
        handler.calls_of("Notify")[0].input,
        json!({"run_id": "r9", "error": {"Error": "FailureRateExceeded", "Cause": "failure rate 0.31 exceeds 0.10"}})
    );
    assert!(r.trace.iter().any(|e| matches!(e,
        TraceEvent::StateCaught { name, next, error, .. }
            if name == "Ranking" && next == "Notify" && error == "FailureRateExceeded")));
    assert!(
        matches!(r.trace.last(), Some(TraceEvent::ExecutionFailed { error, .. }) if error == "FailureRateExceeded")
    );
}

#[tokio::test]
async fn catch_without_result_path_replaces_input_with_error_output() {
    let handler = Scripted::new(|state, input, _| match state {
        "T" => Err(TaskError::new("E", "c")),
        _ => Ok(input.clone()),
    });
    let (r, _) = run_instant(
        r#"{"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": "t", "Catch": [{"ErrorEquals": ["E"], "Next": "P"}], "End": true},
            "P": {"Type": "Pass", "End": true}}}"#,
        json!({"a": 1}),
        &handler,
    )
    .await;
    assert_eq!(r.output, Some(json!({"Error": "E", "Cause": "c"})));
}

const PARALLEL: &str = r#"{
  "StartAt": "Fan",
  "States": {
    "Fan": {
      "Type": "Parallel",
      "Parameters": {"run_id.$": "$.run_id"},
      "Branches": [
        {"StartAt": "Genre", "States": {
          "Genre": {"Type": "Task", "Resource": "genre", "Next": "GenreDone"},
          "GenreDone": {"Type": "Pass", "Result": "genre-ok", "ResultPath": "$.status", "End": true}
        }},
        {"StartAt": "Tag", "States": {
          "Tag": {"Type": "Task", "Resource": "tag", "End": true}
        }}
      ],
      "ResultPath": "$.jobs",
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Notify"}],
      "Next": "After"
    },
    "After": {"Type": "Pass", "End": true},
    "Notify": {"Type": "Pass", "Next": "Failed"},
    "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
  }
}"#;

#[tokio::test]
async fn parallel_success_outputs_branch_results_in_order() {
    let handler = Scripted::new(|state, input, _| {
        Ok(json!({"job": state.to_lowercase(), "run_id": input["run_id"].clone()}))
    });
    let (r, _) = run_instant(PARALLEL, json!({"run_id": "r2", "other": true}), &handler).await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(
        r.output,
        Some(json!({
            "run_id": "r2", "other": true,
            "jobs": [
                {"job": "genre", "run_id": "r2", "status": "genre-ok"},
                {"job": "tag", "run_id": "r2"}
            ]
        }))
    );
    assert_eq!(handler.calls_of("Tag")[0].input, json!({"run_id": "r2"}));
    let seq = r.state_sequence();
    assert_eq!(
        seq,
        StateSequence {
            states: vec!["Fan".into(), "After".into()],
            branches: [(
                "Fan".to_string(),
                vec![
                    vec!["Genre".to_string(), "GenreDone".to_string()],
                    vec!["Tag".to_string()]
                ]
            )]
            .into_iter()
            .collect(),
        }
    );
    // Branch events carry their branch path.
    assert!(r.trace.iter().any(|e| matches!(e,
        TraceEvent::StateEntered { name, branch: Some(b), .. }
            if name == "Tag" && b.len() == 1 && b[0].parallel == "Fan" && b[0].index == 1)));
}

#[tokio::test]
async fn parallel_branch_failure_fails_the_state_with_that_error() {
    let handler = Scripted::new(|state, _, _| match state {
        "Genre" => Err(TaskError::new(
            "FailureRateExceeded",
            "genre: 5 of 10 failed",
        )),
        _ => Ok(json!({"job": "tag"})),
    });
    let (r, _) = run_instant(PARALLEL, json!({"run_id": "r3"}), &handler).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error.as_deref(), Some("FailureRateExceeded"));
    assert_eq!(r.cause.as_deref(), Some("genre: 5 of 10 failed"));
    assert_eq!(r.entered_states(), vec!["Fan", "Notify", "Failed"]);
    assert_eq!(r.state_sequence().branches["Fan"][0], vec!["Genre"]);
}

#[tokio::test]
async fn parallel_branch_failure_cancels_the_other_branches() {
    let handler = Scripted::new(|state, _, _| match state {
        "Boom" => Err(TaskError::new("Kaboom", "branch 1 failed")),
        _ => Ok(json!(null)),
    });
    let (r, _) = run_instant(
        r#"{"StartAt": "Fan", "States": {"Fan": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "SlowTask", "States": {"SlowTask": {"Type": "Task", "Resource": "slow", "End": true}}},
            {"StartAt": "Boom", "States": {"Boom": {"Type": "Task", "Resource": "boom", "End": true}}}
        ]}}}"#,
        json!({}),
        &handler,
    )
    .await;
    assert_eq!(r.error.as_deref(), Some("Kaboom"));
    assert_eq!(r.cause.as_deref(), Some("branch 1 failed"));
}

#[tokio::test]
async fn parallel_branch_fail_state_and_nested_parallel() {
    let handler = Scripted::echo();
    let (r, _) = run_instant(
        r#"{"StartAt": "Outer", "States": {"Outer": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "Inner", "States": {"Inner": {"Type": "Parallel", "End": true, "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "End": true}}},
                {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": 2, "End": true}}}
            ]}}},
            {"StartAt": "C", "States": {"C": {"Type": "Pass", "Result": 3, "End": true}}}
        ]}}}"#,
        json!({}),
        &handler,
    )
    .await;
    assert_eq!(r.output, Some(json!([[1, 2], 3])));
    let seq = r.state_sequence();
    assert_eq!(seq.states, vec!["Outer"]);
    assert_eq!(seq.branches["Outer"], vec![vec!["Inner"], vec!["C"]]);
    assert_eq!(seq.branches["Inner"], vec![vec!["A"], vec!["B"]]);

    assert_fails_with(
        r#"{"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e.Error", "CausePath": "$.e.Cause"}}}
        ]}}}"#,
        json!({"e": {"Error": "BranchBroke", "Cause": "because"}}),
        &handler,
        "BranchBroke",
        "because",
    )
    .await;
}

#[tokio::test]
async fn wait_seconds_on_virtual_time_and_entered_time() {
    let handler = Scripted::echo();
    let (r, clock) = run_instant(
        r#"{"StartAt": "W1", "States": {
            "W1": {"Type": "Wait", "Seconds": 42, "Next": "W2"},
            "W2": {"Type": "Wait", "Seconds": 3, "Next": "T"},
            "T": {"Type": "Task", "Resource": "t", "Parameters": {"entered.$": "$$.State.EnteredTime"}, "End": true}
        }}"#,
        json!({}),
        &handler,
    )
    .await;
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(clock.sleeps(), secs(&[42, 3]));
    assert_eq!(
        r.output,
        Some(json!({"entered": "2024-05-01T00:00:45.000Z"}))
    );
    assert!(r.trace.iter().any(
        |e| matches!(e, TraceEvent::WaitStarted { name, delay_ms: 42_000, .. } if name == "W1")
    ));
}

#[tokio::test]
async fn pass_result_and_parameters() {
    let handler = Scripted::echo();
    let (r, _) = run_instant(
        r#"{"StartAt": "P1", "States": {
            "P1": {"Type": "Pass", "Result": {"x-datum": 0.381018, "y-datum": 622.2269926397355},
                   "ResultPath": "$.coords", "Next": "P2"},
            "P2": {"Type": "Pass", "Parameters": {"x.$": "$.coords.x-datum", "label": "L"}, "ResultPath": "$.p", "Next": "P3"},
            "P3": {"Type": "Pass", "InputPath": "$.p", "End": true}
        }}"#,
        json!({"georefOf": "Home"}),
        &handler,
    )
    .await;
    assert_eq!(r.output, Some(json!({"x": 0.381018, "label": "L"})));
    assert!(handler.calls().is_empty());
    // OutputPath null and InputPath null give {}.
    let (r, _) = run_instant(
        r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": null, "ResultPath": "$.r", "Next": "Q"},
            "Q": {"Type": "Succeed", "OutputPath": null}}}"#,
        json!({"a": 1}),
        &handler,
    )
    .await;
    assert_eq!(r.output, Some(json!({})));
}

#[tokio::test]
async fn context_object_fields() {
    let handler = Scripted::echo();
    let (r, _) = run_instant(
        r#"{"StartAt": "Ctx", "States": {"Ctx": {"Type": "Task", "Resource": "ctx", "End": true,
            "Parameters": {
              "id.$": "$$.Execution.Id",
              "name.$": "$$.Execution.Name",
              "input.$": "$$.Execution.Input",
              "run.$": "$$.Execution.Input.run_id",
              "start.$": "$$.Execution.StartTime",
              "sm.$": "$$.StateMachine.Id",
              "smName.$": "$$.StateMachine.Name",
              "state.$": "$$.State.Name",
              "entered.$": "$$.State.EnteredTime",
              "retries.$": "$$.State.RetryCount"
            }}}}"#,
        json!({"run_id": "r1", "json": "{\"k\":[1,2]}", "obj": {"a": true}, "n": 41}),
        &handler,
    )
    .await;
    assert_eq!(
        r.output.clone().unwrap(),
        json!({
            "id": "arn:aws:states:ap-northeast-1:123456789012:execution:jobnet:run-1",
            "name": "run-1",
            "input": {"run_id": "r1", "json": "{\"k\":[1,2]}", "obj": {"a": true}, "n": 41},
            "run": "r1",
            "start": "2024-05-01T00:00:00.000Z",
            "sm": "arn:aws:states:ap-northeast-1:123456789012:stateMachine:jobnet",
            "smName": "jobnet",
            "state": "Ctx",
            "entered": "2024-05-01T00:00:00.000Z",
            "retries": 0
        })
    );
    assert_eq!(handler.calls()[0].input, r.output.clone().unwrap());
}

#[tokio::test]
async fn bad_paths_are_states_runtime_and_not_caught() {
    let handler = Scripted::echo();
    for (field, def) in [
        ("InputPath", r#""InputPath": "$.missing""#),
        ("Parameters", r#""Parameters": {"x.$": "$.missing.deeper"}"#),
        ("OutputPath", r#""OutputPath": "$.nope""#),
        ("ResultSelector", r#""ResultSelector": {"x.$": "$.nope"}"#),
    ] {
        let json = format!(
            r#"{{"StartAt": "T", "States": {{
                "T": {{"Type": "Task", "Resource": "t", {def},
                      "Retry": [{{"ErrorEquals": ["States.ALL"]}}],
                      "Catch": [{{"ErrorEquals": ["States.ALL"], "Next": "Caught"}}], "End": true}},
                "Caught": {{"Type": "Succeed"}}}}}}"#
        );
        let (r, clock) = run_instant(&json, json!({"a": "not json {"}), &handler).await;
        assert_eq!(r.status, ExecutionStatus::Failed, "{field}");
        assert_eq!(r.error.as_deref(), Some("States.Runtime"), "{field}: {r:?}");
        assert!(
            r.cause.as_deref().unwrap().contains("'T'"),
            "{field}: {:?}",
            r.cause
        );
        assert!(
            clock.sleeps().is_empty(),
            "{field}: States.Runtime must not be retried"
        );
        assert_eq!(r.entered_states(), vec!["T"], "{field}");
    }
    // A Choice on a missing variable is States.Runtime too (IsPresent is not).
    assert_fails(
        r#"{"StartAt": "C", "States": {"C": {"Type": "Choice", "Default": "S",
            "Choices": [{"Variable": "$.missing", "StringEquals": "x", "Next": "S"}]},
            "S": {"Type": "Succeed"}}}"#,
        json!({}),
        &handler,
        "States.Runtime",
    )
    .await;
}

/// The execution's TimeoutSeconds on real time: a Task still running is abandoned and the
/// execution fails with States.Timeout (no catcher sees it).
#[tokio::test]
async fn execution_timeout_on_real_time() {
    let handler = Scripted::echo();
    let d = def(
        r#"{"TimeoutSeconds": 1, "StartAt": "SleepyTask", "States": {
            "SleepyTask": {"Type": "Task", "Resource": "t",
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": true},
            "Caught": {"Type": "Succeed"}}}"#,
    );
    let r = run(&d, json!({}), &handler, &RealClock, opts(), None).await;
    assert_eq!(r.error.as_deref(), Some("States.Timeout"));
    assert_eq!(
        r.cause.as_deref(),
        Some("The execution timed out after 1 seconds")
    );
    assert_eq!(r.entered_states(), vec!["SleepyTask"]);
}

#[tokio::test]
async fn execution_timeout_on_virtual_time() {
    let handler = Scripted::echo();
    assert_fails(
        r#"{"TimeoutSeconds": 10, "StartAt": "W", "States": {
            "W": {"Type": "Wait", "Seconds": 20, "Next": "S"}, "S": {"Type": "Succeed"}}}"#,
        json!({}),
        &handler,
        "States.Timeout",
    )
    .await;
}

#[tokio::test]
async fn observer_sees_every_event_and_trace_serialises() {
    struct Collect(Mutex<Vec<TraceEvent>>);
    impl Observer for Collect {
        fn on_event(&self, e: &TraceEvent) {
            self.0.lock().unwrap().push(e.clone());
        }
    }
    let obs = Collect(Mutex::new(Vec::new()));
    let handler = Scripted::new(|_, _, n| Ok(json!({"done": n >= 1})));
    let d = def(LOOP);
    let clock = InstantClock::starting_at(t0());
    let r = run(
        &d,
        json!({}),
        &handler,
        &clock as &dyn Clock,
        opts(),
        Some(&obs),
    )
    .await;
    assert!(r.succeeded());
    assert_eq!(*obs.0.lock().unwrap(), r.trace);
    assert!(matches!(
        r.trace.first(),
        Some(TraceEvent::ExecutionStarted { .. })
    ));
    assert!(matches!(
        r.trace.last(),
        Some(TraceEvent::ExecutionSucceeded { .. })
    ));
    let v = serde_json::to_value(&r.trace).unwrap();
    assert_eq!(v[1]["event"], json!("StateEntered"));
    assert_eq!(v[1]["name"], json!("Item"));
    assert_eq!(v[1]["state_type"], json!("Task"));
    assert!(v[1].get("branch").is_none());
    let back: Vec<TraceEvent> = serde_json::from_value(v).unwrap();
    assert_eq!(back, r.trace);

    // Closures are observers too.
    let count = Mutex::new(0usize);
    let f = |_: &TraceEvent| *count.lock().unwrap() += 1;
    let clock = InstantClock::starting_at(t0());
    let handler = Scripted::new(|_, _, _| Ok(json!({"done": true})));
    let r = run(
        &d,
        json!({}),
        &handler,
        &clock as &dyn Clock,
        opts(),
        Some(&f),
    )
    .await;
    assert_eq!(*count.lock().unwrap(), r.trace.len());
}

#[tokio::test]
async fn fail_state_error_and_cause_paths() {
    let handler = Scripted::echo();
    let fail = r#"{"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e.Error", "CausePath": "$.e.Cause"}}}"#;
    let (r, _) = run_instant(
        fail,
        json!({"e": {"Error": "ConcurrentExecution", "Cause": "another run is RUNNING"}}),
        &handler,
    )
    .await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error.as_deref(), Some("ConcurrentExecution"));
    assert_eq!(r.cause.as_deref(), Some("another run is RUNNING"));
    assert!(r
        .trace
        .iter()
        .any(|e| matches!(e, TraceEvent::StateFailed { name, .. } if name == "F")));
    // A path that selects nothing, or no string, is States.Runtime.
    for input in [json!({}), json!({"e": {"Error": 1, "Cause": "c"}})] {
        let (r, _) = run_instant(fail, input, &handler).await;
        assert_eq!(r.error.as_deref(), Some("States.Runtime"), "{r:?}");
    }
    // Absent fields are empty.
    let fail_bare = r#"{"StartAt": "F", "States": {"F": {"Type": "Fail"}}}"#;
    assert_fails_with(fail_bare, json!({}), &handler, "", "").await;
}

#[tokio::test]
async fn result_path_into_non_object_is_result_path_match_failure() {
    let handler = Scripted::new(|_, _, _| Ok(json!(1)));
    assert_fails(
        r#"{"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "t", "ResultPath": "$.a.b", "End": true}}}"#,
        json!({"a": "string"}),
        &handler,
        "States.ResultPathMatchFailure",
    )
    .await;
}

#[allow(dead_code)]
fn assert_send(v: Value) {
    // The execution future is Send, so a caller may run it on a multi-threaded runtime.
    fn is_send<T: Send>(_: T) {}
    let d = def(LOOP);
    let h = Scripted::echo();
    is_send(run(&d, v, &h, &RealClock, opts(), None));
}
