//! A loaded definition: the states the interpreter runs, and the read-only views the CLI
//! and the tests take of it. Loading (JSON → these types) is in `parse.rs`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::choice::Rule;
use crate::path::Path;
use crate::template::Template;

/// Why a definition was rejected: outside the supported subset, or not runnable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    /// The state concerned, if any.
    pub state: Option<String>,
    /// The field concerned, if any (e.g. `"Credentials"`, `"Retry[0]"`, `"Choices[1]"`).
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            Some(s) => write!(f, "state {s:?}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DefinitionError {}

/// A parsed state machine definition, ready to [`run`](crate::run).
#[derive(Debug, Clone)]
pub struct Definition {
    pub(crate) machine: Machine,
    /// The execution's `TimeoutSeconds`.
    pub(crate) timeout_seconds: Option<u64>,
}

/// `StartAt` + `States`: the top level or one Parallel branch.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub start_at: String,
    /// Sorted by name, so views such as [`Definition::tasks`] are deterministic.
    pub states: BTreeMap<String, State>,
}

#[derive(Debug, Clone)]
pub(crate) struct State {
    pub name: String,
    pub kind: Kind,
    /// `None`: the state ends its machine (`End: true`, Succeed, Fail; Choice uses its rules).
    pub next: Option<String>,
    pub input_path: IoPath,
    pub output_path: IoPath,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Task {
        resource: String,
    },
    Choice {
        rules: Vec<Rule>,
        default: Option<String>,
    },
    Parallel {
        branches: Vec<Machine>,
    },
    Wait {
        seconds: u64,
    },
    Pass {
        result: Option<Value>,
    },
    Succeed,
    Fail {
        error: Option<Path>,
        cause: Option<Path>,
    },
}

/// InputPath / OutputPath: `null` means `{}`.
#[derive(Debug, Clone)]
pub(crate) enum IoPath {
    Null,
    Path(Path),
}

/// ResultPath (also of a catcher): `null` keeps the state's input and drops the result.
#[derive(Debug, Clone)]
pub(crate) enum ResultPath {
    Discard,
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    pub errors: Vec<String>,
    pub interval_seconds: u64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
    pub jitter_full: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Catcher {
    pub errors: Vec<String>,
    pub next: String,
    pub result_path: ResultPath,
}

impl State {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Task { .. } => "Task",
            Kind::Choice { .. } => "Choice",
            Kind::Parallel { .. } => "Parallel",
            Kind::Wait { .. } => "Wait",
            Kind::Pass { .. } => "Pass",
            Kind::Succeed => "Succeed",
            Kind::Fail { .. } => "Fail",
        }
    }

    /// Every state this one can move to (Next, Catch, Choice rules and Default).
    pub fn transitions(&self) -> impl Iterator<Item = (String, &String)> {
        let next = self.next.iter().map(|n| ("Next".to_string(), n));
        let catch =
            (self.catch.iter().enumerate()).map(|(i, c)| (format!("Catch[{i}].Next"), &c.next));
        let (rules, default): (&[Rule], _) = match &self.kind {
            Kind::Choice { rules, default } => (rules, default.as_ref()),
            _ => (&[], None),
        };
        let rules =
            (rules.iter().enumerate()).map(|(i, r)| (format!("Choices[{i}].Next"), &r.next));
        let default = default.into_iter().map(|d| ("Default".to_string(), d));
        next.chain(catch).chain(rules).chain(default)
    }
}

/// A read-only summary of one Task state, for checks on the definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub name: String,
    pub resource: String,
    /// The Task sits inside a Parallel branch.
    pub in_branch: bool,
    /// `ErrorEquals` of each retrier, in order.
    pub retry_error_equals: Vec<Vec<String>>,
    /// `ErrorEquals` of each catcher, in order.
    pub catch_error_equals: Vec<Vec<String>>,
}

impl Definition {
    /// Parses a definition (after any `${…}` substitution, see [`crate::substitute`]).
    /// Anything outside the supported subset is an error naming the state and the field.
    pub fn from_json(text: &str) -> Result<Self, DefinitionError> {
        crate::parse::definition(text)
    }

    /// The top-level `StartAt`.
    pub fn start_at(&self) -> &str {
        &self.machine.start_at
    }

    /// Every Task state: the top level's in name order, then those of Parallel branches.
    pub fn tasks(&self) -> Vec<TaskInfo> {
        let mut out = Vec::new();
        collect_tasks(&self.machine, false, &mut out);
        out
    }
}

fn collect_tasks(m: &Machine, in_branch: bool, out: &mut Vec<TaskInfo>) {
    for st in m.states.values() {
        if let Kind::Task { resource } = &st.kind {
            out.push(TaskInfo {
                name: st.name.clone(),
                resource: resource.clone(),
                in_branch,
                retry_error_equals: st.retry.iter().map(|r| r.errors.clone()).collect(),
                catch_error_equals: st.catch.iter().map(|c| c.errors.clone()).collect(),
            });
        }
    }
    for st in m.states.values() {
        if let Kind::Parallel { branches } = &st.kind {
            for b in branches {
                collect_tasks(b, true, out);
            }
        }
    }
}
