//! A frozen (SIGSTOP) or killed PostgreSQL server is a named error, never a stall.
//! These tests start a throw-away server of their own ([`TempPostgres`]); the shared one
//! is never touched.

use std::time::Duration;

use collector_core::config::DatabaseSettings;
use collector_core::db::{self, DbError, DbFutureExt};
use ichiba_collector_tests::*;

/// Small bounds so the tests finish quickly: a request gives up after 2 + 5 s.
fn fast() -> DatabaseSettings {
    DatabaseSettings {
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(2),
        keepalive: Duration::from_secs(5),
    }
}

/// Fails the test instead of hanging it, should a bound not hold.
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} stalled: no error within 60 s"))
}

/// Waits until `pattern` is running on the server and waiting (e.g. on a lock).
async fn wait_until_waiting(pg: &TempPostgres, pattern: &str) {
    let observer = connect_plain(&pg.url()).await;
    for _ in 0..200 {
        let n: i64 = scalar(
            &observer,
            "SELECT count(*) FROM pg_stat_activity
                  WHERE query LIKE $1 AND state = 'active' AND wait_event IS NOT NULL
                    AND pid <> pg_backend_pid()",
            &[&pattern],
        )
        .await;
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{pattern} never started waiting");
}

/// Runs `sql` on `d`, bounded and named `what`; once the statement (its text marked with
/// a `/* tag */` comment) waits on the server, does `fault` to the server. Fails the test
/// should the statement not end within 60 s.
async fn while_it_waits(
    d: &db::Db,
    (sql, what): (&'static str, &'static str),
    pg: &mut TempPostgres,
    fault: impl FnOnce(&mut TempPostgres),
) -> Result<u64, DbError> {
    let tag = sql
        .rsplit("/*")
        .next()
        .unwrap()
        .trim_end_matches("*/")
        .trim();
    let statement = d.client.execute(sql, &[]).bounded_by(what, d.query_bound());
    let (result, ()) = tokio::join!(within(what, statement), async {
        wait_until_waiting(pg, &format!("%{tag}%")).await;
        fault(pg);
    });
    result
}

#[tokio::test]
async fn a_frozen_server_is_a_named_timeout_not_a_stall() {
    let mut pg = TempPostgres::start().await;
    let url = pg.url();
    let d = db::connect_with(&url.clone().into(), &fast())
        .await
        .unwrap();
    let timeout: String = scalar(&d.client, "SHOW statement_timeout", &[]).await;
    assert_eq!(timeout, "2s", "statement_timeout is set at connect");

    // Frozen mid-query: the statement is running (waiting on a lock) when the server stops.
    let holder = connect_plain(&url).await;
    holder
        .execute("SELECT pg_advisory_lock(42)", &[])
        .await
        .unwrap();
    let sql = "SELECT pg_advisory_lock(42) /* frozen-mid-query */";
    let err = while_it_waits(&d, (sql, "taking lock 42"), &mut pg, |pg| pg.freeze())
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Timeout { .. }), "{err:?}");
    assert!(err.is_timeout() && err.is_connection_lost());
    let text = err.to_string();
    assert!(
        text.starts_with(
            "database timeout while taking lock 42: PostgreSQL did not answer within 7 s"
        ),
        "{text}"
    );

    // Frozen before a query that is not wrapped: the connection's watchdog ends it.
    let err = within(
        "an unwrapped query on a frozen server",
        d.client.query_one("SELECT 1", &[]),
    )
    .await
    .unwrap_err();
    let err = DbError::from(err);
    assert!(err.is_connection_lost(), "{err}");
    assert!(
        err.to_string()
            .contains("the connection to PostgreSQL is closed"),
        "{err}"
    );
    assert!(d.client.is_closed());
    let reason = within("the connection task", async {
        loop {
            if let Some(r) = d.closed_reason() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        reason.contains("PostgreSQL sent nothing for 8 s"),
        "{reason}"
    );

    // Connecting to a frozen server: the kernel accepts, the server never answers.
    let err = within(
        "connecting to a frozen server",
        db::connect_with(&url.clone().into(), &fast()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DbError::ConnectTimeout { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{}/postgres: no answer within 2 s \
             (DATABASE_CONNECT_TIMEOUT_SECS); the server is down, frozen or unreachable",
            pg.port()
        )
    );

    // Thawed, the server serves again.
    pg.thaw();
    let again = db::connect_with(&url.into(), &fast()).await.unwrap();
    let one: i32 = again
        .client
        .query_one("SELECT 1", &[])
        .bounded_by("probing", again.query_bound())
        .await
        .unwrap()
        .get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn a_killed_server_is_a_clear_connection_error() {
    let mut pg = TempPostgres::start().await;
    let url = pg.url();
    // A statement_timeout that cannot end the sleep before the kill does.
    let patient = DatabaseSettings {
        statement_timeout: Duration::from_secs(60),
        ..fast()
    };
    let d = db::connect_with(&url.clone().into(), &patient)
        .await
        .unwrap();
    let sql = "SELECT pg_sleep(50) /* killed-mid-query */";
    let err = while_it_waits(
        &d,
        (sql, "sleeping on the server"),
        &mut pg,
        TempPostgres::kill,
    )
    .await
    .unwrap_err();
    assert!(err.is_connection_lost(), "{err:?}");
    assert!(!err.is_timeout(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("database error while sleeping on the server: "),
        "{text}"
    );
    assert!(text.contains("connection"), "{text}");

    let err = within(
        "connecting to a dead server",
        db::connect_with(&url.into(), &fast()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DbError::Connect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{}/postgres: ",
            pg.port()
        )),
        "{text}"
    );
    assert!(text.contains("refused"), "{text}");
}

/// (tries so far, how many of them the server ends)
type Losses = (std::sync::atomic::AtomicU32, u32);

/// A step whose first `lose` tries have their connection ended by the server, as a
/// restart or a pooler would.
fn select_seven<'t>(
    tx: &'t tokio_postgres::Transaction<'t>,
    (tries, lose): &'t Losses,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<i32, collector_core::jobs::JobError>> + Send + 't>,
> {
    Box::pin(async move {
        if tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < *lose {
            let _ = tx
                .execute("SELECT pg_terminate_backend(pg_backend_pid())", &[])
                .await;
        }
        Ok(tx.query_one("SELECT 7", &[]).await?.get(0))
    })
}

/// A connection lost while a job commits (a server restart, a pooler dropping it) is
/// opened again and the idempotent step tried once more; lost twice, the error stands.
#[tokio::test]
async fn a_lost_connection_is_reopened_and_the_step_tried_once_more() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let (_db, sandbox, _raw, ctx) = job_env(sandbox_config(10), &[]).await;

    let lost_once: Losses = (AtomicU32::new(0), 1);
    let value = ctx
        .transact("testing a lost connection", &lost_once, select_seven)
        .await
        .unwrap();
    assert_eq!(value, 7);
    assert_eq!(lost_once.0.load(Ordering::SeqCst), 2, "tried once more");

    let lost_twice: Losses = (AtomicU32::new(0), 2);
    let err = ctx
        .transact("testing a lost connection", &lost_twice, select_seven)
        .await
        .unwrap_err();
    assert_eq!(lost_twice.0.load(Ordering::SeqCst), 2, "only once more");
    assert_eq!(err.error_type(), "DatabaseError");
    assert!(err.to_string().contains("connection"), "{err}");
    sandbox.shutdown().await;
}
