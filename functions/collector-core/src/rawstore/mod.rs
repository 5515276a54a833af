//! The raw store: every API response body, byte for byte, under a key naming env, job,
//! date, run and unit. Objects are never overwritten: a put of identical bytes to an
//! existing key is accepted (a rerun), different bytes are a [`RawStoreError::Conflict`].
//! `latest.json` is the one object that is rewritten.
//!
//! Every write is verified before it is reported as stored: a local write is flushed and
//! fsynced, read back and checked for size and SHA-256 before it is published under its
//! key; an S3 write carries the body's SHA-256 (`x-amz-checksum-sha256`) so S3 rejects a
//! damaged upload. A failed write is a [`RawStoreError::Write`] naming the key, and no
//! partial object is left under the key. [`verify`] checks manifests against the store.

mod keys;
mod local;
mod manifest;
mod s3;
pub mod verify;

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

pub use keys::{KeyParts, RawKeys};
pub use local::LocalStore;
pub use manifest::{
    EntryKind, FailedUnit, Latest, LatestEntry, Manifest, ManifestEntry, ManifestVerdict,
};
pub use s3::S3Store;

use crate::config::RawStoreLocation;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PutOutcome {
    /// A new object was written.
    Created,
    /// The key existed with exactly these bytes (a rerun); nothing was written.
    Identical,
}

#[derive(Debug, thiserror::Error)]
pub enum RawStoreError {
    #[error("raw object {key} already exists with different content ({existing_len} bytes stored, {new_len} bytes offered); raw objects are never overwritten")]
    Conflict {
        key: String,
        existing_len: usize,
        new_len: usize,
    },
    /// The object could not be durably written and verified (a full disk, an I/O error,
    /// a read-back that did not match). Nothing is stored under the key.
    #[error("raw object {key} was not stored: {source}")]
    Write {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("raw store I/O error at {key}: {detail}")]
    Io { key: String, detail: String },
    #[error("S3 error at {key}: {code}: {detail}")]
    S3 {
        key: String,
        code: String,
        detail: String,
    },
}

impl RawStoreError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, RawStoreError::Conflict { .. })
    }

    /// The key the error is about.
    pub fn key(&self) -> &str {
        match self {
            RawStoreError::Conflict { key, .. }
            | RawStoreError::Write { key, .. }
            | RawStoreError::Io { key, .. }
            | RawStoreError::S3 { key, .. } => key,
        }
    }
}

/// The port: a local directory and S3 implement it.
#[async_trait]
pub trait RawStore: Send + Sync {
    /// Writes `body` under `key` unless the key exists (create-only). Returns only after
    /// the bytes are durably stored and verified; on error nothing is stored under `key`.
    async fn put_new(&self, key: &str, body: Bytes) -> Result<PutOutcome, RawStoreError>;
    /// Writes `body` under `key`, replacing what is there (only for `latest.json`);
    /// verified like [`RawStore::put_new`], and atomic: readers see the old or the new body.
    async fn put_replace(&self, key: &str, body: Bytes) -> Result<(), RawStoreError>;
    /// The object's bytes, `None` when there is no object under `key`.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, RawStoreError>;
    /// Every object key starting with `prefix` (a plain string prefix, like S3's), sorted.
    /// Temporary files of unfinished local writes are not objects and are not listed.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, RawStoreError>;
    /// The names of the "folders" directly below `prefix` (which ends with `/`), i.e. the
    /// distinct next key segments that have objects below them, sorted, without `/`.
    async fn list_folders(&self, prefix: &str) -> Result<Vec<String>, RawStoreError> {
        let mut names: Vec<String> = self
            .list(prefix)
            .await?
            .iter()
            .filter_map(|k| {
                let rest = k.strip_prefix(prefix)?;
                let (name, _) = rest.split_once('/')?;
                Some(name.to_string())
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
    /// Where the store is, for messages: `file:///…` or `s3://bucket/prefix`.
    fn describe(&self) -> String;
}

/// Builds the store a configuration names. S3 uses the default AWS configuration
/// (`AWS_ENDPOINT_URL` points it at moto or any S3-compatible server).
pub async fn open(location: &RawStoreLocation) -> Result<Box<dyn RawStore>, RawStoreError> {
    match location {
        RawStoreLocation::Dir(dir) => Ok(Box::new(LocalStore::new(dir.clone()))),
        RawStoreLocation::S3 { bucket, prefix } => {
            let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let path_style =
                std::env::var("AWS_S3_FORCE_PATH_STYLE").is_ok_and(|v| v == "true" || v == "1");
            let conf = aws_sdk_s3::config::Builder::from(&shared)
                .force_path_style(path_style)
                .build();
            Ok(Box::new(S3Store::new(
                aws_sdk_s3::Client::from_conf(conf),
                bucket.clone(),
                prefix.clone(),
            )))
        }
    }
}

/// Shared conflict check: identical bytes are a rerun, anything else a conflict.
pub(crate) fn compare_existing(
    key: &str,
    existing: &[u8],
    new: &[u8],
) -> Result<PutOutcome, RawStoreError> {
    if existing == new {
        Ok(PutOutcome::Identical)
    } else {
        Err(RawStoreError::Conflict {
            key: key.to_string(),
            existing_len: existing.len(),
            new_len: new.len(),
        })
    }
}

/// Lower-case hex SHA-256 of `body`, the form manifests record.
pub fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}
