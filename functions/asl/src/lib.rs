//! `asl-runner`: a small, strict interpreter of the Amazon States Language subset the
//! ichiba-collector jobnet uses (JSONPath query language only).
//!
//! * [`Definition::from_json`] parses and validates a definition; anything outside the
//!   supported subset is rejected with an error naming the state and the field.
//! * [`run`] executes it, dispatching Task states to a [`TaskHandler`], taking time
//!   from a [`Clock`] ([`RealClock`], or [`InstantClock`] in tests), and returns an
//!   [`ExecutionResult`] with a trace of [`TraceEvent`]s.
//! * [`substitute`] applies `${Name}` `DefinitionSubstitutions` beforehand.
//!
//! Supported — what `statemachine/jobnet.asl.json` uses, nothing more (see `parse.rs`):
//! state types Task, Choice, Parallel, Wait (`Seconds`), Pass, Succeed, Fail
//! (`ErrorPath`/`CausePath`); InputPath, Parameters, ResultSelector, ResultPath (incl.
//! null), OutputPath; Retry and Catch; Choice rules with StringEquals, BooleanEquals and
//! IsPresent; paths `$`, `$.a.b`, `$.a[0]` and `$$.Execution|StateMachine|State.…`; the
//! top-level TimeoutSeconds. No intrinsic functions, no JSONata. Validity beyond that
//! subset is asl-validator's job in CI; agreement with Step Functions is checked against
//! aws-local-stepfunctions (`tests/it/statemachine_crosscheck.rs`).
//!
//! ```
//! use asl_runner::{run, Definition, ExecutionOptions, InstantClock, TaskContext, TaskError, TaskHandler};
//! use serde_json::{json, Value};
//!
//! struct Echo;
//! #[async_trait::async_trait]
//! impl TaskHandler for Echo {
//!     async fn invoke(&self, _state: &str, _resource: &str, input: Value, _ctx: &TaskContext)
//!         -> Result<Value, TaskError> {
//!         Ok(json!({"echo": input}))
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let def = Definition::from_json(r#"{"StartAt": "T", "States": {
//!     "T": {"Type": "Task", "Resource": "echo", "ResultPath": "$.t", "End": true}}}"#).unwrap();
//! let result = run(&def, json!({"a": 1}), &Echo, &InstantClock::new(),
//!                  ExecutionOptions::default(), None).await;
//! assert!(result.succeeded());
//! assert_eq!(result.output, Some(json!({"a": 1, "t": {"echo": {"a": 1}}})));
//! assert_eq!(result.entered_states(), vec!["T"]);
//! # });
//! ```

mod choice;
mod clock;
mod definition;
mod interpreter;
mod parse;
mod path;
mod pipeline;
mod retry;
mod states;
mod substitute;
mod task;
mod template;
mod trace;

pub use clock::{Clock, InstantClock, RealClock};
pub use definition::{Definition, DefinitionError, TaskInfo};
pub use interpreter::{run, ExecutionOptions};
pub use retry::errors;
pub use substitute::{substitute, SubstitutionError};
pub use task::{TaskContext, TaskError, TaskHandler};
pub use trace::{
    BranchPath, BranchRef, ExecutionResult, ExecutionStatus, Observer, StateSequence, TraceEvent,
};
