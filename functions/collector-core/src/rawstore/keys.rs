//! The raw-store key layout:
//! `{env}/{job}/{run_date}/{run_id}/{unit}.json`, the job run's `manifest.json` beside its
//! objects (`manifest.attempt-N.json` for reruns of a job in the same run) and
//! `{env}/latest.json`. Keys never carry credentials: units are built from API
//! parameters like genre id and page only.

use chrono::NaiveDate;
use uuid::Uuid;

use crate::db::ledger::{Job, JobRun};

#[derive(Debug, Clone)]
pub struct RawKeys {
    env: String,
    job: Job,
    run_date: NaiveDate,
    run_id: Uuid,
    attempt: i32,
}

impl RawKeys {
    pub fn new(env: &str, job: Job, run_date: NaiveDate, run_id: Uuid, attempt: i32) -> Self {
        Self {
            env: env.to_string(),
            job,
            run_date,
            run_id,
            attempt,
        }
    }

    pub fn for_job_run(job_run: &JobRun) -> Self {
        Self::new(
            &job_run.run.env,
            job_run.job,
            job_run.run.run_date,
            job_run.run.run_id,
            job_run.attempt,
        )
    }

    pub fn folder(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.env,
            self.job.as_str(),
            self.run_date,
            self.run_id
        )
    }

    /// `unit` is a short slug such as `genre-0_daily_page-07`.
    pub fn unit(&self, unit: &str) -> String {
        debug_assert!(
            unit.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "unsafe unit slug {unit}"
        );
        format!("{}/{unit}.json", self.folder())
    }

    pub fn manifest(&self) -> String {
        if self.attempt <= 1 {
            format!("{}/manifest.json", self.folder())
        } else {
            format!("{}/manifest.attempt-{}.json", self.folder(), self.attempt)
        }
    }

    pub fn latest(env: &str) -> String {
        format!("{env}/latest.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let run = Uuid::parse_str("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
        let k = RawKeys::new(
            "dev",
            Job::Ranking,
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            run,
            1,
        );
        assert_eq!(k.unit("genre-0_daily_page-01"), "dev/ranking/2026-11-23/6f9619ff-8b86-d011-b42d-00c04fc964ff/genre-0_daily_page-01.json");
        assert_eq!(
            k.manifest(),
            "dev/ranking/2026-11-23/6f9619ff-8b86-d011-b42d-00c04fc964ff/manifest.json"
        );
        let k2 = RawKeys::new(
            "dev",
            Job::IsActive,
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            run,
            3,
        );
        assert!(k2.manifest().ends_with(
            "/is_active/2026-11-23/6f9619ff-8b86-d011-b42d-00c04fc964ff/manifest.attempt-3.json"
        ));
        assert_eq!(RawKeys::latest("prod"), "prod/latest.json");
    }
}
