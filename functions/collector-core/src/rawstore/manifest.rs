//! `manifest.json` (one per job run: what it stored, with sizes and checksums) and
//! `latest.json` (one per env: the newest complete manifest of each job).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use md5::Md5;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{PutOutcome, RawKeys, RawStore, RawStoreError};
use crate::db::ledger::JobRun;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ManifestEntry {
    pub key: String,
    pub unit: String,
    pub size: u64,
    pub md5: String,
    pub sha256: String,
    pub records: u64,
    pub written_at: DateTime<Utc>,
    /// `created`, or `identical` when a rerun found the same bytes already stored.
    pub outcome: PutOutcome,
}

impl ManifestEntry {
    pub fn new(key: String, unit: String, body: &[u8], records: u64, outcome: PutOutcome) -> Self {
        Self {
            key,
            unit,
            size: body.len() as u64,
            md5: hex::encode(Md5::digest(body)),
            sha256: hex::encode(Sha256::digest(body)),
            records,
            written_at: Utc::now(),
            outcome,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub env: String,
    pub job: String,
    pub run_id: Uuid,
    pub run_date: chrono::NaiveDate,
    pub attempt: i32,
    pub job_start_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// True when every unit of the job was stored (no failed unit).
    pub complete: bool,
    pub object_count: usize,
    pub total_bytes: u64,
    pub total_records: u64,
    pub objects: Vec<ManifestEntry>,
}

impl Manifest {
    pub fn new(job_run: &JobRun, mut objects: Vec<ManifestEntry>, complete: bool) -> Self {
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Self {
            env: job_run.run.env.clone(),
            job: job_run.job.as_str().to_string(),
            run_id: job_run.run.run_id,
            run_date: job_run.run.run_date,
            attempt: job_run.attempt,
            job_start_at: job_run.job_start_at,
            created_at: Utc::now(),
            complete,
            object_count: objects.len(),
            total_bytes: objects.iter().map(|o| o.size).sum(),
            total_records: objects.iter().map(|o| o.records).sum(),
            objects,
        }
    }

    /// Writes the manifest (create-only) and returns its key. When an earlier invocation
    /// of the same attempt died after writing its manifest, this one is written beside it
    /// (`manifest.1.json`, …) rather than over it.
    pub async fn write(
        &self,
        store: &dyn RawStore,
        keys: &RawKeys,
    ) -> Result<String, RawStoreError> {
        let body = Bytes::from(serde_json::to_vec_pretty(self).expect("manifest serialises"));
        let base = keys.manifest();
        let mut key = base.clone();
        for n in 1..=20 {
            match store.put_new(&key, body.clone()).await {
                Ok(_) => return Ok(key),
                Err(RawStoreError::Conflict { .. }) => {
                    key = format!("{}.{n}.json", base.trim_end_matches(".json"))
                }
                Err(e) => return Err(e),
            }
        }
        store.put_new(&key, body).await?;
        Ok(key)
    }
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Latest {
    pub env: String,
    pub updated_at: Option<DateTime<Utc>>,
    /// Job name → its newest complete manifest.
    pub jobs: std::collections::BTreeMap<String, LatestEntry>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LatestEntry {
    pub run_id: Uuid,
    pub run_date: chrono::NaiveDate,
    pub manifest: String,
    pub completed_at: DateTime<Utc>,
}

impl Latest {
    pub async fn read(store: &dyn RawStore, env: &str) -> Result<Latest, RawStoreError> {
        let key = RawKeys::latest(env);
        match store.get(&key).await? {
            None => Ok(Latest {
                env: env.to_string(),
                ..Default::default()
            }),
            Some(b) => serde_json::from_slice(&b).map_err(|e| RawStoreError::Io {
                key,
                detail: format!("unreadable latest.json: {e}"),
            }),
        }
    }

    /// Points `latest.json` at a job run's manifest (read, modify, replace).
    pub async fn record(
        store: &dyn RawStore,
        job_run: &JobRun,
        manifest_key: &str,
    ) -> Result<(), RawStoreError> {
        let env = &job_run.run.env;
        let mut latest = Latest::read(store, env).await?;
        let now = Utc::now();
        latest.env = env.clone();
        latest.updated_at = Some(now);
        latest.jobs.insert(
            job_run.job.as_str().to_string(),
            LatestEntry {
                run_id: job_run.run.run_id,
                run_date: job_run.run.run_date,
                manifest: manifest_key.to_string(),
                completed_at: now,
            },
        );
        let body = serde_json::to_vec_pretty(&latest).expect("latest serialises");
        store
            .put_replace(&RawKeys::latest(env), Bytes::from(body))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ledger::Job;
    use crate::rawstore::LocalStore;

    fn manifest(run_id: Uuid, created_at: DateTime<Utc>) -> Manifest {
        Manifest {
            env: "local".into(),
            job: "ranking".into(),
            run_id,
            run_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            attempt: 1,
            job_start_at: created_at,
            created_at,
            complete: true,
            object_count: 0,
            total_bytes: 0,
            total_records: 0,
            objects: vec![],
        }
    }

    #[tokio::test]
    async fn a_second_manifest_of_the_same_attempt_goes_beside_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_path_buf());
        let run_id = Uuid::new_v4();
        let keys = RawKeys::new(
            "local",
            Job::Ranking,
            chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            run_id,
            1,
        );
        let t = Utc::now();
        let first = manifest(run_id, t).write(&store, &keys).await.unwrap();
        assert!(first.ends_with("/manifest.json"));
        // The same content again (a rerun): the same key.
        assert_eq!(
            manifest(run_id, t).write(&store, &keys).await.unwrap(),
            first
        );
        // Another invocation's manifest: written beside, the first untouched.
        let later = manifest(run_id, t + chrono::TimeDelta::seconds(5))
            .write(&store, &keys)
            .await
            .unwrap();
        assert!(later.ends_with("/manifest.1.json"), "{later}");
        let kept: Manifest =
            serde_json::from_slice(&store.get(&first).await.unwrap().unwrap()).unwrap();
        assert_eq!(kept.created_at, t);
    }
}
