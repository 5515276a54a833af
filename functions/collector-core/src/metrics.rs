//! CloudWatch embedded metric format (EMF): one JSON log line per job invocation that
//! CloudWatch turns into the `IchibaCollector` metrics the failure-rate alarms watch.
//!
//! The line must survive Lambda's log-level filter (LoggingConfig.ApplicationLogLevel):
//! Lambda reads a JSON line without a valid `"level"` as INFO, so a WARN or ERROR
//! function level would drop it and the alarms would go silent. [`metrics_line`] gives
//! it the function's own minimum level, which the filter always keeps.

use serde_json::{json, Value};

use crate::jobs::{JobError, JobOutput};

pub const NAMESPACE: &str = "IchibaCollector";

/// The EMF document for a finished invocation.
pub fn emf(
    env: &str,
    job: &str,
    failure_rate: f64,
    attempted: i32,
    failed: i32,
    rows_written: i32,
    now_ms: i64,
) -> Value {
    json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Env", "Job"]],
                "Metrics": [
                    {"Name": "FailureRate", "Unit": "None"},
                    {"Name": "UnitsAttempted", "Unit": "Count"},
                    {"Name": "UnitsFailed", "Unit": "Count"},
                    {"Name": "RowsWritten", "Unit": "Count"}
                ]
            }]
        },
        "Env": env,
        "Job": job,
        "FailureRate": failure_rate,
        "UnitsAttempted": attempted,
        "UnitsFailed": failed,
        "RowsWritten": rows_written
    })
}

/// Lambda's log levels, least to most severe (the filter keeps a line whose level is at
/// least the configured one).
pub const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

fn rank(level: &str) -> Option<usize> {
    LEVELS.iter().position(|l| l.eq_ignore_ascii_case(level))
}

/// The level a metrics line carries: the function's configured minimum
/// (`AWS_LAMBDA_LOG_LEVEL`, which Lambda sets from ApplicationLogLevel), so the filter
/// never drops it. Unset or unknown: FATAL, which passes any filter.
pub fn line_level(configured: Option<&str>) -> &'static str {
    configured
        .and_then(rank)
        .map(|i| LEVELS[i])
        .unwrap_or("FATAL")
}

/// Whether Lambda's filter at `configured` keeps a JSON log line, as documented: a
/// missing or invalid `"level"` counts as INFO.
pub fn lambda_keeps(line: &Value, configured: &str) -> bool {
    let level = line
        .get("level")
        .and_then(Value::as_str)
        .and_then(rank)
        .unwrap_or(2);
    rank(configured).is_none_or(|min| level >= min)
}

/// The log line for a metrics document: with the EMF block when `emit_metrics` (custom
/// metrics are billed, so only with DetailedMonitoring), otherwise the same counts as a
/// plain JSON line for Logs Insights. Either way at [`line_level`].
pub fn metrics_line(mut doc: Value, configured_level: Option<&str>, emit_metrics: bool) -> Value {
    if let Some(obj) = doc.as_object_mut() {
        if !emit_metrics {
            obj.remove("_aws");
        }
        obj.insert("level".into(), line_level(configured_level).into());
        obj.insert("message".into(), "job metrics".into());
    }
    doc
}

/// EMF for a job's output document.
pub fn for_output(env: &str, out: &JobOutput) -> Value {
    let rows = out.total_rows();
    emf(
        env,
        &out.job,
        out.failure_rate,
        out.units.attempted,
        out.units.failed,
        rows.inserted + rows.updated,
        chrono::Utc::now().timestamp_millis(),
    )
}

/// EMF for a failed job, when the failure carries counts.
pub fn for_error(env: &str, e: &JobError) -> Option<Value> {
    match e {
        JobError::FailureRateExceeded {
            job,
            failed,
            attempted,
            failure_rate,
            ..
        } => Some(emf(
            env,
            job,
            *failure_rate,
            *attempted,
            *failed,
            0,
            chrono::Utc::now().timestamp_millis(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_shape() {
        let v = emf("dev", "ranking", 0.02, 100, 2, 5, 1);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "IchibaCollector"
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
            json!(["Env", "Job"])
        );
        assert_eq!(v["FailureRate"], 0.02);
        assert_eq!(v["Job"], "ranking");
        // Every declared metric has a value at the top level.
        for m in v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
        {
            assert!(v.get(m["Name"].as_str().unwrap()).is_some());
        }
    }

    #[test]
    fn metrics_are_kept_at_log_level_error() {
        let doc = emf("prod", "item", 0.5, 10, 5, 0, 1);
        // The old line (no level) is what Lambda dropped at ERROR.
        assert!(!lambda_keeps(&doc, "ERROR"));
        let line = metrics_line(doc, Some("ERROR"), true);
        assert!(lambda_keeps(&line, "ERROR"));
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(line["FailureRate"], 0.5);
    }

    #[test]
    fn metrics_are_kept_at_every_level_and_without_one() {
        for level in LEVELS {
            let line = metrics_line(emf("dev", "tag", 0.0, 1, 0, 1, 1), Some(level), true);
            assert!(lambda_keeps(&line, level), "{level}");
            // Lower-case values, as a template or operator may write them.
            let lower = level.to_ascii_lowercase();
            let line = metrics_line(emf("dev", "tag", 0.0, 1, 0, 1, 1), Some(&lower), true);
            assert!(lambda_keeps(&line, level), "{lower}");
        }
        let line = metrics_line(emf("dev", "tag", 0.0, 1, 0, 1, 1), None, true);
        assert_eq!(line["level"], "FATAL");
        assert!(LEVELS.iter().all(|l| lambda_keeps(&line, l)));
    }

    #[test]
    fn without_detailed_monitoring_no_metric_is_created() {
        let line = metrics_line(emf("dev", "genre", 0.25, 4, 1, 3, 1), Some("INFO"), false);
        assert!(line.get("_aws").is_none());
        assert_eq!(line["UnitsFailed"], 1);
        assert_eq!(line["Job"], "genre");
        assert!(lambda_keeps(&line, "INFO"));
    }
}
