//! Lambda JOB-I-01: the Item job. Event: `{"run_id": "<uuid>"}`. Time-boxed: it stops
//! `ITEM_DEADLINE_MARGIN_SECS` before the invocation's deadline and returns
//! `{"done": false, …}`; the state machine invokes it again until `done` is true.
//! Errors: `FailureRateExceeded` (> 5 %), `InvalidInput`, `RunNotFound`, `DatabaseError`, `RawStoreError`.

use collector_core::jobs::Job;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_common::run(
        "item",
        lambda_common::SecretNeeds::DatabaseAndRakuten,
        |ctx, event, invocation| async move {
            collector_core::jobs::dispatch(&ctx, Job::Item, event, invocation.deadline).await
        },
    )
    .await
}
