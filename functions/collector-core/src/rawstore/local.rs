//! The local-directory raw store (the default on a developer's machine).
//!
//! A write goes to a temporary file `.tmp-{pid}-{random}-{name}` in the object's directory:
//! `write_all`, `flush` and `fsync` (plain `std::fs` on a blocking thread, so every
//! error is seen — tokio's `File` reports a failed background write late or not at all),
//! then its size and SHA-256 are read back and checked, and only then is it published
//! under its key with a hard link (create-only: `link` fails when the key exists) and the
//! directory fsynced. On any failure the temporary file is removed and the error names
//! the key; nothing is ever visible under the key that was not verified.
//!
//! Temporary files left by a killed process are removed at the next write in the same
//! directory (once per directory and store): a temp file whose process is gone, or that is
//! older than [`STALE_TEMP_AGE`], is deleted. [`LocalStore::remove_stale_temp_files`]
//! sweeps a whole tree on demand.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{compare_existing, PutOutcome, RawStore, RawStoreError};

/// A temporary file older than this is removed even when its process still seems alive
/// (a recycled PID, or a writer on another host sharing the directory).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(15 * 60);

const TEMP_PREFIX: &str = ".tmp-";

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    /// Directories already swept for stale temporary files by this store.
    swept: Arc<Mutex<HashSet<PathBuf>>>,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            swept: Arc::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, RawStoreError> {
        if key.is_empty()
            || key.split('/').any(|seg| {
                seg.is_empty() || seg == "." || seg == ".." || seg.starts_with(TEMP_PREFIX)
            })
        {
            return Err(RawStoreError::Io {
                key: key.into(),
                detail: "invalid key".into(),
            });
        }
        Ok(self.root.join(key))
    }

    /// Removes the temporary files of unfinished writes below `prefix` (a key prefix
    /// ending with `/`, or "" for the whole store) whose process is gone or that are
    /// older than `max_age`. Returns how many were removed.
    pub async fn remove_stale_temp_files(
        &self,
        prefix: &str,
        max_age: Duration,
    ) -> Result<usize, RawStoreError> {
        let dir = self.root.join(prefix.trim_end_matches('/'));
        let key = prefix.to_string();
        blocking(&key, move || {
            let mut removed = 0;
            let mut stack = vec![dir];
            while let Some(d) = stack.pop() {
                let entries = match fs::read_dir(&d) {
                    Ok(e) => e,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                for entry in entries {
                    let entry = entry?;
                    if entry.file_type()?.is_dir() {
                        stack.push(entry.path());
                    }
                }
                removed += sweep_dir(&d, max_age)?;
            }
            Ok(removed)
        })
        .await
    }

    /// True the first time this store writes into `dir`: the write then sweeps it.
    fn first_write_in(&self, dir: &Path) -> bool {
        self.swept
            .lock()
            .map(|mut s| s.insert(dir.to_path_buf()))
            .unwrap_or(false)
    }
}

/// Removes stale temporary files from `dir` before a write; a failure is only logged.
fn sweep_before_write(dir: &Path) {
    if let Err(e) = sweep_dir(dir, STALE_TEMP_AGE) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove stale temporary files");
    }
}

/// Runs blocking file work on tokio's blocking pool; errors become [`RawStoreError::Write`].
async fn blocking<T: Send + 'static>(
    key: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, RawStoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(RawStoreError::Write {
            key: key.to_string(),
            source,
        }),
        Err(join) => Err(RawStoreError::Io {
            key: key.to_string(),
            detail: format!("the writing task failed: {join}"),
        }),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        "{TEMP_PREFIX}{}-{}-{name}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ))
}

/// True for a temporary file name (also the `name.tmp-{uuid}` files of earlier versions).
fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) || name.contains(".tmp-")
}

/// The writing process of a temporary file, when its name says.
fn temp_pid(name: &str) -> Option<u32> {
    name.strip_prefix(TEMP_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc_root = Path::new("/proc");
    if proc_root.join("self").exists() {
        proc_root.join(pid.to_string()).exists()
    } else {
        true // no /proc: fall back to the age rule alone
    }
}

/// Removes the stale temporary files directly in `dir`.
fn sweep_dir(dir: &Path, max_age: Duration) -> std::io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_temp_name(&name) || !entry.file_type()?.is_file() {
            continue;
        }
        let age = entry
            .metadata()?
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        let orphaned = temp_pid(&name).is_some_and(|pid| !process_alive(pid));
        if orphaned || age >= max_age {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "removed temporary files of unfinished raw-store writes");
    }
    Ok(removed)
}

/// Creates `dir` (and missing parents below `root`), fsyncing each parent whose entries
/// changed, so a published object's directory survives a crash too.
fn ensure_dir(root: &Path, dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.as_os_str().is_empty() && !d.is_dir() {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) if p.starts_with(root) || root.starts_with(p) => d = p,
            _ => break,
        }
    }
    fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    // A relative root such as `raw` has the empty path as its parent: the current dir.
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// Writes `body` to a new temporary file beside `path`, durably, and checks it. Returns
/// the temporary file's path; on error it has been removed.
fn write_verified_temp(path: &Path, body: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(body)?;
        f.flush()?;
        f.sync_all()?;
        drop(f);
        check_file(&tmp, body)
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Reads `file` back: its size and SHA-256 must be `body`'s.
fn check_file(file: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut f = File::open(file)?;
    let len = f.metadata()?.len();
    if len != body.len() as u64 {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!(
                "read back {len} bytes of {} written (verification failed)",
                body.len()
            ),
        ));
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    if hasher.finalize()[..] != Sha256::digest(body)[..] {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "read back bytes whose SHA-256 differs from the bytes written (verification failed)",
        ));
    }
    Ok(())
}

enum Published {
    Created,
    Exists,
}

fn put_new_blocking(
    root: &Path,
    path: &Path,
    body: &[u8],
    sweep: bool,
) -> std::io::Result<Published> {
    let dir = path.parent().expect("a key has a directory");
    ensure_dir(root, dir)?;
    if sweep {
        sweep_before_write(dir);
    }
    if path.exists() {
        return Ok(Published::Exists);
    }
    let tmp = write_verified_temp(path, body)?;
    let linked = fs::hard_link(&tmp, path);
    // The object is published (or not) either way; a temp file that cannot be removed
    // now is swept later.
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(Published::Exists),
        Err(e) => return Err(e),
    }
    sync_dir(dir)?;
    Ok(Published::Created)
}

fn put_replace_blocking(root: &Path, path: &Path, body: &[u8], sweep: bool) -> std::io::Result<()> {
    let dir = path.parent().expect("a key has a directory");
    ensure_dir(root, dir)?;
    if sweep {
        sweep_before_write(dir);
    }
    let tmp = write_verified_temp(path, body)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

fn list_blocking(root: &Path, prefix: &str) -> std::io::Result<Vec<String>> {
    // Start at the deepest directory the prefix names completely.
    let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    let start = if dir_part.is_empty() {
        root.to_path_buf()
    } else {
        root.join(dir_part)
    };
    let mut keys = Vec::new();
    let mut stack = vec![(
        start,
        if dir_part.is_empty() {
            String::new()
        } else {
            format!("{dir_part}/")
        },
    )];
    while let Some((dir, key_prefix)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
                continue
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_temp_name(&name) {
                continue;
            }
            let key = format!("{key_prefix}{name}");
            let ty = entry.file_type()?;
            if ty.is_dir() {
                // Descend only where keys below can still match the prefix.
                let sub = format!("{key}/");
                if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                    stack.push((entry.path(), sub));
                }
            } else if key.starts_with(prefix) {
                keys.push(key);
            }
        }
    }
    keys.sort();
    Ok(keys)
}

#[async_trait]
impl RawStore for LocalStore {
    async fn put_new(&self, key: &str, body: Bytes) -> Result<PutOutcome, RawStoreError> {
        let path = self.path(key)?;
        let sweep = path.parent().is_some_and(|d| self.first_write_in(d));
        let root = self.root.clone();
        let b = body.clone();
        match blocking(key, move || put_new_blocking(&root, &path, &b, sweep)).await? {
            Published::Created => Ok(PutOutcome::Created),
            Published::Exists => {
                let existing = self.get(key).await?.ok_or_else(|| RawStoreError::Io {
                    key: key.to_string(),
                    detail: "the object exists but vanished before it could be compared".into(),
                })?;
                compare_existing(key, &existing, &body)
            }
        }
    }

    async fn put_replace(&self, key: &str, body: Bytes) -> Result<(), RawStoreError> {
        let path = self.path(key)?;
        let sweep = path.parent().is_some_and(|d| self.first_write_in(d));
        let root = self.root.clone();
        blocking(key, move || {
            put_replace_blocking(&root, &path, &body, sweep)
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, RawStoreError> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RawStoreError::Io {
                key: key.to_string(),
                detail: e.to_string(),
            }),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, RawStoreError> {
        let root = self.root.clone();
        let p = prefix.to_string();
        match tokio::task::spawn_blocking(move || list_blocking(&root, &p)).await {
            Ok(Ok(keys)) => Ok(keys),
            Ok(Err(e)) => Err(RawStoreError::Io {
                key: prefix.to_string(),
                detail: format!("cannot list: {e}"),
            }),
            Err(e) => Err(RawStoreError::Io {
                key: prefix.to_string(),
                detail: format!("the listing task failed: {e}"),
            }),
        }
    }

    async fn list_folders(&self, prefix: &str) -> Result<Vec<String>, RawStoreError> {
        let dir = self.root.join(prefix.trim_end_matches('/'));
        let p = prefix.to_string();
        let listed = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
            let mut names = Vec::new();
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(names),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            names.sort();
            Ok(names)
        })
        .await;
        match listed {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(RawStoreError::Io {
                key: p,
                detail: format!("cannot list: {e}"),
            }),
            Err(e) => Err(RawStoreError::Io {
                key: p,
                detail: format!("the listing task failed: {e}"),
            }),
        }
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[tokio::test]
    async fn create_only_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_path_buf());
        let key = "local/ranking/2026-11-23/r/unit.json";
        assert_eq!(
            store
                .put_new(key, Bytes::from_static(b"{\"a\":1}"))
                .await
                .unwrap(),
            PutOutcome::Created
        );
        assert_eq!(
            store
                .put_new(key, Bytes::from_static(b"{\"a\":1}"))
                .await
                .unwrap(),
            PutOutcome::Identical
        );
        let err = store
            .put_new(key, Bytes::from_static(b"{\"a\":2}"))
            .await
            .unwrap_err();
        assert!(err.is_conflict());
        assert!(err.to_string().contains(key), "{err}");
        assert_eq!(
            store.get(key).await.unwrap().unwrap(),
            Bytes::from_static(b"{\"a\":1}")
        );
        assert!(store.get("local/none.json").await.unwrap().is_none());
        assert!(store.put_new("../escape.json", Bytes::new()).await.is_err());
        assert!(store
            .put_new("local/.tmp-1-x-a.json", Bytes::new())
            .await
            .is_err());
        // no temporary files left behind
        assert_eq!(
            names_in(&dir.path().join("local/ranking/2026-11-23/r")),
            vec!["unit.json"]
        );
        store
            .put_replace("local/latest.json", Bytes::from_static(b"1"))
            .await
            .unwrap();
        store
            .put_replace("local/latest.json", Bytes::from_static(b"2"))
            .await
            .unwrap();
        assert_eq!(
            store.get("local/latest.json").await.unwrap().unwrap(),
            Bytes::from_static(b"2")
        );
        assert_eq!(
            names_in(&dir.path().join("local")),
            vec!["latest.json", "ranking"]
        );
    }

    #[tokio::test]
    async fn lists_keys_and_folders_without_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_path_buf());
        for key in [
            "dev/ranking/2026-11-22/a/p1.json",
            "dev/ranking/2026-11-23/b/p1.json",
            "dev/ranking/2026-11-23/b/manifest.json",
            "dev/ranking/2026-11-23/b/quarantine/p2.0123.json",
            "dev/item/2026-11-23/b/i1.json",
            "dev/latest.json",
        ] {
            store.put_new(key, Bytes::from_static(b"{}")).await.unwrap();
        }
        fs::write(
            dir.path().join("dev/ranking/2026-11-23/b/.tmp-1-x-p3.json"),
            b"",
        )
        .unwrap();
        assert_eq!(
            store.list("dev/ranking/2026-11-23/").await.unwrap(),
            vec![
                "dev/ranking/2026-11-23/b/manifest.json",
                "dev/ranking/2026-11-23/b/p1.json",
                "dev/ranking/2026-11-23/b/quarantine/p2.0123.json",
            ]
        );
        assert_eq!(store.list("dev/ranking/2026-11-2").await.unwrap().len(), 4);
        assert_eq!(store.list("dev/").await.unwrap().len(), 6);
        assert_eq!(store.list("").await.unwrap().len(), 6);
        assert!(store.list("prod/").await.unwrap().is_empty());
        assert_eq!(
            store.list_folders("dev/ranking/").await.unwrap(),
            vec!["2026-11-22", "2026-11-23"]
        );
        assert_eq!(
            store.list_folders("dev/").await.unwrap(),
            vec!["item", "ranking"]
        );
        assert!(store.list_folders("prod/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn temp_files_of_dead_writers_are_removed_at_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().to_path_buf());
        let run_dir = dir.path().join("dev/item/2026-11-23/r");
        fs::create_dir_all(&run_dir).unwrap();
        // A writer that was killed (no such process), and one of this live process.
        let dead = format!(".tmp-{}-abc-i1.json", u32::MAX - 7);
        let live = format!(".tmp-{}-def-i2.json", std::process::id());
        fs::write(run_dir.join(&dead), b"partial").unwrap();
        fs::write(run_dir.join(&live), b"in flight").unwrap();
        store
            .put_new("dev/item/2026-11-23/r/i3.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(
            names_in(&run_dir),
            vec![live.clone(), "i3.json".to_string()]
        );
        // An explicit sweep with age 0 removes every temp file.
        assert_eq!(
            store
                .remove_stale_temp_files("", Duration::ZERO)
                .await
                .unwrap(),
            1
        );
        assert_eq!(names_in(&run_dir), vec!["i3.json"]);
    }
}
