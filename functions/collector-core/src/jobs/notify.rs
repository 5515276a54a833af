//! Notify: the last Task of every execution (SPEC §3). It closes the run in the ledger
//! and sends a run summary to an incoming webhook (Slack or Discord JSON) and/or an SNS
//! topic; with neither configured it logs the summary. Delivery problems are logged and
//! reported (`"delivered": false`), never raised: a dead webhook does not fail the jobnet.
//!
//! Event (built by the `NotifySuccess` / `NotifyFailure` states' Parameters):
//! `{"status": "succeeded" | "failed", "state": <the execution state>, "execution_arn"}`.
//! The state holds `guard.Payload.run_id`, each job's `{"Payload": output}` (`ranking`,
//! `item`, `genre_tag.{genre,tag}`, `is_active`) and on failure `error: {Error, Cause}`.
//!
//! Configuration: `NOTIFY_WEBHOOK_URL` (or `NOTIFY_WEBHOOK_URL_SSM_PARAMETER`, a
//! SecureString), `NOTIFY_SNS_TOPIC_ARN`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::ledger;

use super::ranking::Check;
use super::{AppContext, JobError, JobOutput, JOBS};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause")]
    pub cause: String,
}

/// One job's line in the summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSummary {
    pub job: String,
    /// `succeeded`, `failed` (an error), or the output's status.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<JobOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// What Notify reports on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub status: String,
    pub env: String,
    pub run_id: Option<Uuid>,
    pub execution_arn: Option<String>,
    pub jobs: Vec<JobSummary>,
    pub error: Option<ErrorInfo>,
}

fn str_field(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn error_info(v: &Value) -> Option<ErrorInfo> {
    let e = v.as_object()?;
    Some(ErrorInfo {
        error: e.get("Error").and_then(Value::as_str)?.to_string(),
        cause: match e.get("Cause") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        },
    })
}

impl RunSummary {
    /// Builds the summary from a Notify event.
    pub fn from_event(event: &Value, env: &str) -> Result<Self, JobError> {
        let status = match event.get("status").and_then(Value::as_str) {
            Some(s @ ("succeeded" | "failed")) => s.to_string(),
            other => {
                return Err(JobError::InvalidInput(format!(
                    "Notify: status must be \"succeeded\" or \"failed\", got {other:?}"
                )))
            }
        };
        let state = event.get("state").cloned().unwrap_or(Value::Null);
        let guard = state.get("guard").map(|g| g.get("Payload").unwrap_or(g));
        // A hand-written event may give run_id and error at the top level.
        let run_id = guard
            .and_then(|g| str_field(g, "run_id"))
            .or_else(|| str_field(event, "run_id"))
            .and_then(|s| Uuid::parse_str(&s).ok());
        let mut jobs = Vec::new();
        for spec in &JOBS {
            let job = spec.name;
            let mut v = Some(&state);
            for p in spec.result_path {
                v = v.and_then(|x| x.get(*p));
            }
            let Some(v) = v else { continue };
            if let Some(e) = v.get("error").and_then(error_info) {
                jobs.push(JobSummary {
                    job: job.into(),
                    status: "failed".into(),
                    output: None,
                    error: Some(e),
                });
            } else if let Some(p) = v.get("Payload") {
                let output = serde_json::from_value::<JobOutput>(p.clone()).ok();
                jobs.push(JobSummary {
                    job: job.into(),
                    status: output
                        .as_ref()
                        .map(|o| o.status.clone())
                        .unwrap_or_else(|| "succeeded".into()),
                    output,
                    error: None,
                });
            }
        }
        Ok(RunSummary {
            status,
            env: env.to_string(),
            run_id,
            execution_arn: str_field(event, "execution_arn"),
            jobs,
            error: state
                .get("error")
                .or_else(|| event.get("error"))
                .and_then(error_info),
        })
    }

    /// The failing job's name, when the error came from one (first failed job).
    pub fn failed_job(&self) -> Option<&str> {
        self.jobs
            .iter()
            .find(|j| j.error.is_some())
            .map(|j| j.job.as_str())
    }

    /// A short plain-text rendering (webhook message, SNS message body, log line).
    pub fn text(&self) -> String {
        let mut s = format!(
            "ichiba-collector [{}] jobnet {}{}",
            self.env,
            self.status.to_uppercase(),
            self.run_id
                .map(|r| format!(" — run {r}"))
                .unwrap_or_default()
        );
        for j in &self.jobs {
            match (&j.output, &j.error) {
                (Some(o), _) => {
                    let rows = o.total_rows();
                    s.push_str(&format!(
                        "\n• {}: {} — units {}/{} ok, {} failed ({:.2}% / {:.2}%), {} requests, rows +{} ~{}, {:.1} s",
                        j.job,
                        j.status,
                        o.units.succeeded,
                        o.units.attempted,
                        o.units.failed,
                        o.failure_rate * 100.0,
                        o.threshold * 100.0,
                        o.requests,
                        rows.inserted,
                        rows.updated,
                        o.duration_ms as f64 / 1000.0
                    ));
                    // Incomplete snapshots are said in the message, never only in a table.
                    for i in &o.incomplete {
                        s.push_str(&format!("\n  ⚠ {i}"));
                    }
                    // Quality findings beyond incompleteness (said above) are said too.
                    for f in o.quality.iter().filter(|f| f.check != Check::Incomplete) {
                        s.push_str(&format!("\n  ⚠ {f}"));
                    }
                }
                (None, Some(e)) => {
                    s.push_str(&format!("\n• {}: FAILED {}: {}", j.job, e.error, e.cause))
                }
                (None, None) => s.push_str(&format!("\n• {}: {}", j.job, j.status)),
            }
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("\nerror {}: {}", e.error, e.cause));
        }
        if let Some(a) = &self.execution_arn {
            s.push_str(&format!("\nexecution {a}"));
        }
        s
    }
}

/// How one channel went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelResult {
    pub channel: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Notify's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyReport {
    /// True when at least one channel is configured and every configured channel took the message.
    pub delivered: bool,
    pub channels: Vec<ChannelResult>,
    pub run_closed: bool,
    pub summary: RunSummary,
}

/// Where summaries go.
#[derive(Clone, Default)]
pub struct Notifier {
    pub webhook_url: Option<String>,
    pub sns: Option<(aws_sdk_sns::Client, String)>,
    http: Option<reqwest::Client>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("webhook", &self.webhook_url.as_ref().map(|_| "<set>"))
            .field("sns_topic", &self.sns.as_ref().map(|s| &s.1))
            .finish()
    }
}

impl Notifier {
    pub fn new(webhook_url: Option<String>, sns: Option<(aws_sdk_sns::Client, String)>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .ok();
        Notifier {
            webhook_url,
            sns,
            http,
        }
    }

    /// From `NOTIFY_WEBHOOK_URL` / `NOTIFY_WEBHOOK_URL_SSM_PARAMETER` and `NOTIFY_SNS_TOPIC_ARN`.
    pub async fn from_env() -> Result<Self, JobError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let webhook_param = var("NOTIFY_WEBHOOK_URL_SSM_PARAMETER");
        let topic = var("NOTIFY_SNS_TOPIC_ARN");
        let shared = if webhook_param.is_some() || topic.is_some() {
            Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
        } else {
            None
        };
        let webhook_url = match (var("NOTIFY_WEBHOOK_URL"), webhook_param) {
            (Some(u), _) => Some(u),
            (None, Some(p)) => {
                let ssm = aws_sdk_ssm::Client::new(shared.as_ref().expect("loaded"));
                let out = ssm
                    .get_parameter()
                    .name(&p)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| {
                        crate::config::ConfigError::new(
                            "NOTIFY_WEBHOOK_URL_SSM_PARAMETER",
                            format!("cannot read SSM parameter {p}: {}", e.into_service_error()),
                        )
                    })?;
                out.parameter().and_then(|p| p.value()).map(str::to_string)
            }
            (None, None) => None,
        };
        if let Some(u) = &webhook_url {
            url::Url::parse(u).map_err(|e| {
                crate::config::ConfigError::new("NOTIFY_WEBHOOK_URL", format!("not a URL: {e}"))
            })?;
        }
        let sns = topic.map(|t| {
            (
                aws_sdk_sns::Client::new(shared.as_ref().expect("loaded")),
                t,
            )
        });
        Ok(Self::new(webhook_url, sns))
    }

    /// Sends the summary everywhere configured; never fails.
    pub async fn send(&self, summary: &RunSummary) -> Vec<ChannelResult> {
        let text = summary.text();
        let mut out = Vec::new();
        if let Some(url) = &self.webhook_url {
            // Slack reads "text", Discord reads "content" (at most 2000 characters).
            let content: String = text.chars().take(1990).collect();
            let body = json!({"text": text, "content": content});
            let result = match &self.http {
                None => Err("no HTTP client".to_string()),
                Some(http) => match http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("the webhook answered HTTP {}", r.status())),
                    Err(e) => Err(format!("the webhook is unreachable: {e}")),
                },
            };
            if let Err(e) = &result {
                tracing::warn!(error = %e, "notification by webhook failed");
            }
            out.push(ChannelResult {
                channel: "webhook".into(),
                ok: result.is_ok(),
                error: result.err(),
            });
        }
        if let Some((client, topic)) = &self.sns {
            let subject: String = format!(
                "ichiba-collector [{}] jobnet {}",
                summary.env, summary.status
            )
            .chars()
            .take(100)
            .collect();
            let message = format!(
                "{text}\n\n{}",
                serde_json::to_string_pretty(summary).expect("serialises")
            );
            let result = client
                .publish()
                .topic_arn(topic)
                .subject(subject)
                .message(message)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("SNS publish to {topic} failed: {}", e.into_service_error()));
            if let Err(e) = &result {
                tracing::warn!(error = %e, "notification by SNS failed");
            }
            out.push(ChannelResult {
                channel: "sns".into(),
                ok: result.is_ok(),
                error: result.err(),
            });
        }
        out
    }
}

/// Runs Notify: logs and sends the summary, then closes the run in the ledger.
pub async fn run(
    ctx: &AppContext,
    event: &Value,
    notifier: &Notifier,
) -> Result<NotifyReport, JobError> {
    let summary = RunSummary::from_event(event, ctx.config.env.as_str())?;
    if summary.status == "succeeded" {
        tracing::info!(summary = %serde_json::to_string(&summary).expect("serialises"), "{}", summary.text());
    } else {
        tracing::error!(summary = %serde_json::to_string(&summary).expect("serialises"), "{}", summary.text());
    }
    let channels = notifier.send(&summary).await;
    let delivered = !channels.is_empty() && channels.iter().all(|c| c.ok);
    let mut run_closed = false;
    if let Some(run_id) = summary.run_id {
        let db = ctx.db().await?;
        let client = &db.client;
        let err = summary
            .error
            .as_ref()
            .map(|e| (e.error.as_str(), e.cause.as_str()));
        ledger::finish_run(client, run_id, summary.status == "succeeded", err).await?;
        run_closed = true;
    } else {
        tracing::warn!(
            "no run was opened (Guard did not get that far): nothing to close in the ledger"
        );
    }
    Ok(NotifyReport {
        delivered,
        channels,
        run_closed,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_from_a_failed_state() {
        let id = Uuid::new_v4();
        let ev = json!({
            "status": "failed",
            "execution_arn": "arn:x",
            "state": {
                "guard": {"Payload": {"run_id": id.to_string(), "proceed": true}},
                "ranking": {"Payload": {"job": "ranking"}},
                "genre_tag": {
                    "genre": {"error": {"Error": "FailureRateExceeded", "Cause": "genre: 3 of 10 units failed"}},
                    "tag": {"Payload": {"job": "tag"}}
                },
                "error": {"Error": "FailureRateExceeded", "Cause": "genre: 3 of 10 units failed"}
            }
        });
        let s = RunSummary::from_event(&ev, "dev").unwrap();
        assert_eq!(s.run_id, Some(id));
        assert_eq!(
            s.jobs.iter().map(|j| j.job.as_str()).collect::<Vec<_>>(),
            ["ranking", "genre", "tag"]
        );
        assert_eq!(s.failed_job(), Some("genre"));
        assert_eq!(s.error.as_ref().unwrap().error, "FailureRateExceeded");
        assert!(s.text().contains("genre: FAILED FailureRateExceeded"));
        assert!(RunSummary::from_event(&json!({"status": "ok"}), "dev").is_err());
        // events/notify-failure.json's shape.
        let s = RunSummary::from_event(
            &json!({"status": "failed", "run_id": id.to_string(), "error": {"Error": "E", "Cause": "c"}}),
            "dev",
        )
        .unwrap();
        assert_eq!((s.run_id, s.error.unwrap().error.as_str()), (Some(id), "E"));
    }

    #[test]
    fn incomplete_snapshots_are_in_the_message() {
        let id = Uuid::new_v4();
        let ranking = json!({
            "job": "ranking", "run_id": id, "attempt": 1, "status": "succeeded", "done": true,
            "units": {"attempted": 34, "succeeded": 33, "failed": 1},
            "failure_rate": 0.0294, "threshold": 0.05, "requests": 36, "retries": 2, "throttled": 0,
            "rows": {}, "raw_written": 33, "raw_identical": 0, "manifest_key": null,
            "snapshot_date": "2026-12-01", "duration_ms": 1000,
            "incomplete": ["genre 0 daily: incomplete, missing 61-90"],
            "quality": [
                {"target": "genre 0 daily", "check": "incomplete", "severe": false, "detail": "missing 61-90"},
                {"target": "genre 0 daily", "check": "row_count_drop", "severe": false, "detail": "300 rows, 1000 on 2026-11-30"}
            ]
        });
        let ev = json!({
            "status": "succeeded",
            "state": {"guard": {"Payload": {"run_id": id.to_string()}}, "ranking": {"Payload": ranking}}
        });
        let text = RunSummary::from_event(&ev, "dev").unwrap().text();
        assert!(
            text.contains("\n  ⚠ genre 0 daily: incomplete, missing 61-90")
                && text
                    .contains("\n  ⚠ genre 0 daily: row_count_drop: 300 rows, 1000 on 2026-11-30")
                && text.matches("61-90").count() == 1,
            "{text}"
        );
    }
}
