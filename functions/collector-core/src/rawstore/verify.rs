//! Checking manifests against the store: every entry's object must exist with the size
//! and SHA-256 its manifest recorded. `collector verify` and replay use this.
//!
//! Finding manifests needs no database: the key layout `{env}/{job}/{date}/{run}/` is
//! listed. A run id without a date is found by listing the dates each job has (newest
//! first) and probing each for the run's folder; giving the date too skips that search.

use std::fmt;

use bytes::Bytes;
use chrono::NaiveDate;
use futures_util::{stream, StreamExt};
use md5::Md5;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Manifest, ManifestEntry, RawKeys, RawStore, RawStoreError};
use crate::jobs::Job;

/// How many objects are read at once while verifying (S3 round trips overlap).
const PARALLEL_READS: usize = 8;

/// One way a manifest entry does not match the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// No object under the key.
    Missing { key: String },
    /// The object's size differs from the manifest's.
    SizeMismatch {
        key: String,
        expected: u64,
        actual: u64,
    },
    /// Same size, different bytes (SHA-256 or MD5 differs).
    Sha256Mismatch {
        key: String,
        expected: String,
        actual: String,
    },
    /// The object could not be read (store error).
    Unreadable { key: String, detail: String },
    /// The manifest itself is missing, empty or not a manifest.
    BadManifest { key: String, detail: String },
}

impl Problem {
    pub fn key(&self) -> &str {
        match self {
            Problem::Missing { key }
            | Problem::SizeMismatch { key, .. }
            | Problem::Sha256Mismatch { key, .. }
            | Problem::Unreadable { key, .. }
            | Problem::BadManifest { key, .. } => key,
        }
    }

    /// `missing`, `damaged` (size or checksum), `unreadable` or `bad_manifest`.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Missing { .. } => "missing",
            Problem::SizeMismatch { .. } | Problem::Sha256Mismatch { .. } => "damaged",
            Problem::Unreadable { .. } => "unreadable",
            Problem::BadManifest { .. } => "bad_manifest",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { key } => write!(
                f,
                "missing: {key} (listed in the manifest, not in the store)"
            ),
            Problem::SizeMismatch {
                key,
                expected,
                actual,
            } => write!(
                f,
                "damaged: {key}: size {actual} bytes, the manifest says {expected}"
            ),
            Problem::Sha256Mismatch {
                key,
                expected,
                actual,
            } => write!(
                f,
                "damaged: {key}: SHA-256 {actual}, the manifest says {expected}"
            ),
            Problem::Unreadable { key, detail } => write!(f, "unreadable: {key}: {detail}"),
            Problem::BadManifest { key, detail } => write!(f, "bad manifest: {key}: {detail}"),
        }
    }
}

/// Checks one entry's bytes (as read from the store) against the entry.
pub fn check_entry(entry: &ManifestEntry, stored: Option<&[u8]>) -> Option<Problem> {
    let key = entry.key.clone();
    let Some(bytes) = stored else {
        return Some(Problem::Missing { key });
    };
    if bytes.len() as u64 != entry.size {
        return Some(Problem::SizeMismatch {
            key,
            expected: entry.size,
            actual: bytes.len() as u64,
        });
    }
    let sha = hex::encode(Sha256::digest(bytes));
    if !sha.eq_ignore_ascii_case(&entry.sha256) {
        return Some(Problem::Sha256Mismatch {
            key,
            expected: entry.sha256.clone(),
            actual: sha,
        });
    }
    let md5 = hex::encode(Md5::digest(bytes));
    if !md5.eq_ignore_ascii_case(&entry.md5) {
        return Some(Problem::Sha256Mismatch {
            key,
            expected: format!("md5 {}", entry.md5),
            actual: format!("md5 {md5}"),
        });
    }
    None
}

/// Reads an entry's object and checks it against the entry: its bytes when they match
/// (what replay loads), else the problem (missing, damaged, unreadable).
pub async fn read_entry(store: &dyn RawStore, entry: &ManifestEntry) -> Result<Bytes, Problem> {
    match store.get(&entry.key).await {
        Ok(bytes) => match check_entry(entry, bytes.as_deref()) {
            None => Ok(bytes.unwrap_or_default()),
            Some(p) => Err(p),
        },
        Err(e) => Err(Problem::Unreadable {
            key: entry.key.clone(),
            detail: e.to_string(),
        }),
    }
}

/// Reads every object a manifest lists and returns the entries that do not match, in key
/// order. An empty list means every object is present with its recorded size and SHA-256.
pub async fn verify_manifest(store: &dyn RawStore, manifest: &Manifest) -> Vec<Problem> {
    let mut problems: Vec<Problem> = stream::iter(manifest.objects.iter())
        .map(|entry| async move { read_entry(store, entry).await.err() })
        .buffer_unordered(PARALLEL_READS)
        .filter_map(|p| async move { p })
        .collect()
        .await;
    problems.sort_by(|a, b| a.key().cmp(b.key()));
    problems
}

/// Which manifests to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every job run of one JST run date.
    Date(NaiveDate),
    /// Every job of one run; `date` (its JST run date) saves searching for it.
    Run {
        run_id: Uuid,
        date: Option<NaiveDate>,
    },
}

impl Selection {
    /// From command-line values: a run id, a `YYYY-MM-DD` date, or both (at least one).
    pub fn from_args(run_id: Option<Uuid>, date: Option<&str>) -> Result<Selection, String> {
        let date = match date {
            None => None,
            Some(s) => Some(
                s.trim()
                    .parse::<NaiveDate>()
                    .map_err(|e| format!("{s:?} is not a date (YYYY-MM-DD): {e}"))?,
            ),
        };
        match (run_id, date) {
            (Some(run_id), date) => Ok(Selection::Run { run_id, date }),
            (None, Some(d)) => Ok(Selection::Date(d)),
            (None, None) => Err("give a run id or a date (or both)".into()),
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::Date(d) => write!(f, "date {d}"),
            Selection::Run { run_id, date: None } => write!(f, "run {run_id}"),
            Selection::Run {
                run_id,
                date: Some(d),
            } => write!(f, "run {run_id} of {d}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No manifest matched the selection (the message says where it looked).
    #[error("{0}")]
    NothingFound(String),
    #[error(transparent)]
    Store(#[from] RawStoreError),
}

/// The manifests of `selection` in env `env`, in key order (by job, date, run).
pub async fn find_manifests(
    store: &dyn RawStore,
    env: &str,
    selection: &Selection,
) -> Result<Vec<String>, VerifyError> {
    let manifests_in = |keys: Vec<String>| -> Vec<String> {
        keys.into_iter()
            .filter(|k| RawKeys::parse(k).is_some_and(|p| p.is_manifest() && !p.name.contains('/')))
            .collect()
    };
    let mut found = Vec::new();
    match selection {
        Selection::Date(date) => {
            for job in Job::all() {
                found.extend(manifests_in(
                    store.list(&RawKeys::date_prefix(env, job, *date)).await?,
                ));
            }
            if found.is_empty() {
                return Err(VerifyError::NothingFound(format!(
                    "no manifest for env {env} on {date} in {} (looked under {env}/<job>/{date}/)",
                    store.describe()
                )));
            }
        }
        Selection::Run { run_id, date } => {
            let dates = match date {
                Some(d) => vec![*d],
                None => {
                    let mut dates: Vec<NaiveDate> = Vec::new();
                    for job in Job::all() {
                        for name in store.list_folders(&RawKeys::job_prefix(env, job)).await? {
                            if let Ok(d) = name.parse() {
                                dates.push(d);
                            }
                        }
                    }
                    dates.sort_unstable_by(|a, b| b.cmp(a));
                    dates.dedup();
                    dates
                }
            };
            let mut objects_seen = 0usize;
            for d in &dates {
                for job in Job::all() {
                    let keys = store
                        .list(&RawKeys::run_prefix(env, job, *d, *run_id))
                        .await?;
                    objects_seen += keys.len();
                    found.extend(manifests_in(keys));
                }
                if objects_seen > 0 {
                    break; // a run has one date
                }
            }
            if found.is_empty() {
                let where_ = match date {
                    Some(d) => format!("under {env}/<job>/{d}/{run_id}/"),
                    None => format!(
                        "under {env}/<job>/<date>/{run_id}/ for {} dates",
                        dates.len()
                    ),
                };
                return Err(VerifyError::NothingFound(if objects_seen > 0 {
                    format!(
                        "run {run_id} has {objects_seen} objects but no manifest in {} ({where_}): \
                         no job of the run finished",
                        store.describe()
                    )
                } else {
                    format!(
                        "no objects of run {run_id} in env {env} in {} (looked {where_})",
                        store.describe()
                    )
                }));
            }
        }
    }
    Ok(found)
}

/// One manifest's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ManifestCheck {
    pub manifest: String,
    /// Entries listed (quarantined bodies included).
    pub entries: usize,
    pub bytes: u64,
    pub problems: Vec<Problem>,
}

/// The result of [`verify`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub store: String,
    pub env: String,
    pub manifests: Vec<ManifestCheck>,
}

impl VerifyReport {
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.manifests.iter().flat_map(|m| m.problems.iter())
    }

    /// True when every entry of every manifest matched.
    pub fn is_ok(&self) -> bool {
        self.problems().next().is_none()
    }

    pub fn entries(&self) -> usize {
        self.manifests.iter().map(|m| m.entries).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.manifests.iter().map(|m| m.bytes).sum()
    }
}

/// Finds the manifests of `selection` and checks every entry against the store.
pub async fn verify(
    store: &dyn RawStore,
    env: &str,
    selection: &Selection,
) -> Result<VerifyReport, VerifyError> {
    let keys = find_manifests(store, env, selection).await?;
    let mut manifests = Vec::with_capacity(keys.len());
    for key in keys {
        let check = match store.get(&key).await {
            Err(e) => ManifestCheck {
                manifest: key.clone(),
                entries: 0,
                bytes: 0,
                problems: vec![Problem::Unreadable {
                    key,
                    detail: e.to_string(),
                }],
            },
            Ok(body) => match Manifest::parse(&key, body.as_deref().unwrap_or_default()) {
                Err(e) => ManifestCheck {
                    manifest: key.clone(),
                    entries: 0,
                    bytes: 0,
                    problems: vec![Problem::BadManifest {
                        key,
                        detail: match e {
                            RawStoreError::Io { detail, .. } => detail,
                            other => other.to_string(),
                        },
                    }],
                },
                Ok(m) => ManifestCheck {
                    problems: verify_manifest(store, &m).await,
                    manifest: key,
                    entries: m.objects.len(),
                    bytes: m.objects.iter().map(|o| o.size).sum(),
                },
            },
        };
        manifests.push(check);
    }
    Ok(VerifyReport {
        store: store.describe(),
        env: env.to_string(),
        manifests,
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::jobs::Job;
    use crate::rawstore::LocalStore;

    async fn stored_run(
        store: &LocalStore,
        env: &str,
        job: Job,
        date: NaiveDate,
        run_id: Uuid,
        bodies: &[&'static [u8]],
    ) -> (RawKeys, Manifest) {
        let keys = RawKeys::new(env, job, date, run_id, 1);
        let mut objects = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            let key = keys.unit(&format!("u-{i:02}"));
            let outcome = store.put_new(&key, Bytes::from_static(body)).await.unwrap();
            objects.push(ManifestEntry::new(key, format!("u{i}"), body, 1, outcome));
        }
        let n = objects.len();
        let t = Utc::now();
        let manifest = Manifest {
            env: env.into(),
            job: job.as_str().into(),
            run_id,
            run_date: date,
            attempt: 1,
            job_start_at: t,
            created_at: t,
            complete: true,
            object_count: n,
            total_bytes: objects.iter().map(|o| o.size).sum(),
            total_records: n as u64,
            objects,
            verdict: None,
        };
        manifest.write(store, &keys).await.unwrap();
        (keys, manifest)
    }

    #[test]
    fn selection_from_args() {
        let id = Uuid::new_v4();
        let d = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        assert_eq!(
            Selection::from_args(None, Some("2026-11-23")),
            Ok(Selection::Date(d))
        );
        assert_eq!(
            Selection::from_args(Some(id), Some("2026-11-23")),
            Ok(Selection::Run {
                run_id: id,
                date: Some(d)
            })
        );
        assert_eq!(
            Selection::from_args(Some(id), None),
            Ok(Selection::Run {
                run_id: id,
                date: None
            })
        );
        assert!(Selection::from_args(None, None).is_err());
        assert!(Selection::from_args(None, Some("23.11.2026"))
            .unwrap_err()
            .contains("\"23.11.2026\" is not a date"));
    }

    #[tokio::test]
    async fn finds_runs_by_date_or_id_and_names_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_path_buf());
        let d1 = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let d2 = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let (r1, r2) = (Uuid::new_v4(), Uuid::new_v4());
        stored_run(&store, "dev", Job::Ranking, d1, r1, &[b"{\"a\":1}"]).await;
        let (k2, _) = stored_run(
            &store,
            "dev",
            Job::Ranking,
            d2,
            r2,
            &[b"{\"b\":1}", b"{\"b\":2}", b"{\"b\":3}"],
        )
        .await;
        stored_run(&store, "dev", Job::Item, d2, r2, &[b"{\"i\":1}"]).await;

        let by_date = verify(&store, "dev", &Selection::Date(d2)).await.unwrap();
        assert_eq!(by_date.manifests.len(), 2);
        assert_eq!(by_date.entries(), 4);
        assert!(by_date.is_ok(), "{:?}", by_date.manifests);
        let by_run = verify(
            &store,
            "dev",
            &Selection::Run {
                run_id: r1,
                date: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(by_run.manifests.len(), 1);
        assert!(by_run.manifests[0].manifest.contains(&r1.to_string()));

        // One byte changed, one object removed, one truncated.
        let root = dir.path();
        let p0 = root.join(k2.unit("u-00"));
        let mut bytes = std::fs::read(&p0).unwrap();
        bytes[1] ^= 0x20;
        std::fs::remove_file(&p0).unwrap(); // the published file is a hard link: replace it
        std::fs::write(&p0, &bytes).unwrap();
        std::fs::remove_file(root.join(k2.unit("u-01"))).unwrap();
        std::fs::write(root.join(k2.unit("u-02")), b"").unwrap();
        let report = verify(
            &store,
            "dev",
            &Selection::Run {
                run_id: r2,
                date: Some(d2),
            },
        )
        .await
        .unwrap();
        let problems: Vec<_> = report.problems().cloned().collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            matches!(&problems[0], Problem::Sha256Mismatch { key, .. } if *key == k2.unit("u-00"))
        );
        assert_eq!(
            problems[1],
            Problem::Missing {
                key: k2.unit("u-01")
            }
        );
        assert!(matches!(
            &problems[2],
            Problem::SizeMismatch {
                actual: 0,
                expected: 7,
                ..
            }
        ));
        assert!(problems[0]
            .to_string()
            .starts_with("damaged: dev/ranking/2026-11-23/"));

        // A 0-byte manifest (as the old code could leave) is reported, not skipped.
        let bad = RawKeys::new("dev", Job::Genre, d2, r2, 1).manifest();
        std::fs::create_dir_all(root.join(&bad).parent().unwrap()).unwrap();
        std::fs::write(root.join(&bad), b"").unwrap();
        let report = verify(&store, "dev", &Selection::Date(d2)).await.unwrap();
        assert!(report
            .problems()
            .any(|p| matches!(p, Problem::BadManifest { key, detail } if *key == bad && detail.contains("0 bytes"))));

        // Nothing found: a clear error saying where we looked.
        let err = verify(&store, "prod", &Selection::Date(d2))
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::NothingFound(_)));
        assert!(
            err.to_string()
                .contains("no manifest for env prod on 2026-11-23"),
            "{err}"
        );
        let other = Uuid::new_v4();
        let err = verify(
            &store,
            "dev",
            &Selection::Run {
                run_id: other,
                date: None,
            },
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains(&other.to_string()), "{err}");
        // A run with objects but no manifest (killed before any job finished).
        let r3 = Uuid::new_v4();
        store
            .put_new(
                &RawKeys::new("dev", Job::Item, d2, r3, 1).unit("x"),
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        let err = verify(
            &store,
            "dev",
            &Selection::Run {
                run_id: r3,
                date: None,
            },
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("no manifest"), "{err}");
    }
}
