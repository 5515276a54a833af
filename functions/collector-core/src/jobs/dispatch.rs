//! One door to every job: the Lambda handlers, the CLI and the local state-machine runner
//! call jobs by name with an event, and get the output document back. How each job reads
//! its event is in its row of [`super::JOBS`].

use std::time::SystemTime;

use serde_json::Value;

use super::{AppContext, Job, JobError};

/// Runs `job` with a Lambda-style event. `deadline` bounds time-boxed jobs (Item).
pub async fn dispatch(
    ctx: &AppContext,
    job: Job,
    event: Value,
    deadline: Option<SystemTime>,
) -> Result<Value, JobError> {
    if let Some(deadline) = deadline {
        let left = deadline
            .duration_since(SystemTime::now())
            .map_or(0.0, |d| d.as_secs_f64());
        tracing::debug!(job = %job, deadline_in_s = left, "invocation deadline");
    }
    // Time-boxed work (Item) stops taking new units a margin before the deadline.
    let stop_at = deadline.and_then(|d| d.checked_sub(ctx.config.item.deadline_margin));
    let out = (job.spec().run)(ctx, event, stop_at).await?;
    Ok(serde_json::to_value(out).expect("output serialises"))
}
