//! The record of an execution: every event as it happens (to an [`Observer`]) and, at
//! the end, an [`ExecutionResult`]. The CLI prints progress from the events; the
//! cross-check compares them with aws-local-stepfunctions, so they follow its vocabulary.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Receives every trace event as it happens (progress output).
pub trait Observer: Send + Sync {
    fn on_event(&self, e: &TraceEvent);
}

impl<F: Fn(&TraceEvent) + Send + Sync> Observer for F {
    fn on_event(&self, e: &TraceEvent) {
        self(e)
    }
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
    /// A Task invocation failed (the handler returned an error).
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
}

/// Milliseconds, for trace events.
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
