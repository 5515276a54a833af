//! Neither the application ID nor the access key appears in any log line, raw-object key,
//! raw object, manifest, ledger text or error message — including on failure paths.

use std::io::Write;
use std::sync::{Arc, Mutex};

use collector_core::jobs::ranking::{self, RankingInput};
use ichiba_collector_tests::*;
use rakuten_sandbox::ErrorMode;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_clean(what: &str, text: &str) {
    for secret in [TEST_APP_ID, TEST_ACCESS_KEY] {
        assert!(
            !text.contains(secret),
            "{what} contains a credential: …{}…",
            &text[text.find(secret).unwrap().saturating_sub(80)..]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_leak() {
    // Every log line at every level, including the HTTP stack's own.
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .json()
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let (db, raw) = db_and_raw().await;

    // A run with retries, malformed bodies and persistent failures (warnings, failure rows).
    let mut cfg = failing_config(600, 0.1, ErrorMode::Persistent);
    cfg.malformed_rate = 0.1;
    let sandbox = start_sandbox(cfg).await;
    let extra = [
        ("RANKING_TARGETS", "0,0:realtime"),
        ("RAKUTEN_MAX_ATTEMPTS", "2"),
    ];
    let ctx = job_context(&db, &sandbox, raw.path(), &extra).await;
    let first = ranking::run(&ctx, RankingInput::default()).await;
    let mut errors = vec![];
    if let Err(e) = &first {
        errors.push(format!("{e} {e:?}"));
    }
    sandbox.shutdown().await;

    // A run whose access key the API rejects: every unit fails, the job fails.
    let mut cfg = sandbox_config(100);
    cfg.access_key = "pk_the_real_one".into();
    let sandbox = start_sandbox(cfg).await;
    let ctx = job_context(&db, &sandbox, raw.path(), &[]).await;
    let err = ranking::run(&ctx, RankingInput::default())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "FailureRateExceeded");
    assert!(err.to_string().contains("Invalid Access Key"), "{err}");
    errors.push(format!("{err} {err:?}"));
    errors.push(format!("{ctx:?} {:?}", ctx.rakuten));
    sandbox.shutdown().await;

    for e in &errors {
        assert_clean("an error message", e);
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.lines().count() > 50,
        "expected a real log ({} lines)",
        logs.lines().count()
    );
    assert!(
        logs.contains("unit failed"),
        "the failure paths were logged"
    );
    assert_clean("the log", &logs);

    let files = files_under(raw.path());
    assert!(files.iter().any(|(k, _)| k.ends_with("manifest.json")));
    for (key, bytes) in &files {
        assert_clean("a raw-object key", key);
        assert_clean(
            &format!("raw object {key}"),
            &String::from_utf8_lossy(bytes),
        );
    }

    let c = db.client().await;
    for row in rows(
        &c,
        "SELECT coalesce(string_agg(unit || ' ' || message, '\n'), '') FROM etl_failures",
        &[],
    )
    .await
    {
        let text: String = row.get(0);
        assert!(!text.is_empty());
        assert_clean("etl_failures", &text);
    }
    for row in rows(
        &c,
        "SELECT coalesce(error_message, '') || coalesce(output::text, '') FROM etl_job_runs",
        &[],
    )
    .await
    {
        assert_clean("etl_job_runs", &row.get::<_, String>(0));
    }
    for row in rows(&c, "SELECT coalesce(error_message, '') FROM etl_runs", &[]).await {
        assert_clean("etl_runs", &row.get::<_, String>(0));
    }
}
