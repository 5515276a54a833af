//! Lambda Guard: the first state of the jobnet. Event (from the definition):
//! `{"input": <execution input>, "state_machine_arn", "execution_arn",
//! "execution_start_time", "max_waits"}`. Output: `{"run_id", "start_at", "proceed",
//! "waits", "waiting_for"}`. Errors: `ConcurrentExecution` (another execution still
//! running after `max_waits` checks), `InvalidInput`, `RunNotFound`, `DatabaseError`,
//! `ConfigError` (ListExecutions refused).

use std::sync::Arc;

use collector_core::jobs::guard::{self, StepFunctionsConcurrency};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let sfn = Arc::new(StepFunctionsConcurrency::from_env().await);
    lambda_common::run(
        "guard",
        lambda_common::SecretNeeds::Database,
        move |ctx, event, _invocation| {
            let sfn = Arc::clone(&sfn);
            async move { guard::handle(&ctx, event, sfn.as_ref()).await }
        },
    )
    .await
}
