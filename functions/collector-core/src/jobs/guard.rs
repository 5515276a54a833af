//! Guard: the first state of the jobnet (SPEC §3).
//!
//! * No two executions of the same environment overlap. In AWS, Guard lists the RUNNING
//!   executions of its own state machine ([`StepFunctionsConcurrency`]); locally the
//!   `collector run` process holds a PostgreSQL session advisory lock per environment for
//!   the whole run ([`LocalLock`]; a crashed run's connection closes and releases it).
//!   While another run is in progress Guard answers `proceed: false` and the definition
//!   waits (`GuardWait`, 60 s) and asks again; after `max_waits` such answers Guard fails
//!   with `ConcurrentExecution`.
//! * It validates the execution input (`start_at`, `run_id`) and opens the run in the
//!   ledger, or resumes the given one.
//!
//! Event (built by the `Guard` state's Parameters):
//! `{"input": <state input>, "state_machine_arn", "execution_arn", "execution_start_time",
//!   "max_waits": "10"}`. Output: `{"run_id", "start_at", "proceed", "waits", "waiting_for"}`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::db::{self, ledger};

use super::job::first_unfinished;
use super::{AppContext, JobError};

/// Where a manual rerun may start (the `Route` Choice of the definition): the stages of
/// [`super::JOBS`], as a constant for clap and messages (a test keeps them equal).
pub const START_AT: [&str; 4] = ["ranking", "item", "genre_tag", "is_active"];

/// Seconds the definition's `GuardWait` state waits between checks.
pub const WAIT_SECONDS: u64 = 60;

/// The Guard event, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardRequest {
    pub start_at: String,
    /// Whether the input named `start_at` (a manual rerun) rather than defaulting to ranking.
    pub start_at_given: bool,
    pub run_id: Option<Uuid>,
    pub state_machine_arn: Option<String>,
    pub execution_arn: Option<String>,
    pub execution_start: Option<DateTime<Utc>>,
    /// How many times Guard may answer "wait" before it refuses.
    pub max_waits: u32,
    /// How many times it already did in this execution.
    pub waits: u32,
}

fn invalid(msg: impl Into<String>) -> JobError {
    JobError::InvalidInput(msg.into())
}

/// Checks a manual start point against the jobnet's stages.
pub fn start_point(s: &str) -> Result<String, String> {
    if START_AT.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "start_at must be one of {}, got {s:?}",
            START_AT.join(", ")
        ))
    }
}

/// The event the definition passes Guard: the execution input and its context.
#[derive(serde::Deserialize)]
struct GuardEvent {
    #[serde(default)]
    input: Option<ExecutionInput>,
    #[serde(default, deserialize_with = "count")]
    max_waits: Option<u32>,
    #[serde(default, deserialize_with = "non_empty")]
    state_machine_arn: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    execution_arn: Option<String>,
    #[serde(default)]
    execution_start_time: Option<DateTime<Utc>>,
}

/// What a person (or the schedule) starts an execution with.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecutionInput {
    #[serde(default, deserialize_with = "stage")]
    start_at: Option<String>,
    #[serde(default)]
    run_id: Option<Uuid>,
    /// Guard's previous answer in this execution (the definition keeps it here).
    #[serde(default)]
    guard: Option<Value>,
}

fn stage<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| start_point(&s))
        .transpose()
        .map_err(serde::de::Error::custom)
}

fn non_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) if s.is_empty() => Err(serde::de::Error::custom("must not be empty")),
        v => Ok(v),
    }
}

/// A count given as a number or as a string (the template passes parameters as strings).
fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum N {
        Number(u32),
        Text(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::Number(n)) => Ok(Some(n)),
        Some(N::Text(s)) => s.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("must be a non-negative integer, got {s:?}"))
        }),
    }
}

impl GuardRequest {
    pub fn from_event(event: &Value) -> Result<Self, JobError> {
        if !event.is_object() {
            return Err(invalid("the Guard event must be a JSON object"));
        }
        if let Some(other) = event
            .get("input")
            .filter(|i| !(i.is_object() || i.is_null()))
        {
            return Err(invalid(format!(
                "the execution input must be a JSON object like {{\"start_at\": \"item\", \"run_id\": \"<uuid>\"}}, got {other}"
            )));
        }
        let e: GuardEvent = serde_json::from_value(event.clone())
            .map_err(|e| invalid(format!("the Guard event: {e}")))?;
        let input = e.input.unwrap_or(ExecutionInput {
            start_at: None,
            run_id: None,
            guard: None,
        });
        let waits = input
            .guard
            .as_ref()
            .and_then(|g| g.get("Payload").unwrap_or(g).get("waits"))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        Ok(GuardRequest {
            start_at_given: input.start_at.is_some(),
            start_at: input.start_at.unwrap_or_else(|| "ranking".into()),
            run_id: input.run_id,
            state_machine_arn: e.state_machine_arn,
            execution_arn: e.execution_arn,
            execution_start: e.execution_start_time,
            max_waits: e.max_waits.unwrap_or(10),
            waits,
        })
    }
}

/// Guard's answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GuardOutput {
    /// The run this execution works in (None while waiting).
    pub run_id: Option<Uuid>,
    pub start_at: String,
    pub proceed: bool,
    /// Times Guard has answered "wait" in this execution (this answer included).
    pub waits: u32,
    /// What this execution waits for (empty when proceeding).
    pub waiting_for: Vec<String>,
    /// Set when Guard chose the run itself: which run it resumes and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed: Option<String>,
}

/// Finds the other runs this execution must wait for.
#[async_trait]
pub trait Concurrency: Send + Sync {
    /// Descriptions of the runs in progress that go before this one (empty: go ahead).
    async fn others(&self, req: &GuardRequest) -> Result<Vec<String>, JobError>;
}

/// Runs Guard: waits (answers `proceed: false`) or refuses while another run is in
/// progress, otherwise opens or resumes the run. `trigger` is recorded on a new run.
pub async fn run(
    ctx: &AppContext,
    req: GuardRequest,
    concurrency: &dyn Concurrency,
    trigger: &str,
) -> Result<GuardOutput, JobError> {
    let others = concurrency.others(&req).await?;
    if !others.is_empty() {
        if req.waits >= req.max_waits {
            return Err(JobError::ConcurrentExecution(format!(
                "another run of env {} is still in progress (checked {} times, {WAIT_SECONDS} s apart): {}",
                ctx.config.env,
                req.waits + 1,
                others.join(", ")
            )));
        }
        tracing::warn!(waits = req.waits + 1, max_waits = req.max_waits, others = ?others, "another run is in progress: waiting");
        return Ok(GuardOutput {
            run_id: None,
            start_at: req.start_at,
            proceed: false,
            waits: req.waits + 1,
            waiting_for: others,
            resumed: None,
        });
    }
    let db = ctx.db().await?;
    let client = &db.client;
    let env = ctx.config.env.as_str();
    let lease = ctx.config.run_lease;
    // No other execution is in progress: runs still marked running whose process is gone
    // become abandoned before anything is decided.
    ledger::sweep_abandoned(client, env, lease).await?;
    let mut start_at = req.start_at.clone();
    let mut resumed = None;
    let run_id = match req.run_id {
        Some(id) => {
            resume(client, env, id, lease).await?;
            tracing::info!(run_id = %id, start_at = %start_at, "resuming run");
            id
        }
        // A manual rerun without a run id works in the newest run, never a new empty one.
        None if req.start_at_given => {
            let run = ledger::newest_run(client, env).await?.ok_or_else(|| {
                invalid(format!(
                    "start_at {start_at:?} without run_id resumes the newest run of env {env}, but there is none; run without start_at first"
                ))
            })?;
            resume(client, env, run.run_id, lease).await?;
            resumed = Some(format!(
                "the newest run {} ({}, {}), starting at {start_at}",
                run.run_id, run.run_date, run.status
            ));
            run.run_id
        }
        None => {
            let today = ledger::jst_date(Utc::now());
            match ledger::abandoned_run_of_day(client, env, today).await? {
                Some(run) => {
                    let done = ledger::succeeded_jobs(client, run.run_id).await?;
                    match first_unfinished(&done) {
                        Some(at) => {
                            resume(client, env, run.run_id, lease).await?;
                            start_at = at.to_string();
                            resumed = Some(format!(
                                "abandoned run {} of {} (its process or execution is gone), continuing at {at}",
                                run.run_id, run.run_date
                            ));
                            run.run_id
                        }
                        None => {
                            // Every job had succeeded; only the run's closing was lost.
                            ledger::finish_run(client, run.run_id, true, None).await?;
                            ledger::create_run(client, env, trigger, lease)
                                .await?
                                .run_id
                        }
                    }
                }
                None => {
                    let run = ledger::create_run(client, env, trigger, lease).await?;
                    tracing::info!(run_id = %run.run_id, "opened run");
                    run.run_id
                }
            }
        }
    };
    if let Some(r) = &resumed {
        tracing::warn!(%run_id, "resuming {r}");
    }
    Ok(GuardOutput {
        run_id: Some(run_id),
        start_at,
        proceed: true,
        waits: req.waits,
        waiting_for: Vec::new(),
        resumed,
    })
}

/// Checks that `run_id` is a run of `env` and marks it running again if it had ended.
async fn resume(
    client: &tokio_postgres::Client,
    env: &str,
    run_id: Uuid,
    lease: std::time::Duration,
) -> Result<(), JobError> {
    let run = ledger::get_run(client, run_id)
        .await?
        .ok_or(JobError::RunNotFound(run_id))?;
    if run.env != env {
        return Err(invalid(format!(
            "run {run_id} belongs to env {}, this jobnet runs in env {env}",
            run.env
        )));
    }
    if run.status == "running" {
        ledger::renew_lease(client, run_id, lease).await?;
    } else {
        ledger::reopen_run(client, run_id, lease).await?;
    }
    Ok(())
}

/// The Lambda's entry point: `run` with the Step Functions check.
pub async fn handle(
    ctx: &AppContext,
    event: Value,
    concurrency: &dyn Concurrency,
) -> Result<Value, JobError> {
    let req = GuardRequest::from_event(&event)?;
    let out = run(ctx, req, concurrency, "stepfunctions").await?;
    Ok(json!(out))
}

/// AWS: other RUNNING executions of the same state machine that started before this one
/// (ties broken by ARN, so two executions started together never wait for each other).
pub struct StepFunctionsConcurrency {
    client: aws_sdk_sfn::Client,
}

impl StepFunctionsConcurrency {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        Self { client }
    }

    /// A client from the default AWS configuration chain (`AWS_ENDPOINT_URL` honoured).
    pub async fn from_env() -> Self {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(aws_sdk_sfn::Client::new(&shared))
    }
}

#[async_trait]
impl Concurrency for StepFunctionsConcurrency {
    async fn others(&self, req: &GuardRequest) -> Result<Vec<String>, JobError> {
        let sm = req.state_machine_arn.as_deref().ok_or_else(|| {
            invalid("state_machine_arn is missing (the Guard state passes $$.StateMachine.Id)")
        })?;
        let me = req.execution_arn.as_deref().ok_or_else(|| {
            invalid("execution_arn is missing (the Guard state passes $$.Execution.Id)")
        })?;
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_executions()
            .state_machine_arn(sm)
            .status_filter(aws_sdk_sfn::types::ExecutionStatus::Running)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                use aws_sdk_sfn::error::ProvideErrorMetadata;
                let e = e.into_service_error();
                let e = crate::config::ConfigError::new(
                    "states:ListExecutions",
                    format!(
                        "cannot list the executions of {sm}: {} {}",
                        e.code().unwrap_or("error"),
                        e.message().unwrap_or_default()
                    ),
                );
                JobError::Config(e)
            })?;
            for ex in page.executions() {
                let arn = ex.execution_arn();
                if arn == me {
                    continue;
                }
                let started = ex.start_date();
                let started =
                    DateTime::<Utc>::from_timestamp(started.secs(), started.subsec_nanos());
                let before = match (req.execution_start, started) {
                    (Some(mine), Some(theirs)) => (theirs, arn) < (mine, me),
                    _ => true,
                };
                if before {
                    out.push(format!(
                        "{arn} (started {})",
                        started.map(|t| t.to_rfc3339()).unwrap_or_default()
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// The advisory-lock key pair of the local jobnet lock: a fixed class, and the env.
const LOCK_CLASS: i32 = 0x1c_0b_e7;

/// Local runs: a PostgreSQL session advisory lock per environment, held by one
/// `collector run` process from its Guard to its end.
pub struct LocalLock {
    database_url: SecretString,
    env: String,
    held: Mutex<Option<tokio_postgres::Client>>,
}

impl LocalLock {
    pub fn new(database_url: SecretString, env: impl Into<String>) -> Self {
        Self {
            database_url,
            env: env.into(),
            held: Mutex::new(None),
        }
    }

    /// Takes the lock unless another session holds it; true when this process holds it.
    pub async fn try_acquire(&self) -> Result<bool, JobError> {
        let mut held = self.held.lock().await;
        if held.is_some() {
            return Ok(true);
        }
        let conn = db::connect(&self.database_url).await?;
        let row = conn
            .client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[
                    &LOCK_CLASS,
                    &format!("ichiba-collector/jobnet/{}", self.env),
                ],
            )
            .await?;
        if row.get::<_, bool>(0) {
            *held = Some(conn.client);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Whether this process holds the lock.
    pub async fn is_held(&self) -> bool {
        self.held.lock().await.is_some()
    }

    /// Releases the lock (closing its session).
    pub async fn release(&self) {
        if let Some(c) = self.held.lock().await.take() {
            let _ = c
                .query_one(
                    "SELECT pg_advisory_unlock($1, hashtext($2))",
                    &[
                        &LOCK_CLASS,
                        &format!("ichiba-collector/jobnet/{}", self.env),
                    ],
                )
                .await;
        }
    }

    async fn describe_holder(&self) -> String {
        let text = async {
            let conn = db::connect(&self.database_url).await.ok()?;
            let rows = conn
                .client
                .query(
                    "SELECT l.pid, a.backend_start, a.client_addr::text FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                     WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::int::oid AND l.objid = hashtext($2)::oid",
                    &[&LOCK_CLASS, &format!("ichiba-collector/jobnet/{}", self.env)],
                )
                .await
                .ok()?;
            let r = rows.first()?;
            let pid: i32 = r.get(0);
            let since: Option<DateTime<Utc>> = r.get(1);
            let addr: Option<String> = r.get(2);
            Some(format!(
                "another `collector run` for env {} holds the jobnet lock (PostgreSQL backend pid {pid}{}{})",
                self.env,
                since.map(|s| format!(", since {}", s.format("%Y-%m-%d %H:%M:%S UTC"))).unwrap_or_default(),
                addr.map(|a| format!(", from {a}")).unwrap_or_default(),
            ))
        }
        .await;
        text.unwrap_or_else(|| {
            format!(
                "another `collector run` for env {} holds the jobnet lock",
                self.env
            )
        })
    }
}

#[async_trait]
impl Concurrency for LocalLock {
    async fn others(&self, _req: &GuardRequest) -> Result<Vec<String>, JobError> {
        if self.try_acquire().await? {
            Ok(Vec::new())
        } else {
            Ok(vec![self.describe_holder().await])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_points_are_the_stages_of_the_job_table() {
        assert_eq!(START_AT.to_vec(), crate::jobs::job::stages());
    }

    #[test]
    fn parses_and_validates_the_event() {
        let r = GuardRequest::from_event(&json!({"input": {}, "max_waits": "3"})).unwrap();
        assert_eq!(r.start_at, "ranking");
        assert_eq!((r.max_waits, r.waits, r.run_id), (3, 0, None));
        let id = Uuid::new_v4();
        let r = GuardRequest::from_event(&json!({
            "input": {"start_at": "item", "run_id": id.to_string(), "guard": {"Payload": {"waits": 2}}},
            "max_waits": 5, "execution_start_time": "2026-11-23T00:00:00.000Z"
        }))
        .unwrap();
        assert_eq!(
            (r.start_at.as_str(), r.run_id, r.waits),
            ("item", Some(id), 2)
        );
        assert!(r.execution_start.is_some());
        let e = GuardRequest::from_event(&json!({"input": {"start_at": "items"}})).unwrap_err();
        assert!(
            e.to_string().contains(
                "start_at must be one of ranking, item, genre_tag, is_active, got \"items\""
            ),
            "{e}"
        );
        let e = GuardRequest::from_event(&json!({"input": {"startAt": "item"}})).unwrap_err();
        assert!(e.to_string().contains("unknown field `startAt`"), "{e}");
        for bad in [
            json!({"input": "x"}),
            json!({"input": {"start_at": "items"}}),
            json!({"input": {"startAt": "item"}}),
            json!({"input": {"run_id": "nope"}}),
            json!({"input": {}, "max_waits": "many"}),
            json!({"input": {}, "max_waits": -1}),
            json!({"input": {}, "execution_arn": ""}),
            json!({"input": {}, "execution_start_time": "yesterday"}),
            json!(["x"]),
        ] {
            let e = GuardRequest::from_event(&bad).unwrap_err();
            assert_eq!(e.error_type(), "InvalidInput", "{bad}: {e}");
        }
    }
}
