#![allow(dead_code)]

use std::sync::Mutex;
use std::time::Duration;

use asl_runner::{
    run, Clock, Definition, ExecutionOptions, ExecutionResult, InstantClock, TaskContext,
    TaskError, TaskHandler,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// One recorded Task invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub state: String,
    pub resource: String,
    pub input: Value,
    pub attempt: u32,
}

type Script = dyn Fn(&str, &Value, usize) -> Result<Value, TaskError> + Send + Sync;

/// A task handler driven by a closure `(state, input, nth call of this state) -> result`;
/// states named `Slow*` never finish; states named `Sleepy*` take 3 real seconds.
pub struct Scripted {
    script: Box<Script>,
    pub calls: Mutex<Vec<Call>>,
}

impl Scripted {
    pub fn new(
        f: impl Fn(&str, &Value, usize) -> Result<Value, TaskError> + Send + Sync + 'static,
    ) -> Self {
        Scripted {
            script: Box::new(f),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Every Task returns its input.
    pub fn echo() -> Self {
        Self::new(|_, input, _| Ok(input.clone()))
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn calls_of(&self, state: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.state == state)
            .collect()
    }
}

#[async_trait]
impl TaskHandler for Scripted {
    async fn invoke(
        &self,
        state: &str,
        resource: &str,
        input: Value,
        ctx: &TaskContext,
    ) -> Result<Value, TaskError> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.iter().filter(|c| c.state == state).count();
            calls.push(Call {
                state: state.to_string(),
                resource: resource.to_string(),
                input: input.clone(),
                attempt: ctx.attempt,
            });
            n
        };
        if state.starts_with("Slow") {
            std::future::pending::<()>().await;
        }
        if state.starts_with("Sleepy") {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        tokio::task::yield_now().await;
        (self.script)(state, &input, n)
    }
}

pub fn t0() -> DateTime<Utc> {
    "2024-05-01T00:00:00Z".parse().unwrap()
}

pub fn opts() -> ExecutionOptions {
    ExecutionOptions {
        execution_id: "arn:aws:states:ap-northeast-1:123456789012:execution:jobnet:run-1".into(),
        execution_name: "run-1".into(),
        state_machine_id: "arn:aws:states:ap-northeast-1:123456789012:stateMachine:jobnet".into(),
        state_machine_name: "jobnet".into(),
    }
}

pub fn def(json: &str) -> Definition {
    Definition::from_json(json).unwrap_or_else(|e| panic!("definition rejected: {e}"))
}

/// Runs with an InstantClock fixed at [`t0`]; returns the result and the clock.
pub async fn run_instant(
    json: &str,
    input: Value,
    handler: &Scripted,
) -> (ExecutionResult, InstantClock) {
    let d = def(json);
    let clock = InstantClock::starting_at(t0());
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        run(&d, input, handler, &clock as &dyn Clock, opts(), None),
    )
    .await
    .expect("execution hung");
    (r, clock)
}

/// Runs `json` on `input` (see [`run_instant`]) and asserts it failed with `error`.
pub async fn assert_fails(json: &str, input: Value, handler: &Scripted, error: &str) {
    let (r, _) = run_instant(json, input, handler).await;
    assert_eq!(r.error.as_deref(), Some(error), "{r:?}");
}

/// Runs `json` on `input` (see [`run_instant`]) and asserts it failed with `error` and `cause`.
pub async fn assert_fails_with(
    json: &str,
    input: Value,
    handler: &Scripted,
    error: &str,
    cause: &str,
) {
    let (r, _) = run_instant(json, input, handler).await;
    assert_eq!(
        (r.error.as_deref(), r.cause.as_deref()),
        (Some(error), Some(cause)),
        "{r:?}"
    );
}

pub fn secs(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|s| Duration::from_secs(*s)).collect()
}
