//! Lambda JOB-R-01: the Ranking job. Event: `{"run_id": "<uuid>"}` (optional: a new run
//! is opened without it). Output: the job's output document. Errors: `FailureRateExceeded`,
//! `DataQualityFailed`, `InvalidInput`, `RunNotFound`, `DatabaseError`, `RawStoreError`,
//! `RawObjectConflict`.

use collector_core::jobs::Job;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_common::run(
        "ranking",
        lambda_common::SecretNeeds::DatabaseAndRakuten,
        |ctx, event, _invocation| async move {
            collector_core::jobs::dispatch(&ctx, Job::Ranking, event, None).await
        },
    )
    .await
}
