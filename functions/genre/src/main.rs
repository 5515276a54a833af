//! Lambda JOB-G-01: the Genre job. Event: `{"run_id": "<uuid>"}` (required: the run whose
//! ranked items' genres are refreshed). Output: the job's output document, with
//! `rows.rakuten_genres` and `extra.targets`. Errors: `FailureRateExceeded`,
//! `InvalidInput`, `RunNotFound`, `DatabaseError`, `RawStoreError`, `RawObjectConflict`.

use collector_core::jobs::Job;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_common::run(
        "genre",
        lambda_common::SecretNeeds::DatabaseAndRakuten,
        |ctx, event, _invocation| async move {
            collector_core::jobs::dispatch(&ctx, Job::Genre, event, None).await
        },
    )
    .await
}
