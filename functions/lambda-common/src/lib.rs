//! What every Lambda binary shares, so each `main.rs` only names its job.
//!
//! - Cold start: configuration validated, the secrets this function uses resolved (SSM
//!   when configured; see [`SecretNeeds`]), the Rakuten client, raw store and database
//!   connection built once, then lent to every invocation.
//! - Metrics: one JSON line per invocation at the function's own log level, so Lambda's
//!   log-level filter keeps it (`collector_core::metrics::metrics_line`).
//! - Errors become a [`Diagnostic`] whose `error_type` is the job error's name
//!   (`FailureRateExceeded`, `InvalidInput`, …), which Step Functions matches.
//! - One-shot mode: `BINARY --event '{…}'`, `--event-file FILE` or `--event-file -`
//!   runs one event without the Lambda runtime API and prints the output document
//!   (or `{"errorType", "errorMessage"}`, exit status 1) on stdout.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use collector_core::config::Config;
use collector_core::jobs::{AppContext, JobError, RakutenEndpoint};
pub use collector_core::secrets::SecretNeeds;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use secrecy::SecretString;
use serde_json::Value;

/// Per-invocation facts a job may use.
#[derive(Debug, Clone, Copy)]
pub struct Invocation {
    /// When the Lambda service will stop this invocation (None in one-shot mode without a budget).
    pub deadline: Option<SystemTime>,
}

/// Converts a job error into the Diagnostic Step Functions sees.
pub fn diagnostic(e: &JobError) -> Diagnostic {
    Diagnostic {
        error_type: e.error_type().to_string(),
        error_message: e.to_string(),
    }
}

async fn bootstrap(needs: SecretNeeds) -> Result<Arc<AppContext>, JobError> {
    let config = Config::from_env()?;
    let secrets = collector_core::secrets::resolve_needed(&config, needs).await?;
    // A function without Rakuten credentials still gets a client (AppContext always has
    // one), pointed at the discard port with placeholder credentials: it never calls it,
    // and if it ever did the call would fail instead of using real credentials.
    let endpoint = (needs == SecretNeeds::Database).then(|| RakutenEndpoint {
        base_url: url::Url::parse("http://127.0.0.1:9/").expect("static URL"),
        application_id: SecretString::from("not-resolved-for-this-function"),
        access_key: SecretString::from("not-resolved-for-this-function"),
    });
    Ok(Arc::new(AppContext::new(config, secrets, endpoint).await?))
}

/// Prints a metrics line (CloudWatch reads EMF from the log stream) at the function's
/// log level; `EMIT_METRICS=true` (DetailedMonitoring) adds the EMF block.
fn print_metrics(doc: Value) {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let emit = std::env::var("EMIT_METRICS").is_ok_and(|v| v == "true");
    println!(
        "{}",
        collector_core::metrics::metrics_line(doc, level.as_deref(), emit)
    );
}

fn emit_metrics(env: &str, out: &Value) {
    if let Ok(doc) = serde_json::from_value::<collector_core::jobs::JobOutput>(out.clone()) {
        print_metrics(collector_core::metrics::for_output(env, &doc));
    }
}

enum Mode {
    Lambda,
    OneShot(Value),
}

fn mode() -> Result<Mode, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(Mode::Lambda),
        [flag, json] if flag == "--event" => serde_json::from_str(json)
            .map(Mode::OneShot)
            .map_err(|e| format!("--event is not JSON: {e}")),
        [flag, path] if flag == "--event-file" => {
            let text = if path == "-" {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| format!("cannot read the event from stdin: {e}"))?
            } else {
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?
            };
            serde_json::from_str(&text)
                .map(Mode::OneShot)
                .map_err(|e| format!("{path} is not JSON: {e}"))
        }
        [flag] if flag == "--help" || flag == "-h" => Err(String::new()),
        _ => Err(format!("unexpected arguments {args:?}")),
    }
}

/// Runs a job as a Lambda function (no arguments) or once for a given event, resolving
/// only the secrets `needs` names.
pub async fn run<F, Fut>(
    name: &'static str,
    needs: SecretNeeds,
    job: F,
) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Arc<AppContext>, Value, Invocation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, JobError>> + Send,
{
    let mode = match mode() {
        Ok(m) => m,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("{name}: {msg}");
            }
            eprintln!("usage: {name}                      (as a Lambda function, under the runtime API)\n       {name} --event JSON         (run one event locally)\n       {name} --event-file FILE|-  (run one event from a file or stdin)");
            std::process::exit(if msg.is_empty() { 0 } else { 2 });
        }
    };
    // Logs go to stderr in one-shot mode so stdout carries only the output document.
    match mode {
        Mode::Lambda => lambda_runtime::tracing::init_default_subscriber(),
        Mode::OneShot(_) => {
            lambda_runtime::tracing::init_default_subscriber_with_writer(std::io::stderr)
        }
    }
    let ctx = match bootstrap(needs).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error_type = e.error_type(), error = %e, "{name}: start-up failed");
            match mode {
                Mode::Lambda => return Err(e.into()),
                Mode::OneShot(_) => {
                    println!(
                        "{}",
                        serde_json::json!({"errorType": e.error_type(), "errorMessage": e.to_string()})
                    );
                    std::process::exit(2);
                }
            }
        }
    };
    match mode {
        Mode::Lambda => {
            let job = Arc::new(job);
            lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
                let ctx = Arc::clone(&ctx);
                let job = Arc::clone(&job);
                async move {
                    let inv = Invocation {
                        deadline: usable_deadline(event.context.deadline()),
                    };
                    let env = ctx.config.env.as_str();
                    match job(Arc::clone(&ctx), event.payload, inv).await {
                        Ok(out) => {
                            emit_metrics(env, &out);
                            Ok(out)
                        }
                        Err(e) => {
                            tracing::error!(error_type = e.error_type(), error = %e, "{name} failed");
                            if let Some(emf) = collector_core::metrics::for_error(env, &e) {
                                print_metrics(emf);
                            }
                            Err(diagnostic(&e))
                        }
                    }
                }
            }))
            .await
        }
        Mode::OneShot(event) => match job(ctx, event, Invocation { deadline: None }).await {
            Ok(out) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out).expect("JSON value serialises")
                );
                Ok(())
            }
            Err(e) => {
                tracing::error!(error_type = e.error_type(), error = %e, "{name} failed");
                println!(
                    "{}",
                    serde_json::json!({"errorType": e.error_type(), "errorMessage": e.to_string()})
                );
                std::process::exit(1);
            }
        },
    }
}

/// The invocation's deadline, unless it has already passed as the invocation starts:
/// the Lambda service never sends that, but a local runtime emulator (`cargo lambda
/// watch`) does, and a time-boxed job would then never work.
fn usable_deadline(deadline: std::time::SystemTime) -> Option<std::time::SystemTime> {
    if deadline > std::time::SystemTime::now() {
        Some(deadline)
    } else {
        tracing::warn!("the invocation's deadline has already passed as it starts (a local emulator?): no time box");
        None
    }
}
