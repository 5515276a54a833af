//! Lambda JOB-A-01: the IsActive job. Event: `{"run_id": "<uuid>"}`. Output counts
//! activated / deactivated / unchanged items. Errors: `EvidenceMissing` (this run's
//! Ranking or Item manifest is not in the raw store; nothing changed), `InvalidInput`,
//! `RunNotFound`, `DatabaseError`.

use collector_core::jobs::Job;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_common::run(
        "is-active",
        lambda_common::SecretNeeds::Database,
        |ctx, event, _invocation| async move {
            collector_core::jobs::dispatch(&ctx, Job::IsActive, event, None).await
        },
    )
    .await
}
