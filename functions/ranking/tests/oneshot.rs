//! The Lambda binary's one-shot mode: one event from the command line, no runtime API.

use std::process::{Command, Output};

use ichiba_collector_tests::*;

fn ranking(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ranking"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).output().expect("run the ranking binary")
}

#[tokio::test]
async fn one_event_runs_the_job_and_bad_events_get_named_errors() {
    let db = TestDb::new().await;
    let sandbox = start_sandbox(sandbox_config(60)).await;
    let raw = tempfile::tempdir().unwrap();
    let store = format!("file://{}", raw.path().display());
    let base = sandbox.base_url();
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", db.url.as_str()),
        ("RAW_STORE", store.as_str()),
        ("RAKUTEN_API_BASE_URL", base.as_str()),
        ("RAKUTEN_APPLICATION_ID", TEST_APP_ID),
        ("RAKUTEN_ACCESS_KEY", TEST_ACCESS_KEY),
        ("RAKUTEN_REQUESTS_PER_SECOND", "200"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let run = move |extra: Vec<(String, String)>, args: Vec<String>| {
        let env = env.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let all: Vec<(&str, &str)> = env
                    .iter()
                    .chain(extra.iter())
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                ranking(&all, &args)
            })
            .await
            .unwrap()
        }
    };

    // A good event: the output document on stdout, JSON logs on stderr.
    let out = run(vec![], vec!["--event".into(), "{}".into()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["units"]["attempted"], 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().expect("a log line");
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "JSON logs: {first}"
    );

    // A bad event: errorType InvalidInput, exit status 1.
    let out = run(vec![], vec!["--event".into(), r#"{"run_id": 7}"#.into()]).await;
    assert_eq!(out.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["errorType"], "InvalidInput");

    // Bad configuration: errorType ConfigError naming the variable.
    let out = run(
        vec![("APP_ENV".into(), "qa".into())],
        vec!["--event".into(), "{}".into()],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["errorType"], "ConfigError");
    assert!(err["errorMessage"].as_str().unwrap().contains("APP_ENV"));
    sandbox.shutdown().await;
}
