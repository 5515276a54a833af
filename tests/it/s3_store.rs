//! The S3 raw store against moto server, and SSM secrets.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use collector_core::config::Config;
use collector_core::jobs::ranking::{self, RankingInput};
use collector_core::rawstore::{Manifest, PutOutcome, RawStore, RawStoreError, S3Store};
use ichiba_collector_tests::*;
use md5::Md5;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn s3_writes_refuses_overwrites_and_reads_back() {
    let s3 = moto_s3().await;
    let bucket = moto_bucket(&s3).await;
    let store = S3Store::new(s3.clone(), bucket.clone(), "raw".into());
    let key = "dev/ranking/2026-11-23/run/genre-0_daily_page-01.json";
    let put = |body: &'static [u8]| store.put_new(key, Bytes::from_static(body));

    assert_eq!(put(b"{\"v\":1}").await.unwrap(), PutOutcome::Created);
    // Same bytes again (a rerun): accepted, nothing written.
    assert_eq!(put(b"{\"v\":1}").await.unwrap(), PutOutcome::Identical);
    // Different bytes: S3 answers 412 to If-None-Match, reported as a conflict naming the key.
    let err = put(b"{\"v\":2}").await.unwrap_err();
    assert!(matches!(err, RawStoreError::Conflict { .. }), "{err:?}");
    assert!(
        err.to_string().contains(key) && err.to_string().contains("never overwritten"),
        "{err}"
    );
    // The stored object is still the first one (read with the SDK directly, under the prefix).
    let got = s3
        .get_object()
        .bucket(&bucket)
        .key(format!("raw/{key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes(),
        Bytes::from_static(b"{\"v\":1}")
    );
    assert_eq!(store.get("dev/none.json").await.unwrap(), None);

    // latest.json is the one object that is replaced.
    store
        .put_replace("dev/latest.json", Bytes::from_static(b"1"))
        .await
        .unwrap();
    store
        .put_replace("dev/latest.json", Bytes::from_static(b"2"))
        .await
        .unwrap();
    assert_eq!(
        store.get("dev/latest.json").await.unwrap().unwrap(),
        Bytes::from_static(b"2")
    );
    assert_eq!(store.describe(), format!("s3://{bucket}/raw"));
}

#[tokio::test]
async fn s3_errors_name_the_key_and_code() {
    let s3 = moto_s3().await;
    let store = S3Store::new(s3, "icx-no-such-bucket".into(), String::new());
    let err = store
        .put_new("dev/x.json", Bytes::from_static(b"1"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("dev/x.json") && text.contains("NoSuchBucket"),
        "{text}"
    );
}

#[tokio::test]
async fn ranking_job_manifest_matches_the_objects_in_s3() {
    let s3 = moto_s3().await;
    let bucket = moto_bucket(&s3).await;
    let (db, sandbox, raw) = job_parts(sandbox_config(400)).await;
    let store: Arc<dyn RawStore> =
        Arc::new(S3Store::new(s3.clone(), bucket.clone(), "ichiba".into()));
    let ctx = job_context(&db, &sandbox, raw.path(), &[])
        .await
        .with_store(store);

    let out = ranking::run(&ctx, RankingInput::default()).await.unwrap();
    assert_eq!(out.units.attempted, 14); // 400 ranks: 13 full pages and one of 10
    let manifest_key = format!("ichiba/{}", out.manifest_key.unwrap());
    let body = s3
        .get_object()
        .bucket(&bucket)
        .key(&manifest_key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let manifest: Manifest = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest.object_count, 14);
    for entry in &manifest.objects {
        let obj = s3
            .get_object()
            .bucket(&bucket)
            .key(format!("ichiba/{}", entry.key))
            .send()
            .await
            .unwrap();
        assert_eq!(obj.content_length(), Some(entry.size as i64));
        let bytes = obj.body.collect().await.unwrap().into_bytes();
        assert_eq!(
            entry.sha256,
            hex::encode(Sha256::digest(&bytes)),
            "{}",
            entry.key
        );
        assert_eq!(entry.md5, hex::encode(Md5::digest(&bytes)), "{}", entry.key);
    }
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("ichiba/local/ranking/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(15)); // 14 pages + manifest
    assert!(s3
        .head_object()
        .bucket(&bucket)
        .key("ichiba/local/latest.json")
        .send()
        .await
        .is_ok());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn secrets_come_from_ssm_secure_strings() {
    let ssm = moto_ssm().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let db_param = format!("/icx/{suffix}/database-url");
    let key_param = format!("/icx/{suffix}/access-key");
    for (name, value) in [
        (
            &db_param,
            "postgresql://app:s3cr3t@db.example:5432/ichiba?sslmode=require",
        ),
        (&key_param, "pk_from_ssm"),
    ] {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .unwrap();
    }
    let vars: HashMap<String, String> = [
        ("APP_ENV", "dev"),
        ("DATABASE_URL_SSM_PARAMETER", db_param.as_str()),
        ("RAW_STORE", "s3://icx-bucket/raw"),
        ("RAKUTEN_APPLICATION_ID", TEST_APP_ID),
        ("RAKUTEN_ACCESS_KEY_SSM_PARAMETER", key_param.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::from_map(&vars).unwrap();
    let secrets = collector_core::secrets::resolve_with(&config, Some(&ssm))
        .await
        .unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(
        secrets.database_url.expose_secret(),
        "postgresql://app:s3cr3t@db.example:5432/ichiba?sslmode=require"
    );
    assert_eq!(
        secrets.rakuten.unwrap().access_key.expose_secret(),
        "pk_from_ssm"
    );

    // A missing parameter names the variable and the parameter, not a value.
    let mut vars2 = vars.clone();
    vars2.insert(
        "RAKUTEN_ACCESS_KEY_SSM_PARAMETER".into(),
        format!("/icx/{suffix}/missing"),
    );
    let err = collector_core::secrets::resolve_with(&Config::from_map(&vars2).unwrap(), Some(&ssm))
        .await
        .unwrap_err();
    assert_eq!(err.variable, "RAKUTEN_ACCESS_KEY_SSM_PARAMETER");
    assert!(err.problem.contains("ParameterNotFound"), "{err}");
    assert!(!format!("{err} {err:?}").contains("s3cr3t"));
}

/// Every put carries `x-amz-checksum-sha256`, which S3 keeps with the object (and real S3
/// checks: `BadDigest`). moto 5.2 stores the header without checking it, so a damaged
/// upload is caught by the store's ETag (MD5) check: an error naming the key.
#[tokio::test]
async fn s3_puts_carry_a_sha256_checksum_and_a_damaged_upload_is_an_error() {
    use aws_sdk_s3::types::ChecksumMode;
    let b64 = |b: &[u8]| base64(&Sha256::digest(b));

    let s3 = moto_s3().await;
    let bucket = moto_bucket(&s3).await;
    let store = S3Store::new(s3.clone(), bucket.clone(), "raw".into());
    let key = "dev/item/2026-11-23/run/item-a_1.json";
    let body = Bytes::from_static(b"{\"Items\":[{\"itemCode\":\"a:1\"}]}");
    store.put_new(key, body.clone()).await.unwrap();
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(format!("raw/{key}"))
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_sha256(), Some(b64(&body).as_str()));
    store
        .put_replace("dev/latest.json", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("raw/dev/latest.json")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_sha256(), Some(b64(b"{}").as_str()));

    // A damaged upload: a client whose request bodies get one byte changed after the
    // checksums were computed (as a broken network path would).
    let damaging =
        aws_sdk_s3::Client::from_conf(s3.config().to_builder().interceptor(FlipOneByte).build());
    let damaged_store = S3Store::new(damaging, bucket.clone(), "raw".into());
    let damaged_key = "dev/item/2026-11-23/run/item-b_2.json";
    let err = damaged_store
        .put_new(damaged_key, Bytes::from_static(b"{\"Items\":[]}"))
        .await
        .expect_err("a damaged upload must not count as stored");
    let text = err.to_string();
    assert!(
        text.contains(damaged_key) && text.contains("ChecksumMismatch"),
        "{text}"
    );
    // Whether S3 refused it (real S3: BadDigest) or kept the bad bytes (moto does not
    // check the header), the store never reports it stored; a retry is refused too.
    let err = damaged_store
        .put_new(damaged_key, Bytes::from_static(b"{\"Items\":[]}"))
        .await
        .expect_err("a damaged upload must not count as stored");
    assert!(err.to_string().contains(damaged_key), "{err}");
}

/// Changes one byte of every PUT body just before it is sent.
#[derive(Debug)]
struct FlipOneByte;

impl aws_sdk_s3::config::Intercept for FlipOneByte {
    fn name(&self) -> &'static str {
        "FlipOneByte"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let req = context.request_mut();
        if req.method() == "PUT" {
            if let Some(bytes) = req.body().bytes() {
                let mut v = bytes.to_vec();
                if let Some(b) = v.get_mut(2) {
                    *b ^= 0x01;
                }
                *req.body_mut() = aws_sdk_s3::primitives::SdkBody::from(v);
            }
        }
        Ok(())
    }
}

/// Listing and `verify` against S3: a changed byte is reported as damaged, a deleted
/// object as missing.
#[tokio::test]
async fn s3_verify_names_damaged_and_missing_objects() {
    use collector_core::jobs::Job;
    use collector_core::rawstore::verify::{self, Problem, Selection};
    use collector_core::rawstore::{ManifestEntry, RawKeys};

    let s3 = moto_s3().await;
    let bucket = moto_bucket(&s3).await;
    let store = S3Store::new(s3.clone(), bucket.clone(), "ichiba".into());
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let run_id = uuid::Uuid::new_v4();
    let keys = RawKeys::new("dev", Job::Ranking, date, run_id, 1);
    let mut objects = Vec::new();
    for i in 0..3 {
        let key = keys.unit(&format!("genre-0_daily_page-{i:02}"));
        let body = Bytes::from(format!("{{\"page\":{i}}}"));
        let outcome = store.put_new(&key, body.clone()).await.unwrap();
        objects.push(ManifestEntry::new(
            key,
            format!("page {i}"),
            &body,
            30,
            outcome,
        ));
    }
    let qbody = b"{\"Items\":[";
    let qkey = keys.quarantine("genre-0_daily_page-03", qbody);
    let outcome = store
        .put_new(&qkey, Bytes::from_static(qbody))
        .await
        .unwrap();
    objects.push(ManifestEntry::quarantine(
        qkey,
        "page 3".into(),
        qbody,
        outcome,
        "malformed JSON after 4 tries",
    ));
    let t = chrono::Utc::now();
    let manifest = Manifest {
        env: "dev".into(),
        job: "ranking".into(),
        run_id,
        run_date: date,
        attempt: 1,
        job_start_at: t,
        created_at: t,
        complete: false,
        object_count: objects.len(),
        total_bytes: objects.iter().map(|o| o.size).sum(),
        total_records: 90,
        objects: objects.clone(),
        verdict: None,
    };
    let mkey = manifest.write(&store, &keys).await.unwrap();

    assert_eq!(
        store
            .list(&format!("{}/", keys.folder()))
            .await
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        store.list_folders("dev/ranking/").await.unwrap(),
        vec!["2026-11-23"]
    );
    let report = verify::verify(&store, "dev", &Selection::Run { run_id, date: None })
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.manifests);
    assert_eq!(report.manifests[0].manifest, mkey);
    assert_eq!(report.entries(), 4);

    // Damage behind the store's back: one byte changed, one object deleted.
    let damaged = &objects[0].key;
    let mut bytes = store.get(damaged).await.unwrap().unwrap().to_vec();
    bytes[2] ^= 0x01;
    s3.put_object()
        .bucket(&bucket)
        .key(format!("ichiba/{damaged}"))
        .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket(&bucket)
        .key(format!("ichiba/{}", objects[1].key))
        .send()
        .await
        .unwrap();
    let report = verify::verify(&store, "dev", &Selection::Date(date))
        .await
        .unwrap();
    let problems: Vec<Problem> = report.problems().cloned().collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        matches!(&problems[0], Problem::Sha256Mismatch { key, .. } if key == damaged),
        "{problems:?}"
    );
    assert_eq!(
        problems[1],
        Problem::Missing {
            key: objects[1].key.clone()
        }
    );
}

/// Standard base64 with padding (the form of S3's checksum headers).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
