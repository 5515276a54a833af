//! The loader: what the jobnet uses is read into the model exactly; everything else is an
//! error naming the state and the construct.

use super::definition;
use crate::definition::{DefinitionError, IoPath, Kind, ResultPath, State};

pub(super) fn reject(text: &str) -> DefinitionError {
    match definition(text) {
        Ok(_) => panic!("definition accepted: {text}"),
        Err(e) => e,
    }
}

/// A one-state machine with the given state body.
pub(super) fn one(state: &str, body: &str) -> String {
    format!(r#"{{"StartAt": "{state}", "States": {{"{state}": {body}}}}}"#)
}

/// A Task `T` with extra fields, and a Succeed `Z` to transition to.
pub(super) fn task(extra: &str) -> String {
    format!(
        r#"{{"StartAt": "T", "States": {{"T": {{"Type": "Task", "Resource": "r", "Next": "Z", {extra}}},
             "Z": {{"Type": "Succeed"}}}}}}"#
    )
}

fn top_state(text: &str, name: &str) -> State {
    definition(text).unwrap().machine.states[name].clone()
}

fn path_text(p: &IoPath) -> Option<&str> {
    match p {
        IoPath::Null => None,
        IoPath::Path(p) => Some(&p.text),
    }
}

#[test]
fn the_jobnet_loads_with_every_construct_it_uses() {
    let text = include_str!("../../../../statemachine/jobnet.asl.json");
    let d = definition(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.start_at(), "Guard");
    assert_eq!(d.timeout_seconds, Some(86400));
    let st = |n: &str| d.machine.states[n].clone();

    let guard = st("Guard");
    assert!(
        matches!(&guard.kind, Kind::Task { resource } if resource == "arn:aws:states:::lambda:invoke")
    );
    assert_eq!(guard.next.as_deref(), Some("GuardCheck"));
    assert!(guard.parameters.is_some() && guard.result_selector.is_some());
    assert!(matches!(&guard.result_path, ResultPath::Path(p) if p.text == "$.guard"));
    let r = &guard.retry[0];
    assert_eq!(r.errors.len(), 4);
    assert_eq!(
        (
            r.interval_seconds,
            r.max_attempts,
            r.backoff_rate,
            r.max_delay_seconds,
            r.jitter_full
        ),
        (2, 6, 2.0, Some(60), true)
    );
    let c = &guard.catch[0];
    assert_eq!(
        (c.errors.clone(), c.next.as_str()),
        (vec!["States.ALL".to_string()], "NotifyFailure")
    );
    assert!(matches!(&c.result_path, ResultPath::Path(p) if p.text == "$.error"));

    let Kind::Choice { rules, default } = st("Route").kind else {
        panic!("Route is a Choice")
    };
    assert_eq!(rules.len(), 4);
    assert_eq!(rules[3].next, "IsActive");
    assert_eq!(default.as_deref(), Some("InvalidStartAt"));

    assert!(matches!(st("GuardWait").kind, Kind::Wait { seconds: 60 }));
    assert!(matches!(
        st("InvalidStartAt").kind,
        Kind::Pass { result: Some(_) }
    ));
    assert_eq!(
        path_text(&st("GenreError").input_path),
        Some("$.genre_tag.genre.error")
    );
    assert_eq!(path_text(&st("GenreError").output_path), Some("$"));
    assert!(matches!(st("Succeeded").kind, Kind::Succeed));
    let Kind::Fail {
        error: Some(e),
        cause: Some(c),
    } = st("Failed").kind
    else {
        panic!("Failed")
    };
    assert_eq!(
        (e.text.as_str(), c.text.as_str()),
        ("$.error.Error", "$.error.Cause")
    );

    let Kind::Parallel { branches } = st("GenreTag").kind else {
        panic!("GenreTag")
    };
    assert_eq!(branches.len(), 2);
    assert_eq!(branches[1].start_at, "Tag");
    let genre = &branches[0].states["Genre"];
    assert_eq!(genre.next, None, "End: true");
    // A catcher without ResultPath replaces the input with the error output.
    assert!(matches!(&genre.catch[0].result_path, ResultPath::Path(p) if p.segments.is_empty()));
    // NotifyFailure's Catch and Next lead to the same state.
    let nf = st("NotifyFailure");
    assert_eq!(
        nf.transitions().map(|(_, t)| t.clone()).collect::<Vec<_>>(),
        vec!["Failed", "Failed"]
    );

    let tasks: Vec<(String, bool)> = d
        .tasks()
        .into_iter()
        .map(|t| (t.name, t.in_branch))
        .collect();
    assert_eq!(tasks.len(), 8);
    assert_eq!(
        &tasks[6..],
        &[("Genre".to_string(), true), ("Tag".to_string(), true)]
    );
}

#[test]
fn defaults_and_nulls() {
    let st = top_state(
        &task(
            r#""Retry": [{"ErrorEquals": ["X"]}], "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": null, "Next": "Z"}], "InputPath": null, "ResultPath": null"#,
        ),
        "T",
    );
    let r = &st.retry[0];
    // The States language's defaults.
    assert_eq!(
        (
            r.interval_seconds,
            r.max_attempts,
            r.backoff_rate,
            r.max_delay_seconds,
            r.jitter_full
        ),
        (1, 3, 2.0, None, false)
    );
    assert!(matches!(st.catch[0].result_path, ResultPath::Discard));
    assert!(matches!(st.result_path, ResultPath::Discard));
    assert!(matches!(st.input_path, IoPath::Null));
    assert_eq!(path_text(&st.output_path), Some("$"));
    // Comments are allowed everywhere and change nothing; Pass `Result: null` is a result.
    let st = top_state(
        &one(
            "P",
            r#"{"Type": "Pass", "Comment": "c", "Result": null, "End": true}"#,
        ),
        "P",
    );
    assert!(matches!(
        st.kind,
        Kind::Pass {
            result: Some(serde_json::Value::Null)
        }
    ));
    definition(&task(r#""Retry": [{"ErrorEquals": ["X"], "Comment": "c", "JitterStrategy": "NONE"}], "Catch": [{"ErrorEquals": ["X"], "Next": "Z", "Comment": "c"}]"#)).unwrap();
}

#[test]
fn transitions_must_have_a_target_in_the_same_machine() {
    let e = reject(r#"{"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Y"}}}"#);
    assert_eq!(e.to_string(), r#"state "X": Next "Y" does not exist"#);
    let e = reject(r#"{"StartAt": "Nope", "States": {"X": {"Type": "Succeed"}}}"#);
    assert_eq!(e.to_string(), r#"StartAt "Nope" does not exist"#);
    let e = reject(&one(
        "C",
        r#"{"Type": "Choice", "Choices": [{"Variable": "$.a", "IsPresent": true, "Next": "Gone"}], "Default": "C"}"#,
    ));
    assert_eq!(
        e.to_string(),
        r#"state "C": Choices[0].Next "Gone" does not exist"#
    );
    let e = reject(&one(
        "C",
        r#"{"Type": "Choice", "Choices": [{"Variable": "$.a", "IsPresent": true, "Next": "C"}], "Default": "D"}"#,
    ));
    assert_eq!(e.to_string(), r#"state "C": Default "D" does not exist"#);
    let e = reject(&task(
        r#""Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Gone"}]"#,
    ));
    assert_eq!(
        e.to_string(),
        r#"state "T": Catch[0].Next "Gone" does not exist"#
    );
    // A branch cannot jump out to the outer machine.
    let e = reject(
        r#"{"StartAt": "P", "States": {"P": {"Type": "Parallel", "Next": "Out", "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Out"}}}]}, "Out": {"Type": "Succeed"}}}"#,
    );
    assert_eq!(e.to_string(), r#"state "A": Next "Out" does not exist"#);
    let e = reject(
        r#"{"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "B", "States": {"A": {"Type": "Succeed"}}}]}}}"#,
    );
    assert_eq!(
        e.to_string(),
        r#"state "P": Branches[0]: StartAt "B" does not exist"#
    );
}

#[test]
fn what_the_interpreter_reads_must_be_there_with_its_type() {
    for (body, field) in [
        (r#"{"Type": "Task", "End": true}"#, "Resource"),
        (
            r#"{"Type": "Task", "Resource": 1, "End": true}"#,
            "Resource",
        ),
        (r#"{"Type": "Wait", "End": true}"#, "Seconds"),
        (r#"{"Type": "Wait", "Seconds": -1, "End": true}"#, "Seconds"),
        (r#"{"Type": "Choice", "Default": "X"}"#, "Choices"),
        (
            r#"{"Type": "Choice", "Choices": [], "Default": "X"}"#,
            "Choices",
        ),
        (
            r#"{"Type": "Parallel", "Branches": [], "End": true}"#,
            "Branches",
        ),
        (r#"{"Type": "Pass", "Next": 1}"#, "Next"),
        (
            r#"{"Type": "Pass", "InputPath": 1, "End": true}"#,
            "InputPath",
        ),
        (
            r#"{"Type": "Pass", "Parameters": [], "End": true}"#,
            "Parameters",
        ),
        (r#"{"Type": "Succeed", "OutputPath": "nope"}"#, "OutputPath"),
        (r#"{"Type": 1}"#, "Type"),
        (r#"[]"#, "Type"),
    ] {
        let e = reject(&one("X", body));
        assert_eq!(
            (e.state.as_deref(), e.field.as_deref()),
            (Some("X"), Some(field)),
            "{body}: {e}"
        );
    }
    let e = reject(&task(
        r#""Retry": [{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}]"#,
    ));
    assert_eq!(e.field.as_deref(), Some("Retry[0]"));
    let e = reject(&task(r#""Retry": [{"MaxAttempts": 2}]"#));
    assert!(e.to_string().contains("missing field `ErrorEquals`"), "{e}");
    let e = reject(&task(r#""Catch": {"ErrorEquals": ["X"], "Next": "Z"}"#));
    assert_eq!(e.field.as_deref(), Some("Catch"));
    let e = reject(
        r#"{"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}, "ProcessorConfig": {}}]}}}"#,
    );
    assert_eq!(
        (e.state.as_deref(), e.field.as_deref()),
        (Some("P"), Some("Branches[0]"))
    );
    assert!(e.to_string().contains("ProcessorConfig"), "{e}");
    let e = reject("{not json");
    assert!(
        e.to_string()
            .starts_with("the definition is not valid JSON"),
        "{e}"
    );
    assert!(e.state.is_none());
    let e = reject(r#"{"States": {}}"#);
    assert!(e.to_string().contains("missing field `StartAt`"), "{e}");
    // Top-level type errors carry the position (serde does not name the field).
    let e =
        reject(r#"{"StartAt": "S", "States": {"S": {"Type": "Succeed"}}, "TimeoutSeconds": "1"}"#);
    assert!(
        e.to_string()
            .starts_with("the definition: invalid type: string \"1\""),
        "{e}"
    );
    assert!(e.to_string().contains("column"), "{e}");
}

#[test]
fn validity_checks_are_left_to_asl_validator() {
    // Accepted here although asl-validator rejects them: the runner has a meaning for each
    // (the first matching retrier or catcher decides; Next wins over End; an unreachable
    // state is never entered), and CI runs asl-validator on the real definition.
    for text in [
        task(
            r#""Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"], "BackoffRate": 0.5}]"#,
        ),
        task(r#""Catch": [{"ErrorEquals": ["States.ALL", "X"], "Next": "Z"}], "End": true"#),
        r#"{"StartAt": "X", "States": {"X": {"Type": "Succeed"}, "Orphan": {"Type": "Succeed"}}}"#
            .to_string(),
        one("X", r#"{"Type": "Pass"}"#),
    ] {
        definition(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
}
