//! The deployed jobnet seen from outside (`collector aws start` / `collector aws status`):
//! find an environment's state machine, start an execution with the input Guard accepts
//! (`{}` or `{"start_at", "run_id"}`), list and describe the recent executions, and tie
//! each execution to its run in the ledger.
//!
//! The state machine of env `E` is `ichiba-collector-E-jobnet` (template.yaml names it
//! explicitly; the stack output `StateMachineArn` holds its ARN). An explicit ARN wins;
//! otherwise it is found by that name with ListStateMachines. The client comes from the
//! default AWS configuration chain, so `AWS_ENDPOINT_URL` (moto server in the tests),
//! `AWS_PROFILE` and `AWS_REGION` are honoured.

use aws_sdk_sfn::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::history::RunRecord;
use crate::jobs::guard::start_point;

/// The state machine name of an environment (template.yaml: `ichiba-collector-${Env}-jobnet`).
pub fn state_machine_name(env: &str) -> String {
    format!("ichiba-collector-{env}-jobnet")
}

/// What went wrong talking to Step Functions.
#[derive(Debug, thiserror::Error)]
pub enum SfnError {
    #[error("no state machine named {name} in region {region}: deploy the stack of this env, or pass --state-machine-arn (the stack output StateMachineArn) or set STATE_MACHINE_ARN")]
    NotFound { name: String, region: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("Step Functions {action} failed: {code}: {message}")]
    Api {
        action: &'static str,
        code: String,
        message: String,
    },
}

impl SfnError {
    /// The CLI's exit status: 2 for what the caller can fix (a missing state machine, bad
    /// input, credentials or permissions, an unknown execution), 5 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            SfnError::NotFound { .. } | SfnError::InvalidInput(_) => 2,
            SfnError::Api { code, .. } => {
                let fixable = [
                    "AccessDenied",
                    "AccessDeniedException",
                    "UnrecognizedClientException",
                    "InvalidClientTokenId",
                    "ExpiredTokenException",
                    "InvalidSignatureException",
                    "StateMachineDoesNotExist",
                    "StateMachineDeleting",
                    "ExecutionDoesNotExist",
                    "ExecutionAlreadyExists",
                    "InvalidArn",
                    "InvalidName",
                    "InvalidExecutionInput",
                    "ValidationException",
                    "no credentials",
                ];
                if fixable.contains(&code.as_str()) {
                    2
                } else {
                    5
                }
            }
        }
    }
}

fn api<E, R>(action: &'static str, e: SdkError<E, R>) -> SfnError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.code() {
        Some(code) => SfnError::Api {
            action,
            code: code.to_string(),
            message: e.message().unwrap_or_default().to_string(),
        },
        None => {
            let message = DisplayErrorContext(&e).to_string();
            let code = if message.contains("credentials") {
                "no credentials"
            } else {
                "request failed"
            };
            SfnError::Api {
                action,
                code: code.into(),
                message,
            }
        }
    }
}

fn time(t: &aws_sdk_sfn::primitives::DateTime) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()).unwrap_or_default()
}

/// The execution input Guard accepts: `{}`, `{"start_at": J}`, `{"start_at": J, "run_id": R}`.
pub fn execution_input(start_at: Option<&str>, run_id: Option<Uuid>) -> Result<Value, SfnError> {
    let mut m = serde_json::Map::new();
    if let Some(s) = start_at {
        let s = start_point(s).map_err(SfnError::InvalidInput)?;
        m.insert("start_at".into(), json!(s));
    }
    if let Some(r) = run_id {
        m.insert("run_id".into(), json!(r.to_string()));
    }
    Ok(Value::Object(m))
}

/// A started execution.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Started {
    pub state_machine_arn: String,
    pub execution_arn: String,
    pub start_date: DateTime<Utc>,
    pub input: Value,
}

/// One execution as DescribeExecution tells it, with the run it works in when known.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Execution {
    pub execution_arn: String,
    pub name: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE.
    pub status: String,
    pub start_date: DateTime<Utc>,
    pub stop_date: Option<DateTime<Utc>>,
    pub input: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// The run: from the input's `run_id`, the output's `guard.Payload.run_id`, or (see
    /// [`match_runs`]) the ledger.
    pub run_id: Option<Uuid>,
    /// How `run_id` is known: `input`, `output`, or `ledger` (the run of the env the
    /// ledger opened while this execution ran).
    pub run_id_from: Option<String>,
}

impl Execution {
    /// `start_at` of the input (`ranking` when absent).
    pub fn start_at(&self) -> &str {
        self.input
            .as_ref()
            .and_then(|i| i.get("start_at"))
            .and_then(Value::as_str)
            .unwrap_or("ranking")
    }
}

fn run_id_in(v: &Value, pointer: &str) -> Option<Uuid> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// The jobnet's state machine through the Step Functions API.
#[derive(Clone)]
pub struct Jobnet {
    client: aws_sdk_sfn::Client,
}

impl Jobnet {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        Self { client }
    }

    /// A client from the default AWS configuration chain (`AWS_ENDPOINT_URL` honoured).
    pub async fn from_env() -> Self {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(aws_sdk_sfn::Client::new(&shared))
    }

    fn region(&self) -> String {
        self.client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "(none: set AWS_REGION)".into())
    }

    /// The state machine ARN of `env`: `explicit` when given, else the one named
    /// [`state_machine_name`] (ListStateMachines).
    pub async fn resolve(&self, env: &str, explicit: Option<&str>) -> Result<String, SfnError> {
        if let Some(arn) = explicit.map(str::trim).filter(|a| !a.is_empty()) {
            if !arn.starts_with("arn:") || !arn.contains(":stateMachine:") {
                return Err(SfnError::InvalidInput(format!(
                    "{arn:?} is not a state machine ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)"
                )));
            }
            return Ok(arn.to_string());
        }
        let name = state_machine_name(env);
        let mut pages = self.client.list_state_machines().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api("ListStateMachines", e))?;
            if let Some(sm) = page.state_machines().iter().find(|s| s.name() == name) {
                return Ok(sm.state_machine_arn().to_string());
            }
        }
        Err(SfnError::NotFound {
            name,
            region: self.region(),
        })
    }

    /// StartExecution with `input` (and an execution name when given).
    pub async fn start(
        &self,
        state_machine_arn: &str,
        input: Value,
        name: Option<&str>,
    ) -> Result<Started, SfnError> {
        let out = self
            .client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .input(input.to_string())
            .set_name(name.map(str::to_string))
            .send()
            .await
            .map_err(|e| api("StartExecution", e))?;
        Ok(Started {
            state_machine_arn: state_machine_arn.to_string(),
            execution_arn: out.execution_arn().to_string(),
            start_date: time(out.start_date()),
            input,
        })
    }

    /// The newest `limit` executions (ListExecutions), each described (DescribeExecution:
    /// input, error, cause, the run ID of a finished one).
    pub async fn recent(
        &self,
        state_machine_arn: &str,
        limit: usize,
    ) -> Result<Vec<Execution>, SfnError> {
        let mut arns = Vec::new();
        let mut pages = self
            .client
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .max_results(limit.clamp(1, 1000) as i32)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| api("ListExecutions", e))?;
            for ex in page.executions() {
                arns.push((ex.execution_arn().to_string(), time(ex.start_date())));
            }
            if arns.len() >= limit {
                break;
            }
        }
        // Newest first, whatever order the service answered in.
        arns.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        arns.truncate(limit);
        let mut out = Vec::with_capacity(arns.len());
        for (arn, _) in arns {
            out.push(self.describe(&arn).await?);
        }
        Ok(out)
    }

    /// DescribeExecution.
    pub async fn describe(&self, execution_arn: &str) -> Result<Execution, SfnError> {
        let d = self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| api("DescribeExecution", e))?;
        let input: Option<Value> = d.input().and_then(|s| serde_json::from_str(s).ok());
        let output: Option<Value> = d.output().and_then(|s| serde_json::from_str(s).ok());
        let (run_id, from) = match (
            input.as_ref().and_then(|i| run_id_in(i, "/run_id")),
            output
                .as_ref()
                .and_then(|o| run_id_in(o, "/guard/Payload/run_id")),
        ) {
            (Some(r), _) => (Some(r), Some("input")),
            (None, Some(r)) => (Some(r), Some("output")),
            (None, None) => (None, None),
        };
        Ok(Execution {
            execution_arn: d.execution_arn().to_string(),
            name: d.name().unwrap_or_default().to_string(),
            status: d.status().as_str().to_string(),
            start_date: time(d.start_date()),
            stop_date: d.stop_date().map(time),
            input,
            error: d.error().map(str::to_string),
            cause: d.cause().map(str::to_string),
            run_id,
            run_id_from: from.map(str::to_string),
        })
    }
}

/// Ties executions without a known run ID to the ledger: the run of the env (triggered by
/// Step Functions) that opened while the execution ran — Guard opens it after any waits,
/// so at or after the execution's start and before its stop — and that no other
/// execution claims. Executions are taken oldest first, each getting the earliest such
/// run.
pub fn match_runs(executions: &mut [Execution], runs: &[RunRecord], now: DateTime<Utc>) {
    let mut taken: Vec<Uuid> = executions.iter().filter_map(|e| e.run_id).collect();
    let mut order: Vec<usize> = (0..executions.len()).collect();
    order.sort_by_key(|&i| executions[i].start_date);
    for i in order {
        let ex = &executions[i];
        if ex.run_id.is_some() {
            continue;
        }
        let until = ex.stop_date.unwrap_or(now);
        // Start dates are kept to the millisecond by Step Functions; allow a second.
        let from = ex.start_date - chrono::Duration::seconds(1);
        let found = runs
            .iter()
            .filter(|r| r.trigger == "stepfunctions" && !taken.contains(&r.run_id))
            .filter(|r| r.started_at >= from && r.started_at <= until)
            .min_by_key(|r| r.started_at)
            .map(|r| r.run_id);
        if let Some(id) = found {
            taken.push(id);
            executions[i].run_id = Some(id);
            executions[i].run_id_from = Some("ledger".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(start: i64, stop: Option<i64>, run: Option<Uuid>) -> Execution {
        Execution {
            execution_arn: format!("arn:x:{start}"),
            name: start.to_string(),
            status: "SUCCEEDED".into(),
            start_date: DateTime::from_timestamp(start, 0).unwrap(),
            stop_date: stop.map(|s| DateTime::from_timestamp(s, 0).unwrap()),
            input: None,
            error: None,
            cause: None,
            run_id: run,
            run_id_from: run.map(|_| "input".into()),
        }
    }

    fn run(started: i64, trigger: &str) -> RunRecord {
        RunRecord {
            run_id: Uuid::new_v4(),
            env: "dev".into(),
            run_date: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            trigger: trigger.into(),
            status: "succeeded".into(),
            started_at: DateTime::from_timestamp(started, 0).unwrap(),
            finished_at: None,
            resumed_at: None,
            error_type: None,
            error_message: None,
            jobs: Vec::new(),
            incomplete_snapshots: 0,
            stale_snapshots: 0,
        }
    }

    #[test]
    fn input_is_what_guard_accepts() {
        assert_eq!(execution_input(None, None).unwrap(), json!({}));
        let id = Uuid::new_v4();
        assert_eq!(
            execution_input(Some("item"), Some(id)).unwrap(),
            json!({"start_at": "item", "run_id": id.to_string()})
        );
        let e = execution_input(Some("items"), None).unwrap_err();
        assert!(
            e.to_string()
                .contains("ranking, item, genre_tag, is_active"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn executions_take_the_run_opened_while_they_ran() {
        let local = run(1000, "local");
        let first = run(1010, "stepfunctions");
        let second = run(2010, "stepfunctions");
        let given = run(3000, "stepfunctions");
        let runs = vec![local, first.clone(), second.clone(), given.clone()];
        let mut exs = vec![
            ex(2000, None, None),
            ex(1000, Some(1500), None),
            ex(2990, Some(3100), Some(given.run_id)),
            ex(5000, None, None),
        ];
        match_runs(&mut exs, &runs, DateTime::from_timestamp(6000, 0).unwrap());
        assert_eq!(exs[0].run_id, Some(second.run_id));
        assert_eq!(exs[1].run_id, Some(first.run_id));
        assert_eq!(exs[1].run_id_from.as_deref(), Some("ledger"));
        assert_eq!(exs[2].run_id, Some(given.run_id));
        assert_eq!(exs[2].run_id_from.as_deref(), Some("input"));
        assert_eq!(exs[3].run_id, None, "no run opened after 5000");
    }
}
