//! Loading a definition: JSON → [`Definition`].
//!
//! What is accepted is what `statemachine/jobnet.asl.json` uses — per state type the
//! fields in [`supported_fields`], Choice rules in `choice.rs`, paths in `path.rs`,
//! templates in `template.rs` — and every other field, state type, operator or path
//! syntax is an error naming the state and the construct, so an edit of the jobnet that
//! reaches beyond the runner fails on load instead of running differently.
//!
//! It does not repeat the checks asl-validator makes in CI (`scripts/test-statemachine.sh`,
//! `scripts/test-infra.sh`): value ranges, `Next` xor `End`, `States.ALL` placement,
//! reachability, unique state names. It checks only what the interpreter relies on: the
//! subset, the types of the fields it reads, and that every transition has a target.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::choice::Rule;
use crate::definition::{
    Catcher, Definition, DefinitionError, IoPath, Kind, Machine, ResultPath, State,
};
use crate::path::Path;
use crate::template::Template;
use entries::{retrier, Branch, CatchEntry, RetryEntry, TopLevel};

mod entries;

fn top_err(message: impl Into<String>) -> DefinitionError {
    DefinitionError {
        state: None,
        field: None,
        message: message.into(),
    }
}

fn state_err(state: &str, field: &str, message: impl Into<String>) -> DefinitionError {
    DefinitionError {
        state: Some(state.to_string()),
        field: Some(field.to_string()),
        message: message.into(),
    }
}

/// The fields each supported state type may have besides `Type` and `Comment`: those the
/// jobnet uses, plus the rest of the I/O pipeline (InputPath, Parameters, ResultSelector,
/// ResultPath, OutputPath) where the States language allows it, since that pipeline is one
/// piece of code shared by every state type (`pipeline.rs`).
#[rustfmt::skip]
fn supported_fields(type_name: &str) -> Option<&'static [&'static str]> {
    Some(match type_name {
        "Task" => &["Resource", "Next", "End", "InputPath", "Parameters", "ResultSelector", "ResultPath", "OutputPath", "Retry", "Catch"],
        "Parallel" => &["Branches", "Next", "End", "InputPath", "Parameters", "ResultSelector", "ResultPath", "OutputPath", "Retry", "Catch"],
        "Pass" => &["Result", "Next", "End", "InputPath", "Parameters", "ResultPath", "OutputPath"],
        "Wait" => &["Seconds", "Next", "End", "InputPath", "OutputPath"],
        "Choice" => &["Choices", "Default", "InputPath", "OutputPath"],
        "Succeed" => &["InputPath", "OutputPath"],
        "Fail" => &["ErrorPath", "CausePath"],
        _ => return None,
    })
}

/// Parses a definition's text.
pub(crate) fn definition(text: &str) -> Result<Definition, DefinitionError> {
    let top: TopLevel = serde_json::from_str(text).map_err(|e| {
        top_err(if e.is_data() {
            format!("the definition: {e}")
        } else {
            format!("the definition is not valid JSON: {e}")
        })
    })?;
    Ok(Definition {
        machine: machine(top.start_at, &top.states, None)?,
        timeout_seconds: top.timeout_seconds,
    })
}

/// `StartAt` + `States`, of the top level or of a branch (`parallel`: the Parallel state
/// and the branch index, to name them in errors).
fn machine(
    start_at: String,
    states: &Map<String, Value>,
    parallel: Option<(&str, usize)>,
) -> Result<Machine, DefinitionError> {
    let states: BTreeMap<String, State> = states
        .iter()
        .map(|(name, v)| Ok((name.clone(), state(name, v)?)))
        .collect::<Result<_, DefinitionError>>()?;
    if !states.contains_key(&start_at) {
        let message = format!("StartAt {start_at:?} does not exist");
        return Err(match parallel {
            Some((p, i)) => state_err(
                p,
                &format!("Branches[{i}]"),
                format!("Branches[{i}]: {message}"),
            ),
            None => top_err(message),
        });
    }
    // The interpreter follows transitions by name within the same machine (a branch cannot
    // jump out of its Parallel state), so every target must be there.
    for st in states.values() {
        for (field, target) in st.transitions() {
            if !states.contains_key(target) {
                return Err(state_err(
                    &st.name,
                    &field,
                    format!("{field} {target:?} does not exist"),
                ));
            }
        }
    }
    Ok(Machine { start_at, states })
}

fn state(name: &str, v: &Value) -> Result<State, DefinitionError> {
    let Value::Object(map) = v else {
        return Err(state_err(name, "Type", "a state must be a JSON object"));
    };
    let type_name = match map.get("Type") {
        Some(Value::String(t)) => t.as_str(),
        _ => return Err(state_err(name, "Type", "needs a string \"Type\"")),
    };
    let Some(supported) = supported_fields(type_name) else {
        return Err(state_err(
            name,
            "Type",
            format!("unsupported state type {type_name:?} (supported: Task, Choice, Parallel, Wait, Pass, Succeed, Fail)"),
        ));
    };
    for k in map.keys() {
        if !matches!(k.as_str(), "Type" | "Comment") && !supported.contains(&k.as_str()) {
            return Err(state_err(
                name,
                k,
                format!(
                    "unsupported field {k:?} (a {type_name} state supports: {})",
                    supported.join(", ")
                ),
            ));
        }
    }
    let f = Fields { name, map };
    let kind = match type_name {
        "Task" => Kind::Task {
            resource: f
                .get::<String>("Resource")?
                .ok_or_else(|| f.err("Resource", "a Task needs \"Resource\""))?,
        },
        "Choice" => Kind::Choice {
            rules: f.choices()?,
            default: f.get("Default")?,
        },
        "Parallel" => Kind::Parallel {
            branches: f.branches()?,
        },
        "Wait" => Kind::Wait {
            seconds: f
                .get("Seconds")?
                .ok_or_else(|| f.err("Seconds", "a Wait needs \"Seconds\""))?,
        },
        "Pass" => Kind::Pass {
            result: map.get("Result").cloned(),
        },
        "Succeed" => Kind::Succeed,
        _ => Kind::Fail {
            error: f.opt_path("ErrorPath")?,
            cause: f.opt_path("CausePath")?,
        },
    };
    Ok(State {
        name: name.to_string(),
        kind,
        // `End: true` is the absence of `Next`; asl-validator sees to it that exactly one is set.
        next: f.get("Next")?,
        input_path: f.io_path("InputPath")?,
        output_path: f.io_path("OutputPath")?,
        parameters: f.template("Parameters")?,
        result_selector: f.template("ResultSelector")?,
        result_path: f.result_path("ResultPath", map.get("ResultPath"))?,
        retry: f
            .list::<RetryEntry>("Retry")?
            .into_iter()
            .map(retrier)
            .collect(),
        catch: (f.list::<CatchEntry>("Catch")?.into_iter().enumerate())
            .map(|(i, c)| {
                Ok(Catcher {
                    result_path: f
                        .result_path(&format!("Catch[{i}].ResultPath"), c.result_path.as_ref())?,
                    errors: c.error_equals,
                    next: c.next,
                })
            })
            .collect::<Result<_, DefinitionError>>()?,
    })
}

/// One state's fields, read with the state and field named in every error.
struct Fields<'a> {
    name: &'a str,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn err(&self, field: &str, msg: impl Into<String>) -> DefinitionError {
        state_err(self.name, field, msg)
    }

    /// An optional field of type `T` (`null` counts as a wrong type, not as absent).
    fn get<T: DeserializeOwned>(&self, field: &str) -> Result<Option<T>, DefinitionError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(v) => T::deserialize(v)
                .map(Some)
                .map_err(|e| self.err(field, format!("{field:?}: {e}"))),
        }
    }

    fn path(&self, field: &str, text: &str) -> Result<Path, DefinitionError> {
        Path::parse(text).map_err(|e| self.err(field, format!("{field:?}: {e}")))
    }

    fn opt_path(&self, field: &str) -> Result<Option<Path>, DefinitionError> {
        self.get::<String>(field)?
            .map(|t| self.path(field, &t))
            .transpose()
    }

    fn io_path(&self, field: &str) -> Result<IoPath, DefinitionError> {
        match self.map.get(field) {
            None => Ok(IoPath::Path(Path::root())),
            Some(Value::Null) => Ok(IoPath::Null),
            Some(Value::String(s)) => Ok(IoPath::Path(self.path(field, s)?)),
            Some(_) => Err(self.err(field, format!("{field:?} must be a path string or null"))),
        }
    }

    fn result_path(&self, field: &str, v: Option<&Value>) -> Result<ResultPath, DefinitionError> {
        match v {
            None => Ok(ResultPath::Path(Path::root())),
            Some(Value::Null) => Ok(ResultPath::Discard),
            Some(Value::String(s)) => {
                let p = self.path(field, s)?;
                if !p.is_reference_path() {
                    return Err(self.err(
                        field,
                        format!("{field:?} {s:?}: only '$' and field names ('$.a.b') are supported here"),
                    ));
                }
                Ok(ResultPath::Path(p))
            }
            Some(_) => Err(self.err(field, format!("{field:?} must be a path string or null"))),
        }
    }

    fn template(&self, field: &str) -> Result<Option<Template>, DefinitionError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Template::compile(v)
                .map(Some)
                .map_err(|e| self.err(field, format!("{field}: {e}"))),
            Some(_) => Err(self.err(field, format!("{field:?} must be an object"))),
        }
    }

    /// `Retry` / `Catch`: each entry parsed on its own so the error names its index.
    fn list<T: DeserializeOwned>(&self, field: &str) -> Result<Vec<T>, DefinitionError> {
        let items = self.get::<Vec<Value>>(field)?.unwrap_or_default();
        (items.iter().enumerate())
            .map(|(i, v)| {
                let at = format!("{field}[{i}]");
                T::deserialize(v).map_err(|e| self.err(&at, format!("{at}: {e}")))
            })
            .collect()
    }

    fn choices(&self) -> Result<Vec<Rule>, DefinitionError> {
        let items = self.get::<Vec<Value>>("Choices")?.unwrap_or_default();
        if items.is_empty() {
            return Err(self.err("Choices", "a Choice needs a non-empty \"Choices\" array"));
        }
        (items.iter().enumerate())
            .map(|(i, v)| {
                let at = format!("Choices[{i}]");
                Rule::parse(v).map_err(|e| self.err(&at, format!("{at}: {e}")))
            })
            .collect()
    }

    fn branches(&self) -> Result<Vec<Machine>, DefinitionError> {
        let items = self.get::<Vec<Value>>("Branches")?.unwrap_or_default();
        if items.is_empty() {
            return Err(self.err(
                "Branches",
                "a Parallel needs a non-empty \"Branches\" array",
            ));
        }
        (items.iter().enumerate())
            .map(|(i, v)| {
                let at = format!("Branches[{i}]");
                let b = Branch::deserialize(v).map_err(|e| self.err(&at, format!("{at}: {e}")))?;
                machine(b.start_at, &b.states, Some((self.name, i)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod unsupported_tests;
