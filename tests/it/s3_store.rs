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

    assert_eq!(
        store
            .put_new(key, Bytes::from_static(b"{\"v\":1}"))
            .await
            .unwrap(),
        PutOutcome::Created
    );
    // Same bytes again (a rerun): accepted, nothing written.
    assert_eq!(
        store
            .put_new(key, Bytes::from_static(b"{\"v\":1}"))
            .await
            .unwrap(),
        PutOutcome::Identical
    );
    // Different bytes: S3 answers 412 to If-None-Match, reported as a conflict naming the key.
    let err = store
        .put_new(key, Bytes::from_static(b"{\"v\":2}"))
        .await
        .unwrap_err();
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
    let db = TestDb::new().await;
    let sandbox = start_sandbox(sandbox_config(400)).await;
    let raw = tempfile::tempdir().unwrap();
    let store: Arc<dyn RawStore> =
        Arc::new(S3Store::new(s3.clone(), bucket.clone(), "ichiba".into()));
    let ctx = context(job_config(&db, &sandbox, raw.path(), &[]))
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
