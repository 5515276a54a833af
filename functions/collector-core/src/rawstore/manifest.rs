//! `manifest.json` (one per job run: what it stored, with sizes and checksums) and
//! `latest.json` (one per env: the newest complete manifest of each job).
//!
//! Both are written through the store's verified writes: a manifest is stored durably and
//! checked (size, SHA-256) or the write is an error — a 0-byte or partial manifest cannot
//! be published. Manifests written before `kind`/`detail` existed still read: an entry
//! without `kind` is a `response`.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use md5::Md5;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{PutOutcome, RawKeys, RawStore, RawStoreError};
use crate::db::ledger::JobRun;

/// What a manifest entry's object is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A response body the job checked and loaded (the default: older manifests).
    #[default]
    Response,
    /// A malformed response body kept as evidence under a `quarantine/` key; its unit
    /// failed, it was never loaded, and replay skips it.
    Quarantine,
}

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
    /// `response` or `quarantine`; absent in manifests written before quarantine existed.
    #[serde(default)]
    pub kind: EntryKind,
    /// For a quarantined body: why it was rejected (e.g. `malformed JSON: EOF while
    /// parsing at line 1 column 812 after 4 tries`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
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
            kind: EntryKind::Response,
            detail: None,
        }
    }

    /// The entry for a malformed body stored under [`RawKeys::quarantine`]: no records,
    /// `detail` says why it was rejected.
    pub fn quarantine(
        key: String,
        unit: String,
        body: &[u8],
        outcome: PutOutcome,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: EntryKind::Quarantine,
            detail: Some(detail.into()),
            ..Self::new(key, unit, body, 0, outcome)
        }
    }

    pub fn is_quarantine(&self) -> bool {
        self.kind == EntryKind::Quarantine
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
    /// The verdict's inputs, so the raw store alone says what the job run judged (replay
    /// reaches the same verdict): units tried and failed, and the threshold. Absent in
    /// manifests written before replay existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<ManifestVerdict>,
}

/// What a job run judged: its units, its failed units (which ones, and why in one word)
/// and its threshold.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ManifestVerdict {
    pub attempted: i32,
    pub failed: i32,
    pub threshold: f64,
    /// The units that failed after their retries: `ranking genreId=0 page=5` and the error
    /// kind (`server_error`, `client_error`, …). The Item job lists its own in the ledger.
    #[serde(default)]
    pub failures: Vec<FailedUnit>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailedUnit {
    pub unit: String,
    pub error_kind: String,
}

impl ManifestVerdict {
    /// True when the job run's failure rate was over its threshold: it loaded nothing.
    pub fn over_threshold(&self) -> bool {
        self.attempted > 0 && f64::from(self.failed) / f64::from(self.attempted) > self.threshold
    }
}

impl Manifest {
    pub fn new(job_run: &JobRun, mut objects: Vec<ManifestEntry>, complete: bool) -> Self {
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        // A page read twice with the same answer is one object.
        objects.dedup_by(|a, b| a.key == b.key);
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
            verdict: None,
        }
    }

    pub fn with_verdict(mut self, verdict: ManifestVerdict) -> Self {
        self.verdict = Some(verdict);
        self
    }

    /// Reads and parses the manifest stored under `key`; a missing, empty or unparsable
    /// manifest is an error naming the key.
    pub async fn read(store: &dyn RawStore, key: &str) -> Result<Manifest, RawStoreError> {
        let body = store.get(key).await?.ok_or_else(|| RawStoreError::Io {
            key: key.to_string(),
            detail: "no such manifest".into(),
        })?;
        Self::parse(key, &body)
    }

    /// Parses a manifest's bytes; errors name `key`.
    pub fn parse(key: &str, body: &[u8]) -> Result<Manifest, RawStoreError> {
        if body.is_empty() {
            return Err(RawStoreError::Io {
                key: key.to_string(),
                detail: "the manifest is empty (0 bytes)".into(),
            });
        }
        serde_json::from_slice(body).map_err(|e| RawStoreError::Io {
            key: key.to_string(),
            detail: format!("unreadable manifest ({} bytes): {e}", body.len()),
        })
    }

    /// The entries of response bodies (what replay loads), without quarantined bodies.
    pub fn responses(&self) -> impl Iterator<Item = &ManifestEntry> {
        self.objects.iter().filter(|o| !o.is_quarantine())
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
    use crate::jobs::Job;
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
            verdict: None,
        }
    }

    #[test]
    fn old_manifests_still_read_and_quarantine_entries_say_so() {
        let old = r#"{"key":"dev/item/2026-11-23/r/i.json","unit":"item itemCode=a:1","size":2,
            "md5":"99914b932bd37a50b983c5e7c90ae93b",
            "sha256":"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "records":1,"written_at":"2026-11-23T01:02:03Z","outcome":"created"}"#;
        let e: ManifestEntry = serde_json::from_str(old).unwrap();
        assert_eq!(e.kind, EntryKind::Response);
        assert_eq!(e.detail, None);
        assert_eq!(
            e,
            ManifestEntry {
                written_at: e.written_at,
                ..ManifestEntry::new(
                    "dev/item/2026-11-23/r/i.json".into(),
                    "item itemCode=a:1".into(),
                    b"{}",
                    1,
                    PutOutcome::Created
                )
            }
        );

        let q = ManifestEntry::quarantine(
            "dev/item/2026-11-23/r/quarantine/i.0123456789abcdef.json".into(),
            "item itemCode=a:1".into(),
            b"{\"Items\":[",
            PutOutcome::Created,
            "malformed JSON after 4 tries",
        );
        let json = serde_json::to_value(&q).unwrap();
        assert_eq!(json["kind"], "quarantine");
        assert_eq!(json["detail"], "malformed JSON after 4 tries");
        assert_eq!(json["records"], 0);
        let back: ManifestEntry = serde_json::from_value(json).unwrap();
        assert!(back.is_quarantine());
        assert_eq!(back, q);
        assert!(serde_json::to_value(&e).unwrap().get("detail").is_none());

        let err = Manifest::parse("dev/item/2026-11-23/r/manifest.json", b"").unwrap_err();
        assert!(
            err.to_string()
                .contains("dev/item/2026-11-23/r/manifest.json")
                && err.to_string().contains("0 bytes"),
            "{err}"
        );
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
