//! One door to every job: the Lambda handlers, the CLI and the local state-machine runner
//! call jobs by name with an event, and get the output document back.

use std::time::SystemTime;

use serde_json::Value;

use crate::db::ledger::Job;

use super::{genre, is_active, item, ranking, tag, AppContext, JobError, RunInput};

impl std::str::FromStr for Job {
    type Err = JobError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ranking" => Ok(Job::Ranking),
            "item" => Ok(Job::Item),
            "genre" => Ok(Job::Genre),
            "tag" => Ok(Job::Tag),
            "is_active" | "is-active" => Ok(Job::IsActive),
            other => Err(JobError::InvalidInput(format!("unknown job {other:?}"))),
        }
    }
}

/// Runs `job` with a Lambda-style event. `deadline` bounds time-boxed jobs (Item).
pub async fn dispatch(
    ctx: &AppContext,
    job: Job,
    event: Value,
    deadline: Option<SystemTime>,
) -> Result<Value, JobError> {
    let out = match job {
        Job::Ranking => ranking::run(ctx, ranking::RankingInput::from_event(event)?).await?,
        Job::Item => {
            // Stop taking new items a margin before the Lambda deadline.
            let stop_at = deadline.and_then(|d| d.checked_sub(ctx.config.item.deadline_margin));
            if let Some(deadline) = deadline {
                let left = |t: SystemTime| {
                    t.duration_since(SystemTime::now())
                        .map_or(0.0, |d| d.as_secs_f64())
                };
                tracing::debug!(
                    deadline_in_s = left(deadline),
                    work_for_s = stop_at.map_or(0.0, left),
                    "item time box"
                );
            }
            item::run(ctx, RunInput::from_event(job, event)?, stop_at).await?
        }
        Job::Genre => genre::run(ctx, RunInput::from_event(job, event)?).await?,
        Job::Tag => tag::run(ctx, RunInput::from_event(job, event)?).await?,
        Job::IsActive => is_active::run(ctx, RunInput::from_event(job, event)?).await?,
    };
    Ok(serde_json::to_value(out).expect("output serialises"))
}
