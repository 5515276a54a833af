//! The States language's I/O pipeline, the same for every state type that has it:
//! InputPath → Parameters → (the state's work) → ResultSelector → ResultPath → OutputPath,
//! and the error every step raises when it cannot be applied.

use serde_json::{Map, Value};

use crate::definition::{IoPath, ResultPath, State};
use crate::path::{kind, Path};
use crate::retry::errors;
use crate::template::Template;

/// Why a state (and, uncaught, the execution) failed.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub error: String,
    pub cause: String,
}

impl Failure {
    pub fn new(error: &str, cause: impl Into<String>) -> Self {
        Failure {
            error: error.to_string(),
            cause: cause.into(),
        }
    }

    /// A States.Runtime error (never retried or caught), worded as Step Functions does.
    pub fn runtime(state: &str, msg: impl AsRef<str>) -> Self {
        Failure::new(
            errors::RUNTIME,
            format!(
                "An error occurred while executing the state '{state}'. {}",
                msg.as_ref()
            ),
        )
    }
}

pub(crate) enum Transition {
    Next(String, Value),
    End(Value),
}

/// A Fail state's ErrorPath / CausePath: a string, or "" when the field is absent.
pub(crate) fn fail_field(
    name: &str,
    path: &Option<Path>,
    raw: &Value,
    ctx: &Value,
    field: &str,
) -> Result<String, Failure> {
    let Some(p) = path else {
        return Ok(String::new());
    };
    match p.get(raw, ctx) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(Failure::runtime(
            name,
            format!("The {field} evaluated to {} and not a string", kind(other)),
        )),
        None => Err(Failure::runtime(
            name,
            format!(
                "{field}: Invalid path '{}': no results for the path",
                p.text
            ),
        )),
    }
}

/// Task and Parallel results: ResultSelector → ResultPath → OutputPath.
pub(crate) fn finish(
    st: &State,
    raw: &Value,
    ctx: &Value,
    result: Value,
) -> Result<Value, Failure> {
    let name = st.name.as_str();
    let result = template(name, &st.result_selector, result, ctx, "ResultSelector")?;
    let out = apply_result_path(name, &st.result_path, raw.clone(), result)?;
    select(name, &st.output_path, &out, ctx, "OutputPath")
}

/// InputPath / OutputPath.
pub(crate) fn select(
    name: &str,
    p: &IoPath,
    v: &Value,
    ctx: &Value,
    field: &str,
) -> Result<Value, Failure> {
    match p {
        IoPath::Null => Ok(Value::Object(Map::new())),
        IoPath::Path(p) => p.get(v, ctx).cloned().ok_or_else(|| {
            Failure::runtime(
                name,
                format!("Invalid path '{}' : No results for path ({field})", p.text),
            )
        }),
    }
}

/// Parameters / ResultSelector (absent: the value passes through).
pub(crate) fn template(
    name: &str,
    t: &Option<Template>,
    v: Value,
    ctx: &Value,
    field: &str,
) -> Result<Value, Failure> {
    match t {
        None => Ok(v),
        Some(t) => t
            .eval(&v, ctx)
            .map_err(|m| Failure::runtime(name, format!("{field}: {m}"))),
    }
}

pub(crate) fn apply_result_path(
    name: &str,
    spec: &ResultPath,
    raw: Value,
    result: Value,
) -> Result<Value, Failure> {
    match spec {
        ResultPath::Discard => Ok(raw),
        ResultPath::Path(p) => p.set(raw, result).map_err(|m| {
            Failure::new(
                errors::RESULT_PATH_MATCH_FAILURE,
                format!("An error occurred while executing the state '{name}'. {m}"),
            )
        }),
    }
}
