//! The jobnet's jobs, in one table. Everything that lists jobs (the ledger, the raw-store
//! layout, the one job door, Notify, Guard's resume points, the CLI's tables and the
//! local state-machine runner) derives from [`JOBS`]; adding a job starts here.

use std::time::SystemTime;

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::config::Config;

use super::{genre, is_active, item, ranking, tag, AppContext, JobError, JobOutput, RunInput};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    Ranking,
    Item,
    Genre,
    Tag,
    IsActive,
}

/// Runs a job from its Lambda-style event; `stop_at` is when a time-boxed job (Item)
/// stops taking new work.
pub type RunFn = for<'a> fn(
    &'a AppContext,
    Value,
    Option<SystemTime>,
) -> BoxFuture<'a, Result<JobOutput, JobError>>;

/// One job: its names everywhere and how it runs. (Its function's substitution in the
/// definition is `<state>FunctionArn`, listed in statemachine/substitutions.json.)
pub struct JobSpec {
    pub job: Job,
    /// In the ledger (`etl_job_runs.job`), raw-store keys, events and the CLI.
    pub name: &'static str,
    /// Its Task state in statemachine/jobnet.asl.json.
    pub state: &'static str,
    /// Where a manual rerun or a resumed run starts to get this job done (the
    /// definition's `Route` Choice): jobs sharing a stage run in parallel.
    pub stage: &'static str,
    /// Where the state machine keeps its result (Notify reads it).
    pub result_path: &'static [&'static str],
    /// Whether it calls the Rakuten API (and so keeps raw responses).
    pub fetches: bool,
    pub threshold: fn(&Config) -> f64,
    pub run: RunFn,
}

/// The jobs in jobnet order.
pub const JOBS: [JobSpec; 5] = [
    JobSpec {
        job: Job::Ranking,
        name: "ranking",
        state: "Ranking",
        stage: "ranking",
        result_path: &["ranking"],
        fetches: true,
        threshold: |c| c.ranking_failure_threshold,
        run: |ctx, event, _| {
            Box::pin(
                async move { ranking::run(ctx, ranking::RankingInput::from_event(event)?).await },
            )
        },
    },
    JobSpec {
        job: Job::Item,
        name: "item",
        state: "Item",
        stage: "item",
        result_path: &["item"],
        fetches: true,
        threshold: |c| c.item.failure_threshold,
        run: |ctx, event, stop_at| {
            Box::pin(async move {
                item::run(ctx, RunInput::from_event(Job::Item, event)?, stop_at).await
            })
        },
    },
    JobSpec {
        job: Job::Genre,
        name: "genre",
        state: "Genre",
        stage: "genre_tag",
        result_path: &["genre_tag", "genre"],
        fetches: true,
        threshold: |c| c.genre_failure_threshold,
        run: |ctx, event, _| {
            Box::pin(async move { genre::run(ctx, RunInput::from_event(Job::Genre, event)?).await })
        },
    },
    JobSpec {
        job: Job::Tag,
        name: "tag",
        state: "Tag",
        stage: "genre_tag",
        result_path: &["genre_tag", "tag"],
        fetches: true,
        threshold: |c| c.tag_failure_threshold,
        run: |ctx, event, _| {
            Box::pin(async move { tag::run(ctx, RunInput::from_event(Job::Tag, event)?).await })
        },
    },
    JobSpec {
        job: Job::IsActive,
        name: "is_active",
        state: "IsActive",
        stage: "is_active",
        result_path: &["is_active"],
        fetches: false,
        threshold: |_| 0.0,
        run: |ctx, event, _| {
            Box::pin(async move {
                is_active::run(ctx, RunInput::from_event(Job::IsActive, event)?).await
            })
        },
    },
];

impl Job {
    pub fn spec(self) -> &'static JobSpec {
        JOBS.iter()
            .find(|s| s.job == self)
            .expect("every job is in JOBS")
    }

    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// Every job, in jobnet order.
    pub fn all() -> impl Iterator<Item = Job> {
        JOBS.iter().map(|s| s.job)
    }

    /// The job named `name` (`is-active` is accepted for `is_active`, as the CLI spells it).
    pub fn named(name: &str) -> Option<Job> {
        let name = name.trim().replace('-', "_");
        JOBS.iter().find(|s| s.name == name).map(|s| s.job)
    }
}

impl std::fmt::Display for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Job {
    type Err = JobError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Job::named(s).ok_or_else(|| {
            let names: Vec<&str> = JOBS.iter().map(|s| s.name).collect();
            JobError::InvalidInput(format!(
                "unknown job {s:?}; expected one of {}",
                names.join(", ")
            ))
        })
    }
}

/// The stages of the jobnet in order (`ranking`, `item`, `genre_tag`, `is_active`).
pub fn stages() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for s in &JOBS {
        if !out.contains(&s.stage) {
            out.push(s.stage);
        }
    }
    out
}

/// The first stage with a job not in `done`: where a resumed run continues.
pub fn first_unfinished(done: &[Job]) -> Option<&'static str> {
    JOBS.iter()
        .find(|s| !done.contains(&s.job))
        .map(|s| s.stage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stages_and_resume_points() {
        assert_eq!(
            Job::all().map(Job::as_str).collect::<Vec<_>>(),
            ["ranking", "item", "genre", "tag", "is_active"]
        );
        assert_eq!(Job::named("is-active"), Some(Job::IsActive));
        assert_eq!("genre".parse::<Job>().unwrap(), Job::Genre);
        assert!("weather".parse::<Job>().is_err());
        assert_eq!(stages(), ["ranking", "item", "genre_tag", "is_active"]);
        assert_eq!(first_unfinished(&[]), Some("ranking"));
        assert_eq!(
            first_unfinished(&[Job::Ranking, Job::Item, Job::Genre]),
            Some("genre_tag")
        );
        assert_eq!(first_unfinished(&Job::all().collect::<Vec<_>>()), None);
        assert!(JOBS
            .iter()
            .all(|s| s.state.to_lowercase().replace('_', "") == s.name.replace('_', "")));
    }

    /// Each job's function is a substitution of the definition, named `<State>FunctionArn`,
    /// whose local value (the function the local runner calls) is the job's name.
    #[test]
    fn every_job_is_a_substitution_of_the_definition() {
        let subs: std::collections::HashMap<String, String> =
            serde_json::from_str(include_str!("../../../../statemachine/substitutions.json"))
                .unwrap();
        for s in &JOBS {
            assert_eq!(
                subs.get(&format!("{}FunctionArn", s.state))
                    .map(String::as_str),
                Some(s.name),
                "{}",
                s.name
            );
        }
    }
}
