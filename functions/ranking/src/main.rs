//! Lambda JOB-R-01: the Ranking job. Event: `{"run_id": "<uuid>"}` (optional: a new run
//! is opened without it). Output: the job's output document. Errors: `FailureRateExceeded`,
//! `InvalidInput`, `RunNotFound`, `DatabaseError`, `RawStoreError`, `RawObjectConflict`.

use collector_core::jobs::ranking::{self, RankingInput};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_common::run(
        "ranking",
        lambda_common::SecretNeeds::DatabaseAndRakuten,
        |ctx, event, _invocation| async move {
            let input = RankingInput::from_event(event)?;
            let output = ranking::run(&ctx, input).await?;
            Ok(serde_json::to_value(output).expect("output serialises"))
        },
    )
    .await
}
