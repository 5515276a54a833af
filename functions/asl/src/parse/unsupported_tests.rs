//! The loader's refusals: valid ASL that the jobnet does not use is an error naming the
//! state and the construct, so using it in jobnet.asl.json fails on load, not at run time.

use super::tests::{one, reject, task};

#[test]
fn unsupported_fields_name_the_state_and_the_field() {
    let e = reject(&task(r#""Credentials": {"RoleArn": "x"}"#));
    assert_eq!(e.state.as_deref(), Some("T"));
    assert_eq!(e.field.as_deref(), Some("Credentials"));
    assert!(
        e.to_string().starts_with(
            r#"state "T": unsupported field "Credentials" (a Task state supports: Resource, Next"#
        ),
        "{e}"
    );
    // Valid ASL the jobnet does not use.
    for field in [
        "TimeoutSeconds",
        "HeartbeatSeconds",
        "Arguments",
        "Output",
        "Assign",
        "QueryLanguage",
    ] {
        let e = reject(&task(&format!(r#""{field}": 1"#)));
        assert_eq!(e.field.as_deref(), Some(field));
    }
    for (name, body, field) in [
        (
            "W",
            r#"{"Type": "Wait", "SecondsPath": "$.s", "End": true}"#,
            "SecondsPath",
        ),
        (
            "W",
            r#"{"Type": "Wait", "Timestamp": "2026-01-01T00:00:00Z", "End": true}"#,
            "Timestamp",
        ),
        ("F", r#"{"Type": "Fail", "Error": "E"}"#, "Error"),
        ("F", r#"{"Type": "Fail", "Cause": "c"}"#, "Cause"),
        (
            "P",
            r#"{"Type": "Pass", "ResultSelector": {}, "End": true}"#,
            "ResultSelector",
        ),
        (
            "P",
            r#"{"Type": "Pass", "Resource": "r", "End": true}"#,
            "Resource",
        ),
        (
            "C",
            r#"{"Type": "Choice", "Choices": [], "Next": "C"}"#,
            "Next",
        ),
    ] {
        let e = reject(&one(name, body));
        assert_eq!(
            (e.state.as_deref(), e.field.as_deref()),
            (Some(name), Some(field)),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains(&format!("unsupported field \"{field}\"")),
            "{e}"
        );
    }
    let e = reject(&task(r#""Retry": [{"ErrorEquals": ["X"], "Backoff": 2}]"#));
    assert_eq!(e.field.as_deref(), Some("Retry[0]"));
    assert!(
        e.to_string()
            .starts_with(r#"state "T": Retry[0]: unknown field `Backoff`"#),
        "{e}"
    );
    let e = reject(&task(
        r#""Catch": [{"ErrorEquals": ["X"], "Next": "Z", "Output": 1}]"#,
    ));
    assert_eq!(e.field.as_deref(), Some("Catch[0]"));
    assert!(e.to_string().contains("unknown field `Output`"), "{e}");
}

#[test]
fn unsupported_types_languages_operators_paths_and_intrinsics() {
    let e = reject(&one("Items", r#"{"Type": "Map", "End": true}"#));
    assert_eq!(
        (e.state.as_deref(), e.field.as_deref()),
        (Some("Items"), Some("Type"))
    );
    assert!(
        e.to_string()
            .starts_with(r#"state "Items": unsupported state type "Map""#),
        "{e}"
    );

    let e = reject(
        r#"{"QueryLanguage": "JSONata", "StartAt": "S", "States": {"S": {"Type": "Succeed"}}}"#,
    );
    assert!(
        e.to_string().contains("JSONata") && e.to_string().contains("JSONPath"),
        "{e}"
    );
    let e = reject(r#"{"Version": "1.0", "StartAt": "S", "States": {"S": {"Type": "Succeed"}}}"#);
    assert!(e.to_string().contains("unknown field `Version`"), "{e}");

    let e = reject(&one(
        "C",
        r#"{"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "C"}], "Default": "C"}"#,
    ));
    assert_eq!(e.field.as_deref(), Some("Choices[0]"));
    assert!(
        e.to_string()
            .starts_with(r#"state "C": Choices[0]: unsupported choice rule field "NumericEquals""#),
        "{e}"
    );
    let e = reject(&one(
        "C",
        r#"{"Type": "Choice", "Choices": [{"Not": {}, "Next": "C"}]}"#,
    ));
    assert!(
        e.to_string()
            .contains(r#"unsupported choice rule field "Not""#),
        "{e}"
    );

    let e = reject(&task(r#""InputPath": "$.items[*]""#));
    assert_eq!(e.field.as_deref(), Some("InputPath"));
    let e = reject(&task(r#""ResultPath": "$.a[0]""#));
    assert_eq!(e.field.as_deref(), Some("ResultPath"));
    let e = reject(&task(
        r#""Catch": [{"ErrorEquals": ["X"], "ResultPath": "$$.State", "Next": "Z"}]"#,
    ));
    assert_eq!(e.field.as_deref(), Some("Catch[0].ResultPath"));
    let e = reject(&task(r#""Parameters": {"token.$": "$$.Task.Token"}"#));
    assert_eq!(e.field.as_deref(), Some("Parameters"));
    assert!(e.to_string().contains("$$.Task"), "{e}");
    let e = reject(&task(
        r#""ResultSelector": {"h.$": "States.Hash($.a, 'SHA-256')"}"#,
    ));
    assert_eq!(
        e.to_string(),
        r#"state "T": ResultSelector: field "h.$": intrinsic functions are not supported ("States.Hash($.a, 'SHA-256')")"#
    );
    let e = reject(&one(
        "F",
        r#"{"Type": "Fail", "ErrorPath": "States.Format('x')"}"#,
    ));
    assert_eq!(e.field.as_deref(), Some("ErrorPath"));
}
