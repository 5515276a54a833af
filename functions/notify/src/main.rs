//! Lambda Notify: the last Task of every execution. Event (from the definition):
//! `{"status": "succeeded" | "failed", "state": <execution state>, "execution_arn"}`.
//! Output: `{"delivered", "channels", "run_closed", "summary"}`. A dead webhook or SNS
//! topic is reported (`delivered: false`), never raised. Configuration:
//! `NOTIFY_WEBHOOK_URL` / `NOTIFY_WEBHOOK_URL_SSM_PARAMETER`, `NOTIFY_SNS_TOPIC_ARN`.

use std::sync::Arc;

use collector_core::jobs::notify::{self, Notifier};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let notifier = match Notifier::from_env().await {
        Ok(n) => Arc::new(n),
        Err(e) => {
            eprintln!("notify: {e}");
            return Err(e.into());
        }
    };
    lambda_common::run(
        "notify",
        lambda_common::SecretNeeds::Database,
        move |ctx, event, _invocation| {
            let notifier = Arc::clone(&notifier);
            async move {
                let report = notify::run(&ctx, &event, &notifier).await?;
                Ok(serde_json::to_value(report).expect("report serialises"))
            }
        },
    )
    .await
}
