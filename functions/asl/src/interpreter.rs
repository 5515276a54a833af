//! Running a definition: states one after another from StartAt, Parallel branches
//! concurrently, each state with its retriers and catchers around its work (`states.rs`),
//! the whole under the execution's TimeoutSeconds.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::definition::{Catcher, Definition, Machine, State};
use crate::pipeline::{apply_result_path, Failure, Transition};
use crate::retry::{error_matches, errors, retry_delay};
use crate::task::TaskHandler;
use crate::trace::{ms, BranchPath, ExecutionResult, ExecutionStatus, Observer, TraceEvent};

/// Values for the context object (`$$.Execution…`, `$$.StateMachine…`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionOptions {
    pub execution_id: String,
    pub execution_name: String,
    pub state_machine_id: String,
    pub state_machine_name: String,
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
    Execution {
        def,
        handler,
        clock,
        opts,
        observer,
        trace: Mutex::new(Vec::new()),
        base_context: Value::Null,
        start: clock.now(),
        jitter_counter: AtomicU64::new(0),
    }
    .run(input)
    .await
}

type BoxFut<'s, T> = Pin<Box<dyn Future<Output = T> + Send + 's>>;

pub(crate) struct Execution<'a> {
    def: &'a Definition,
    pub(crate) handler: &'a dyn TaskHandler,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) opts: ExecutionOptions,
    observer: Option<&'a dyn Observer>,
    trace: Mutex<Vec<TraceEvent>>,
    /// `$$` without `State`, which each state adds.
    base_context: Value,
    start: DateTime<Utc>,
    jitter_counter: AtomicU64,
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Execution<'_> {
    async fn run(mut self, input: Value) -> ExecutionResult {
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
        // Real time runs out here; virtual time (InstantClock) in check_execution_timeout.
        let outcome = match self.def.timeout_seconds {
            None => self.run_machine(machine, input, None).await,
            Some(secs) => tokio::time::timeout(
                Duration::from_secs(secs),
                self.run_machine(machine, input, None),
            )
            .await
            .unwrap_or_else(|_| Err(execution_timed_out(secs))),
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

    pub(crate) fn emit(&self, e: TraceEvent) {
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
                return Err(execution_timed_out(secs));
            }
        }
        Ok(())
    }

    /// Runs a machine (the top level or a branch) from StartAt to its end.
    pub(crate) fn run_machine<'s>(
        &'s self,
        machine: &'s Machine,
        input: Value,
        branch: BranchPath,
    ) -> BoxFut<'s, Result<Value, Failure>> {
        Box::pin(async move {
            let mut st = &machine.states[&machine.start_at];
            let mut input = input;
            loop {
                self.check_execution_timeout()?;
                self.emit(TraceEvent::StateEntered {
                    name: st.name.clone(),
                    state_type: st.type_name().to_string(),
                    branch: branch.clone(),
                    input: input.clone(),
                });
                match self.run_state(st, input, &branch).await {
                    Ok(Transition::Next(next, output)) => {
                        st = &machine.states[&next]; // targets are checked on load
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
                    let (Transition::Next(_, output) | Transition::End(output)) = &t;
                    self.emit(TraceEvent::StateExited {
                        name: st.name.clone(),
                        branch: branch.clone(),
                        output: output.clone(),
                    });
                    return Ok(t);
                }
                Err(f) => f,
            };
            // The first retrier whose ErrorEquals matches decides, even when exhausted.
            let retrier = (st.retry.iter().enumerate())
                .find(|(_, r)| error_matches(&r.errors, &failure.error));
            if let Some((i, r)) = retrier.filter(|(i, r)| counts[*i] < r.max_attempts) {
                let delay = retry_delay(r, counts[i], || self.jitter_seed());
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
            return match st
                .catch
                .iter()
                .find(|c| error_matches(&c.errors, &failure.error))
            {
                Some(c) => self.caught(st, c, raw, failure, branch),
                None => Err(failure),
            };
        }
    }

    fn jitter_seed(&self) -> u64 {
        self.clock.now().timestamp_nanos_opt().unwrap_or(0) as u64
            ^ (self.jitter_counter.fetch_add(1, Ordering::Relaxed))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// A catcher matched: `{Error, Cause}` goes to its ResultPath and on to its Next.
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
}

fn execution_timed_out(secs: u64) -> Failure {
    Failure::new(
        errors::TIMEOUT,
        format!("The execution timed out after {secs} seconds"),
    )
}
