//! The raw-store key layout:
//! `{env}/{job}/{run_date}/{run_id}/{unit}.json` (a later, different answer for the same unit
//! beside it as `{unit}.{sha256-prefix}.json`), the job run's `manifest.json` beside its
//! objects (`manifest.attempt-N.json` for reruns of a job in the same run; a second
//! manifest of the same attempt goes beside it as `manifest.1.json`, …), malformed bodies
//! under `{env}/{job}/{run_date}/{run_id}/quarantine/{unit}.{sha256-prefix}.json`, and
//! `{env}/latest.json`. Keys never carry credentials: units are built from API
//! parameters like genre id and page only. `run_date` is the run's JST date.

use chrono::NaiveDate;
use uuid::Uuid;

use crate::db::ledger::JobRun;
use crate::jobs::Job;

/// A raw-store key taken apart: `{env}/{job}/{run_date}/{run_id}/{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParts {
    pub env: String,
    /// The job segment as written (`ranking`, `item`, `genre`, `tag`, `is_active`).
    pub job: String,
    pub run_date: NaiveDate,
    pub run_id: Uuid,
    /// The rest: `genre-0_daily_page-01.json`, `manifest.json`, `quarantine/….json`.
    pub name: String,
}

impl KeyParts {
    /// The job, when the segment names one.
    pub fn job(&self) -> Option<Job> {
        Job::named(&self.job)
    }

    /// True for a job run's manifest (`manifest.json`, `manifest.attempt-N.json`,
    /// `manifest.N.json`, `manifest.attempt-N.M.json`).
    pub fn is_manifest(&self) -> bool {
        RawKeys::is_manifest_name(&self.name)
    }

    /// True for a quarantined (malformed) body.
    pub fn is_quarantine(&self) -> bool {
        self.name.starts_with("quarantine/")
    }
}

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

    /// `unit` is the request's key name (path-safe), such as `genre-0_daily_page-07`.
    pub fn unit(&self, unit: &str) -> String {
        debug_assert!(
            unit.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "unsafe key name {unit}"
        );
        format!("{}/{unit}.json", self.folder())
    }

    /// The key for another body of `unit` than the one already kept under
    /// [`RawKeys::unit`] (a rerun or resumed run that got a different answer): beside it,
    /// named by the first 16 hex digits of the body's SHA-256.
    pub fn revision(&self, unit: &str, body: &[u8]) -> String {
        let sha = super::sha256_hex(body);
        format!(
            "{}.{}.json",
            self.unit(unit).trim_end_matches(".json"),
            &sha[..16]
        )
    }

    pub fn manifest(&self) -> String {
        if self.attempt <= 1 {
            format!("{}/manifest.json", self.folder())
        } else {
            format!("{}/manifest.attempt-{}.json", self.folder(), self.attempt)
        }
    }

    /// The key for a malformed response body of `unit` (kept as evidence, never loaded).
    /// The name carries the first 16 hex digits of the body's SHA-256, so a resumed or
    /// repeated job run that gets another malformed body stores it beside the first
    /// instead of conflicting with it, and the same body again is an identical rerun.
    pub fn quarantine(&self, unit: &str, body: &[u8]) -> String {
        debug_assert!(
            unit.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "unsafe key name {unit}"
        );
        let sha = super::sha256_hex(body);
        format!("{}/quarantine/{unit}.{}.json", self.folder(), &sha[..16])
    }

    pub fn latest(env: &str) -> String {
        format!("{env}/latest.json")
    }

    /// `{env}/{job}/`: every day of one job.
    pub fn job_prefix(env: &str, job: Job) -> String {
        format!("{env}/{}/", job.as_str())
    }

    /// `{env}/{job}/{run_date}/`: every run of one job on one JST date.
    pub fn date_prefix(env: &str, job: Job, run_date: NaiveDate) -> String {
        format!("{env}/{}/{run_date}/", job.as_str())
    }

    /// `{env}/{job}/{run_date}/{run_id}/`: one job run's objects and manifests.
    pub fn run_prefix(env: &str, job: Job, run_date: NaiveDate, run_id: Uuid) -> String {
        format!("{env}/{}/{run_date}/{run_id}/", job.as_str())
    }

    /// Takes a key apart; `None` for keys outside the layout (`latest.json`, strays).
    pub fn parse(key: &str) -> Option<KeyParts> {
        let mut it = key.splitn(5, '/');
        let env = it.next()?;
        let job = it.next()?;
        let run_date = it.next()?.parse().ok()?;
        let run_id = Uuid::parse_str(it.next()?).ok()?;
        let name = it.next()?;
        if env.is_empty() || job.is_empty() || name.is_empty() {
            return None;
        }
        Some(KeyParts {
            env: env.to_string(),
            job: job.to_string(),
            run_date,
            run_id,
            name: name.to_string(),
        })
    }

    /// True for a manifest's file name (see [`KeyParts::is_manifest`]).
    pub fn is_manifest_name(name: &str) -> bool {
        let Some(mid) = name
            .strip_prefix("manifest")
            .and_then(|r| r.strip_suffix(".json"))
        else {
            return false;
        };
        // "", ".N", ".attempt-N", ".attempt-N.M"
        let mid = mid.strip_prefix(".attempt-").unwrap_or(mid);
        let mid = mid.strip_prefix('.').unwrap_or(mid);
        mid.split('.')
            .all(|p| p.is_empty() || p.bytes().all(|b| b.is_ascii_digit()))
            && mid.split('.').count() <= 2
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

    #[test]
    fn quarantine_and_parse() {
        let run = Uuid::parse_str("6f9619ff-8b86-d011-b42d-00c04fc964ff").unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let k = RawKeys::new("dev", Job::Item, date, run, 2);
        let q = k.quarantine("item-shop_123", b"{\"Items\":[");
        assert!(
            q.starts_with("dev/item/2026-11-23/6f9619ff-8b86-d011-b42d-00c04fc964ff/quarantine/item-shop_123.")
                && q.ends_with(".json"),
            "{q}"
        );
        assert_eq!(q, k.quarantine("item-shop_123", b"{\"Items\":["));
        assert_ne!(q, k.quarantine("item-shop_123", b"{\"Items\":[{"));
        let p = RawKeys::parse(&q).unwrap();
        assert_eq!(p.env, "dev");
        assert_eq!(p.job(), Some(Job::Item));
        assert_eq!(p.run_date, date);
        assert_eq!(p.run_id, run);
        assert!(p.is_quarantine() && !p.is_manifest());
        assert!(RawKeys::parse(&k.manifest()).unwrap().is_manifest());
        assert_eq!(
            RawKeys::run_prefix("dev", Job::Item, date, run),
            format!("{}/", k.folder())
        );
        assert_eq!(
            RawKeys::date_prefix("dev", Job::IsActive, date),
            "dev/is_active/2026-11-23/"
        );
        assert_eq!(RawKeys::job_prefix("dev", Job::Tag), "dev/tag/");
        assert!(RawKeys::parse("dev/latest.json").is_none());
        assert!(RawKeys::parse("dev/item/2026-11-23/not-a-uuid/x.json").is_none());
        for name in [
            "manifest.json",
            "manifest.1.json",
            "manifest.attempt-3.json",
            "manifest.attempt-3.2.json",
        ] {
            assert!(RawKeys::is_manifest_name(name), "{name}");
        }
        for name in [
            "manifest",
            "manifest.x.json",
            "manifests.json",
            "genre-0_daily_page-01.json",
            "manifest.attempt-.json.tmp",
            "manifest.1.2.3.json",
        ] {
            assert!(!RawKeys::is_manifest_name(name), "{name}");
        }
    }
}
