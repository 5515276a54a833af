//! The raw store: every API response body, byte for byte, under a key naming env, job,
//! date, run and unit. Objects are never overwritten: a put of identical bytes to an
//! existing key is accepted (a rerun), different bytes are a [`RawStoreError::Conflict`].
//! `latest.json` is the one object that is rewritten.

mod keys;
mod local;
mod manifest;
mod s3;

use async_trait::async_trait;
use bytes::Bytes;

pub use keys::RawKeys;
pub use local::LocalStore;
pub use manifest::{Latest, LatestEntry, Manifest, ManifestEntry};
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
}

/// The port: a local directory and S3 implement it.
#[async_trait]
pub trait RawStore: Send + Sync {
    /// Writes `body` under `key` unless the key exists (create-only).
    async fn put_new(&self, key: &str, body: Bytes) -> Result<PutOutcome, RawStoreError>;
    /// Writes `body` under `key`, replacing what is there (only for `latest.json`).
    async fn put_replace(&self, key: &str, body: Bytes) -> Result<(), RawStoreError>;
    async fn get(&self, key: &str) -> Result<Option<Bytes>, RawStoreError>;
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
