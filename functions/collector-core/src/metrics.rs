//! CloudWatch embedded metric format (EMF): one JSON log line per job invocation that
//! CloudWatch turns into the `IchibaCollector` metrics the failure-rate alarms watch.

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
}
