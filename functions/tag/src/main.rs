//! Lambda JOB-T-01: the Tag job. Event: `{"run_id": "<uuid>"}` (required: the run whose
//! ranked items' tags are refreshed). Output: the job's output document, with
//! `rows.rakuten_tag_groups`, `rows.rakuten_tags` and `extra.targets`/`extra.missing`.
//! Errors: `FailureRateExceeded`, `InvalidInput`, `RunNotFound`, `DatabaseError`,
//! `RawStoreError`, `RawObjectConflict`.

use collector_core::jobs::Job;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_common::run(
        "tag",
        lambda_common::SecretNeeds::DatabaseAndRakuten,
        |ctx, event, _invocation| async move {
            collector_core::jobs::dispatch(&ctx, Job::Tag, event, None).await
        },
    )
    .await
}
