//! TLS to PostgreSQL (`sslmode=require`) works like a plain local connection.

use collector_core::db;
use ichiba_collector_tests::*;

#[tokio::test]
async fn sslmode_require_encrypts_and_disable_does_not() {
    let test_db = TestDb::new().await;
    let sep = if test_db.url.contains('?') { '&' } else { '?' };
    let tls = db::connect(&format!("{}{sep}sslmode=require", test_db.url).into())
        .await
        .expect("TLS connection");
    assert!(tls.tls, "sslmode=require must give an encrypted session");
    let n: i64 = scalar(&tls.client, "SELECT count(*) FROM etl_runs", &[]).await;
    assert_eq!(n, 0);
    let plain = db::connect(&format!("{}{sep}sslmode=disable", test_db.url).into())
        .await
        .unwrap();
    assert!(!plain.tls);
}

#[tokio::test]
async fn a_dead_database_is_a_clear_error_without_the_password() {
    let err = db::connect(
        &"postgresql://app:hunter2@127.0.0.1:1/ichiba"
            .to_string()
            .into(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("cannot connect to PostgreSQL at 127.0.0.1:1/ichiba"),
        "{text}"
    );
    assert!(!text.contains("hunter2"));
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let test_db = TestDb::new().await;
    let d = db::connect(&test_db.url.clone().into()).await.unwrap();
    let mut client = d.client;
    let again = db::migrate(&mut client).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.current_version, Some(4));
    for table in [
        "rakuten_rankings",
        "rakuten_items",
        "etl_runs",
        "etl_job_runs",
        "etl_failures",
    ] {
        let exists: bool = scalar(&client, "SELECT to_regclass($1) IS NOT NULL", &[&table]).await;
        assert!(exists, "{table}");
    }
}
