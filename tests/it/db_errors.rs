//! Database errors say what was being done, the SQLSTATE and the server's words;
//! migrations name the migration; first-use database creation is race-free.

use std::time::Duration;

use collector_core::config::DatabaseSettings;
use collector_core::db::{self, DbError, DbFutureExt, DbResultExt};
use ichiba_collector_tests::*;

#[tokio::test]
async fn server_errors_carry_sqlstate_message_detail_and_context() {
    let test_db = TestDb::new().await;
    let d = db::connect(&test_db.url.clone().into()).await.unwrap();
    d.client
        .batch_execute(
            "CREATE TABLE staging_t (id int PRIMARY KEY); INSERT INTO staging_t VALUES (1)",
        )
        .await
        .unwrap();
    let insert = "INSERT INTO staging_t VALUES (1)";

    // Pending call, named with `bounded`.
    let err = d
        .client
        .execute(insert, &[])
        .bounded("loading staging")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "database error while loading staging: ERROR 23505 unique_violation: duplicate key \
         value violates unique constraint \"staging_t_pkey\" (detail: Key (id)=(1) already exists.)"
    );
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    assert_eq!(err.context(), Some("loading staging"));
    assert!(!err.is_connection_lost() && !err.is_timeout());

    // Finished call, named with `context`.
    let err = d
        .client
        .execute(insert, &[])
        .await
        .context("loading rakuten_rankings")
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "database error while loading rakuten_rankings: ERROR 23505 unique_violation: "
        ),
        "{err}"
    );

    // Plain `?` still compiles and still says SQLSTATE and message.
    async fn plain(client: &tokio_postgres::Client) -> Result<u64, DbError> {
        Ok(client.execute("SELECT * FROM no_such_table", &[]).await?)
    }
    let err = plain(&d.client).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "database error: ERROR 42P01 undefined_table: relation \"no_such_table\" does not exist"
    );
    // ... and takes a context afterwards.
    let err = Err::<(), _>(err).context("reading the queue").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("database error while reading the queue: ERROR 42P01"),
        "{err}"
    );

    // A hint is shown.
    let err = d
        .client
        .batch_execute("SELECT nosuchfunction(1)")
        .bounded("calling a function")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("(hint: No function matches"),
        "{err}"
    );

    // The server-side statement timeout names the variable.
    let short = DatabaseSettings {
        statement_timeout: Duration::from_secs(1),
        ..DatabaseSettings::default()
    };
    let quick = db::connect_with(&test_db.url.clone().into(), &short)
        .await
        .unwrap();
    let err = quick
        .client
        .batch_execute("SELECT pg_sleep(3)")
        .bounded_by("sleeping", quick.query_bound())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "database error while sleeping: ERROR 57014 query_canceled: canceling statement due to \
         statement timeout (DATABASE_STATEMENT_TIMEOUT_SECS)"
    );

    // A connection given up is closed at once, and its calls fail instead of waiting.
    assert!(!quick.is_closed());
    quick.close();
    assert!(quick.is_closed());
    let err = quick
        .client
        .batch_execute("SELECT 1")
        .bounded_by("using a closed connection", quick.query_bound())
        .await
        .unwrap_err();
    assert!(err.is_connection_lost(), "{err}");
}

#[tokio::test]
async fn a_failed_migration_names_the_migration_and_the_server_error() {
    let name = format!("icx_test_{}", uuid::Uuid::new_v4().simple());
    let admin = connect_plain(&admin_url()).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = with_dbname(&admin_url(), &name);
    let result = async {
        let d = db::connect(&url.clone().into()).await.unwrap();
        // V2 creates rakuten_genres: make it collide.
        d.client
            .batch_execute("CREATE TABLE rakuten_genres (x int)")
            .await
            .unwrap();
        let mut client = d.client;
        db::migrate(&mut client).await
    }
    .await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    let err = result.unwrap_err();
    match &err {
        DbError::Migration { migration, .. } => {
            assert_eq!(migration.as_deref(), Some("V2__item_genre_tag"))
        }
        other => panic!("not a migration error: {other:?}"),
    }
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::DUPLICATE_TABLE)
    );
    assert_eq!(
        err.to_string(),
        "migration failed while applying migration V2__item_genre_tag: ERROR 42P07 \
         duplicate_table: relation \"rakuten_genres\" already exists"
    );
}

#[tokio::test]
async fn concurrent_first_use_creates_the_database_once() {
    let name = format!("icx_test_{}", uuid::Uuid::new_v4().simple());
    let url = with_dbname(&admin_url(), &name);
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { db::ensure_database(&url.into()).await })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    let again = db::ensure_database(&url.clone().into()).await;
    let connected = db::connect(&url.clone().into()).await.map(|_| ());
    let admin = connect_plain(&admin_url()).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    let created: Vec<bool> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("a racing ensure_database failed: {e}")))
        .collect();
    assert_eq!(
        created.iter().filter(|c| **c).count(),
        1,
        "exactly one call creates the database: {created:?}"
    );
    assert!(!again.unwrap(), "a second use creates nothing");
    connected.unwrap();
}
