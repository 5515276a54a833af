//! What the interpreter asks of its caller: someone to run Task states.

use async_trait::async_trait;
use serde_json::Value;

/// Executes Task states (in `collector run`: the jobs, Guard and Notify, in process).
#[async_trait]
pub trait TaskHandler: Send + Sync {
    /// `resource` is the Task's `Resource` as written in the (substituted) definition;
    /// `input` is the effective input (after InputPath and Parameters).
    async fn invoke(
        &self,
        state_name: &str,
        resource: &str,
        input: Value,
        ctx: &TaskContext,
    ) -> Result<Value, TaskError>;
}

/// What a task handler receives besides the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskContext {
    pub execution_id: String,
    /// The retry count of this invocation (0 for the first attempt).
    pub attempt: u32,
}

/// A task failure: the error name (e.g. `"FailureRateExceeded"`,
/// `"Lambda.ServiceException"`), which Retry and Catch match, and a human-readable cause.
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
