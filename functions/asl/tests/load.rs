//! Loading through the public API, as `collector run` and the definition tests do:
//! `substitute`, then `Definition::from_json`, then the views. The loader's details are
//! unit-tested in `src/parse/`.

use std::collections::HashMap;

use asl_runner::{substitute, Definition, TaskInfo};

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
    let mut resources: Vec<String> = d.tasks().into_iter().map(|t| t.resource).collect();
    resources.sort();
    assert_eq!(
        resources,
        vec![arn("genre"), arn("notify"), arn("ranking"), arn("tag")]
    );
    assert_eq!(d.start_at(), "Ranking");
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
fn errors_name_the_state_and_the_construct() {
    let e = Definition::from_json(
        r#"{"StartAt": "Items", "States": {"Items": {"Type": "Map", "End": true}}}"#,
    )
    .unwrap_err();
    assert_eq!(e.state.as_deref(), Some("Items"));
    assert_eq!(e.field.as_deref(), Some("Type"));
    assert!(
        e.to_string()
            .starts_with(r#"state "Items": unsupported state type "Map""#),
        "{e}"
    );
    let text = substitute(JOBNET, &subs()).unwrap().replace(
        r#""Type": "Task", "Resource": "arn:aws:lambda:ap-northeast-1:123456789012:function:genre","#,
        r#""Type": "Task", "Resource": "arn:aws:lambda:ap-northeast-1:123456789012:function:genre", "TimeoutSeconds": 60,"#,
    );
    let e = Definition::from_json(&text).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(r#"state "Genre": unsupported field "TimeoutSeconds""#),
        "{e}"
    );
}
