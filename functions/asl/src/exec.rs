//! Running a definition.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::clock::Clock;
use crate::definition::{
    Catcher, Definition, FailSource, IoPath, Kind, Machine, ResultPathSpec, Retrier, State,
    WaitSpec,
};
use crate::path::{kind, Path};
use crate::template::Template;

/// Error names defined by the States language that this interpreter raises.
pub mod errors {
    pub const ALL: &str = "States.ALL";
    pub const RUNTIME: &str = "States.Runtime";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
}

/// What a task handler receives besides the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskContext {
    pub execution_id: String,
    /// The retry count of this invocation (0 for the first attempt).
    pub attempt: u32,
    /// The Task's `TimeoutSeconds`, if any (the interpreter enforces it too).
    pub timeout: Option<Duration>,
}

/// A task failure: the error name (e.g. `"FailureRateExceeded"`,
/// `"Lambda.ServiceException"`) and a human-readable cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct TaskError {
    pub error: String,
    pub cause: String,
}

impl TaskError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        TaskError {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

/// Executes Task states.
#[async_trait]
pub trait TaskHandler: Send + Sync {
    /// `resource` is the Task's `Resource` as written in the (substituted) definition.
    async fn invoke(
        &self,
        state_name: &str,
        resource: &str,
        input: Value,
        ctx: &TaskContext,
    ) -> Result<Value, TaskError>;
}

/// Receives every trace event as it happens (progress output).
pub trait Observer: Send + Sync {
    fn on_event(&self, e: &TraceEvent);
}

impl<F: Fn(&TraceEvent) + Send + Sync> Observer for F {
    fn on_event(&self, e: &TraceEvent) {
        self(e)
    }
}

/// Values for the context object (`$$.Execution…`, `$$.StateMachine…`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionOptions {
    pub execution_id: String,
    pub execution_name: String,
    pub state_machine_id: String,
    pub state_machine_name: String,
}

/// One step of the way into Parallel branches: the Parallel state and the branch index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchRef {
    pub parallel: String,
    pub index: usize,
}

/// Where an event happened: `None` at the top level, otherwise the chain of
/// (Parallel state, branch index) from the top level down.
pub type BranchPath = Option<Vec<BranchRef>>;

/// What happened during an execution, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum TraceEvent {
    ExecutionStarted {
        input: Value,
    },
    StateEntered {
        name: String,
        state_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: BranchPath,
        input: Value,
    },
    StateExited {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: BranchPath,
        output: Value,
    },
    TaskScheduled {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: BranchPath,
        resource: String,
        input: Value,
        attempt: u32,
    },
    TaskSucceeded {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: BranchPath,
        output: Value,
    },
    /// A Task invocation failed (also on timeout, error `States.Timeout`).
    TaskFailed {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: BranchPath,
        error: String,
        cause: String,
    },
    /// A retrier matched: the state runs again after `delay_ms`.
    /// `attempt` is the retry number (1 for the first retry).
    TaskRetried {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: BranchPath,
        attempt: u32,
        delay_ms: u64,
        error: String,
    },
    /// A catcher matched: the execution continues at `next`.
    StateCaught {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: BranchPath,
        error: String,
        cause: String,
        next: String,
    },
    /// The state failed and nothing caught it (includes Fail states).
    StateFailed {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: BranchPath,
        error: String,
        cause: String,
    },
    WaitStarted {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: BranchPath,
        delay_ms: u64,
    },
    ExecutionSucceeded {
        output: Value,
    },
    ExecutionFailed {
        error: String,
        cause: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionStatus {
    Succeeded,
    Failed,
}

/// The states entered, in order: at the top level, and per Parallel state per branch
/// index (concatenated if the Parallel state runs more than once). Deterministic even
/// though branches run concurrently, so it can be compared with another engine's trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSequence {
    pub states: Vec<String>,
    pub branches: BTreeMap<String, Vec<Vec<String>>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionResult {
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub trace: Vec<TraceEvent>,
}

impl ExecutionResult {
    pub fn succeeded(&self) -> bool {
        self.status == ExecutionStatus::Succeeded
    }

    /// The top-level states entered, in order.
    pub fn entered_states(&self) -> Vec<String> {
        self.state_sequence().states
    }

    pub fn state_sequence(&self) -> StateSequence {
        let mut seq = StateSequence::default();
        for e in &self.trace {
            if let TraceEvent::StateEntered { name, branch, .. } = e {
                match branch.as_ref().and_then(|b| b.last()) {
                    None => seq.states.push(name.clone()),
                    Some(BranchRef { parallel, index }) => {
                        let lists = seq.branches.entry(parallel.clone()).or_default();
                        if lists.len() <= *index {
                            lists.resize(index + 1, Vec::new());
                        }
                        lists[*index].push(name.clone());
                    }
                }
            }
        }
        seq
    }

    /// Number of `TaskScheduled` events for the named state (invocations incl. retries).
    pub fn invocations(&self, state: &str) -> usize {
        self.trace
            .iter()
            .filter(|e| matches!(e, TraceEvent::TaskScheduled { name, .. } if name == state))
            .count()
    }
}

/// Runs `def` on `input` to completion.
pub async fn run(
    def: &Definition,
    input: Value,
    handler: &dyn TaskHandler,
    clock: &dyn Clock,
    opts: ExecutionOptions,
    observer: Option<&dyn Observer>,
) -> ExecutionResult {
    let mut exec = Execution::new(def, handler, clock, opts);
    if let Some(o) = observer {
        exec = exec.with_observer(o);
    }
    exec.run(input).await
}

#[derive(Debug, Clone)]
struct Failure {
    error: String,
    cause: String,
}

impl Failure {
    fn new(error: &str, cause: impl Into<String>) -> Self {
        Failure {
            error: error.to_string(),
            cause: cause.into(),
        }
    }

    fn runtime(state: &str, msg: impl AsRef<str>) -> Self {
        Failure::new(
            errors::RUNTIME,
            format!(
                "An error occurred while executing the state '{state}'. {}",
                msg.as_ref()
            ),
        )
    }
}

enum Transition {
    Next(String, Value),
    End(Value),
}

type BoxFut<'s, T> = Pin<Box<dyn Future<Output = T> + Send + 's>>;

/// One execution of a definition. [`run`] is the short way to use it.
pub struct Execution<'a> {
    def: &'a Definition,
    handler: &'a dyn TaskHandler,
    clock: &'a dyn Clock,
    opts: ExecutionOptions,
    observer: Option<&'a dyn Observer>,
    trace: Mutex<Vec<TraceEvent>>,
    base_context: Value,
    start: DateTime<Utc>,
    jitter_counter: AtomicU64,
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether an error name is matched by an `ErrorEquals` list (AWS semantics:
/// `States.Runtime` is never retried or caught; `States.ALL` matches any other error;
/// `States.TaskFailed` matches any other error except `States.Timeout`).
fn error_matches(list: &[String], error: &str) -> bool {
    if error == errors::RUNTIME {
        return false;
    }
    list.iter().any(|e| {
        e == error || e == errors::ALL || (e == errors::TASK_FAILED && error != errors::TIMEOUT)
    })
}

impl<'a> Execution<'a> {
    pub fn new(
        def: &'a Definition,
        handler: &'a dyn TaskHandler,
        clock: &'a dyn Clock,
        opts: ExecutionOptions,
    ) -> Self {
        Execution {
            def,
            handler,
            clock,
            opts,
            observer: None,
            trace: Mutex::new(Vec::new()),
            base_context: Value::Null,
            start: clock.now(),
            jitter_counter: AtomicU64::new(0),
        }
    }

    pub fn with_observer(mut self, observer: &'a dyn Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    pub async fn run(mut self, input: Value) -> ExecutionResult {
        self.start = self.clock.now();
        self.base_context = json!({
            "Execution": {
                "Id": self.opts.execution_id,
                "Name": self.opts.execution_name,
                "Input": input,
                "StartTime": timestamp(self.start),
            },
            "StateMachine": {
                "Id": self.opts.state_machine_id,
                "Name": self.opts.state_machine_name,
            },
        });
        self.emit(TraceEvent::ExecutionStarted {
            input: input.clone(),
        });
        let machine = &self.def.machine;
        let outcome = match self.def.timeout_seconds {
            None => self.run_machine(machine, input, None).await,
            Some(secs) => {
                match tokio::time::timeout(
                    Duration::from_secs(secs),
                    self.run_machine(machine, input, None),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(Failure::new(
                        errors::TIMEOUT,
                        format!("The execution timed out after {secs} seconds"),
                    )),
                }
            }
        };
        let (status, output, error, cause) = match outcome {
            Ok(output) => {
                self.emit(TraceEvent::ExecutionSucceeded {
                    output: output.clone(),
                });
                (ExecutionStatus::Succeeded, Some(output), None, None)
            }
            Err(f) => {
                tracing::debug!(error = %f.error, cause = %f.cause, "execution failed");
                self.emit(TraceEvent::ExecutionFailed {
                    error: f.error.clone(),
                    cause: f.cause.clone(),
                });
                (ExecutionStatus::Failed, None, Some(f.error), Some(f.cause))
            }
        };
        ExecutionResult {
            status,
            output,
            error,
            cause,
            trace: self.trace.into_inner().expect("trace lock"),
        }
    }

    fn emit(&self, e: TraceEvent) {
        if let Some(o) = self.observer {
            o.on_event(&e);
        }
        self.trace.lock().expect("trace lock").push(e);
    }

    fn context(&self, state: &str, entered: DateTime<Utc>, retry_count: u32) -> Value {
        let mut ctx = self.base_context.clone();
        if let Value::Object(map) = &mut ctx {
            map.insert(
                "State".into(),
                json!({
                    "Name": state,
                    "EnteredTime": timestamp(entered),
                    "RetryCount": retry_count,
                }),
            );
        }
        ctx
    }

    fn check_execution_timeout(&self) -> Result<(), Failure> {
        if let Some(secs) = self.def.timeout_seconds {
            let elapsed = self.clock.now() - self.start;
            if elapsed >= chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)) {
                return Err(Failure::new(
                    errors::TIMEOUT,
                    format!("The execution timed out after {secs} seconds"),
                ));
            }
        }
        Ok(())
    }

    fn run_machine<'s>(
        &'s self,
        machine: &'s Machine,
        input: Value,
        branch: BranchPath,
    ) -> BoxFut<'s, Result<Value, Failure>> {
        Box::pin(async move {
            let mut current = machine.start_at.as_str();
            let mut input = input;
            loop {
                self.check_execution_timeout()?;
                let st = &machine.states[current];
                self.emit(TraceEvent::StateEntered {
                    name: st.name.clone(),
                    state_type: st.type_name().to_string(),
                    branch: branch.clone(),
                    input: input.clone(),
                });
                match self.run_state(st, input, &branch).await {
                    Ok(Transition::Next(next, output)) => {
                        let next = machine
                            .states
                            .get_key_value(next.as_str())
                            .map(|(k, _)| k.as_str())
                            .expect("validated transition");
                        current = next;
                        input = output;
                    }
                    Ok(Transition::End(output)) => return Ok(output),
                    Err(f) => {
                        self.emit(TraceEvent::StateFailed {
                            name: st.name.clone(),
                            branch: branch.clone(),
                            error: f.error.clone(),
                            cause: f.cause.clone(),
                        });
                        return Err(f);
                    }
                }
            }
        })
    }

    /// Runs one state, with its retriers and catchers.
    async fn run_state(
        &self,
        st: &State,
        raw: Value,
        branch: &BranchPath,
    ) -> Result<Transition, Failure> {
        let entered = self.clock.now();
        let mut counts = vec![0u32; st.retry.len()];
        let mut retry_count = 0u32;
        loop {
            let ctx = self.context(&st.name, entered, retry_count);
            let failure = match self.attempt(st, &raw, &ctx, retry_count, branch).await {
                Ok(t) => {
                    let output = match &t {
                        Transition::Next(_, o) | Transition::End(o) => o.clone(),
                    };
                    self.emit(TraceEvent::StateExited {
                        name: st.name.clone(),
                        branch: branch.clone(),
                        output,
                    });
                    return Ok(t);
                }
                Err(f) => f,
            };
            if let Some(i) = st
                .retry
                .iter()
                .position(|r| error_matches(&r.errors, &failure.error))
            {
                let r = &st.retry[i];
                if counts[i] < r.max_attempts {
                    let delay = self.retry_delay(r, counts[i]);
                    counts[i] += 1;
                    retry_count += 1;
                    self.emit(TraceEvent::TaskRetried {
                        name: st.name.clone(),
                        branch: branch.clone(),
                        attempt: retry_count,
                        delay_ms: ms(delay),
                        error: failure.error.clone(),
                    });
                    self.clock.sleep(delay).await;
                    continue;
                }
            }
            if let Some(c) = st
                .catch
                .iter()
                .find(|c| error_matches(&c.errors, &failure.error))
            {
                return self.caught(st, c, raw, failure, branch);
            }
            return Err(failure);
        }
    }

    fn caught(
        &self,
        st: &State,
        c: &Catcher,
        raw: Value,
        failure: Failure,
        branch: &BranchPath,
    ) -> Result<Transition, Failure> {
        let error_output = json!({"Error": failure.error, "Cause": failure.cause});
        let output = apply_result_path(&st.name, &c.result_path, raw, error_output)?;
        self.emit(TraceEvent::StateCaught {
            name: st.name.clone(),
            branch: branch.clone(),
            error: failure.error,
            cause: failure.cause,
            next: c.next.clone(),
        });
        Ok(Transition::Next(c.next.clone(), output))
    }

    fn retry_delay(&self, r: &Retrier, count: u32) -> Duration {
        let exp = i32::try_from(count).unwrap_or(i32::MAX);
        let mut secs = r.interval_seconds as f64 * r.backoff_rate.powi(exp);
        if let Some(max) = r.max_delay_seconds {
            secs = secs.min(max as f64);
        }
        if !secs.is_finite() {
            secs = r.max_delay_seconds.unwrap_or(31_622_400) as f64;
        }
        if r.jitter_full {
            let seed = self.clock.now().timestamp_nanos_opt().unwrap_or(0) as u64
                ^ self
                    .jitter_counter
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut rng = SmallRng::seed_from_u64(seed);
            secs = rng.random_range(0.0..=secs);
        }
        Duration::from_secs_f64(secs)
    }

    /// One attempt of a state's work, from raw input to transition.
    async fn attempt(
        &self,
        st: &State,
        raw: &Value,
        ctx: &Value,
        retry_count: u32,
        branch: &BranchPath,
    ) -> Result<Transition, Failure> {
        let name = st.name.as_str();
        let next = |output: Value| match &st.next {
            Some(n) => Transition::Next(n.clone(), output),
            None => Transition::End(output),
        };
        if let Kind::Fail { error, cause } = &st.kind {
            let eval = |src: &Option<FailSource>, what: &str| -> Result<String, Failure> {
                match src {
                    None => Ok(String::new()),
                    Some(FailSource::Lit(s)) => Ok(s.clone()),
                    Some(FailSource::Expr(e)) => match e.eval(raw, ctx) {
                        Ok(Value::String(s)) => Ok(s),
                        Ok(other) => Err(Failure::runtime(
                            name,
                            format!("The {what} evaluated to {} and not a string", kind(&other)),
                        )),
                        Err(m) => Err(Failure::runtime(name, format!("{what}: {m}"))),
                    },
                }
            };
            let error = eval(error, "ErrorPath")?;
            let cause = eval(cause, "CausePath")?;
            return Err(Failure { error, cause });
        }

        let effective = select(name, &st.input_path, raw, ctx, "InputPath")?;
        match &st.kind {
            Kind::Succeed => {
                let out = select(name, &st.output_path, &effective, ctx, "OutputPath")?;
                Ok(Transition::End(out))
            }
            Kind::Choice { choices, default } => {
                let mut target = None;
                for (rule, n) in choices {
                    if rule
                        .eval(&effective, ctx)
                        .map_err(|m| Failure::runtime(name, m))?
                    {
                        target = Some(n.clone());
                        break;
                    }
                }
                let target = target.or_else(|| default.clone()).ok_or_else(|| {
                    Failure::new(
                        errors::NO_CHOICE_MATCHED,
                        format!("No Choice rule of state '{name}' matched and there is no Default"),
                    )
                })?;
                let out = select(name, &st.output_path, &effective, ctx, "OutputPath")?;
                Ok(Transition::Next(target, out))
            }
            Kind::Wait(spec) => {
                let delay = self.wait_delay(name, spec, &effective, ctx)?;
                self.emit(TraceEvent::WaitStarted {
                    name: name.to_string(),
                    branch: branch.clone(),
                    delay_ms: ms(delay),
                });
                self.clock.sleep(delay).await;
                let out = select(name, &st.output_path, &effective, ctx, "OutputPath")?;
                Ok(next(out))
            }
            Kind::Pass { result } => {
                let effective = parameters(name, &st.parameters, effective, ctx, "Parameters")?;
                let result = result.clone().unwrap_or(effective);
                let out = apply_result_path(name, &st.result_path, raw.clone(), result)?;
                let out = select(name, &st.output_path, &out, ctx, "OutputPath")?;
                Ok(next(out))
            }
            Kind::Task {
                resource,
                timeout_seconds,
            } => {
                let effective = parameters(name, &st.parameters, effective, ctx, "Parameters")?;
                let result = self
                    .invoke(
                        st,
                        resource,
                        *timeout_seconds,
                        effective,
                        retry_count,
                        branch,
                    )
                    .await?;
                self.finish(st, raw, ctx, result).map(next)
            }
            Kind::Parallel { branches } => {
                let effective = parameters(name, &st.parameters, effective, ctx, "Parameters")?;
                let futures = branches.iter().enumerate().map(|(index, m)| {
                    let mut path = branch.clone().unwrap_or_default();
                    path.push(BranchRef {
                        parallel: name.to_string(),
                        index,
                    });
                    self.run_machine(m, effective.clone(), Some(path))
                });
                // The first branch failure fails the state; the other branches are dropped (cancelled).
                let outputs = futures_util::future::try_join_all(futures).await?;
                self.finish(st, raw, ctx, Value::Array(outputs)).map(next)
            }
            Kind::Fail { .. } => unreachable!("handled above"),
        }
    }

    /// ResultSelector → ResultPath → OutputPath.
    fn finish(
        &self,
        st: &State,
        raw: &Value,
        ctx: &Value,
        result: Value,
    ) -> Result<Value, Failure> {
        let name = st.name.as_str();
        let result = parameters(name, &st.result_selector, result, ctx, "ResultSelector")?;
        let out = apply_result_path(name, &st.result_path, raw.clone(), result)?;
        select(name, &st.output_path, &out, ctx, "OutputPath")
    }

    async fn invoke(
        &self,
        st: &State,
        resource: &str,
        timeout_seconds: Option<u64>,
        input: Value,
        retry_count: u32,
        branch: &BranchPath,
    ) -> Result<Value, Failure> {
        let timeout = timeout_seconds.map(Duration::from_secs);
        let tctx = TaskContext {
            execution_id: self.opts.execution_id.clone(),
            attempt: retry_count,
            timeout,
        };
        self.emit(TraceEvent::TaskScheduled {
            name: st.name.clone(),
            branch: branch.clone(),
            resource: resource.to_string(),
            input: input.clone(),
            attempt: retry_count,
        });
        let call = self.handler.invoke(&st.name, resource, input, &tctx);
        let outcome = match timeout {
            None => call.await,
            Some(t) => match tokio::time::timeout(t, call).await {
                Ok(r) => r,
                Err(_) => Err(TaskError::new(
                    errors::TIMEOUT,
                    format!("Task timed out after {} seconds", t.as_secs()),
                )),
            },
        };
        match outcome {
            Ok(output) => {
                self.emit(TraceEvent::TaskSucceeded {
                    name: st.name.clone(),
                    branch: branch.clone(),
                    output: output.clone(),
                });
                Ok(output)
            }
            Err(e) => {
                self.emit(TraceEvent::TaskFailed {
                    name: st.name.clone(),
                    branch: branch.clone(),
                    error: e.error.clone(),
                    cause: e.cause.clone(),
                });
                Err(Failure {
                    error: e.error,
                    cause: e.cause,
                })
            }
        }
    }

    fn wait_delay(
        &self,
        name: &str,
        spec: &WaitSpec,
        input: &Value,
        ctx: &Value,
    ) -> Result<Duration, Failure> {
        let until = |t: DateTime<Utc>| -> Duration {
            (t - self.clock.now()).to_std().unwrap_or(Duration::ZERO)
        };
        let lookup = |p: &Path, field: &str| -> Result<Value, Failure> {
            p.get(input, ctx).cloned().ok_or_else(|| {
                Failure::runtime(
                    name,
                    format!(
                        "{field}: Invalid path '{}': no results for the path",
                        p.text
                    ),
                )
            })
        };
        Ok(match spec {
            WaitSpec::Seconds(s) => Duration::from_secs(*s),
            WaitSpec::Timestamp(t) => until(t.with_timezone(&Utc)),
            WaitSpec::SecondsPath(p) => {
                let v = lookup(p, "SecondsPath")?;
                let secs = v.as_u64().ok_or_else(|| {
                    Failure::runtime(
                        name,
                        format!(
                            "SecondsPath '{}' must select a non-negative integer, got {v}",
                            p.text
                        ),
                    )
                })?;
                Duration::from_secs(secs)
            }
            WaitSpec::TimestampPath(p) => {
                let v = lookup(p, "TimestampPath")?;
                let t = v
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .ok_or_else(|| {
                        Failure::runtime(
                            name,
                            format!(
                                "TimestampPath '{}' must select an RFC 3339 timestamp, got {v}",
                                p.text
                            ),
                        )
                    })?;
                until(t.with_timezone(&Utc))
            }
        })
    }
}

/// InputPath / OutputPath.
fn select(name: &str, p: &IoPath, v: &Value, ctx: &Value, field: &str) -> Result<Value, Failure> {
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

/// Parameters / ResultSelector.
fn parameters(
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

fn apply_result_path(
    name: &str,
    spec: &ResultPathSpec,
    raw: Value,
    result: Value,
) -> Result<Value, Failure> {
    match spec {
        ResultPathSpec::Discard => Ok(raw),
        ResultPathSpec::Path(p) => p.set(raw, result).map_err(|m| {
            Failure::new(
                errors::RESULT_PATH_MATCH_FAILURE,
                format!("An error occurred while executing the state '{name}'. {m}"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_matching_follows_aws() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(error_matches(&l(&["States.ALL"]), "Boom"));
        assert!(error_matches(&l(&["States.ALL"]), "States.Timeout"));
        assert!(!error_matches(&l(&["States.ALL"]), "States.Runtime"));
        assert!(!error_matches(&l(&["States.Runtime"]), "States.Runtime"));
        assert!(error_matches(
            &l(&["States.TaskFailed"]),
            "Lambda.ServiceException"
        ));
        assert!(!error_matches(&l(&["States.TaskFailed"]), "States.Timeout"));
        assert!(error_matches(&l(&["A", "B"]), "B"));
        assert!(!error_matches(&l(&["A", "B"]), "C"));
    }
}
