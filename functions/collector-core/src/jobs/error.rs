//! Job errors. `error_type()` is the name Step Functions matches in `ErrorEquals`
//! (the Lambda handler puts it in the `Diagnostic`), so these names are an interface.

use uuid::Uuid;

use crate::config::ConfigError;
use crate::db::DbError;
use crate::rawstore::RawStoreError;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// More units failed than the job's threshold allows. Not retried by the state machine.
    #[error("{job}: {failed} of {attempted} units failed ({rate:.2}% > threshold {threshold:.2}%){first}", rate = failure_rate * 100.0, threshold = threshold * 100.0, first = first_failure.as_ref().map(|f| format!("; first failure: {f}")).unwrap_or_default())]
    FailureRateExceeded {
        job: String,
        failed: i32,
        attempted: i32,
        failure_rate: f64,
        threshold: f64,
        first_failure: Option<String>,
    },
    /// The event / command-line input is not what the job accepts.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// IsActive's evidence rule: this run's raw manifests are not all in the raw store.
    #[error("evidence missing: {0}; nothing was changed")]
    EvidenceMissing(String),
    #[error("run {0} does not exist in etl_runs")]
    RunNotFound(Uuid),
    /// Guard: another execution of the jobnet in the same environment is still running.
    #[error("concurrent execution: {0}")]
    ConcurrentExecution(String),
    /// The data failed a severe quality check (an item at two ranks, a ranking rebuilt
    /// while read). The rows are stored and flagged; the job run is failed.
    #[error("data quality: {0}")]
    DataQualityFailed(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("raw store: {0}")]
    RawStore(#[from] RawStoreError),
}

impl From<tokio_postgres::Error> for JobError {
    fn from(e: tokio_postgres::Error) -> Self {
        JobError::Database(DbError::Query(e))
    }
}

impl JobError {
    /// The error type Step Functions sees (`ErrorEquals`).
    pub fn error_type(&self) -> &'static str {
        match self {
            JobError::FailureRateExceeded { .. } => "FailureRateExceeded",
            JobError::InvalidInput(_) => "InvalidInput",
            JobError::RunNotFound(_) => "RunNotFound",
            JobError::ConcurrentExecution(_) => "ConcurrentExecution",
            JobError::DataQualityFailed(_) => "DataQualityFailed",
            JobError::EvidenceMissing(_) => "EvidenceMissing",
            JobError::Config(_) => "ConfigError",
            JobError::Database(_) => "DatabaseError",
            JobError::RawStore(RawStoreError::Conflict { .. }) => "RawObjectConflict",
            JobError::RawStore(_) => "RawStoreError",
        }
    }
}

/// The exit status of `collector job` and `collector run` for an error type: one table
/// for both commands (docs/runbook.md, "Exit status").
pub fn exit_code(error_type: &str) -> u8 {
    match error_type {
        // The job ran and judged its data: too many failed units, evidence missing.
        "FailureRateExceeded" | "EvidenceMissing" | "DataQualityFailed" => 1,
        // What was asked cannot be done: bad input, bad configuration, unknown run.
        "InvalidInput" | "ConfigError" | "RunNotFound" => 2,
        "ConcurrentExecution" => 3,
        // The infrastructure failed: database, raw store. Rerunning later may succeed.
        "DatabaseError" | "RawStoreError" | "RawObjectConflict" => 4,
        // Anything else (a state machine runtime error, a Lambda-level error).
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code("FailureRateExceeded"), 1);
        assert_eq!(exit_code("InvalidInput"), 2);
        assert_eq!(exit_code("ConcurrentExecution"), 3);
        assert_eq!(exit_code("DatabaseError"), 4);
        assert_eq!(exit_code("States.Runtime"), 5);
    }
}
