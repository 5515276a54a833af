//! The S3 raw store. Create-only writes use `If-None-Match: *`; S3 (and moto) answer a
//! second write to a key with HTTP 412, which the SDK surfaces only as the untyped
//! error code `PreconditionFailed`, so that code (or the status) is matched here.
//!
//! Every put carries the body's SHA-256 (`x-amz-checksum-sha256`, algorithm SHA256,
//! computed here from the bytes we mean to store) and its `Content-MD5`: S3 refuses an
//! upload whose bytes do not match (`BadDigest`), so a damaged upload is an error, never
//! a stored object. The checksum S3 answers with must equal ours, and S3 keeps it with the
//! object (`HeadObject` with checksum mode shows it).

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ServerSideEncryption};
use base64_md5::{content_md5, content_sha256};
use bytes::Bytes;

use super::{compare_existing, PutOutcome, RawStore, RawStoreError};

#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client, bucket: String, prefix: String) -> Self {
        Self {
            client,
            bucket,
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    fn object_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// Lists every page below `prefix`: the keys (store keys, without the store prefix)
    /// and, with a delimiter, the folder names directly below `prefix`.
    async fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<(Vec<String>, Vec<String>), RawStoreError> {
        let full_prefix = self.object_key(prefix);
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut keys = Vec::new();
        let mut folders = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_delimiter(delimiter.map(str::to_string))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_err(prefix, &e))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter_map(|k| k.strip_prefix(&strip))
                    .map(str::to_string),
            );
            folders.extend(
                out.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix())
                    .filter_map(|p| p.strip_prefix(&full_prefix))
                    .map(|p| p.trim_end_matches('/').to_string()),
            );
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        keys.sort();
        folders.sort();
        folders.dedup();
        Ok((keys, folders))
    }
}

type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

fn s3_err<E: ProvideErrorMetadata + std::error::Error + 'static>(
    key: &str,
    e: &SdkError<E, HttpResponse>,
) -> RawStoreError {
    let code = e
        .code()
        .map(str::to_string)
        .unwrap_or_else(|| match status_of(e) {
            Some(s) => format!("HTTP {s}"),
            None => "unknown".into(),
        });
    let detail = match e.message() {
        Some(m) => m.to_string(),
        None => {
            let mut out = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                out.push_str(": ");
                out.push_str(&s.to_string());
                source = s.source();
            }
            out
        }
    };
    RawStoreError::S3 {
        key: key.to_string(),
        code,
        detail,
    }
}

fn status_of<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

mod base64_md5 {
    use base64::Engine;
    use md5::{Digest, Md5};

    /// `Content-MD5`, so S3 rejects a body damaged on the way.
    pub fn content_md5(body: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(Md5::digest(body))
    }

    /// `x-amz-checksum-sha256`: the base64 SHA-256 S3 checks the body against.
    pub fn content_sha256(body: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body))
    }
}

/// The ETag of a single-part, non-KMS PUT is the stored bytes' MD5: it must be ours.
fn check_etag(
    key: &str,
    body: &[u8],
    etag: Option<&str>,
    sse: Option<&ServerSideEncryption>,
) -> Result<(), RawStoreError> {
    use md5::{Digest, Md5};
    if matches!(
        sse,
        Some(ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse)
    ) {
        return Ok(());
    }
    let Some(tag) = etag.map(|t| t.trim_matches('"')) else {
        return Ok(());
    };
    if tag.len() != 32 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(()); // not an MD5 ETag (another S3-compatible store's scheme)
    }
    let md5 = hex::encode(Md5::digest(body));
    if tag.eq_ignore_ascii_case(&md5) {
        Ok(())
    } else {
        Err(RawStoreError::S3 {
            key: key.to_string(),
            code: "ChecksumMismatch".into(),
            detail: format!(
                "S3 stored bytes with MD5 (ETag) {tag}, the bytes sent have MD5 {md5}: the \
                 upload was damaged and the object is not trusted"
            ),
        })
    }
}

/// S3's answer must carry our checksum back when it carries one.
fn check_echo(key: &str, sent: &str, answered: Option<&str>) -> Result<(), RawStoreError> {
    match answered {
        Some(a) if a != sent => Err(RawStoreError::S3 {
            key: key.to_string(),
            code: "ChecksumMismatch".into(),
            detail: format!("S3 stored SHA-256 {a}, we sent {sent}; the object is not trusted"),
        }),
        _ => Ok(()),
    }
}

#[async_trait]
impl RawStore for S3Store {
    async fn put_new(&self, key: &str, body: Bytes) -> Result<PutOutcome, RawStoreError> {
        let sha256 = content_sha256(&body);
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .if_none_match("*")
            .content_type("application/json")
            .content_md5(content_md5(&body))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(&sha256)
            .body(ByteStream::from(body.clone()))
            .send()
            .await;
        match result {
            Ok(out) => {
                check_echo(key, &sha256, out.checksum_sha256())?;
                check_etag(key, &body, out.e_tag(), out.server_side_encryption())?;
                Ok(PutOutcome::Created)
            }
            Err(e) if e.code() == Some("PreconditionFailed") || status_of(&e) == Some(412) => {
                let existing = self.get(key).await?.ok_or_else(|| RawStoreError::S3 {
                    key: key.to_string(),
                    code: "PreconditionFailed".into(),
                    detail: "the object exists but could not be read back".into(),
                })?;
                compare_existing(key, &existing, &body)
            }
            Err(e) => Err(s3_err(key, &e)),
        }
    }

    async fn put_replace(&self, key: &str, body: Bytes) -> Result<(), RawStoreError> {
        let sha256 = content_sha256(&body);
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .content_type("application/json")
            .content_md5(content_md5(&body))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(&sha256)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .map_err(|e| s3_err(key, &e))?;
        check_echo(key, &sha256, out.checksum_sha256())?;
        check_etag(key, &body, out.e_tag(), out.server_side_encryption())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, RawStoreError> {
        self.list_page(prefix, None).await.map(|(keys, _)| keys)
    }

    async fn list_folders(&self, prefix: &str) -> Result<Vec<String>, RawStoreError> {
        self.list_page(prefix, Some("/"))
            .await
            .map(|(_, folders)| folders)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, RawStoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await;
        match out {
            Ok(o) => {
                let data = o.body.collect().await.map_err(|e| RawStoreError::S3 {
                    key: key.to_string(),
                    code: "ReadError".into(),
                    detail: e.to_string(),
                })?;
                Ok(Some(data.into_bytes()))
            }
            Err(e) if e.code() == Some("NoSuchKey") || status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(s3_err(key, &e)),
        }
    }

    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}
