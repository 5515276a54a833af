//! What each state type does in one attempt, from its raw input to the transition (the
//! retry and catch around it are in `interpreter.rs`).

use std::time::Duration;

use serde_json::Value;

use crate::definition::{Kind, State};
use crate::interpreter::Execution;
use crate::pipeline::{
    apply_result_path, fail_field, finish, select, template, Failure, Transition,
};
use crate::retry::errors;
use crate::task::TaskContext;
use crate::trace::{ms, BranchPath, BranchRef, TraceEvent};

impl Execution<'_> {
    /// One attempt of a state's work, from raw input to transition.
    pub(crate) async fn attempt(
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
            let error = fail_field(name, error, raw, ctx, "ErrorPath")?;
            let cause = fail_field(name, cause, raw, ctx, "CausePath")?;
            return Err(Failure { error, cause });
        }
        let effective = select(name, &st.input_path, raw, ctx, "InputPath")?;
        match &st.kind {
            Kind::Succeed => {
                let out = select(name, &st.output_path, &effective, ctx, "OutputPath")?;
                Ok(Transition::End(out))
            }
            Kind::Choice { rules, default } => {
                let mut target = default.clone();
                for rule in rules {
                    if rule
                        .matches(&effective, ctx)
                        .map_err(|m| Failure::runtime(name, m))?
                    {
                        target = Some(rule.next.clone());
                        break;
                    }
                }
                let target = target.ok_or_else(|| {
                    Failure::new(
                        errors::NO_CHOICE_MATCHED,
                        format!("No Choice rule of state '{name}' matched and there is no Default"),
                    )
                })?;
                let out = select(name, &st.output_path, &effective, ctx, "OutputPath")?;
                Ok(Transition::Next(target, out))
            }
            Kind::Wait { seconds } => {
                let delay = Duration::from_secs(*seconds);
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
                let effective = template(name, &st.parameters, effective, ctx, "Parameters")?;
                let result = result.clone().unwrap_or(effective);
                let out = apply_result_path(name, &st.result_path, raw.clone(), result)?;
                let out = select(name, &st.output_path, &out, ctx, "OutputPath")?;
                Ok(next(out))
            }
            Kind::Task { resource } => {
                let effective = template(name, &st.parameters, effective, ctx, "Parameters")?;
                let result = self
                    .invoke(st, resource, effective, retry_count, branch)
                    .await?;
                finish(st, raw, ctx, result).map(next)
            }
            Kind::Parallel { branches } => {
                let effective = template(name, &st.parameters, effective, ctx, "Parameters")?;
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
                finish(st, raw, ctx, Value::Array(outputs)).map(next)
            }
            Kind::Fail { .. } => unreachable!("handled above"),
        }
    }

    async fn invoke(
        &self,
        st: &State,
        resource: &str,
        input: Value,
        retry_count: u32,
        branch: &BranchPath,
    ) -> Result<Value, Failure> {
        let tctx = TaskContext {
            execution_id: self.opts.execution_id.clone(),
            attempt: retry_count,
        };
        self.emit(TraceEvent::TaskScheduled {
            name: st.name.clone(),
            branch: branch.clone(),
            resource: resource.to_string(),
            input: input.clone(),
            attempt: retry_count,
        });
        match self.handler.invoke(&st.name, resource, input, &tctx).await {
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
}
