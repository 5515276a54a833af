use std::collections::HashMap;

use asl_runner::{substitute, Definition, DefinitionError, TaskInfo};

fn reject(json: &str) -> DefinitionError {
    match Definition::from_json(json) {
        Ok(_) => panic!("definition accepted: {json}"),
        Err(e) => e,
    }
}

/// A one-state machine with the given state body.
fn one(state: &str, body: &str) -> String {
    format!(r#"{{"StartAt": "{state}", "States": {{"{state}": {body}}}}}"#)
}

#[test]
fn unsupported_field_names_state_and_field() {
    let e = reject(&one(
        "Ranking",
        r#"{"Type": "Task", "Resource": "r", "Credentials": {"RoleArn": "x"}, "End": true}"#,
    ));
    assert_eq!(
        e.to_string(),
        r#"state "Ranking": unsupported field "Credentials""#
    );
    assert_eq!(e.state.as_deref(), Some("Ranking"));
    assert_eq!(e.field.as_deref(), Some("Credentials"));

    // Fields valid elsewhere but not for this type.
    let e = reject(&one(
        "P",
        r#"{"Type": "Pass", "Resource": "r", "End": true}"#,
    ));
    assert_eq!(e.to_string(), r#"state "P": unsupported field "Resource""#);
    let e = reject(&one(
        "P",
        r#"{"Type": "Pass", "ResultSelector": {}, "End": true}"#,
    ));
    assert_eq!(e.field.as_deref(), Some("ResultSelector"));
    for field in [
        "Arguments",
        "Output",
        "Assign",
        "TimeoutSecondsPath",
        "ItemsPath",
    ] {
        let e = reject(&one(
            "T",
            &format!(r#"{{"Type": "Task", "Resource": "r", "{field}": 1, "End": true}}"#),
        ));
        assert_eq!(
            e.to_string(),
            format!(r#"state "T": unsupported field "{field}""#)
        );
    }
}

#[test]
fn unsupported_state_type_and_query_language() {
    let e = reject(&one("Items", r#"{"Type": "Map", "End": true}"#));
    assert_eq!(e.state.as_deref(), Some("Items"));
    assert_eq!(e.field.as_deref(), Some("Type"));
    assert!(
        e.to_string()
            .starts_with(r#"state "Items": unsupported state type "Map""#),
        "{e}"
    );

    let e = reject(
        r#"{"QueryLanguage": "JSONata", "StartAt": "S", "States": {"S": {"Type": "Succeed"}}}"#,
    );
    assert!(e.to_string().contains("JSONata"), "{e}");
    assert_eq!(e.field.as_deref(), Some("QueryLanguage"));
    let e = reject(&one(
        "S",
        r#"{"Type": "Succeed", "QueryLanguage": "JSONata"}"#,
    ));
    assert_eq!(e.state.as_deref(), Some("S"));

    let e =
        reject(r#"{"StartAt": "S", "States": {"S": {"Type": "Succeed"}}, "ProcessorConfig": {}}"#);
    assert!(e.to_string().contains("ProcessorConfig"), "{e}");
    assert!(Definition::from_json(
        r#"{"Comment": "c", "Version": "1.0", "TimeoutSeconds": 60, "QueryLanguage": "JSONPath",
            "StartAt": "S", "States": {"S": {"Type": "Succeed"}}}"#
    )
    .is_ok());
}

#[test]
fn transitions_are_checked() {
    let e = reject(r#"{"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Y"}}}"#);
    assert_eq!(e.to_string(), r#"state "X": Next "Y" does not exist"#);

    let e = reject(r#"{"StartAt": "Nope", "States": {"X": {"Type": "Succeed"}}}"#);
    assert!(
        e.to_string().contains(r#"StartAt "Nope" does not exist"#),
        "{e}"
    );

    let e = reject(
        r#"{"StartAt": "X", "States": {"X": {"Type": "Succeed"}, "Orphan": {"Type": "Succeed"}}}"#,
    );
    assert_eq!(
        e.to_string(),
        r#"state "Orphan": the state is unreachable from StartAt"#
    );

    let e = reject(&one("X", r#"{"Type": "Task", "Resource": "r"}"#));
    assert!(
        e.to_string()
            .contains(r#"needs either "Next" or "End": true"#),
        "{e}"
    );
    let e = reject(
        r#"{"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Y", "End": true}, "Y": {"Type": "Succeed"}}}"#,
    );
    assert_eq!(e.state.as_deref(), Some("X"));

    let e = reject(&one("C", r#"{"Type": "Choice", "Default": "C"}"#));
    assert!(e.to_string().contains("Choices"), "{e}");
    let e = reject(&one(
        "C",
        r#"{"Type": "Choice", "Choices": [], "Default": "C"}"#,
    ));
    assert_eq!(e.field.as_deref(), Some("Choices"));
    let e = reject(&one(
        "C",
        r#"{"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "Gone"}], "Default": "C"}"#,
    ));
    assert_eq!(
        e.to_string(),
        r#"state "C": Choices[0].Next "Gone" does not exist"#
    );
    let e = reject(&one(
        "C",
        r#"{"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "C"}], "Default": "D"}"#,
    ));
    assert_eq!(e.to_string(), r#"state "C": Default "D" does not exist"#);
    let e = reject(&one(
        "C",
        r#"{"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEquals": "x", "Next": "C", "Output": 1}]}"#,
    ));
    assert!(
        e.to_string().contains(r#"unsupported field "Output""#),
        "{e}"
    );
    let e = reject(&one(
        "C",
        r#"{"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "C"}], "Next": "C"}"#,
    ));
    assert_eq!(e.to_string(), r#"state "C": unsupported field "Next""#);

    let e = reject(&one(
        "T",
        r#"{"Type": "Task", "Resource": "r", "End": true, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Z"}]}"#,
    ));
    assert_eq!(
        e.to_string(),
        r#"state "T": Catch[0].Next "Z" does not exist"#
    );
}

#[test]
fn retry_and_catch_are_validated() {
    let task = |extra: &str| {
        one(
            "T",
            &format!(r#"{{"Type": "Task", "Resource": "r", "End": true, {extra}}}"#),
        )
    };
    let e = reject(&task(
        r#""Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]"#,
    ));
    assert!(e.to_string().contains("must be in the last entry"), "{e}");
    let e = reject(&task(r#""Retry": [{"ErrorEquals": ["States.ALL", "X"]}]"#));
    assert!(e.to_string().contains("alone"), "{e}");
    let e = reject(&task(
        r#""Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0.5}]"#,
    ));
    assert_eq!(e.field.as_deref(), Some("Retry[0].BackoffRate"));
    let e = reject(&task(
        r#""Retry": [{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}]"#,
    ));
    assert_eq!(e.field.as_deref(), Some("Retry[0].JitterStrategy"));
    let e = reject(&task(
        r#""Retry": [{"ErrorEquals": ["X"], "MaxAttempts": -1}]"#,
    ));
    assert_eq!(e.field.as_deref(), Some("Retry[0].MaxAttempts"));
    let e = reject(&task(r#""Retry": [{"ErrorEquals": []}]"#));
    assert_eq!(e.field.as_deref(), Some("Retry[0].ErrorEquals"));
    let e = reject(&task(r#""Retry": [{"ErrorEquals": ["X"], "Backoff": 2}]"#));
    assert_eq!(
        e.to_string(),
        r#"state "T": Retry[0]: unsupported field "Backoff""#
    );
    let e = reject(&task(
        r#""Catch": [{"ErrorEquals": ["States.ALL"], "Next": "T", "Output": 1}]"#,
    ));
    assert_eq!(e.field.as_deref(), Some("Catch[0].Output"));
    // MaxAttempts 0, MaxDelaySeconds, FULL jitter are fine.
    Definition::from_json(&task(
        r#""Retry": [{"ErrorEquals": ["A"], "MaxAttempts": 0}, {"ErrorEquals": ["States.ALL"], "MaxDelaySeconds": 10, "JitterStrategy": "FULL"}]"#,
    ))
    .unwrap();
}

#[test]
fn paths_templates_and_intrinsics_are_validated() {
    let task = |extra: &str| {
        one(
            "T",
            &format!(r#"{{"Type": "Task", "Resource": "r", "End": true, {extra}}}"#),
        )
    };
    let e = reject(&task(r#""InputPath": "$.items[*]""#));
    assert_eq!(e.field.as_deref(), Some("InputPath"));
    let e = reject(&task(r#""ResultPath": "$.a[0]""#));
    assert_eq!(e.field.as_deref(), Some("ResultPath"));
    let e = reject(&task(r#""Parameters": {"token.$": "$$.Task.Token"}"#));
    assert_eq!(e.field.as_deref(), Some("Parameters"));
    assert!(e.to_string().contains("$$.Task"), "{e}");
    let e = reject(&task(
        r#""Parameters": {"h.$": "States.Hash($.a, 'SHA-256')"}"#,
    ));
    assert!(
        e.to_string().starts_with(
            r#"state "T": Parameters: field "h.$": intrinsic function States.Hash is not supported"#
        ),
        "{e}"
    );
    let e = reject(&task(r#""Parameters": {"a.$": 1}"#));
    assert_eq!(e.field.as_deref(), Some("Parameters"));
    let e = reject(&task(r#""ResultSelector": {"a.$": "no-path"}"#));
    assert_eq!(e.field.as_deref(), Some("ResultSelector"));
    let e = reject(&one(
        "W",
        r#"{"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": true}"#,
    ));
    assert_eq!(e.state.as_deref(), Some("W"));
    let e = reject(&one(
        "W",
        r#"{"Type": "Wait", "Timestamp": "tomorrow", "End": true}"#,
    ));
    assert_eq!(e.field.as_deref(), Some("Timestamp"));
    let e = reject(&one(
        "F",
        r#"{"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}"#,
    ));
    assert_eq!(e.field.as_deref(), Some("ErrorPath"));
    let e = reject(&task(r#""TimeoutSeconds": 0"#));
    assert_eq!(e.field.as_deref(), Some("TimeoutSeconds"));
    let e = reject(&task(r#""TimeoutSeconds": 10, "HeartbeatSeconds": 10"#));
    assert_eq!(e.field.as_deref(), Some("HeartbeatSeconds"));
    Definition::from_json(&task(
        r#""TimeoutSeconds": 900, "HeartbeatSeconds": 60, "InputPath": "$['a'].b[0]", "ResultPath": "$.x.y",
           "Parameters": {"f.$": "States.Format('{}-{}', $.a, $$.Execution.Name)", "n": {"m.$": "$$.State.RetryCount"}}"#,
    ))
    .unwrap();
}

const JOBNET: &str = r#"{
  "Comment": "mini jobnet",
  "StartAt": "Ranking",
  "States": {
    "Ranking": {"Type": "Task", "Resource": "${RankingFunctionArn}", "Next": "Fan",
      "Retry": [{"ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException"]}],
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Notify"}]},
    "Fan": {"Type": "Parallel", "Next": "Done", "Branches": [
      {"StartAt": "Genre", "States": {"Genre": {"Type": "Task", "Resource": "${GenreFunctionArn}", "End": true}}},
      {"StartAt": "Tag", "States": {"Tag": {"Type": "Task", "Resource": "${TagFunctionArn}", "End": true}}}
    ]},
    "Notify": {"Type": "Task", "Resource": "${NotifyFunctionArn}", "Next": "Failed"},
    "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
    "Done": {"Type": "Succeed"}
  }
}"#;

fn subs() -> HashMap<String, String> {
    ["Ranking", "Genre", "Tag", "Notify"]
        .into_iter()
        .map(|n| {
            (
                format!("{n}FunctionArn"),
                format!(
                    "arn:aws:lambda:ap-northeast-1:123456789012:function:{}",
                    n.to_lowercase()
                ),
            )
        })
        .collect()
}

#[test]
fn substitution_then_inspection() {
    let text = substitute(JOBNET, &subs()).unwrap();
    let d = Definition::from_json(&text).unwrap();
    let arn = |n: &str| format!("arn:aws:lambda:ap-northeast-1:123456789012:function:{n}");
    let mut resources = d.task_resources();
    resources.sort();
    assert_eq!(
        resources,
        vec![arn("genre"), arn("notify"), arn("ranking"), arn("tag")]
    );
    assert_eq!(
        d.state_names(),
        vec!["Done", "Failed", "Fan", "Notify", "Ranking"]
    );
    let mut all = d.all_state_names();
    all.sort();
    assert_eq!(
        all,
        vec!["Done", "Failed", "Fan", "Genre", "Notify", "Ranking", "Tag"]
    );
    assert_eq!(d.start_at(), "Ranking");
    assert_eq!(d.comment(), Some("mini jobnet"));
    assert_eq!(d.state_type("Tag"), Some("Task"));
    assert_eq!(d.state_type("Fan"), Some("Parallel"));
    let ranking = d.tasks().into_iter().find(|t| t.name == "Ranking").unwrap();
    assert_eq!(
        ranking,
        TaskInfo {
            name: "Ranking".into(),
            resource: arn("ranking"),
            in_branch: false,
            retry_error_equals: vec![vec![
                "Lambda.ServiceException".into(),
                "Lambda.TooManyRequestsException".into()
            ]],
            catch_error_equals: vec![vec!["States.ALL".into()]],
        }
    );
    assert!(
        d.tasks()
            .iter()
            .find(|t| t.name == "Genre")
            .unwrap()
            .in_branch
    );
}

#[test]
fn substitution_errors_on_unresolved_names() {
    let mut partial = subs();
    partial.remove("TagFunctionArn");
    partial.remove("GenreFunctionArn");
    let e = substitute(JOBNET, &partial).unwrap_err();
    assert_eq!(e.names, vec!["GenreFunctionArn", "TagFunctionArn"]);
    assert_eq!(
        e.to_string(),
        "unresolved definition substitution(s): ${GenreFunctionArn}, ${TagFunctionArn}"
    );
    let e = substitute("a ${Unclosed", &HashMap::new()).unwrap_err();
    assert_eq!(e.names, vec!["Unclosed"]);
    // ${!Name} is a literal ${Name}; other text is untouched.
    let vals: HashMap<String, String> = [("A".to_string(), "1".to_string())].into();
    assert_eq!(substitute("x${A}y${!B}$z{", &vals).unwrap(), "x1y${B}$z{");
}

#[test]
fn branches_are_validated_like_machines() {
    let e = reject(
        r#"{"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true, "Credentials": {}}}}]}}}"#,
    );
    assert_eq!(
        e.to_string(),
        r#"state "A": unsupported field "Credentials""#
    );
    // A branch cannot jump out to the outer machine.
    let e = reject(
        r#"{"StartAt": "P", "States": {"P": {"Type": "Parallel", "Next": "Out", "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Out"}}}]}, "Out": {"Type": "Succeed"}}}"#,
    );
    assert_eq!(e.to_string(), r#"state "A": Next "Out" does not exist"#);
    // State names are unique across the whole definition.
    let e = reject(
        r#"{"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "P", "States": {"P": {"Type": "Succeed"}}}]}}}"#,
    );
    assert!(e.to_string().contains("more than once"), "{e}");
    let e = reject(
        r#"{"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}, "ProcessorConfig": {}}]}}}"#,
    );
    assert_eq!(e.state.as_deref(), Some("P"));
    assert!(e.to_string().contains("ProcessorConfig"), "{e}");
    let e = reject(&one(
        "P",
        r#"{"Type": "Parallel", "End": true, "Branches": []}"#,
    ));
    assert_eq!(e.field.as_deref(), Some("Branches"));
}

#[test]
fn malformed_json_is_an_error() {
    let e = reject("{not json");
    assert!(
        e.to_string()
            .starts_with("the definition is not valid JSON"),
        "{e}"
    );
    assert!(e.state.is_none());
}
