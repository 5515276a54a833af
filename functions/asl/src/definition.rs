//! Loading and validating a definition: everything outside the supported subset is
//! rejected here, with the state and field named.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use crate::choice::Rule;
use crate::path::Path;
use crate::template::{Expr, Template};

/// Why a definition was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    /// The state concerned, if any (state names are unique in the whole definition).
    pub state: Option<String>,
    /// The field concerned, if any (e.g. `"Credentials"`, `"Next"`, `"Retry[0].BackoffRate"`).
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

fn top_err(field: Option<&str>, message: impl Into<String>) -> DefinitionError {
    DefinitionError {
        state: None,
        field: field.map(str::to_string),
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

/// A parsed and validated state machine definition.
#[derive(Debug, Clone)]
pub struct Definition {
    pub(crate) machine: Machine,
    pub(crate) timeout_seconds: Option<u64>,
    comment: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub start_at: String,
    pub states: BTreeMap<String, State>,
}

#[derive(Debug, Clone)]
pub(crate) enum IoPath {
    Null,
    Path(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum ResultPathSpec {
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
    pub result_path: ResultPathSpec,
}

#[derive(Debug, Clone)]
pub(crate) enum WaitSpec {
    Seconds(u64),
    SecondsPath(Path),
    Timestamp(DateTime<FixedOffset>),
    TimestampPath(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum FailSource {
    Lit(String),
    Expr(Expr),
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Task {
        resource: String,
        timeout_seconds: Option<u64>,
    },
    Choice {
        choices: Vec<(Rule, String)>,
        default: Option<String>,
    },
    Parallel {
        branches: Vec<Machine>,
    },
    Wait(WaitSpec),
    Pass {
        result: Option<Value>,
    },
    Succeed,
    Fail {
        error: Option<FailSource>,
        cause: Option<FailSource>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct State {
    pub name: String,
    pub kind: Kind,
    /// `None` means `End: true` (or a terminal / Choice state).
    pub next: Option<String>,
    pub input_path: IoPath,
    pub output_path: IoPath,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPathSpec,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

impl State {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Task { .. } => "Task",
            Kind::Choice { .. } => "Choice",
            Kind::Parallel { .. } => "Parallel",
            Kind::Wait(_) => "Wait",
            Kind::Pass { .. } => "Pass",
            Kind::Succeed => "Succeed",
            Kind::Fail { .. } => "Fail",
        }
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

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];

fn allowed_fields(type_name: &str) -> Option<&'static [&'static str]> {
    Some(match type_name {
        "Task" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Resource",
            "TimeoutSeconds",
            "HeartbeatSeconds",
        ],
        "Parallel" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Branches",
        ],
        "Pass" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultPath",
            "Result",
        ],
        "Wait" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "SecondsPath",
            "Timestamp",
            "TimestampPath",
        ],
        "Choice" => &["InputPath", "OutputPath", "Choices", "Default"],
        "Succeed" => &["InputPath", "OutputPath"],
        "Fail" => &["Error", "Cause", "ErrorPath", "CausePath"],
        _ => return None,
    })
}

fn check_query_language(v: &Value, state: Option<&str>) -> Result<(), DefinitionError> {
    match v {
        Value::String(s) if s == "JSONPath" => Ok(()),
        other => {
            let msg = format!("unsupported QueryLanguage {other} (only \"JSONPath\" is supported)");
            Err(match state {
                Some(s) => state_err(s, "QueryLanguage", msg),
                None => top_err(Some("QueryLanguage"), msg),
            })
        }
    }
}

impl Definition {
    /// Parses and validates a definition (after any `${…}` substitution, see [`crate::substitute`]).
    pub fn from_json(text: &str) -> Result<Self, DefinitionError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| top_err(None, format!("the definition is not valid JSON: {e}")))?;
        Self::from_value(&value)
    }

    /// Like [`Definition::from_json`], from an already parsed JSON value.
    pub fn from_value(value: &Value) -> Result<Self, DefinitionError> {
        let Value::Object(map) = value else {
            return Err(top_err(None, "the definition must be a JSON object"));
        };
        let mut timeout_seconds = None;
        let mut comment = None;
        for (k, v) in map {
            match k.as_str() {
                "StartAt" | "States" => {}
                "Comment" => {
                    comment = Some(
                        v.as_str()
                            .ok_or_else(|| {
                                top_err(Some("Comment"), "\"Comment\" must be a string")
                            })?
                            .to_string(),
                    )
                }
                "Version" => {
                    if v != "1.0" {
                        return Err(top_err(Some("Version"), "\"Version\" must be \"1.0\""));
                    }
                }
                "QueryLanguage" => check_query_language(v, None)?,
                "TimeoutSeconds" => {
                    timeout_seconds = Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                        top_err(
                            Some("TimeoutSeconds"),
                            "\"TimeoutSeconds\" must be a positive integer",
                        )
                    })?)
                }
                other => {
                    return Err(top_err(
                        Some(other),
                        format!("unsupported top-level field {other:?}"),
                    ))
                }
            }
        }
        let mut seen = BTreeSet::new();
        let machine = parse_machine(map, None, &mut seen)?;
        Ok(Definition {
            machine,
            timeout_seconds,
            comment,
        })
    }

    /// The top-level `Comment`, if any.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// The top-level `TimeoutSeconds`, if any.
    pub fn timeout_seconds(&self) -> Option<u64> {
        self.timeout_seconds
    }

    /// The top-level `StartAt`.
    pub fn start_at(&self) -> &str {
        &self.machine.start_at
    }

    /// The `Resource` of every Task state, including those inside Parallel branches
    /// (one entry per Task state, in state-name order, top level first).
    pub fn task_resources(&self) -> Vec<String> {
        self.tasks().into_iter().map(|t| t.resource).collect()
    }

    /// Every Task state, including those inside Parallel branches.
    pub fn tasks(&self) -> Vec<TaskInfo> {
        let mut out = Vec::new();
        collect_tasks(&self.machine, false, &mut out);
        out
    }

    /// The names of the top-level states (sorted).
    pub fn state_names(&self) -> Vec<String> {
        self.machine.states.keys().cloned().collect()
    }

    /// The names of every state, including those inside Parallel branches
    /// (top level first, each machine's states sorted).
    pub fn all_state_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut queue = VecDeque::from([&self.machine]);
        while let Some(m) = queue.pop_front() {
            for (name, st) in &m.states {
                out.push(name.clone());
                if let Kind::Parallel { branches } = &st.kind {
                    queue.extend(branches.iter());
                }
            }
        }
        out
    }

    /// The type (`"Task"`, `"Choice"`, …) of the named state, wherever it is.
    pub fn state_type(&self, name: &str) -> Option<&'static str> {
        find_state(&self.machine, name).map(State::type_name)
    }
}

fn find_state<'m>(m: &'m Machine, name: &str) -> Option<&'m State> {
    if let Some(s) = m.states.get(name) {
        return Some(s);
    }
    m.states.values().find_map(|s| match &s.kind {
        Kind::Parallel { branches } => branches.iter().find_map(|b| find_state(b, name)),
        _ => None,
    })
}

fn collect_tasks(m: &Machine, in_branch: bool, out: &mut Vec<TaskInfo>) {
    for st in m.states.values() {
        if let Kind::Task { resource, .. } = &st.kind {
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

/// Parses `StartAt` + `States` (top level or a Parallel branch).
fn parse_machine(
    map: &Map<String, Value>,
    parallel: Option<(&str, usize)>,
    seen: &mut BTreeSet<String>,
) -> Result<Machine, DefinitionError> {
    let where_ = |field: &str, msg: String| match parallel {
        Some((p, i)) => state_err(
            p,
            &format!("Branches[{i}].{field}"),
            format!("Branches[{i}]: {msg}"),
        ),
        None => top_err(Some(field), msg),
    };
    if let Some((_, _)) = parallel {
        for k in map.keys() {
            if !matches!(k.as_str(), "StartAt" | "States" | "Comment") {
                return Err(where_(k, format!("unsupported field {k:?}")));
            }
        }
    }
    let start_at = match map.get("StartAt") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(where_("StartAt", "\"StartAt\" must be a string".into())),
        None => return Err(where_("StartAt", "missing \"StartAt\"".into())),
    };
    let states_map = match map.get("States") {
        Some(Value::Object(m)) if !m.is_empty() => m,
        Some(_) => {
            return Err(where_(
                "States",
                "\"States\" must be a non-empty object".into(),
            ))
        }
        None => return Err(where_("States", "missing \"States\"".into())),
    };
    let mut states = BTreeMap::new();
    for (name, v) in states_map {
        if !seen.insert(name.clone()) {
            return Err(state_err(
                name,
                "States",
                "the state name is used more than once in the definition",
            ));
        }
        if name.is_empty() || name.chars().count() > 80 {
            return Err(state_err(
                name,
                "States",
                "state names must be 1 to 80 characters",
            ));
        }
        states.insert(name.clone(), parse_state(name, v, seen)?);
    }
    if !states.contains_key(&start_at) {
        return Err(where_(
            "StartAt",
            format!("StartAt {start_at:?} does not exist"),
        ));
    }
    // Transition targets must exist in the same machine.
    for st in states.values() {
        let check = |field: String, target: &String| {
            if states.contains_key(target) {
                Ok(())
            } else {
                Err(state_err(
                    &st.name,
                    &field,
                    format!("{field} {target:?} does not exist"),
                ))
            }
        };
        if let Some(n) = &st.next {
            check("Next".into(), n)?;
        }
        for (i, c) in st.catch.iter().enumerate() {
            check(format!("Catch[{i}].Next"), &c.next)?;
        }
        if let Kind::Choice { choices, default } = &st.kind {
            for (i, (_, n)) in choices.iter().enumerate() {
                check(format!("Choices[{i}].Next"), n)?;
            }
            if let Some(d) = default {
                check("Default".into(), d)?;
            }
        }
    }
    // Every state must be reachable from StartAt.
    let mut reached = BTreeSet::new();
    let mut queue = VecDeque::from([start_at.clone()]);
    while let Some(name) = queue.pop_front() {
        if !reached.insert(name.clone()) {
            continue;
        }
        let st = &states[&name];
        queue.extend(st.next.iter().cloned());
        queue.extend(st.catch.iter().map(|c| c.next.clone()));
        if let Kind::Choice { choices, default } = &st.kind {
            queue.extend(choices.iter().map(|(_, n)| n.clone()));
            queue.extend(default.iter().cloned());
        }
    }
    if let Some(unreached) = states.keys().find(|k| !reached.contains(*k)) {
        return Err(state_err(
            unreached,
            "States",
            "the state is unreachable from StartAt",
        ));
    }
    Ok(Machine { start_at, states })
}

fn parse_state(
    name: &str,
    v: &Value,
    seen: &mut BTreeSet<String>,
) -> Result<State, DefinitionError> {
    let Value::Object(map) = v else {
        return Err(state_err(name, "States", "a state must be a JSON object"));
    };
    let type_name = match map.get("Type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(state_err(name, "Type", "\"Type\" must be a string")),
        None => return Err(state_err(name, "Type", "missing \"Type\"")),
    };
    let Some(allowed) = allowed_fields(type_name) else {
        return Err(state_err(
            name,
            "Type",
            format!("unsupported state type {type_name:?} (supported: Task, Choice, Parallel, Wait, Pass, Succeed, Fail)"),
        ));
    };
    for k in map.keys() {
        if !COMMON.contains(&k.as_str()) && !allowed.contains(&k.as_str()) {
            return Err(state_err(name, k, format!("unsupported field {k:?}")));
        }
    }
    if let Some(q) = map.get("QueryLanguage") {
        check_query_language(q, Some(name))?;
    }
    if let Some(c) = map.get("Comment") {
        if !c.is_string() {
            return Err(state_err(name, "Comment", "\"Comment\" must be a string"));
        }
    }
    let f = Fields { name, map };

    // Next / End
    let next = f.opt_str("Next")?;
    let end = match map.get("End") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(state_err(name, "End", "\"End\" must be a boolean")),
    };
    let needs_transition = matches!(type_name, "Task" | "Parallel" | "Pass" | "Wait");
    if needs_transition {
        match (&next, end) {
            (Some(_), true) => {
                return Err(state_err(name, "End", "both \"Next\" and \"End\" are set"))
            }
            (None, false) => {
                return Err(state_err(
                    name,
                    "Next",
                    "needs either \"Next\" or \"End\": true",
                ))
            }
            _ => {}
        }
    }

    let input_path = f.io_path("InputPath")?;
    let output_path = f.io_path("OutputPath")?;
    let parameters = f.template("Parameters")?;
    let result_selector = f.template("ResultSelector")?;
    let result_path = f.result_path("ResultPath", map.get("ResultPath"))?;
    let retry = f.retry()?;
    let catch = f.catch()?;

    let kind = match type_name {
        "Task" => {
            let resource = f
                .opt_str("Resource")?
                .filter(|r| !r.is_empty())
                .ok_or_else(|| {
                    state_err(name, "Resource", "a Task needs a non-empty \"Resource\"")
                })?;
            let timeout_seconds = f.opt_pos_int("TimeoutSeconds")?;
            let heartbeat = f.opt_pos_int("HeartbeatSeconds")?;
            if let (Some(t), Some(h)) = (timeout_seconds, heartbeat) {
                if h >= t {
                    return Err(state_err(
                        name,
                        "HeartbeatSeconds",
                        "\"HeartbeatSeconds\" must be smaller than \"TimeoutSeconds\"",
                    ));
                }
            }
            Kind::Task {
                resource,
                timeout_seconds,
            }
        }
        "Choice" => {
            let Some(Value::Array(items)) = map.get("Choices") else {
                return Err(state_err(
                    name,
                    "Choices",
                    "a Choice needs a non-empty \"Choices\" array",
                ));
            };
            if items.is_empty() {
                return Err(state_err(
                    name,
                    "Choices",
                    "a Choice needs a non-empty \"Choices\" array",
                ));
            }
            let mut choices = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let (rule, next) = Rule::parse(item, true, &format!("Choices[{i}]"))
                    .map_err(|m| state_err(name, &format!("Choices[{i}]"), m))?;
                choices.push((rule, next.unwrap_or_default()));
            }
            Kind::Choice {
                choices,
                default: f.opt_str("Default")?,
            }
        }
        "Parallel" => {
            let Some(Value::Array(items)) = map.get("Branches") else {
                return Err(state_err(
                    name,
                    "Branches",
                    "a Parallel needs a non-empty \"Branches\" array",
                ));
            };
            if items.is_empty() {
                return Err(state_err(
                    name,
                    "Branches",
                    "a Parallel needs a non-empty \"Branches\" array",
                ));
            }
            let mut branches = Vec::new();
            for (i, b) in items.iter().enumerate() {
                let Value::Object(bm) = b else {
                    return Err(state_err(
                        name,
                        &format!("Branches[{i}]"),
                        "a branch must be an object",
                    ));
                };
                branches.push(parse_machine(bm, Some((name, i)), seen)?);
            }
            Kind::Parallel { branches }
        }
        "Wait" => {
            let present: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
                .into_iter()
                .filter(|k| map.contains_key(*k))
                .collect();
            if present.len() != 1 {
                return Err(state_err(
                    name,
                    "Seconds",
                    "a Wait needs exactly one of \"Seconds\", \"SecondsPath\", \"Timestamp\", \"TimestampPath\"",
                ));
            }
            Kind::Wait(match present[0] {
                "Seconds" => WaitSpec::Seconds(map["Seconds"].as_u64().ok_or_else(|| {
                    state_err(
                        name,
                        "Seconds",
                        "\"Seconds\" must be a non-negative integer",
                    )
                })?),
                "SecondsPath" => WaitSpec::SecondsPath(f.path("SecondsPath")?),
                "Timestamp" => WaitSpec::Timestamp(
                    map["Timestamp"]
                        .as_str()
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        .ok_or_else(|| {
                            state_err(
                                name,
                                "Timestamp",
                                "\"Timestamp\" must be an RFC 3339 timestamp",
                            )
                        })?,
                ),
                _ => WaitSpec::TimestampPath(f.path("TimestampPath")?),
            })
        }
        "Pass" => Kind::Pass {
            result: map.get("Result").cloned(),
        },
        "Succeed" => Kind::Succeed,
        _ => Kind::Fail {
            error: f.fail_source("Error", "ErrorPath")?,
            cause: f.fail_source("Cause", "CausePath")?,
        },
    };

    Ok(State {
        name: name.to_string(),
        kind,
        next,
        input_path,
        output_path,
        parameters,
        result_selector,
        result_path,
        retry,
        catch,
    })
}

struct Fields<'a> {
    name: &'a str,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn err(&self, field: &str, msg: impl Into<String>) -> DefinitionError {
        state_err(self.name, field, msg)
    }

    fn opt_str(&self, field: &str) -> Result<Option<String>, DefinitionError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.err(field, format!("{field:?} must be a string"))),
        }
    }

    fn opt_pos_int(&self, field: &str) -> Result<Option<u64>, DefinitionError> {
        match self.map.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| self.err(field, format!("{field:?} must be a positive integer"))),
        }
    }

    fn path(&self, field: &str) -> Result<Path, DefinitionError> {
        match self.map.get(field) {
            Some(Value::String(s)) => {
                Path::parse(s).map_err(|e| self.err(field, format!("{field:?}: {e}")))
            }
            _ => Err(self.err(field, format!("{field:?} must be a path string"))),
        }
    }

    fn io_path(&self, field: &str) -> Result<IoPath, DefinitionError> {
        match self.map.get(field) {
            None => Ok(IoPath::Path(Path::parse("$").expect("root path"))),
            Some(Value::Null) => Ok(IoPath::Null),
            Some(_) => Ok(IoPath::Path(self.path(field)?)),
        }
    }

    fn result_path(
        &self,
        field: &str,
        v: Option<&Value>,
    ) -> Result<ResultPathSpec, DefinitionError> {
        match v {
            None => Ok(ResultPathSpec::Path(Path::parse("$").expect("root path"))),
            Some(Value::Null) => Ok(ResultPathSpec::Discard),
            Some(Value::String(s)) => {
                let p = Path::parse(s).map_err(|e| self.err(field, format!("{field:?}: {e}")))?;
                if !p.is_reference_path() {
                    return Err(self.err(
                        field,
                        format!("{field:?} {s:?}: only '$' and field names ('$.a.b') are supported here"),
                    ));
                }
                Ok(ResultPathSpec::Path(p))
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

    fn fail_source(&self, lit: &str, path: &str) -> Result<Option<FailSource>, DefinitionError> {
        match (self.map.get(lit), self.map.get(path)) {
            (Some(_), Some(_)) => {
                Err(self.err(path, format!("{lit:?} and {path:?} are mutually exclusive")))
            }
            (Some(Value::String(s)), None) => Ok(Some(FailSource::Lit(s.clone()))),
            (Some(_), None) => Err(self.err(lit, format!("{lit:?} must be a string"))),
            (None, Some(Value::String(s))) => Expr::parse(s)
                .map(|e| Some(FailSource::Expr(e)))
                .map_err(|e| self.err(path, format!("{path:?}: {e}"))),
            (None, Some(_)) => Err(self.err(path, format!("{path:?} must be a string"))),
            (None, None) => Ok(None),
        }
    }

    fn error_equals(
        &self,
        at: &str,
        map: &Map<String, Value>,
    ) -> Result<Vec<String>, DefinitionError> {
        let field = format!("{at}.ErrorEquals");
        let Some(Value::Array(items)) = map.get("ErrorEquals") else {
            return Err(self.err(
                &field,
                format!("{field} must be a non-empty array of strings"),
            ));
        };
        let errors: Vec<String> = items
            .iter()
            .map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                self.err(
                    &field,
                    format!("{field} must be a non-empty array of strings"),
                )
            })?;
        if errors.is_empty() {
            return Err(self.err(
                &field,
                format!("{field} must be a non-empty array of strings"),
            ));
        }
        if errors.len() > 1 && errors.iter().any(|e| e == "States.ALL") {
            return Err(self.err(&field, format!("{field}: \"States.ALL\" must appear alone")));
        }
        Ok(errors)
    }

    fn list(&self, field: &str) -> Result<Vec<&Map<String, Value>>, DefinitionError> {
        match self.map.get(field) {
            None => Ok(vec![]),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_object().ok_or_else(|| {
                        self.err(
                            &format!("{field}[{i}]"),
                            format!("{field}[{i}] must be an object"),
                        )
                    })
                })
                .collect(),
            Some(_) => Err(self.err(field, format!("{field:?} must be an array"))),
        }
    }

    fn check_all_last(&self, field: &str, lists: &[&Vec<String>]) -> Result<(), DefinitionError> {
        for (i, errs) in lists.iter().enumerate() {
            if errs.iter().any(|e| e == "States.ALL") && i + 1 != lists.len() {
                return Err(self.err(
                    &format!("{field}[{i}].ErrorEquals"),
                    format!("{field}[{i}]: \"States.ALL\" must be in the last entry"),
                ));
            }
        }
        Ok(())
    }

    fn retry(&self) -> Result<Vec<Retrier>, DefinitionError> {
        let mut out = Vec::new();
        for (i, m) in self.list("Retry")?.into_iter().enumerate() {
            let at = format!("Retry[{i}]");
            for k in m.keys() {
                if !matches!(
                    k.as_str(),
                    "ErrorEquals"
                        | "IntervalSeconds"
                        | "MaxAttempts"
                        | "BackoffRate"
                        | "MaxDelaySeconds"
                        | "JitterStrategy"
                        | "Comment"
                ) {
                    return Err(self.err(
                        &format!("{at}.{k}"),
                        format!("{at}: unsupported field {k:?}"),
                    ));
                }
            }
            let errors = self.error_equals(&at, m)?;
            let int = |k: &str, min: u64| -> Result<Option<u64>, DefinitionError> {
                match m.get(k) {
                    None => Ok(None),
                    Some(v) => v.as_u64().filter(|n| *n >= min).map(Some).ok_or_else(|| {
                        self.err(
                            &format!("{at}.{k}"),
                            format!("{at}.{k} must be an integer >= {min}"),
                        )
                    }),
                }
            };
            let interval_seconds = int("IntervalSeconds", 1)?.unwrap_or(1);
            let max_attempts = int("MaxAttempts", 0)?.unwrap_or(3);
            let max_attempts = u32::try_from(max_attempts).map_err(|_| {
                self.err(
                    &format!("{at}.MaxAttempts"),
                    format!("{at}.MaxAttempts is too large"),
                )
            })?;
            let max_delay_seconds = int("MaxDelaySeconds", 1)?;
            let backoff_rate = match m.get("BackoffRate") {
                None => 2.0,
                Some(v) => v.as_f64().filter(|r| *r >= 1.0).ok_or_else(|| {
                    self.err(
                        &format!("{at}.BackoffRate"),
                        format!("{at}.BackoffRate must be a number >= 1.0"),
                    )
                })?,
            };
            let jitter_full = match m.get("JitterStrategy") {
                None => false,
                Some(Value::String(s)) if s == "FULL" => true,
                Some(Value::String(s)) if s == "NONE" => false,
                Some(_) => {
                    return Err(self.err(
                        &format!("{at}.JitterStrategy"),
                        format!("{at}.JitterStrategy must be \"FULL\" or \"NONE\""),
                    ))
                }
            };
            out.push(Retrier {
                errors,
                interval_seconds,
                max_attempts,
                backoff_rate,
                max_delay_seconds,
                jitter_full,
            });
        }
        self.check_all_last("Retry", &out.iter().map(|r| &r.errors).collect::<Vec<_>>())?;
        Ok(out)
    }

    fn catch(&self) -> Result<Vec<Catcher>, DefinitionError> {
        let mut out = Vec::new();
        for (i, m) in self.list("Catch")?.into_iter().enumerate() {
            let at = format!("Catch[{i}]");
            for k in m.keys() {
                if !matches!(
                    k.as_str(),
                    "ErrorEquals" | "Next" | "ResultPath" | "Comment"
                ) {
                    return Err(self.err(
                        &format!("{at}.{k}"),
                        format!("{at}: unsupported field {k:?}"),
                    ));
                }
            }
            let errors = self.error_equals(&at, m)?;
            let next = match m.get("Next") {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(self.err(
                        &format!("{at}.Next"),
                        format!("{at} needs a string \"Next\""),
                    ))
                }
            };
            let result_path = self.result_path(&format!("{at}.ResultPath"), m.get("ResultPath"))?;
            out.push(Catcher {
                errors,
                next,
                result_path,
            });
        }
        self.check_all_last("Catch", &out.iter().map(|c| &c.errors).collect::<Vec<_>>())?;
        Ok(out)
    }
}
