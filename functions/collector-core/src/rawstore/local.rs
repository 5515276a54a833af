//! The local-directory raw store (the default on a developer's machine).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::{compare_existing, PutOutcome, RawStore, RawStoreError};

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, RawStoreError> {
        if key
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(RawStoreError::Io {
                key: key.into(),
                detail: "invalid key".into(),
            });
        }
        Ok(self.root.join(key))
    }
}

fn io_err(key: &str, e: std::io::Error) -> RawStoreError {
    RawStoreError::Io {
        key: key.to_string(),
        detail: e.to_string(),
    }
}

#[async_trait]
impl RawStore for LocalStore {
    async fn put_new(&self, key: &str, body: Bytes) -> Result<PutOutcome, RawStoreError> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| io_err(key, e))?;
        }
        // Write to a temporary file, then hard-link it into place: link() fails if the
        // target exists (create-new) and readers never see a half-written object.
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io_err(key, e))?;
        let written = async {
            f.write_all(&body).await?;
            f.sync_all().await
        }
        .await;
        drop(f);
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io_err(key, e));
        }
        let linked = tokio::fs::hard_link(&tmp, &path).await;
        let _ = tokio::fs::remove_file(&tmp).await;
        match linked {
            Ok(()) => Ok(PutOutcome::Created),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let existing = tokio::fs::read(&path).await.map_err(|e| io_err(key, e))?;
                compare_existing(key, &existing, &body)
            }
            Err(e) => Err(io_err(key, e)),
        }
    }

    async fn put_replace(&self, key: &str, body: Bytes) -> Result<(), RawStoreError> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| io_err(key, e))?;
        }
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&tmp, &body)
            .await
            .map_err(|e| io_err(key, e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| io_err(key, e))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, RawStoreError> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(key, e)),
        }
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // no temporary files left behind
        let names: Vec<_> = std::fs::read_dir(dir.path().join("local/ranking/2026-11-23/r"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
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
    }
}
